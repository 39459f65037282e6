//! The Custos key store on PostgreSQL.
//!
//! What it is for: several `custos serve` instances sharing one key hierarchy. It keeps the
//! wrapped org keys, the wrapped subject keys and the wrapped deployment signing seed (so every
//! instance signs checkpoints and certificates with one key) in a database, or a schema, that
//! never holds customer data, so that a data backup never contains keys and destroying a key
//! reaches every copy of the data. It implements [`custos_crypto::KeyStore`]; the key hierarchy
//! itself (wrapping, caching, rotation) stays in `custos-crypto`.
//!
//! What it is not: a place for the root key (a KMS or the keyring holds that; this store only
//! ever sees keys wrapped by it) or for any data. Destroyed rows are deleted and the table is
//! vacuumed, so their bytes leave the live table at once; PostgreSQL's WAL and its backups keep
//! old pages until they are recycled, which is why a destroyed key's wrapping is useless
//! without the org key above it, and why key-store backups are kept apart from data backups.
//! Destroying a key also leaves a tombstone row (org, key id, time): the key store's own record
//! of the destruction, beside the audit log's, which `custos backup reconcile` replays after
//! this database is restored from an older backup.

use async_trait::async_trait;
use custos_crypto::{CryptoError, KeyStore, SubjectKeyRow, Tombstone, WrappedKey};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;

/// [`KeyStore`] on PostgreSQL (`--keys postgres://...`).
pub struct PgKeyStore {
    pool: PgPool,
}

impl std::fmt::Debug for PgKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgKeyStore")
    }
}

/// The store's failures name the operation, never a key or a connection password.
fn failed(op: &'static str) -> impl FnOnce(sqlx::Error) -> CryptoError {
    move |e| CryptoError::Service(format!("PostgreSQL key store, {op}: {}", describe(&e)))
}

/// A sqlx error without anything a caller supplied (sqlx's own text can quote a URL).
fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => format!(
            "database error {}",
            db.code().map(|c| c.into_owned()).unwrap_or_default()
        ),
        sqlx::Error::PoolTimedOut => "no connection available (pool timed out)".into(),
        sqlx::Error::Io(io) => format!("I/O: {}", io.kind()),
        sqlx::Error::Tls(_) => "TLS failure".into(),
        other => format!("{}", ErrorKind(other)),
    }
}

/// The variant of a sqlx error, for messages.
struct ErrorKind<'a>(&'a sqlx::Error);

impl std::fmt::Display for ErrorKind<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            sqlx::Error::Configuration(_) => "invalid configuration",
            sqlx::Error::RowNotFound => "row not found",
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "unreadable value",
            sqlx::Error::Protocol(_) => "protocol error",
            sqlx::Error::PoolClosed => "pool closed",
            _ => "failure",
        };
        f.write_str(name)
    }
}

fn wrapped(row: &sqlx::postgres::PgRow, at: usize) -> Result<WrappedKey, sqlx::Error> {
    let by: i32 = row.try_get(at)?;
    Ok(WrappedKey {
        wrapped_by: by as u32,
        blob: row.try_get(at + 1)?,
    })
}

fn subject_row(row: &sqlx::postgres::PgRow) -> Result<SubjectKeyRow, sqlx::Error> {
    Ok(SubjectKeyRow {
        key_id: row.try_get(0)?,
        subject_ref: row.try_get(1)?,
        wrapped: wrapped(row, 2)?,
    })
}

