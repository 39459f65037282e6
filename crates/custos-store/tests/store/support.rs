//! Backends, fixtures and the expected audit log shared by the suite.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use custos_audit::{Actor, AuditEvent};
use custos_store::prelude::*;
use custos_store::{
    AuditEntry, Hold, Member, Org, OrgScope, PgStore, RecordRow, RecordState, SqliteStore, Store,
    StoreError,
};
use futures::FutureExt;
use jiff::Timestamp;
use uuid::Uuid;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store under test, plus raw access to the database for tests that break it on purpose.
pub struct Harness {
    pub store: Arc<dyn Store>,
    raw: Raw,
}

enum Raw {
    Sqlite(Arc<SqliteStore>),
    Postgres(PgStore),
}

impl Harness {
    pub fn backend(&self) -> Backend {
        match self.raw {
            Raw::Sqlite(_) => Backend::Sqlite,
            Raw::Postgres(_) => Backend::Postgres,
        }
    }

    async fn execute_raw(&self, sql: &str) {
        let result = match &self.raw {
            Raw::Sqlite(s) => s.execute_raw_for_tests(sql).await,
            Raw::Postgres(p) => p.execute_raw_for_tests(sql).await,
        };
        result.unwrap_or_else(|e| panic!("raw SQL failed: {e}\n{sql}"));
    }

    /// Installs a trigger that makes every insert into `audit_log` fail with "audit down".
    pub async fn break_audit_log(&self) {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log
                 BEGIN SELECT RAISE(ABORT, 'audit down'); END;"
            }
            Backend::Postgres => {
                "CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN RAISE EXCEPTION 'audit down'; END $$;
                 CREATE TRIGGER audit_down BEFORE INSERT ON audit_log
                 FOR EACH ROW EXECUTE FUNCTION audit_down();"
            }
        };
        self.execute_raw(sql).await;
    }

    /// Removes the trigger installed by [`Harness::break_audit_log`].
    pub async fn repair_audit_log(&self) {
        let sql = match self.backend() {
            Backend::Sqlite => "DROP TRIGGER audit_down;",
            Backend::Postgres => "DROP TRIGGER audit_down ON audit_log;",
        };
        self.execute_raw(sql).await;
    }
}

/// Runs `body` on a fresh store of `backend`, then removes the store (even if `body` panics).
pub async fn run<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = ()>,
{
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let store = Arc::new(
                SqliteStore::open(&dir.path().join("db").join("custos.sqlite3"))
                    .expect("open SQLite store"),
            );
            assert_eq!(store.backend(), "sqlite");
            let harness = Harness {
                store: store.clone(),
                raw: Raw::Sqlite(store),
            };
            body(harness).await;
        }
        Backend::Postgres => {
            let Some(url) = postgres_url().await else {
                return;
            };
            let schema = format!("custos_test_{}", Uuid::new_v4().simple());
            let store = PgStore::connect(&url, Some(&schema))
                .await
                .unwrap_or_else(|e| panic!("connect to {url} (schema {schema}): {e}"));
            assert_eq!(store.backend(), "postgres");
            let harness = Harness {
                store: Arc::new(store.clone()),
                raw: Raw::Postgres(store),
            };
            let outcome = AssertUnwindSafe(body(harness)).catch_unwind().await;
            if let Err(e) = PgStore::drop_schema(&url, &schema).await {
                eprintln!("warning: could not drop test schema {schema}: {e}");
            }
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// The PostgreSQL URL to test against, or `None` (after saying so loudly) when the server
/// cannot be reached outside CI. In CI an unreachable server fails the test.
async fn postgres_url() -> Option<String> {
    let url =
        std::env::var("CUSTOS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
    let parsed = url::Url::parse(&url).unwrap_or_else(|e| panic!("bad PostgreSQL URL {url}: {e}"));
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_string();
    let port = parsed.port().unwrap_or(5432);
    let probe = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await;
    let problem = match probe {
        Ok(Ok(_)) => return Some(url),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "connection timed out".to_string(),
    };
    let message = format!("PostgreSQL unreachable at {host}:{port} ({problem})");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}; CI=true makes this fatal");
    }
    eprintln!(
        "\n*** SKIPPED: {message}; set CUSTOS_TEST_POSTGRES_URL to test PostgreSQL, \
         and CI=true to make this fatal ***\n"
    );
    None
}

/// A time with microsecond precision (the stored precision), distinct per call.
pub fn now_us() -> Timestamp {
    static NEXT: AtomicI64 = AtomicI64::new(1_767_225_600_123_457); // 2026-01-01T00:00:00.123457Z
    Timestamp::from_microsecond(NEXT.fetch_add(1_000_003, Ordering::Relaxed)).unwrap()
}

/// A fixed microsecond-precision time.
pub fn at(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap()
}

/// A UUID v7 id, strictly greater than every id returned before (one millisecond apart).
pub fn v7_id() -> String {
    static NEXT_MS: AtomicU64 = AtomicU64::new(0);
    let _ = NEXT_MS.compare_exchange(
        0,
        jiff::Timestamp::now().as_millisecond() as u64,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let ms = NEXT_MS.fetch_add(1, Ordering::Relaxed);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, (ms % 1000) as u32 * 1_000_000);
    Uuid::new_v7(ts).to_string()
}

