//! The embedded default backend: SQLite through rusqlite, WAL mode, one writer connection and
//! a few reader connections, every call run on tokio's blocking pool.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

use custos_audit::AuditEvent;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::migrations::{AppliedStep, Backend, StepStatus};
use crate::model::*;
use crate::schema::{ORG_COLUMNS, RECORD_COLUMNS, TERMINATED_ORG_TABLES};

pub use files::SnapshotCounts;

mod audit;
pub(crate) mod audit_log;
mod files;
mod incidents;
mod lifecycle;
pub(crate) mod members;
mod notify;
mod operators;
pub(crate) mod org_rows;
mod orgs;
mod records;
pub(crate) mod requests;
mod sign_in;
mod support;
pub(crate) mod tokens;

/// The condition that scopes a records statement to the org whose id is `?1` (see
/// `migrations/sqlite/0008_org_seq.sql`). SQLite evaluates the uncorrelated subquery once per statement, and an unknown org
/// matches nothing.
pub(crate) const IN_ORG: &str = "org_seq = (SELECT seq FROM orgs WHERE id = ?1)";

/// The org id of a records row, for statements that span orgs.
const ORG_OF_ROW: &str = "(SELECT o.id FROM orgs o WHERE o.seq = records.org_seq)";

/// [`RECORD_COLUMNS`] without the sealed content, which a sweep rarely needs (see
/// [`Store::claim_due`]).
const CLAIM_COLUMNS: &str = "id, category, subject_ref, state, created_at, archive_at, \
     expire_at, deleted_at, next_due_at, key_ref, NULL, blob_size, pii";

/// [`Store`] on a SQLite database file.
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    /// Tells the checkpointer thread that the WAL grew; dropping it stops the thread.
    committed: SyncSender<()>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

const READERS: usize = 4;

/// Copies committed WAL frames into the database file on a thread and connection of its own.
/// SQLite's default runs that checkpoint inside whichever commit crosses the threshold, which
/// stalls the writer (~100 ms per 40 MB); here it overlaps with the next transactions on the
/// other core. PASSIVE never blocks the writer or readers.
fn spawn_checkpointer(path: &Path) -> Result<SyncSender<()>, StoreError> {
    let conn = Connection::open(path)?;
    configure(&conn)?;
    let (committed, commits) = sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("custos-sqlite-checkpoint".into())
        .spawn(move || {
            while commits.recv().is_ok() {
                // Let a burst of commits pile up: one checkpoint then copies a hot page once.
                std::thread::sleep(std::time::Duration::from_millis(50));
                if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retrying after the next commit");
                }
            }
        })
        .map_err(|e| StoreError::Config(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(committed)
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    // page_size first: it takes effect only while the file is still empty.
    // WAL: readers never block the writer. synchronous=FULL: a commit that returned is on
    // disk. secure_delete: freed pages are zeroed, so purged ciphertext does not linger.
    conn.execute_batch(&format!("PRAGMA page_size = {};", SqliteStore::PAGE_SIZE))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA secure_delete = ON;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 10000;
         PRAGMA journal_size_limit = 67108864;",
    )?;
    Ok(())
}

