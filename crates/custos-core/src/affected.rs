//! An incident's affected data subjects, computed from the audit log: every record the
//! scope's actors read, revealed or downloaded (counted per category), every export they
//! took (counted under `exports`) and every gateway call they made for a named subject
//! (counted under the policy's `[llm] category`, else `llm`) within the scope's window, by
//! subject reference per org.
//!
//! Built for logs of many millions of events: each log is read once over the window's stretch
//! (the store filters by action and actor), pages are fetched ahead while the previous one is
//! counted, events are glimpsed (a few fields read in place, not decoded whole), and memory
//! grows with the subjects found, not with the events read (`bench/affected.sh`).
//!
//! Not for: who may ask (`incidents.rs` authorizes and audits), or telling anyone
//! (`incident_notices.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use custos_audit::{AuditAction, Outcome};
use custos_store::{AuditEntry, Store};
use jiff::{SignedDuration, Timestamp};

use crate::incidents::{AffectedOrg, AffectedSubject, AffectedSubjects, IncidentScope};
use crate::{CoreError, Custos};

/// The actions whose events say whose data an actor obtained or sent out: reads name the
/// record's subject and category; an export names its subject and how many records it held;
/// a gateway call made for a subject names it and the category it counts under.
const DISCLOSING: &[AuditAction] = &[
    AuditAction::RecordRead,
    AuditAction::RecordReveal,
    AuditAction::FileDownload,
    AuditAction::RequestExport,
    AuditAction::LlmChatCompletions,
    AuditAction::LlmResponses,
    AuditAction::LlmMessages,
];
/// Audit entries read per page.
const SCAN_PAGE: u32 = 5000;
/// How far past a window's end the scan reads, for events whose instance's clock was behind.
const SCAN_SLACK: SignedDuration = SignedDuration::from_secs(60);

/// Counts per org, subject reference and category (hashed while counting: millions of
/// lookups; sorted once at the end).
type Counts = HashMap<String, HashMap<String, BTreeMap<String, u64>>>;

impl Custos {
    /// The affected subjects of `scope`, and how many records they add up to.
    pub(crate) async fn affected_subjects(
        &self,
        scope: &IncidentScope,
    ) -> Result<(AffectedSubjects, u64), CoreError> {
        let to = scope.to.unwrap_or_else(|| self.now());
        let from = scope.from.unwrap_or(Timestamp::UNIX_EPOCH);
        // Every log: an org in a region with stores of its own has its events there.
        let mut logs = vec![self.store.main().clone()];
        logs.extend(self.store.regions().iter().map(|r| r.store.clone()));
        let mut counts = Counts::new();
        let mut records = 0;
        for log in logs {
            records += scan_log(log, scope, from, to, &mut counts).await?;
        }
        let mut orgs: Vec<AffectedOrg> = counts
            .into_iter()
            .map(|(org, subjects)| {
                let mut subjects: Vec<AffectedSubject> = subjects
                    .into_iter()
                    .map(|(subject_ref, categories)| AffectedSubject {
                        subject_ref,
                        categories,
                    })
                    .collect();
                subjects.sort_unstable_by(|a, b| a.subject_ref.cmp(&b.subject_ref));
                AffectedOrg { org, subjects }
            })
            .collect();
        orgs.sort_unstable_by(|a, b| a.org.cmp(&b.org));
        Ok((AffectedSubjects { orgs }, records))
    }
}

/// Counts one log's disclosures in `[from, to]` into `counts`; how many records.
async fn scan_log(
    log: Arc<dyn Store>,
    scope: &IncidentScope,
    from: Timestamp,
    to: Timestamp,
    counts: &mut Counts,
) -> Result<u64, CoreError> {
    // The window as a stretch of the log (times rise with the index; the few events a clock
    // skew puts across an edge are checked by time below).
    let size = log.audit_size().await?;
    let start = crate::alerting::first_index_since(&log, from, size).await?;
    let end = crate::alerting::first_index_since(&log, to + SCAN_SLACK, size).await?;
    let actions: Vec<String> = DISCLOSING.iter().map(|a| a.as_str().to_string()).collect();
    let actors = scope.actors.clone();
    // One page is fetched while the one before it is counted.
    let (pages, mut next_page) =
        tokio::sync::mpsc::channel::<Result<Vec<AuditEntry>, CoreError>>(2);
    let fetcher = tokio::spawn(async move {
        let mut next = start;
        while next < end {
            let page = log
                .audit_by_actions(next, end, &actions, &actors, SCAN_PAGE)
                .await
                .map_err(CoreError::from);
            let last = page.as_ref().ok().and_then(|p| p.last().map(|e| e.index));
            let full = page.as_ref().is_ok_and(|p| p.len() == SCAN_PAGE as usize);
            if pages.send(page).await.is_err() {
                return;
            }
            match (last, full) {
                (Some(last), true) => next = last + 1,
                _ => return,
            }
        }
    });
    let mut records = 0;
    while let Some(page) = next_page.recv().await {
        for entry in page? {
            records += count(&entry, scope, from, to, counts);
        }
    }
    fetcher
        .await
        .map_err(|e| CoreError::internal_from("the audit scan stopped", e))?;
    Ok(records)
}

/// Counts what one entry disclosed, if it is a successful disclosure within the window, the
/// scope's orgs and categories, naming a subject; how many records.
fn count(
    entry: &AuditEntry,
    scope: &IncidentScope,
    from: Timestamp,
    to: Timestamp,
    counts: &mut Counts,
) -> u64 {
    let e = match custos_audit::glimpse(&entry.leaf) {
        Ok(e) => e,
        Err(error) => {
            tracing::error!(index = entry.index, %error, "audit entry cannot be read; left out of the affected subjects");
            return 0;
        }
    };
    if e.outcome != Outcome::Success || e.time < from || e.time > to {
        return 0;
    }
    let (Some(org), Some(subject)) = (e.org.as_deref(), e.subject_ref.as_deref()) else {
        return 0;
    };
    if !scope.orgs.is_empty() && !scope.orgs.iter().any(|o| o == org) {
        return 0;
    }
    let (category, n) = match e.action {
        AuditAction::RequestExport => (crate::export::EXPORTS_CATEGORY, e.records.unwrap_or(0)),
        _ => match e.category.as_deref() {
            Some(category) => (category, 1),
            None => return 0,
        },
    };
    if !scope.categories.is_empty() && !scope.categories.iter().any(|c| c == category) {
        return 0;
    }
    // Looked up by reference first: a key is allocated only the first time it is seen.
    let subjects = match counts.get_mut(org) {
        Some(subjects) => subjects,
        None => counts.entry(org.to_string()).or_default(),
    };
    let categories = match subjects.get_mut(subject) {
        Some(categories) => categories,
        None => subjects.entry(subject.to_string()).or_default(),
    };
    match categories.get_mut(category) {
        Some(total) => *total += n,
        None => {
            categories.insert(category.to_string(), n);
        }
    }
    n
}
