//! Drills: restore the newest backup into a scratch directory, check what it holds, and
//! measure recovery time and recovery point against the policy's `rto` and `rpo`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use custos_policy::Policy;
use custos_store::SqliteStore;

use crate::archive::{self, backup_key, Manifest};
use crate::error::{create_private_dir, io, BackupError};
use crate::place::Place;
use crate::{AuditVerifier, Deployment, Progress, DATABASE};

/// What a drill counted in the database and objects it restored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Entries in the audit log.
    pub audit_entries: u64,
    /// Records per org.
    pub records: BTreeMap<String, u64>,
    /// Object files.
    pub objects: usize,
}

impl Counts {
    /// Records in every org.
    pub fn total_records(&self) -> u64 {
        self.records.values().sum()
    }
}

/// The counts that differ from what `manifest` recorded when the backup was taken, each
/// named.
pub fn count_failures(manifest: &Manifest, counts: &Counts) -> Vec<String> {
    let mut failures = Vec::new();
    if counts.audit_entries != manifest.audit_size {
        failures.push(format!(
            "audit entries: {}, the backup recorded {}",
            counts.audit_entries, manifest.audit_size
        ));
    }
    if manifest.format >= 2 && counts.records != manifest.records {
        failures.push(format!(
            "records per org differ from the backup's manifest ({} records in {} orgs)",
            counts.total_records(),
            counts.records.len()
        ));
    }
    let expected_objects = manifest.files.len() - 1;
    if counts.objects != expected_objects {
        failures.push(format!(
            "objects: {}, the backup holds {expected_objects}",
            counts.objects
        ));
    }
    failures
}

/// Recovery time and recovery point, measured against the policy.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// How long the drill's restore and checks took.
    pub took: Duration,
    /// The policy's recovery time objective.
    pub rto: custos_policy::Duration,
    /// Whether `took` is within it.
    pub rto_met: bool,
    /// How old the restored backup is.
    pub age: Duration,
    /// The policy's recovery point objective.
    pub rpo: custos_policy::Duration,
    /// Whether `age` is within it.
    pub rpo_met: bool,
}

impl Recovery {
    /// Measures a recovery that started at `start` and took `took`, of a backup taken at
    /// `created`, at `now`.
    pub fn measure(
        backups: &custos_policy::Backups,
        created: jiff::Timestamp,
        start: jiff::Timestamp,
        took: Duration,
        now: jiff::Timestamp,
    ) -> Recovery {
        let (rto, rpo) = (backups.rto, backups.rpo);
        let rto_met = rto.add_to(start)
            >= start + jiff::SignedDuration::try_from(took).unwrap_or(jiff::SignedDuration::MAX);
        Recovery {
            took,
            rto,
            rto_met,
            age: now.duration_since(created).unsigned_abs(),
            rpo,
            rpo_met: rpo.add_to(created) >= now,
        }
    }

    /// The targets missed, each named.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if !self.rto_met {
            failures.push(format!(
                "recovery time {} exceeds the rto {}",
                human(self.took),
                self.rto
            ));
        }
        if !self.rpo_met {
            failures.push(format!(
                "the newest backup is {} old, beyond the rpo {}",
                human(self.age),
                self.rpo
            ));
        }
        failures
    }
}

/// A duration for people: seconds, minutes or hours.
pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
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