impl SqliteStore {
    /// Page size of a new database. Larger pages mean fewer page splits and WAL frames per
    /// batch: a stand-alone insert of the ingest bench's row shape (a ~1.1 KB sealed record,
    /// four indexes) took 15.1–15.4 µs per row at 8 KiB against 16.9–17.6 µs at SQLite's
    /// default 4 KiB. An existing database keeps the page size it was created with (changing
    /// it takes a full VACUUM outside WAL mode).
    pub const PAGE_SIZE: u32 = 8192;

    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut writer = Connection::open(path)?;
        configure(&writer)?;
        // The checkpointer thread keeps the WAL short; the writer checkpoints itself only
        // as a backstop if that thread falls far behind (~40 MB of WAL).
        // Only the writer gets a large page cache (64 MiB): index pages dirtied by batch
        // inserts stay in memory; readers stream and keep SQLite's small default.
        writer.execute_batch("PRAGMA wal_autocheckpoint = 10000; PRAGMA cache_size = -65536;")?;
        // Every write transaction takes the write lock when it begins: a deferred one that
        // read first and then writes fails at once with SQLITE_BUSY (the busy timeout does
        // not apply) when another process (a second `serve`, `custos keys rotate`) wrote in
        // between; an immediate one waits for it instead.
        writer.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        migrate(&mut writer)?;
        crate::sqlite::audit_log::backfill_if_needed(&mut writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let conn = Connection::open(path)?;
            configure(&conn)?;
            readers.push(Mutex::new(conn));
        }
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
            committed: spawn_checkpointer(path)?,
        })
    }

    /// The migration state of the database at `path`, without changing it (`custos migrate
    /// status`); a missing file has every step pending.
    pub fn migration_status(path: &Path) -> Result<Vec<StepStatus>, StoreError> {
        let applied = if path.exists() {
            let conn =
                Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            ledger(&conn, false)?
        } else {
            Vec::new()
        };
        crate::migrations::status(Backend::Sqlite, &applied)
    }

    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = self.writer.clone();
        let committed = self.committed.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().unwrap_or_else(|e| e.into_inner());
            let out = f(&mut conn);
            // Full channel: a checkpoint is already pending, which covers this commit too.
            let _ = committed.try_send(());
            out
        })
        .await
        .map_err(|e| StoreError::database("store task failed", e))?
    }

    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        tokio::task::spawn_blocking(move || {
            let conn = readers[i].lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::database("store task failed", e))?
    }

    /// A read by primary key or unique index (microseconds of work): run on the caller's
    /// thread when a reader connection is free at once, since handing it to the blocking pool
    /// costs more than the read itself; otherwise like [`SqliteStore::read`]. Only for reads
    /// whose cost does not grow with the data (every request's authentication pays them).
    pub(crate) async fn read_point<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for k in 0..self.readers.len() {
            let i = (start + k) % self.readers.len();
            if let Ok(conn) = self.readers[i].try_lock() {
                return f(&conn);
            }
        }
        self.read(f).await
    }

    /// Runs raw SQL on the writer connection: for tests that break the database on purpose
    /// (a trigger that makes audit appends fail, to prove the store fails closed).
    #[doc(hidden)]
    pub async fn execute_raw_for_tests(&self, sql: &str) -> Result<(), StoreError> {
        let sql = sql.to_string();
        self.write(move |c| Ok(c.execute_batch(&sql)?)).await
    }

    /// In one transaction: `change`, then the audit events if it returned true; nothing is
    /// committed (or appended) when it returned false.
    pub(crate) async fn mutate_if<F>(
        &self,
        audit: &[AuditEvent],
        change: F,
    ) -> Result<bool, StoreError>
    where
        F: FnOnce(&Transaction<'_>) -> Result<bool, StoreError> + Send + 'static,
    {
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            if !change(&tx)? {
                return Ok(false);
            }
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    /// Runs `delete` (one `?1` time parameter) and, when it deleted any row, appends `audit`
    /// in the same transaction; how many rows.
    pub(crate) async fn delete_audited(
        &self,
        delete: &'static str,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(delete, params![to_micros(at)])? as u64;
            if n > 0 {
                append_audit(&tx, &columns)?;
                tx.commit()?;
            }
            Ok(n)
        })
        .await
    }

    /// In one transaction: `change`, then the audit events.
    pub(crate) async fn mutate<T, F>(
        &self,
        audit: &[AuditEvent],
        change: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let out = change(&tx)?;
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}

/// Runs the pending steps of `migrations/sqlite/`, each in its own transaction with its
/// ledger row. `PRAGMA user_version` follows the ledger's version, so a binary from before
/// the ledger (which read only that counter) refuses a database it does not know.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let applied = {
        let tx = conn.transaction()?;
        let applied = ledger(&tx, true)?;
        tx.commit()?;
        applied
    };
    for step in crate::migrations::pending(Backend::Sqlite, &applied)? {
        let tx = conn.transaction()?;
        tx.execute_batch(step.sql)?;
        tx.execute(
            "INSERT INTO custos_schema_steps (version, name, checksum, applied_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![step.version, step.name, step.checksum(), Some(now_micros())],
        )?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", step.version))?;
        tx.commit()?;
    }
    Ok(())
}

