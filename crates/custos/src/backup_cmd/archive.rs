//! Backup directories: sealing and opening files, manifests, taking full and incremental
//! backups, pruning, listing and verifying, and materializing a backup into plain files.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use custos_crypto::BackupKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::place::Place;
use super::{backup_key, io, sources, DATABASE};
use crate::cli::Global;
use crate::{deploy, Failure};

/// One backed-up file in a manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Entry {
    /// `custos.db`, `objects/<path>` or `keys.db`.
    pub name: String,
    /// Plaintext bytes.
    pub size: u64,
    /// SHA-256 of the plaintext, hex.
    pub sha256: String,
    /// The backup whose directory holds the sealed file, when not this one (an unchanged
    /// object of an incremental backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_in: Option<String>,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub format: u32,
    pub id: String,
    pub created: jiff::Timestamp,
    /// `full`, `incremental` or `keys`.
    pub kind: String,
    /// The backup an incremental one was taken against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Entries in the snapshot's audit log: the recovery point, as a log position.
    pub audit_size: u64,
    /// Records per org in the snapshot, for the drill's count checks.
    #[serde(default)]
    pub records: BTreeMap<String, u64>,
    pub files: Vec<Entry>,
}

impl Manifest {
    /// Whether this is a data backup (not a key-store one).
    pub fn is_data(&self) -> bool {
        self.kind != KEYS_KIND
    }

    /// Where the sealed file of `entry` is, and the backup id it is bound to.
    pub fn sealed_path(&self, to: &Path, entry: &Entry) -> (PathBuf, String) {
        let owner = entry.stored_in.clone().unwrap_or_else(|| self.id.clone());
        (
            to.join(&owner).join(format!("{}.sealed", entry.name)),
            owner,
        )
    }
}

pub(super) const MANIFEST: &str = "manifest.json";
/// The kind of a key-store backup.
pub(super) const KEYS_KIND: &str = "keys";

/// `serve --backup-to`: a backup every `every`, the first after one interval; failures are
/// logged (an error each time) and the next one is tried on schedule.
pub async fn run_scheduled(global: Global, to: PathBuf, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        match take_to(&global, &to, false, 7).await {
            Ok(done) => tracing::info!(backup = %done.id, files = done.files, bytes = done.bytes,
                audit_size = done.audit_size, pruned = done.pruned.len(), "scheduled backup taken"),
            Err(e) => tracing::error!(error = %e, "scheduled backup failed"),
        }
    }
}

/// What one backup did.
struct Taken {
    id: String,
    kind: String,
    dir: PathBuf,
    files: usize,
    /// Files sealed into this backup (the rest are read from older ones).
    sealed: usize,
    bytes: u64,
    audit_size: u64,
    pruned: Vec<String>,
}

/// Seals `from` into `to` under `key`; returns its manifest entry.
pub(super) fn seal_file(
    key: &BackupKey,
    id: &str,
    name: &str,
    from: &Path,
    to: &Path,
) -> Result<Entry, Failure> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut input = std::fs::File::open(from).map_err(io(from))?;
    let mut output = std::fs::File::create(to).map_err(io(to))?;
    let mut sealer = key.encryptor(id, name);
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; custos_crypto::BLOB_CHUNK];
    loop {
        let n = input.read(&mut buf).map_err(io(from))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
        output.write_all(&sealer.push(&buf[..n])).map_err(io(to))?;
    }
    output.write_all(&sealer.finish()).map_err(io(to))?;
    output.sync_all().map_err(io(to))?;
    Ok(Entry {
        name: name.to_string(),
        size,
        sha256: hex::encode(hash.finalize()),
        stored_in: None,
    })
}

/// Opens a sealed file, writing the plaintext to `out` when given; the plaintext's size and
/// SHA-256, or why it does not open.
pub(super) fn open_file(
    key: &BackupKey,
    id: &str,
    name: &str,
    from: &Path,
    mut out: Option<&mut std::fs::File>,
) -> Result<(u64, String), String> {
    let mut input = std::fs::File::open(from).map_err(|e| e.to_string())?;
    let mut opener = key.decryptor(id, name);
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; custos_crypto::BLOB_CHUNK];
    let mut take = |plain: Vec<u8>, out: &mut Option<&mut std::fs::File>| -> Result<(), String> {
        hash.update(&plain);
        size += plain.len() as u64;
        if let Some(f) = out {
            f.write_all(&plain).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    loop {
        let n = input.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        let plain = opener.push(&buf[..n]).map_err(|_| not_authentic())?;
        take(plain, &mut out)?;
    }
    let last = opener.finish().map_err(|_| not_authentic())?;
    take(last, &mut out)?;
    Ok((size, hex::encode(hash.finalize())))
}

fn not_authentic() -> String {
    "does not open under the backup key (modified, truncated, or sealed for another backup)".into()
}

/// Every regular file under `dir`, as paths relative to it (sorted).
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Failure> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(dir)(e)),
        };
        for entry in entries {
            let path = entry.map_err(io(dir))?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else if path.is_file() {
                out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// The manifests under `to`, oldest first (directories without one are incomplete).
pub(super) fn manifests(to: &Path) -> Result<Vec<Manifest>, Failure> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(to) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(to)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io(to))?.path().join(MANIFEST);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            Failure::Failed(format!("{}: not a backup manifest: {e}", path.display()))
        })?;
        out.push(manifest);
    }
    out.sort_by_key(|m| m.created);
    Ok(out)
}

