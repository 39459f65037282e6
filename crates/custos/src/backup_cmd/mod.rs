//! `custos backup create|list|verify|restore|reconcile|drill`: encrypted backups of an
//! embedded (SQLite + local files) deployment, restores that an erasure still reaches, and
//! drills that measure recovery time and recovery point.
//!
//! A backup is a directory `<to>/<id>/` holding `manifest.json` (written last: a backup without
//! one is incomplete and ignored) and one sealed blob per file: `custos.db.sealed`, a consistent
//! online snapshot of the database (`VACUUM INTO`), and `objects/<path>.sealed` for every
//! object. Each blob is sealed under the backup key from the key store, bound to the backup id
//! and the file's name, so the backup is unreadable without the key store, which it never
//! contains. An incremental backup seals the database again but only the objects that changed
//! since its parent; its manifest names the backup that holds each unchanged one. Key-store
//! backups (`--key-store`) are separate directories of their own kind. The place may also be
//! `s3://bucket/prefix` ([`place`]).
//!
//! After a restore, [`reconcile`] replays from the audit log every erasure, purge and key
//! destruction recorded after the backup was taken, so nothing erased comes back.
//! Exit codes: 0 done, 1 a check failed (the message names the file or check), 2 bad input.

mod archive;
mod keys;
mod pending;
mod place;
mod reconcile;
mod restore;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use custos_crypto::BackupKey;

use crate::cli::Global;
use crate::{deploy, Failure};

pub use archive::run_scheduled;

/// The backup commands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take an encrypted backup of the database and the objects (incremental unless --full or
    /// the chain is --full-every long); then drop backups older than the policy's [backups]
    /// retention (the newest, and any a kept backup depends on, are always kept). With
    /// --key-store, back up the key store instead, as a backup of its own.
    Create(CreateArgs),
    /// List the backups in a directory, oldest first.
    List(Target),
    /// Check a backup (default the newest data backup): every file it needs opens under the
    /// backup key and matches its manifest, and the database snapshot passes SQLite's
    /// integrity check; exit 1 naming the first file that fails.
    Verify(Chosen),
    /// Restore a backup (default the newest) over the deployment's database and objects (stop
    /// `serve` first), then reconcile from the replaced database's audit log. With
    /// --key-store, merge a key-store backup into the key store: destroyed keys stay
    /// destroyed.
    Restore(RestoreArgs),
    /// Replay on this deployment's (restored) database and key store every erasure, purge
    /// and key destruction that the audit log of --from records; without --from (only the
    /// key store was restored), the key destructions its own audit log records. Idempotent.
    Reconcile(ReconcileArgs),
    /// Restore the newest backup into a scratch directory, verify its audit log and counts,
    /// and print the recovery time measured and the recovery point achieved against the
    /// policy's rto and rpo; exit 1 if a check fails or a target is missed.
    Drill(DrillArgs),
}

/// Where backups are.
#[derive(Debug, Args)]
pub struct Target {
    /// The backup directory (created 0700 if missing), or s3://bucket/prefix (credentials,
    /// region and endpoint from the standard AWS_* variables).
    #[arg(long, visible_alias = "from", value_name = "DIR|URL")]
    pub to: PathBuf,
}

/// `custos backup create` options.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    target: Target,
    /// A full backup even if an incremental one would do.
    #[arg(long)]
    full: bool,
    /// Take a full backup when the newest chain already has this many backups.
    #[arg(long, default_value_t = 7, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    full_every: u32,
    /// Back up the key store (a consistent copy of keys.db) instead of the data.
    #[arg(long, conflicts_with = "full")]
    key_store: bool,
}

/// A backup directory and optionally one backup in it.
#[derive(Debug, Args)]
pub struct Chosen {
    #[command(flatten)]
    target: Target,
    /// The backup id (default the newest of its kind).
    id: Option<String>,
    /// Choose among key-store backups instead of data backups.
    #[arg(long)]
    key_store: bool,
}

/// `custos backup restore` options.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    chosen: Chosen,
    /// Restore without replaying the replaced database's audit log (when it is lost); run
    /// `custos backup reconcile --from` later with a copy of it.
    #[arg(long)]
    no_reconcile: bool,
}

