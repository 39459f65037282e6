//! Custos backups: encrypted backups of an embedded (SQLite + local files) deployment,
//! restores that an erasure still reaches, and drills that measure recovery time and point.
//!
//! What it is for: the logic behind `custos backup create|list|verify|restore|reconcile|
//! drill` (and `serve --backup-to`). A backup is a directory `<to>/<id>/` holding
//! `manifest.json` (written last: a backup without one is incomplete and ignored) and one
//! sealed blob per file: `custos.db.sealed`, a consistent online snapshot of the database, and
//! `objects/<path>.sealed` for every object. Each blob is sealed under the backup key from the
//! key store, bound to the backup id and the file's name, so the backup is unreadable without
//! the key store, which it never contains. An incremental backup seals the database again but
//! only the objects that changed since its parent; its manifest names the backup that holds
//! each unchanged one. Key-store backups are separate directories of their own kind. The place
//! may also be `s3://bucket/prefix`.
//!
//! After a restore, [`reconcile`] replays from the audit log every erasure, purge and key
//! destruction recorded after the backup was taken, so nothing erased comes back: it purges
//! through the store's own methods and deletes a purged record's objects where the sweep
//! would ([`custos_core::record_object_keys`]).
//!
//! What it is not: a command line (the binary parses arguments, resolves the deployment's
//! paths, prints and chooses exit codes), nor a place for SQL (database files are snapshotted,
//! checked and counted by `custos-store` and `custos-keystore-sqlite`), nor a backup tool for
//! PostgreSQL or S3 object stores (those are backed up with their own tools, then reconciled
//! here).

mod archive;
mod audit;
mod drill;
mod error;
mod keys;
mod pending;
mod place;
mod reconcile;
mod restore;

use std::path::{Path, PathBuf};
use std::time::Duration;

use custos_crypto::{KeyVault, MergeReport};

pub use archive::{
    choose_from, create, kept, list, parent_for, verify, Entry, Listing, Manifest, Taken,
};
pub use drill::{count_failures, drill, human, Counts, Recovery};
pub use error::BackupError;
pub use keys::{
    create_keys, reconcile_keys, restore_keys, verify_keys, KeysReconciled, KeysTaken, KeysVerified,
};
pub use reconcile::{reconcile, Report};
pub use restore::{open_store, reconcile_from, restore};

/// The database's name inside a backup and the data directory.
pub const DATABASE: &str = "custos.db";

/// The embedded deployment's database file and objects directory.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The SQLite database file.
    pub database: PathBuf,
    /// The local object directory.
    pub objects: PathBuf,
}

/// What an operation needs from the deployment it runs for that only its caller can open,
/// and where it reports what it did as it goes.
#[async_trait::async_trait]
pub trait Deployment: Send + Sync {
    /// The deployment's key vault; asked for only when an operation needs it, after what must
    /// come first (a key-store restore creates the store it opens).
    async fn key_vault(&self) -> Result<KeyVault, BackupError>;

    /// One step done, for the caller to show.
    fn progress(&self, step: Progress<'_>);
}

/// How a drill verifies the audit log it restored: the caller opens the restored deployment
/// (its services need not be `Send`, so neither is this).
#[async_trait::async_trait(?Send)]
pub trait AuditVerifier {
    /// Verifies the audit log of the database restored under the data directory `data`
    /// against the deployment's signing key, as `custos audit verify` does; `Ok(Err(_))` is
    /// a failed check.
    async fn verify_audit_log(
        &self,
        data: &Path,
    ) -> Result<Result<custos_core::AuditVerification, custos_core::AuditFailure>, BackupError>;
}

/// A step of a restore or drill, reported as it is done.
#[derive(Debug)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// A data backup replaced the database and the objects.
    Restored {
        /// The backup.
        manifest: &'a Manifest,
        /// The database file it replaced.
        database: &'a Path,
        /// The objects directory it replaced.
        objects: &'a Path,
    },
    /// The restored database was reconciled from the replaced one's audit log.
    Reconciled(&'a Report),
    /// The restored database was not reconciled: `replaced` tells whether there was a
    /// database to replace (so the restore was asked not to).
    NotReconciled {
        /// Whether a database was replaced.
        replaced: bool,
    },
    /// Where the replaced database and objects were kept.
    Replaced {
        /// The replaced database.
        database: &'a Path,
        /// The replaced objects directory.
        objects: &'a Path,
    },
    /// How long a restore took.
    RestoreTook(Duration),
    /// A key-store backup was merged into the key store.
    KeysMerged {
        /// The key-store backup.
        id: &'a str,
        /// The key store's file.
        into: &'a Path,
        /// What the merge brought back and kept out.
        merged: &'a MergeReport,
    },
    /// There is no database whose audit log could say which keys were destroyed: nothing
    /// was replayed.
    KeyDestructionsNotReplayed,
    /// The audit log's key destructions were done again.
    KeyDestructionsReplayed {
        /// Subject keys destroyed again.
        keys: usize,
        /// Org key sets destroyed again.
        orgs: usize,
    },
    /// A drill restored the backup into a scratch directory.
    DrillRestored {
        /// The backup.
        manifest: &'a Manifest,
        /// The scratch data directory.
        into: &'a Path,
    },
    /// A drill counted what it restored.
    DrillCounts {
        /// The counts.
        counts: &'a Counts,
        /// Whether they match the backup's manifest.
        matched: bool,
    },
    /// A drill verified the restored audit log.
    DrillAuditVerified(&'a custos_core::AuditVerification),
    /// A drill measured recovery time and point against the policy.
    DrillRecovery(&'a Recovery),
}