impl PgKeyStore {
    /// Connects to `url` (in `schema` when given, created if missing) and creates the tables.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self, CryptoError> {
        let mut options: PgConnectOptions = url
            .parse()
            .map_err(|_| CryptoError::Service("--keys: not a valid postgres:// URL".to_string()))?;
        if let Some(schema) = schema {
            if schema.is_empty()
                || !schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(CryptoError::Service(format!(
                    "key store schema {schema:?} must be ASCII letters, digits and '_'"
                )));
            }
            let bootstrap = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await
                .map_err(failed("connect"))?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&bootstrap)
                .await
                .map_err(failed("create schema"))?;
            bootstrap.close().await;
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(failed("connect"))?;
        let store = PgKeyStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Drops a schema made by [`PgKeyStore::connect`] (test clean-up).
    pub async fn drop_schema(url: &str, schema: &str) -> Result<(), CryptoError> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .map_err(failed("connect"))?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&pool)
            .await
            .map_err(failed("drop schema"))?;
        pool.close().await;
        Ok(())
    }

    async fn migrate(&self) -> Result<(), CryptoError> {
        let mut tx = self.pool.begin().await.map_err(failed("migrate"))?;
        // Several instances start at once: one creates the tables, the others wait.
        sqlx::query("SELECT pg_advisory_xact_lock(7274610356)")
            .execute(&mut *tx)
            .await
            .map_err(failed("migrate"))?;
        for ddl in [
            "CREATE TABLE IF NOT EXISTS custos_org_keys (
                 org TEXT NOT NULL, version INTEGER NOT NULL,
                 wrapped_by INTEGER NOT NULL, blob BYTEA NOT NULL,
                 PRIMARY KEY (org, version))",
            "CREATE TABLE IF NOT EXISTS custos_subject_keys (
                 org TEXT NOT NULL, key_id TEXT NOT NULL, subject_ref TEXT NOT NULL,
                 wrapped_by INTEGER NOT NULL, blob BYTEA NOT NULL,
                 PRIMARY KEY (org, key_id), UNIQUE (org, subject_ref))",
            "CREATE TABLE IF NOT EXISTS custos_deployment_keys (
                 name TEXT PRIMARY KEY, wrapped_by INTEGER NOT NULL, blob BYTEA NOT NULL)",
            // What destroying a key leaves: a key-store copy restored later (a database
            // restore) is reconciled against these and the audit log.
            "CREATE TABLE IF NOT EXISTS custos_destroyed_keys (
                 org TEXT NOT NULL, key_id TEXT NOT NULL, destroyed_at BIGINT NOT NULL,
                 PRIMARY KEY (org, key_id))",
        ] {
            sqlx::query(ddl)
                .execute(&mut *tx)
                .await
                .map_err(failed("migrate"))?;
        }
        tx.commit().await.map_err(failed("migrate"))?;
        Ok(())
    }

    /// Runs a query selecting `key_id, subject_ref, wrapped_by, blob`; `op` names it in errors.
    async fn subject_rows(
        &self,
        op: &'static str,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<SubjectKeyRow>, CryptoError> {
        let rows = query.fetch_all(&self.pool).await.map_err(failed(op))?;
        rows.iter()
            .map(subject_row)
            .collect::<Result<_, _>>()
            .map_err(failed(op))
    }

    /// Removes destroyed rows' old versions from the live table (best effort: a failure
    /// leaves them to autovacuum and is not the caller's to handle).
    async fn vacuum(&self, table: &str) {
        let _ = sqlx::query(&format!("VACUUM {table}"))
            .execute(&self.pool)
            .await;
    }
}

#[async_trait]
impl KeyStore for PgKeyStore {
    async fn org_keys(&self, org: &str) -> Result<Vec<(u32, WrappedKey)>, CryptoError> {
        let rows = sqlx::query(
            "SELECT version, wrapped_by, blob FROM custos_org_keys WHERE org = $1 ORDER BY version",
        )
        .bind(org)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("read org keys"))?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i32, _>(0)? as u32, wrapped(r, 1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(failed("read org keys"))
    }