pub(super) async fn create(
    global: &Global,
    to: &Path,
    full: bool,
    full_every: u32,
) -> Result<(), Failure> {
    let done = take_to(global, to, full, full_every).await?;
    println!(
        "backup {} ({}): database and {} object(s) ({} sealed here), {} bytes, audit log at {} entries -> {}",
        done.id,
        done.kind,
        done.files - 1,
        done.sealed - 1,
        done.bytes,
        done.audit_size,
        done.dir.display()
    );
    for id in done.pruned {
        println!("pruned backup {id} (older than the policy's [backups] retention)");
    }
    Ok(())
}

/// How many backups the chain ending at `m` holds (1 for a full backup).
fn chain_length(all: &[Manifest], m: &Manifest) -> u32 {
    let mut n = 1;
    let mut at = m;
    while let Some(parent) = at.parent.as_deref() {
        match all.iter().find(|p| p.id == parent) {
            Some(p) if n < 10_000 => {
                n += 1;
                at = p;
            }
            _ => break,
        }
    }
    n
}

/// SHA-256 and size of a file.
pub(super) fn digest_file(path: &Path) -> Result<(u64, String), Failure> {
    let mut input = std::fs::File::open(path).map_err(io(path))?;
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; custos_crypto::BLOB_CHUNK];
    loop {
        let n = input.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hash.finalize())))
}

