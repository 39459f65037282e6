//! Backup directories: sealing and opening files, manifests, taking full and incremental
//! backups, pruning, listing and verifying, and materializing a backup into plain files.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use custos_crypto::BackupKey;
use custos_store::SqliteStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{create_private_dir, io, BackupError};
use crate::place::Place;
use crate::{Deployment, Sources, DATABASE};

/// One backed-up file in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
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

/// A backup's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format (2 since manifests hold record counts).
    pub format: u32,
    /// The backup id (its directory's name).
    pub id: String,
    /// When it was taken.
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
    /// The files, the database first.
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

    /// Plaintext bytes of every file the backup restores.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Plaintext bytes of the files sealed in this backup's own directory.
    pub fn bytes_here(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| f.stored_in.is_none())
            .map(|f| f.size)
            .sum()
    }

    /// How many of its files it reads from older backups.
    pub fn borrowed(&self) -> usize {
        self.files.iter().filter(|f| f.stored_in.is_some()).count()
    }
}

pub(crate) const MANIFEST: &str = "manifest.json";
/// The kind of a key-store backup.
pub(crate) const KEYS_KIND: &str = "keys";

/// What one backup did.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The backup id.
    pub id: String,
    /// `full` or `incremental`.
    pub kind: String,
    /// Where it is (a directory, or `s3://bucket/prefix/<id>`).
    pub shown: String,
    /// Files it restores (the database and every object).
    pub files: usize,
    /// Files sealed into this backup (the rest are read from older ones).
    pub sealed: usize,
    /// Plaintext bytes of every file.
    pub bytes: u64,
    /// Entries in the snapshot's audit log.
    pub audit_size: u64,
    /// Backups pruned afterwards (older than the policy's `[backups]` retention).
    pub pruned: Vec<String>,
}

