//! Key-store backups: a consistent copy of the file key store, kept as a backup of its own
//! kind, never inside a data backup. Restoring one merges it into the key store: a key
//! destroyed since (a tombstone says so, or the audit log records it) stays destroyed.
//!
//! The copy is not sealed under the backup key (that key lives in the key store it would
//! restore); its keys are wrapped by the root key, which it never contains.

use std::path::{Path, PathBuf};

use custos_keystore_sqlite::{KeyCounts, SqliteKeyStore};

use crate::archive::{self, Entry, Manifest, KEYS_KIND};
use crate::audit;
use crate::error::{create_private_dir, io, BackupError};
use crate::place::Place;
use crate::reconcile::replay_key_destructions;
use crate::restore::open_store;
use crate::{Deployment, Progress};

const KEYS_DB: &str = "keys.db";

/// What one key-store backup did.
#[derive(Debug, Clone)]
pub struct KeysTaken {
    /// The backup id.
    pub id: String,
    /// What the copy holds.
    pub counts: KeyCounts,
    /// Bytes of the copy.
    pub size: u64,
    /// The place, as given (a directory or `s3://bucket/prefix`).
    pub shown: String,
    /// Backups pruned afterwards (older than the policy's `[backups]` retention).
    pub pruned: Vec<String>,
}

/// A key-store backup that checked out.
#[derive(Debug, Clone)]
pub struct KeysVerified {
    /// The backup id.
    pub id: String,
    /// What the copy holds.
    pub counts: KeyCounts,
}

/// What a reconcile of the key store alone did.
#[derive(Debug, Clone)]
pub struct KeysReconciled {
    /// The first log index whose destructions were replayed.
    pub since: u64,
    /// Subject keys destroyed again.
    pub keys: usize,
    /// Org key sets destroyed again.
    pub orgs: usize,
}

/// Counts of the key-store file `path`, named by it in errors.
fn counts(path: &Path) -> Result<KeyCounts, BackupError> {
    SqliteKeyStore::file_counts(path).map_err(BackupError::keys(path.display().to_string()))
}

/// Backs up the key-store file `key_db` into the place `to` and prunes the backups older
/// than `retention`.
pub async fn create_keys(
    retention: &custos_policy::Duration,
    key_db: &Path,
    to: &Path,
) -> Result<KeysTaken, BackupError> {
    let place = Place::open(to).await?;
    let to = place.dir();
    create_private_dir(to)?;
    let created = jiff::Timestamp::now();
    let id = format!(
        "{}-keys-{}",
        created.strftime("%Y%m%dT%H%M%SZ"),
        archive::random_suffix()
    );
    let dir = to.join(&id);
    create_private_dir(&dir)?;
    let copy = dir.join(KEYS_DB);
    let store =
        SqliteKeyStore::open(key_db).map_err(BackupError::keys(key_db.display().to_string()))?;
    store
        .snapshot(&copy)
        .await
        .map_err(BackupError::keys(format!("copy of {}", key_db.display())))?;
    let (size, sha256) = archive::digest_file(&copy)?;
    let counts = counts(&copy)?;
    let manifest = Manifest {
        format: 2,
        id: id.clone(),
        created,
        kind: KEYS_KIND.into(),
        parent: None,
        audit_size: 0,
        records: Default::default(),
        files: vec![Entry {
            name: KEYS_DB.into(),
            size,
            sha256,
            stored_in: None,
        }],
    };
    archive::write_manifest(&dir, &manifest)?;
    let pruned = archive::prune(to, retention, created)?;
    place.publish(&id, &pruned).await?;
    Ok(KeysTaken {
        id,
        counts,
        size,
        shown: place.shown(),
        pruned,
    })
}

