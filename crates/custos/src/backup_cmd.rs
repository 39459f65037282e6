//! `custos backup create|list|verify`: encrypted backups of an embedded (SQLite + local files)
//! deployment into a directory.
//!
//! A backup is a directory `<to>/<id>/` holding `manifest.json` (written last: a backup without
//! one is incomplete and ignored) and one sealed blob per file: `custos.db.sealed`, a consistent
//! online snapshot of the database (`VACUUM INTO`), and `objects/<path>.sealed` for every
//! object. Each blob is sealed under the backup key from the key store, bound to the backup id
//! and the file's name, so the backup is unreadable without the key store, which it never
//! contains. Exit codes: 0 done, 1 a check failed (`verify` names the file), 2 bad input.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use custos_crypto::BackupKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cli::Global;
use crate::{deploy, Failure};

/// The backup commands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a full, encrypted backup of the database and the objects; then drop backups older
    /// than the policy's [backups] retention (the newest is always kept).
    Create(Target),
    /// List the backups in a directory, oldest first.
    List(Target),
    /// Check a backup (default the newest): every file opens under the backup key and matches
    /// its manifest, and the database snapshot passes SQLite's integrity check; exit 1 naming
    /// the first file that fails.
    Verify(VerifyArgs),
}

/// Where backups go.
#[derive(Debug, Args)]
pub struct Target {
    /// The backup directory (created 0700 if missing).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

/// `custos backup verify` options.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    target: Target,
    /// The backup id (default the newest).
    id: Option<String>,
}

/// One backed-up file in a manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// `custos.db` or `objects/<path>`.
    name: String,
    /// Plaintext bytes.
    size: u64,
    /// SHA-256 of the plaintext, hex.
    sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    id: String,
    created: jiff::Timestamp,
    kind: String,
    /// Entries in the snapshot's audit log: the recovery point, as a log position.
    audit_size: u64,
    files: Vec<Entry>,
}

const MANIFEST: &str = "manifest.json";
const DATABASE: &str = "custos.db";

/// Runs one backup command.
pub async fn run(global: &Global, cmd: BackupCommand) -> Result<(), Failure> {
    match cmd {
        BackupCommand::Create(t) => create(global, &t.to).await,
        BackupCommand::List(t) => list(&t.to),
        BackupCommand::Verify(a) => verify(global, &a.target.to, a.id.as_deref()).await,
    }
}

/// Fails when this deployment is not one `custos backup` can back up (for `serve
/// --backup-to`, at start).
pub fn check_sources(global: &Global) -> Result<(), Failure> {
    sources(global).map(|_| ())
}

/// `serve --backup-to`: a backup every `every`, the first after one interval; failures are
/// logged (an error each time) and the next one is tried on schedule.
pub async fn run_scheduled(global: Global, to: PathBuf, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        match take(&global, &to).await {
            Ok(done) => tracing::info!(backup = %done.id, files = done.files, bytes = done.bytes,
                audit_size = done.audit_size, pruned = done.pruned.len(), "scheduled backup taken"),
            Err(e) => tracing::error!(error = %e, "scheduled backup failed"),
        }
    }
}

/// What one backup did.
struct Taken {
    id: String,
    dir: PathBuf,
    files: usize,
    bytes: u64,
    audit_size: u64,
    pruned: Vec<String>,
}

/// The embedded deployment's database file and objects directory; anything else is refused
/// with what to use instead.
fn sources(global: &Global) -> Result<(PathBuf, PathBuf), Failure> {
    let database =
        match global.database.as_deref() {
            None => global.data.join(DATABASE),
            Some(url) => match url.strip_prefix("sqlite:") {
                Some(path) => PathBuf::from(path),
                None => return Err(Failure::BadInput(
                    "--database: `custos backup` backs up SQLite deployments; back PostgreSQL up \
                     with its own tools (pg_dump, base backups and WAL archiving, or managed \
                     snapshots), as the README's Keys and backups section describes"
                        .into(),
                )),
            },
        };
    let objects =
        match global.objects.as_deref() {
            None => global.data.join("objects"),
            Some(url) => match url.strip_prefix("file:") {
                Some(dir) => PathBuf::from(dir),
                None => return Err(Failure::BadInput(
                    "--objects: `custos backup` copies a local object directory; for S3 use the \
                     bucket's versioning and replication"
                        .into(),
                )),
            },
        };
    if !database.is_file() {
        return Err(Failure::BadInput(format!(
            "no database at {} (set --data or --database to the deployment's)",
            database.display()
        )));
    }
    Ok((database, objects))
}

async fn backup_key(global: &Global) -> Result<BackupKey, Failure> {
    deploy::open_key_vault(global)
        .await?
        .backup_key()
        .await
        .map_err(|e| Failure::Failed(format!("backup key: {e}")))
}

fn io(what: &Path) -> impl FnOnce(std::io::Error) -> Failure + '_ {
    move |e| Failure::Failed(format!("{}: {e}", what.display()))
}

/// Seals `from` into `to` under `key`; returns its manifest entry.
fn seal_file(
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
    })
}

