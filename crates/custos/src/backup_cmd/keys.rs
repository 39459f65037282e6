//! Key-store backups (`--key-store`): a consistent copy of the file key store, kept as a
//! backup of its own kind, never inside a data backup. Restoring one merges it into the key
//! store: a key destroyed since (a tombstone says so, or the audit log records it) stays
//! destroyed.
//!
//! The copy is not sealed under the backup key (that key lives in the key store it would
//! restore); its keys are wrapped by the root key, which it never contains.

use std::path::{Path, PathBuf};

use custos_audit::{AuditAction, Details};
use custos_keystore_sqlite::SqliteKeyStore;

use super::archive::{self, Entry, Manifest, KEYS_KIND};
use super::place::Place;
use super::reconcile::{event, replay_key_destructions};
use super::restore::{database_url, open_store};
use super::{io, DATABASE};
use crate::cli::Global;
use crate::{deploy, Failure};

const KEYS_DB: &str = "keys.db";

/// The file key store's `keys.db`, or why there is none to back up.
fn key_db(global: &Global) -> Result<PathBuf, Failure> {
    match global.keys.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Err(Failure::BadInput(
                "--keys: a PostgreSQL key store is backed up with PostgreSQL's own tools \
                 (pg_dump, base backups and WAL archiving), kept apart from the data's; after \
                 restoring it, run `custos backup reconcile` so destroyed keys stay destroyed"
                    .into(),
            ))
        }
        Some(dir) => Ok(Path::new(dir).join(KEYS_DB)),
        None => Ok(global.data.join("keys").join(KEYS_DB)),
    }
}

/// Counts of a key database: org keys, subject keys, tombstones.
fn key_counts(db: &Path) -> Result<(u64, u64, u64), String> {
    let conn = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    let count = |table: &str| -> Result<u64, String> {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .map_err(|e| format!("{table}: {e}"))
    };
    Ok((
        count("org_keys")?,
        count("subject_keys")?,
        count("destroyed_keys").unwrap_or(0),
    ))
}

/// `custos backup create --key-store`.
pub(super) async fn create(global: &Global, to: &Path) -> Result<(), Failure> {
    let (policy, _) = deploy::load_policy(global)?;
    let db = key_db(global)?;
    if !db.is_file() {
        return Err(Failure::BadInput(format!(
            "no key store at {} (set --data or --keys to the deployment's)",
            db.display()
        )));
    }
    let place = Place::open(to).await?;
    let to = place.dir();
    deploy::create_private_dir(to)?;
    let created = jiff::Timestamp::now();
    let id = format!(
        "{}-keys-{}",
        created.strftime("%Y%m%dT%H%M%SZ"),
        archive::random_suffix()
    );
    let dir = to.join(&id);
    deploy::create_private_dir(&dir)?;
    let copy = dir.join(KEYS_DB);
    let store = SqliteKeyStore::open(&db).map_err(|e| Failure::Failed(e.to_string()))?;
    store
        .snapshot(&copy)
        .await
        .map_err(|e| Failure::Failed(format!("copy of {}: {e}", db.display())))?;
    let (size, sha256) = archive::digest_file(&copy)?;
    let (orgs, subjects, tombstones) =
        key_counts(&copy).map_err(|e| Failure::Failed(format!("{}: {e}", copy.display())))?;
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
    let pruned = archive::prune(to, &policy.backups.retention, created)?;
    place.publish(&id, &pruned).await?;
    println!(
        "key-store backup {id}: {orgs} org key version(s), {subjects} subject key(s), {tombstones} tombstone(s), {size} bytes -> {}/{id} (keys wrapped by the root key, which it does not contain)",
        place.shown()
    );
    for id in pruned {
        println!("pruned backup {id} (older than the policy's [backups] retention)");
    }
    Ok(())
}

/// Checks a key-store backup's file against its manifest; returns its path.
fn checked(to: &Path, manifest: &Manifest) -> Result<PathBuf, Failure> {
    let entry = manifest
        .files
        .first()
        .ok_or_else(|| Failure::Failed(format!("backup {}: empty manifest", manifest.id)))?;
    let path = to.join(&manifest.id).join(&entry.name);
    let fail =
        |why: String| Failure::Failed(format!("backup {}: {}: {why}", manifest.id, entry.name));
    let (size, sha256) = archive::digest_file(&path)?;
    if size != entry.size || sha256 != entry.sha256 {
        return Err(fail("does not match its manifest entry".into()));
    }
    let conn = rusqlite::Connection::open(&path).map_err(|e| fail(e.to_string()))?;
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| fail(format!("integrity check: {e}")))?;
    if check != "ok" {
        return Err(fail(format!("integrity check: {check}")));
    }
    Ok(path)
}

