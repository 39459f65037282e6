//! Reconcile: replay on a restored database (and key store) what the audit log of the
//! database it replaced records after the backup: the log's later entries are appended
//! verbatim, so the log continues and certificates issued meanwhile still prove inclusion;
//! then every subject key destruction, org termination, PII-token destruction and purge is
//! done again, and deletions not purged yet are marked again ([`crate::pending`]). Every step
//! is idempotent, so a reconcile run twice (or resumed after a crash) ends in the same state;
//! each is audited with counts only.

use std::collections::BTreeSet;

use custos_audit::{AuditAction, AuditEvent, Outcome};
use custos_crypto::KeyVault;
use custos_store::{AuditFilter, DeletionEntry, Objects, Purge, Store, StoreError};

use crate::audit::{self, erased_keys, from_index, subject_ref};
use crate::error::BackupError;

/// What a reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The first source log index whose events were replayed.
    pub since: u64,
    /// Entries of the source log appended to the restored one.
    pub appended: u64,
    /// Signed checkpoints copied over.
    pub checkpoints: u64,
    /// Subject keys destroyed (again).
    pub keys_destroyed: usize,
    /// Orgs whose keys were destroyed (again).
    pub orgs_destroyed: usize,
    /// Records purged (again).
    pub records_purged: usize,
    /// Objects of purged records deleted (again).
    pub objects_deleted: usize,
    /// PII tokens destroyed (again).
    pub tokens_destroyed: u64,
    /// Orgs whose termination was started or completed (again).
    pub terminations: usize,
    /// Records deleted after the backup but not purged yet, marked for purge again.
    pub marked_for_purge: u64,
    /// Records soft-deleted after the backup (and not restored), hidden again.
    pub soft_deleted: u64,
}

impl Report {
    /// The counts, as `name=value` pairs (the printed summary).
    pub fn counts(&self) -> String {
        format!(
            "from_index={} appended={} checkpoints={} keys_destroyed={} orgs_destroyed={} \
             records_purged={} objects_deleted={} tokens_destroyed={} terminations={} \
             marked_for_purge={} soft_deleted={}",
            self.since,
            self.appended,
            self.checkpoints,
            self.keys_destroyed,
            self.orgs_destroyed,
            self.records_purged,
            self.objects_deleted,
            self.tokens_destroyed,
            self.terminations,
            self.marked_for_purge,
            self.soft_deleted
        )
    }
}

/// A store failure of the reconcile while doing `what`.
pub(crate) fn failed(what: &'static str) -> impl FnOnce(StoreError) -> BackupError {
    move |source| BackupError::Store {
        what: format!("reconcile: {what}"),
        source,
    }
}

/// Every successful event with `action` in `store` from index `since`, with its index.
pub(crate) async fn events_of(
    store: &dyn Store,
    action: AuditAction,
    since: u64,
) -> Result<Vec<(u64, AuditEvent)>, BackupError> {
    let filter = AuditFilter {
        action: Some(action.as_str().into()),
        ..AuditFilter::default()
    };
    let mut out = Vec::new();
    let mut from = since;
    loop {
        let page = store
            .audit_query(None, &filter, from, 1000)
            .await
            .map_err(failed("reading the source log"))?;
        let Some(last) = page.last() else { break };
        from = last.index + 1;
        for entry in &page {
            let e = AuditEvent::from_canonical_bytes(&entry.leaf).map_err(|e| {
                BackupError::Failed(format!("reconcile: source log entry {}: {e}", entry.index))
            })?;
            if e.outcome == Outcome::Success {
                out.push((entry.index, e));
            }
        }
    }
    Ok(out)
}

/// Where the log window to replay starts when not given: where the restored log ended, as
/// the first reconcile recorded it, else the restored log's size.
async fn default_since(dst: &dyn Store, src_size: u64, dst_size: u64) -> Result<u64, BackupError> {
    if dst_size <= src_size {
        return Ok(dst_size);
    }
    let earlier = events_of(dst, AuditAction::BackupReconcile, src_size).await?;
    Ok(earlier
        .iter()
        .find_map(|(_, e)| from_index(e))
        .unwrap_or(src_size))
}

/// How the restored log relates to the source's.
enum Layout {
    /// The restored log is a prefix of the source's (or the source's of it): the source's
    /// later entries go at their own indices.
    Continues,
    /// The restored log was written to after the restore (`backup.restore` at
    /// `restored_at`, e.g. a restore with `--no-reconcile`): the source's later entries are
    /// appended after what is there; `done` when an earlier reconcile already did.
    Displaced { restored_at: u64, done: bool },
}