/// Seals `from` into `to` under `key`; returns its manifest entry.
pub(crate) fn seal_file(
    key: &BackupKey,
    id: &str,
    name: &str,
    from: &Path,
    to: &Path,
) -> Result<Entry, BackupError> {
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

/// Opens the sealed file `from` (sealed for backup `id` as `name`), writing the plaintext to
/// `out` when given; returns its size and SHA-256, or why it does not open.
fn open_file(
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
pub(crate) fn files_under(dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BackupError> {
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
pub(crate) fn manifests(to: &Path) -> Result<Vec<Manifest>, BackupError> {
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
            BackupError::Failed(format!("{}: not a backup manifest: {e}", path.display()))
        })?;
        out.push(manifest);
    }
    out.sort_by_key(|m| m.created);
    Ok(out)
}

/// How many backups the chain ending at `m` holds (1 for a full backup).
pub(crate) fn chain_length(all: &[Manifest], m: &Manifest) -> u32 {
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

/// The backup a new one is taken against: the newest data backup, unless `full` is asked
/// for or its chain already holds `full_every` backups (then `None`: a full backup).
pub fn parent_for(all: &[Manifest], full: bool, full_every: u32) -> Option<&Manifest> {
    all.iter()
        .rfind(|m| m.is_data())
        .filter(|p| !full && chain_length(all, p) < full_every)
}

/// SHA-256 and size of a file.
pub(crate) fn digest_file(path: &Path) -> Result<(u64, String), BackupError> {
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

/// The deployment's backup key.
pub(crate) async fn backup_key(dep: &dyn Deployment) -> Result<BackupKey, BackupError> {
    dep.key_vault()
        .await?
        .backup_key()
        .await
        .map_err(BackupError::keys("backup key"))
}

/// Takes one backup of `sources` into the place `to` (a directory or `s3://bucket/prefix`)
/// and prunes the backups older than `retention`: incremental against the newest data
/// backup unless `full` or its chain already holds `full_every` backups.
pub async fn create(
    dep: &dyn Deployment,
    retention: &custos_policy::Duration,
    sources: &Sources,
    to: &Path,
    full: bool,
    full_every: u32,
) -> Result<Taken, BackupError> {
    let place = Place::open(to).await?;
    let key = backup_key(dep).await?;
    let mut done = take(&key, retention, sources, place.dir(), full, full_every)?;
    place.publish(&done.id, &done.pruned).await?;
    if to.to_string_lossy().starts_with("s3://") {
        done.shown = format!("{}/{}", place.shown(), done.id);
    }
    Ok(done)
}

/// Takes one backup into the directory `to` and prunes the expired ones.
fn take(
    key: &BackupKey,
    retention: &custos_policy::Duration,
    sources: &Sources,
    to: &Path,
    full: bool,
    full_every: u32,
) -> Result<Taken, BackupError> {
    create_private_dir(to)?;
    let all = manifests(to)?;
    let parent = parent_for(&all, full, full_every).cloned();
    let created = jiff::Timestamp::now();
    let id = format!("{}-{}", created.strftime("%Y%m%dT%H%M%SZ"), random_suffix());
    let dir = to.join(&id);
    create_private_dir(&dir)?;
    // A consistent online snapshot that reads one transaction's view while writers go on.
    // It is plaintext only until sealed, in a scratch directory inside the 0700 backup
    // directory that is removed on every way out of this function. The database is sealed
    // whole in every backup, incremental or not: it is small beside the objects.
    let scratch = tempfile::Builder::new()
        .prefix(".snapshot-")
        .tempdir_in(&dir)
        .map_err(io(&dir))?;
    let snapshot = scratch.path().join(DATABASE);
    SqliteStore::snapshot_file(&sources.database, &snapshot).map_err(BackupError::store(
        format!("snapshot of {}", sources.database.display()),
    ))?;
    let counts = SqliteStore::snapshot_counts(&snapshot).map_err(BackupError::store("snapshot"))?;
    let mut files = vec![seal_file(
        key,
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
    for rel in files_under(&sources.objects)? {
        let name = format!("objects/{}", rel.display());
        let path = sources.objects.join(&rel);
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
        files.push(seal_file(key, &id, &name, &path, &to_file)?);
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
        audit_size: counts.audit_entries,
        records: counts.records,
        files,
    };
    write_manifest(&dir, &manifest)?;
    let pruned = prune(to, retention, created)?;
    Ok(Taken {
        id,
        kind: manifest.kind.clone(),
        shown: dir.display().to_string(),
        files: manifest.files.len(),
        sealed,
        bytes: manifest.bytes(),
        audit_size: manifest.audit_size,
        pruned,
    })
}

/// Writes a backup's manifest (last: it marks the backup complete).
pub(crate) fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let text = serde_json::to_vec_pretty(manifest).expect("a manifest serializes");
    custos_crypto::write_secret_file(&dir.join(MANIFEST), &text).map_err(io(dir))
}

/// The backups of `all` to keep at `now`: the newest of each kind, those younger than
/// `retention`, and every backup that holds files a kept one needs (transitively).
pub fn kept<'a>(
    all: &'a [Manifest],
    retention: &custos_policy::Duration,
    now: jiff::Timestamp,
) -> BTreeSet<&'a str> {
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
    keep
}

/// Removes the backups under `to` that [`kept`] does not keep; returns the ids removed.
pub(crate) fn prune(
    to: &Path,
    retention: &custos_policy::Duration,
    now: jiff::Timestamp,
) -> Result<Vec<String>, BackupError> {
    let all = manifests(to)?;
    let keep = kept(&all, retention, now);
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
pub(crate) fn random_suffix() -> String {
    use rand::Rng;
    format!("{:06x}", rand::thread_rng().gen_range(0..0x100_0000u32))
}

/// The backups in a place, oldest first.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The place, as given (a directory or `s3://bucket/prefix`).
    pub shown: String,
    /// The backups' manifests, oldest first.
    pub manifests: Vec<Manifest>,
}

/// Lists the backups in the place `to`.
pub async fn list(to: &Path) -> Result<Listing, BackupError> {
    let place = Place::open(to).await?;
    Ok(Listing {
        manifests: manifests(place.dir())?,
        shown: place.shown(),
    })
}

/// The backup `id` among `all`, or the newest data (`keys`: key-store) backup; `to` names
/// the place in the error.
pub fn choose_from(
    all: Vec<Manifest>,
    id: Option<&str>,
    keys: bool,
    to: &Path,
) -> Result<Manifest, BackupError> {
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
                BackupError::BadInput(format!("no {kind} {id:?} in {}", to.display()))
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
                BackupError::BadInput(format!("no {kind} in {}", to.display()))
            }),
    }
}

/// The backup `id` in the directory `to`, or the newest of its kind.
pub(crate) fn choose(to: &Path, id: Option<&str>, keys: bool) -> Result<Manifest, BackupError> {
    choose_from(manifests(to)?, id, keys, to)
}

/// Opens every file of `manifest` (following its references into older backups), checks
/// each against its entry, and writes the plaintext under `out` when given (`custos.db`,
/// `objects/...`); the database must pass SQLite's integrity check and hold the manifest's
/// audit size. The error names the backup and file.
pub(crate) fn materialize(
    key: &BackupKey,
    to: &Path,
    manifest: &Manifest,
    out: Option<&Path>,
) -> Result<(), BackupError> {
    let scratch = tempfile::tempdir().map_err(|source| BackupError::Io {
        what: "scratch dir".into(),
        source,
    })?;
    for entry in &manifest.files {
        let (sealed, owner) = manifest.sealed_path(to, entry);
        let fail = |why: String| {
            BackupError::Failed(format!("backup {}: {}: {why}", manifest.id, entry.name))
        };
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
            match SqliteStore::integrity_problem(db) {
                Ok(None) => {}
                Ok(Some(problem)) => return Err(fail(format!("integrity check: {problem}"))),
                Err(e) => return Err(fail(format!("integrity check: {e}"))),
            }
            let counts = SqliteStore::snapshot_counts(db).map_err(|e| fail(e.to_string()))?;
            if counts.audit_entries != manifest.audit_size {
                return Err(fail(format!(
                    "audit log has {} entries, the manifest says {}",
                    counts.audit_entries, manifest.audit_size
                )));
            }
        }
    }
    Ok(())
}

