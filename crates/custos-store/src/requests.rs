//! Data subject requests, their certificates, and the record changes an erasure makes, behind
//! [`RequestStore`] (a part of [`crate::Store`]).
//!
//! The subject identifier arrives sealed by core (and is dropped once a request is done); every
//! lookup goes by the keyed subject reference. Certificates are stored as the signed JSON text
//! core issued: nothing here interprets them.

use custos_audit::AuditEvent;
use jiff::Timestamp;

use crate::{OrgScope, RecordState, StoreError};

/// The request columns [`SubjectRequest`] is read from, in order (both backends).
pub(crate) const REQUEST_COLUMNS: &str = "id, kind, status, subject_ref, subject_sealed, \
    filed_by, received_at, due_at, extended_at, extension_reason, status_reason, completed_at, \
    progress, version";

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vdoc])* $variant,)* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stored and wire text form.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// Parses the text form.
            pub fn parse(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(StoreError::Corrupt(format!(concat!("unknown ", $what, " {:?}"), s))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// What a data subject asks for.
    RequestKind, "request type" {
        /// A copy of everything held about them (GDPR Art. 15).
        Access = "access",
        /// Their data in a machine-readable format (GDPR Art. 20).
        Portability = "portability",
        /// Erasure of their data (GDPR Art. 17).
        Erasure = "erasure",
    }
);

text_enum!(
    /// Where a request is: `received` → `in_progress` → `completed` | `partially_completed`
    /// | `rejected`.
    RequestStatus, "request status" {
        /// Filed, not started.
        Received = "received",
        /// Being worked on (an erasure that crashed part way resumes from here).
        InProgress = "in_progress",
        /// Done.
        Completed = "completed",
        /// Done except for what legal holds keep; completes when they are released.
        PartiallyCompleted = "partially_completed",
        /// Refused, with a reason.
        Rejected = "rejected",
    }
);

impl RequestStatus {
    /// Whether the request still counts against its deadline.
    pub fn is_open(&self) -> bool {
        matches!(self, RequestStatus::Received | RequestStatus::InProgress)
    }
}

/// One data subject request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRequest {
    /// Request id (UUID v7).
    pub id: String,
    /// What is asked.
    pub kind: RequestKind,
    /// Where it is.
    pub status: RequestStatus,
    /// Keyed reference of the subject (never the identifier).
    pub subject_ref: String,
    /// The subject identifier sealed by core under an org key, while the request is open;
    /// `None` once it is done.
    pub subject_sealed: Option<Vec<u8>>,
    /// Who filed it, as the audit log names actors (`member:<id>`, `admin`, `system`).
    pub filed_by: String,
    /// When it was received.
    pub received_at: Timestamp,
    /// When it is due (after any extension).
    pub due_at: Timestamp,
    /// When it was extended, if it was (at most once).
    pub extended_at: Option<Timestamp>,
    /// Why it was extended.
    pub extension_reason: Option<String>,
    /// Why it was rejected, or what holds keep back.
    pub status_reason: Option<String>,
    /// When it completed (or partially completed, or was rejected).
    pub completed_at: Option<Timestamp>,
    /// The engine's resumable state (JSON; never personal data).
    pub progress: String,
    /// Incremented by every update (compare-and-set).
    pub version: i64,
}

/// Which requests a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// Only this type.
    pub kind: Option<RequestKind>,
    /// Only these statuses (empty: all).
    pub statuses: Vec<RequestStatus>,
    /// Only this subject.
    pub subject_ref: Option<String>,
}

/// Position in due order to continue a request listing after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCursor {
    /// Due time of the last request seen.
    pub due_at: Timestamp,
    /// Its id.
    pub id: String,
}

/// A certificate of deletion as issued (signed JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCertificate {
    /// Certificate id.
    pub id: String,
    /// The erasure request it certifies.
    pub request_id: String,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// The certificate JSON.
    pub body: String,
}

/// A record re-sealed by an erasure's `anonymize` step: unlinked from its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRewrite {
    /// Record id.
    pub id: String,
    /// The key reference it must still have (compare-and-set: a record already rewritten is
    /// left alone).
    pub from_key_ref: String,
    /// Its new key reference.
    pub key_ref: String,
    /// Its new sealed envelope (`None` for an archived record, whose envelope is in the
    /// archive tier).
    pub sealed: Option<Vec<u8>>,
    /// Its new PII summary.
    pub pii: serde_json::Value,
}

/// One line of [`RequestStore::subject_record_counts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRecordCount {
    /// Category.
    pub category: String,
    /// Lifecycle state.
    pub state: RecordState,
    /// Whether these records carry a file in the object store.
    pub files: bool,
    /// How many.
    pub records: u64,
}

/// Counts that survive an `aggregate` erasure: records per category and month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureAggregate {
    /// Category.
    pub category: String,
    /// Month the records were created in (`YYYY-MM`, UTC).
    pub period: String,
    /// How many records.
    pub records: u64,
}

