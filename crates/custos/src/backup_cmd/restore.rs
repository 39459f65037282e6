//! `custos backup restore`, `reconcile` and `drill`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use custos_audit::{AuditAction, Details};
use custos_store::{ObjectLocation, Objects, PgStore, SqliteStore, Store};

use super::archive;
use super::place::Place;
use super::reconcile::{self, event};
use super::{backup_key, io, locations, DATABASE};
use crate::cli::Global;
use crate::{deploy, Failure};

/// Opens the store at a database URL (`sqlite:PATH` or `postgres://...`).
pub(super) async fn open_store(url: &str, what: &str) -> Result<Arc<dyn Store>, Failure> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        if !Path::new(path).is_file() {
            return Err(Failure::BadInput(format!("{what}: no database at {path}")));
        }
        let store = SqliteStore::open(Path::new(path))
            .map_err(|e| Failure::Failed(format!("{what} {url}: {e}")))?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::connect(url, None)
            .await
            .map_err(|e| Failure::Failed(format!("{what}: cannot open PostgreSQL: {e}")))?;
        Ok(Arc::new(store))
    } else {
        Err(Failure::BadInput(format!(
            "{what} {url:?}: expected sqlite:PATH or postgres://..."
        )))
    }
}

/// The deployment's own database URL.
pub(super) fn database_url(global: &Global) -> String {
    global
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", global.data.join(DATABASE).display()))
}

/// The deployment's object store.
pub(super) fn open_objects(global: &Global) -> Result<Objects, Failure> {
    let location = match &global.objects {
        Some(url) => url
            .parse::<ObjectLocation>()
            .map_err(|e| Failure::BadInput(format!("--objects: {e}")))?,
        None => ObjectLocation::File(global.data.join("objects")),
    };
    Objects::open(&location).map_err(|e| Failure::Failed(format!("--objects: {e}")))
}

/// `path` with `.replaced-<stamp>` appended.
fn replaced(path: &Path, stamp: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".replaced-{stamp}"));
    PathBuf::from(s)
}

/// Moves a directory, copying when it crosses file systems.
fn move_dir(from: &Path, to: &Path) -> Result<(), Failure> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let target = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                copy(&entry.path(), &target)?;
            } else {
                std::fs::copy(entry.path(), &target)?;
            }
        }
        Ok(())
    }
    copy(from, to).map_err(io(to))?;
    std::fs::remove_dir_all(from).map_err(io(from))
}