/// The steps the database recorded. A database from before the ledger is adopted from its
/// `PRAGMA user_version` (written to the ledger when `write`, else only returned).
fn ledger(conn: &Connection, write: bool) -> Result<Vec<AppliedStep>, StoreError> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'custos_schema_steps')",
        [],
        |r| r.get(0),
    )?;
    if exists {
        let mut stmt = conn.prepare(
            "SELECT version, name, checksum, applied_at FROM custos_schema_steps ORDER BY version",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(AppliedStep {
                version: r.get(0)?,
                name: r.get(1)?,
                checksum: r.get(2)?,
                applied_at: r.get(3)?,
            })
        })?;
        let applied = rows.collect::<Result<Vec<_>, _>>()?;
        if !applied.is_empty() {
            return Ok(applied);
        }
    }
    let legacy: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = Backend::Sqlite.steps().len() as u32;
    if legacy > known {
        return Err(StoreError::Config(format!(
            "the database schema is at version {legacy}, newer than this binary knows \
             (version {known}); upgrade Custos"
        )));
    }
    let adopted =
        crate::migrations::adopted(Backend::Sqlite, Backend::Sqlite.adopted_version(legacy));
    if write {
        conn.execute_batch(crate::migrations::LEDGER)?;
        for a in &adopted {
            conn.execute(
                "INSERT INTO custos_schema_steps (version, name, checksum, applied_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![a.version, a.name, a.checksum, a.applied_at],
            )?;
        }
    }
    Ok(adopted)
}

fn now_micros() -> i64 {
    to_micros(jiff::Timestamp::now())
}

fn append_audit(tx: &Transaction<'_>, events: &[AuditColumns]) -> Result<(), StoreError> {
    crate::sqlite::audit_log::append(tx, events)
}

fn opt_time(us: Option<i64>) -> Result<Option<jiff::Timestamp>, StoreError> {
    us.map(from_micros).transpose()
}

