//! Deletions the source log records after the backup that had not been purged yet when the
//! source was replaced: the restore brought those records back as they were, so reconcile
//! marks them again. Hard deletes, deletes of a whole category and a subject erasure's purges
//! are marked for purge (hidden at once, purged by the next sweep); soft deletes are hidden
//! again, restorable within the window, unless the log records their restore later.

use std::collections::BTreeSet;

use custos_audit::{AuditAction, AuditEvent};
use custos_policy::{ErasureAction, Policy};
use custos_store::{OrgScope, PurgeCause, RecordFilter, RecordState, StateChange, Store};

use crate::audit::{self, is_hard_delete, subject_ref, target_category, target_record};
use crate::error::BackupError;
use crate::reconcile::{events_of, failed};

/// Records marked again by [`replay`].
#[derive(Debug, Default)]
pub(crate) struct Marked {
    /// Marked for purge.
    pub purge: u64,
    /// Soft-deleted again.
    pub soft: u64,
}

/// Live (not yet purge-requested) states a deletion applies to.
const DELETABLE: [RecordState; 3] = [
    RecordState::Active,
    RecordState::Archived,
    RecordState::SoftDeleted,
];

/// Replays `src`'s pending deletions from `since` on `dst`.
pub(crate) async fn replay(
    src: &dyn Store,
    dst: &dyn Store,
    policy: &Policy,
    since: u64,
) -> Result<Marked, BackupError> {
    let mut marked = Marked::default();
    // (org, target, index) of every restore of a soft-deleted record.
    let restored: BTreeSet<(String, String, u64)> =
        events_of(src, AuditAction::RecordRestore, since)
            .await?
            .into_iter()
            .filter_map(|(i, e)| Some((e.org?, e.target?.to_string(), i)))
            .collect();
    for (index, e) in events_of(src, AuditAction::RecordDelete, since).await? {
        let (Some(org), Some(id)) = (e.org.as_deref(), target_record(&e)) else {
            continue;
        };
        let Some((scope, _)) = dst.org(org).await.map_err(failed("reading an org"))? else {
            continue;
        };
        let Some(row) = dst
            .record(&scope, id)
            .await
            .map_err(failed("reading a record"))?
        else {
            continue;
        };
        let hard = is_hard_delete(&e);
        if hard && DELETABLE.contains(&row.state) {
            marked.purge += mark(
                dst,
                &scope,
                vec![(row.id, row.state)],
                PurgeCause::Deletion,
                AuditAction::RecordDelete,
                since,
            )
            .await?;
        } else if !hard && matches!(row.state, RecordState::Active | RecordState::Archived) {
            // A restore of the record later in the log undoes this soft delete.
            let target = format!("record:{id}");
            let undone = restored
                .iter()
                .any(|(o, t, i)| o == org && *t == target && *i > index);
            if undone {
                continue;
            }
            let change = StateChange {
                id: row.id.clone(),
                from: row.state,
                to: RecordState::SoftDeleted,
                deleted_at: Some(e.time),
                next_due_at: Some(policy.deletion.soft_delete_window.add_to(e.time)),
            };
            let ev = audit::replayed(scope.org_id(), AuditAction::RecordDelete, since);
            if dst
                .transition_record(&scope, &change, &[ev])
                .await
                .map_err(failed("replaying a soft delete"))?
            {
                marked.soft += 1;
            }
        }
    }
    for (_, e) in events_of(src, AuditAction::CategoryDeleteAll, since).await? {
        let (Some(org), Some(category)) = (e.org.as_deref(), target_category(&e)) else {
            continue;
        };
        let filter = RecordFilter {
            category: Some(category.to_string()),
            states: DELETABLE.to_vec(),
            ..RecordFilter::default()
        };
        marked.purge += mark_matching(dst, org, &filter, &e, policy, false, since).await?;
    }
    for (_, e) in events_of(src, AuditAction::SubjectPurge, since).await? {
        let (Some(org), Some(subject_ref)) = (e.org.as_deref(), subject_ref(&e)) else {
            continue;
        };
        let filter = RecordFilter {
            subject_ref: Some(subject_ref.to_string()),
            states: DELETABLE.to_vec(),
            ..RecordFilter::default()
        };
        marked.purge += mark_matching(dst, org, &filter, &e, policy, true, since).await?;
    }
    Ok(marked)
}

/// Marks records for purge; returns how many were marked.
async fn mark(
    dst: &dyn Store,
    scope: &OrgScope,
    targets: Vec<(String, RecordState)>,
    cause: PurgeCause,
    what: AuditAction,
    since: u64,
) -> Result<u64, BackupError> {
    if targets.is_empty() {
        return Ok(0);
    }
    let ev = audit::replayed(scope.org_id(), what, since);
    dst.request_purges(scope, &targets, cause, jiff::Timestamp::now(), &[ev])
        .await
        .map_err(failed("replaying a deletion"))
}

/// Marks for purge the records of `org` matching `filter` that existed when `e` happened and
/// that no hold covers (with `erasure`, only those of categories an erasure deletes).
async fn mark_matching(
    dst: &dyn Store,
    org: &str,
    filter: &RecordFilter,
    e: &AuditEvent,
    policy: &Policy,
    erasure: bool,
    since: u64,
) -> Result<u64, BackupError> {
    let Some((scope, _)) = dst.org(org).await.map_err(failed("reading an org"))? else {
        return Ok(0);
    };
    let holds = dst.holds(&scope).await.map_err(failed("reading holds"))?;
    let (cause, what) = if erasure {
        (PurgeCause::Erasure, AuditAction::SubjectPurge)
    } else {
        (PurgeCause::Deletion, AuditAction::CategoryDeleteAll)
    };
    let mut marked = 0;
    let mut after: Option<String> = None;
    loop {
        let page = dst
            .list_records(&scope, filter, after.as_deref(), 1000)
            .await
            .map_err(failed("listing records"))?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        let targets = page
            .iter()
            .filter(|r| r.created_at <= e.time && !custos_core::is_held(r, &holds))
            .filter(|r| {
                !erasure
                    || policy
                        .category(&r.category)
                        .map_or(ErasureAction::Delete, |c| c.on_subject_erasure)
                        == ErasureAction::Delete
            })
            .map(|r| (r.id.clone(), r.state))
            .collect();
        marked += mark(dst, &scope, targets, cause, what, since).await?;
    }
    Ok(marked)
}