/// Checks a key-store backup's file against its manifest; returns its path.
fn checked(to: &Path, manifest: &Manifest) -> Result<PathBuf, BackupError> {
    let entry = manifest
        .files
        .first()
        .ok_or_else(|| BackupError::Failed(format!("backup {}: empty manifest", manifest.id)))?;
    let path = to.join(&manifest.id).join(&entry.name);
    let fail =
        |why: String| BackupError::Failed(format!("backup {}: {}: {why}", manifest.id, entry.name));
    let (size, sha256) = archive::digest_file(&path)?;
    if size != entry.size || sha256 != entry.sha256 {
        return Err(fail("does not match its manifest entry".into()));
    }
    match SqliteKeyStore::integrity_problem(&path) {
        Ok(None) => Ok(path),
        Ok(Some(problem)) => Err(fail(format!("integrity check: {problem}"))),
        Err(e) => Err(fail(format!("integrity check: {e}"))),
    }
}

/// Checks a key-store backup in the place `to` (default the newest): its file matches its
/// manifest and passes SQLite's integrity check.
pub async fn verify_keys(to: &Path, id: Option<&str>) -> Result<KeysVerified, BackupError> {
    let place = Place::open(to).await?;
    let manifest = archive::choose(place.dir(), id, true)?;
    place.fetch(&manifest).await?;
    let path = checked(place.dir(), &manifest)?;
    Ok(KeysVerified {
        counts: counts(&path)?,
        id: manifest.id,
    })
}

/// Merges a key-store backup from the place `from` (default the newest) into the key-store
/// file `key_db` (created if lost), then destroys again every key whose destruction the
/// audit log of `database` (a database URL, when the deployment has one) records.
pub async fn restore_keys(
    dep: &dyn Deployment,
    key_db: &Path,
    database: Option<&str>,
    from: &Path,
    id: Option<&str>,
) -> Result<(), BackupError> {
    let place = Place::open(from).await?;
    let manifest = archive::choose(place.dir(), id, true)?;
    place.fetch(&manifest).await?;
    let copy = checked(place.dir(), &manifest)?;
    // Merge from a private copy: attaching writes nothing, but the backup stays untouched.
    let scratch = tempfile::tempdir().map_err(|source| BackupError::Io {
        what: "scratch dir".into(),
        source,
    })?;
    let work = scratch.path().join(KEYS_DB);
    std::fs::copy(&copy, &work).map_err(io(&copy))?;
    if let Some(dir) = key_db.parent() {
        create_private_dir(dir)?;
    }
    let store =
        SqliteKeyStore::open(key_db).map_err(BackupError::keys(key_db.display().to_string()))?;
    let merged = store
        .merge_from(&work)
        .await
        .map_err(BackupError::keys(format!("merging {}", copy.display())))?;
    drop(store);
    dep.progress(Progress::KeysMerged {
        id: &manifest.id,
        into: key_db,
        merged: &merged,
    });
    // The audit log is the record of destruction even where tombstones were lost with the
    // key store itself.
    let Some(url) = database else {
        dep.progress(Progress::KeyDestructionsNotReplayed);
        return Ok(());
    };
    let log = open_store(url, "--database").await?;
    let vault = dep.key_vault().await?;
    let (keys, orgs) = replay_key_destructions(log.as_ref(), &vault, 0).await?;
    log.append_audit(&[audit::keys_restored(&manifest, &merged, keys, orgs.len())])
        .await
        .map_err(BackupError::store("auditing the key-store restore"))?;
    dep.progress(Progress::KeyDestructionsReplayed {
        keys,
        orgs: orgs.len(),
    });
    Ok(())
}

/// After a restore of the key store alone (a PostgreSQL key store restored with its own
/// tools, or a key directory restored from a file backup), destroys again every key whose
/// destruction the audit log of the deployment's `database` records from `since` (default 0).
pub async fn reconcile_keys(
    dep: &dyn Deployment,
    database: &str,
    since: Option<u64>,
) -> Result<KeysReconciled, BackupError> {
    let log = open_store(database, "--database").await?;
    let vault = dep.key_vault().await?;
    let since = since.unwrap_or(0);
    let (keys, orgs) = replay_key_destructions(log.as_ref(), &vault, since).await?;
    log.append_audit(&[audit::keys_reconciled(since, keys, orgs.len())])
        .await
        .map_err(BackupError::store("auditing the reconcile"))?;
    Ok(KeysReconciled {
        since,
        keys,
        orgs: orgs.len(),
    })
}
