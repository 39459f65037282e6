//! Erasure of a data subject: keys first, then each category's `on_subject_erasure`, then a
//! certificate.
//!
//! Key layout: a subject's records are sealed under one key per (subject, category) slot
//! (`<subject_ref>/<category>`, see [`KeyVault::subject_slot`]). Erasure destroys the slots of
//! `delete` categories first, so that content is unreadable everywhere (rows, archive tier,
//! objects, and any earlier copy of them) the moment the key store commits, while `anonymize`
//! work still opens its own records; those slots go when that work is done. A legal hold on a
//! subject, a category or the org keeps exactly the slots it covers.
//!
//! Every step is idempotent and the request's `progress` says which phase comes next, saved by
//! compare-and-set with the step's audit events, so a process killed at any point and started
//! again finishes the same request once, with one certificate. Keys to destroy are written
//! into the progress (and the audit log) before they are destroyed, so a crash in between only
//! repeats a harmless delete.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use custos_audit::AuditAction;
use custos_policy::ErasureAction;
use custos_store::{
    Hold, OrgScope, PurgeCause, RecordFilter, RecordRewrite, RecordRow, RecordState, RequestStatus,
    SubjectRequest,
};

use custos_audit::{Details, Target};

use crate::lifecycle::archive_envelope_key;
use crate::pii::ScrubPlan;
use crate::records::{Envelope, ENVELOPE_PART};
use crate::{Caller, CoreError, Custos};

/// How long an in-progress erasure must sit untouched before a sweep takes it over.
const STALE_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);
/// Records handled per store transaction.
const ERASURE_PAGE: u32 = 500;
/// What replaces the subject's own identifier in anonymized text.
const SUBJECT_PLACEHOLDER: &str = "<SUBJECT>";

/// Where an erasure is; each phase's work is idempotent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// Nothing done in this round yet.
    #[default]
    Plan,
    /// `pending_keys` (the `delete` slots) are to be destroyed, then records counted.
    DestroyDeleteKeys,
    /// Purge, anonymize and aggregate the records.
    Dispose,
    /// `pending_keys` (the remaining slots) are to be destroyed, then tokens; then complete.
    DestroyRetainedKeys,
    /// The `subject.erase` event is in the log; the certificate is to be issued.
    Completed,
    /// The certificate of this round is stored.
    Certified,
}

/// What one category's records went through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CategoryReport {
    /// The policy's `on_subject_erasure`.
    pub disposition: String,
    /// NIST SP 800-88 terms: `cryptographic_erase`, `purge`, `anonymize`, `aggregate`.
    pub method: String,
    /// Records whose content was in the database.
    pub hot: u64,
    /// Records whose content was in the archive tier.
    pub archive: u64,
    /// Records with a file in the object store.
    pub objects: u64,
    /// Records kept by legal holds.
    pub held: u64,
}

/// A legal hold that kept records back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HeldBack {
    /// Hold id.
    pub hold: String,
    /// Its reason.
    pub reason: String,
    /// How many of the subject's records it covers.
    pub records: u64,
}

/// What one round of an erasure did: the content of its certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Report {
    pub categories: BTreeMap<String, CategoryReport>,
    pub keys_destroyed: Vec<String>,
    pub tokens_destroyed: u64,
    pub held_back: Vec<HeldBack>,
}

/// An erasure request's resumable state, stored as the request's `progress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// Certificates issued before this round (a partial erasure completes in a later round).
    #[serde(default)]
    pub round: u32,
    #[serde(default)]
    pub phase: Phase,
    #[serde(default)]
    pub report: Report,
    /// Keys recorded for destruction and not yet confirmed destroyed.
    #[serde(default)]
    pub pending_keys: Vec<String>,
    /// The id of this round's certificate, fixed when the round completes.
    #[serde(default)]
    pub certificate_id: Option<String>,
    /// When this round completed (the certificate's issue time).
    #[serde(default)]
    pub completed_at: Option<jiff::Timestamp>,
    /// When a step last saved progress (a sweeper leaves younger in-progress runs alone).
    #[serde(default)]
    pub touched_at: Option<jiff::Timestamp>,
}

impl Progress {
    pub(crate) fn of(request: &SubjectRequest) -> Result<Self, CoreError> {
        serde_json::from_str(&request.progress).map_err(|e| {
            CoreError::internal_from(format!("request {}: progress is corrupt", request.id), e)
        })
    }

    fn store(&self, request: &mut SubjectRequest) {
        request.progress = serde_json::to_string(self).expect("progress serializes");
    }
}

