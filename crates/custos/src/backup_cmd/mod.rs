//! `custos backup create|list|verify|restore|reconcile|drill`: the command line of
//! `custos-backup` (encrypted backups of an embedded deployment, restores that an erasure still
//! reaches, drills). Here: the arguments, the deployment's paths and keys resolved from the
//! global options, what is printed, and the exit codes: 0 done, 1 a check failed (the message
//! names the file or check), 2 bad input.

mod print;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use custos_backup::{BackupError, Progress, Sources, DATABASE};
use custos_crypto::KeyVault;
use custos_policy::Policy;
use custos_store::ObjectLocation;

use crate::cli::Global;
use crate::{deploy, Failure};

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
    let policy = refuse_regions(global)?;
    let host = Host { global };
    let retention = &policy.backups.retention;
    match cmd {
        BackupCommand::Create(a) if a.key_store => {
            let db = key_db(global)?;
            if !db.is_file() {
                return Err(Failure::BadInput(format!(
                    "no key store at {} (set --data or --keys to the deployment's)",
                    db.display()
                )));
            }
            let done = custos_backup::create_keys(retention, &db, &a.target.to).await?;
            print::keys_taken(&done);
        }
        BackupCommand::Create(a) => {
            let sources = sources(global)?;
            let done = custos_backup::create(
                &host,
                retention,
                &sources,
                &a.target.to,
                a.full,
                a.full_every,
            )
            .await?;
            print::taken(&done);
        }
        BackupCommand::List(t) => print::listing(&custos_backup::list(&t.to).await?),
        BackupCommand::Verify(c) if c.key_store => {
            print::keys_verified(&custos_backup::verify_keys(&c.target.to, c.id.as_deref()).await?)
        }
        BackupCommand::Verify(c) => {
            print::verified(&custos_backup::verify(&host, &c.target.to, c.id.as_deref()).await?)
        }
        BackupCommand::Restore(a) if a.chosen.key_store => {
            let db = key_db(global)?;
            let has_db = global.database.is_some() || global.data.join(DATABASE).is_file();
            let url = database_url(global);
            custos_backup::restore_keys(
                &host,
                &db,
                has_db.then_some(url.as_str()),
                &a.chosen.target.to,
                a.chosen.id.as_deref(),
            )
            .await?;
        }
        BackupCommand::Restore(a) => {
            let (database, objects) = locations(global)?;
            custos_backup::restore(
                &host,
                &policy,
                &Sources { database, objects },
                &a.chosen.target.to,
                a.chosen.id.as_deref(),
                !a.no_reconcile,
            )
            .await?;
        }
        BackupCommand::Reconcile(a) => match a.from {
            Some(from) => {
                let objects = object_location(global)?;
                let report = custos_backup::reconcile_from(
                    &host,
                    &policy,
                    &from,
                    &database_url(global),
                    &objects,
                    a.since,
                )
                .await?;
                print::report(&report);
            }
            None => print::keys_reconciled(
                &custos_backup::reconcile_keys(&host, &database_url(global), a.since).await?,
            ),
        },
        BackupCommand::Drill(a) => {
            // A PostgreSQL deployment is refused here, with what to do instead.
            let (database, objects) = locations(global)?;
            let live = [global.data.as_path(), database.as_path(), objects.as_path()];
            custos_backup::drill(
                &host,
                &host,
                &policy,
                &live,
                &a.target.to,
                a.scratch.as_deref(),
            )
            .await?;
            println!("drill passed");
        }
    }
    Ok(())
}

/// `serve --backup-to`: a backup every `every`, the first after one interval; failures are
/// logged (an error each time) and the next one is tried on schedule.
pub async fn run_scheduled(global: Global, to: PathBuf, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        match scheduled(&global, &to).await {
            Ok(done) => tracing::info!(backup = %done.id, files = done.files, bytes = done.bytes,
                audit_size = done.audit_size, pruned = done.pruned.len(), "scheduled backup taken"),
            Err(e) => tracing::error!(error = %e, "scheduled backup failed"),
        }
    }
}

/// One scheduled backup: incremental, a full one every 7.
async fn scheduled(global: &Global, to: &Path) -> Result<custos_backup::Taken, Failure> {
    let (policy, _) = deploy::load_policy(global)?;
    let sources = sources(global)?;
    let host = Host { global };
    Ok(custos_backup::create(&host, &policy.backups.retention, &sources, to, false, 7).await?)
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
fn refuse_regions(global: &Global) -> Result<Policy, Failure> {
    let (policy, _) = crate::deploy::load_policy(global)?;
    match policy.regions.keys().next() {
        None => Ok(policy),
        Some(region) => Err(Failure::BadInput(format!(
            "[regions.{region}]: `custos backup` covers the main database and objects only, and \
             this policy gives regions stores of their own; back each region's database and \
             objects up with their stores' own tools (see the README's residency section)"
        ))),
    }
}

/// The embedded deployment's database file and objects directory, which must exist.
fn sources(global: &Global) -> Result<Sources, Failure> {
    let (database, objects) = locations(global)?;
    if !database.is_file() {
        return Err(Failure::BadInput(format!(
            "no database at {} (set --data or --database to the deployment's)",
            database.display()
        )));
    }
    Ok(Sources { database, objects })
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
        Some(dir) => Ok(Path::new(dir).join("keys.db")),
        None => Ok(global.data.join("keys").join("keys.db")),
    }
}

/// The deployment's own database URL.
fn database_url(global: &Global) -> String {
    global
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", global.data.join(DATABASE).display()))
}

/// Where the deployment's objects are.
fn object_location(global: &Global) -> Result<ObjectLocation, Failure> {
    match &global.objects {
        Some(url) => url
            .parse::<ObjectLocation>()
            .map_err(|e| Failure::BadInput(format!("--objects: {e}"))),
        None => Ok(ObjectLocation::File(global.data.join("objects"))),
    }
}

/// The deployment as `custos-backup` reaches it: keys and the audit verifier opened from the
/// global options, and every step printed.
struct Host<'a> {
    global: &'a Global,
}

#[async_trait::async_trait]
impl custos_backup::Deployment for Host<'_> {
    async fn key_vault(&self) -> Result<KeyVault, BackupError> {
        Ok(deploy::open_key_vault(self.global).await?)
    }

    fn progress(&self, step: Progress<'_>) {
        print::progress(self.global, step);
    }
}

#[async_trait::async_trait(?Send)]
impl custos_backup::AuditVerifier for Host<'_> {
    async fn verify_audit_log(
        &self,
        data: &Path,
    ) -> Result<Result<custos_core::AuditVerification, custos_core::AuditFailure>, BackupError>
    {
        // The restored data directory with the deployment's own key store (its signing key).
        let global = self.global;
        let scratch = Global {
            data: data.to_path_buf(),
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
        let deployment = deploy::open(&scratch).await?;
        let custos = Arc::try_unwrap(deployment.custos)
            .map_err(|_| BackupError::Failed("services are shared before start".into()))?
            .with_audit_signer(deployment.signer.clone());
        Ok(custos
            .verify_audit_log(None, &[])
            .await
            .map_err(Failure::from)?)
    }
}

impl From<BackupError> for Failure {
    fn from(e: BackupError) -> Self {
        if e.is_bad_input() {
            Failure::BadInput(e.to_string())
        } else {
            Failure::Failed(e.to_string())
        }
    }
}

impl From<Failure> for BackupError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::BadInput(m) => BackupError::BadInput(m),
            Failure::Failed(m) => BackupError::Failed(m),
        }
    }
}
