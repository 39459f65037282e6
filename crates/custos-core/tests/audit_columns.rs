//! The audit log's indexed columns (`org_id`, `time`, `actor`, `action`, `target`, `outcome`)
//! are not covered by the Merkle tree, so every use of them is checked against the leaf:
//! `verify_audit_log` names the first row and column that disagree with its event; event
//! queries and inclusion-proof authorization decide on the decoded leaf, never the column.
//! Plus the log's tail: rows dropped below a signed checkpoint are found, rows dropped from
//! the uncovered tail show as a smaller uncovered count (the bound).
//!
//! Runs on a real SQLite file and on PostgreSQL (`CUSTOS_TEST_POSTGRES_URL`, default the
//! local test server; skipped loudly when unreachable, fatal under `CI=true`). Tampering is
//! direct SQL, as an attacker with database access would do it.

use std::sync::Arc;

use custos_audit::{Actor, AuditEvent, Outcome, TamperKind};
use custos_core::{
    AuditFailure, AuditVerification, Caller, CoreError, Custos, ManualClock, NewMember, NewOrg,
    Principal,
};
use custos_crypto::{DeploymentSigner, KeyVault, LocalKms};
use custos_keystore_sqlite::SqliteKeyStore;
use custos_policy::Policy;
use custos_store::{AuditFilter, ObjectLocation, Objects, PgStore, SqliteStore, Store};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Events appended for org A and covered by the signed checkpoint.
const COVERED: u64 = 40;
/// Events appended after the checkpoint (the uncovered tail).
const UNCOVERED: u64 = 3;
/// The personal-looking member id in org A's events; never in a failure message.
const SECRET_ACTOR: &str = "alice-personal-id";

/// Direct SQL on the backend under test.
enum Raw {
    Sqlite(Arc<SqliteStore>),
    Pg(Arc<PgStore>),
}

/// A deployment with two orgs and an auditor in each, org A's events (some covered by a
/// signed checkpoint, some not).
struct Log {
    _dir: tempfile::TempDir,
    custos: Custos,
    store: Arc<dyn Store>,
    raw: Raw,
    org_a: String,
    org_b: String,
    auditor_a: Caller,
    auditor_b: Caller,
    /// Index of the first of org A's appended events.
    base: u64,
}

impl Log {
    async fn sql(&self, sql: &str) {
        match &self.raw {
            Raw::Sqlite(s) => s.execute_raw_for_tests(sql).await,
            Raw::Pg(p) => p.execute_raw_for_tests(sql).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn is_pg(&self) -> bool {
        matches!(self.raw, Raw::Pg(_))
    }

    async fn verify(&self) -> Result<AuditVerification, AuditFailure> {
        self.custos.verify_audit_log(None, &[]).await.unwrap()
    }

    async fn verify_fails(&self) -> AuditFailure {
        match self.verify().await {
            Ok(v) => panic!("verification passed: {} entries", v.entries),
            Err(f) => f,
        }
    }

    /// The index of org A's `i`-th appended event.
    fn at(&self, i: u64) -> u64 {
        self.base + i
    }
}

fn admin() -> Caller {
    Caller::new(Principal::Admin)
}

fn event_time(i: u64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_767_225_600 + i as i64).unwrap()
}

/// Builds the log on `store`; `raw` reaches the same database.
async fn build(store: Arc<dyn Store>, raw: Raw, dir: tempfile::TempDir) -> Log {
    let data = dir.path().join("data");
    let objects = Objects::open(&ObjectLocation::File(data.join("objects"))).unwrap();
    let kms = LocalKms::open_or_create(&data.join("keys/root.keyring")).unwrap();
    let keys = SqliteKeyStore::open(&data.join("keys/keys.db")).unwrap();
    let vault = Arc::new(KeyVault::new(Arc::new(kms), Arc::new(keys)));
    let clock = Arc::new(ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap()));
    let custos = Custos::new(
        Arc::new(Policy::builtin()),
        store.clone(),
        objects,
        vault,
        clock,
    )
    .with_audit_signer(Arc::new(DeploymentSigner::ephemeral("Example SaaS")));
    let org = |name: &str| NewOrg {
        name: name.into(),
        region: None,
        owner: Some(custos_core::NewOwner {
            name: "Olive".into(),
        }),
    };
    let a = custos.create_org(&admin(), org("A")).await.unwrap();
    let b = custos.create_org(&admin(), org("B")).await.unwrap();
    let (org_a, org_b) = (a.org.id.clone(), b.org.id.clone());
    let auditor_a = auditor(&custos, &org_a, &a.owner.unwrap().api_key).await;
    let auditor_b = auditor(&custos, &org_b, &b.owner.unwrap().api_key).await;
    let base = store.audit_size().await.unwrap();
    let events: Vec<AuditEvent> = (0..COVERED + UNCOVERED)
        .map(|i| {
            AuditEvent::new(
                event_time(i),
                Actor::Member(SECRET_ACTOR.into()),
                custos_audit::AuditAction::RecordCreate,
            )
            .org(org_a.clone())
            .target(custos_audit::Target::Record(format!("r{i}")))
        })
        .collect();
    let (covered, uncovered) = events.split_at(COVERED as usize);
    store.append_audit(covered).await.unwrap();
    custos.checkpoint_if_grown().await.unwrap().unwrap();
    store.append_audit(uncovered).await.unwrap();
    Log {
        _dir: dir,
        custos,
        store,
        raw,
        org_a,
        org_b,
        auditor_a,
        auditor_b,
        base,
    }
}