/// Records per org in a database snapshot.
fn record_counts(conn: &rusqlite::Connection) -> rusqlite::Result<BTreeMap<String, u64>> {
    let mut stmt = conn.prepare(
        "SELECT o.id, (SELECT count(*) FROM records r WHERE r.org_seq = o.seq) FROM orgs o",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Audit entries and records per org in a database file.
pub(super) fn snapshot_counts(db: &Path) -> Result<(u64, BTreeMap<String, u64>), String> {
    let conn = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    let audit: u64 = conn
        .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
        .map_err(|e| format!("audit log: {e}"))?;
    let records = record_counts(&conn).map_err(|e| format!("records: {e}"))?;
    Ok((audit, records))
}

/// Takes one backup into the place `to` (a directory or S3) and prunes the expired ones.
async fn take_to(
    global: &Global,
    to: &Path,
    full: bool,
    full_every: u32,
) -> Result<Taken, Failure> {
    let place = Place::open(to).await?;
    let mut done = take(global, place.dir(), full, full_every).await?;
    place.publish(&done.id, &done.pruned).await?;
    if to.to_string_lossy().starts_with("s3://") {
        done.dir = PathBuf::from(format!("{}/{}", place.shown(), done.id));
    }
    Ok(done)
}

/// Takes one backup into the directory `to` and prunes the expired ones.
async fn take(global: &Global, to: &Path, full: bool, full_every: u32) -> Result<Taken, Failure> {
    let (policy, _) = deploy::load_policy(global)?;
    let (database, objects) = sources(global)?;
    let key = backup_key(global).await?;
    deploy::create_private_dir(to)?;
    let all = manifests(to)?;
    let parent = all
        .iter()
        .rfind(|m| m.is_data())
        .filter(|p| !full && chain_length(&all, p) < full_every)
        .cloned();
    let created = jiff::Timestamp::now();
    let id = format!("{}-{}", created.strftime("%Y%m%dT%H%M%SZ"), random_suffix());
    let dir = to.join(&id);
    deploy::create_private_dir(&dir)?;
    // A consistent online snapshot: `VACUUM INTO` reads one transaction's view while writers
    // go on. It is plaintext only until sealed, in a scratch directory inside the 0700 backup
    // directory that is removed on every way out of this function. The database is sealed
    // whole in every backup, incremental or not: it is small beside the objects.
    let scratch = tempfile::Builder::new()
        .prefix(".snapshot-")
        .tempdir_in(&dir)
        .map_err(io(&dir))?;
    let snapshot = scratch.path().join(DATABASE);
    let conn = rusqlite::Connection::open(&database)
        .map_err(|e| Failure::Failed(format!("{}: {e}", database.display())))?;
    conn.execute("VACUUM INTO ?1", [snapshot.to_string_lossy()])
        .map_err(|e| Failure::Failed(format!("snapshot of {}: {e}", database.display())))?;
    drop(conn);
    let (audit_size, records) =
        snapshot_counts(&snapshot).map_err(|e| Failure::Failed(format!("snapshot: {e}")))?;
    let mut files = vec![seal_file(
        &key,
        &id,
        DATABASE,
        &snapshot,
        &dir.join(format!("{DATABASE}.sealed")),
    )?];
    drop(scratch);
    let unchanged: BTreeMap<&str, (&Entry, String)> = parent
        .iter()
        .flat_map(|p| {
            p.files.iter().map(move |e| {
                let owner = e.stored_in.clone().unwrap_or_else(|| p.id.clone());
                (e.name.as_str(), (e, owner))
            })
        })
        .collect();
    let mut sealed = 1;
    for rel in files_under(&objects)? {
        let name = format!("objects/{}", rel.display());
        let path = objects.join(&rel);
        if let Some((old, owner)) = unchanged.get(name.as_str()) {
            let (size, sha256) = digest_file(&path)?;
            if size == old.size && sha256 == old.sha256 {
                files.push(Entry {
                    name,
                    size,
                    sha256,
                    stored_in: Some(owner.clone()),
                });
                continue;
            }
        }
        let to_file = dir.join(format!("{name}.sealed"));
        files.push(seal_file(&key, &id, &name, &path, &to_file)?);
        sealed += 1;
    }
    let manifest = Manifest {
        format: 2,
        id: id.clone(),
        created,
        kind: if parent.is_some() {
            "incremental"
        } else {
            "full"
        }
        .into(),
        parent: parent.map(|p| p.id),
        audit_size,
        records,
        files,
    };
    write_manifest(&dir, &manifest)?;
    let pruned = prune(to, &policy.backups.retention, created)?;
    Ok(Taken {
        id,
        kind: manifest.kind.clone(),
        dir,
        files: manifest.files.len(),
        sealed,
        bytes: manifest.files.iter().map(|f| f.size).sum(),
        audit_size,
        pruned,
    })
}

/// Writes a backup's manifest (last: it marks the backup complete).
pub(super) fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), Failure> {
    let text = serde_json::to_vec_pretty(manifest).expect("a manifest serializes");
    custos_crypto::write_secret_file(&dir.join(MANIFEST), &text).map_err(io(dir))
}

/// Removes backups older than `retention`, always keeping the newest of each kind and every
/// backup that holds files a kept one needs; returns the ids removed.
pub(super) fn prune(
    to: &Path,
    retention: &custos_policy::Duration,
    now: jiff::Timestamp,
) -> Result<Vec<String>, Failure> {
    let all = manifests(to)?;
    let newest: BTreeSet<&str> = [
        all.iter().rfind(|m| m.is_data()),
        all.iter().rfind(|m| !m.is_data()),
    ]
    .into_iter()
    .flatten()
    .map(|m| m.id.as_str())
    .collect();
    let mut keep: BTreeSet<&str> = all
        .iter()
        .filter(|m| newest.contains(m.id.as_str()) || retention.add_to(m.created) > now)
        .map(|m| m.id.as_str())
        .collect();
    // Whatever a kept backup reads from another backup keeps that one too, transitively.
    loop {
        let needed: Vec<&str> = all
            .iter()
            .filter(|m| keep.contains(m.id.as_str()))
            .flat_map(|m| m.files.iter().filter_map(|f| f.stored_in.as_deref()))
            .filter(|id| !keep.contains(id))
            .collect();
        if needed.is_empty() {
            break;
        }
        keep.extend(needed);
    }
    let mut pruned = Vec::new();
    for m in &all {
        if !keep.contains(m.id.as_str()) {
            let dir = to.join(&m.id);
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            pruned.push(m.id.clone());
        }
    }
    Ok(pruned)
}

/// Six random hex digits: two backups in one second get different ids.
pub(super) fn random_suffix() -> String {
    use rand::Rng;
    format!("{:06x}", rand::thread_rng().gen_range(0..0x100_0000u32))
}

pub(super) async fn list(to: &Path) -> Result<(), Failure> {
    let place = Place::open(to).await?;
    let all = manifests(place.dir())?;
    if all.is_empty() {
        println!("no backups in {}", place.shown());
        return Ok(());
    }
    println!(
        "{:<30} {:<22} {:<11} {:>12} {:>12} {:>10}",
        "id", "created", "kind", "bytes", "sealed here", "audit"
    );
    for m in all {
        let bytes: u64 = m.files.iter().map(|f| f.size).sum();
        let here: u64 = m
            .files
            .iter()
            .filter(|f| f.stored_in.is_none())
            .map(|f| f.size)
            .sum();
        println!(
            "{:<30} {:<22} {:<11} {:>12} {:>12} {:>10}",
            m.id,
            m.created.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            m.kind,
            bytes,
            here,
            m.audit_size
        );
    }
    Ok(())
}

/// The backup `id` in `to`, or the newest data (`keys`: key-store) backup.
pub(super) fn choose(to: &Path, id: Option<&str>, keys: bool) -> Result<Manifest, Failure> {
    let all = manifests(to)?;
    match id {
        Some(id) => all
            .into_iter()
            .find(|m| m.id == id && m.is_data() != keys)
            .ok_or_else(|| {
                let kind = if keys {
                    "key-store backup"
                } else {
                    "data backup"
                };
                Failure::BadInput(format!("no {kind} {id:?} in {}", to.display()))
            }),
        None => all
            .into_iter()
            .rfind(|m| m.is_data() != keys)
            .ok_or_else(|| {
                let kind = if keys {
                    "key-store backups"
                } else {
                    "data backups"
                };
                Failure::BadInput(format!("no {kind} in {}", to.display()))
            }),
    }
}

/// Opens every file of `manifest` (following its references into older backups), checks
/// each against its entry, and writes the plaintext under `out` when given (`custos.db`,
/// `objects/...`); the database must pass SQLite's integrity check and hold the manifest's
/// audit size. The error names the backup and file.
pub(super) fn materialize(
    key: &BackupKey,
    to: &Path,
    manifest: &Manifest,
    out: Option<&Path>,
) -> Result<(), Failure> {
    let scratch = tempfile::tempdir().map_err(|e| Failure::Failed(format!("scratch dir: {e}")))?;
    for entry in &manifest.files {
        let (sealed, owner) = manifest.sealed_path(to, entry);
        let fail =
            |why: String| Failure::Failed(format!("backup {}: {}: {why}", manifest.id, entry.name));
        let is_db = entry.name == DATABASE;
        let target = match out {
            Some(dir) => Some(dir.join(&entry.name)),
            None if is_db => Some(scratch.path().join(DATABASE)),
            None => None,
        };
        let mut plain = match &target {
            Some(path) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                Some(std::fs::File::create(path).map_err(io(path))?)
            }
            None => None,
        };
        if !sealed.is_file() && entry.stored_in.is_some() {
            return Err(fail(format!(
                "missing: backup {owner}, which holds it, is gone"
            )));
        }
        let (size, sha256) =
            open_file(key, &owner, &entry.name, &sealed, plain.as_mut()).map_err(fail)?;
        if size != entry.size || sha256 != entry.sha256 {
            return Err(fail("does not match its manifest entry".into()));
        }
        if let (true, Some(db)) = (is_db, &target) {
            if let Some(f) = plain.take() {
                f.sync_all().map_err(io(db))?;
            }
            let conn =
                rusqlite::Connection::open(db).map_err(|e| fail(format!("not a database: {e}")))?;
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .map_err(|e| fail(format!("integrity check: {e}")))?;
            if check != "ok" {
                return Err(fail(format!("integrity check: {check}")));
            }
            drop(conn);
            let (audit, _) = snapshot_counts(db).map_err(fail)?;
            if audit != manifest.audit_size {
                return Err(fail(format!(
                    "audit log has {audit} entries, the manifest says {}",
                    manifest.audit_size
                )));
            }
        }
    }
    Ok(())
}

pub(super) async fn verify(global: &Global, to: &Path, id: Option<&str>) -> Result<(), Failure> {
    let place = Place::open(to).await?;
    let manifest = choose(place.dir(), id, false)?;
    let key = backup_key(global).await?;
    place.fetch(&manifest).await?;
    materialize(&key, place.dir(), &manifest, None)?;
    let borrowed = manifest
        .files
        .iter()
        .filter(|f| f.stored_in.is_some())
        .count();
    println!(
        "backup {}: ok ({} files open under the backup key and match, {borrowed} of them read from older backups; database integrity ok; audit log at {} entries)",
        manifest.id,
        manifest.files.len(),
        manifest.audit_size
    );
    Ok(())
}
