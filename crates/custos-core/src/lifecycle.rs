//! The lifecycle engine: every record that falls due is archived or purged by itself, holds
//! permitting, each step one transaction with its audit event.
//!
//! Crash safety comes from ordering and compare-and-set, not from a journal:
//! - archive: copy content to the archive location (idempotent overwrite) → one transaction
//!   (state `archived`, hot content dropped, audit) → delete the hot blob. A crash before the
//!   transaction leaves the record active and due, so the next pass repeats the copy; a crash
//!   after it leaves a hot blob of an archived record, which the purge removes.
//! - purge: delete the record's objects (missing ones are fine) → one transaction (row deleted
//!   if still in the expected state, deletion-log row, audit). A crash in between leaves a due
//!   row without blob, purged on the next pass; never a blob without a row.
//!
//! Nothing runs ahead of the clock: a real sweep acts only on records whose due time has
//! passed; `as_of` is for dry-run forecasts.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use custos_store::{
    DeletionEntry, DueCursor, DueRecord, DueUpdate, Hold, OrgScope, Purge, RecordFilter, RecordRow,
    RecordState,
};

use custos_audit::{Details, Target};

use crate::files::blob_key;
use crate::{Caller, CoreError, Custos, Principal};

/// How long a held record is left alone before the sweeper looks at it (and its holds) again.
const HELD_RECHECK: SignedDuration = SignedDuration::from_secs(3600);

/// What one sweep pass does.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Report what would happen; change nothing.
    pub dry_run: bool,
    /// Dry runs only: report what will be due at this time instead of now.
    pub as_of: Option<Timestamp>,
    /// Records claimed (or read) per store round trip.
    pub batch: u32,
    /// How long this sweeper owns the records it claims: if it dies, another sweeper (or
    /// its restart) takes them over after this.
    pub lease: SignedDuration,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            dry_run: false,
            as_of: None,
            batch: 2000,
            lease: SignedDuration::from_secs(300),
        }
    }
}

/// A lifecycle action on one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Content moved to the archive tier.
    Archive,
    /// Record and its objects removed; a deletion-log row remains.
    Purge,
    /// A purge that a legal hold stopped.
    Held,
}

/// One action of a sweep, as `custos sweep --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepAction {
    /// Org id.
    pub org: String,
    /// Record id.
    pub record: String,
    /// Record category.
    pub category: String,
    /// What was (or, in a dry run, would be) done.
    pub action: ActionKind,
    /// When it fell (or falls) due.
    pub due: Timestamp,
}

/// Totals of one sweep pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepSummary {
    /// Records archived.
    pub archived: u64,
    /// Records purged.
    pub purged: u64,
    /// Purges a hold stopped.
    pub held: u64,
    /// Records another sweeper or a user changed first (nothing done here).
    pub raced: u64,
    /// Records whose due times were recomputed after a retention override changed.
    pub recomputed: u64,
    /// Org terminations completed (all records purged, keys destroyed).
    pub terminated: u64,
    /// Erasure requests resumed (after a crash, or after the holds that kept them partial
    /// were released).
    pub erasures: u64,
    /// Members disabled for being unused past the policy's `inactive_member_after`.
    pub members_disabled: u64,
    /// The deployment's own security events deleted at the end of their retention (an org's
    /// are records, counted in `purged`).
    pub security_events_purged: u64,
    /// Notifications delivered or given up more than 30 days ago, deleted from the outbox.
    pub notifications_purged: u64,
    /// Used privacy-center links past their expiry, forgotten.
    pub privacy_links_purged: u64,
}

impl SweepSummary {
    fn count(&mut self, action: ActionKind) {
        match action {
            ActionKind::Archive => self.archived += 1,
            ActionKind::Purge => self.purged += 1,
            ActionKind::Held => self.held += 1,
        }
    }
}

