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
use crate::Store;

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
        crate::audit_sqlite::backfill_if_needed(&mut writer)?;
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
    crate::audit_sqlite::append(tx, events)
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

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn create_org(&self, org: &Org, audit: &[AuditEvent]) -> Result<OrgScope, StoreError> {
        let org = org.clone();
        self.mutate(audit, move |tx| {
            tx.execute(
                "INSERT INTO orgs (id, name, region, created_at, seq)
                 VALUES (?1, ?2, ?3, ?4, (SELECT COALESCE(MAX(seq), 0) + 1 FROM orgs))",
                params![org.id, org.name, org.region, to_micros(org.created_at)],
            )?;
            Ok(OrgScope::new(org.id))
        })
        .await
    }

    async fn org(&self, id: &str) -> Result<Option<(OrgScope, Org)>, StoreError> {
        let id = id.to_string();
        self.read_point(move |c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = ?1"))?;
            let mut rows = stmt.query([&id])?;
            match rows.next()? {
                Some(r) => {
                    let org = org_from_row(r)?;
                    Ok(Some((OrgScope::new(org.id.clone()), org)))
                }
                None => Ok(None),
            }
        })
        .await
    }

    async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {ORG_COLUMNS} FROM orgs ORDER BY created_at, id"
            ))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(org_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn add_member(
        &self,
        scope: &OrgScope,
        member: &Member,
        key_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, m, hash) = (scope.org_id().to_string(), member.clone(), *key_hash);
        self.mutate(audit, move |tx| {
            tx.execute(
                "INSERT INTO members (org_id, id, name, roles, groups_json, mfa, key_hash, created_at,
                                      identity_iss, identity_sub)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    org,
                    m.id,
                    m.name,
                    serde_json::to_string(&m.roles).expect("strings serialize"),
                    serde_json::to_string(&m.groups).expect("strings serialize"),
                    m.mfa,
                    &hash[..],
                    to_micros(m.created_at),
                    m.identity.as_ref().map(|i| i.iss.clone()),
                    m.identity.as_ref().map(|i| i.sub.clone()),
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn member_by_key_hash(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<(OrgScope, Member)>, StoreError> {
        let hash = *key_hash;
        self.read_point(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {}, org_id FROM members WHERE key_hash = ?1",
                crate::members::MEMBER_COLUMNS
            ))?;
            let mut rows = stmt.query([&hash[..]])?;
            match rows.next()? {
                Some(r) => Ok(Some((OrgScope::new(r.get(8)?), member_from_row(r)?))),
                None => Ok(None),
            }
        })
        .await
    }

    async fn insert_records(
        &self,
        scope: &OrgScope,
        records: &[RecordRow],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let org = scope.org_id().to_string();
        let records = records.to_vec();
        self.mutate(audit, move |tx| insert_record_rows(tx, &org, &records))
            .await
    }

    async fn insert_record_stream(
        &self,
        scope: &OrgScope,
        mut chunks: crate::RecordChunks,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let org = scope.org_id().to_string();
        // Each chunk is inserted as it arrives, so the writer works while the caller seals
        // the next one. The writer is held until the stream ends: other writes wait for the
        // batch's sealing as well as its insert, which is why the core sends a small first
        // chunk and streams only what it seals at full speed.
        self.mutate(audit, move |tx| {
            let mut received = 0;
            while let Some(rows) = chunks.blocking_next() {
                insert_record_rows(tx, &org, &rows)?;
                received += rows.len();
            }
            chunks.check_complete(received)
        })
        .await
    }

    async fn record(&self, scope: &OrgScope, id: &str) -> Result<Option<RecordRow>, StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records WHERE {IN_ORG} AND id = ?2"
            ))?;
            let mut rows = stmt.query([&org, &id])?;
            rows.next()?.map(record_from_row).transpose()
        })
        .await
    }

    async fn list_records(
        &self,
        scope: &OrgScope,
        filter: &RecordFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RecordRow>, StoreError> {
        let (sql, args) = list_records_query(scope.org_id(), filter, after, limit);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(record_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn transition_record(
        &self,
        scope: &OrgScope,
        change: &StateChange,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, ch) = (scope.org_id().to_string(), change.clone());
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(
                &format!(
                    "UPDATE records SET state = ?4, deleted_at = ?5, next_due_at = ?6,
                            lease_until = NULL
                     WHERE {IN_ORG} AND id = ?2 AND state = ?3"
                ),
                params![
                    org,
                    ch.id,
                    ch.from.as_str(),
                    ch.to.as_str(),
                    ch.deleted_at.map(to_micros),
                    ch.next_due_at.map(to_micros)
                ],
            )?;
            if n == 0 {
                return Ok(false);
            }
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn claim_due(
        &self,
        now: jiff::Timestamp,
        lease_until: jiff::Timestamp,
        limit: u32,
    ) -> Result<Vec<DueRecord>, StoreError> {
        self.write(move |conn| {
            // One statement claims the batch: SQLite's single writer makes it atomic against
            // other processes' sweepers, and there is no per-row round trip.
            let mut stmt = conn.prepare_cached(&format!(
                "UPDATE records SET lease_until = ?3
                 WHERE rowid IN (
                     SELECT rowid FROM records
                     WHERE next_due_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)
                     ORDER BY next_due_at LIMIT ?2)
                 RETURNING {CLAIM_COLUMNS}, {ORG_OF_ROW}"
            ))?;
            let mut rows = stmt.query(params![to_micros(now), limit, to_micros(lease_until)])?;
            let mut due = Vec::new();
            while let Some(r) = rows.next()? {
                due.push(due_from_row(r)?);
            }
            due.sort_by_key(|d| d.row.next_due_at);
            Ok(due)
        })
        .await
    }

    async fn peek_due(
        &self,
        as_of: jiff::Timestamp,
        after: Option<&DueCursor>,
        limit: u32,
    ) -> Result<Vec<DueRecord>, StoreError> {
        let after = after.cloned();
        self.read(move |c| {
            let (due, org, id) = match &after {
                Some(a) => (to_micros(a.due_at), a.org.clone(), a.id.clone()),
                None => (i64::MIN, String::new(), String::new()),
            };
            let mut stmt = c.prepare_cached(&format!(
                "SELECT * FROM (
                     SELECT {RECORD_COLUMNS}, {ORG_OF_ROW} AS org_id FROM records
                     WHERE next_due_at <= ?1)
                 WHERE (next_due_at, org_id, id) > (?2, ?3, ?4)
                 ORDER BY next_due_at, org_id, id LIMIT ?5"
            ))?;
            let mut rows = stmt.query(params![to_micros(as_of), due, org, id, limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(due_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn request_purges(
        &self,
        scope: &OrgScope,
        targets: &[(String, RecordState)],
        cause: PurgeCause,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let (org, targets) = (scope.org_id().to_string(), targets.to_vec());
        let to = cause.state().as_str();
        self.mutate(audit, move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "UPDATE records SET state = ?5, deleted_at = ?4, next_due_at = ?4,
                        lease_until = NULL
                 WHERE {IN_ORG} AND id = ?2 AND state = ?3"
            ))?;
            let mut n = 0u64;
            for (id, state) in &targets {
                n += stmt.execute(params![org, id, state.as_str(), to_micros(at), to])? as u64;
            }
            Ok(n)
        })
        .await
    }

    async fn defer_record(
        &self,
        scope: &OrgScope,
        id: &str,
        until: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        self.write(move |c| {
            c.execute(
                &format!("UPDATE records SET lease_until = ?3 WHERE {IN_ORG} AND id = ?2"),
                params![org, id, to_micros(until)],
            )?;
            Ok(())
        })
        .await
    }

    async fn archive_record(
        &self,
        scope: &OrgScope,
        id: &str,
        from: RecordState,
        next_due_at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        self.mutate_if(audit, move |tx| {
            Ok(tx.execute(
                &format!(
                    "UPDATE records SET state = 'archived', sealed = NULL, next_due_at = ?4,
                            lease_until = NULL
                     WHERE {IN_ORG} AND id = ?2 AND state = ?3"
                ),
                params![org, id, from.as_str(), to_micros(next_due_at)],
            )? == 1)
        })
        .await
    }

    async fn purge_records(
        &self,
        scope: &OrgScope,
        purges: &[Purge],
        event: &AuditEvent,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let org = scope.org_id().to_string();
        let purges = purges.to_vec();
        let event = AuditColumns::of(event);
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let mut kept = Vec::new();
            let audit_idx = crate::audit_sqlite::log_size(&tx)? as i64;
            {
                let mut delete = tx.prepare_cached(&format!(
                    "DELETE FROM records WHERE {IN_ORG} AND id = ?2 AND state = ?3"
                ))?;
                let mut log = tx.prepare_cached(
                    "INSERT INTO deletion_log
                         (org_id, record_id, category, created_at, due_at, purged_at, reason,
                          audit_idx)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for p in &purges {
                    let e = &p.entry;
                    if delete.execute(params![org, e.record_id, p.from.as_str()])? == 1 {
                        kept.push(e.record_id.clone());
                        log.execute(params![
                            org,
                            e.record_id,
                            e.category,
                            to_micros(e.created_at),
                            to_micros(e.due_at),
                            to_micros(e.purged_at),
                            e.reason,
                            audit_idx
                        ])?;
                    }
                }
            }
            if kept.len() < purges.len() {
                // Dropping the transaction rolls it back: the event describes every record
                // of the batch, so a partial batch is retried with a new event.
                return Ok(Some(kept));
            }
            append_audit(&tx, std::slice::from_ref(&event))?;
            tx.commit()?;
            Ok(None)
        })
        .await
    }

    async fn request_termination(
        &self,
        scope: &OrgScope,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let org = scope.org_id().to_string();
        self.mutate_if(audit, move |tx| {
            let started = tx.execute(
                "UPDATE orgs SET terminate_requested_at = ?2
                 WHERE id = ?1 AND terminate_requested_at IS NULL",
                params![org, to_micros(at)],
            )? == 1;
            if started {
                tx.execute("DELETE FROM members WHERE org_id = ?1", [&org])?;
                tx.execute(
                    &format!(
                        "UPDATE records SET next_due_at = ?2, lease_until = NULL WHERE {IN_ORG}"
                    ),
                    params![org, to_micros(at)],
                )?;
            }
            Ok(started)
        })
        .await
    }

    async fn finish_termination(
        &self,
        scope: &OrgScope,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let org = scope.org_id().to_string();
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let requested: Option<i64> = tx.query_row(
                "SELECT terminate_requested_at FROM orgs WHERE id = ?1 AND terminated_at IS NULL",
                [&org],
                |r| r.get(0),
            ).optional()?.flatten();
            let Some(requested) = requested else {
                return Ok(false);
            };
            // A record written while the termination started (a member's request already
            // past authentication) is made due like the rest, and purged next pass.
            tx.execute(
                &format!(
                    "UPDATE records SET next_due_at = ?2
                     WHERE {IN_ORG} AND (next_due_at IS NULL OR next_due_at > ?2)"
                ),
                params![org, requested],
            )?;
            let left: bool = tx.query_row(
                &format!("SELECT EXISTS (SELECT 1 FROM records WHERE {IN_ORG})"),
                [&org],
                |r| r.get(0),
            )?;
            if left {
                // Committed: the stragglers stay due, for the next pass.
                tx.commit()?;
                return Ok(false);
            }
            for table in TERMINATED_ORG_TABLES {
                tx.execute(&format!("DELETE FROM {table} WHERE org_id = ?1"), [&org])?;
            }
            tx.execute(
                "UPDATE orgs SET terminated_at = ?2 WHERE id = ?1",
                params![org, to_micros(at)],
            )?;
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn open_archive_window(
        &self,
        scope: &OrgScope,
        id: &str,
        until: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        self.mutate_if(audit, move |tx| {
            Ok(tx.execute(
                &format!(
                    "UPDATE records SET readable_until = ?3
                     WHERE {IN_ORG} AND id = ?2 AND state = 'archived'"
                ),
                params![org, id, to_micros(until)],
            )? == 1)
        })
        .await
    }

    async fn archive_window(
        &self,
        scope: &OrgScope,
        id: &str,
    ) -> Result<Option<jiff::Timestamp>, StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        self.read(move |c| {
            let until: Option<i64> = c
                .prepare_cached(&format!(
                    "SELECT readable_until FROM records
                     WHERE {IN_ORG} AND id = ?2 AND state = 'archived'"
                ))?
                .query_row(params![org, id], |r| r.get(0))
                .optional()?
                .flatten();
            opt_time(until)
        })
        .await
    }

    async fn forget_deleted(&self) -> Result<(), StoreError> {
        self.write(|c| {
            // (busy, frames in WAL, frames checkpointed); busy means a reader or the
            // checkpointer thread held part of the WAL. Retry briefly; if it stays busy, the
            // next sweep truncates (the pages themselves were already zeroed).
            // Short sleeps: the usual blocker is the checkpointer thread's own pass, which
            // ends within milliseconds.
            for _ in 0..500 {
                let busy: i64 = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
                if busy == 0 {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            tracing::warn!(
                "WAL truncation stayed blocked by readers; retrying after the next purge"
            );
            Ok(())
        })
        .await
    }

    async fn deletion_log(
        &self,
        scope: &OrgScope,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeletionEntry>, StoreError> {
        let org = scope.org_id().to_string();
        let after = after.unwrap_or("").to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT record_id, category, created_at, due_at, purged_at, reason, audit_idx
                 FROM deletion_log WHERE org_id = ?1 AND record_id > ?2
                 ORDER BY record_id LIMIT ?3",
            )?;
            let mut rows = stmt.query(params![org, after, limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(DeletionEntry {
                    record_id: r.get(0)?,
                    category: r.get(1)?,
                    created_at: from_micros(r.get(2)?)?,
                    due_at: from_micros(r.get(3)?)?,
                    purged_at: from_micros(r.get(4)?)?,
                    reason: r.get(5)?,
                    audit_index: r.get::<_, Option<i64>>(6)?.map(|i| i as u64),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn pending_recomputes(&self) -> Result<Vec<PendingRecompute>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT org_id, category, after_id FROM due_recompute ORDER BY org_id, category",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(PendingRecompute {
                    scope: OrgScope::new(r.get(0)?),
                    category: r.get(1)?,
                    after: r.get(2)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn apply_recompute(
        &self,
        scope: &OrgScope,
        category: &str,
        updates: &[DueUpdate],
        next_after: Option<&str>,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, cat) = (scope.org_id().to_string(), category.to_string());
        let (updates, next_after) = (updates.to_vec(), next_after.map(str::to_string));
        let audit = if next_after.is_none() { audit } else { &[] };
        self.mutate(audit, move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "UPDATE records SET archive_at = ?4, expire_at = ?5, next_due_at = ?6
                 WHERE {IN_ORG} AND id = ?2 AND state = ?3"
            ))?;
            for u in &updates {
                stmt.execute(params![
                    org,
                    u.id,
                    u.state.as_str(),
                    u.archive_at.map(to_micros),
                    to_micros(u.expire_at),
                    to_micros(u.next_due_at)
                ])?;
            }
            match &next_after {
                Some(after) => tx.execute(
                    "UPDATE due_recompute SET after_id = ?3 WHERE org_id = ?1 AND category = ?2",
                    params![org, cat, after],
                )?,
                None => tx.execute(
                    "DELETE FROM due_recompute WHERE org_id = ?1 AND category = ?2",
                    params![org, cat],
                )?,
            };
            Ok(())
        })
        .await
    }

    async fn set_retention_override(
        &self,
        scope: &OrgScope,
        category: &str,
        retention: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, cat, ret) = (
            scope.org_id().to_string(),
            category.to_string(),
            retention.to_string(),
        );
        self.mutate(audit, move |tx| {
            tx.execute(
                "INSERT INTO retention_overrides (org_id, category, retention) VALUES (?1, ?2, ?3)
                 ON CONFLICT (org_id, category) DO UPDATE SET retention = excluded.retention",
                params![org, cat, ret],
            )?;
            // Start over: records already done used the previous override.
            tx.execute(
                "INSERT INTO due_recompute (org_id, category, after_id) VALUES (?1, ?2, '')
                 ON CONFLICT (org_id, category) DO UPDATE SET after_id = ''",
                params![org, cat],
            )?;
            Ok(())
        })
        .await
    }

    async fn retention_overrides(
        &self,
        scope: &OrgScope,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let org = scope.org_id().to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT category, retention FROM retention_overrides WHERE org_id = ?1
                 ORDER BY category",
            )?;
            let rows = stmt.query_map([&org], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn create_hold(
        &self,
        scope: &OrgScope,
        hold: &Hold,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, h) = (scope.org_id().to_string(), hold.clone());
        self.mutate(audit, move |tx| {
            tx.execute(
                "INSERT INTO holds (org_id, id, reason, subject_ref, category, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    org,
                    h.id,
                    h.reason,
                    h.subject_ref,
                    h.category,
                    to_micros(h.created_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn release_hold(
        &self,
        scope: &OrgScope,
        id: &str,
        released_at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(
                "UPDATE holds SET released_at = ?3
                 WHERE org_id = ?1 AND id = ?2 AND released_at IS NULL",
                params![org, id, to_micros(released_at)],
            )?;
            if n == 0 {
                return Ok(false);
            }
            // Records the sweeper set aside while held are due again at once, not after
            // their recheck lease (a held record is only ever deferred, never in process).
            tx.execute(
                &format!(
                    "UPDATE records SET lease_until = NULL
                     WHERE {IN_ORG} AND lease_until IS NOT NULL
                       AND EXISTS (SELECT 1 FROM holds h WHERE h.org_id = ?1 AND h.id = ?2
                           AND (h.subject_ref IS NULL OR h.subject_ref = records.subject_ref)
                           AND (h.category IS NULL OR h.category = records.category))"
                ),
                params![org, id],
            )?;
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn holds(&self, scope: &OrgScope) -> Result<Vec<Hold>, StoreError> {
        let org = scope.org_id().to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, reason, subject_ref, category, created_at FROM holds
                 WHERE org_id = ?1 AND released_at IS NULL ORDER BY created_at, id",
            )?;
            let mut rows = stmt.query([&org])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(Hold {
                    id: r.get(0)?,
                    reason: r.get(1)?,
                    subject_ref: r.get(2)?,
                    category: r.get(3)?,
                    created_at: from_micros(r.get(4)?)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn append_audit(&self, audit: &[AuditEvent]) -> Result<(), StoreError> {
        self.mutate(audit, |_| Ok(())).await
    }

    async fn audit_query(
        &self,
        scope: Option<&OrgScope>,
        filter: &AuditFilter,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut sql = String::from("SELECT idx, leaf FROM audit_log WHERE idx >= ?");
        let mut args: Vec<Value> = vec![Value::Integer(from as i64)];
        let mut text = |column: &str, v: &Option<String>, sql: &mut String| {
            if let Some(v) = v {
                sql.push_str(&format!(" AND {column} = ?"));
                args.push(Value::Text(v.clone()));
            }
        };
        text("org_id", &scope.map(|s| s.org_id().to_string()), &mut sql);
        text("actor", &filter.actor, &mut sql);
        text("action", &filter.action, &mut sql);
        text("target", &filter.target, &mut sql);
        if let Some(t) = filter.since {
            sql.push_str(" AND time >= ?");
            args.push(Value::Integer(to_micros(t)));
        }
        if let Some(t) = filter.until {
            sql.push_str(" AND time < ?");
            args.push(Value::Integer(to_micros(t)));
        }
        sql.push_str(" ORDER BY idx LIMIT ?");
        args.push(Value::Integer(limit as i64));
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(AuditEntry {
                    index: r.get::<_, i64>(0)? as u64,
                    leaf: r.get(1)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn audit_entries(
        &self,
        scope: Option<&OrgScope>,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let org = scope.map(|s| s.org_id().to_string());
        self.read(move |c| {
            let mut out = Vec::new();
            let mut push = |r: &rusqlite::Row<'_>| -> Result<(), StoreError> {
                out.push(AuditEntry {
                    index: r.get::<_, i64>(0)? as u64,
                    leaf: r.get(1)?,
                });
                Ok(())
            };
            match &org {
                Some(org) => {
                    let mut stmt = c.prepare_cached(
                        "SELECT idx, leaf FROM audit_log WHERE org_id = ?1 AND idx >= ?2
                         ORDER BY idx LIMIT ?3",
                    )?;
                    let mut rows = stmt.query(params![org, from as i64, limit])?;
                    while let Some(r) = rows.next()? {
                        push(r)?;
                    }
                }
                None => {
                    let mut stmt = c.prepare_cached(
                        "SELECT idx, leaf FROM audit_log WHERE idx >= ?1 ORDER BY idx LIMIT ?2",
                    )?;
                    let mut rows = stmt.query(params![from as i64, limit])?;
                    while let Some(r) = rows.next()? {
                        push(r)?;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn audit_size(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 =
                c.query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_log", [], |r| {
                    r.get(0)
                })?;
            Ok(n as u64)
        })
        .await
    }

    async fn audit_rows(&self, from: u64, limit: u32) -> Result<Vec<crate::AuditRow>, StoreError> {
        self.read(move |c| crate::audit_sqlite::rows(c, from, limit))
            .await
    }

    async fn audit_root(&self, size: u64) -> Result<custos_audit::Hash, StoreError> {
        self.read(move |c| crate::audit_sqlite::root(c, size)).await
    }

    async fn audit_inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<custos_audit::InclusionProof, StoreError> {
        self.read(move |c| crate::audit_sqlite::inclusion(c, index, size))
            .await
    }

    async fn audit_consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<custos_audit::ConsistencyProof, StoreError> {
        self.read(move |c| crate::audit_sqlite::consistency(c, old_size, new_size))
            .await
    }

    async fn add_audit_checkpoint(
        &self,
        checkpoint: &crate::StoredCheckpoint,
    ) -> Result<crate::StoredCheckpoint, StoreError> {
        let cp = checkpoint.clone();
        self.write(move |c| crate::audit_sqlite::add_checkpoint(c, &cp))
            .await
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<crate::StoredCheckpoint>, StoreError> {
        self.read(crate::audit_sqlite::latest_checkpoint).await
    }

    async fn audit_checkpoints(
        &self,
        from_size: u64,
        limit: u32,
    ) -> Result<Vec<crate::StoredCheckpoint>, StoreError> {
        self.read(move |c| crate::audit_sqlite::checkpoints(c, from_size, limit))
            .await
    }

    async fn insert_records_with_tokens(
        &self,
        scope: &OrgScope,
        records: &[RecordRow],
        tokens: &crate::TokenBatch,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, records, tokens) = (scope.org_id().to_string(), records.to_vec(), tokens.clone());
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            // Returning early drops the transaction: rolled back, nothing appended.
            if !crate::tokens_sqlite::write(&tx, &org, &tokens)? {
                return Ok(false);
            }
            insert_record_rows(&tx, &org, &records)?;
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn resolve_pii_tokens(
        &self,
        scope: &OrgScope,
        lookups: &[String],
        entities: &[String],
    ) -> Result<crate::TokenResolution, StoreError> {
        let (org, lookups, entities) = (
            scope.org_id().to_string(),
            lookups.to_vec(),
            entities.to_vec(),
        );
        self.read(move |c| crate::tokens_sqlite::resolve(c, &org, &lookups, &entities))
            .await
    }

    async fn pii_tokens(
        &self,
        scope: &OrgScope,
        tokens: &[String],
    ) -> Result<Vec<crate::PiiToken>, StoreError> {
        let (org, tokens) = (scope.org_id().to_string(), tokens.to_vec());
        self.read(move |c| crate::tokens_sqlite::fetch(c, &org, &tokens))
            .await
    }

    async fn set_org_region(
        &self,
        scope: &OrgScope,
        region: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, region) = (scope.org_id().to_string(), region.to_string());
        self.mutate(audit, move |tx| {
            tx.execute(
                "UPDATE orgs SET region = ?2 WHERE id = ?1",
                params![org, region],
            )?;
            Ok(())
        })
        .await
    }

    async fn export_org(&self, scope: &OrgScope) -> Result<crate::OrgRows, StoreError> {
        let scope = scope.clone();
        // One read transaction: a consistent copy even while the org is written to.
        self.read(move |c| {
            c.execute_batch("BEGIN")?;
            let out = crate::org_rows::sqlite_export(c, &scope);
            c.execute_batch("COMMIT")?;
            out
        })
        .await
    }

    async fn import_org(
        &self,
        rows: &crate::OrgRows,
        region: &str,
        audit: &[AuditEvent],
    ) -> Result<OrgScope, StoreError> {
        let (rows, region) = (rows.clone(), region.to_string());
        self.mutate(audit, move |tx| {
            crate::org_rows::sqlite_import(tx, &rows, &region)
        })
        .await
    }

    async fn drop_org(
        &self,
        scope: &OrgScope,
        expect: Option<&crate::OrgRows>,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (scope, expect) = (scope.clone(), expect.cloned());
        // One write transaction: nothing can be written between the check and the delete.
        self.mutate(audit, move |tx| {
            if let Some(expect) = &expect {
                if crate::org_rows::sqlite_export(tx, &scope)? != *expect {
                    return Err(StoreError::Conflict(
                        "the org changed while it was being moved".into(),
                    ));
                }
            }
            crate::org_rows::sqlite_delete(tx, scope.org_id())
        })
        .await
    }

    async fn claim_org_move(
        &self,
        org_id: &str,
        holder: &str,
        now: jiff::Timestamp,
        lease_until: jiff::Timestamp,
    ) -> Result<bool, StoreError> {
        let (org, holder) = (org_id.to_string(), holder.to_string());
        self.mutate_if(&[], move |tx| {
            Ok(tx.execute(
                "INSERT INTO org_moves (org_id, holder, lease_until) VALUES (?1, ?2, ?4)
                 ON CONFLICT (org_id) DO UPDATE
                 SET holder = excluded.holder, lease_until = excluded.lease_until
                 WHERE org_moves.lease_until <= ?3 OR org_moves.holder = excluded.holder",
                params![org, holder, to_micros(now), to_micros(lease_until)],
            )? == 1)
        })
        .await
    }

    async fn release_org_move(&self, org_id: &str, holder: &str) -> Result<(), StoreError> {
        let (org, holder) = (org_id.to_string(), holder.to_string());
        self.mutate(&[], move |tx| {
            tx.execute(
                "DELETE FROM org_moves WHERE org_id = ?1 AND holder = ?2",
                [&org, &holder],
            )?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
