//! [`IncidentStore`]: incidents with their clocks and the steps of their status, in the main
//! database. Every change appends its audit events in the same transaction.
//!
//! Not for: what a status means or which moves are allowed (that is `custos-core`'s); this
//! module only compares and sets.

use jiff::Timestamp;

use custos_audit::AuditEvent;

use crate::{OutboxMessage, StoreError};

/// One incident as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRow {
    /// Its id.
    pub id: String,
    /// A short title (no personal data; checked by the caller).
    pub title: String,
    /// Its status as text (`detected`, ...).
    pub status: String,
    /// When it was detected.
    pub detected_at: Timestamp,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// Who opened it (`operator:<id>`, `admin`, `rule:<name>`).
    pub opened_by: String,
    /// Its scope as JSON.
    pub scope: String,
    /// When containment is due.
    pub contain_due: Timestamp,
    /// When the assessment is due.
    pub assess_due: Timestamp,
    /// When notification is due.
    pub notify_due: Timestamp,
    /// The clock alerts already queued (`contain:soon`, `contain:overdue`, ...).
    pub warned: Vec<String>,
}

/// One step of an incident's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentStep {
    /// Its position, from 0 (the detection).
    pub seq: u32,
    /// The status it moved to.
    pub status: String,
    /// When.
    pub at: Timestamp,
    /// Who (`operator:<id>`, `admin`, `rule:<name>`, `system`).
    pub actor: String,
    /// What the person noted (checked for personal data by the caller).
    pub note: Option<String>,
}

/// One affected org told of an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentNotice {
    /// The incident.
    pub incident_id: String,
    /// The org told.
    pub org_id: String,
    /// Its affected subjects.
    pub subjects: u64,
    /// Their records read or exported.
    pub records: u64,
    /// Messages queued (the org notice to each channel, a subject notice per subject to each
    /// webhook).
    pub messages: u64,
    /// When.
    pub notified_at: Timestamp,
    /// Who told it (`operator:<id>`, `admin`).
    pub actor: String,
}

/// Persistence of incidents.
#[async_trait::async_trait]
pub trait IncidentStore {
    /// Records a new incident with its first step.
    async fn create_incident(
        &self,
        incident: &IncidentRow,
        first: &IncidentStep,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// Incidents newest first, before id `before`, optionally only those not closed.
    async fn incidents(
        &self,
        open_only: bool,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<IncidentRow>, StoreError>;

    /// One incident with its steps in order.
    async fn incident(
        &self,
        id: &str,
    ) -> Result<Option<(IncidentRow, Vec<IncidentStep>)>, StoreError>;

    /// Moves an incident from status `from` to `step.status` (compare-and-set), appending the
    /// step (its `seq` is assigned here) and `audit`. False, and nothing changed, when it is
    /// no longer in `from`.
    async fn advance_incident(
        &self,
        id: &str,
        from: &str,
        step: &IncidentStep,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    /// Records that the clock alert `warning` of an incident was queued, with its messages and
    /// audit events; false, and nothing queued, when it was already.
    async fn warn_incident(
        &self,
        id: &str,
        warning: &str,
        messages: &[OutboxMessage],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    /// Records that an org was told of an incident, with the messages that tell it and
    /// `audit`; false, and nothing queued, when it was told already.
    async fn record_incident_notice(
        &self,
        notice: &IncidentNotice,
        messages: &[OutboxMessage],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    /// The orgs told of an incident, in the order they were told.
    async fn incident_notices(&self, id: &str) -> Result<Vec<IncidentNotice>, StoreError>;
}

/// The columns [`IncidentNotice`] is read from and written to, in order (both backends).
pub(crate) const NOTICE_COLUMNS: &str =
    "incident_id, org_id, subjects, records, messages, notified_at, actor";

/// The columns [`IncidentRow`] is read from, in order (both backends).
pub(crate) const INCIDENT_COLUMNS: &str = "id, title, status, detected_at, created_at, \
     opened_by, scope, contain_due, assess_due, notify_due, warned";

/// The stored form of `warned`.
pub(crate) fn warned_text(warned: &[String]) -> String {
    warned.join(",")
}

/// `warned` read back.
pub(crate) fn warned_list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}