/// `n` ids in increasing order.
pub fn v7_ids(n: usize) -> Vec<String> {
    (0..n).map(|_| v7_id()).collect()
}

/// A fresh org.
pub fn org(name: &str) -> Org {
    Org {
        id: Uuid::new_v4().to_string(),
        name: name.to_string(),
        region: "eu-central".to_string(),
        created_at: now_us(),
        terminating_since: None,
        terminated_at: None,
        suspended_at: None,
    }
}

/// A fresh member.
pub fn member(name: &str, roles: &[&str], groups: &[&str], mfa: bool) -> Member {
    Member {
        id: Uuid::new_v4().to_string(),
        name: name.to_string(),
        roles: roles.iter().map(|s| s.to_string()).collect(),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        mfa,
        created_at: now_us(),
        identity: None,
        last_used_at: None,
        key_last_used_at: None,
        disabled_at: None,
    }
}

/// A random API key hash.
/// Creates an org named `name`, audited, and returns its scope.
pub async fn create_org(store: &dyn Store, book: &mut AuditBook, name: &str) -> OrgScope {
    let org = org(name);
    let audit = [event(None, "org.create", &format!("org:{}", org.id))];
    let scope = store.create_org(&org, &audit).await.unwrap();
    book.appended(&audit);
    assert_eq!(scope.org_id(), org.id);
    scope
}

pub fn key_hash() -> [u8; 32] {
    let mut h = [0u8; 32];
    h[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    h[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    h
}

/// A record with every field set, distinct per `id`.
pub fn record(id: &str, category: &str, subject: Option<&str>, state: RecordState) -> RecordRow {
    let created = now_us();
    RecordRow {
        id: id.to_string(),
        category: category.to_string(),
        subject_ref: subject.map(str::to_string),
        state,
        created_at: created,
        archive_at: Some(created + jiff::SignedDuration::from_hours(24 * 90)),
        expire_at: created + jiff::SignedDuration::from_hours(24 * 365),
        deleted_at: (state == RecordState::SoftDeleted).then_some(created),
        next_due_at: Some(created + jiff::SignedDuration::from_hours(24 * 30)),
        key_ref: format!("subject:{}", subject.unwrap_or("none")),
        sealed: Some(format!("sealed:{id}").into_bytes()),
        blob_size: None,
        pii: serde_json::json!({ "EMAIL_ADDRESS": 1 }),
    }
}

/// A hold created now.
pub fn hold(reason: &str, subject: Option<&str>, category: Option<&str>) -> Hold {
    Hold {
        id: Uuid::new_v4().to_string(),
        reason: reason.to_string(),
        subject_ref: subject.map(str::to_string),
        category: category.map(str::to_string),
        created_at: now_us(),
    }
}

/// A unique audit event about `org` (or deployment-wide when `None`), of the action named
/// `action` (a real one: events carry typed actions).
pub fn event(org: Option<&OrgScope>, action: &str, target: &str) -> AuditEvent {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut e = AuditEvent::new(
        now_us(),
        Actor::System,
        custos_audit::AuditAction::RecordCreate,
    )
    // Text that is not a typed target form names a record (most suite events are about one).
    .target(
        custos_audit::Target::parse(target)
            .unwrap_or_else(|_| custos_audit::Target::Record(target.into())),
    )
    .reason(format!("seq_{}", SEQ.fetch_add(1, Ordering::Relaxed)));
    e.action = custos_audit::AuditAction::parse(action)
        .unwrap_or_else(|| panic!("{action:?} is not an audit action"));
    if let Some(org) = org {
        e = e.org(org.org_id());
    }
    e
}

/// The audit log a test expects the store to hold, in order.
#[derive(Default)]
pub struct AuditBook {
    pub events: Vec<AuditEvent>,
}

impl AuditBook {
    /// Records that `events` were just appended.
    pub fn appended(&mut self, events: &[AuditEvent]) {
        self.events.extend_from_slice(events);
    }

    /// The entries the store must return for `org` (all when `None`).
    pub fn entries(&self, org: Option<&OrgScope>) -> Vec<AuditEntry> {
        self.events
            .iter()
            .enumerate()
            .filter(|(_, e)| org.is_none_or(|o| e.org.as_deref() == Some(o.org_id())))
            .map(|(i, e)| AuditEntry {
                index: i as u64,
                leaf: e.to_canonical_bytes(),
            })
            .collect()
    }

    /// Asserts the store's whole log is exactly this book.
    pub async fn verify(&self, store: &dyn Store) {
        assert_eq!(
            store.audit_size().await.unwrap(),
            self.events.len() as u64,
            "audit_size"
        );
        let got = store.audit_entries(None, 0, u32::MAX).await.unwrap();
        assert_eq!(got, self.entries(None), "audit_entries(None)");
    }
}

/// Asserts `result` is a [`StoreError::Conflict`].
#[track_caller]
pub fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected StoreError::Conflict, got {other:?}"),
    }
}

/// Asserts `result` failed because the audit log refused the append.
#[track_caller]
pub fn assert_audit_down<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(e @ StoreError::Database { .. }) if e.to_string().contains("audit down") => {}
        other => panic!("expected StoreError::Database(\"...audit down...\"), got {other:?}"),
    }
}