/// Checks a data backup in the place `to` (default the newest): every file it needs opens
/// under the backup key and matches its manifest, and the database snapshot passes SQLite's
/// integrity check and holds the manifest's audit size. Returns its manifest.
pub async fn verify(
    dep: &dyn Deployment,
    to: &Path,
    id: Option<&str>,
) -> Result<Manifest, BackupError> {
    let place = Place::open(to).await?;
    let manifest = choose(place.dir(), id, false)?;
    let key = backup_key(dep).await?;
    place.fetch(&manifest).await?;
    materialize(&key, place.dir(), &manifest, None)?;
    Ok(manifest)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A manifest of `kind` taken `hours_ago`, with `parent` and files read from `borrows`.
    pub(crate) fn manifest(
        id: &str,
        kind: &str,
        hours_ago: i64,
        parent: Option<&str>,
        borrows: &[&str],
    ) -> Manifest {
        let mut files = vec![Entry {
            name: DATABASE.into(),
            size: 100,
            sha256: "00".into(),
            stored_in: None,
        }];
        for (i, from) in borrows.iter().enumerate() {
            files.push(Entry {
                name: format!("objects/o{i}"),
                size: 10,
                sha256: "11".into(),
                stored_in: Some(from.to_string()),
            });
        }
        Manifest {
            format: 2,
            id: id.into(),
            created: jiff::Timestamp::now() - jiff::SignedDuration::from_hours(hours_ago),
            kind: kind.into(),
            parent: parent.map(String::from),
            audit_size: 3,
            records: BTreeMap::new(),
            files,
        }
    }

    #[test]
    fn an_incremental_chain_grows_to_full_every_then_starts_over() {
        let mut all = vec![manifest("f", "full", 5, None, &[])];
        assert_eq!(parent_for(&all, false, 3).map(|m| m.id.as_str()), Some("f"));
        assert!(parent_for(&all, true, 3).is_none(), "--full");
        assert!(parent_for(&all, false, 1).is_none(), "--full-every 1");
        all.push(manifest("i1", "incremental", 4, Some("f"), &["f"]));
        // A key-store backup is never a parent.
        all.push(manifest("k", KEYS_KIND, 3, None, &[]));
        assert_eq!(chain_length(&all, &all[1]), 2);
        assert_eq!(
            parent_for(&all, false, 3).map(|m| m.id.as_str()),
            Some("i1")
        );
        all.push(manifest("i2", "incremental", 2, Some("i1"), &["f"]));
        assert_eq!(chain_length(&all, &all[3]), 3);
        assert!(parent_for(&all, false, 3).is_none());
        // No data backup yet: a full one.
        assert!(parent_for(&all[2..3], false, 3).is_none());
        // A chain whose parent is gone counts what is there.
        assert_eq!(chain_length(&all[3..], &all[3]), 1);
    }

    #[test]
    fn pruning_keeps_the_newest_the_young_and_what_they_read_from() {
        let retention: custos_policy::Duration = "1d".parse().unwrap();
        let now = jiff::Timestamp::now();
        let all = vec![
            manifest("old-full", "full", 100, None, &[]),
            manifest(
                "old-inc",
                "incremental",
                90,
                Some("old-full"),
                &["old-full"],
            ),
            manifest("lone", "full", 80, None, &[]),
            manifest("old-keys", KEYS_KIND, 70, None, &[]),
            manifest("young", "incremental", 2, Some("old-inc"), &["old-full"]),
            manifest("keys", KEYS_KIND, 60, None, &[]),
        ];
        let keep = kept(&all, &retention, now);
        let want: BTreeSet<&str> = ["old-full", "young", "keys"].into_iter().collect();
        assert_eq!(keep, want);
    }

    #[test]
    fn a_manifest_counts_its_bytes_and_what_it_borrows() {
        let m = manifest("i", "incremental", 1, Some("f"), &["f", "f"]);
        assert_eq!(m.bytes(), 120);
        assert_eq!(m.bytes_here(), 100);
        assert_eq!(m.borrowed(), 2);
        assert!(m.is_data());
        let (path, owner) = m.sealed_path(Path::new("/b"), &m.files[1]);
        assert_eq!(path, Path::new("/b/f/objects/o0.sealed"));
        assert_eq!(owner, "f");
    }

    #[test]
    fn choosing_names_what_is_missing() {
        let all = vec![
            manifest("a", "full", 3, None, &[]),
            manifest("k", KEYS_KIND, 2, None, &[]),
            manifest("b", "incremental", 1, Some("a"), &[]),
        ];
        let to = Path::new("/b");
        assert_eq!(choose_from(all.clone(), None, false, to).unwrap().id, "b");
        assert_eq!(choose_from(all.clone(), None, true, to).unwrap().id, "k");
        assert_eq!(
            choose_from(all.clone(), Some("a"), false, to).unwrap().id,
            "a"
        );
        let e = choose_from(all.clone(), Some("k"), false, to).unwrap_err();
        assert!(e.is_bad_input());
        assert_eq!(e.to_string(), "no data backup \"k\" in /b");
        let e = choose_from(Vec::new(), None, true, to).unwrap_err();
        assert_eq!(e.to_string(), "no key-store backups in /b");
    }
}