/// Persistence of data subject requests and the record changes of erasures. Every mutation
/// takes the audit events that describe it and appends them in the same transaction.
#[async_trait::async_trait]
pub trait RequestStore {
    /// Files a request.
    async fn create_request(
        &self,
        scope: &OrgScope,
        request: &SubjectRequest,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;
    /// One request of the org.
    async fn subject_request(
        &self,
        scope: &OrgScope,
        id: &str,
    ) -> Result<Option<SubjectRequest>, StoreError>;
    /// The org's requests matching `filter`, by due time then id, after the cursor.
    async fn list_requests(
        &self,
        scope: &OrgScope,
        filter: &RequestFilter,
        after: Option<&RequestCursor>,
        limit: u32,
    ) -> Result<Vec<SubjectRequest>, StoreError>;
    /// Replaces a request's mutable fields if its stored version is still `request.version
    /// - 1` (compare-and-set), with a certificate to store beside it; false (nothing written
    /// or appended) otherwise.
    async fn update_request(
        &self,
        scope: &OrgScope,
        request: &SubjectRequest,
        certificate: Option<&StoredCertificate>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// Requests of any org in one of `statuses`, by due time, due at or before `due_by` (and,
    /// with `due_from`, at or after it), at most `limit` (the SLA report, the erasure resumer,
    /// the reminders of requests coming due).
    async fn requests_by_status(
        &self,
        statuses: &[RequestStatus],
        due_from: Option<Timestamp>,
        due_by: Timestamp,
        limit: u32,
    ) -> Result<Vec<(OrgScope, SubjectRequest)>, StoreError>;
    /// The certificates issued for a request, oldest first.
    async fn certificates(
        &self,
        scope: &OrgScope,
        request_id: &str,
    ) -> Result<Vec<StoredCertificate>, StoreError>;

    /// Re-seals records unlinked from their subject (`subject_ref` cleared), each only if its
    /// key reference is still `from_key_ref`; returns how many changed.
    async fn rewrite_records(
        &self,
        scope: &OrgScope,
        rewrites: &[RecordRewrite],
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError>;
    /// Folds records into the org's erasure aggregates (one count per category and creation
    /// month) and marks them for purge, unlinked from their subject, each only if still in
    /// its given state; returns how many were folded.
    async fn aggregate_records(
        &self,
        scope: &OrgScope,
        targets: &[(String, RecordState)],
        at: Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError>;
    /// The org's erasure aggregates, by category and period.
    async fn erasure_aggregates(
        &self,
        scope: &OrgScope,
    ) -> Result<Vec<ErasureAggregate>, StoreError>;
    /// How many records of a subject there are, by category, state and whether they carry a
    /// file (the counts a certificate states).
    async fn subject_record_counts(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
    ) -> Result<Vec<SubjectRecordCount>, StoreError>;
    /// Records that the privacy-center link `jti` of the org was used and opens the
    /// `session` it gives, with `audit`; false, and nothing written, when it was used before.
    async fn use_privacy_link(
        &self,
        scope: &OrgScope,
        jti: &str,
        expires_at: Timestamp,
        session: &PrivacySession,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// Deletes the used-link rows that expired at or before `before` (a replay of those links
    /// is refused by their `exp`) and the privacy-center sessions that ended by then, with
    /// `audit` when any was deleted; how many rows.
    async fn purge_privacy_link_uses(
        &self,
        before: Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError>;
    /// The org's privacy-center session whose token hashes to `token_hash`, if it runs at
    /// `now`.
    async fn privacy_session(
        &self,
        scope: &OrgScope,
        token_hash: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<PrivacySession>, StoreError>;
    /// A subject's contact, sealed (see `subject_contacts` in the schema).
    async fn subject_contact(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Sets (`Some`) or removes (`None`) a subject's sealed contact, with `audit`.
    async fn set_subject_contact(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
        sealed: Option<Vec<u8>>,
        now: Timestamp,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;
    /// Destroys the org's PII tokens minted for a subject and the subject's contact, and
    /// empties the sealed identifier of its privacy-center sessions (they go on showing the
    /// erasure and its certificate by reference); returns how many tokens.
    async fn destroy_subject_tokens(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError>;
}

/// A privacy-center session as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivacySession {
    /// SHA-256 of its token.
    pub token_hash: [u8; 32],
    /// The subject's keyed reference.
    pub subject_ref: String,
    /// The subject's identifier, sealed under the org's key; empty once the subject was
    /// erased.
    pub subject_sealed: Vec<u8>,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When it ends.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for PrivacySession {
    // The token hash is a credential's fingerprint: not printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivacySession")
            .field("subject_ref", &self.subject_ref)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The month (`YYYY-MM`, UTC) an aggregate counts a record under.
pub(crate) fn period_of(created_at: Timestamp) -> String {
    let d = created_at.to_zoned(jiff::tz::TimeZone::UTC);
    format!("{:04}-{:02}", d.year(), d.month())
}