/// Indices of the entries with `action` in `store` from `from`.
async fn indices_of(
    store: &dyn Store,
    action: AuditAction,
    from: u64,
) -> Result<Vec<u64>, BackupError> {
    let filter = AuditFilter {
        action: Some(action.as_str().into()),
        ..AuditFilter::default()
    };
    let mut out = Vec::new();
    let mut at = from;
    loop {
        let page = store
            .audit_query(None, &filter, at, 1000)
            .await
            .map_err(failed("reading the restored log"))?;
        let Some(last) = page.last() else { break };
        at = last.index + 1;
        out.extend(page.iter().map(|e| e.index));
    }
    Ok(out)
}

async fn same_root(src: &dyn Store, dst: &dyn Store, size: u64) -> Result<bool, BackupError> {
    if size == 0 {
        return Ok(true);
    }
    let a = src.audit_root(size).await.map_err(failed("source root"))?;
    let b = dst
        .audit_root(size)
        .await
        .map_err(failed("restored root"))?;
    Ok(a == b)
}

async fn layout(
    src: &dyn Store,
    dst: &dyn Store,
    src_size: u64,
    dst_size: u64,
) -> Result<Layout, BackupError> {
    if same_root(src, dst, src_size.min(dst_size)).await? {
        return Ok(Layout::Continues);
    }
    if let Some(&restored_at) = indices_of(dst, AuditAction::BackupRestore, 0).await?.last() {
        if restored_at <= src_size && same_root(src, dst, restored_at).await? {
            let done = !indices_of(dst, AuditAction::BackupReconcile, restored_at)
                .await?
                .is_empty();
            return Ok(Layout::Displaced { restored_at, done });
        }
    }
    Err(BackupError::Failed(
        "reconcile: the restored audit log and the source's differ, and not after a restore: \
         the source is not the log the restored backup was taken from"
            .into(),
    ))
}

/// The source's entries `[from, to)`, decoded; each must re-encode to its stored bytes, so
/// that appending it appends the very same leaf.
async fn entries(src: &dyn Store, from: u64, to: u64) -> Result<Vec<AuditEvent>, BackupError> {
    let mut events = Vec::new();
    let mut at = from;
    while at < to {
        let page = src
            .audit_entries(None, at, 10_000)
            .await
            .map_err(failed("reading the source log"))?;
        if page.is_empty() {
            break;
        }
        for entry in page.into_iter().take_while(|e| e.index < to) {
            let event = AuditEvent::from_canonical_bytes(&entry.leaf).map_err(|e| {
                BackupError::Failed(format!("reconcile: source log entry {}: {e}", entry.index))
            })?;
            if event.to_canonical_bytes() != entry.leaf {
                return Err(BackupError::Failed(format!(
                    "reconcile: source log entry {} is not in this version's canonical encoding",
                    entry.index
                )));
            }
            at = entry.index + 1;
            events.push(event);
        }
    }
    Ok(events)
}

/// Appends the source's entries past the restored log's end at their own indices, with
/// `with` after them, in one transaction, and checks the continued log's root.
async fn continue_log(
    src: &dyn Store,
    dst: &dyn Store,
    src_size: u64,
    dst_size: u64,
    with: Vec<AuditEvent>,
) -> Result<u64, BackupError> {
    let mut events = entries(src, dst_size, src_size).await?;
    let appended = events.len() as u64;
    events.extend(with);
    dst.append_audit(&events)
        .await
        .map_err(failed("appending to the restored log"))?;
    if appended > 0 && !same_root(src, dst, src_size).await? {
        return Err(BackupError::Failed(
            "reconcile: the continued log's root differs from the source's".into(),
        ));
    }
    Ok(appended)
}

/// Destroys again every subject key and org key set whose destruction `log` records from
/// `since`; returns how many subject keys were still there, and the orgs destroyed.
pub(crate) async fn replay_key_destructions(
    log: &dyn Store,
    vault: &KeyVault,
    since: u64,
) -> Result<(usize, BTreeSet<String>), BackupError> {
    let mut keys_destroyed = 0;
    for (_, e) in events_of(log, AuditAction::SubjectCryptoErase, since).await? {
        let (Some(org), Some(keys)) = (e.org.as_deref(), erased_keys(&e)) else {
            continue;
        };
        let ids: Vec<String> = keys.iter().filter(|k| !k.is_empty()).cloned().collect();
        keys_destroyed += vault
            .destroy_subject_keys(org, &ids)
            .await
            .map_err(BackupError::keys("reconcile: destroying subject keys"))?;
    }
    let mut terminated = BTreeSet::new();
    for (_, e) in events_of(log, AuditAction::OrgTerminated, since).await? {
        if let Some(org) = e.org {
            vault
                .destroy_org(&org)
                .await
                .map_err(BackupError::keys("reconcile: destroying org keys"))?;
            terminated.insert(org);
        }
    }
    Ok((keys_destroyed, terminated))
}

