//! Members, their API keys, second factors and sessions, and org settings: what
//! authentication and authorization read, behind [`MemberStore`] (a part of [`crate::Store`]).
//!
//! TOTP secrets arrive sealed by `custos-crypto`; API keys and session tokens arrive hashed.
//! Nothing here sees a secret in the clear.

use custos_audit::AuditEvent;
use jiff::Timestamp;

use crate::{Member, OrgScope, PersonIdentity, StoreError};

/// The member columns [`crate::Member`] is read from, in order (both backends).
pub(crate) const MEMBER_COLUMNS: &str =
    "id, name, roles, groups_json, mfa, created_at, identity_iss, identity_sub";

/// A session opened with a second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the session token (the token itself is shown once).
    pub token_hash: [u8; 32],
    /// The member it authenticates.
    pub member_id: String,
    /// How the second factor was proved (`totp`).
    pub method: String,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// A member's enrolled TOTP factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpFactor {
    /// The shared secret, sealed under the org key.
    pub sealed: Vec<u8>,
    /// The last time step a code was accepted for (codes at or before it are refused).
    pub last_step: Option<i64>,
    /// Wrong codes (counted before each check) since the last accepted code or unlock.
    pub failures: u32,
    /// When the last of those was tried.
    pub last_failure_at: Option<Timestamp>,
}

/// A one-time code that lets a member enroll its first (or a replacement) TOTP factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentCode {
    /// SHA-256 of the code (the code itself is shown once, to the owner or admin who issued it).
    pub code_hash: [u8; 32],
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// Persistence of members, keys, factors, sessions and org settings. Every mutation takes
/// the audit events that describe it and appends them in the same transaction.
#[async_trait::async_trait]
pub trait MemberStore {
    /// Adds a member with the hash of its API key.
    async fn add_member(
        &self,
        scope: &OrgScope,
        member: &Member,
        key_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// Finds the member owning an API key hash, with its org's scope.
    async fn member_by_key_hash(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<(OrgScope, Member)>, StoreError>;

    /// The org's member bound to the person `identity`, if any (at most one: the store keeps
    /// one member per person and org).
    async fn member_by_identity(
        &self,
        scope: &OrgScope,
        identity: &PersonIdentity,
    ) -> Result<Option<Member>, StoreError>;
    /// The org's members, oldest first.
    async fn members(&self, scope: &OrgScope) -> Result<Vec<Member>, StoreError>;
    /// One member of the org.
    async fn member(&self, scope: &OrgScope, id: &str) -> Result<Option<Member>, StoreError>;
    /// Replaces a member's name, roles, groups, MFA requirement and bound identity; false (nothing appended)
    /// if there is no such member.
    async fn update_member(
        &self,
        scope: &OrgScope,
        member: &Member,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// Removes a member with its factor and sessions; false (nothing appended) if absent.
    async fn remove_member(
        &self,
        scope: &OrgScope,
        id: &str,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// Replaces a member's API key hash and ends its sessions (rotation, or revocation with
    /// the hash of a key nobody holds); false (nothing appended) if absent.
    async fn set_member_key(
        &self,
        scope: &OrgScope,
        id: &str,
        key_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    /// The org's settings document (JSON), if it was ever changed.
    async fn org_settings(&self, scope: &OrgScope) -> Result<Option<String>, StoreError>;
    /// Replaces the org's settings document.
    async fn set_org_settings(
        &self,
        scope: &OrgScope,
        settings: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// Enrolls (or re-enrolls) a member's TOTP factor: its sealed secret, no step used yet,
    /// no failures. Ends the member's sessions. With `code`, the member's enrollment code of
    /// that hash is used up in the same transaction ([`StoreError::Conflict`] if it is gone:
    /// a code enrolls once). False (nothing appended) if the member is absent.
    async fn set_totp(
        &self,
        scope: &OrgScope,
        member_id: &str,
        sealed: &[u8],
        code: Option<&[u8; 32]>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// Counts one more attempt at a code against the member's factor before it is checked,
    /// compare-and-set on the failures seen (`seen`), so concurrent guesses cannot share one
    /// allowance. False if another attempt came first (or the factor is gone).
    async fn reserve_totp_attempt(
        &self,
        scope: &OrgScope,
        member_id: &str,
        seen: u32,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Clears a member's wrong-code count (an owner or admin ending a lockout); false
    /// (nothing appended) if the member has no factor.
    async fn clear_totp_failures(
        &self,
        scope: &OrgScope,
        member_id: &str,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// The ids of the org's members with a TOTP factor enrolled.
    async fn enrolled_members(&self, scope: &OrgScope) -> Result<Vec<String>, StoreError>;
    /// Issues a member an enrollment code, replacing an earlier one; false (nothing appended)
    /// if the member is absent.
    async fn set_enrollment_code(
        &self,
        scope: &OrgScope,
        member_id: &str,
        code: &EnrollmentCode,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// The member's outstanding enrollment code, if one was issued and not used.
    async fn enrollment_code(
        &self,
        scope: &OrgScope,
        member_id: &str,
    ) -> Result<Option<EnrollmentCode>, StoreError>;
    /// A member's TOTP factor, if enrolled.
    async fn totp(
        &self,
        scope: &OrgScope,
        member_id: &str,
    ) -> Result<Option<TotpFactor>, StoreError>;
    /// Opens `session` after a TOTP code of time step `step` was checked: compare-and-set,
    /// only if no code of this or a later step was accepted before (so a code cannot be
    /// replayed); the member's failures go back to zero. False (nothing written or appended)
    /// otherwise.
    async fn open_session(
        &self,
        scope: &OrgScope,
        session: &Session,
        step: i64,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// The member a session token hash authenticates, with its org and the session, if the
    /// session exists and has not expired at `now` (its member still exists).
    async fn session(
        &self,
        token_hash: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<(OrgScope, Member, Session)>, StoreError>;
}
