//! The scale-out backend: PostgreSQL through sqlx. Several Custos instances can share one
//! database: migrations take an advisory lock, and audit appends serialize on one counter row
//! so the log stays gap-free and totally ordered.

use custos_audit::AuditEvent;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::migrations::{AppliedStep, Backend, StepStatus};
use crate::model::*;
use crate::schema::{ORG_COLUMNS, RECORD_COLUMNS, TERMINATED_ORG_TABLES};
use crate::Store;

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
        crate::audit_pg::rebuild_if_needed(&store.pool).await?;
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
    let leaf_hashes = crate::audit_pg::extend_tree(tx, start as u64, &leaves).await?;
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

#[async_trait::async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn create_org(&self, org: &Org, audit: &[AuditEvent]) -> Result<OrgScope, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO orgs (id, name, region, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&org.id)
            .bind(&org.name)
            .bind(&org.region)
            .bind(to_micros(org.created_at))
            .execute(&mut *tx)
            .await?;
        commit_with(tx, audit).await?;
        Ok(OrgScope::new(org.id.clone()))
    }

    async fn org(&self, id: &str) -> Result<Option<(OrgScope, Org)>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let org = org_from_row(&r)?;
            Ok((OrgScope::new(org.id.clone()), org))
        })
        .transpose()
    }

    async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(org_from_row)
        .collect()
    }

    async fn add_member(
        &self,
        scope: &OrgScope,
        member: &Member,
        key_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO members (org_id, id, name, roles, groups_json, mfa, key_hash, created_at,
                                  identity_iss, identity_sub)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(scope.org_id())
        .bind(&member.id)
        .bind(&member.name)
        .bind(serde_json::to_string(&member.roles).expect("strings serialize"))
        .bind(serde_json::to_string(&member.groups).expect("strings serialize"))
        .bind(member.mfa)
        .bind(&key_hash[..])
        .bind(to_micros(member.created_at))
        .bind(member.identity.as_ref().map(|i| i.iss.clone()))
        .bind(member.identity.as_ref().map(|i| i.sub.clone()))
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await?;
        Ok(())
    }

    async fn member_by_key_hash(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<(OrgScope, Member)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {}, org_id FROM members WHERE key_hash = $1",
            crate::members::MEMBER_COLUMNS
        ))
        .bind(&key_hash[..])
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((OrgScope::new(r.try_get(8)?), member_from_row(&r)?)))
            .transpose()
    }

    async fn insert_records(
        &self,
        scope: &OrgScope,
        records: &[RecordRow],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_record_rows(&mut tx, scope.org_id(), records).await?;
        commit_with(tx, audit).await?;
        Ok(())
    }

    async fn insert_record_stream(
        &self,
        scope: &OrgScope,
        mut chunks: crate::RecordChunks,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        // One statement per chunk as it arrives, so the server inserts while the caller
        // seals the next one; the audit append (and its lock on the log head) comes last,
        // as in `insert_records`. Returning early drops the transaction: rolled back.
        let mut tx = self.pool.begin().await?;
        let mut received = 0;
        while let Some(rows) = chunks.next().await {
            insert_record_rows(&mut tx, scope.org_id(), &rows).await?;
            received += rows.len();
        }
        chunks.check_complete(received)?;
        commit_with(tx, audit).await?;
        Ok(())
    }

    async fn record(&self, scope: &OrgScope, id: &str) -> Result<Option<RecordRow>, StoreError> {
        sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE org_id = $1 AND id = $2"
        ))
        .bind(scope.org_id())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(record_from_row)
        .transpose()
    }

    async fn list_records(
        &self,
        scope: &OrgScope,
        filter: &RecordFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RecordRow>, StoreError> {
        let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
        sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE org_id = $1
               AND ($2::text IS NULL OR subject_ref = $2)
               AND ($3::text IS NULL OR category = $3)
               AND (cardinality($4::text[]) = 0 OR state = ANY($4))
               AND ($5::text IS NULL OR id > $5)
             ORDER BY id LIMIT $6"
        ))
        .bind(scope.org_id())
        .bind(&filter.subject_ref)
        .bind(&filter.category)
        .bind(states)
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(record_from_row)
        .collect()
    }

    async fn transition_record(
        &self,
        scope: &OrgScope,
        change: &StateChange,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE records SET state = $4, deleted_at = $5, next_due_at = $6, lease_until = NULL
             WHERE org_id = $1 AND id = $2 AND state = $3",
        )
        .bind(scope.org_id())
        .bind(&change.id)
        .bind(change.from.as_str())
        .bind(change.to.as_str())
        .bind(change.deleted_at.map(to_micros))
        .bind(change.next_due_at.map(to_micros))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn claim_due(
        &self,
        now: jiff::Timestamp,
        lease_until: jiff::Timestamp,
        limit: u32,
    ) -> Result<Vec<DueRecord>, StoreError> {
        // SKIP LOCKED: concurrent sweepers on other instances each take different rows
        // instead of queueing behind one another's claims.
        let rows = sqlx::query(&format!(
            "WITH due AS (
                 SELECT org_id, id FROM records
                 WHERE next_due_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
                 ORDER BY next_due_at LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             UPDATE records r SET lease_until = $2 FROM due
             WHERE r.org_id = due.org_id AND r.id = due.id
             RETURNING {}, r.org_id",
            RECORD_COLUMNS
                .split(", ")
                .map(|c| match c {
                    // Not returned: see `Store::claim_due`.
                    "sealed" => "NULL::bytea".to_string(),
                    c => format!("r.{c}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(to_micros(now))
        .bind(to_micros(lease_until))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut due: Vec<DueRecord> = rows.iter().map(due_from_row).collect::<Result<_, _>>()?;
        due.sort_by_key(|d| d.row.next_due_at);
        Ok(due)
    }

    async fn peek_due(
        &self,
        as_of: jiff::Timestamp,
        after: Option<&DueCursor>,
        limit: u32,
    ) -> Result<Vec<DueRecord>, StoreError> {
        let (due, org, id) = match after {
            Some(a) => (to_micros(a.due_at), a.org.clone(), a.id.clone()),
            None => (i64::MIN, String::new(), String::new()),
        };
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS}, org_id FROM records
             WHERE next_due_at <= $1 AND (next_due_at, org_id, id) > ($2, $3, $4)
             ORDER BY next_due_at, org_id, id LIMIT $5"
        ))
        .bind(to_micros(as_of))
        .bind(due)
        .bind(org)
        .bind(id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(due_from_row).collect()
    }

    async fn request_purges(
        &self,
        scope: &OrgScope,
        targets: &[(String, RecordState)],
        cause: PurgeCause,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE records r SET state = $5, deleted_at = $4, next_due_at = $4,
                    lease_until = NULL
             FROM UNNEST($2::text[], $3::text[]) AS t(id, state)
             WHERE r.org_id = $1 AND r.id = t.id AND r.state = t.state",
        )
        .bind(scope.org_id())
        .bind(targets.iter().map(|t| t.0.clone()).collect::<Vec<_>>())
        .bind(targets.iter().map(|t| t.1.as_str()).collect::<Vec<_>>())
        .bind(to_micros(at))
        .bind(cause.state().as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        commit_with(tx, audit).await?;
        Ok(n)
    }

    async fn defer_record(
        &self,
        scope: &OrgScope,
        id: &str,
        until: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE records SET lease_until = $3 WHERE org_id = $1 AND id = $2")
            .bind(scope.org_id())
            .bind(id)
            .bind(to_micros(until))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn archive_record(
        &self,
        scope: &OrgScope,
        id: &str,
        from: RecordState,
        next_due_at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE records SET state = 'archived', sealed = NULL, next_due_at = $4,
                    lease_until = NULL
             WHERE org_id = $1 AND id = $2 AND state = $3",
        )
        .bind(scope.org_id())
        .bind(id)
        .bind(from.as_str())
        .bind(to_micros(next_due_at))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn purge_records(
        &self,
        scope: &OrgScope,
        purges: &[Purge],
        event: &AuditEvent,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<&str> = purges.iter().map(|p| p.entry.record_id.as_str()).collect();
        let states: Vec<&str> = purges.iter().map(|p| p.from.as_str()).collect();
        let deleted: std::collections::HashSet<String> = sqlx::query_scalar(
            "DELETE FROM records r USING UNNEST($2::text[], $3::text[]) AS d(id, state)
             WHERE r.org_id = $1 AND r.id = d.id AND r.state = d.state
             RETURNING r.id",
        )
        .bind(scope.org_id())
        .bind(&ids)
        .bind(&states)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        if deleted.len() < purges.len() {
            // Rolled back on drop: the event describes the whole batch, so the caller
            // retries the records still purgeable under a new one.
            return Ok(Some(
                ids.iter()
                    .filter(|id| deleted.contains(**id))
                    .map(|id| id.to_string())
                    .collect(),
            ));
        }
        let audit_idx = append_audit(&mut tx, std::slice::from_ref(event)).await? as i64;
        let e = |f: fn(&DeletionEntry) -> i64| -> Vec<i64> {
            purges.iter().map(|p| f(&p.entry)).collect()
        };
        let text = |f: fn(&DeletionEntry) -> &str| -> Vec<&str> {
            purges.iter().map(|p| f(&p.entry)).collect()
        };
        sqlx::query(
            "INSERT INTO deletion_log
                 (org_id, record_id, category, created_at, due_at, purged_at, reason, audit_idx)
             SELECT $1, *, $8 FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::bigint[],
                                          $6::bigint[], $7::text[])",
        )
        .bind(scope.org_id())
        .bind(text(|x| &x.record_id))
        .bind(text(|x| &x.category))
        .bind(e(|x| to_micros(x.created_at)))
        .bind(e(|x| to_micros(x.due_at)))
        .bind(e(|x| to_micros(x.purged_at)))
        .bind(text(|x| &x.reason))
        .bind(audit_idx)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(None)
    }

    async fn request_termination(
        &self,
        scope: &OrgScope,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let started = sqlx::query(
            "UPDATE orgs SET terminate_requested_at = $2
             WHERE id = $1 AND terminate_requested_at IS NULL",
        )
        .bind(scope.org_id())
        .bind(to_micros(at))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !started {
            return Ok(false);
        }
        sqlx::query("DELETE FROM members WHERE org_id = $1")
            .bind(scope.org_id())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE records SET next_due_at = $2, lease_until = NULL WHERE org_id = $1")
            .bind(scope.org_id())
            .bind(to_micros(at))
            .execute(&mut *tx)
            .await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn finish_termination(
        &self,
        scope: &OrgScope,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The org row lock orders this against a concurrent finisher on another instance.
        let requested: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT terminate_requested_at FROM orgs
             WHERE id = $1 AND terminated_at IS NULL FOR UPDATE",
        )
        .bind(scope.org_id())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(Some(requested)) = requested else {
            return Ok(false);
        };
        // A record written while the termination started is made due like the rest.
        sqlx::query(
            "UPDATE records SET next_due_at = $2
             WHERE org_id = $1 AND (next_due_at IS NULL OR next_due_at > $2)",
        )
        .bind(scope.org_id())
        .bind(requested)
        .execute(&mut *tx)
        .await?;
        let left: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM records WHERE org_id = $1)")
                .bind(scope.org_id())
                .fetch_one(&mut *tx)
                .await?;
        if left {
            tx.commit().await?;
            return Ok(false);
        }
        for table in TERMINATED_ORG_TABLES {
            sqlx::query(&format!("DELETE FROM {table} WHERE org_id = $1"))
                .bind(scope.org_id())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE orgs SET terminated_at = $2 WHERE id = $1")
            .bind(scope.org_id())
            .bind(to_micros(at))
            .execute(&mut *tx)
            .await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn open_archive_window(
        &self,
        scope: &OrgScope,
        id: &str,
        until: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE records SET readable_until = $3
             WHERE org_id = $1 AND id = $2 AND state = 'archived'",
        )
        .bind(scope.org_id())
        .bind(id)
        .bind(to_micros(until))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn archive_window(
        &self,
        scope: &OrgScope,
        id: &str,
    ) -> Result<Option<jiff::Timestamp>, StoreError> {
        let until: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT readable_until FROM records
             WHERE org_id = $1 AND id = $2 AND state = 'archived'",
        )
        .bind(scope.org_id())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        until.flatten().map(from_micros).transpose()
    }

    async fn forget_deleted(&self) -> Result<(), StoreError> {
        // PostgreSQL reclaims dead tuples with (auto)vacuum; the content is ciphertext under
        // keys the key store erases, so nothing is forced here.
        Ok(())
    }

    async fn deletion_log(
        &self,
        scope: &OrgScope,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeletionEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT record_id, category, created_at, due_at, purged_at, reason, audit_idx
             FROM deletion_log WHERE org_id = $1 AND record_id > $2
             ORDER BY record_id LIMIT $3",
        )
        .bind(scope.org_id())
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeletionEntry {
                    record_id: r.try_get(0)?,
                    category: r.try_get(1)?,
                    created_at: from_micros(r.try_get(2)?)?,
                    due_at: from_micros(r.try_get(3)?)?,
                    purged_at: from_micros(r.try_get(4)?)?,
                    reason: r.try_get(5)?,
                    audit_index: r.try_get::<Option<i64>, _>(6)?.map(|i| i as u64),
                })
            })
            .collect()
    }

    async fn pending_recomputes(&self) -> Result<Vec<PendingRecompute>, StoreError> {
        let rows = sqlx::query(
            "SELECT org_id, category, after_id FROM due_recompute ORDER BY org_id, category",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingRecompute {
                    scope: OrgScope::new(r.try_get(0)?),
                    category: r.try_get(1)?,
                    after: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn apply_recompute(
        &self,
        scope: &OrgScope,
        category: &str,
        updates: &[DueUpdate],
        next_after: Option<&str>,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE records r SET archive_at = u.archive_at, expire_at = u.expire_at,
                    next_due_at = u.next_due_at
             FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
                  AS u(id, state, archive_at, expire_at, next_due_at)
             WHERE r.org_id = $1 AND r.id = u.id AND r.state = u.state",
        )
        .bind(scope.org_id())
        .bind(updates.iter().map(|u| u.id.clone()).collect::<Vec<_>>())
        .bind(updates.iter().map(|u| u.state.as_str()).collect::<Vec<_>>())
        .bind(
            updates
                .iter()
                .map(|u| u.archive_at.map(to_micros))
                .collect::<Vec<_>>(),
        )
        .bind(
            updates
                .iter()
                .map(|u| to_micros(u.expire_at))
                .collect::<Vec<_>>(),
        )
        .bind(
            updates
                .iter()
                .map(|u| to_micros(u.next_due_at))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
        match next_after {
            Some(after) => {
                sqlx::query(
                    "UPDATE due_recompute SET after_id = $3 WHERE org_id = $1 AND category = $2",
                )
                .bind(scope.org_id())
                .bind(category)
                .bind(after)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM due_recompute WHERE org_id = $1 AND category = $2")
                    .bind(scope.org_id())
                    .bind(category)
                    .execute(&mut *tx)
                    .await?;
                append_audit(&mut tx, audit).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_retention_override(
        &self,
        scope: &OrgScope,
        category: &str,
        retention: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO retention_overrides (org_id, category, retention) VALUES ($1, $2, $3)
             ON CONFLICT (org_id, category) DO UPDATE SET retention = EXCLUDED.retention",
        )
        .bind(scope.org_id())
        .bind(category)
        .bind(retention)
        .execute(&mut *tx)
        .await?;
        // Start over: records already done used the previous override.
        sqlx::query(
            "INSERT INTO due_recompute (org_id, category, after_id) VALUES ($1, $2, '')
             ON CONFLICT (org_id, category) DO UPDATE SET after_id = ''",
        )
        .bind(scope.org_id())
        .bind(category)
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await?;
        Ok(())
    }

    async fn retention_overrides(
        &self,
        scope: &OrgScope,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT category, retention FROM retention_overrides WHERE org_id = $1
             ORDER BY category",
        )
        .bind(scope.org_id())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn create_hold(
        &self,
        scope: &OrgScope,
        hold: &Hold,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO holds (org_id, id, reason, subject_ref, category, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(scope.org_id())
        .bind(&hold.id)
        .bind(&hold.reason)
        .bind(&hold.subject_ref)
        .bind(&hold.category)
        .bind(to_micros(hold.created_at))
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await?;
        Ok(())
    }

    async fn release_hold(
        &self,
        scope: &OrgScope,
        id: &str,
        released_at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE holds SET released_at = $3
             WHERE org_id = $1 AND id = $2 AND released_at IS NULL",
        )
        .bind(scope.org_id())
        .bind(id)
        .bind(to_micros(released_at))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        // Records the sweeper set aside while held are due again at once, not after their
        // recheck lease (a held record is only ever deferred, never in process).
        sqlx::query(
            "UPDATE records r SET lease_until = NULL
             FROM holds h
             WHERE r.org_id = $1 AND r.lease_until IS NOT NULL AND h.org_id = $1 AND h.id = $2
               AND (h.subject_ref IS NULL OR h.subject_ref = r.subject_ref)
               AND (h.category IS NULL OR h.category = r.category)",
        )
        .bind(scope.org_id())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn holds(&self, scope: &OrgScope) -> Result<Vec<Hold>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, reason, subject_ref, category, created_at FROM holds
             WHERE org_id = $1 AND released_at IS NULL ORDER BY created_at, id",
        )
        .bind(scope.org_id())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Hold {
                    id: r.try_get(0)?,
                    reason: r.try_get(1)?,
                    subject_ref: r.try_get(2)?,
                    category: r.try_get(3)?,
                    created_at: from_micros(r.try_get(4)?)?,
                })
            })
            .collect()
    }

    async fn append_audit(&self, audit: &[AuditEvent]) -> Result<(), StoreError> {
        commit_with(self.pool.begin().await?, audit).await
    }

    async fn audit_query(
        &self,
        scope: Option<&OrgScope>,
        filter: &AuditFilter,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, leaf FROM audit_log
             WHERE idx >= $1 AND ($2::text IS NULL OR org_id = $2)
               AND ($3::text IS NULL OR actor = $3) AND ($4::text IS NULL OR action = $4)
               AND ($5::text IS NULL OR target = $5) AND ($6::bigint IS NULL OR time >= $6)
               AND ($7::bigint IS NULL OR time < $7)
             ORDER BY idx LIMIT $8",
        )
        .bind(from as i64)
        .bind(scope.map(|s| s.org_id()))
        .bind(filter.actor.as_deref())
        .bind(filter.action.as_deref())
        .bind(filter.target.as_deref())
        .bind(filter.since.map(to_micros))
        .bind(filter.until.map(to_micros))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    index: r.try_get::<i64, _>(0)? as u64,
                    leaf: r.try_get(1)?,
                })
            })
            .collect()
    }

    async fn audit_entries(
        &self,
        scope: Option<&OrgScope>,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, leaf FROM audit_log
             WHERE ($1::text IS NULL OR org_id = $1) AND idx >= $2 ORDER BY idx LIMIT $3",
        )
        .bind(scope.map(|s| s.org_id()))
        .bind(from as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    index: r.try_get::<i64, _>(0)? as u64,
                    leaf: r.try_get(1)?,
                })
            })
            .collect()
    }

    async fn audit_size(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT size FROM audit_head")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn audit_rows(&self, from: u64, limit: u32) -> Result<Vec<crate::AuditRow>, StoreError> {
        crate::audit_pg::rows(&self.pool, from, limit).await
    }

    async fn audit_root(&self, size: u64) -> Result<custos_audit::Hash, StoreError> {
        crate::audit_pg::root(&self.pool, size).await
    }

    async fn audit_inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<custos_audit::InclusionProof, StoreError> {
        crate::audit_pg::inclusion(&self.pool, index, size).await
    }

    async fn audit_consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<custos_audit::ConsistencyProof, StoreError> {
        crate::audit_pg::consistency(&self.pool, old_size, new_size).await
    }

    async fn add_audit_checkpoint(
        &self,
        checkpoint: &crate::StoredCheckpoint,
    ) -> Result<crate::StoredCheckpoint, StoreError> {
        crate::audit_pg::add_checkpoint(&self.pool, checkpoint).await
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<crate::StoredCheckpoint>, StoreError> {
        crate::audit_pg::latest_checkpoint(&self.pool).await
    }

    async fn audit_checkpoints(
        &self,
        from_size: u64,
        limit: u32,
    ) -> Result<Vec<crate::StoredCheckpoint>, StoreError> {
        crate::audit_pg::checkpoints(&self.pool, from_size, limit).await
    }

    async fn insert_records_with_tokens(
        &self,
        scope: &OrgScope,
        records: &[RecordRow],
        tokens: &crate::TokenBatch,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Returning early drops the transaction: rolled back, nothing appended.
        if !crate::tokens_pg::write(&mut tx, scope.org_id(), tokens).await? {
            return Ok(false);
        }
        insert_record_rows(&mut tx, scope.org_id(), records).await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn resolve_pii_tokens(
        &self,
        scope: &OrgScope,
        lookups: &[String],
        entities: &[String],
    ) -> Result<crate::TokenResolution, StoreError> {
        crate::tokens_pg::resolve(&self.pool, scope.org_id(), lookups, entities).await
    }

    async fn pii_tokens(
        &self,
        scope: &OrgScope,
        tokens: &[String],
    ) -> Result<Vec<crate::PiiToken>, StoreError> {
        crate::tokens_pg::fetch(&self.pool, scope.org_id(), tokens).await
    }

    async fn set_org_region(
        &self,
        scope: &OrgScope,
        region: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE orgs SET region = $2 WHERE id = $1")
            .bind(scope.org_id())
            .bind(region)
            .execute(&mut *tx)
            .await?;
        commit_with(tx, audit).await
    }

    async fn export_org(&self, scope: &OrgScope) -> Result<crate::OrgRows, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = crate::org_rows_pg::pg_export(&mut tx, scope).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn import_org(
        &self,
        rows: &crate::OrgRows,
        region: &str,
        audit: &[AuditEvent],
    ) -> Result<OrgScope, StoreError> {
        let mut tx = self.pool.begin().await?;
        let scope = crate::org_rows_pg::pg_import(&mut tx, rows, region).await?;
        commit_with(tx, audit).await?;
        Ok(scope)
    }

    async fn drop_org(
        &self,
        scope: &OrgScope,
        expect: Option<&crate::OrgRows>,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        match expect {
            Some(rows) => crate::org_rows_pg::pg_delete_if_unchanged(&mut tx, rows).await?,
            None => crate::org_rows_pg::pg_delete(&mut tx, scope.org_id()).await?,
        }
        commit_with(tx, audit).await
    }

    async fn claim_org_move(
        &self,
        org_id: &str,
        holder: &str,
        now: jiff::Timestamp,
        lease_until: jiff::Timestamp,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "INSERT INTO org_moves (org_id, holder, lease_until) VALUES ($1, $2, $4)
             ON CONFLICT (org_id) DO UPDATE
             SET holder = excluded.holder, lease_until = excluded.lease_until
             WHERE org_moves.lease_until <= $3 OR org_moves.holder = excluded.holder",
        )
        .bind(org_id)
        .bind(holder)
        .bind(to_micros(now))
        .bind(to_micros(lease_until))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn release_org_move(&self, org_id: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM org_moves WHERE org_id = $1 AND holder = $2")
            .bind(org_id)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