/// `custos backup verify --key-store`.
pub(super) async fn verify(to: &Path, id: Option<&str>) -> Result<(), Failure> {
    let place = Place::open(to).await?;
    let manifest = archive::choose(place.dir(), id, true)?;
    place.fetch(&manifest).await?;
    let path = checked(place.dir(), &manifest)?;
    let (orgs, subjects, tombstones) =
        key_counts(&path).map_err(|e| Failure::Failed(format!("{}: {e}", path.display())))?;
    println!(
        "key-store backup {}: ok ({orgs} org key version(s), {subjects} subject key(s), {tombstones} tombstone(s); integrity ok)",
        manifest.id
    );
    Ok(())
}

/// `custos backup restore --key-store`: merges the backup into the key store (created if
/// lost), then destroys again every key whose destruction the data's audit log records.
pub(super) async fn restore(global: &Global, from: &Path, id: Option<&str>) -> Result<(), Failure> {
    let place = Place::open(from).await?;
    let manifest = archive::choose(place.dir(), id, true)?;
    place.fetch(&manifest).await?;
    let copy = checked(place.dir(), &manifest)?;
    let db = key_db(global)?;
    // Merge from a private copy: attaching writes nothing, but the backup stays untouched.
    let scratch = tempfile::tempdir().map_err(|e| Failure::Failed(format!("scratch dir: {e}")))?;
    let work = scratch.path().join(KEYS_DB);
    std::fs::copy(&copy, &work).map_err(io(&copy))?;
    if let Some(dir) = db.parent() {
        deploy::create_private_dir(dir)?;
    }
    let store = SqliteKeyStore::open(&db).map_err(|e| Failure::Failed(e.to_string()))?;
    let merged = store
        .merge_from(&work)
        .await
        .map_err(|e| Failure::Failed(format!("merging {}: {e}", copy.display())))?;
    drop(store);
    println!(
        "merged key-store backup {} into {}: {} org key version(s), {} subject key(s), {} deployment key(s) brought back; {} destroyed key(s) kept out by tombstones",
        manifest.id,
        db.display(),
        merged.org_keys,
        merged.subject_keys,
        merged.deployment_keys,
        merged.refused_destroyed
    );
    // The audit log is the record of destruction even where tombstones were lost with the
    // key store itself.
    let url = database_url(global);
    let has_db = global.database.is_some() || global.data.join(DATABASE).is_file();
    if !has_db {
        println!(
            "no database at {}: destructions in the audit log were not replayed; run this again \
             with --data or --database set to the deployment's",
            global.data.join(DATABASE).display()
        );
        return Ok(());
    }
    let log = open_store(&url, "--database").await?;
    let vault = deploy::open_key_vault(global).await?;
    let (keys, orgs) = replay_key_destructions(log.as_ref(), &vault, 0).await?;
    log.append_audit(&[event(
        AuditAction::BackupKeysRestore,
        Details::new()
            .backup(manifest.id.clone())
            .org_keys(merged.org_keys as u64)
            .subject_keys(merged.subject_keys as u64)
            .deployment_keys(merged.deployment_keys as u64)
            .refused_destroyed(merged.refused_destroyed as u64)
            .keys_destroyed(keys as u64)
            .orgs_destroyed(orgs.len() as u64),
    )])
    .await
    .map_err(|e| Failure::Failed(format!("auditing the key-store restore: {e}")))?;
    println!(
        "replayed the audit log's key destructions: {keys} subject key(s) and {} org key set(s) destroyed again",
        orgs.len()
    );
    Ok(())
}

/// `custos backup reconcile` without `--from`: after a restore of the key store alone (a
/// PostgreSQL key store restored with its own tools, or a key directory restored from a file
/// backup), every key destruction this deployment's audit log records is done again.
pub(super) async fn reconcile_keys(global: &Global, since: Option<u64>) -> Result<(), Failure> {
    let log = open_store(&database_url(global), "--database").await?;
    let vault = deploy::open_key_vault(global).await?;
    let since = since.unwrap_or(0);
    let (keys, orgs) = replay_key_destructions(log.as_ref(), &vault, since).await?;
    log.append_audit(&[event(
        AuditAction::BackupReconcile,
        Details::new()
            .phase("done")
            .key_store_only(true)
            .from_index(since)
            .keys_destroyed(keys as u64)
            .orgs_destroyed(orgs.len() as u64),
    )])
    .await
    .map_err(|e| Failure::Failed(format!("auditing the reconcile: {e}")))?;
    println!(
        "reconciled the key store from this deployment's audit log (from index {since}): {keys} subject key(s) and {} org key set(s) destroyed again",
        orgs.len()
    );
    Ok(())
}