/// Whether the audit log in `live` begins with the `n` entries of the one in `restored`
/// (same leaves, byte for byte): only then can it be replayed onto the restored database.
fn log_continues(live: &Path, restored: &Path, n: u64) -> Result<bool, Failure> {
    let open = |p: &Path| {
        rusqlite::Connection::open_with_flags(p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| Failure::Failed(format!("{}: {e}", p.display())))
    };
    let (a, b) = (open(live)?, open(restored)?);
    let sql = "SELECT leaf FROM audit_log WHERE idx < ?1 ORDER BY idx";
    let fail = |e: rusqlite::Error| Failure::Failed(format!("comparing audit logs: {e}"));
    let (mut sa, mut sb) = (a.prepare(sql).map_err(fail)?, b.prepare(sql).map_err(fail)?);
    let (mut ra, mut rb) = (
        sa.query([n as i64]).map_err(fail)?,
        sb.query([n as i64]).map_err(fail)?,
    );
    let mut seen = 0u64;
    loop {
        match (ra.next().map_err(fail)?, rb.next().map_err(fail)?) {
            (Some(x), Some(y)) => {
                let (x, y): (Vec<u8>, Vec<u8>) = (x.get(0).map_err(fail)?, y.get(0).map_err(fail)?);
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

/// Sets the live database aside (its WAL folded in first), returning where it went.
fn set_aside(database: &Path, stamp: &str) -> Result<PathBuf, Failure> {
    let conn = rusqlite::Connection::open(database)
        .map_err(|e| Failure::Failed(format!("{}: {e}", database.display())))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(|e| Failure::Failed(format!("{}: checkpoint: {e}", database.display())))?;
    drop(conn);
    let aside = replaced(database, stamp);
    std::fs::rename(database, &aside).map_err(io(database))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = database.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
    Ok(aside)
}

/// `custos backup restore`: the chosen backup replaces the database and the objects; the
/// replaced ones are kept beside them (`.replaced-<time>`) and the restored database is
/// reconciled from the replaced one's audit log.
pub(super) async fn restore(
    global: &Global,
    from: &Path,
    id: Option<&str>,
    replay: bool,
) -> Result<(), Failure> {
    let started = Instant::now();
    let (policy, _) = deploy::load_policy(global)?;
    let (database, objects_dir) = locations(global)?;
    let place = Place::open(from).await?;
    let manifest = archive::choose(place.dir(), id, false)?;
    let key = backup_key(global).await?;
    place.fetch(&manifest).await?;
    let db_dir = database
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    deploy::create_private_dir(&db_dir)?;
    let stage = tempfile::Builder::new()
        .prefix(".custos-restore-")
        .tempdir_in(&db_dir)
        .map_err(io(&db_dir))?;
    archive::materialize(&key, place.dir(), &manifest, Some(stage.path()))?;
    drop(place);

    // Unique even for two restores in one second: a rename would replace an older copy.
    let stamp = format!(
        "{}-{}",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"),
        archive::random_suffix()
    );
    let live = database.is_file();
    if live
        && replay
        && !log_continues(&database, &stage.path().join(DATABASE), manifest.audit_size)?
    {
        return Err(Failure::Failed(format!(
            "the audit log of {} does not begin with backup {}'s, so its later erasures and \
             purges cannot be replayed onto it; nothing was changed (pass --no-reconcile to \
             restore anyway, then reconcile from a copy of the log the backup was taken from)",
            database.display(),
            manifest.id
        )));
    }
    let aside = if live {
        Some(set_aside(&database, &stamp)?)
    } else {
        None
    };
    std::fs::rename(stage.path().join(DATABASE), &database).map_err(io(&database))?;
    let objects_aside = replaced(&objects_dir, &stamp);
    if objects_dir.exists() {
        std::fs::rename(&objects_dir, &objects_aside).map_err(io(&objects_dir))?;
    }
    let staged_objects = stage.path().join("objects");
    if staged_objects.is_dir() {
        move_dir(&staged_objects, &objects_dir)?;
    } else {
        std::fs::create_dir_all(&objects_dir).map_err(io(&objects_dir))?;
    }
    drop(stage);

    let dst = open_store(
        &format!("sqlite:{}", database.display()),
        "restored database",
    )
    .await?;
    let restored = event(
        AuditAction::BackupRestore,
        Details::new()
            .backup(manifest.id.clone())
            .backup_kind(manifest.kind.to_string())
            .audit_size(manifest.audit_size)
            .files(manifest.files.len() as u64),
    );
    println!(
        "restored backup {} (taken {}, audit log at {} entries): database {}, {} object(s) {}",
        manifest.id,
        manifest.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        manifest.audit_size,
        database.display(),
        manifest.files.len() - 1,
        objects_dir.display()
    );
    match (&aside, replay) {
        (Some(aside), true) => {
            let src =
                open_store(&format!("sqlite:{}", aside.display()), "replaced database").await?;
            let vault = deploy::open_key_vault(global).await?;
            let objects = Objects::open(&ObjectLocation::File(objects_dir.clone()))
                .map_err(|e| Failure::Failed(e.to_string()))?;
            let report = reconcile::reconcile(
                src.as_ref(),
                dst.as_ref(),
                &vault,
                Some(&objects),
                &policy,
                Some(manifest.audit_size),
                vec![restored],
            )
            .await
            .map_err(|e| {
                Failure::Failed(format!(
                    "{e}\nthe backup is restored; finish with `custos backup reconcile --from \
                     sqlite:{}`",
                    aside.display()
                ))
            })?;
            print_report(&report);
        }
        _ => {
            dst.append_audit(&[restored])
                .await
                .map_err(|e| Failure::Failed(format!("auditing the restore: {e}")))?;
            println!(
                "not reconciled ({}): run `custos backup reconcile --from URL` with the audit \
                 log that ran past this backup",
                if live {
                    "--no-reconcile"
                } else {
                    "there was no database to replace"
                }
            );
        }
    }
    if let Some(aside) = &aside {
        println!(
            "the replaced database is at {} and the replaced objects at {}: remove them once \
             no longer needed (their content stays sealed under the key store's keys)",
            aside.display(),
            objects_aside.display()
        );
    }
    println!("restore took {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn print_report(r: &reconcile::Report) {
    println!(
        "reconciled from audit index {}: {} log entries appended, {} checkpoint(s) copied, {} subject key(s) and {} org key set(s) destroyed, {} record(s) purged, {} object(s) deleted, {} PII token(s) destroyed, {} org termination(s) replayed, {} pending deletion(s) marked for purge and {} soft delete(s) replayed",
        r.since,
        r.appended,
        r.checkpoints,
        r.keys_destroyed,
        r.orgs_destroyed,
        r.records_purged,
        r.objects_deleted,
        r.tokens_destroyed,
        r.terminations,
        r.marked_for_purge,
        r.soft_deleted
    );
}

/// `custos backup reconcile --from URL`: replays the audit log of `from` on this
/// deployment's database (SQLite or PostgreSQL), key store and objects.
pub(super) async fn reconcile_from(
    global: &Global,
    from: &str,
    since: Option<u64>,
) -> Result<(), Failure> {
    let here = database_url(global);
    if from.trim() == here.trim() {
        return Err(Failure::BadInput(
            "--from names this deployment's own database: give the database that was in use \
             before the restore (or a copy of it)"
                .into(),
        ));
    }
    let (policy, _) = deploy::load_policy(global)?;
    let src = open_store(from, "--from").await?;
    let dst = open_store(&here, "--database").await?;
    let vault = deploy::open_key_vault(global).await?;
    let objects = open_objects(global)?;
    let report = reconcile::reconcile(
        src.as_ref(),
        dst.as_ref(),
        &vault,
        Some(&objects),
        &policy,
        since,
        Vec::new(),
    )
    .await?;
    print_report(&report);
    Ok(())
}

/// A duration for people: seconds, minutes or hours.
fn human(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// `custos backup drill`: restores the newest backup into a scratch directory, checks it,
/// and measures recovery time and point against the policy.
pub(super) async fn drill(
    global: &Global,
    from: &Path,
    scratch: Option<&Path>,
) -> Result<(), Failure> {
    let (policy, _) = deploy::load_policy(global)?;
    // A PostgreSQL deployment is refused here, with what to do instead.
    let (database, objects) = locations(global)?;
    let start_time = jiff::Timestamp::now();
    let started = Instant::now();
    let place = Place::open(from).await?;
    let manifest = archive::choose(place.dir(), None, false)?;
    let key = backup_key(global).await?;
    place.fetch(&manifest).await?;
    let temp;
    let dir = match scratch {
        Some(dir) => {
            let live = [global.data.as_path(), database.as_path(), objects.as_path()];
            let abs = std::path::absolute(dir).map_err(io(dir))?;
            if live
                .iter()
                .filter_map(|p| std::path::absolute(p).ok())
                .any(|p| p == abs || p.starts_with(&abs) || abs.starts_with(&p))
            {
                return Err(Failure::BadInput(format!(
                    "--scratch {}: overlaps the deployment's own data; give a directory of its own",
                    dir.display()
                )));
            }
            if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
                return Err(Failure::BadInput(format!(
                    "--scratch {}: not empty",
                    dir.display()
                )));
            }
            deploy::create_private_dir(dir)?;
            dir.to_path_buf()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("custos-drill-")
                .tempdir()
                .map_err(|e| Failure::Failed(format!("scratch dir: {e}")))?;
            temp.path().to_path_buf()
        }
    };
    let data = dir.join("data");
    deploy::create_private_dir(&data)?;
    archive::materialize(&key, place.dir(), &manifest, Some(&data))?;
    drop(place);
    println!(
        "drill: backup {} ({}, taken {}) restored into {}",
        manifest.id,
        manifest.kind,
        manifest.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        data.display()
    );
    let mut failures = Vec::new();

    // Counts: what the snapshot held when it was taken.
    let (audit, records) = archive::snapshot_counts(&data.join(DATABASE))
        .map_err(|e| Failure::Failed(format!("restored database: {e}")))?;
    let objects = files_count(&data.join("objects"));
    let expected_objects = manifest.files.len() - 1;
    let total: u64 = records.values().sum();
    if audit != manifest.audit_size {
        failures.push(format!(
            "audit entries: {audit}, the backup recorded {}",
            manifest.audit_size
        ));
    }
    if manifest.format >= 2 && records != manifest.records {
        failures.push(format!(
            "records per org differ from the backup's manifest ({total} records in {} orgs)",
            records.len()
        ));
    }
    if objects != expected_objects {
        failures.push(format!(
            "objects: {objects}, the backup holds {expected_objects}"
        ));
    }
    println!(
        "  counts: {total} record(s) in {} org(s), {audit} audit entries, {objects} object(s){}",
        records.len(),
        if failures.is_empty() {
            ": match the backup's manifest"
        } else {
            ""
        }
    );

    // The audit log, verified as `custos audit verify` does, against the deployment's
    // signing key.
    let scratch_global = Global {
        data: data.clone(),
        database: None,
        objects: None,
        keys: Some(
            global
                .keys
                .clone()
                .unwrap_or_else(|| global.data.join("keys").display().to_string()),
        ),
        ..global.clone()
    };
    let deployment = deploy::open(&scratch_global).await?;
    let custos = std::sync::Arc::try_unwrap(deployment.custos)
        .map_err(|_| Failure::Failed("services are shared before start".into()))?
        .with_audit_signer(deployment.signer.clone());
    match custos.verify_audit_log(None, &[]).await? {
        Ok(v) => println!(
            "  audit log verified: {} entries, {} signed checkpoint(s)",
            v.entries, v.checkpoints_verified
        ),
        Err(f) => failures.push(format!("audit verify FAILED: {f}")),
    }
    drop(custos);

    let took = started.elapsed();
    let now = jiff::Timestamp::now();
    let rto = policy.backups.rto;
    let rpo = policy.backups.rpo;
    let rto_met = rto.add_to(start_time)
        >= start_time + jiff::SignedDuration::try_from(took).unwrap_or(jiff::SignedDuration::MAX);
    let age = now.duration_since(manifest.created).unsigned_abs();
    let rpo_met = rpo.add_to(manifest.created) >= now;
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!(
        "recovery time {} (policy rto {rto}: {})",
        human(took),
        verdict(rto_met)
    );
    println!(
        "recovery point {} before now (policy rpo {rpo}: {})",
        human(age),
        verdict(rpo_met)
    );
    if !rto_met {
        failures.push(format!(
            "recovery time {} exceeds the rto {rto}",
            human(took)
        ));
    }
    if !rpo_met {
        failures.push(format!(
            "the newest backup is {} old, beyond the rpo {rpo}",
            human(age)
        ));
    }
    if !failures.is_empty() {
        return Err(Failure::Failed(format!(
            "drill failed: {}",
            failures.join("; ")
        )));
    }
    println!("drill passed");
    Ok(())
}

/// How many files are under `dir`.
fn files_count(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                files_count(&p)
            } else {
                1
            }
        })
        .sum()
}
