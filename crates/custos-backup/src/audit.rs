//! Every audit event this crate writes is built here, and every field it reads from another
//! event is read here, from the event's typed target and details (which the one decoder also
//! fills from a version-1 event's `k=v` reason).

use custos_audit::{Actor, AuditAction, AuditEvent, Details, Target};
use custos_crypto::MergeReport;

use crate::archive::Manifest;
use crate::reconcile::Report;

/// An event by the system about backups: target `backup`, counts in its details.
fn event(action: AuditAction, details: Details) -> AuditEvent {
    AuditEvent::new(jiff::Timestamp::now(), Actor::System, action)
        .target(Target::Backup)
        .details(details)
}

/// `backup.restore`: the backup that replaced the database.
pub(crate) fn restored(m: &Manifest) -> AuditEvent {
    event(
        AuditAction::BackupRestore,
        Details::new()
            .backup(m.id.clone())
            .backup_kind(m.kind.to_string())
            .audit_size(m.audit_size)
            .files(m.files.len() as u64),
    )
}

/// `backup.keys_restore`: a key-store backup merged, then the log's destructions replayed.
pub(crate) fn keys_restored(
    m: &Manifest,
    merged: &MergeReport,
    keys: usize,
    orgs: usize,
) -> AuditEvent {
    event(
        AuditAction::BackupKeysRestore,
        Details::new()
            .backup(m.id.clone())
            .org_keys(merged.org_keys as u64)
            .subject_keys(merged.subject_keys as u64)
            .deployment_keys(merged.deployment_keys as u64)
            .refused_destroyed(merged.refused_destroyed as u64)
            .keys_destroyed(keys as u64)
            .orgs_destroyed(orgs as u64),
    )
}

/// `backup.reconcile` of the key store alone.
pub(crate) fn keys_reconciled(since: u64, keys: usize, orgs: usize) -> AuditEvent {
    event(
        AuditAction::BackupReconcile,
        Details::new()
            .phase("done")
            .key_store_only(true)
            .from_index(since)
            .keys_destroyed(keys as u64)
            .orgs_destroyed(orgs as u64),
    )
}

/// `backup.reconcile` as a reconcile starts.
pub(crate) fn reconcile_started(since: u64) -> AuditEvent {
    event(
        AuditAction::BackupReconcile,
        Details::new().phase("start").from_index(since),
    )
}

/// `backup.reconcile` as a reconcile ends, with its counts.
pub(crate) fn reconcile_done(r: &Report) -> AuditEvent {
    event(
        AuditAction::BackupReconcile,
        Details::new()
            .phase("done")
            .from_index(r.since)
            .appended(r.appended)
            .checkpoints(r.checkpoints)
            .keys_destroyed(r.keys_destroyed as u64)
            .orgs_destroyed(r.orgs_destroyed as u64)
            .records_purged(r.records_purged as u64)
            .objects_deleted(r.objects_deleted as u64)
            .tokens_destroyed(r.tokens_destroyed)
            .terminations(r.terminations as u64)
            .marked_for_purge(r.marked_for_purge)
            .soft_deleted(r.soft_deleted),
    )
}

/// `backup.reconcile` in `org`: one replayed step (`what`: the action replayed).
pub(crate) fn replayed(org: &str, what: AuditAction, since: u64) -> AuditEvent {
    event(
        AuditAction::BackupReconcile,
        Details::new().replayed(what.as_str()).from_index(since),
    )
    .org(org)
}

/// `backup.reconcile` in `org`: a batch of purges replayed (their count and digest).
pub(crate) fn replayed_purge(org: &str, ids: &[&str], since: u64) -> AuditEvent {
    event(
        AuditAction::BackupReconcile,
        Details::new()
            .replayed(AuditAction::RecordPurge.as_str())
            .records(ids.len() as u64)
            .ids_sha256(custos_core::purged_ids_digest(ids.iter().copied()))
            .from_index(since),
    )
    .org(org)
}

/// The subject reference an erasure event names.
pub(crate) fn subject_ref(e: &AuditEvent) -> Option<&str> {
    e.details.subject_ref.as_deref()
}

/// The log index a reconcile event says it replayed from.
pub(crate) fn from_index(e: &AuditEvent) -> Option<u64> {
    e.details.from_index
}

/// The subject key ids a `subject.crypto_erase` event names.
pub(crate) fn erased_keys(e: &AuditEvent) -> Option<&[String]> {
    e.details.keys.as_deref()
}

/// The record `e` targets.
pub(crate) fn target_record(e: &AuditEvent) -> Option<&str> {
    e.target.as_ref()?.record_id()
}

/// The category `e` targets.
pub(crate) fn target_category(e: &AuditEvent) -> Option<&str> {
    match e.target.as_ref()? {
        Target::Category(name) => Some(name),
        _ => None,
    }
}

/// Whether a `record.delete` event was a hard delete (else a soft one).
pub(crate) fn is_hard_delete(e: &AuditEvent) -> bool {
    e.reason.as_deref() == Some("hard_delete")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_targets_are_read_from_either_encoding() {
        let e = replayed("org-1", AuditAction::RecordDelete, 7);
        assert_eq!(e.org.as_deref(), Some("org-1"));
        assert_eq!(from_index(&e), Some(7));
        assert_eq!(e.details.replayed.as_deref(), Some("record.delete"));
        assert_eq!(target_record(&e), None);
        let e = e.target(Target::Record("r-1".into()));
        assert_eq!(target_record(&e), Some("r-1"));
        assert_eq!(target_category(&e), None);
        // A version-1 leaf (written before typed details) reads the same.
        let v1 = br#"{"action":"subject.crypto_erase","actor":{"kind":"system"},"org":"o","outcome":"success","reason":"subject_ref=s1 keys=k1,k2","target":"request:q","time":"2026-01-02T03:04:05Z","v":1}"#;
        let e = AuditEvent::from_canonical_bytes(v1).unwrap();
        assert_eq!(subject_ref(&e), Some("s1"));
        assert_eq!(
            erased_keys(&e),
            Some(&["k1".to_string(), "k2".to_string()][..])
        );
    }

    #[test]
    fn the_events_carry_their_counts_as_details() {
        let e = replayed_purge("o", &["a", "b"], 3);
        assert_eq!(e.action, AuditAction::BackupReconcile);
        assert_eq!(e.target, Some(Target::Backup));
        assert_eq!(e.details.records, Some(2));
        assert_eq!(
            e.details.ids_sha256,
            Some(custos_core::purged_ids_digest(["a", "b"]))
        );
        let bytes = e.to_canonical_bytes();
        assert_eq!(AuditEvent::from_canonical_bytes(&bytes).unwrap(), e);
        assert_eq!(reconcile_started(5).details.from_index, Some(5));
        let k = keys_reconciled(0, 2, 1);
        assert_eq!(
            (k.details.key_store_only, k.details.keys_destroyed),
            (Some(true), Some(2))
        );
    }
}