/// One deletion-log row: what was purged, when and why; never content or subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeletionView {
    /// Id of the purged record.
    pub record_id: String,
    /// Its category.
    pub category: String,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When its purge fell due.
    #[schema(value_type = String, format = DateTime)]
    pub due_at: Timestamp,
    /// When it was purged.
    #[schema(value_type = String, format = DateTime)]
    pub purged_at: Timestamp,
    /// `expired`, `soft_delete_window_closed`, `hard_delete`, `erasure` (a subject's erasure) or
    /// `account_termination`.
    pub reason: String,
    /// Index of the `record.purge` audit event of the batch this record was purged in; its
    /// `ids_sha256` is the SHA-256 of the batch's record ids, sorted and joined by `\n`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_index: Option<u64>,
}

impl From<DeletionEntry> for DeletionView {
    fn from(e: DeletionEntry) -> Self {
        DeletionView {
            record_id: e.record_id,
            category: e.category,
            created_at: e.created_at,
            due_at: e.due_at,
            purged_at: e.purged_at,
            reason: e.reason,
            audit_index: e.audit_index,
        }
    }
}

/// The digest a batch purge event carries: SHA-256 of the purged record ids, sorted and
/// joined by `\n`, in lower-case hex. An auditor recomputes it from the deletion-log rows
/// that name the event.
pub fn purged_ids_digest<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    use sha2::Digest;
    let mut ids: Vec<&str> = ids.into_iter().collect();
    ids.sort_unstable();
    format!("{:x}", sha2::Sha256::digest(ids.join("\n").as_bytes()))
}

/// Which promise an overdue record breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlaKind {
    /// Past retention and still here after `expired_within`.
    Expired,
    /// Deleted by a user and still here after the window and `hard_delete_within`.
    HardDelete,
    /// Its org is terminated and it is still here after `account_termination_within`.
    AccountTermination,
    /// A data subject request still open after its due time (`erasure_request_within`,
    /// plus any extension).
    SubjectRequest,
}

/// A record still stored after the policy's deadline for removing it, or a data subject
/// request still open after its due time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OverdueRecord {
    /// Org id.
    pub org: String,
    /// Record id (for a record's deadline).
    pub record: Option<String>,
    /// Request id (for a data subject request's deadline).
    pub request: Option<String>,
    /// The record's category, or the request's type (`access`, `portability`, `erasure`).
    pub category: String,
    /// The promise at stake.
    pub kind: SlaKind,
    /// When it had to be gone.
    #[schema(value_type = String, format = DateTime)]
    pub deadline: Timestamp,
    /// A legal hold keeps it (overdue by law, not by failure).
    pub held: bool,
}

/// The deadline by which `row` must be gone once it is due for purge, and the promise that
/// sets it.
pub fn removal_deadline(
    row: &RecordRow,
    deletion: &custos_policy::Deletion,
) -> (SlaKind, Timestamp) {
    match row.state {
        RecordState::PurgeRequested | RecordState::ErasureRequested => (
            SlaKind::HardDelete,
            deletion
                .hard_delete_within
                .add_to(row.deleted_at.unwrap_or(row.created_at)),
        ),
        RecordState::SoftDeleted => {
            let deleted = row.deleted_at.unwrap_or(row.created_at);
            let window = deletion.soft_delete_window.add_to(deleted);
            let hard = deletion.hard_delete_within.add_to(deleted);
            (SlaKind::HardDelete, window.max(hard))
        }
        _ => (
            SlaKind::Expired,
            deletion.expired_within.add_to(row.expire_at),
        ),
    }
}

/// The step a record needs at `at`, with its due time and reason; `None` if nothing is due.
pub fn due_step(
    row: &RecordRow,
    soft_delete_window: &custos_policy::Duration,
    at: Timestamp,
) -> Option<(ActionKind, Timestamp, &'static str)> {
    match row.state {
        RecordState::PurgeRequested => {
            let due = row.deleted_at.unwrap_or(row.created_at);
            (due <= at).then_some((ActionKind::Purge, due, "hard_delete"))
        }
        RecordState::ErasureRequested => {
            let due = row.deleted_at.unwrap_or(row.created_at);
            (due <= at).then_some((ActionKind::Purge, due, "erasure"))
        }
        RecordState::SoftDeleted => {
            let due = soft_delete_window.add_to(row.deleted_at.unwrap_or(row.created_at));
            (due <= at).then_some((ActionKind::Purge, due, "soft_delete_window_closed"))
        }
        RecordState::Archived => {
            (row.expire_at <= at).then_some((ActionKind::Purge, row.expire_at, "expired"))
        }
        RecordState::Active => {
            if row.expire_at <= at {
                Some((ActionKind::Purge, row.expire_at, "expired"))
            } else {
                match row.archive_at {
                    Some(a) if a <= at => Some((ActionKind::Archive, a, "archive_after")),
                    _ => None,
                }
            }
        }
    }
}

