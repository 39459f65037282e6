//! What `custos backup` prints: each result, and each step of a restore or drill as it is
//! done.

use custos_backup::{
    human, KeysReconciled, KeysTaken, KeysVerified, Listing, Manifest, Progress, Report, Taken,
    DATABASE,
};

use crate::cli::Global;

const TIME: &str = "%Y-%m-%dT%H:%M:%SZ";

/// `backup create`.
pub(super) fn taken(done: &Taken) {
    println!(
        "backup {} ({}): database and {} object(s) ({} sealed here), {} bytes, audit log at {} entries -> {}",
        done.id,
        done.kind,
        done.files - 1,
        done.sealed - 1,
        done.bytes,
        done.audit_size,
        done.shown
    );
    pruned(&done.pruned);
}

fn pruned(ids: &[String]) {
    for id in ids {
        println!("pruned backup {id} (older than the policy's [backups] retention)");
    }
}

/// `backup list`.
pub(super) fn listing(listing: &Listing) {
    if listing.manifests.is_empty() {
        println!("no backups in {}", listing.shown);
        return;
    }
    println!(
        "{:<30} {:<22} {:<11} {:>12} {:>12} {:>10}",
        "id", "created", "kind", "bytes", "sealed here", "audit"
    );
    for m in &listing.manifests {
        println!(
            "{:<30} {:<22} {:<11} {:>12} {:>12} {:>10}",
            m.id,
            m.created.strftime(TIME).to_string(),
            m.kind,
            m.bytes(),
            m.bytes_here(),
            m.audit_size
        );
    }
}

/// `backup verify`.
pub(super) fn verified(m: &Manifest) {
    println!(
        "backup {}: ok ({} files open under the backup key and match, {} of them read from older backups; database integrity ok; audit log at {} entries)",
        m.id,
        m.files.len(),
        m.borrowed(),
        m.audit_size
    );
}

/// `backup create --key-store`.
pub(super) fn keys_taken(done: &KeysTaken) {
    let c = &done.counts;
    println!(
        "key-store backup {}: {} org key version(s), {} subject key(s), {} tombstone(s), {} bytes -> {}/{} (keys wrapped by the root key, which it does not contain)",
        done.id, c.org_keys, c.subject_keys, c.tombstones, done.size, done.shown, done.id
    );
    pruned(&done.pruned);
}

/// `backup verify --key-store`.
pub(super) fn keys_verified(v: &KeysVerified) {
    let c = &v.counts;
    println!(
        "key-store backup {}: ok ({} org key version(s), {} subject key(s), {} tombstone(s); integrity ok)",
        v.id, c.org_keys, c.subject_keys, c.tombstones
    );
}

/// `backup reconcile` without `--from`.
pub(super) fn keys_reconciled(r: &KeysReconciled) {
    println!(
        "reconciled the key store from this deployment's audit log (from index {}): {} subject key(s) and {} org key set(s) destroyed again",
        r.since, r.keys, r.orgs
    );
}

/// A reconcile's counts.
pub(super) fn report(r: &Report) {
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

/// One step of a restore or drill.
pub(super) fn progress(global: &Global, step: Progress<'_>) {
    match step {
        Progress::Restored {
            manifest,
            database,
            objects,
        } => println!(
            "restored backup {} (taken {}, audit log at {} entries): database {}, {} object(s) {}",
            manifest.id,
            manifest.created.strftime(TIME),
            manifest.audit_size,
            database.display(),
            manifest.files.len() - 1,
            objects.display()
        ),
        Progress::Reconciled(r) => report(r),
        Progress::NotReconciled { replaced } => println!(
            "not reconciled ({}): run `custos backup reconcile --from URL` with the audit \
             log that ran past this backup",
            if replaced {
                "--no-reconcile"
            } else {
                "there was no database to replace"
            }
        ),
        Progress::Replaced { database, objects } => println!(
            "the replaced database is at {} and the replaced objects at {}: remove them once \
             no longer needed (their content stays sealed under the key store's keys)",
            database.display(),
            objects.display()
        ),
        Progress::RestoreTook(took) => println!("restore took {:.1} s", took.as_secs_f64()),
        Progress::KeysMerged { id, into, merged } => println!(
            "merged key-store backup {id} into {}: {} org key version(s), {} subject key(s), {} deployment key(s) brought back; {} destroyed key(s) kept out by tombstones",
            into.display(),
            merged.org_keys,
            merged.subject_keys,
            merged.deployment_keys,
            merged.refused_destroyed
        ),
        Progress::KeyDestructionsNotReplayed => println!(
            "no database at {}: destructions in the audit log were not replayed; run this again \
             with --data or --database set to the deployment's",
            global.data.join(DATABASE).display()
        ),
        Progress::KeyDestructionsReplayed { keys, orgs } => println!(
            "replayed the audit log's key destructions: {keys} subject key(s) and {orgs} org key set(s) destroyed again"
        ),
        Progress::DrillRestored { manifest, into } => println!(
            "drill: backup {} ({}, taken {}) restored into {}",
            manifest.id,
            manifest.kind,
            manifest.created.strftime(TIME),
            into.display()
        ),
        Progress::DrillCounts { counts, matched } => println!(
            "  counts: {} record(s) in {} org(s), {} audit entries, {} object(s){}",
            counts.total_records(),
            counts.records.len(),
            counts.audit_entries,
            counts.objects,
            if matched {
                ": match the backup's manifest"
            } else {
                ""
            }
        ),
        Progress::DrillAuditVerified(v) => println!(
            "  audit log verified: {} entries, {} signed checkpoint(s)",
            v.entries, v.checkpoints_verified
        ),
        Progress::DrillRecovery(r) => {
            let verdict = |met: bool| if met { "met" } else { "MISSED" };
            println!(
                "recovery time {} (policy rto {}: {})",
                human(r.took),
                r.rto,
                verdict(r.rto_met)
            );
            println!(
                "recovery point {} before now (policy rpo {}: {})",
                human(r.age),
                r.rpo,
                verdict(r.rpo_met)
            );
        }
        // A step added later is not shown until it is given a line here.
        _ => {}
    }
}
