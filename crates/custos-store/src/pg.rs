//! The scale-out backend: PostgreSQL through sqlx. Several Custos instances can share one
//! database: migrations take an advisory lock, and audit appends serialize on one counter row
//! so the log stays gap-free and totally ordered.

use custos_audit::AuditEvent;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::migrations::{AppliedStep, Backend, StepStatus};
use crate::model::*;
use crate::schema::{ORG_COLUMNS, RECORD_COLUMNS, TERMINATED_ORG_TABLES};

mod audit;
pub(crate) mod audit_log;
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

/// An arbitrary constant that names Custos's migration lock among advisory locks.
const MIGRATION_LOCK: i64 = 0x0C05_7050;

/// [`Store`] on PostgreSQL.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgStore")
    }
}

impl PgStore {
    /// Connects to `url` and migrates; with `schema`, everything lives in that schema (created
    /// if missing), which is how tests and co-hosted deployments stay apart.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        let store = PgStore {
            pool: pool(url, schema, 16).await?,
        };
        store.migrate().await?;
        crate::pg::audit_log::rebuild_if_needed(&store.pool).await?;
        Ok(store)
    }

    /// Drops a schema created by [`PgStore::connect`] (test clean-up).
    pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&pool)
            .await?;
        pool.close().await;
        Ok(())
    }

    /// Runs the pending steps of `migrations/postgres/` in one transaction under an advisory
    /// lock (instances starting together migrate once), each with its ledger row. The old
    /// counter table `custos_migrations` keeps one row per version, so a binary from before
    /// the ledger (which counted those rows) refuses a database it does not know.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        let applied = ledger(&mut tx, true).await?;
        let pending = crate::migrations::pending(Backend::Postgres, &applied)?;
        for step in pending {
            sqlx::raw_sql(step.sql).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO custos_schema_steps (version, name, checksum, applied_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(step.version as i32)
            .bind(step.name)
            .bind(step.checksum())
            .bind(Some(now_micros()))
            .execute(&mut *tx)
            .await?;
        }
        if let Some(last) = pending.last() {
            sqlx::query(
                "INSERT INTO custos_migrations (version) SELECT generate_series(1, $1)
                 ON CONFLICT DO NOTHING",
            )
            .bind(last.version as i32)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The migration state of the database at `url` (in `schema`, if given), without changing
    /// it (`custos migrate status`).
    pub async fn migration_status(
        url: &str,
        schema: Option<&str>,
    ) -> Result<Vec<StepStatus>, StoreError> {
        let pool = pool(url, schema, 1).await?;
        let mut conn = pool.acquire().await?;
        let applied = ledger(&mut conn, false).await?;
        drop(conn);
        pool.close().await;
        crate::migrations::status(Backend::Postgres, &applied)
    }

    /// Runs raw SQL: for tests that break the database on purpose.
    #[doc(hidden)]
    pub async fn execute_raw_for_tests(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(sql).execute(&self.pool).await?;
        Ok(())
    }
}

/// A pool of up to `max` connections to `url`; with `schema`, every connection works in that
/// schema (created if missing).
async fn pool(url: &str, schema: Option<&str>, max: u32) -> Result<PgPool, StoreError> {
    let mut options: PgConnectOptions = url
        .parse()
        .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
    if let Some(schema) = schema {
        if !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(StoreError::Config(format!(
                "schema name {schema:?} must be ASCII letters, digits and '_'"
            )));
        }
        let bootstrap = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .execute(&bootstrap)
            .await?;
        bootstrap.close().await;
        options = options.options([("search_path", schema)]);
    }
    Ok(PgPoolOptions::new()
        .max_connections(max)
        .connect_with(options)
        .await?)
}