    async fn insert_org_key(
        &self,
        org: &str,
        version: u32,
        key: &WrappedKey,
    ) -> Result<bool, CryptoError> {
        let done = sqlx::query(
            "INSERT INTO custos_org_keys (org, version, wrapped_by, blob) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(version as i32)
        .bind(key.wrapped_by as i32)
        .bind(&key.blob)
        .execute(&self.pool)
        .await
        .map_err(failed("insert org key"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn rewrap_org_keys(
        &self,
        org: &str,
        keys: &[(u32, WrappedKey)],
    ) -> Result<(), CryptoError> {
        let mut tx = self.pool.begin().await.map_err(failed("rewrap org keys"))?;
        for (version, key) in keys {
            sqlx::query(
                "UPDATE custos_org_keys SET wrapped_by = $3, blob = $4
                 WHERE org = $1 AND version = $2",
            )
            .bind(org)
            .bind(*version as i32)
            .bind(key.wrapped_by as i32)
            .bind(&key.blob)
            .execute(&mut *tx)
            .await
            .map_err(failed("rewrap org keys"))?;
        }
        tx.commit().await.map_err(failed("rewrap org keys"))
    }

    async fn orgs(&self) -> Result<Vec<String>, CryptoError> {
        sqlx::query_scalar("SELECT DISTINCT org FROM custos_org_keys ORDER BY org")
            .fetch_all(&self.pool)
            .await
            .map_err(failed("list orgs"))
    }

    async fn subject_key_by_id(
        &self,
        org: &str,
        key_id: &str,
    ) -> Result<Option<WrappedKey>, CryptoError> {
        let row = sqlx::query(
            "SELECT wrapped_by, blob FROM custos_subject_keys WHERE org = $1 AND key_id = $2",
        )
        .bind(org)
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("read subject key"))?;
        row.map(|r| wrapped(&r, 0))
            .transpose()
            .map_err(failed("read subject key"))
    }

    async fn subject_keys_for(
        &self,
        org: &str,
        subject_refs: &[&str],
    ) -> Result<Vec<SubjectKeyRow>, CryptoError> {
        let refs: Vec<String> = subject_refs.iter().map(|r| r.to_string()).collect();
        self.subject_rows(
            "read subject keys",
            sqlx::query(
                "SELECT key_id, subject_ref, wrapped_by, blob FROM custos_subject_keys
             WHERE org = $1 AND subject_ref = ANY($2)",
            )
            .bind(org)
            .bind(&refs),
        )
        .await
    }

    async fn insert_subject_keys(
        &self,
        org: &str,
        rows: &[SubjectKeyRow],
    ) -> Result<Vec<SubjectKeyRow>, CryptoError> {
        let ids: Vec<&str> = rows.iter().map(|r| r.key_id.as_str()).collect();
        let refs: Vec<&str> = rows.iter().map(|r| r.subject_ref.as_str()).collect();
        let by: Vec<i32> = rows.iter().map(|r| r.wrapped.wrapped_by as i32).collect();
        let blobs: Vec<&[u8]> = rows.iter().map(|r| r.wrapped.blob.as_slice()).collect();
        // One statement for the batch; a subject that already has a key keeps it (two
        // instances creating one subject's key at once agree on the first).
        sqlx::query(
            "INSERT INTO custos_subject_keys (org, key_id, subject_ref, wrapped_by, blob)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::int[], $5::bytea[])
             ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(&ids)
        .bind(&refs)
        .bind(&by)
        .bind(&blobs)
        .execute(&self.pool)
        .await
        .map_err(failed("insert subject keys"))?;
        self.subject_keys_for(org, &refs).await
    }

    async fn subject_keys(&self, org: &str) -> Result<Vec<SubjectKeyRow>, CryptoError> {
        self.subject_rows(
            "read subject keys",
            sqlx::query(
            "SELECT key_id, subject_ref, wrapped_by, blob FROM custos_subject_keys WHERE org = $1",
        )
        .bind(org),
        )
        .await
    }

    async fn rewrap_subject_keys(
        &self,
        org: &str,
        rows: &[SubjectKeyRow],
    ) -> Result<(), CryptoError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(failed("rewrap subject keys"))?;
        for row in rows {
            sqlx::query(
                "UPDATE custos_subject_keys SET wrapped_by = $3, blob = $4
                 WHERE org = $1 AND key_id = $2",
            )
            .bind(org)
            .bind(&row.key_id)
            .bind(row.wrapped.wrapped_by as i32)
            .bind(&row.wrapped.blob)
            .execute(&mut *tx)
            .await
            .map_err(failed("rewrap subject keys"))?;
        }
        tx.commit().await.map_err(failed("rewrap subject keys"))
    }

    async fn subject_key_slots(
        &self,
        org: &str,
        subject_ref: &str,
    ) -> Result<Vec<SubjectKeyRow>, CryptoError> {
        self.subject_rows(
            "read subject key slots",
            sqlx::query(
                "SELECT key_id, subject_ref, wrapped_by, blob FROM custos_subject_keys
             WHERE org = $1 AND (subject_ref = $2 OR left(subject_ref, length($2) + 1) = $2 || '/')
             ORDER BY subject_ref",
            )
            .bind(org)
            .bind(subject_ref),
        )
        .await
    }

    async fn destroy_subject_keys(
        &self,
        org: &str,
        key_ids: &[String],
    ) -> Result<usize, CryptoError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(failed("destroy subject keys"))?;
        let done =
            sqlx::query("DELETE FROM custos_subject_keys WHERE org = $1 AND key_id = ANY($2)")
                .bind(org)
                .bind(key_ids)
                .execute(&mut *tx)
                .await
                .map_err(failed("destroy subject keys"))?;
        sqlx::query(
            "INSERT INTO custos_destroyed_keys (org, key_id, destroyed_at)
             SELECT $1, k, $3 FROM unnest($2::text[]) AS k ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(key_ids)
        .bind(jiff::Timestamp::now().as_second())
        .execute(&mut *tx)
        .await
        .map_err(failed("destroy subject keys"))?;
        tx.commit().await.map_err(failed("destroy subject keys"))?;
        self.vacuum("custos_subject_keys").await;
        Ok(done.rows_affected() as usize)
    }

    async fn destroy_org(&self, org: &str) -> Result<(), CryptoError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(failed("destroy org keys"))?;
        for table in ["custos_subject_keys", "custos_org_keys"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE org = $1"))
                .bind(org)
                .execute(&mut *tx)
                .await
                .map_err(failed("destroy org keys"))?;
        }
        sqlx::query(
            "INSERT INTO custos_destroyed_keys (org, key_id, destroyed_at)
             VALUES ($1, '', $2) ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(jiff::Timestamp::now().as_second())
        .execute(&mut *tx)
        .await
        .map_err(failed("destroy org keys"))?;
        tx.commit().await.map_err(failed("destroy org keys"))?;
        self.vacuum("custos_subject_keys").await;
        self.vacuum("custos_org_keys").await;
        Ok(())
    }

    async fn tombstones(&self) -> Result<Vec<Tombstone>, CryptoError> {
        let rows = sqlx::query(
            "SELECT org, key_id, destroyed_at FROM custos_destroyed_keys ORDER BY org, key_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(failed("read tombstones"))?;
        rows.iter()
            .map(|r| {
                Ok(Tombstone {
                    org: r.try_get(0)?,
                    key_id: r.try_get(1)?,
                    destroyed_at: r.try_get(2)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(failed("read tombstones"))
    }

    async fn deployment_key(&self, name: &str) -> Result<Option<WrappedKey>, CryptoError> {
        let row =
            sqlx::query("SELECT wrapped_by, blob FROM custos_deployment_keys WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(failed("read deployment key"))?;
        row.map(|r| wrapped(&r, 0))
            .transpose()
            .map_err(failed("read deployment key"))
    }

    async fn insert_deployment_key(
        &self,
        name: &str,
        key: &WrappedKey,
    ) -> Result<WrappedKey, CryptoError> {
        sqlx::query(
            "INSERT INTO custos_deployment_keys (name, wrapped_by, blob) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(key.wrapped_by as i32)
        .bind(&key.blob)
        .execute(&self.pool)
        .await
        .map_err(failed("insert deployment key"))?;
        self.deployment_key(name)
            .await?
            .ok_or(CryptoError::Malformed("deployment key vanished"))
    }

    async fn ping(&self) -> Result<(), CryptoError> {
        sqlx::query("SELECT 1 FROM custos_org_keys LIMIT 1")
            .execute(&self.pool)
            .await
            .map_err(failed("ping"))?;
        Ok(())
    }

    async fn rewrap_deployment_key(&self, name: &str, key: &WrappedKey) -> Result<(), CryptoError> {
        sqlx::query("UPDATE custos_deployment_keys SET wrapped_by = $2, blob = $3 WHERE name = $1")
            .bind(name)
            .bind(key.wrapped_by as i32)
            .bind(&key.blob)
            .execute(&self.pool)
            .await
            .map_err(failed("rewrap deployment key"))?;
        Ok(())
    }
}