/// Replays on `dst` (and `vault`, and `objects` when given) what `src`'s audit log records
/// from `since` (default: where the restored log ended); `first` are events to append right
/// after the continued log (the restore's own).
pub async fn reconcile(
    src: &dyn Store,
    dst: &dyn Store,
    vault: &KeyVault,
    objects: Option<&Objects>,
    policy: &custos_policy::Policy,
    since: Option<u64>,
    first: Vec<AuditEvent>,
) -> Result<Report, BackupError> {
    let src_size = src.audit_size().await.map_err(failed("source log size"))?;
    let dst_size = dst
        .audit_size()
        .await
        .map_err(failed("restored log size"))?;
    let layout = layout(src, dst, src_size, dst_size).await?;
    let since = match (since, &layout) {
        (Some(n), _) => n,
        (None, Layout::Continues) => default_since(dst, src_size, dst_size).await?,
        (None, Layout::Displaced { restored_at, .. }) => *restored_at,
    };
    let mut report = Report {
        since,
        ..Report::default()
    };
    let mut with = first;
    with.push(audit::reconcile_started(since));
    let mut from = since.max(1);
    match layout {
        Layout::Continues => {
            report.appended = continue_log(src, dst, src_size, dst_size, with).await?;
        }
        Layout::Displaced { restored_at, done } => {
            // The later entries cannot take their own indices: they follow what is there
            // (the same bytes; checkpoints of the source do not apply to this log).
            let mut events = if done {
                Vec::new()
            } else {
                entries(src, restored_at, src_size).await?
            };
            report.appended = events.len() as u64;
            events.extend(with);
            dst.append_audit(&events)
                .await
                .map_err(failed("appending to the restored log"))?;
            from = u64::MAX;
        }
    }

    // Signed checkpoints of the continued log stay valid: copy those the restored one lacks.
    while from <= src_size {
        let page = src
            .audit_checkpoints(from, 1000)
            .await
            .map_err(failed("reading checkpoints"))?;
        let Some(last) = page.last() else { break };
        let have: BTreeSet<u64> = dst
            .audit_checkpoints(from, 1000)
            .await
            .map_err(failed("reading checkpoints"))?
            .iter()
            .map(|c| c.size)
            .filter(|&size| size <= last.size)
            .collect();
        from = last.size + 1;
        for cp in &page {
            if cp.size <= src_size && !have.contains(&cp.size) {
                dst.add_audit_checkpoint(cp)
                    .await
                    .map_err(failed("copying a checkpoint"))?;
                report.checkpoints += 1;
            }
        }
    }

    // Keys: destroying is idempotent, and a destroyed key leaves a tombstone.
    let (keys, terminated) = replay_key_destructions(src, vault, since).await?;
    report.keys_destroyed = keys;
    report.orgs_destroyed = terminated.len();
    // Orgs whose termination was started or completed again.
    let mut replayed_orgs = BTreeSet::new();
    for (_, e) in events_of(src, AuditAction::OrgTerminate, since).await? {
        let Some(org) = e.org.as_deref() else {
            continue;
        };
        let Some((scope, row)) = dst.org(org).await.map_err(failed("reading an org"))? else {
            continue;
        };
        if row.terminating_since.is_none() {
            let ev = audit::replayed(org, AuditAction::OrgTerminate, since);
            if dst
                .request_termination(&scope, e.time, &[ev])
                .await
                .map_err(failed("replaying a termination"))?
            {
                replayed_orgs.insert(org.to_string());
            }
        }
    }
    for (_, e) in events_of(src, AuditAction::SubjectTokensDestroy, since).await? {
        let (Some(org), Some(sref)) = (e.org.as_deref(), subject_ref(&e)) else {
            continue;
        };
        let Some((scope, _)) = dst.org(org).await.map_err(failed("reading an org"))? else {
            continue;
        };
        let ev = audit::replayed(org, AuditAction::SubjectTokensDestroy, since);
        report.tokens_destroyed += dst
            .destroy_subject_tokens(&scope, sref, &[ev])
            .await
            .map_err(failed("replaying a token destruction"))?;
    }

    // Purges: the source's deletion log names every record purged; purge those the restore
    // brought back, and delete their objects.
    for org in src.orgs().await.map_err(failed("listing orgs"))? {
        let Some((src_scope, _)) = src.org(&org.id).await.map_err(failed("reading an org"))? else {
            continue;
        };
        let dst_scope = dst
            .org(&org.id)
            .await
            .map_err(failed("reading an org"))?
            .map(|(s, _)| s);
        let mut after: Option<String> = None;
        loop {
            let page = src
                .deletion_log(&src_scope, after.as_deref(), 1000)
                .await
                .map_err(failed("reading the deletion log"))?;
            let Some(last) = page.last() else { break };
            after = Some(last.record_id.clone());
            let page: Vec<DeletionEntry> = page
                .into_iter()
                .filter(|d| d.audit_index.is_none_or(|i| i >= since))
                .collect();
            let mut purges = Vec::new();
            for d in page {
                if let Some(objects) = objects {
                    // The sweep's own rule for a record's objects; its row is gone here.
                    for key in custos_core::record_object_keys(&org.id, &d.record_id, None) {
                        if objects.exists(&key).await.map_err(failed("objects"))? {
                            objects.delete(&key).await.map_err(failed("objects"))?;
                            report.objects_deleted += 1;
                        }
                    }
                }
                let Some(scope) = &dst_scope else { continue };
                if let Some(row) = dst
                    .record(scope, &d.record_id)
                    .await
                    .map_err(failed("reading a record"))?
                {
                    purges.push(Purge {
                        from: row.state,
                        entry: DeletionEntry {
                            audit_index: None,
                            ..d
                        },
                    });
                }
            }
            if let Some(scope) = &dst_scope {
                report.records_purged += purge(dst, scope, purges, since).await?;
            }
        }
    }

    let marked = crate::pending::replay(src, dst, policy, since).await?;
    report.marked_for_purge = marked.purge;
    report.soft_deleted = marked.soft;

    for org in &terminated {
        let Some((scope, row)) = dst.org(org).await.map_err(failed("reading an org"))? else {
            continue;
        };
        if row.terminated_at.is_some() {
            continue;
        }
        let now = jiff::Timestamp::now();
        let ev = |what: AuditAction| audit::replayed(org, what, since);
        if row.terminating_since.is_none() {
            dst.request_termination(&scope, now, &[ev(AuditAction::OrgTerminate)])
                .await
                .map_err(failed("replaying a termination"))?;
        }
        if dst
            .finish_termination(&scope, now, &[ev(AuditAction::OrgTerminated)])
            .await
            .map_err(failed("replaying a termination"))?
        {
            replayed_orgs.insert(org.clone());
        }
    }

    report.terminations = replayed_orgs.len();
    dst.append_audit(&[audit::reconcile_done(&report)])
        .await
        .map_err(failed("auditing"))?;
    Ok(report)
}