/// Whether an active hold covers the record: an org-wide hold, or one whose subject and/or
/// category (each if set) match it.
pub fn is_held(row: &RecordRow, holds: &[Hold]) -> bool {
    holds.iter().any(|h| {
        h.subject_ref
            .as_ref()
            .is_none_or(|s| row.subject_ref.as_ref() == Some(s))
            && h.category.as_ref().is_none_or(|c| *c == row.category)
    })
}

/// Where an archived record's sealed envelope lives.
pub(crate) fn archive_envelope_key(org: &str, record: &str) -> String {
    format!("orgs/{org}/archive/{record}.envelope")
}

/// Where an archived record's blob lives.
pub(crate) fn archive_blob_key(org: &str, record: &str) -> String {
    format!("orgs/{org}/archive/{record}.blob")
}

/// The object-store keys of a record's objects (its blob, its archived blob, its archived
/// envelope). Given its row, only those a record in its state can have (none for a plain
/// record); without one (the row is gone, e.g. already purged), every key one can be at. What
/// the sweep's purge deletes, and what a restore's reconcile deletes for records the log
/// records as purged.
pub fn record_object_keys(org: &str, record: &str, row: Option<&RecordRow>) -> Vec<String> {
    let (has_blob, archived) = row.map_or((true, true), |r| {
        (r.blob_size.is_some(), r.state == RecordState::Archived)
    });
    [
        (has_blob, blob_key(org, record)),
        (has_blob && archived, archive_blob_key(org, record)),
        (archived, archive_envelope_key(org, record)),
    ]
    .into_iter()
    .filter_map(|(may, key)| may.then_some(key))
    .collect()
}

/// An archived record made readable by a restore request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ArchiveRestore {
    /// Record id.
    pub id: String,
    /// Readable through the normal read routes until then.
    #[schema(value_type = String, format = DateTime)]
    pub readable_until: Timestamp,
}

/// Whether `event` is the batch purge event of exactly the records `ids` (the deletion-log
/// rows that point at it): action `record.purge`, the same count and the same digest.
pub fn purge_event_covers(event: &custos_audit::AuditEvent, ids: &[&str]) -> bool {
    event.action == custos_audit::AuditAction::RecordPurge
        && event.details.records == Some(ids.len() as u64)
        && event.details.ids_sha256 == Some(purged_ids_digest(ids.iter().copied()))
}