/// Whether a hold covers a subject's records of a category (the rule of `is_held`).
fn hold_covers(hold: &Hold, subject_ref: &str, category: &str) -> bool {
    hold.subject_ref.as_deref().is_none_or(|s| s == subject_ref)
        && hold.category.as_deref().is_none_or(|c| c == category)
}

/// The category a key slot seals (`None` for a subject's single key from before slots).
fn slot_category<'a>(slot: &'a str, subject_ref: &str) -> Option<&'a str> {
    slot.strip_prefix(subject_ref)?.strip_prefix('/')
}

fn method_for(disposition: ErasureAction) -> &'static str {
    match disposition {
        ErasureAction::Delete => "cryptographic_erase",
        ErasureAction::Anonymize => "anonymize",
        ErasureAction::Aggregate => "aggregate",
    }
}

/// Replaces the subject's identifier in every string (and metadata key) of `value`.
fn drop_identifier(value: serde_json::Value, subject: &str) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(s.replace(subject, SUBJECT_PLACEHOLDER)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| drop_identifier(v, subject))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    (
                        k.replace(subject, SUBJECT_PLACEHOLDER),
                        drop_identifier(v, subject),
                    )
                })
                .collect(),
        ),
        other => other,
    }
}

impl Custos {
    /// The disposition of a category's records on erasure (`delete` for a category the
    /// policy no longer names: the safe side).
    fn disposition(&self, category: &str) -> ErasureAction {
        self.policy
            .category(category)
            .map_or(ErasureAction::Delete, |c| c.on_subject_erasure)
    }

    /// Whether any hold covers the subject's records of `category`.
    fn held(holds: &[Hold], subject_ref: &str, category: &str) -> bool {
        holds.iter().any(|h| hold_covers(h, subject_ref, category))
    }

    /// Every live key of the subject (key-store I/O, off the async workers).
    async fn live_subject_keys(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
    ) -> Result<Vec<custos_crypto::SubjectKeySlot>, CoreError> {
        self.vault
            .subject_keys_of(scope.org_id(), subject_ref)
            .await
            .map_err(CoreError::from)
    }

    /// The subject's live keys that may go now: with `delete_only`, the slots of `delete`
    /// categories; otherwise every slot not under a hold. The single pre-slot key goes only
    /// when nothing of the subject is held.
    async fn erasable_keys(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
        holds: &[Hold],
        delete_only: bool,
    ) -> Result<Vec<String>, CoreError> {
        let keys = self.live_subject_keys(scope, subject_ref).await?;
        let nothing_held = !holds
            .iter()
            .any(|h| h.subject_ref.as_deref().is_none_or(|s| s == subject_ref));
        Ok(keys
            .into_iter()
            .filter(|k| match slot_category(&k.slot, subject_ref) {
                Some(c) => {
                    !Self::held(holds, subject_ref, c)
                        && (!delete_only || self.disposition(c) == ErasureAction::Delete)
                }
                None => nothing_held && !delete_only,
            })
            .map(|k| k.key_id)
            .collect())
    }

