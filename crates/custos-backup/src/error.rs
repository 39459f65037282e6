//! [`BackupError`]: what a backup operation reports, with its cause kept.

use std::path::{Path, PathBuf};

use custos_crypto::CryptoError;
use custos_store::StoreError;

/// A backup, restore, reconcile or drill that did not complete. Every message names the input,
/// file or check, never a key or any content. [`BackupError::is_bad_input`] tells bad input
/// (exit 2 in the CLI) from a failed check or operation (exit 1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Bad input: the message names the input and what is wrong.
    #[error("{0}")]
    BadInput(String),
    /// A check failed (a backup file, a snapshot, an audit log, a drill target) or the
    /// operation could not complete; the message names the file or check.
    #[error("{0}")]
    Failed(String),
    /// A local file or directory could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// The path, or what was done to it (`cannot create DIR`).
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The data store (or a database file, or the object store) failed.
    #[error("{what}: {source}")]
    Store {
        /// What was being done.
        what: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The key store or a key failed.
    #[error("{what}: {source}")]
    Keys {
        /// What was being done.
        what: String,
        /// The key service's error.
        #[source]
        source: CryptoError,
    },
    /// An `s3://` backup place failed.
    #[error("{what}: {source}")]
    Remote {
        /// The place or object.
        what: String,
        /// The object store client's error.
        #[source]
        source: object_store::Error,
    },
    /// An `s3://` backup place or object key is not usable as given.
    #[error("{what}: {source}")]
    InvalidPlace {
        /// The place or key, and what is wrong with it.
        what: String,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
        /// Whether the place itself was given wrongly (bad input) rather than a key read
        /// from it.
        given: bool,
    },
    /// A restore replaced the database and objects, then its reconcile failed: finish with
    /// `custos backup reconcile --from` the replaced database.
    #[error(
        "{source}\nthe backup is restored; finish with `custos backup reconcile --from sqlite:{}`",
        replaced.display()
    )]
    Unreconciled {
        /// Where the replaced database was set aside.
        replaced: PathBuf,
        /// Why the reconcile failed.
        #[source]
        source: Box<BackupError>,
    },
}

impl BackupError {
    /// Whether the input was wrong (exit 2), rather than a check or operation failing (1).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            BackupError::BadInput(_) | BackupError::InvalidPlace { given: true, .. }
        )
    }

    /// A store failure while doing `what`.
    pub(crate) fn store(what: impl Into<String>) -> impl FnOnce(StoreError) -> BackupError {
        let what = what.into();
        move |source| BackupError::Store { what, source }
    }

    /// A key-service failure while doing `what`.
    pub(crate) fn keys(what: impl Into<String>) -> impl FnOnce(CryptoError) -> BackupError {
        let what = what.into();
        move |source| BackupError::Keys { what, source }
    }
}

/// An I/O failure on `path`, named by the path.
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        what: path.display().to_string(),
        source,
    }
}

/// Creates `dir` (and its parents) and restricts it to its owner (0700).
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::create_dir_all(dir).map_err(|source| BackupError::Io {
        what: format!("cannot create {}", dir.display()),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| BackupError::Io {
                what: format!("cannot restrict {}", dir.display()),
                source,
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn bad_input_is_told_apart_and_causes_are_kept() {
        assert!(BackupError::BadInput("--to: x".into()).is_bad_input());
        assert!(!BackupError::Failed("backup b: custos.db: mismatch".into()).is_bad_input());
        let e = io(Path::new("/x/y"))(std::io::Error::other("disk on fire"));
        assert_eq!(e.to_string(), "/x/y: disk on fire");
        assert!(e.source().is_some());
        let wrapped = BackupError::Unreconciled {
            replaced: PathBuf::from("/d/custos.db.replaced-1"),
            source: Box::new(BackupError::Failed("reconcile: x".into())),
        };
        assert!(!wrapped.is_bad_input());
        assert_eq!(
            wrapped.to_string(),
            "reconcile: x\nthe backup is restored; finish with `custos backup reconcile --from \
             sqlite:/d/custos.db.replaced-1`"
        );
    }
}