/// Purges `purges` in batches, each audited as `backup.reconcile`; returns how many went.
async fn purge(
    dst: &dyn Store,
    scope: &custos_store::OrgScope,
    mut purges: Vec<Purge>,
    since: u64,
) -> Result<usize, BackupError> {
    while !purges.is_empty() {
        let ids: Vec<&str> = purges.iter().map(|p| p.entry.record_id.as_str()).collect();
        let ev = audit::replayed_purge(scope.org_id(), &ids, since);
        match dst
            .purge_records(scope, &purges, &ev)
            .await
            .map_err(failed("purging"))?
        {
            None => return Ok(purges.len()),
            // Rows that changed state meanwhile are left out; the rest go in the next batch.
            Some(still) => {
                let before = purges.len();
                purges.retain(|p| still.contains(&p.entry.record_id));
                if purges.len() == before {
                    break;
                }
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_name_every_step_in_order() {
        let report = Report {
            since: 7,
            appended: 3,
            checkpoints: 1,
            keys_destroyed: 2,
            orgs_destroyed: 1,
            records_purged: 4,
            objects_deleted: 5,
            tokens_destroyed: 6,
            terminations: 1,
            marked_for_purge: 8,
            soft_deleted: 9,
        };
        assert_eq!(
            report.counts(),
            "from_index=7 appended=3 checkpoints=1 keys_destroyed=2 orgs_destroyed=1 \
             records_purged=4 objects_deleted=5 tokens_destroyed=6 terminations=1 \
             marked_for_purge=8 soft_deleted=9"
        );
        let done = audit::reconcile_done(&report);
        assert_eq!(done.details.phase.as_deref(), Some("done"));
        assert_eq!(
            (done.details.from_index, done.details.soft_deleted),
            (Some(7), Some(9))
        );
    }
}