    async fn destroy_keys(&self, scope: &OrgScope, ids: Vec<String>) -> Result<(), CoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.fault("erasure.before_key_destruction")?;
        self.vault
            .destroy_subject_keys(scope.org_id(), &ids)
            .await?;
        Ok(())
    }

    /// Writes `keys` down as the next to destroy; the `subject.crypto_erase` event that names
    /// them is saved with that progress, before any of them goes.
    fn record_keys_to_destroy(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        request: &SubjectRequest,
        p: &mut Progress,
        keys: Vec<String>,
    ) -> Option<custos_audit::AuditEvent> {
        p.pending_keys = keys;
        (!p.pending_keys.is_empty()).then(|| {
            self.erasure_event(
                caller,
                AuditAction::SubjectCryptoErase,
                scope,
                request,
                Details::new().keys(p.pending_keys.clone()),
            )
        })
    }

    /// Destroys the keys written down by [`Custos::record_keys_to_destroy`] and moves them
    /// into the report.
    async fn destroy_pending(
        &self,
        scope: &OrgScope,
        p: &mut Progress,
        point: &'static str,
    ) -> Result<(), CoreError> {
        self.destroy_keys(scope, p.pending_keys.clone()).await?;
        self.fault(point)?;
        let pending = std::mem::take(&mut p.pending_keys);
        p.report.keys_destroyed.extend(pending);
        Ok(())
    }

    /// Fails unless none of `ids` is still in the key store (what the certificate states).
    async fn confirm_destroyed(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
        ids: &[String],
    ) -> Result<(), CoreError> {
        let live = self.live_subject_keys(scope, subject_ref).await?;
        if let Some(k) = live.iter().find(|k| ids.contains(&k.key_id)) {
            return Err(CoreError::internal(format!(
                "key {} is still in the key store after its destruction",
                k.key_id
            )));
        }
        Ok(())
    }

    fn erasure_event(
        &self,
        caller: &Caller,
        action: AuditAction,
        scope: &OrgScope,
        request: &SubjectRequest,
        details: Details,
    ) -> custos_audit::AuditEvent {
        self.event(caller, action)
            .org(scope.org_id())
            .target(Target::Request(request.id.to_string()))
            .details(details.subject_ref(request.subject_ref.clone()))
    }

    /// Runs (or resumes) an erasure request until it is completed, partially completed (what
    /// legal holds keep) or certified; returns it as saved.
    pub(crate) async fn run_erasure(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        mut request: SubjectRequest,
    ) -> Result<SubjectRequest, CoreError> {
        let mut p = Progress::of(&request)?;
        match request.status {
            RequestStatus::Received => {
                request.status = RequestStatus::InProgress;
                let event = self.erasure_event(
                    caller,
                    AuditAction::RequestStart,
                    scope,
                    &request,
                    Details::new().round(1u64),
                );
                request = self.save_request(scope, request, None, &[event]).await?;
                self.fault("erasure.started")?;
            }
            RequestStatus::PartiallyCompleted if p.phase == Phase::Certified => {
                let holds = self.store.for_org(scope).await?.holds(scope).await?;
                if self
                    .erasable_keys(scope, &request.subject_ref, &holds, false)
                    .await?
                    .is_empty()
                {
                    return Ok(request);
                }
                p = Progress {
                    round: p.round + 1,
                    ..Progress::default()
                };
                p.store(&mut request);
                request.status = RequestStatus::InProgress;
                let event = self.erasure_event(
                    caller,
                    AuditAction::RequestStart,
                    scope,
                    &request,
                    Details::new().round(u64::from(p.round) + 1),
                );
                request = self.save_request(scope, request, None, &[event]).await?;
            }
            RequestStatus::InProgress => {}
            // Finished, but the process stopped before the certificate was stored.
            RequestStatus::Completed | RequestStatus::PartiallyCompleted
                if p.phase == Phase::Completed => {}
            _ => return Ok(request),
        }
        loop {
            let phase = p.phase;
            if phase == Phase::Certified {
                return Ok(request);
            }
            request = self.erasure_step(caller, scope, request, &mut p).await?;
            debug_assert_ne!(p.phase, phase, "every step advances the phase");
        }
    }

    /// Does the work of the current phase and saves the next one.
    async fn erasure_step(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        mut request: SubjectRequest,
        p: &mut Progress,
    ) -> Result<SubjectRequest, CoreError> {
        let sref = request.subject_ref.clone();
        let mut events = Vec::new();
        match p.phase {
            Phase::Plan => {
                let holds = self.store.for_org(scope).await?.holds(scope).await?;
                let keys = self.erasable_keys(scope, &sref, &holds, true).await?;
                events.extend(self.record_keys_to_destroy(caller, scope, &request, p, keys));
                p.phase = Phase::DestroyDeleteKeys;
            }
            Phase::DestroyDeleteKeys => {
                self.destroy_pending(scope, p, "erasure.delete_keys_destroyed")
                    .await?;
                let holds = self.store.for_org(scope).await?.holds(scope).await?;
                self.count_for_report(scope, &sref, &holds, &mut p.report)
                    .await?;
                p.phase = Phase::Dispose;
            }
            Phase::Dispose => {
                let holds = self.store.for_org(scope).await?.holds(scope).await?;
                self.dispose(caller, scope, &request, &holds).await?;
                let keys = self.erasable_keys(scope, &sref, &holds, false).await?;
                events.extend(self.record_keys_to_destroy(caller, scope, &request, p, keys));
                p.phase = Phase::DestroyRetainedKeys;
            }
            Phase::DestroyRetainedKeys => {
                // The person's address is sealed under the keys about to go: their e-mail
                // is queued first (idempotent, so a repeat of this phase queues nothing).
                let status = if p.report.held_back.is_empty() {
                    RequestStatus::Completed
                } else {
                    RequestStatus::PartiallyCompleted
                };
                self.queue_erasure_email(scope, &request, status).await?;
                self.destroy_pending(scope, p, "erasure.retained_keys_destroyed")
                    .await?;
                self.confirm_destroyed(scope, &sref, &p.report.keys_destroyed)
                    .await?;
                if p.report.held_back.is_empty() {
                    self.fault("erasure.before_tokens")?;
                    let event = self.erasure_event(
                        caller,
                        AuditAction::SubjectTokensDestroy,
                        scope,
                        &request,
                        Details::new(),
                    );
                    p.report.tokens_destroyed += self
                        .store
                        .for_org(scope)
                        .await?
                        .destroy_subject_tokens(scope, &sref, &[event])
                        .await?;
                    self.fault("erasure.tokens_destroyed")?;
                }
                let now = self.now();
                request.status = if p.report.held_back.is_empty() {
                    RequestStatus::Completed
                } else {
                    RequestStatus::PartiallyCompleted
                };
                request.status_reason = (!p.report.held_back.is_empty()).then(|| {
                    let ids: Vec<&str> =
                        p.report.held_back.iter().map(|h| h.hold.as_str()).collect();
                    format!("kept by legal holds: {}", ids.join(", "))
                });
                request.completed_at = Some(now);
                request.subject_sealed = None;
                p.completed_at = Some(now);
                p.certificate_id = Some(uuid::Uuid::now_v7().to_string());
                p.phase = Phase::Completed;
                events.push(self.certificate_event(caller, scope, &request, p)?);
                events.push(self.erasure_event(
                    caller,
                    AuditAction::RequestComplete,
                    scope,
                    &request,
                    Details::new().status(request.status.to_string()),
                ));
            }
            Phase::Completed => {
                let certificate = self.seal_certificate(scope, &request, p).await?;
                self.fault("erasure.certificate_sealed")?;
                p.phase = Phase::Certified;
                events.push(self.erasure_event(
                    caller,
                    AuditAction::CertificateIssue,
                    scope,
                    &request,
                    Details::new().certificate(certificate.id.to_string()),
                ));
                p.store(&mut request);
                return self
                    .save_request(scope, request, Some(&certificate), &events)
                    .await;
            }
            Phase::Certified => return Ok(request),
        }
        self.fault("erasure.before_save")?;
        p.touched_at = Some(self.now());
        p.store(&mut request);
        let saved = self.save_request(scope, request, None, &events).await?;
        self.fault("erasure.after_save")?;
        Ok(saved)
    }

    /// Fills the report's per-category, per-tier counts and the holds that keep records.
    async fn count_for_report(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
        holds: &[Hold],
        report: &mut Report,
    ) -> Result<(), CoreError> {
        let counts = self
            .store
            .for_org(scope)
            .await?
            .subject_record_counts(scope, subject_ref)
            .await?;
        let mut held_by: BTreeMap<String, u64> = BTreeMap::new();
        for c in counts {
            // Already hidden for purge (a hard delete, or an earlier round): not this erasure's.
            if c.state.is_purge_pending() {
                continue;
            }
            let disposition = self.disposition(&c.category);
            let entry = report.categories.entry(c.category.clone()).or_default();
            entry.disposition = disposition.to_string();
            entry.method = method_for(disposition).to_string();
            let covering: Vec<&Hold> = holds
                .iter()
                .filter(|h| hold_covers(h, subject_ref, &c.category))
                .collect();
            if let Some(first) = covering.first() {
                entry.held += c.records;
                *held_by.entry(first.id.clone()).or_default() += c.records;
                continue;
            }
            match c.state {
                RecordState::Archived => entry.archive += c.records,
                _ => entry.hot += c.records,
            }
            if c.files {
                entry.objects += c.records;
            }
        }
        report.held_back = held_by
            .into_iter()
            .map(|(id, records)| HeldBack {
                reason: holds
                    .iter()
                    .find(|h| h.id == id)
                    .map(|h| h.reason.clone())
                    .unwrap_or_default(),
                hold: id,
                records,
            })
            .collect();
        Ok(())
    }

    /// Applies each category's `on_subject_erasure` to the subject's records that no hold
    /// covers: purge for `delete` (and for files, whose bytes cannot be anonymized),
    /// re-seal without the subject for `anonymize`, counts only for `aggregate`.
    async fn dispose(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        request: &SubjectRequest,
        holds: &[Hold],
    ) -> Result<(), CoreError> {
        let sref = &request.subject_ref;
        let categories: BTreeSet<String> = self
            .store
            .for_org(scope)
            .await?
            .subject_record_counts(scope, sref)
            .await?
            .into_iter()
            .filter(|c| !c.state.is_purge_pending())
            .map(|c| c.category)
            .collect();
        for category in categories {
            if Self::held(holds, sref, &category) {
                continue;
            }
            let disposition = self.disposition(&category);
            let filter = RecordFilter {
                subject_ref: Some(sref.clone()),
                category: Some(category.clone()),
                states: vec![
                    RecordState::Active,
                    RecordState::Archived,
                    RecordState::SoftDeleted,
                ],
            };
            let mut after: Option<String> = None;
            loop {
                let rows = self
                    .store
                    .for_org(scope)
                    .await?
                    .list_records(scope, &filter, after.as_deref(), ERASURE_PAGE)
                    .await?;
                let Some(last) = rows.last() else { break };
                after = Some(last.id.clone());
                let full = rows.len() == ERASURE_PAGE as usize;
                match disposition {
                    ErasureAction::Delete => self.purge_rows(caller, scope, request, &rows).await?,
                    ErasureAction::Aggregate => {
                        let targets: Vec<(String, RecordState)> =
                            rows.iter().map(|r| (r.id.clone(), r.state)).collect();
                        let event = self.erasure_event(
                            caller,
                            AuditAction::SubjectAggregate,
                            scope,
                            request,
                            Details::new()
                                .category(category.to_string())
                                .records(targets.len() as u64),
                        );
                        let now = self.now();
                        self.store
                            .for_org(scope)
                            .await?
                            .aggregate_records(scope, &targets, now, &[event])
                            .await?;
                        self.fault("erasure.aggregated")?;
                    }
                    ErasureAction::Anonymize => {
                        let (files, rest): (Vec<RecordRow>, Vec<RecordRow>) =
                            rows.into_iter().partition(|r| r.blob_size.is_some());
                        self.purge_rows(caller, scope, request, &files).await?;
                        self.anonymize_rows(caller, scope, request, rest).await?;
                    }
                }
                self.fault("erasure.page_disposed")?;
                if !full {
                    break;
                }
            }
        }
        Ok(())
    }

    async fn purge_rows(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        request: &SubjectRequest,
        rows: &[RecordRow],
    ) -> Result<(), CoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let targets: Vec<(String, RecordState)> =
            rows.iter().map(|r| (r.id.clone(), r.state)).collect();
        let event = self.erasure_event(
            caller,
            AuditAction::SubjectPurge,
            scope,
            request,
            Details::new().records(targets.len() as u64),
        );
        self.store
            .for_org(scope)
            .await?
            .request_purges(scope, &targets, PurgeCause::Erasure, self.now(), &[event])
            .await?;
        self.fault("erasure.purges_requested")
    }

    /// Re-seals records under the org key with the subject's identifier and every PII value
    /// the scanner finds removed, unlinked from the subject.
    async fn anonymize_rows(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        request: &SubjectRequest,
        rows: Vec<RecordRow>,
    ) -> Result<(), CoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let org = scope.org_id();
        let org_key = self.vault.content_key(org, None).await?;
        let plan = ScrubPlan::redact_all();
        // Dropped with the page: subject keys are otherwise never kept in memory.
        let mut keys = std::collections::HashMap::new();
        let mut rewrites = Vec::with_capacity(rows.len());
        for mut row in rows {
            let archived = row.state == RecordState::Archived;
            if archived {
                row.sealed = self
                    .objects_of(scope)
                    .await?
                    .read_small(&archive_envelope_key(org, &row.id))
                    .await?;
            }
            let envelope = match self.open_envelope_with(scope, &row, &mut keys).await {
                Ok(e) => e,
                // A crash after the archive object was rewritten and before the row was:
                // the object already opens under the org key.
                Err(_) if archived => {
                    row.key_ref = org_key.key_ref().to_string();
                    self.open_envelope_with(scope, &row, &mut keys).await?
                }
                Err(e) => return Err(e),
            };
            let sealed = match envelope {
                None => None,
                Some(e) => {
                    let anonymized = self.anonymize_envelope(&plan, e)?;
                    Some(org_key.seal_json(org, &row.id, ENVELOPE_PART, &anonymized)?)
                }
            };
            let sealed = match (archived, sealed) {
                (true, Some(bytes)) => {
                    self.objects_of(scope)
                        .await?
                        .put_archive(&archive_envelope_key(org, &row.id), bytes)
                        .await?;
                    self.fault("erasure.archive_object_rewritten")?;
                    None
                }
                (_, sealed) => sealed,
            };
            rewrites.push(RecordRewrite {
                id: row.id,
                from_key_ref: row.key_ref,
                key_ref: org_key.key_ref().to_string(),
                sealed,
                pii: row.pii,
            });
        }
        let event = self.erasure_event(
            caller,
            AuditAction::SubjectAnonymize,
            scope,
            request,
            Details::new().records(rewrites.len() as u64),
        );
        self.store
            .for_org(scope)
            .await?
            .rewrite_records(scope, &rewrites, &[event])
            .await?;
        self.fault("erasure.anonymized")
    }

    /// What an anonymized record keeps: its content and metadata with the subject's
    /// identifier and all detectable PII redacted; no subject, file name or pseudonyms.
    fn anonymize_envelope(&self, plan: &ScrubPlan, e: Envelope) -> Result<Envelope, CoreError> {
        let (mut content, mut metadata) = (e.content, e.metadata);
        if let Some(subject) = e.subject.as_deref().filter(|s| !s.is_empty()) {
            content = drop_identifier(content, subject);
            metadata = drop_identifier(metadata, subject);
        }
        let meta = (!metadata.is_null()).then_some(&metadata);
        let scan = plan
            .scan(&self.scanner, &content, meta)
            .map_err(|_| CoreError::internal("redaction refused a record"))?;
        let content = plan.apply(content, scan.findings, None)?;
        let metadata = plan.apply_metadata(metadata, scan.meta, None)?;
        Ok(Envelope {
            content,
            subject: None,
            metadata,
            file_name: None,
            content_type: e.content_type,
            tokens: None,
            org_tokens: None,
        })
    }

    /// Resumes the erasures (of one org, or of all) that a crash left in progress (untouched
    /// for [`STALE_AFTER`], so a live run is not raced), or that legal holds kept partial and
    /// whose holds are gone. Returns how many requests it moved; one that fails is logged
    /// and left for the next pass.
    pub async fn resume_erasures(&self, only: Option<&OrgScope>) -> Result<usize, CoreError> {
        let caller = Caller::new(crate::Principal::System);
        let open = self
            .store
            .requests_by_status(
                &[
                    RequestStatus::Received,
                    RequestStatus::InProgress,
                    RequestStatus::PartiallyCompleted,
                ],
                None,
                jiff::Timestamp::MAX,
                1000,
            )
            .await?;
        let now = self.now();
        let mut moved = 0;
        for (scope, request) in open {
            if request.kind != custos_store::RequestKind::Erasure
                || only.is_some_and(|s| *s != scope)
            {
                continue;
            }
            let touched = Progress::of(&request)?
                .touched_at
                .unwrap_or(request.received_at);
            if request.status.is_open() && now < touched + STALE_AFTER {
                continue;
            }
            let before = (request.status, request.version);
            match self.run_erasure(&caller, &scope, request).await {
                Ok(after) if (after.status, after.version) != before => moved += 1,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "resuming an erasure failed; next pass retries")
                }
            }
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_crypto::KeyVault;

    #[test]
    fn slots_name_their_category() {
        let r = "ab12";
        assert_eq!(
            slot_category(&KeyVault::subject_slot(r, "messages"), r),
            Some("messages")
        );
        assert_eq!(slot_category(r, r), None);
        assert_eq!(slot_category("ab123/messages", r), None);
    }

    #[test]
    fn holds_cover_by_subject_and_category() {
        let hold = |s: Option<&str>, c: Option<&str>| Hold {
            id: "h".into(),
            reason: "case".into(),
            subject_ref: s.map(str::to_string),
            category: c.map(str::to_string),
            created_at: jiff::Timestamp::UNIX_EPOCH,
        };
        assert!(hold_covers(&hold(None, None), "a", "messages"));
        assert!(hold_covers(&hold(Some("a"), None), "a", "files"));
        assert!(!hold_covers(&hold(Some("b"), None), "a", "files"));
        assert!(hold_covers(&hold(None, Some("files")), "a", "files"));
        assert!(!hold_covers(
            &hold(Some("a"), Some("files")),
            "a",
            "messages"
        ));
    }

    #[test]
    fn the_identifier_goes_from_values_and_keys() {
        let v = serde_json::json!({"note": "call user-42 back", "user-42": ["user-42"], "n": 1});
        assert_eq!(
            drop_identifier(v, "user-42"),
            serde_json::json!({"note": "call <SUBJECT> back", "<SUBJECT>": ["<SUBJECT>"], "n": 1})
        );
    }
}