/// The steps the database recorded. A database from before the ledger is adopted from the
/// row count of its `custos_migrations` table (written to the ledger when `write`, else only
/// returned).
async fn ledger(
    conn: &mut sqlx::PgConnection,
    write: bool,
) -> Result<Vec<AppliedStep>, StoreError> {
    let exists = |table: &'static str| {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables
                            WHERE table_name = $1 AND table_schema = current_schema())",
        )
        .bind(table)
    };
    if exists("custos_schema_steps").fetch_one(&mut *conn).await? {
        let rows = sqlx::query(
            "SELECT version, name, checksum, applied_at FROM custos_schema_steps ORDER BY version",
        )
        .fetch_all(&mut *conn)
        .await?;
        let applied = rows
            .iter()
            .map(|r| {
                Ok(AppliedStep {
                    version: r.try_get::<i32, _>(0)? as u32,
                    name: r.try_get(1)?,
                    checksum: r.try_get(2)?,
                    applied_at: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if !applied.is_empty() {
            return Ok(applied);
        }
    }
    let legacy: i64 = if exists("custos_migrations").fetch_one(&mut *conn).await? {
        sqlx::query_scalar("SELECT COUNT(*) FROM custos_migrations")
            .fetch_one(&mut *conn)
            .await?
    } else {
        0
    };
    let known = Backend::Postgres.steps().len() as i64;
    // Before the ledger, PostgreSQL knew two steps fewer than SQLite (see `adopted_version`).
    if legacy > known - 2 {
        return Err(StoreError::Config(format!(
            "the database schema counts {legacy} steps in custos_migrations, more than this \
             binary knows; upgrade Custos"
        )));
    }
    let adopted = crate::migrations::adopted(
        Backend::Postgres,
        Backend::Postgres.adopted_version(legacy as u32),
    );
    if write {
        sqlx::raw_sql(crate::migrations::LEDGER)
            .execute(&mut *conn)
            .await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS custos_migrations (version INT PRIMARY KEY)")
            .execute(&mut *conn)
            .await?;
        for a in &adopted {
            sqlx::query(
                "INSERT INTO custos_schema_steps (version, name, checksum, applied_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(a.version as i32)
            .bind(&a.name)
            .bind(&a.checksum)
            .bind(a.applied_at)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(adopted)
}

fn now_micros() -> i64 {
    to_micros(jiff::Timestamp::now())
}

impl PgStore {
    /// Runs `delete` (one `$1` time parameter) and, when it deleted any row, appends `audit`
    /// in the same transaction; how many rows.
    pub(crate) async fn delete_audited(
        &self,
        delete: &'static str,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(delete)
            .bind(to_micros(at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            commit_with(tx, audit).await?;
        }
        Ok(n)
    }
}

/// Appends `audit` and commits: how mutations commit, so none lands without its events.
/// The exceptions: migrations; a purge, which appends first because its deletion-log rows
/// name its event's index; and the bookkeeping commits of an unfinished recomputation page
/// or of a termination found incomplete, which only move due times and leave the event to
/// the step that completes.
pub(crate) async fn commit_with(
    mut tx: Transaction<'_, Postgres>,
    audit: &[AuditEvent],
) -> Result<(), StoreError> {
    append_audit(&mut tx, audit).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn append_audit(
    tx: &mut Transaction<'_, Postgres>,
    audit: &[AuditEvent],
) -> Result<u64, StoreError> {
    if audit.is_empty() {
        return Ok(0);
    }
    let cols: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
    // The counter row lock serializes appenders across instances: indexes are gap-free and
    // follow commit order of this row.
    let end: i64 = sqlx::query_scalar("UPDATE audit_head SET size = size + $1 RETURNING size")
        .bind(cols.len() as i64)
        .fetch_one(&mut **tx)
        .await?;
    let start = end - cols.len() as i64;
    let idx: Vec<i64> = (start..end).collect();
    // Under that lock, the tree nodes committed so far are the whole tree of size `start`.
    let leaves: Vec<&[u8]> = cols.iter().map(|c| c.leaf.as_slice()).collect();
    let leaf_hashes = crate::pg::audit_log::extend_tree(tx, start as u64, &leaves).await?;
    sqlx::query(
        "INSERT INTO audit_log (idx, org_id, time, actor, action, target, outcome, leaf, leaf_hash)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::bytea[], $9::bytea[])",
    )
    .bind(idx)
    .bind(cols.iter().map(|c| c.org.clone()).collect::<Vec<_>>())
    .bind(cols.iter().map(|c| c.time).collect::<Vec<_>>())
    .bind(cols.iter().map(|c| c.actor.clone()).collect::<Vec<_>>())
    .bind(cols.iter().map(|c| c.action.clone()).collect::<Vec<_>>())
    .bind(cols.iter().map(|c| c.target.clone()).collect::<Vec<_>>())
    .bind(cols.iter().map(|c| c.outcome.clone()).collect::<Vec<_>>())
    .bind(cols.into_iter().map(|c| c.leaf).collect::<Vec<_>>())
    .bind(leaf_hashes)
    .execute(&mut **tx)
    .await?;
    Ok(start as u64)
}

fn opt_time(us: Option<i64>) -> Result<Option<jiff::Timestamp>, StoreError> {
    us.map(from_micros).transpose()
}

fn record_from_row(row: &PgRow) -> Result<RecordRow, StoreError> {
    let state: String = row.try_get(3)?;
    let pii: String = row.try_get(12)?;
    let blob_size: Option<i64> = row.try_get(11)?;
    Ok(RecordRow {
        id: row.try_get(0)?,
        category: row.try_get(1)?,
        subject_ref: row.try_get(2)?,
        state: RecordState::parse(&state)?,
        created_at: from_micros(row.try_get(4)?)?,
        archive_at: opt_time(row.try_get(5)?)?,
        expire_at: from_micros(row.try_get(6)?)?,
        deleted_at: opt_time(row.try_get(7)?)?,
        next_due_at: opt_time(row.try_get(8)?)?,
        key_ref: row.try_get(9)?,
        sealed: row.try_get(10)?,
        blob_size: blob_size.map(|n| n as u64),
        pii: serde_json::from_str(&pii).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

/// A row of `SELECT {RECORD_COLUMNS}, org_id`.
fn due_from_row(row: &PgRow) -> Result<DueRecord, StoreError> {
    Ok(DueRecord {
        scope: OrgScope::new(row.try_get(13)?),
        row: record_from_row(row)?,
    })
}

pub(crate) fn member_from_row(row: &PgRow) -> Result<Member, StoreError> {
    let roles: String = row.try_get(2)?;
    let groups: String = row.try_get(3)?;
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
    Ok(Member {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        roles: serde_json::from_str(&roles).map_err(corrupt)?,
        groups: serde_json::from_str(&groups).map_err(corrupt)?,
        mfa: row.try_get(4)?,
        created_at: from_micros(row.try_get(5)?)?,
        identity: crate::model::identity_of(row.try_get(6)?, row.try_get(7)?),
        last_used_at: opt_time(row.try_get(8)?)?,
        key_last_used_at: opt_time(row.try_get(9)?)?,
        disabled_at: opt_time(row.try_get(10)?)?,
    })
}

fn org_from_row(row: &PgRow) -> Result<Org, StoreError> {
    Ok(Org {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        region: row.try_get(2)?,
        created_at: from_micros(row.try_get(3)?)?,
        terminating_since: row
            .try_get::<Option<i64>, _>(4)?
            .map(from_micros)
            .transpose()?,
        terminated_at: row
            .try_get::<Option<i64>, _>(5)?
            .map(from_micros)
            .transpose()?,
        suspended_at: opt_time(row.try_get(6)?)?,
    })
}

/// Inserts `records` of `org` inside the caller's transaction.
async fn insert_record_rows(
    tx: &mut Transaction<'_, Postgres>,
    org: &str,
    records: &[RecordRow],
) -> Result<(), StoreError> {
    // One statement per batch: UNNEST turns column arrays into rows, which is far cheaper
    // than a round trip per record.
    sqlx::query(&format!(
        "INSERT INTO records (org_id, {RECORD_COLUMNS})
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[],
             $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[],
             $11::text[], $12::bytea[], $13::bigint[], $14::text[])"
    ))
    .bind(org)
    .bind(records.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
    .bind(
        records
            .iter()
            .map(|r| r.category.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        records
            .iter()
            .map(|r| r.subject_ref.clone())
            .collect::<Vec<_>>(),
    )
    .bind(records.iter().map(|r| r.state.as_str()).collect::<Vec<_>>())
    .bind(
        records
            .iter()
            .map(|r| to_micros(r.created_at))
            .collect::<Vec<_>>(),
    )
    .bind(
        records
            .iter()
            .map(|r| r.archive_at.map(to_micros))
            .collect::<Vec<_>>(),
    )
    .bind(
        records
            .iter()
            .map(|r| to_micros(r.expire_at))
            .collect::<Vec<_>>(),
    )
    .bind(
        records
            .iter()
            .map(|r| r.deleted_at.map(to_micros))
            .collect::<Vec<_>>(),
    )
    .bind(
        records
            .iter()
            .map(|r| r.next_due_at.map(to_micros))
            .collect::<Vec<_>>(),
    )
    .bind(
        records
            .iter()
            .map(|r| r.key_ref.clone())
            .collect::<Vec<_>>(),
    )
    .bind(records.iter().map(|r| r.sealed.clone()).collect::<Vec<_>>())
    .bind(
        records
            .iter()
            .map(|r| r.blob_size.map(|n| n as i64))
            .collect::<Vec<_>>(),
    )
    .bind(
        records
            .iter()
            .map(|r| r.pii.to_string())
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