/// `custos backup reconcile` options.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The database whose audit log runs past the restored one (sqlite:PATH or
    /// postgres://...): the one in use before the restore, or a copy of it. Without it, only
    /// the key store is reconciled, from this deployment's own audit log.
    #[arg(long, value_name = "URL")]
    from: Option<String>,
    /// Replay events from this log index on (default: where the restored log ended, as the
    /// first reconcile recorded it).
    #[arg(long, value_name = "INDEX")]
    since: Option<u64>,
}

/// `custos backup drill` options.
#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(flatten)]
    target: Target,
    /// Where to restore (default a fresh temporary directory, removed afterwards); never the
    /// deployment's own paths.
    #[arg(long, value_name = "DIR")]
    scratch: Option<PathBuf>,
}

/// Runs one backup command.
pub async fn run(global: &Global, cmd: BackupCommand) -> Result<(), Failure> {
    refuse_regions(global)?;
    match cmd {
        BackupCommand::Create(a) if a.key_store => keys::create(global, &a.target.to).await,
        BackupCommand::Create(a) => {
            archive::create(global, &a.target.to, a.full, a.full_every).await
        }
        BackupCommand::List(t) => archive::list(&t.to).await,
        BackupCommand::Verify(c) if c.key_store => {
            keys::verify(&c.target.to, c.id.as_deref()).await
        }
        BackupCommand::Verify(c) => archive::verify(global, &c.target.to, c.id.as_deref()).await,
        BackupCommand::Restore(a) if a.chosen.key_store => {
            keys::restore(global, &a.chosen.target.to, a.chosen.id.as_deref()).await
        }
        BackupCommand::Restore(a) => {
            restore::restore(
                global,
                &a.chosen.target.to,
                a.chosen.id.as_deref(),
                !a.no_reconcile,
            )
            .await
        }
        BackupCommand::Reconcile(a) => match a.from {
            Some(from) => restore::reconcile_from(global, &from, a.since).await,
            None => keys::reconcile_keys(global, a.since).await,
        },
        BackupCommand::Drill(a) => restore::drill(global, &a.target.to, a.scratch.as_deref()).await,
    }
}

/// Fails when this deployment is not one `custos backup` can back up (for `serve
/// --backup-to`, at start).
pub fn check_sources(global: &Global) -> Result<(), Failure> {
    refuse_regions(global)?;
    sources(global).map(|_| ())
}

/// Refuses a policy whose regions have stores of their own: backups, restores and
/// reconciliation here cover the main database, objects and audit log only, and a backup that
/// silently missed a region's data would be worse than none.
fn refuse_regions(global: &Global) -> Result<(), Failure> {
    let (policy, _) = crate::deploy::load_policy(global)?;
    match policy.regions.keys().next() {
        None => Ok(()),
        Some(region) => Err(Failure::BadInput(format!(
            "[regions.{region}]: `custos backup` covers the main database and objects only, and \
             this policy gives regions stores of their own; back each region's database and \
             objects up with their stores' own tools (see the README's residency section)"
        ))),
    }
}

/// The database name inside a backup and the data directory.
const DATABASE: &str = "custos.db";

/// The embedded deployment's database file and objects directory, which must exist.
fn sources(global: &Global) -> Result<(PathBuf, PathBuf), Failure> {
    let (database, objects) = locations(global)?;
    if !database.is_file() {
        return Err(Failure::BadInput(format!(
            "no database at {} (set --data or --database to the deployment's)",
            database.display()
        )));
    }
    Ok((database, objects))
}

/// Where the embedded deployment's database file and objects directory are (or go); anything
/// else is refused with what to use instead.
fn locations(global: &Global) -> Result<(PathBuf, PathBuf), Failure> {
    let database =
        match global.database.as_deref() {
            None => global.data.join(DATABASE),
            Some(url) => match url.strip_prefix("sqlite:") {
                Some(path) => PathBuf::from(path),
                None => return Err(Failure::BadInput(
                    "--database: `custos backup` backs up and restores SQLite deployments; back \
                     PostgreSQL up and restore it with its own tools (pg_dump, base backups and \
                     WAL archiving, or managed snapshots), then run `custos backup reconcile`, \
                     as the README's \"Backing up PostgreSQL\" section describes"
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