impl Custos {
    /// An authorized restore request for an archived record (owners and admins of the org,
    /// or the admin token, within the category's access rule): its content becomes readable
    /// for the policy's `archive_restore_window`, audited as `record.archive_restore`.
    pub async fn request_archive_restore(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<ArchiveRestore, CoreError> {
        const ACTION: custos_audit::AuditAction = custos_audit::AuditAction::RecordArchiveRestore;
        let grant = self
            .authorize(caller, crate::authz::Operation::RecordArchiveRestore, org)
            .await?;
        let row = self.readable_record(caller, &grant, id).await?;
        let scope = grant.scope;
        if row.state != RecordState::Archived {
            return Err(CoreError::Conflict(format!(
                "record {id} is not archived; it is readable as it is"
            )));
        }
        let readable_until = self
            .policy
            .deletion
            .archive_restore_window
            .add_to(self.now());
        let event = self
            .event(caller, ACTION)
            .org(org)
            .target(Target::Record(id.to_string()))
            .details(Details::new().readable_until(readable_until));
        if !self
            .store
            .for_org(&scope)
            .await?
            .open_archive_window(&scope, id, readable_until, &[event])
            .await?
        {
            return Err(CoreError::Conflict(format!(
                "record {id} changed concurrently; retry"
            )));
        }
        Ok(ArchiveRestore {
            id: id.to_string(),
            readable_until,
        })
    }

    /// The row with its sealed content: as stored for hot records; for archived ones, read
    /// back from the archive while a restore request's window is open, else a conflict that
    /// says how to get it.
    pub(crate) async fn with_archived_content(
        &self,
        scope: &OrgScope,
        mut row: RecordRow,
    ) -> Result<RecordRow, CoreError> {
        if row.state != RecordState::Archived {
            return Ok(row);
        }
        let now = self.now();
        match self
            .store
            .for_org(scope)
            .await?
            .archive_window(scope, &row.id)
            .await?
        {
            Some(until) if now < until => {}
            Some(until) => {
                return Err(CoreError::Conflict(format!(
                    "record {} is archived and its restore window closed at {until}; \
                     POST .../records/{}/archive-restore to open a new one",
                    row.id, row.id
                )))
            }
            None => {
                return Err(CoreError::Conflict(format!(
                    "record {} is archived; its content is readable only after an authorized \
                     restore request (POST .../records/{}/archive-restore)",
                    row.id, row.id
                )))
            }
        }
        // No envelope: the category keeps no content (only a file, or nothing at all).
        row.sealed = self
            .objects_of(scope)
            .await?
            .read_small(&archive_envelope_key(scope.org_id(), &row.id))
            .await?;
        Ok(row)
    }

    /// Runs one sweep pass: every due record is archived or purged (holds permitting), and
    /// `on_action` hears about each action as it happens. A dry run changes nothing.
    pub async fn sweep(
        &self,
        opts: &SweepOptions,
        on_action: &mut (dyn FnMut(&SweepAction) + Send),
    ) -> Result<SweepSummary, CoreError> {
        let now = self.now();
        if opts.as_of.is_some_and(|t| t > now) && !opts.dry_run {
            return Err(CoreError::invalid(
                "as_of",
                "a real sweep never runs ahead of the clock; use it with --dry-run",
            ));
        }
        let mut orgs = OrgCache::default();
        let mut summary = SweepSummary::default();
        if opts.dry_run {
            let at = opts.as_of.unwrap_or(now);
            let mut cursor: Option<DueCursor> = None;
            loop {
                let page = self
                    .store
                    .peek_due(at, cursor.as_ref(), opts.batch.max(1))
                    .await?;
                let Some(last) = page.last() else { break };
                cursor = Some(last.cursor());
                for due in &page {
                    if let Some(planned) = self.plan(due, at, &mut orgs).await? {
                        summary.count(planned.action.action);
                        on_action(&planned.action);
                    }
                }
            }
            return Ok(summary);
        }
        summary.recomputed = self.recompute_due_times().await?;
        // Before claiming: the records a resumed erasure marks are purged in this same pass.
        summary.erasures = self.resume_erasures(None).await? as u64;
        summary.security_events_purged = self.purge_deployment_security_events().await?;
        summary.notifications_purged = self.purge_notifications().await?;
        summary.privacy_links_purged = self.purge_privacy_link_uses().await?;
        loop {
            let lease_until = now + opts.lease;
            let claimed = self
                .store
                .claim_due(now, lease_until, opts.batch.max(1))
                .await?;
            if claimed.is_empty() {
                break;
            }
            // Purges are batched per org: one transaction and one audit event each.
            let mut purges: Vec<(OrgScope, Vec<(RecordRow, Planned)>)> = Vec::new();
            for due in claimed {
                let Some(planned) = self.plan(&due, now, &mut orgs).await? else {
                    // Due by its index entry but nothing to do (e.g. restored meanwhile):
                    // look again later rather than spin on it.
                    self.store
                        .for_org(&due.scope)
                        .await?
                        .defer_record(&due.scope, &due.row.id, now + HELD_RECHECK)
                        .await?;
                    continue;
                };
                match planned.action.action {
                    ActionKind::Held => {
                        self.store
                            .for_org(&due.scope)
                            .await?
                            .defer_record(&due.scope, &due.row.id, now + HELD_RECHECK)
                            .await?;
                        summary.count(planned.action.action);
                        on_action(&planned.action);
                    }
                    ActionKind::Archive => {
                        if self.archive(&due.scope, &due.row).await? {
                            summary.count(planned.action.action);
                            on_action(&planned.action);
                        } else {
                            summary.raced += 1;
                        }
                    }
                    ActionKind::Purge => match purges.iter_mut().find(|(s, _)| *s == due.scope) {
                        Some((_, items)) => items.push((due.row, planned)),
                        None => purges.push((due.scope, vec![(due.row, planned)])),
                    },
                }
            }
            for (scope, items) in purges {
                let total = items.len() as u64;
                let purged = self.purge(&scope, items, now).await?;
                summary.raced += total - purged.len() as u64;
                for action in &purged {
                    summary.count(action.action);
                    on_action(action);
                }
            }
        }
        summary.terminated = self.finish_terminations(now, &mut orgs).await?;
        summary.members_disabled = self.disable_inactive_members(now).await?;
        if summary.purged > 0 {
            self.store.forget_deleted().await?;
        }
        Ok(summary)
    }

    /// Sweeps every `every` for as long as the process runs (`custos serve`). Several
    /// instances may run this on one database: claims keep their work apart.
    pub async fn run_sweeper(self: std::sync::Arc<Self>, every: std::time::Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.sweep(&SweepOptions::default(), &mut |_| {}).await {
                Ok(s) if s.archived + s.purged + s.held > 0 => tracing::info!(
                    archived = s.archived,
                    purged = s.purged,
                    held = s.held,
                    "lifecycle sweep"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "lifecycle sweep failed; retrying next interval")
                }
            }
        }
    }

    /// Recomputes, page by page, the due times of records whose category's retention override
    /// changed; progress is stored with each page, so an interrupted run resumes where it
    /// stopped. Runs before claiming work so that a shortened retention takes effect in the
    /// same pass. Returns how many records changed.
    async fn recompute_due_times(&self) -> Result<u64, CoreError> {
        const PAGE: u32 = 1000;
        let mut changed = 0u64;
        for job in self.store.pending_recomputes().await? {
            let Some(category) = self.policy.category(&job.category) else {
                // A category removed from the policy: nothing to recompute against.
                self.store
                    .for_org(&job.scope)
                    .await?
                    .apply_recompute(&job.scope, &job.category, &[], None, &[])
                    .await?;
                continue;
            };
            let retention = self.retention_override(&job.scope, &category.name).await?;
            let filter = RecordFilter {
                category: Some(category.name.clone()),
                states: vec![RecordState::Active, RecordState::Archived],
                ..RecordFilter::default()
            };
            let mut after = job.after.clone();
            let mut done = 0u64;
            loop {
                let page = self
                    .store
                    .for_org(&job.scope)
                    .await?
                    .list_records(
                        &job.scope,
                        &filter,
                        Some(&after).filter(|a| !a.is_empty()).map(String::as_str),
                        PAGE,
                    )
                    .await?;
                let updates: Vec<DueUpdate> = page
                    .iter()
                    .filter_map(|row| {
                        let due = category.due_times(row.created_at, retention);
                        let update = match row.state {
                            RecordState::Archived => DueUpdate {
                                id: row.id.clone(),
                                state: row.state,
                                archive_at: row.archive_at,
                                expire_at: due.expire_at,
                                next_due_at: due.expire_at,
                            },
                            _ => DueUpdate {
                                id: row.id.clone(),
                                state: row.state,
                                archive_at: due.archive_at,
                                expire_at: due.expire_at,
                                next_due_at: crate::records::next_due(
                                    due.archive_at,
                                    due.expire_at,
                                ),
                            },
                        };
                        let unchanged = update.archive_at == row.archive_at
                            && update.expire_at == row.expire_at
                            && Some(update.next_due_at) == row.next_due_at;
                        (!unchanged).then_some(update)
                    })
                    .collect();
                changed += updates.len() as u64;
                done += page.len() as u64;
                let last = page.last().map(|r| r.id.clone());
                let finished = page.len() < PAGE as usize;
                let event = self
                    .event(&system(), custos_audit::AuditAction::RetentionRecompute)
                    .org(job.scope.org_id())
                    .target(Target::Category(category.name.to_string()))
                    .details(Details::new().records(done));
                self.store
                    .for_org(&job.scope)
                    .await?
                    .apply_recompute(
                        &job.scope,
                        &category.name,
                        &updates,
                        if finished { None } else { last.as_deref() },
                        &[event],
                    )
                    .await?;
                tracing::info!(
                    org = job.scope.org_id(),
                    category = %category.name,
                    records = done,
                    finished,
                    "recomputing due times after a retention change"
                );
                match (finished, last) {
                    (false, Some(last)) => after = last,
                    _ => break,
                }
            }
        }
        Ok(changed)
    }

    /// The action a due record needs at `at`, with holds applied: every record of a
    /// terminating org is purged, others per [`due_step`].
    async fn plan(
        &self,
        due: &DueRecord,
        at: Timestamp,
        orgs: &mut OrgCache,
    ) -> Result<Option<Planned>, CoreError> {
        let org = orgs.of(self, &due.scope).await?;
        let step = match org.terminating_since {
            Some(since) if since <= at => Some((ActionKind::Purge, since, "account_termination")),
            _ => due_step(&due.row, &self.policy.deletion.soft_delete_window, at),
        };
        let Some((mut action, due_at, reason)) = step else {
            return Ok(None);
        };
        if action == ActionKind::Purge && is_held(&due.row, &org.holds) {
            action = ActionKind::Held;
        }
        Ok(Some(Planned {
            action: SweepAction {
                org: due.scope.org_id().to_string(),
                record: due.row.id.clone(),
                category: due.row.category.clone(),
                action,
                due: due_at,
            },
            reason,
        }))
    }

    /// Moves an active record's content to the archive tier. False if it changed meanwhile.
    async fn archive(&self, scope: &OrgScope, claimed: &RecordRow) -> Result<bool, CoreError> {
        let org = scope.org_id();
        // Claims carry no content: read it, and stop if the record changed since the claim.
        let Some(row) = self
            .store
            .for_org(scope)
            .await?
            .record(scope, &claimed.id)
            .await?
            .filter(|r| r.state == claimed.state)
        else {
            return Ok(false);
        };
        if let Some(sealed) = row.sealed {
            self.objects_of(scope)
                .await?
                .put_archive(&archive_envelope_key(org, &row.id), sealed)
                .await?;
        }
        if row.blob_size.is_some() {
            self.objects_of(scope)
                .await?
                .copy_to_archive(&blob_key(org, &row.id), &archive_blob_key(org, &row.id))
                .await?;
        }
        let event = self
            .event(&system(), custos_audit::AuditAction::RecordArchive)
            .org(org)
            .target(Target::Record(row.id.to_string()))
            .details(Details::new().category(row.category.clone()));
        let moved = self
            .store
            .for_org(scope)
            .await?
            .archive_record(scope, &row.id, row.state, row.expire_at, &[event])
            .await?;
        if moved && row.blob_size.is_some() {
            self.objects_of(scope)
                .await?
                .delete(&blob_key(org, &row.id))
                .await?;
        }
        Ok(moved)
    }

    /// Removes the records' objects, then their rows in one transaction with one audit event
    /// for the batch (its digest names exactly the purged ids; each deletion-log row points
    /// at it). Records that changed meanwhile are left out and the rest retried. Returns the
    /// actions done.
    async fn purge(
        &self,
        scope: &OrgScope,
        mut items: Vec<(RecordRow, Planned)>,
        now: Timestamp,
    ) -> Result<Vec<SweepAction>, CoreError> {
        let org = scope.org_id();
        for (row, _) in &items {
            // Only the objects this record can have: no file system call for plain records.
            for key in record_object_keys(org, &row.id, Some(row)) {
                self.objects_of(scope).await?.delete(&key).await?;
            }
        }
        while !items.is_empty() {
            let purges: Vec<Purge> = items
                .iter()
                .map(|(row, planned)| Purge {
                    from: row.state,
                    entry: DeletionEntry {
                        record_id: row.id.clone(),
                        category: row.category.clone(),
                        created_at: row.created_at,
                        due_at: planned.action.due,
                        purged_at: now,
                        reason: planned.reason.to_string(),
                        audit_index: None,
                    },
                })
                .collect();
            let mut reasons: Vec<&str> = items.iter().map(|(_, p)| p.reason).collect();
            reasons.sort_unstable();
            reasons.dedup();
            let event = self
                .event(&system(), custos_audit::AuditAction::RecordPurge)
                .org(org)
                .target(Target::DeletionLog)
                .details(
                    Details::new()
                        .records(items.len() as u64)
                        .purge_reasons(reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>())
                        .ids_sha256(purged_ids_digest(items.iter().map(|(r, _)| r.id.as_str()))),
                );
            match self
                .store
                .for_org(scope)
                .await?
                .purge_records(scope, &purges, &event)
                .await?
            {
                None => return Ok(items.into_iter().map(|(_, p)| p.action).collect()),
                Some(still) => items.retain(|(row, _)| still.contains(&row.id)),
            }
        }
        Ok(Vec::new())
    }

    /// Completes the termination of every terminating org whose records are all purged:
    /// destroys its keys, then marks it terminated (in that order, so a crash in between
    /// repeats the idempotent destroy). Returns how many orgs completed.
    async fn finish_terminations(
        &self,
        now: Timestamp,
        orgs: &mut OrgCache,
    ) -> Result<u64, CoreError> {
        let mut finished = 0;
        for org in self.store.orgs().await? {
            if org.terminating_since.is_none() || org.terminated_at.is_some() {
                continue;
            }
            let Some((scope, _)) = self.store.org(&org.id).await? else {
                continue;
            };
            let left = self
                .store
                .for_org(&scope)
                .await?
                .list_records(&scope, &RecordFilter::default(), None, 1)
                .await?;
            if !left.is_empty() {
                continue;
            }
            self.vault.destroy_org(&org.id).await?;
            let event = self
                .event(&system(), custos_audit::AuditAction::OrgTerminated)
                .org(&org.id)
                .target(Target::Org(org.id.to_string()));
            if self
                .store
                .for_org(&scope)
                .await?
                .finish_termination(&scope, now, &[event])
                .await?
            {
                finished += 1;
                orgs.0.remove(&org.id);
            }
        }
        Ok(finished)
    }

    /// Records past their removal deadline (`expired_within`, `hard_delete_within`,
    /// `account_termination_within`) and open data subject requests past due, of one org (its managers, or the admin) or of all orgs
    /// (the admin or the system). Reads only what is due, so it costs what is late, not what
    /// is stored.
    pub async fn overdue(
        &self,
        caller: &Caller,
        org: Option<&str>,
    ) -> Result<Vec<OverdueRecord>, CoreError> {
        let only = match org {
            Some(org) => Some(
                self.authorize(caller, crate::authz::Operation::LifecycleOverdue, org)
                    .await?
                    .scope,
            ),
            None if caller.principal.is_operator()
                || matches!(caller.principal, Principal::System) =>
            {
                None
            }
            None => {
                return Err(CoreError::invalid(
                    "org",
                    "members name their org to report on",
                ))
            }
        };
        let now = self.now();
        let mut orgs = OrgCache::default();
        let mut out = Vec::new();
        let mut cursor: Option<DueCursor> = None;
        loop {
            let page = self.store.peek_due(now, cursor.as_ref(), 1000).await?;
            let Some(last) = page.last() else { break };
            cursor = Some(last.cursor());
            for due in &page {
                if only.as_ref().is_some_and(|s| *s != due.scope) {
                    continue;
                }
                let org = orgs.of(self, &due.scope).await?;
                let (kind, deadline) = match org.terminating_since {
                    Some(since) => (
                        SlaKind::AccountTermination,
                        self.policy
                            .deletion
                            .account_termination_within
                            .add_to(since),
                    ),
                    None => {
                        if due_step(&due.row, &self.policy.deletion.soft_delete_window, now)
                            .is_none_or(|(action, _, _)| action != ActionKind::Purge)
                        {
                            continue;
                        }
                        removal_deadline(&due.row, &self.policy.deletion)
                    }
                };
                if deadline <= now {
                    out.push(OverdueRecord {
                        org: due.scope.org_id().to_string(),
                        record: Some(due.row.id.clone()),
                        request: None,
                        category: due.row.category.clone(),
                        kind,
                        deadline,
                        held: is_held(&due.row, &org.holds),
                    });
                }
            }
        }
        for (scope, request) in self.overdue_requests(now, 10_000).await? {
            if only.as_ref().is_some_and(|s| *s != scope) {
                continue;
            }
            out.push(OverdueRecord {
                org: scope.org_id().to_string(),
                record: None,
                request: Some(request.id),
                category: request.kind.to_string(),
                kind: SlaKind::SubjectRequest,
                deadline: request.due_at,
                held: false,
            });
        }
        Ok(out)
    }

    /// The org's deletion log (managers and the deployment admin), ordered by record id.
    pub async fn deletion_log(
        &self,
        caller: &Caller,
        org: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeletionView>, CoreError> {
        let scope = self
            .authorize(caller, crate::authz::Operation::DeletionLogRead, org)
            .await?
            .scope;
        Ok(self
            .store
            .for_org(&scope)
            .await?
            .deletion_log(&scope, after, limit.clamp(1, crate::records::MAX_PAGE))
            .await?
            .into_iter()
            .map(DeletionView::from)
            .collect())
    }
}

