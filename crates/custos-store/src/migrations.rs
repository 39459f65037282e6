//! Schema migrations as versioned SQL files: `migrations/sqlite/NNNN_name.sql` and
//! `migrations/postgres/NNNN_name.sql`, listed at build time (see `build.rs`), the same steps
//! on both backends, applied in order, each recorded with the SHA-256 of its file in the
//! table `custos_schema_steps`.
//!
//! What this module decides, as plain functions over what a database recorded: which steps
//! are pending, whether a recorded step's file changed since (refused), whether the database
//! is newer than this binary (refused, naming the version found), and how a database made
//! before the ledger existed (SQLite's `PRAGMA user_version`, PostgreSQL's
//! `custos_migrations` count) is adopted. Running the SQL is each backend's job.

use sha2::{Digest, Sha256};

use crate::StoreError;

/// One migration step: a file of SQL run in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Its number, from 1.
    pub version: u32,
    /// The file name's words after the number (`lifecycle`).
    pub name: &'static str,
    /// The file's SQL.
    pub sql: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

impl Step {
    /// Hex SHA-256 of the file: recorded when the step runs, compared on every start.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    /// `NNNN_name`, as the file is called.
    pub fn id(&self) -> String {
        format!("{:04}_{}", self.version, self.name)
    }
}

/// The database a step list is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (the embedded default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// Every step this binary knows for the backend, in order.
    pub fn steps(self) -> &'static [Step] {
        match self {
            Backend::Sqlite => SQLITE_STEPS,
            Backend::Postgres => POSTGRES_STEPS,
        }
    }

    /// The ledger version a database made before the ledger existed is at, from the count of
    /// steps its old counter recorded. The old lists ran the same files in the same order,
    /// except that PostgreSQL had no steps 7 and 8 (SQLite-only layouts, no-ops there now).
    pub(crate) fn adopted_version(self, legacy_count: u32) -> u32 {
        match self {
            Backend::Postgres if legacy_count > 6 => legacy_count + 2,
            _ => legacy_count,
        }
    }
}

/// What a database recorded about one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedStep {
    /// Its number.
    pub version: u32,
    /// Its name when it ran.
    pub name: String,
    /// The SHA-256 of its file when it ran.
    pub checksum: String,
    /// When it ran (Unix microseconds); `None` when a database made before the ledger was
    /// adopted (its old counter kept no times).
    pub applied_at: Option<i64>,
}

/// The table that records applied steps (the same on both backends).
pub(crate) const LEDGER: &str = "CREATE TABLE IF NOT EXISTS custos_schema_steps (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at BIGINT
)";

/// Checks what a database recorded against this binary's steps and returns the steps still
/// to run. Refused: a database newer than this binary (naming the version found), and a
/// recorded step whose file has changed since it ran.
pub fn pending(backend: Backend, applied: &[AppliedStep]) -> Result<&'static [Step], StoreError> {
    let steps = backend.steps();
    if let Some(newest) = applied.iter().max_by_key(|a| a.version) {
        if newest.version as usize > steps.len() {
            return Err(StoreError::Config(format!(
                "the database schema is at version {} ({:04}_{}), newer than this binary knows \
                 (version {}); upgrade Custos",
                newest.version,
                newest.version,
                newest.name,
                steps.len()
            )));
        }
    }
    for (i, step) in steps.iter().enumerate() {
        let Some(recorded) = applied.iter().find(|a| a.version == step.version) else {
            if applied.iter().any(|a| a.version > step.version) {
                return Err(StoreError::Corrupt(format!(
                    "migration {} was never recorded, but later ones were",
                    step.id()
                )));
            }
            return Ok(&steps[i..]);
        };
        if recorded.checksum != step.checksum() {
            return Err(StoreError::Config(format!(
                "migration {} changed after it ran on this database (recorded checksum {}, \
                 file {}); restore the file as released",
                step.id(),
                recorded.checksum,
                step.checksum()
            )));
        }
    }
    Ok(&[])
}

/// Whether a step ran on a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Not yet.
    Pending,
    /// It ran, at this time (Unix microseconds) if the database recorded one.
    Applied(Option<i64>),
}

/// One step's state, for `custos migrate status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepStatus {
    /// The step.
    pub step: Step,
    /// Whether (and when) it ran here.
    pub state: StepState,
}

/// Every known step with when it ran here, once [`pending`] accepted the ledger.
pub fn status(backend: Backend, applied: &[AppliedStep]) -> Result<Vec<StepStatus>, StoreError> {
    pending(backend, applied)?;
    Ok(backend
        .steps()
        .iter()
        .map(|step| StepStatus {
            step: *step,
            state: match applied.iter().find(|a| a.version == step.version) {
                Some(a) => StepState::Applied(a.applied_at),
                None => StepState::Pending,
            },
        })
        .collect())
}

/// The ledger rows that adopt a database made before the ledger: the first `version` steps,
/// recorded with their files' checksums (those databases ran exactly these files' SQL) and no
/// time.
pub(crate) fn adopted(backend: Backend, version: u32) -> Vec<AppliedStep> {
    backend.steps()[..(version as usize).min(backend.steps().len())]
        .iter()
        .map(|s| AppliedStep {
            version: s.version,
            name: s.name.to_string(),
            checksum: s.checksum(),
            applied_at: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(backend: Backend, n: usize) -> Vec<AppliedStep> {
        adopted(backend, n as u32)
    }

    #[test]
    fn both_backends_have_the_same_steps() {
        let names = |b: Backend| -> Vec<(u32, &str)> {
            b.steps().iter().map(|s| (s.version, s.name)).collect()
        };
        assert_eq!(names(Backend::Sqlite), names(Backend::Postgres));
        assert!(Backend::Sqlite.steps().len() >= 13);
    }

    #[test]
    fn a_fresh_database_runs_every_step_and_a_current_one_none() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            assert_eq!(pending(backend, &[]).unwrap().len(), backend.steps().len());
            let all = ran(backend, backend.steps().len());
            assert!(pending(backend, &all).unwrap().is_empty());
            let partway = ran(backend, 5);
            assert_eq!(pending(backend, &partway).unwrap()[0].version, 6);
        }
    }

    #[test]
    fn a_newer_database_is_refused_naming_its_version() {
        let mut applied = ran(Backend::Sqlite, Backend::Sqlite.steps().len());
        let next = applied.len() as u32 + 1;
        applied.push(AppliedStep {
            version: next,
            name: "from_the_future".into(),
            checksum: "00".into(),
            applied_at: Some(2),
        });
        let error = pending(Backend::Sqlite, &applied).unwrap_err().to_string();
        assert!(
            error.contains(&format!("version {next} ({next:04}_from_the_future)")),
            "{error}"
        );
    }

    #[test]
    fn a_changed_file_is_refused() {
        let mut applied = ran(Backend::Postgres, 4);
        applied[2].checksum = "not-the-file".into();
        let error = pending(Backend::Postgres, &applied)
            .unwrap_err()
            .to_string();
        assert!(error.contains("0003_lifecycle changed"), "{error}");
    }

    #[test]
    fn old_counters_map_onto_the_ledger() {
        for n in 0..=6 {
            assert_eq!(Backend::Postgres.adopted_version(n), n);
        }
        // PostgreSQL's old list had no SQLite-only steps 7 and 8.
        assert_eq!(Backend::Postgres.adopted_version(7), 9);
        assert_eq!(Backend::Postgres.adopted_version(11), 13);
        assert_eq!(Backend::Sqlite.adopted_version(13), 13);
    }
}
