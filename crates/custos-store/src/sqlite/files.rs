//! SQLite-only operations on database files that are not open as a store, for backups and
//! restores (`custos-backup`): a consistent snapshot of a live database, the integrity check
//! and counts of a snapshot, whether one file's audit log begins with another's, and folding
//! the WAL into the file before it is moved. None of them migrates or configures the file.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::SqliteStore;
use crate::model::StoreError;

/// What a database file (a backup's snapshot) holds, for a backup's manifest and a drill's
/// checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotCounts {
    /// Entries in the audit log.
    pub audit_entries: u64,
    /// Records per org id (every org, with 0 when it has none).
    pub records: BTreeMap<String, u64>,
}

/// Records per org, every org listed.
const RECORDS_PER_ORG: &str =
    "SELECT o.id, (SELECT count(*) FROM records r WHERE r.org_seq = o.seq) FROM orgs o";

impl SqliteStore {
    /// Writes a consistent online snapshot of the database file `database` to the new file
    /// `to` (`VACUUM INTO`: one read transaction's view while writers go on).
    pub fn snapshot_file(database: &Path, to: &Path) -> Result<(), StoreError> {
        let conn = Connection::open(database)?;
        conn.execute("VACUUM INTO ?1", [to.to_string_lossy()])?;
        Ok(())
    }

    /// `None` when the database file at `path` passes SQLite's integrity check, else the
    /// first problem the check reports.
    pub fn integrity_problem(path: &Path) -> Result<Option<String>, StoreError> {
        let conn = Connection::open(path)?;
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        Ok((check != "ok").then_some(check))
    }

    /// The audit entries and the records per org of the database file at `path`.
    pub fn snapshot_counts(path: &Path) -> Result<SnapshotCounts, StoreError> {
        let conn = Connection::open(path)?;
        let audit_entries: u64 = conn
            .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
            .map_err(|e| StoreError::database("audit log", e))?;
        let records = (|| {
            let mut stmt = conn.prepare(RECORDS_PER_ORG)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<BTreeMap<String, u64>>>()
        })()
        .map_err(|e| StoreError::database("records", e))?;
        Ok(SnapshotCounts {
            audit_entries,
            records,
        })
    }

    /// Whether the audit log of the database file `live` begins with the `n` entries of the
    /// one in `restored` (the same leaves, byte for byte); both are opened read-only and
    /// compared as they stream.
    pub fn audit_log_begins_with(live: &Path, restored: &Path, n: u64) -> Result<bool, StoreError> {
        let open = |p: &Path| Connection::open_with_flags(p, OpenFlags::SQLITE_OPEN_READ_ONLY);
        let (a, b) = (open(live)?, open(restored)?);
        let sql = "SELECT leaf FROM audit_log WHERE idx < ?1 ORDER BY idx";
        let (mut sa, mut sb) = (a.prepare(sql)?, b.prepare(sql)?);
        let (mut ra, mut rb) = (sa.query([n as i64])?, sb.query([n as i64])?);
        let mut seen = 0u64;
        loop {
            match (ra.next()?, rb.next()?) {
                (Some(x), Some(y)) => {
                    let (x, y): (Vec<u8>, Vec<u8>) = (x.get(0)?, y.get(0)?);
                    if x != y {
                        return Ok(false);
                    }
                    seen += 1;
                }
                (None, None) => return Ok(seen == n),
                _ => return Ok(false),
            }
        }
    }

    /// Folds the WAL of the database file at `path` into the file (`wal_checkpoint(TRUNCATE)`),
    /// so that the file alone holds every commit and can be moved without its side files.
    pub fn checkpoint_file(path: &Path) -> Result<(), StoreError> {
        let conn = Connection::open(path)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use crate::Org;
    use custos_audit::{Actor, AuditAction, AuditEvent};

    fn event(n: i64) -> AuditEvent {
        AuditEvent::new(
            jiff::Timestamp::from_second(n).unwrap(),
            Actor::System,
            AuditAction::BackupReconcile,
        )
        .target(custos_audit::Target::Backup)
        .reason(format!("n_{n}"))
    }

    async fn store_with_orgs(path: &Path) -> SqliteStore {
        let store = SqliteStore::open(path).unwrap();
        for id in ["org-a", "org-b"] {
            let org = Org {
                id: id.into(),
                name: id.into(),
                region: "eu".into(),
                created_at: jiff::Timestamp::from_second(1).unwrap(),
                terminating_since: None,
                terminated_at: None,
                suspended_at: None,
            };
            store.create_org(&org, &[event(1)]).await.unwrap();
        }
        store
    }

    #[tokio::test]
    async fn a_snapshot_passes_the_check_and_counts_every_org() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("custos.db");
        let store = store_with_orgs(&live).await;
        let snapshot = dir.path().join("snapshot.db");
        SqliteStore::snapshot_file(&live, &snapshot).unwrap();
        assert_eq!(SqliteStore::integrity_problem(&snapshot).unwrap(), None);
        let counts = SqliteStore::snapshot_counts(&snapshot).unwrap();
        assert_eq!(counts.audit_entries, store.audit_size().await.unwrap());
        let want: BTreeMap<String, u64> = [("org-a".to_string(), 0), ("org-b".to_string(), 0)]
            .into_iter()
            .collect();
        assert_eq!(counts.records, want);
    }

    #[tokio::test]
    async fn a_log_begins_with_its_own_prefix_and_not_with_another() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.db");
        let store = store_with_orgs(&a).await;
        let prefix = dir.path().join("prefix.db");
        SqliteStore::snapshot_file(&a, &prefix).unwrap();
        let n = store.audit_size().await.unwrap();
        store.append_audit(&[event(2), event(3)]).await.unwrap();
        drop(store);
        SqliteStore::checkpoint_file(&a).unwrap();
        assert!(SqliteStore::audit_log_begins_with(&a, &prefix, n).unwrap());
        // More entries asked for than the prefix holds.
        assert!(!SqliteStore::audit_log_begins_with(&a, &prefix, n + 1).unwrap());

        let other = dir.path().join("other.db");
        let store = SqliteStore::open(&other).unwrap();
        store.append_audit(&[event(7), event(8)]).await.unwrap();
        drop(store);
        assert!(!SqliteStore::audit_log_begins_with(&other, &prefix, n).unwrap());
    }

    #[test]
    fn a_file_that_is_not_a_database_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.db");
        std::fs::write(&path, vec![7u8; 8192]).unwrap();
        assert!(SqliteStore::integrity_problem(&path).is_err());
    }
}
