//! [`NotifyStore`]: the durable outbox every notification goes through, and the state of the
//! alert evaluator that tails the audit log (its lease, its cursor, the rules' firings).
//! Deployment-wide rows, kept in the main database.
//!
//! Not for: deciding what to send or how (that is `custos-core`'s alerting and delivery).

use jiff::Timestamp;

use custos_audit::AuditEvent;

use crate::StoreError;

/// One message to one channel, as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Unique id (`msg_…`); the Standard Webhooks `webhook-id`, the same on every attempt.
    pub id: String,
    /// The org the message concerns, if any.
    pub org_id: Option<String>,
    /// Where it goes: `webhook:<name>` (a policy webhook) or `email:<address>`.
    pub channel: String,
    /// The event type (`alert.fired`, ...).
    pub event_type: String,
    /// The JSON body (no personal data beyond what the receiver already holds).
    pub body: Vec<u8>,
    /// When it was queued.
    pub created_at: Timestamp,
}

/// Where a queued message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The channel accepted it.
    Delivered,
    /// Every attempt failed until the retry period ended.
    Failed,
}

impl OutboxStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<OutboxStatus, StoreError> {
        match text {
            "pending" => Ok(OutboxStatus::Pending),
            "delivered" => Ok(OutboxStatus::Delivered),
            "failed" => Ok(OutboxStatus::Failed),
            other => Err(StoreError::Corrupt(format!(
                "outbox status {other:?} is not pending, delivered or failed"
            ))),
        }
    }
}

/// A queued message with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The message.
    pub message: OutboxMessage,
    /// Where it stands.
    pub status: OutboxStatus,
    /// Attempts made so far (a claimed message counts the attempt under way).
    pub attempts: u32,
    /// When the next attempt is due (pending messages).
    pub next_attempt_at: Timestamp,
    /// Why the last attempt failed, if it did (no secret, no body).
    pub last_error: Option<String>,
    /// When it was delivered or given up.
    pub finished_at: Option<Timestamp>,
}

/// One firing of an alert rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFiring {
    /// The rule's name.
    pub rule: String,
    /// What the rule counts per: `org:<id>`, `actor:<name>` or `deployment`.
    pub key: String,
    /// The time of the event that fired it.
    pub fired_at: Timestamp,
    /// No second firing for the same rule and key before this.
    pub window_end: Timestamp,
    /// The audit index of the event that fired it.
    pub audit_idx: u64,
}

/// A deployment security event as stored (one without an org).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecurityEvent {
    /// The audit index of the event it was derived from.
    pub audit_idx: u64,
    /// When it happened.
    pub time: Timestamp,
    /// Its kind (`auth_failed`, ...).
    pub kind: String,
    /// The event as JSON (ids, codes, counts; never content).
    pub body: String,
    /// When its retention ends.
    pub expire_at: Timestamp,
}

/// What one evaluation step commits together: the firings, their messages and audit events,
/// the deployment's security events, and the new cursor.
#[derive(Debug, Clone, Default)]
pub struct AlertStep {
    /// The log the step evaluated: `None` the main one, else a region's own.
    pub log: Option<String>,
    /// The first audit index of that log not yet evaluated once this step commits.
    pub cursor: u64,
    /// Rules that fired.
    pub firings: Vec<AlertFiring>,
    /// Their deliveries.
    pub messages: Vec<OutboxMessage>,
    /// Their audit events (`alert.fire`).
    pub audit: Vec<AuditEvent>,
    /// Security events without an org derived from the step's audit events.
    pub security_events: Vec<StoredSecurityEvent>,
    /// Incidents opened by rules marked `incident`, each with its detection step.
    pub incidents: Vec<(crate::IncidentRow, crate::IncidentStep)>,
}

/// Persistence of the outbox and of the alert evaluator.
///
/// Delivery state (attempts, claims) is not audited: it is bookkeeping of a message whose
/// reason (an alert's firing, a request's change) is audited when it is queued; a message
/// given up is audited by the caller.
#[async_trait::async_trait]
pub trait NotifyStore {
    /// Queues messages with their audit events in one transaction. A message whose id is
    /// already queued is left as it is (queuing is idempotent); when none is new, nothing is
    /// written (not the audit events either) and false is returned.
    async fn enqueue(
        &self,
        messages: &[OutboxMessage],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    /// Claims up to `limit` pending messages due at `now` that no one holds, oldest first,
    /// until `claimed_until`, counting an attempt for each. Two instances never claim the
    /// same message at once.
    async fn claim_messages(
        &self,
        now: Timestamp,
        claimed_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Marks a message delivered.
    async fn mark_delivered(&self, id: &str, now: Timestamp) -> Result<(), StoreError>;

    /// Releases a message after a failed attempt, to be tried again at `next_attempt_at`.
    async fn retry_later(
        &self,
        id: &str,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Gives a message up after its last failed attempt, with its audit events.
    async fn mark_failed(
        &self,
        id: &str,
        now: Timestamp,
        error: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// Messages newest first, optionally of one org, from `before` (a message id, exclusive).
    async fn outbox_entries(
        &self,
        org: Option<&str>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Takes or renews the evaluator's lease for `holder` until `until` when it is free
    /// (expired) or already `holder`'s; returns the cursor when it is held, `None` when
    /// another instance holds it.
    async fn take_alert_lease(
        &self,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<u64>, StoreError>;

    /// The evaluator's cursor in a region's own log (0 before its first step).
    async fn alert_cursor(&self, log: &str) -> Result<u64, StoreError>;

    /// Commits one evaluation step, only if `holder` still holds the lease and the cursor of
    /// the step's log is still `from` (otherwise nothing changes and `false` is returned:
    /// another instance took over).
    async fn commit_alert_step(
        &self,
        holder: &str,
        from: u64,
        step: &AlertStep,
    ) -> Result<bool, StoreError>;

    /// Firings whose window ends after `after`, and drops the ones that ended before it.
    async fn recent_firings(&self, after: Timestamp) -> Result<Vec<AlertFiring>, StoreError>;

    /// The deployment's security events, newest first, before audit index `before`.
    async fn deployment_security_events(
        &self,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredSecurityEvent>, StoreError>;

    /// Deletes the messages delivered or given up at or before `finished_before` (pending
    /// ones stay whatever their age), with `audit` in the same transaction when any was
    /// deleted; how many.
    async fn purge_outbox(
        &self,
        finished_before: Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError>;

    /// Deletes the deployment security events whose retention ended at `now`, with `audit`
    /// in the same transaction when any was deleted; how many.
    async fn purge_security_events(
        &self,
        now: Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError>;
}

/// The columns [`OutboxEntry`] is read from, in order (both backends).
pub(crate) const OUTBOX_COLUMNS: &str = "id, org_id, channel, event_type, body, created_at, \
     status, attempts, next_attempt_at, last_error, finished_at";

/// The columns [`StoredSecurityEvent`] is read from and written to, in order (both backends).
pub(crate) const SECURITY_EVENT_COLUMNS: &str = "audit_idx, time, kind, body, expire_at";

/// The columns [`AlertFiring`] is read from and written to, in order (both backends).
pub(crate) const FIRING_COLUMNS: &str = "rule, key, fired_at, window_end, audit_idx";
