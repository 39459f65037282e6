//! Every audit event this crate writes is built here, and every field it reads from another
//! event's text is read here: one place to change when events carry typed details. The
//! events' text (`target`, `reason`) is the one `custos backup` has always written.

use custos_audit::{Actor, AuditAction, AuditEvent};
use custos_crypto::MergeReport;

use crate::archive::Manifest;
use crate::reconcile::Report;

/// An event by the system about backups: target `backup`, the counts in `reason`.
fn event(action: AuditAction, reason: String) -> AuditEvent {
    AuditEvent::new(jiff::Timestamp::now(), Actor::System, action)
        .target("backup")
        .reason(reason)
}

/// `backup.restore`: the backup that replaced the database.
pub(crate) fn restored(m: &Manifest) -> AuditEvent {
    event(
        AuditAction::BackupRestore,
        format!(
            "backup={} kind={} audit_size={} files={}",
            m.id,
            m.kind,
            m.audit_size,
            m.files.len()
        ),
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
        format!(
            "backup={} org_keys={} subject_keys={} deployment_keys={} refused_destroyed={} \
             destroyed_from_log={} orgs_destroyed_from_log={}",
            m.id,
            merged.org_keys,
            merged.subject_keys,
            merged.deployment_keys,
            merged.refused_destroyed,
            keys,
            orgs
        ),
    )
}

/// `backup.reconcile` of the key store alone.
pub(crate) fn keys_reconciled(since: u64, keys: usize, orgs: usize) -> AuditEvent {
    event(
        AuditAction::BackupReconcile,
        format!(
            "phase=done key_store_only from_index={since} keys_destroyed={keys} orgs_destroyed={orgs}"
        ),
    )
}

/// `backup.reconcile` as a reconcile starts.
pub(crate) fn reconcile_started(since: u64) -> AuditEvent {
    event(
        AuditAction::BackupReconcile,
        format!("phase=start from_index={since}"),
    )
}

/// `backup.reconcile` as a reconcile ends, with its counts.
pub(crate) fn reconcile_done(report: &Report) -> AuditEvent {
    event(
        AuditAction::BackupReconcile,
        format!("phase=done {}", report.counts()),
    )
}

/// `backup.reconcile` in `org`: one replayed step (`what`: the action replayed).
pub(crate) fn replayed(org: &str, what: &str, since: u64) -> AuditEvent {
    event(
        AuditAction::BackupReconcile,
        format!("replayed={what} from_index={since}"),
    )
    .org(org)
}

/// `backup.reconcile` in `org`: a batch of purges replayed (their count and digest).
pub(crate) fn replayed_purge(org: &str, ids: &[&str], since: u64) -> AuditEvent {
    event(
        AuditAction::BackupReconcile,
        format!(
            "replayed=record.purge records={} ids_sha256={} from_index={since}",
            ids.len(),
            custos_core::purged_ids_digest(ids.iter().copied())
        ),
    )
    .org(org)
}

/// One `name=value` field of an event's reason.
pub(crate) fn field<'a>(reason: &'a str, name: &str) -> Option<&'a str> {
    reason
        .split(' ')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// A field of `e`'s reason.
pub(crate) fn reason_field<'a>(e: &'a AuditEvent, name: &str) -> Option<&'a str> {
    field(e.reason.as_deref().unwrap_or(""), name)
}

/// The id `e` targets as `kind:id` (`record`, `category`).
pub(crate) fn target_of<'a>(e: &'a AuditEvent, kind: &str) -> Option<&'a str> {
    e.target.as_deref()?.strip_prefix(kind)?.strip_prefix(':')
}

/// Whether a `record.delete` event was a hard delete (else a soft one).
pub(crate) fn is_hard_delete(e: &AuditEvent) -> bool {
    e.reason.as_deref() == Some("hard_delete")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_targets_are_read_by_name() {
        let reason = "phase=done from_index=12 keys=a,b";
        assert_eq!(field(reason, "from_index"), Some("12"));
        assert_eq!(field(reason, "keys"), Some("a,b"));
        assert_eq!(field(reason, "from"), None);
        assert_eq!(field(reason, "phase"), Some("done"));
        let e = replayed("org-1", "record.delete", 7);
        assert_eq!(e.org.as_deref(), Some("org-1"));
        assert_eq!(reason_field(&e, "from_index"), Some("7"));
        assert_eq!(target_of(&e, "backup"), None);
        let e = e.target("record:r-1");
        assert_eq!(target_of(&e, "record"), Some("r-1"));
        assert_eq!(target_of(&e, "category"), None);
    }

    #[test]
    fn the_events_text_is_as_before() {
        let e = replayed_purge("o", &["a", "b"], 3);
        assert_eq!(e.action, AuditAction::BackupReconcile);
        assert_eq!(e.target.as_deref(), Some("backup"));
        assert_eq!(
            e.reason.as_deref(),
            Some(
                format!(
                    "replayed=record.purge records=2 ids_sha256={} from_index=3",
                    custos_core::purged_ids_digest(["a", "b"])
                )
                .as_str()
            )
        );
        assert_eq!(
            reconcile_started(5).reason.as_deref(),
            Some("phase=start from_index=5")
        );
        assert_eq!(
            keys_reconciled(0, 2, 1).reason.as_deref(),
            Some("phase=done key_store_only from_index=0 keys_destroyed=2 orgs_destroyed=1")
        );
    }
}