/// An auditor of `org`, added by its owner (API key `owner`).
async fn auditor(custos: &Custos, org: &str, owner: &str) -> Caller {
    let owner = Caller::new(custos.authenticate(owner).await.unwrap());
    let created = custos
        .add_member(
            &owner,
            org,
            NewMember {
                name: "auditor".into(),
                roles: vec!["auditor".into()],
                groups: vec![],
                mfa: false,
                identity: None,
            },
        )
        .await
        .unwrap();
    Caller::new(custos.authenticate(&created.api_key).await.unwrap())
}

async fn sqlite_log() -> Log {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("data/custos.db")).unwrap());
    build(store.clone(), Raw::Sqlite(store), dir).await
}

/// A log on a fresh PostgreSQL schema, or `None` after a loud skip message.
async fn pg_log() -> Option<Log> {
    let url = std::env::var("CUSTOS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    let schema = format!("custos_auditcol_{}", uuid::Uuid::new_v4().simple());
    let store = match PgStore::connect(&url, Some(&schema)).await {
        Ok(store) => Arc::new(store),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL at {url} unusable ({e}); CI=true makes this fatal")
        }
        Err(e) => {
            eprintln!("\n*** SKIPPED: PostgreSQL at {url} unusable ({e}); set CUSTOS_TEST_POSTGRES_URL, and CI=true to make this fatal ***\n");
            return None;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data/keys")).unwrap();
    Some(build(store.clone(), Raw::Pg(store), dir).await)
}

/// One indexed column: how to forge it on a row (`{idx}` is the row) and how to put it back.
struct ColumnCase {
    column: &'static str,
    forge: String,
    restore: String,
}

fn column_cases(log: &Log, i: u64) -> Vec<ColumnCase> {
    let time = event_time(i).as_microsecond();
    let case = |column: &'static str, forged: &str, original: &str| ColumnCase {
        column,
        forge: format!("UPDATE audit_log SET {column} = {forged} WHERE idx = {{idx}}"),
        restore: format!("UPDATE audit_log SET {column} = {original} WHERE idx = {{idx}}"),
    };
    vec![
        case(
            "org_id",
            &format!("'{}'", log.org_b),
            &format!("'{}'", log.org_a),
        ),
        case("time", &(time + 1).to_string(), &time.to_string()),
        case(
            "actor",
            "'member:forged'",
            &format!("'member:{SECRET_ACTOR}'"),
        ),
        case("action", "'record.delete'", "'record.create'"),
        case("target", "'record:forged'", &format!("'record:r{i}'")),
        case("target", "NULL", &format!("'record:r{i}'")),
        case("outcome", "'denied'", "'success'"),
    ]
}

/// Each column edited on one covered and one uncovered row: verification fails naming that
/// row and column (and no value); restoring the column makes the log verify again.
async fn each_column_edit_is_named(log: &Log) {
    let clean = log.verify().await.unwrap();
    assert_eq!(clean.uncovered, UNCOVERED);
    for i in [7, COVERED + 1] {
        let idx = log.at(i);
        for case in column_cases(log, i) {
            log.sql(&case.forge.replace("{idx}", &idx.to_string()))
                .await;
            let failure = log.verify_fails().await;
            assert!(
                matches!(failure, AuditFailure::ColumnMismatch { index, column }
                    if index == idx && column == case.column),
                "{}: {failure:?}",
                case.forge
            );
            let message = failure.to_string();
            assert!(
                message.contains(&format!("index {idx}:"))
                    && message.contains(&format!("`{}`", case.column)),
                "{message}"
            );
            for value in [SECRET_ACTOR, "forged", &log.org_a, &log.org_b] {
                assert!(!message.contains(value), "value {value} in: {message}");
            }
            log.sql(&case.restore.replace("{idx}", &idx.to_string()))
                .await;
            assert_eq!(log.verify().await.unwrap().entries, clean.entries);
        }
    }
}

/// An event of org A moved to org B by its `org_id` column alone: B's auditor never sees
/// it (the query fails closed) nor gets its proof; A's auditor still proves it (the leaf
/// decides); an admin query whose filter only the forged column matches fails closed too.
async fn moved_event_stays_with_its_org(log: &Log) {
    let idx = log.at(5);
    log.sql(&format!(
        "UPDATE audit_log SET org_id = '{}' WHERE idx = {idx}",
        log.org_b
    ))
    .await;
    let all = AuditFilter::default();
    match log
        .custos
        .audit_events(&log.auditor_b, None, &all, 0, 1000)
        .await
    {
        Err(CoreError::Internal {
            detail: message, ..
        }) => {
            assert!(
                message.contains(&format!("audit entry {idx}:")),
                "{message}"
            );
            assert!(!message.contains(&log.org_a), "{message}");
        }
        other => panic!("B's auditor query did not fail closed: {other:?}"),
    }
    // A page that ends before the moved row is served as usual.
    let page = log
        .custos
        .audit_events(&log.auditor_b, None, &all, 0, 1)
        .await
        .unwrap();
    assert!(page.items.iter().all(|e| e.index != idx));
    let denied = log
        .custos
        .audit_inclusion_proof(&log.auditor_b, idx, None)
        .await;
    assert!(matches!(denied, Err(CoreError::NotFound(_))), "{denied:?}");
    let proof = log
        .custos
        .audit_inclusion_proof(&log.auditor_a, idx, None)
        .await
        .unwrap();
    assert_eq!(proof.index, idx);
    // The column moved it out of A's SQL pre-filter: A's page omits it, verify names it.
    let a_page = log
        .custos
        .audit_events(&log.auditor_a, None, &all, 0, 1000)
        .await
        .unwrap();
    assert!(a_page.items.iter().all(|e| e.index != idx));
    assert!(matches!(
        log.verify_fails().await,
        AuditFailure::ColumnMismatch { index, column: "org_id" } if index == idx
    ));

    // A filter column forged to match: the admin's filtered query fails closed as well.
    let other = log.at(9);
    log.sql(&format!(
        "UPDATE audit_log SET outcome = 'denied', action = 'member.delete' WHERE idx = {other}"
    ))
    .await;
    let filter = AuditFilter {
        action: Some("member.delete".into()),
        ..AuditFilter::default()
    };
    let forged = log
        .custos
        .audit_events(&admin(), Some(&log.org_a), &filter, 0, 1000)
        .await;
    assert!(
        matches!(forged, Err(CoreError::Internal { .. })),
        "{forged:?}"
    );
}

/// A deleted middle row is named by its index.
async fn deleted_row_is_named(log: &Log) {
    let idx = log.at(11);
    log.sql(&format!("DELETE FROM audit_log WHERE idx = {idx}"))
        .await;
    let failure = log.verify_fails().await;
    assert!(
        matches!(failure, AuditFailure::Tampered(t)
            if t.first_bad_index == idx && matches!(t.kind, TamperKind::MissingEntry { .. })),
        "{failure:?}"
    );
}

/// Rows dropped from the tail a signed checkpoint covers: the log is shorter than it.
async fn dropped_covered_tail_is_found(log: &Log) {
    let cut = log.at(COVERED - 4);
    log.sql(&format!("DELETE FROM audit_log WHERE idx >= {cut}"))
        .await;
    let failure = log.verify_fails().await;
    assert!(
        matches!(failure, AuditFailure::Tampered(t)
            if t.first_bad_index == cut && matches!(t.kind, TamperKind::Truncated { .. })),
        "{failure:?}"
    );
}

/// Rows dropped from the uncovered tail: on SQLite they show only as a smaller uncovered
/// count (the bound). PostgreSQL also records the log size in `audit_head`, so there the
/// drop is found unless that row is edited too; then it is the same bound.
async fn dropped_uncovered_tail_is_within_the_bound(log: &Log) {
    let cut = log.at(COVERED + 1);
    log.sql(&format!("DELETE FROM audit_log WHERE idx >= {cut}"))
        .await;
    if log.is_pg() {
        let failure = log.verify_fails().await;
        assert!(
            matches!(failure, AuditFailure::Shortened { present, .. } if present == cut),
            "{failure:?}"
        );
        log.sql(&format!("UPDATE audit_head SET size = {cut}"))
            .await;
    }
    let v = log.verify().await.unwrap();
    assert_eq!(v.entries, cut);
    assert_eq!(v.uncovered, 1);
    assert_eq!(v.anchored_size, log.at(COVERED));
}

/// Every case, each on a fresh log of `make`.
async fn matrix<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<Log>>,
{
    let Some(log) = make().await else { return };
    each_column_edit_is_named(&log).await;
    moved_event_stays_with_its_org(&make().await.unwrap()).await;
    deleted_row_is_named(&make().await.unwrap()).await;
    dropped_covered_tail_is_found(&make().await.unwrap()).await;
    dropped_uncovered_tail_is_within_the_bound(&make().await.unwrap()).await;
}

#[tokio::test]
async fn tamper_matrix_on_sqlite() {
    matrix(|| async { Some(sqlite_log().await) }).await;
}

#[tokio::test]
async fn tamper_matrix_on_postgres() {
    matrix(pg_log).await;
}

#[tokio::test]
async fn clean_log_reports_its_uncovered_tail() {
    let log = sqlite_log().await;
    let v = log.verify().await.unwrap();
    assert_eq!(v.entries, log.at(COVERED + UNCOVERED));
    assert_eq!((v.anchored_size, v.uncovered), (log.at(COVERED), UNCOVERED));
    log.custos.checkpoint_if_grown().await.unwrap().unwrap();
    assert_eq!(log.verify().await.unwrap().uncovered, 0);
    // Outcomes other than success are columns too: a denied event round-trips.
    let denied = AuditEvent::new(
        event_time(99),
        Actor::System,
        custos_audit::AuditAction::RecordRead,
    )
    .org(log.org_a.clone())
    .outcome(Outcome::Denied);
    log.store.append_audit(&[denied]).await.unwrap();
    assert_eq!(log.verify().await.unwrap().uncovered, 1);
}
