//! Restores of data backups over a deployment's database and objects, and reconciles from
//! another database's audit log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use custos_policy::Policy;
use custos_store::{ObjectLocation, Objects, PgStore, SqliteStore, Store};

use crate::archive;
use crate::audit;
use crate::error::{create_private_dir, io, BackupError};
use crate::place::Place;
use crate::reconcile;
use crate::{Deployment, Progress, Report, Sources, DATABASE};

/// Opens the store at a database URL (`sqlite:PATH` or `postgres://...`); `what` names it
/// in errors.
pub async fn open_store(url: &str, what: &str) -> Result<Arc<dyn Store>, BackupError> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        if !Path::new(path).is_file() {
            return Err(BackupError::BadInput(format!(
                "{what}: no database at {path}"
            )));
        }
        let store = SqliteStore::open(Path::new(path))
            .map_err(BackupError::store(format!("{what} {url}")))?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::connect(url, None)
            .await
            .map_err(BackupError::store(format!(
                "{what}: cannot open PostgreSQL"
            )))?;
        Ok(Arc::new(store))
    } else {
        Err(BackupError::BadInput(format!(
            "{what} {url:?}: expected sqlite:PATH or postgres://..."
        )))
    }
}

/// `path` with `.replaced-<stamp>` appended.
fn replaced(path: &Path, stamp: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".replaced-{stamp}"));
    PathBuf::from(s)
}

