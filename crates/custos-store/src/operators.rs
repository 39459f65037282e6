//! [`OperatorStore`]: the deployment's operators, people of its own identity provider.
//! Deployment-wide rows, kept in the main database.

use custos_audit::AuditEvent;
use jiff::Timestamp;

use crate::{PersonIdentity, StoreError};

/// One operator as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRow {
    /// Its id.
    pub id: String,
    /// A display name.
    pub name: String,
    /// The person of the deployment's identity provider it is.
    pub identity: PersonIdentity,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it, as the audit log names actors (`admin`, `operator:<id>`).
    pub created_by: String,
}

/// Persistence of operators. Every mutation appends its audit events in the same transaction.
#[async_trait::async_trait]
pub trait OperatorStore {
    /// Adds `operator` only if there is none yet (the bootstrap token's one creation);
    /// `false` (and nothing appended) if one exists.
    async fn add_first_operator(
        &self,
        operator: &OperatorRow,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    /// Every operator, oldest first.
    async fn operators(&self) -> Result<Vec<OperatorRow>, StoreError>;

    /// Whether any operator exists.
    async fn has_operators(&self) -> Result<bool, StoreError>;

    /// The operator who is `person`, if any.
    async fn operator_by_identity(
        &self,
        person: &PersonIdentity,
    ) -> Result<Option<OperatorRow>, StoreError>;

    /// Adds an operator's session.
    async fn start_operator_session(
        &self,
        session: &OperatorSession,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// The operator a session token hash authenticates, with the session, if it has neither
    /// gone unused for its idle limit nor expired at `now`.
    async fn operator_session(
        &self,
        token_hash: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<(OperatorRow, OperatorSession)>, StoreError>;

    /// Records that an operator's session was used at `at` (never backwards).
    async fn note_operator_session_use(
        &self,
        token_hash: &[u8; 32],
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Ends an operator's session (sign-out); false (nothing appended) if there is none.
    async fn end_operator_session(
        &self,
        token_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
}

/// An operator's session, opened by a sign-in with a second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSession {
    /// SHA-256 of the session token.
    pub token_hash: [u8; 32],
    /// The operator it authenticates.
    pub operator_id: String,
    /// When it stops working, however it is used.
    pub expires_at: Timestamp,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When it was last used, to the minute.
    pub last_used_at: Option<Timestamp>,
    /// It stops working after this many seconds unused.
    pub idle_seconds: i64,
}

/// The operator-session query both backends run: [`OPERATOR_COLUMNS`] of `o`, then the
/// session's `expires_at, created_at, last_used_at, idle_seconds`; `$1` the token hash, `$2`
/// now.
pub(crate) fn operator_session_query(p: impl Fn(usize) -> String) -> String {
    let (hash, now) = (p(1), p(2));
    format!(
        "SELECT o.id, o.name, o.identity_iss, o.identity_sub, o.created_at, o.created_by,
                s.expires_at, s.created_at, s.last_used_at, s.idle_seconds
         FROM operator_sessions s JOIN operators o ON o.id = s.operator_id
         WHERE s.token_hash = {hash} AND s.expires_at > {now}
           AND COALESCE(s.last_used_at, s.created_at) + s.idle_seconds * 1000000 > {now}"
    )
}

/// The columns [`OperatorRow`] is read from, in order (both backends).
pub(crate) const OPERATOR_COLUMNS: &str =
    "id, name, identity_iss, identity_sub, created_at, created_by";

/// The insert both backends run (placeholders from `p`): it adds the row only into an empty
/// table, in one statement, so two first operators cannot both be created.
pub(crate) fn first_operator_sql(p: impl Fn(usize) -> String) -> String {
    format!(
        "INSERT INTO operators (id, name, identity_iss, identity_sub, created_at, created_by)
         SELECT {}, {}, {}, {}, {}, {} WHERE NOT EXISTS (SELECT 1 FROM operators)",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6)
    )
}
