//! The Custos key store on SQLite: a file beside the keyring (`<keys>/keys.db`, mode 0600).
//!
//! What it is for: a single-host deployment's wrapped org keys, wrapped subject keys and
//! wrapped deployment keys, in a file that never holds customer data, so that a data backup
//! never contains keys and destroying a key reaches every copy of the data. The file runs with
//! `secure_delete` so destroyed key bytes are overwritten on disk, not just unlinked.
//! Destroying a key leaves a tombstone (org, key id, time) so that an older copy of the store
//! merged back later ([`SqliteKeyStore::merge_from`]) cannot bring the key back. It implements
//! [`custos_crypto::KeyStore`]; the key hierarchy itself (wrapping, caching, rotation) stays
//! in `custos-crypto`.
//!
//! What it is not: a place for the root key (a KMS or the keyring holds that; this store only
//! ever sees keys wrapped by it), nor a key store several hosts share (that is
//! `custos-keystore-pg`).

use std::path::Path;
use std::sync::{Arc, Mutex};

use custos_crypto::{CryptoError, KeyStore, MergeReport, SubjectKeyRow, Tombstone, WrappedKey};
use rusqlite::{params, Connection, OptionalExtension};

/// A failure inside one key-store call: SQLite's own error, or one of the crate's.
///
/// Local so that `?` works on both inside the connection closures (the orphan rule forbids
/// `From<rusqlite::Error> for CryptoError` here); it becomes a [`CryptoError`] at the edge,
/// SQLite's error kept as the source of [`CryptoError::Store`].
#[derive(Debug)]
enum Failed {
    Sqlite(rusqlite::Error),
    Crypto(CryptoError),
}

impl From<rusqlite::Error> for Failed {
    fn from(e: rusqlite::Error) -> Self {
        Failed::Sqlite(e)
    }
}

impl From<CryptoError> for Failed {
    fn from(e: CryptoError) -> Self {
        Failed::Crypto(e)
    }
}

impl From<Failed> for CryptoError {
    fn from(e: Failed) -> Self {
        match e {
            Failed::Sqlite(e) => store_error(e),
            Failed::Crypto(e) => e,
        }
    }
}

/// SQLite's error as the key store's, kept as the cause.
fn store_error(e: rusqlite::Error) -> CryptoError {
    CryptoError::Store(Box::new(e))
}

/// What a key-store file holds, counted (never the keys).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCounts {
    /// Org key versions.
    pub org_keys: u64,
    /// Subject keys.
    pub subject_keys: u64,
    /// Tombstones of destroyed keys.
    pub tombstones: u64,
}

/// [`KeyStore`] on a SQLite file (`<keys>/keys.db`, mode 0600).
pub struct SqliteKeyStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteKeyStore")
    }
}