/// Restores the newest data backup in the place `from` into `scratch` (default a fresh
/// temporary directory, removed afterwards; never overlapping the deployment's own paths
/// `live`), checks its counts against its manifest and its audit log, and measures recovery
/// time and point against the policy; `verifier` checks the restored audit log. Fails naming
/// every check failed and target missed.
pub async fn drill(
    dep: &dyn Deployment,
    verifier: &dyn AuditVerifier,
    policy: &Policy,
    live: &[&Path],
    from: &Path,
    scratch: Option<&Path>,
) -> Result<(), BackupError> {
    let start_time = jiff::Timestamp::now();
    let started = Instant::now();
    let place = Place::open(from).await?;
    let manifest = archive::choose(place.dir(), None, false)?;
    let key = backup_key(dep).await?;
    place.fetch(&manifest).await?;
    let temp;
    let dir = match scratch {
        Some(dir) => {
            let abs = std::path::absolute(dir).map_err(io(dir))?;
            if live
                .iter()
                .filter_map(|p| std::path::absolute(p).ok())
                .any(|p| p == abs || p.starts_with(&abs) || abs.starts_with(&p))
            {
                return Err(BackupError::BadInput(format!(
                    "--scratch {}: overlaps the deployment's own data; give a directory of its own",
                    dir.display()
                )));
            }
            if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
                return Err(BackupError::BadInput(format!(
                    "--scratch {}: not empty",
                    dir.display()
                )));
            }
            create_private_dir(dir)?;
            dir.to_path_buf()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("custos-drill-")
                .tempdir()
                .map_err(|source| BackupError::Io {
                    what: "scratch dir".into(),
                    source,
                })?;
            temp.path().to_path_buf()
        }
    };
    let data = dir.join("data");
    create_private_dir(&data)?;
    archive::materialize(&key, place.dir(), &manifest, Some(&data))?;
    drop(place);
    dep.progress(Progress::DrillRestored {
        manifest: &manifest,
        into: &data,
    });

    // Counts: what the snapshot held when it was taken.
    let snapshot = SqliteStore::snapshot_counts(&data.join(DATABASE))
        .map_err(BackupError::store("restored database"))?;
    let counts = Counts {
        audit_entries: snapshot.audit_entries,
        records: snapshot.records,
        objects: files_count(&data.join("objects")),
    };
    let mut failures = count_failures(&manifest, &counts);
    dep.progress(Progress::DrillCounts {
        counts: &counts,
        matched: failures.is_empty(),
    });

    // The audit log, verified as `custos audit verify` does, against the deployment's
    // signing key.
    match verifier.verify_audit_log(&data).await? {
        Ok(v) => dep.progress(Progress::DrillAuditVerified(&v)),
        Err(f) => failures.push(format!("audit verify FAILED: {f}")),
    }

    let recovery = Recovery::measure(
        &policy.backups,
        manifest.created,
        start_time,
        started.elapsed(),
        jiff::Timestamp::now(),
    );
    dep.progress(Progress::DrillRecovery(&recovery));
    failures.extend(recovery.failures());
    if !failures.is_empty() {
        return Err(BackupError::Failed(format!(
            "drill failed: {}",
            failures.join("; ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::tests::manifest;

    #[test]
    fn counts_that_match_the_manifest_pass_and_each_difference_is_named() {
        let mut m = manifest("b", "full", 1, None, &["b"]);
        m.records = [("o".to_string(), 2)].into_iter().collect();
        let mut counts = Counts {
            audit_entries: 3,
            records: m.records.clone(),
            objects: 1,
        };
        assert!(count_failures(&m, &counts).is_empty());
        counts.audit_entries = 4;
        counts.records.insert("p".into(), 1);
        counts.objects = 0;
        assert_eq!(
            count_failures(&m, &counts),
            [
                "audit entries: 4, the backup recorded 3",
                "records per org differ from the backup's manifest (3 records in 2 orgs)",
                "objects: 0, the backup holds 1",
            ]
        );
        // Manifests from before record counts are not held to them.
        m.format = 1;
        assert_eq!(count_failures(&m, &counts).len(), 2);
    }

    #[test]
    fn recovery_is_measured_against_rto_and_rpo() {
        let backups = custos_policy::Backups {
            retention: "30d".parse().unwrap(),
            rpo: "1h".parse().unwrap(),
            rto: "4h".parse().unwrap(),
        };
        let now = jiff::Timestamp::now();
        let recent = now - jiff::SignedDuration::from_mins(10);
        let r = Recovery::measure(&backups, recent, now, Duration::from_secs(30), now);
        assert!(r.rto_met && r.rpo_met, "{r:?}");
        assert!(r.failures().is_empty());
        let old = now - jiff::SignedDuration::from_hours(3);
        let r = Recovery::measure(&backups, old, now, Duration::from_secs(5 * 3600), now);
        assert!(!r.rto_met && !r.rpo_met, "{r:?}");
        assert_eq!(
            r.failures(),
            [
                "recovery time 5.0 h exceeds the rto 4h",
                "the newest backup is 3.0 h old, beyond the rpo 1h",
            ]
        );
    }

    #[test]
    fn durations_read_in_the_unit_that_fits() {
        assert_eq!(human(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(human(Duration::from_secs(600)), "10 min");
        assert_eq!(human(Duration::from_secs(3 * 3600)), "3.0 h");
    }
}
