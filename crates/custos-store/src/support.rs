//! [`SupportStore`]: operators' support requests and the grants they become once an org's
//! owner or admin approves them. Rows hold no personal data: free text is checked by the core
//! before it is stored.

use custos_audit::AuditEvent;
use jiff::Timestamp;

use crate::{OrgScope, StoreError};

/// One support request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportRequestRow {
    /// Its id (also the grant's id once approved).
    pub id: String,
    /// The operator who filed it, as the audit log names actors (`admin`, `operator:<id>`).
    pub requested_by: String,
    /// One of the fixed justifications (`customer_initiated_support`, ...).
    pub justification: String,
    /// The ticket it is for.
    pub ticket: String,
    /// Free text: what the operator needs to do.
    pub reason: String,
    /// What the grant allows: `metadata`, `read` or `read_write`.
    pub scope: String,
    /// The categories it is limited to; `None`: all of them.
    pub categories: Option<Vec<String>>,
    /// The requested duration (`8h`, ...).
    pub duration: String,
    /// When it was filed.
    pub created_at: Timestamp,
    /// When it expires if nobody approves or denies it.
    pub expires_at: Timestamp,
    /// `pending`, `approved`, `denied` or `revoked`.
    pub status: String,
    /// Who approved or denied it (`member:<id>`).
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// Until when an approved grant is active.
    pub active_until: Option<Timestamp>,
    /// Who revoked the grant.
    pub revoked_by: Option<String>,
    /// When.
    pub revoked_at: Option<Timestamp>,
}

/// A change of a support request's status, applied only if it is still in `from`
/// (compare-and-set), with the audit events that describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportTransition {
    /// The status it must be in.
    pub from: String,
    /// The status it moves to.
    pub to: String,
    /// Who makes the change (`member:<id>`).
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// On approval: until when the grant is active.
    pub active_until: Option<Timestamp>,
}

/// Persistence of support requests. Every mutation appends its audit events in the same
/// transaction.
#[async_trait::async_trait]
pub trait SupportStore {
    /// Stores a new request.
    async fn add_support_request(
        &self,
        scope: &OrgScope,
        request: &SupportRequestRow,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// The org's requests, newest first.
    async fn support_requests(
        &self,
        scope: &OrgScope,
    ) -> Result<Vec<SupportRequestRow>, StoreError>;

    /// One request of the org.
    async fn support_request(
        &self,
        scope: &OrgScope,
        id: &str,
    ) -> Result<Option<SupportRequestRow>, StoreError>;

    /// Applies `change` if the request is still in `change.from` (`approved`/`denied` set
    /// `decided_*`, `revoked` sets `revoked_*`); `false` (and nothing appended) if not.
    async fn transition_support_request(
        &self,
        scope: &OrgScope,
        id: &str,
        change: &SupportTransition,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
}

/// The columns [`SupportRequestRow`] is read from, in order (both backends).
pub(crate) const SUPPORT_COLUMNS: &str = "id, requested_by, justification, ticket, reason, scope, \
     categories_json, duration, created_at, expires_at, status, decided_by, decided_at, \
     active_until, revoked_by, revoked_at";

/// The UPDATE a transition runs (both backends, placeholders from `p`): `$1` org, `$2` id,
/// `$3` from, `$4` to, `$5` by, `$6` at, `$7` active until.
pub(crate) fn transition_sql(to: &str, p: impl Fn(usize) -> String) -> String {
    let set = if to == "revoked" {
        format!("revoked_by = {}, revoked_at = {}", p(5), p(6))
    } else {
        format!(
            "decided_by = {}, decided_at = {}, active_until = {}",
            p(5),
            p(6),
            p(7)
        )
    };
    format!(
        "UPDATE support_requests SET status = {}, {set}
         WHERE org_id = {} AND id = {} AND status = {}",
        p(4),
        p(1),
        p(2),
        p(3)
    )
}

/// Categories as stored (`NULL`: all).
pub(crate) fn categories_json(categories: &Option<Vec<String>>) -> Option<String> {
    categories
        .as_ref()
        .map(|c| serde_json::to_string(c).expect("a list of strings serializes"))
}

/// Categories as read back.
pub(crate) fn categories_from_json(
    json: Option<String>,
) -> Result<Option<Vec<String>>, StoreError> {
    json.map(|j| {
        serde_json::from_str(&j)
            .map_err(|e| StoreError::Corrupt(format!("support request categories: {e}")))
    })
    .transpose()
}