fn system() -> Caller {
    Caller::new(Principal::System)
}

/// A planned action and the reason a purge would record.
struct Planned {
    action: SweepAction,
    reason: &'static str,
}

/// What a sweep pass needs to know of an org, read once per pass.
struct OrgFacts {
    holds: Vec<Hold>,
    terminating_since: Option<Timestamp>,
}

/// [`OrgFacts`] per org id.
#[derive(Default)]
struct OrgCache(HashMap<String, OrgFacts>);

impl OrgCache {
    async fn of(&mut self, custos: &Custos, scope: &OrgScope) -> Result<&OrgFacts, CoreError> {
        if !self.0.contains_key(scope.org_id()) {
            let holds = custos.store.for_org(scope).await?.holds(scope).await?;
            let terminating_since = custos
                .store
                .org(scope.org_id())
                .await?
                .and_then(|(_, o)| o.terminating_since);
            self.0.insert(
                scope.org_id().to_string(),
                OrgFacts {
                    holds,
                    terminating_since,
                },
            );
        }
        Ok(&self.0[scope.org_id()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: RecordState, blob_size: Option<u64>) -> RecordRow {
        let t = Timestamp::from_second(1).unwrap();
        RecordRow {
            id: "r".into(),
            category: "files".into(),
            subject_ref: None,
            state,
            created_at: t,
            archive_at: None,
            expire_at: t,
            deleted_at: None,
            next_due_at: None,
            key_ref: "org:1".into(),
            sealed: None,
            blob_size,
            pii: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_record_has_only_the_objects_its_state_allows() {
        let keys = |r: Option<&RecordRow>| record_object_keys("o", "r", r);
        assert!(keys(Some(&row(RecordState::Active, None))).is_empty());
        assert_eq!(
            keys(Some(&row(RecordState::Active, Some(3)))),
            ["orgs/o/blobs/r"]
        );
        assert_eq!(
            keys(Some(&row(RecordState::Archived, None))),
            ["orgs/o/archive/r.envelope"]
        );
        let every = [
            "orgs/o/blobs/r",
            "orgs/o/archive/r.blob",
            "orgs/o/archive/r.envelope",
        ];
        assert_eq!(keys(Some(&row(RecordState::Archived, Some(3)))), every);
        // A purged record's row is gone: every place one of its objects can be.
        assert_eq!(keys(None), every);
    }
}