impl SqliteKeyStore {
    /// Opens or creates the key database at `path`.
    pub fn open(path: &Path) -> Result<Self, CryptoError> {
        let io = |source| CryptoError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let existed = path.exists();
        let conn = Connection::open(path).map_err(store_error)?;
        #[cfg(unix)]
        if !existed {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        Self::init(conn)
    }

    /// An in-memory key store, for tests.
    pub fn in_memory() -> Result<Self, CryptoError> {
        Self::init(Connection::open_in_memory().map_err(store_error)?)
    }

    fn init(conn: Connection) -> Result<Self, CryptoError> {
        // secure_delete: destroyed keys are overwritten with zeros in the file, which is what
        // makes crypto-erasure real on disk. DELETE journal (not WAL) so no stale copy lingers.
        // busy_timeout: `custos keys rotate` and every `serve` on the same data share this
        // file; one waits for another's transaction instead of failing the request at once.
        conn.execute_batch(
            "PRAGMA busy_timeout = 10000;
             PRAGMA secure_delete = ON;
             PRAGMA journal_mode = DELETE;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS org_keys (
                 org TEXT NOT NULL, version INTEGER NOT NULL,
                 wrapped_by INTEGER NOT NULL, blob BLOB NOT NULL,
                 PRIMARY KEY (org, version));
             CREATE TABLE IF NOT EXISTS subject_keys (
                 org TEXT NOT NULL, key_id TEXT NOT NULL, subject_ref TEXT NOT NULL,
                 wrapped_by INTEGER NOT NULL, blob BLOB NOT NULL,
                 PRIMARY KEY (org, key_id));
             CREATE UNIQUE INDEX IF NOT EXISTS subject_keys_by_ref
                 ON subject_keys (org, subject_ref);
             CREATE TABLE IF NOT EXISTS deployment_keys (
                 name TEXT PRIMARY KEY, wrapped_by INTEGER NOT NULL, blob BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS destroyed_keys (
                 org TEXT NOT NULL, key_id TEXT NOT NULL, destroyed_at INTEGER NOT NULL,
                 PRIMARY KEY (org, key_id));",
        )
        .map_err(store_error)?;
        Ok(SqliteKeyStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Writes a consistent copy of this key store to `to` (a new file, mode 0600): keys stay
    /// wrapped by the root key, which the copy never contains.
    pub async fn snapshot(&self, to: &Path) -> Result<(), CryptoError> {
        let to = to.to_path_buf();
        self.with_conn(move |conn| {
            conn.execute("VACUUM INTO ?1", [to.to_string_lossy()])?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).map_err(
                    |source| CryptoError::Io {
                        path: to.display().to_string(),
                        source,
                    },
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Merges a key-store copy (from [`SqliteKeyStore::snapshot`]) into this store, in one
    /// transaction: keys missing here come back unless a tombstone here or in the copy says
    /// they were destroyed; keys present here are kept as they are; the copy's tombstones
    /// are added.
    pub async fn merge_from(&self, copy: &Path) -> Result<MergeReport, CryptoError> {
        let copy = copy.to_string_lossy().into_owned();
        self.with_conn(move |conn| {
            conn.execute("ATTACH DATABASE ?1 AS copy", [&copy])?;
            let merged = (|| {
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS copy.destroyed_keys (
                         org TEXT NOT NULL, key_id TEXT NOT NULL, destroyed_at INTEGER NOT NULL,
                         PRIMARY KEY (org, key_id));",
                )?;
                let tx = conn.transaction()?;
                tx.execute(
                    "INSERT OR IGNORE INTO destroyed_keys (org, key_id, destroyed_at)
                     SELECT org, key_id, destroyed_at FROM copy.destroyed_keys",
                    [],
                )?;
                let refused: i64 = tx.query_row(
                    "SELECT (SELECT count(*) FROM copy.org_keys c WHERE EXISTS
                                (SELECT 1 FROM destroyed_keys d WHERE d.org = c.org AND d.key_id = ''))
                          + (SELECT count(*) FROM copy.subject_keys c WHERE EXISTS
                                (SELECT 1 FROM destroyed_keys d WHERE d.org = c.org
                                 AND (d.key_id = '' OR d.key_id = c.key_id)))",
                    [],
                    |r| r.get(0),
                )?;
                let org_keys = tx.execute(
                    "INSERT OR IGNORE INTO org_keys (org, version, wrapped_by, blob)
                     SELECT org, version, wrapped_by, blob FROM copy.org_keys c
                     WHERE NOT EXISTS (SELECT 1 FROM destroyed_keys d
                                       WHERE d.org = c.org AND d.key_id = '')",
                    [],
                )?;
                let subject_keys = tx.execute(
                    "INSERT OR IGNORE INTO subject_keys (org, key_id, subject_ref, wrapped_by, blob)
                     SELECT org, key_id, subject_ref, wrapped_by, blob FROM copy.subject_keys c
                     WHERE NOT EXISTS (SELECT 1 FROM destroyed_keys d WHERE d.org = c.org
                                       AND (d.key_id = '' OR d.key_id = c.key_id))",
                    [],
                )?;
                let deployment_keys = tx.execute(
                    "INSERT OR IGNORE INTO deployment_keys (name, wrapped_by, blob)
                     SELECT name, wrapped_by, blob FROM copy.deployment_keys",
                    [],
                )?;
                tx.commit()?;
                Ok::<_, Failed>(MergeReport {
                    org_keys,
                    subject_keys,
                    deployment_keys,
                    refused_destroyed: refused as usize,
                })
            })();
            conn.execute("DETACH DATABASE copy", [])?;
            merged
        })
        .await
    }

    /// The counts of the key-store file at `path` (a copy written by
    /// [`SqliteKeyStore::snapshot`]), read without changing it: a copy from before tombstones
    /// has none.
    pub fn file_counts(path: &Path) -> Result<KeyCounts, CryptoError> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(store_error)?;
        let count = |table: &str| -> Result<u64, CryptoError> {
            conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .map_err(store_error)
        };
        let has_tombstones: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'destroyed_keys')",
                [],
                |r| r.get(0),
            )
            .map_err(store_error)?;
        Ok(KeyCounts {
            org_keys: count("org_keys")?,
            subject_keys: count("subject_keys")?,
            tombstones: if has_tombstones {
                count("destroyed_keys")?
            } else {
                0
            },
        })
    }

    /// `None` when the key-store file at `path` passes SQLite's integrity check, else the
    /// first problem the check reports.
    pub fn integrity_problem(path: &Path) -> Result<Option<String>, CryptoError> {
        let conn = Connection::open(path).map_err(store_error)?;
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(store_error)?;
        Ok((check != "ok").then_some(check))
    }

    /// Runs `f` on the connection on tokio's blocking pool: key-store writes fsync (the file
    /// runs `synchronous = FULL`), which must not hold up an async worker.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, CryptoError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Failed> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut conn.lock().unwrap_or_else(|e| e.into_inner())))
            .await
            .map_err(|e| CryptoError::Service(format!("key store task failed: {e}")))?
            .map_err(CryptoError::from)
    }
}

fn subject_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SubjectKeyRow> {
    Ok(SubjectKeyRow {
        key_id: row.get(0)?,
        subject_ref: row.get(1)?,
        wrapped: WrappedKey {
            wrapped_by: row.get(2)?,
            blob: row.get(3)?,
        },
    })
}

/// Rows for `refs`, queried in chunks that stay under SQLite's parameter limit.
fn select_subjects(
    conn: &Connection,
    org: &str,
    refs: &[&str],
) -> Result<Vec<SubjectKeyRow>, Failed> {
    let mut out = Vec::with_capacity(refs.len());
    for chunk in refs.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT key_id, subject_ref, wrapped_by, blob FROM subject_keys
             WHERE org = ? AND subject_ref IN ({marks})"
        ))?;
        let params = std::iter::once(&org).chain(chunk.iter());
        let rows = stmt.query_map(rusqlite::params_from_iter(params), subject_row)?;
        for row in rows {
            out.push(row?);
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl KeyStore for SqliteKeyStore {
    async fn org_keys(&self, org: &str) -> Result<Vec<(u32, WrappedKey)>, CryptoError> {
        let org = org.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT version, wrapped_by, blob FROM org_keys WHERE org = ?1 ORDER BY version",
            )?;
            let rows = stmt.query_map([org], |r| {
                Ok((
                    r.get(0)?,
                    WrappedKey {
                        wrapped_by: r.get(1)?,
                        blob: r.get(2)?,
                    },
                ))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn insert_org_key(
        &self,
        org: &str,
        version: u32,
        key: &WrappedKey,
    ) -> Result<bool, CryptoError> {
        let (org, key) = (org.to_string(), key.clone());
        self.with_conn(move |conn| {
            let n = conn.execute(
                "INSERT OR IGNORE INTO org_keys (org, version, wrapped_by, blob)
                 VALUES (?1, ?2, ?3, ?4)",
                params![org, version, key.wrapped_by, key.blob],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn rewrap_org_keys(
        &self,
        org: &str,
        keys: &[(u32, WrappedKey)],
    ) -> Result<(), CryptoError> {
        let (org, keys) = (org.to_string(), keys.to_vec());
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            for (version, key) in &keys {
                tx.execute(
                    "UPDATE org_keys SET wrapped_by = ?3, blob = ?4 WHERE org = ?1 AND version = ?2",
                    params![org, version, key.wrapped_by, key.blob],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn orgs(&self) -> Result<Vec<String>, CryptoError> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare("SELECT DISTINCT org FROM org_keys ORDER BY org")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn subject_key_by_id(
        &self,
        org: &str,
        key_id: &str,
    ) -> Result<Option<WrappedKey>, CryptoError> {
        let (org, key_id) = (org.to_string(), key_id.to_string());
        self.with_conn(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT wrapped_by, blob FROM subject_keys WHERE org = ?1 AND key_id = ?2",
                )?
                .query_row([org, key_id], |r| {
                    Ok(WrappedKey {
                        wrapped_by: r.get(0)?,
                        blob: r.get(1)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn subject_keys_for(
        &self,
        org: &str,
        subject_refs: &[&str],
    ) -> Result<Vec<SubjectKeyRow>, CryptoError> {
        let org = org.to_string();
        let refs: Vec<String> = subject_refs.iter().map(|r| r.to_string()).collect();
        self.with_conn(move |conn| {
            let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
            select_subjects(conn, &org, &refs)
        })
        .await
    }

    async fn insert_subject_keys(
        &self,
        org: &str,
        rows: &[SubjectKeyRow],
    ) -> Result<Vec<SubjectKeyRow>, CryptoError> {
        let (org, rows) = (org.to_string(), rows.to_vec());
        self.with_conn(move |conn| {
            // One transaction (one fsync) for the whole batch: per-key commits cost ~18 ms
            // each.
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO subject_keys (org, key_id, subject_ref, wrapped_by, blob)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for row in &rows {
                    stmt.execute(params![
                        org,
                        row.key_id,
                        row.subject_ref,
                        row.wrapped.wrapped_by,
                        row.wrapped.blob
                    ])?;
                }
            }
            tx.commit()?;
            let refs: Vec<&str> = rows.iter().map(|r| r.subject_ref.as_str()).collect();
            select_subjects(conn, &org, &refs)
        })
        .await
    }

    async fn subject_keys(&self, org: &str) -> Result<Vec<SubjectKeyRow>, CryptoError> {
        let org = org.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT key_id, subject_ref, wrapped_by, blob FROM subject_keys WHERE org = ?1",
            )?;
            let rows = stmt.query_map([org], subject_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn rewrap_subject_keys(
        &self,
        org: &str,
        rows: &[SubjectKeyRow],
    ) -> Result<(), CryptoError> {
        let (org, rows) = (org.to_string(), rows.to_vec());
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            for row in &rows {
                tx.execute(
                    "UPDATE subject_keys SET wrapped_by = ?3, blob = ?4 WHERE org = ?1 AND key_id = ?2",
                    params![org, row.key_id, row.wrapped.wrapped_by, row.wrapped.blob],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn subject_key_slots(
        &self,
        org: &str,
        subject_ref: &str,
    ) -> Result<Vec<SubjectKeyRow>, CryptoError> {
        let (org, subject_ref) = (org.to_string(), subject_ref.to_string());
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT key_id, subject_ref, wrapped_by, blob FROM subject_keys
                 WHERE org = ?1
                   AND (subject_ref = ?2 OR substr(subject_ref, 1, length(?2) + 1) = ?2 || '/')
                 ORDER BY subject_ref",
            )?;
            let rows = stmt.query_map([org, subject_ref], subject_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn destroy_subject_keys(
        &self,
        org: &str,
        key_ids: &[String],
    ) -> Result<usize, CryptoError> {
        let (org, key_ids) = (org.to_string(), key_ids.to_vec());
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            let mut n = 0;
            let now = jiff::Timestamp::now().as_second();
            for id in &key_ids {
                n += tx.execute(
                    "DELETE FROM subject_keys WHERE org = ?1 AND key_id = ?2",
                    [org.as_str(), id.as_str()],
                )?;
                tx.execute(
                    "INSERT OR IGNORE INTO destroyed_keys (org, key_id, destroyed_at)
                     VALUES (?1, ?2, ?3)",
                    params![org, id, now],
                )?;
            }
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    async fn destroy_org(&self, org: &str) -> Result<(), CryptoError> {
        let org = org.to_string();
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM subject_keys WHERE org = ?1", [&org])?;
            tx.execute("DELETE FROM org_keys WHERE org = ?1", [&org])?;
            tx.execute(
                "INSERT OR IGNORE INTO destroyed_keys (org, key_id, destroyed_at)
                 VALUES (?1, '', ?2)",
                params![org, jiff::Timestamp::now().as_second()],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn tombstones(&self) -> Result<Vec<Tombstone>, CryptoError> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(
                "SELECT org, key_id, destroyed_at FROM destroyed_keys ORDER BY org, key_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Tombstone {
                    org: r.get(0)?,
                    key_id: r.get(1)?,
                    destroyed_at: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn deployment_key(&self, name: &str) -> Result<Option<WrappedKey>, CryptoError> {
        let name = name.to_string();
        self.with_conn(move |conn| select_deployment_key(conn, &name))
            .await
    }

    async fn insert_deployment_key(
        &self,
        name: &str,
        key: &WrappedKey,
    ) -> Result<WrappedKey, CryptoError> {
        let (name, key) = (name.to_string(), key.clone());
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO deployment_keys (name, wrapped_by, blob)
                 VALUES (?1, ?2, ?3)",
                params![name, key.wrapped_by, key.blob],
            )?;
            Ok(select_deployment_key(conn, &name)?
                .ok_or(CryptoError::Malformed("deployment key vanished"))?)
        })
        .await
    }

    async fn rewrap_deployment_key(&self, name: &str, key: &WrappedKey) -> Result<(), CryptoError> {
        let (name, key) = (name.to_string(), key.clone());
        self.with_conn(move |conn| {
            conn.execute(
                "UPDATE deployment_keys SET wrapped_by = ?2, blob = ?3 WHERE name = ?1",
                params![name, key.wrapped_by, key.blob],
            )?;
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> Result<(), CryptoError> {
        self.with_conn(|conn| {
            conn.query_row("SELECT count(*) FROM org_keys", [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
        .await
    }
}

fn select_deployment_key(conn: &Connection, name: &str) -> Result<Option<WrappedKey>, Failed> {
    Ok(conn
        .prepare_cached("SELECT wrapped_by, blob FROM deployment_keys WHERE name = ?1")?
        .query_row([name], |r| {
            Ok(WrappedKey {
                wrapped_by: r.get(0)?,
                blob: r.get(1)?,
            })
        })
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(n: u8) -> WrappedKey {
        WrappedKey {
            wrapped_by: 1,
            blob: vec![n; 8],
        }
    }

    fn row(id: &str) -> SubjectKeyRow {
        SubjectKeyRow {
            key_id: id.into(),
            subject_ref: format!("ref-{id}"),
            wrapped: w(2),
        }
    }

    #[tokio::test]
    async fn a_merged_older_copy_does_not_bring_a_destroyed_key_back() {
        let dir = tempfile::tempdir().unwrap();
        let live = SqliteKeyStore::open(&dir.path().join("keys.db")).unwrap();
        live.insert_org_key("o", 1, &w(1)).await.unwrap();
        live.insert_org_key("gone", 1, &w(1)).await.unwrap();
        live.insert_subject_keys("o", &[row("a"), row("b")])
            .await
            .unwrap();
        let copy = dir.path().join("copy.db");
        live.snapshot(&copy).await.unwrap();

        // After the copy: a subject key and a whole org destroyed, and `b` lost otherwise.
        live.destroy_subject_keys("o", &["a".into()]).await.unwrap();
        live.destroy_org("gone").await.unwrap();
        live.with_conn(|c| {
            c.execute("DELETE FROM subject_keys WHERE key_id = 'b'", [])?;
            Ok(())
        })
        .await
        .unwrap();
        let report = live.merge_from(&copy).await.unwrap();
        assert_eq!(report.subject_keys, 1, "{report:?}");
        assert_eq!(report.org_keys, 0, "{report:?}");
        assert_eq!(report.refused_destroyed, 2, "{report:?}");
        assert_eq!(live.subject_key_by_id("o", "a").await.unwrap(), None);
        assert!(live.subject_key_by_id("o", "b").await.unwrap().is_some());
        assert!(live.org_keys("gone").await.unwrap().is_empty());
        // Merging again changes nothing.
        let again = live.merge_from(&copy).await.unwrap();
        assert_eq!((again.subject_keys, again.org_keys), (0, 0));

        // A lost key store rebuilt from the copy gets its tombstones only from the copy (none
        // here): the audit log's record of destruction is what `custos backup` replays then.
        let fresh = SqliteKeyStore::open(&dir.path().join("fresh.db")).unwrap();
        let report = fresh.merge_from(&copy).await.unwrap();
        assert_eq!((report.subject_keys, report.org_keys), (2, 2));
        let stones = live.tombstones().await.unwrap();
        let ids: Vec<(&str, &str)> = stones
            .iter()
            .map(|t| (t.org.as_str(), t.key_id.as_str()))
            .collect();
        assert_eq!(ids, [("gone", ""), ("o", "a")]);
    }

    #[tokio::test]
    async fn a_copy_is_counted_and_checked_without_being_changed() {
        let dir = tempfile::tempdir().unwrap();
        let live = SqliteKeyStore::open(&dir.path().join("keys.db")).unwrap();
        live.insert_org_key("o", 1, &w(1)).await.unwrap();
        live.insert_org_key("o", 2, &w(1)).await.unwrap();
        live.insert_subject_keys("o", &[row("a"), row("b")])
            .await
            .unwrap();
        live.destroy_subject_keys("o", &["a".into()]).await.unwrap();
        let copy = dir.path().join("copy.db");
        live.snapshot(&copy).await.unwrap();
        let before = std::fs::read(&copy).unwrap();
        assert_eq!(SqliteKeyStore::integrity_problem(&copy).unwrap(), None);
        let counts = SqliteKeyStore::file_counts(&copy).unwrap();
        assert_eq!(
            counts,
            KeyCounts {
                org_keys: 2,
                subject_keys: 1,
                tombstones: 1
            }
        );
        assert_eq!(std::fs::read(&copy).unwrap(), before);

        // A copy from before tombstones counts none.
        live.with_conn(|c| {
            c.execute_batch("DROP TABLE destroyed_keys")?;
            Ok(())
        })
        .await
        .unwrap();
        let old = dir.path().join("old.db");
        live.snapshot(&old).await.unwrap();
        assert_eq!(SqliteKeyStore::file_counts(&old).unwrap().tombstones, 0);
    }

    #[test]
    fn a_sqlite_failure_is_kept_as_the_source() {
        use std::error::Error as _;
        let dir = tempfile::tempdir().unwrap();
        // A directory where the key file should be: SQLite cannot open it.
        let err = SqliteKeyStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, CryptoError::Store(_)), "{err:?}");
        let source = err.source().expect("a key store error has a source");
        assert!(
            source.downcast_ref::<rusqlite::Error>().is_some(),
            "not a rusqlite error: {source:?}"
        );
    }
}