/// Opens a sealed file, writing the plaintext to `out` when given; the plaintext's size and
/// SHA-256, or why it does not open.
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
fn manifests(to: &Path) -> Result<Vec<Manifest>, Failure> {
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

async fn create(global: &Global, to: &Path) -> Result<(), Failure> {
    let done = take(global, to).await?;
    println!(
        "backup {}: database and {} object(s), {} bytes, audit log at {} entries -> {}",
        done.id,
        done.files - 1,
        done.bytes,
        done.audit_size,
        done.dir.display()
    );
    for id in done.pruned {
        println!("pruned backup {id} (older than the policy's [backups] retention)");
    }
    Ok(())
}

/// Takes one backup into `to` and prunes the expired ones.
async fn take(global: &Global, to: &Path) -> Result<Taken, Failure> {
    let (policy, _) = deploy::load_policy(global)?;
    let (database, objects) = sources(global)?;
    let key = backup_key(global).await?;
    deploy::create_private_dir(to)?;
    let created = jiff::Timestamp::now();
    let id = format!("{}-{}", created.strftime("%Y%m%dT%H%M%SZ"), random_suffix());
    let dir = to.join(&id);
    deploy::create_private_dir(&dir)?;
    // A consistent online snapshot: `VACUUM INTO` reads one transaction's view while writers
    // go on. It is plaintext only until sealed, in a scratch directory inside the 0700 backup
    // directory that is removed on every way out of this function.
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
    let audit_size: u64 = rusqlite::Connection::open(&snapshot)
        .and_then(|c| c.query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0)))
        .map_err(|e| Failure::Failed(format!("snapshot: {e}")))?;
    let mut files = vec![seal_file(
        &key,
        &id,
        DATABASE,
        &snapshot,
        &dir.join(format!("{DATABASE}.sealed")),
    )?];
    drop(scratch);
    for rel in files_under(&objects)? {
        let name = format!("objects/{}", rel.display());
        let sealed = dir.join(format!("{name}.sealed"));
        files.push(seal_file(&key, &id, &name, &objects.join(&rel), &sealed)?);
    }
    let manifest = Manifest {
        format: 1,
        id: id.clone(),
        created,
        kind: "full".into(),
        audit_size,
        files,
    };
    let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    custos_crypto::write_secret_file(&dir.join(MANIFEST), &text).map_err(io(&dir))?;
    let pruned = prune(to, &policy.backups.retention, created)?;
    Ok(Taken {
        id,
        dir,
        files: manifest.files.len(),
        bytes: manifest.files.iter().map(|f| f.size).sum(),
        audit_size,
        pruned,
    })
}

/// Removes backups older than `retention`, always keeping the newest; returns the ids removed.
fn prune(
    to: &Path,
    retention: &custos_policy::Duration,
    now: jiff::Timestamp,
) -> Result<Vec<String>, Failure> {
    let all = manifests(to)?;
    let Some((_, older)) = all.split_last() else {
        return Ok(Vec::new());
    };
    let mut pruned = Vec::new();
    for m in older {
        if retention.add_to(m.created) <= now {
            let dir = to.join(&m.id);
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            pruned.push(m.id.clone());
        }
    }
    Ok(pruned)
}

/// Six random hex digits: two backups in one second get different ids.
fn random_suffix() -> String {
    use rand::Rng;
    format!("{:06x}", rand::thread_rng().gen_range(0..0x100_0000u32))
}

fn list(to: &Path) -> Result<(), Failure> {
    let all = manifests(to)?;
    if all.is_empty() {
        println!("no backups in {}", to.display());
        return Ok(());
    }
    println!(
        "{:<30} {:<22} {:<5} {:>12} {:>10}",
        "id", "created", "kind", "bytes", "audit"
    );
    for m in all {
        let bytes: u64 = m.files.iter().map(|f| f.size).sum();
        println!(
            "{:<30} {:<22} {:<5} {:>12} {:>10}",
            m.id,
            m.created.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            m.kind,
            bytes,
            m.audit_size
        );
    }
    Ok(())
}

async fn verify(global: &Global, to: &Path, id: Option<&str>) -> Result<(), Failure> {
    let all = manifests(to)?;
    let manifest = match id {
        Some(id) => all
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| Failure::BadInput(format!("no backup {id:?} in {}", to.display())))?,
        None => all
            .into_iter()
            .last()
            .ok_or_else(|| Failure::BadInput(format!("no backups in {}", to.display())))?,
    };
    let key = backup_key(global).await?;
    let dir = to.join(&manifest.id);
    let scratch = tempfile::tempdir().map_err(|e| Failure::Failed(format!("scratch dir: {e}")))?;
    for entry in &manifest.files {
        let sealed = dir.join(format!("{}.sealed", entry.name));
        let fail =
            |why: String| Failure::Failed(format!("backup {}: {}: {why}", manifest.id, entry.name));
        let mut plain = None;
        let db_copy = scratch.path().join(DATABASE);
        if entry.name == DATABASE {
            plain = Some(std::fs::File::create(&db_copy).map_err(io(&db_copy))?);
        }
        let (size, sha256) =
            open_file(&key, &manifest.id, &entry.name, &sealed, plain.as_mut()).map_err(fail)?;
        if size != entry.size || sha256 != entry.sha256 {
            return Err(fail("does not match its manifest entry".into()));
        }
        if entry.name == DATABASE {
            drop(plain);
            let conn = rusqlite::Connection::open(&db_copy)
                .map_err(|e| fail(format!("not a database: {e}")))?;
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .map_err(|e| fail(format!("integrity check: {e}")))?;
            if check != "ok" {
                return Err(fail(format!("integrity check: {check}")));
            }
            let audit: u64 = conn
                .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
                .map_err(|e| fail(format!("audit log: {e}")))?;
            if audit != manifest.audit_size {
                return Err(fail(format!(
                    "audit log has {audit} entries, the manifest says {}",
                    manifest.audit_size
                )));
            }
        }
    }
    println!(
        "backup {}: ok ({} files open under the backup key and match; database integrity ok; audit log at {} entries)",
        manifest.id,
        manifest.files.len(),
        manifest.audit_size
    );
    Ok(())
}