/// Moves a directory, copying when it crosses file systems.
fn move_dir(from: &Path, to: &Path) -> Result<(), BackupError> {
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

/// Whether the audit log in `live` begins with the `n` entries of the one in `restored`:
/// only then can it be replayed onto the restored database.
fn log_continues(live: &Path, restored: &Path, n: u64) -> Result<bool, BackupError> {
    SqliteStore::audit_log_begins_with(live, restored, n)
        .map_err(BackupError::store("comparing audit logs"))
}

/// Sets the live database aside (its WAL folded in first), returning where it went.
fn set_aside(database: &Path, stamp: &str) -> Result<PathBuf, BackupError> {
    SqliteStore::checkpoint_file(database).map_err(BackupError::store(format!(
        "{}: checkpoint",
        database.display()
    )))?;
    let aside = replaced(database, stamp);
    std::fs::rename(database, &aside).map_err(io(database))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = database.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
    Ok(aside)
}

/// Restores a data backup from the place `from` (default the newest) over the deployment's
/// database and objects (`sources`, which need not exist); the replaced ones are kept beside
/// them (`.replaced-<time>`) and, with `replay`, the restored database is reconciled from the
/// replaced one's audit log. Refused, changing nothing, when that log does not begin with the
/// backup's.
pub async fn restore(
    dep: &dyn Deployment,
    policy: &Policy,
    sources: &Sources,
    from: &Path,
    id: Option<&str>,
    replay: bool,
) -> Result<(), BackupError> {
    let started = Instant::now();
    let (database, objects_dir) = (&sources.database, &sources.objects);
    let place = Place::open(from).await?;
    let manifest = archive::choose(place.dir(), id, false)?;
    let vault = dep.key_vault().await?;
    let key = vault
        .backup_key()
        .await
        .map_err(BackupError::keys("backup key"))?;
    place.fetch(&manifest).await?;
    let db_dir = database
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    create_private_dir(&db_dir)?;
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
        && !log_continues(database, &stage.path().join(DATABASE), manifest.audit_size)?
    {
        return Err(BackupError::Failed(format!(
            "the audit log of {} does not begin with backup {}'s, so its later erasures and \
             purges cannot be replayed onto it; nothing was changed (pass --no-reconcile to \
             restore anyway, then reconcile from a copy of the log the backup was taken from)",
            database.display(),
            manifest.id
        )));
    }
    let aside = if live {
        Some(set_aside(database, &stamp)?)
    } else {
        None
    };
    std::fs::rename(stage.path().join(DATABASE), database).map_err(io(database))?;
    let objects_aside = replaced(objects_dir, &stamp);
    if objects_dir.exists() {
        std::fs::rename(objects_dir, &objects_aside).map_err(io(objects_dir))?;
    }
    let staged_objects = stage.path().join("objects");
    if staged_objects.is_dir() {
        move_dir(&staged_objects, objects_dir)?;
    } else {
        std::fs::create_dir_all(objects_dir).map_err(io(objects_dir))?;
    }
    drop(stage);

    let dst = open_store(
        &format!("sqlite:{}", database.display()),
        "restored database",
    )
    .await?;
    let restored = audit::restored(&manifest);
    dep.progress(Progress::Restored {
        manifest: &manifest,
        database,
        objects: objects_dir,
    });
    match (&aside, replay) {
        (Some(aside), true) => {
            let src =
                open_store(&format!("sqlite:{}", aside.display()), "replaced database").await?;
            let objects = Objects::open(&ObjectLocation::File(objects_dir.clone()))
                .map_err(BackupError::store(objects_dir.display().to_string()))?;
            let report = reconcile::reconcile(
                src.as_ref(),
                dst.as_ref(),
                &vault,
                Some(&objects),
                policy,
                Some(manifest.audit_size),
                vec![restored],
            )
            .await
            .map_err(|e| BackupError::Unreconciled {
                replaced: aside.clone(),
                source: Box::new(e),
            })?;
            dep.progress(Progress::Reconciled(&report));
        }
        _ => {
            dst.append_audit(&[restored])
                .await
                .map_err(BackupError::store("auditing the restore"))?;
            dep.progress(Progress::NotReconciled { replaced: live });
        }
    }
    if let Some(aside) = &aside {
        dep.progress(Progress::Replaced {
            database: aside,
            objects: &objects_aside,
        });
    }
    dep.progress(Progress::RestoreTook(started.elapsed()));
    Ok(())
}

/// Replays the audit log of the database at `from` (`sqlite:PATH` or `postgres://...`) on
/// the deployment's database at `here`, its key store and its objects at `objects`.
pub async fn reconcile_from(
    dep: &dyn Deployment,
    policy: &Policy,
    from: &str,
    here: &str,
    objects: &ObjectLocation,
    since: Option<u64>,
) -> Result<Report, BackupError> {
    if from.trim() == here.trim() {
        return Err(BackupError::BadInput(
            "--from names this deployment's own database: give the database that was in use \
             before the restore (or a copy of it)"
                .into(),
        ));
    }
    let src = open_store(from, "--from").await?;
    let dst = open_store(here, "--database").await?;
    let vault = dep.key_vault().await?;
    let objects = Objects::open(objects).map_err(BackupError::store("--objects"))?;
    reconcile::reconcile(
        src.as_ref(),
        dst.as_ref(),
        &vault,
        Some(&objects),
        policy,
        since,
        Vec::new(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_path_keeps_its_name_and_gets_the_stamp() {
        assert_eq!(
            replaced(Path::new("/d/custos.db"), "20250101T000000Z-abcdef"),
            Path::new("/d/custos.db.replaced-20250101T000000Z-abcdef")
        );
    }

    #[test]
    fn a_directory_moves_with_everything_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a");
        std::fs::create_dir_all(from.join("x/y")).unwrap();
        std::fs::write(from.join("x/y/f"), b"1").unwrap();
        let to = dir.path().join("b");
        move_dir(&from, &to).unwrap();
        assert!(!from.exists());
        assert_eq!(std::fs::read(to.join("x/y/f")).unwrap(), b"1");
    }

    #[tokio::test]
    async fn a_store_url_is_named_in_its_errors() {
        let e = open_store("mysql://x", "--from").await.err().unwrap();
        assert!(e.is_bad_input());
        assert_eq!(
            e.to_string(),
            "--from \"mysql://x\": expected sqlite:PATH or postgres://..."
        );
        let e = open_store("sqlite:/nowhere/custos.db", "--database")
            .await
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "--database: no database at /nowhere/custos.db"
        );
    }
}