fn record_from_row(row: &rusqlite::Row<'_>) -> Result<RecordRow, StoreError> {
    let state: String = row.get(3)?;
    let pii: String = row.get(12)?;
    let blob_size: Option<i64> = row.get(11)?;
    Ok(RecordRow {
        id: row.get(0)?,
        category: row.get(1)?,
        subject_ref: row.get(2)?,
        state: RecordState::parse(&state)?,
        created_at: from_micros(row.get(4)?)?,
        archive_at: opt_time(row.get(5)?)?,
        expire_at: from_micros(row.get(6)?)?,
        deleted_at: opt_time(row.get(7)?)?,
        next_due_at: opt_time(row.get(8)?)?,
        key_ref: row.get(9)?,
        sealed: row.get(10)?,
        blob_size: blob_size.map(|n| n as u64),
        pii: serde_json::from_str(&pii).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

fn org_from_row(row: &rusqlite::Row<'_>) -> Result<Org, StoreError> {
    Ok(Org {
        id: row.get(0)?,
        name: row.get(1)?,
        region: row.get(2)?,
        created_at: from_micros(row.get(3)?)?,
        terminating_since: opt_time(row.get(4)?)?,
        terminated_at: opt_time(row.get(5)?)?,
        suspended_at: opt_time(row.get(6)?)?,
    })
}

/// A row of `SELECT {RECORD_COLUMNS}, org_id`.
fn due_from_row(row: &rusqlite::Row<'_>) -> Result<DueRecord, StoreError> {
    Ok(DueRecord {
        scope: OrgScope::new(row.get(13)?),
        row: record_from_row(row)?,
    })
}

pub(crate) fn member_from_row(row: &rusqlite::Row<'_>) -> Result<Member, StoreError> {
    let roles: String = row.get(2)?;
    let groups: String = row.get(3)?;
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
    Ok(Member {
        id: row.get(0)?,
        name: row.get(1)?,
        roles: serde_json::from_str(&roles).map_err(corrupt)?,
        groups: serde_json::from_str(&groups).map_err(corrupt)?,
        mfa: row.get(4)?,
        created_at: from_micros(row.get(5)?)?,
        identity: crate::model::identity_of(row.get(6)?, row.get(7)?),
        last_used_at: opt_time(row.get(8)?)?,
        key_last_used_at: opt_time(row.get(9)?)?,
        disabled_at: opt_time(row.get(10)?)?,
    })
}

/// Inserts `records` of `org` inside the caller's transaction.
fn insert_record_rows(
    tx: &Transaction<'_>,
    org: &str,
    records: &[RecordRow],
) -> Result<(), StoreError> {
    // Looked up once per chunk rather than by a subquery evaluated for every row.
    let seq: i64 = tx
        .prepare_cached("SELECT seq FROM orgs WHERE id = ?1")?
        .query_row([org], |r| r.get(0))?;
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO records (org_seq, {RECORD_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    ))?;
    for r in records {
        stmt.execute(params![
            seq,
            r.id,
            r.category,
            r.subject_ref,
            r.state.as_str(),
            to_micros(r.created_at),
            r.archive_at.map(to_micros),
            to_micros(r.expire_at),
            r.deleted_at.map(to_micros),
            r.next_due_at.map(to_micros),
            r.key_ref,
            r.sealed,
            r.blob_size.map(|n| n as i64),
            r.pii.to_string()
        ])?;
    }
    Ok(())
}

/// The statement and arguments of [`Store::list_records`].
fn list_records_query(
    org: &str,
    filter: &RecordFilter,
    after: Option<&str>,
    limit: u32,
) -> (String, Vec<Value>) {
    // The org is `?1`; each later bare `?` takes the next number, in `args` order.
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM records WHERE {IN_ORG}");
    let mut args: Vec<Value> = vec![Value::Text(org.to_string())];
    if let Some(s) = &filter.subject_ref {
        // The bucket term is what selects `records_by_subject` (migration 7).
        sql.push_str(" AND substr(subject_ref, 1, 1) = substr(?, 1, 1) AND subject_ref = ?");
        args.push(Value::Text(s.clone()));
        args.push(Value::Text(s.clone()));
    }
    if let Some(c) = &filter.category {
        sql.push_str(" AND category = ?");
        args.push(Value::Text(c.clone()));
    }
    if !filter.states.is_empty() {
        sql.push_str(" AND state IN (");
        for (i, s) in filter.states.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
            args.push(Value::Text(s.as_str().to_string()));
        }
        sql.push(')');
    }
    if let Some(a) = after {
        sql.push_str(" AND id > ?");
        args.push(Value::Text(a.to_string()));
    }
    sql.push_str(" ORDER BY id LIMIT ?");
    args.push(Value::Integer(limit as i64));
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    /// The plan SQLite picks for a listing, one line per step.
    fn plan(store: &SqliteStore, filter: &RecordFilter, after: Option<&str>) -> String {
        let (sql, args) = list_records_query("org", filter, after, 50);
        let conn = store.writer.lock().unwrap();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap();
        rows.collect::<Result<Vec<_>, _>>().unwrap().join("\n")
    }

    #[test]
    fn subject_listings_use_the_bucketed_index_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("custos.db")).unwrap();
        let by_subject = RecordFilter {
            subject_ref: Some("0123456789abcdef0123".into()),
            ..Default::default()
        };
        for after in [None, Some("0190")] {
            let plan = plan(&store, &by_subject, after);
            assert!(plan.contains("USING INDEX records_by_subject"), "{plan}");
            // Ordered by the index's id column: no temporary b-tree per page.
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
        let by_category = RecordFilter {
            category: Some("messages".into()),
            ..Default::default()
        };
        let plan = plan(&store, &by_category, None);
        assert!(plan.contains("records_by_category"), "{plan}");
    }

    fn page_size(path: &Path) -> u32 {
        let conn = Connection::open(path).unwrap();
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn new_databases_get_the_large_page_and_old_ones_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.db");
        drop(SqliteStore::open(&fresh).unwrap());
        assert_eq!(page_size(&fresh), SqliteStore::PAGE_SIZE);

        // A database created before the page size was chosen opens and migrates as it is.
        let old = dir.path().join("old.db");
        Connection::open(&old)
            .unwrap()
            .execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL;")
            .unwrap();
        drop(SqliteStore::open(&old).unwrap());
        assert_eq!(page_size(&old), 4096);
    }

    #[test]
    fn point_reads_use_the_primary_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("custos.db")).unwrap();
        let conn = store.writer.lock().unwrap();
        let sql =
            format!("EXPLAIN QUERY PLAN SELECT sealed FROM records WHERE {IN_ORG} AND id = ?2");
        let plan: Vec<String> = conn
            .prepare(&sql)
            .unwrap()
            .query_map(["org", "id"], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("(org_seq=? AND id=?)"), "{plan}");
    }

    /// Two orgs' records written under schema version 7 (org named by its UUID), then opened
    /// by this binary: every record stays in its own org, the orgs are numbered in order, and
    /// an org created afterwards gets the next number and its own records.
    #[tokio::test]
    async fn migration_8_keeps_each_record_in_its_org() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custos.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            configure(&conn).unwrap();
            let tx = conn.transaction().unwrap();
            for step in &Backend::Sqlite.steps()[..7] {
                tx.execute_batch(step.sql).unwrap();
            }
            tx.execute_batch("PRAGMA user_version = 7").unwrap();
            for (org, records) in [("org-a", ["a1", "a2"]), ("org-b", ["b1", "b2"])] {
                tx.execute(
                    "INSERT INTO orgs (id, name, region, created_at) VALUES (?1, ?1, 'eu', 0)",
                    [org],
                )
                .unwrap();
                for id in records {
                    tx.execute(
                        "INSERT INTO records (org_id, id, category, subject_ref, state, created_at,
                                expire_at, next_due_at, key_ref, sealed, pii)
                         VALUES (?1, ?2, 'logs', 'f00d', 'active', 1, 2, 2, 'org:1', x'01', '{}')",
                        [org, id],
                    )
                    .unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        for (org, want) in [("org-a", ["a1", "a2"]), ("org-b", ["b1", "b2"])] {
            let (scope, _) = store.org(org).await.unwrap().unwrap();
            let listed = store
                .list_records(&scope, &RecordFilter::default(), None, 10)
                .await
                .unwrap();
            let ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(ids, want);
            let by_subject = RecordFilter {
                subject_ref: Some("f00d".into()),
                ..Default::default()
            };
            assert_eq!(
                store
                    .list_records(&scope, &by_subject, None, 10)
                    .await
                    .unwrap()
                    .len(),
                2
            );
            let other = if org == "org-a" { "b1" } else { "a1" };
            assert!(store.record(&scope, other).await.unwrap().is_none());
        }
        let due = store
            .peek_due(jiff::Timestamp::from_microsecond(5).unwrap(), None, 10)
            .await
            .unwrap();
        let owners: Vec<(&str, &str)> = due
            .iter()
            .map(|d| (d.scope.org_id(), d.row.id.as_str()))
            .collect();
        assert_eq!(
            owners,
            [
                ("org-a", "a1"),
                ("org-a", "a2"),
                ("org-b", "b1"),
                ("org-b", "b2")
            ]
        );
        let org_c = Org {
            id: "org-c".into(),
            name: "C".into(),
            region: "eu".into(),
            created_at: jiff::Timestamp::from_second(1).unwrap(),
            terminating_since: None,
            terminated_at: None,
            suspended_at: None,
        };
        let c = store.create_org(&org_c, &[]).await.unwrap();
        assert!(store
            .list_records(&c, &RecordFilter::default(), None, 10)
            .await
            .unwrap()
            .is_empty());
        let conn = store.writer.lock().unwrap();
        let seqs: Vec<(String, i64)> = conn
            .prepare("SELECT id, seq FROM orgs ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want = [("org-a", 1), ("org-b", 2), ("org-c", 3)].map(|(o, n)| (o.to_string(), n));
        assert_eq!(seqs, want);
    }
}
