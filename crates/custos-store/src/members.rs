//! Members, their API keys, second factors and sessions, and org settings: what
//! authentication and authorization read, behind [`MemberStore`] (a part of [`crate::Store`]).
//!
//! TOTP secrets arrive sealed by `custos-crypto`; API keys and session tokens arrive hashed.
//! Nothing here sees a secret in the clear.

use custos_audit::AuditEvent;
use jiff::Timestamp;

use crate::{Member, OrgScope, PersonIdentity, StoreError};

/// The member columns [`crate::Member`] is read from, in order (both backends).
pub(crate) const MEMBER_COLUMNS: &str = "id, name, roles, groups_json, mfa, created_at, \
     identity_iss, identity_sub, last_used_at, key_last_used_at, disabled_at";

/// How many columns [`MEMBER_COLUMNS`] has: the index of the first column a query selects
/// after them.
pub(crate) const MEMBER_COLUMN_COUNT: usize = 11;

/// [`MEMBER_COLUMNS`] of the `members` table aliased `m` (for joins).
const MEMBER_COLUMNS_OF_M: &str = "m.id, m.name, m.roles, m.groups_json, m.mfa, m.created_at, \
     m.identity_iss, m.identity_sub, m.last_used_at, m.key_last_used_at, m.disabled_at";

/// The personal-token query both backends run: the member's columns, then
/// [`PERSONAL_TOKEN_COLUMNS`] and `org_id`; `$1` the token hash, `$2` now.
pub(crate) fn personal_token_query(p: impl Fn(usize) -> String) -> String {
    let (hash, now) = (p(1), p(2));
    format!(
        "SELECT {MEMBER_COLUMNS_OF_M}, {PERSONAL_TOKEN_COLUMNS}, t.org_id
         FROM personal_tokens t JOIN members m ON m.org_id = t.org_id AND m.id = t.member_id
         WHERE t.token_hash = {hash} AND t.expires_at > {now}"
    )
}

/// The session query both backends run: the member's columns, then the session's
/// (`org_id`, `method`, `expires_at`, `last_used_at`, `second_factor`, `created_at`,
/// `idle_seconds`); `$1` the token hash, `$2` now. A session with an idle limit is over once
/// it has gone unused (since its last noted use, or its opening) for that many seconds.
pub(crate) fn session_query(placeholder: impl Fn(usize) -> String) -> String {
    let (hash, now) = (placeholder(1), placeholder(2));
    format!(
        "SELECT {MEMBER_COLUMNS_OF_M}, s.org_id, s.method, s.expires_at, s.last_used_at,
                s.second_factor, s.created_at, s.idle_seconds
         FROM sessions s JOIN members m ON m.org_id = s.org_id AND m.id = s.member_id
         WHERE s.token_hash = {hash} AND s.expires_at > {now}
           AND (s.idle_seconds IS NULL
                OR COALESCE(s.last_used_at, s.created_at) + s.idle_seconds * 1000000 > {now})"
    )
}

/// The methods of sessions a TOTP code proved (ended when the member's factor changes).
pub(crate) const TOTP_SESSION_METHODS: &str = "('totp', 'oidc+totp')";

/// The insert of a session both backends run (placeholders from `p`, in [`Session`]'s
/// order after the org id: hash, org, member, method, expiry, second factor, opening, idle).
pub(crate) fn insert_session_sql(p: impl Fn(usize) -> String) -> String {
    format!(
        "INSERT INTO sessions (token_hash, org_id, member_id, method, expires_at, second_factor,
                               created_at, idle_seconds)
         VALUES ({}, {}, {}, {}, {}, {}, {}, {})",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8)
    )
}

/// A member's session: opened with a TOTP code, or by a sign-in through the org's identity
/// provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the session token (the token itself is shown once).
    pub token_hash: [u8; 32],
    /// The member it authenticates.
    pub member_id: String,
    /// How it was opened (`totp`, `oidc`, `oidc+totp`).
    pub method: String,
    /// When it stops working, however it is used.
    pub expires_at: Timestamp,
    /// When it was last used, to the minute.
    pub last_used_at: Option<Timestamp>,
    /// Whether it proves a second factor.
    pub second_factor: bool,
    /// When it was opened (`None` for sessions older than this column).
    pub created_at: Option<Timestamp>,
    /// It stops working after this many seconds unused; `None`: only `expires_at` ends it.
    pub idle_seconds: Option<i64>,
}

/// A personal access token, as stored (the token itself is shown once, when made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalToken {
    /// Its id.
    pub id: String,
    /// The member it authenticates.
    pub member_id: String,
    /// The name its person gave it.
    pub name: String,
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was last used, to the minute.
    pub last_used_at: Option<Timestamp>,
}

/// The columns [`PersonalToken`] is read from, in order (both backends); `org_id` follows.
pub(crate) const PERSONAL_TOKEN_COLUMNS: &str =
    "t.id, t.member_id, t.name, t.token_hash, t.created_at, t.expires_at, t.last_used_at";

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

    /// Records that a member's credential was used at `at` (its API key when `key`, else a
    /// session); a time never moves backwards. Bookkeeping for access reviews, written at
    /// most once a minute per member, so not an audited action.
    async fn note_member_use(
        &self,
        scope: &OrgScope,
        id: &str,
        at: Timestamp,
        key: bool,
    ) -> Result<(), StoreError>;

    /// Records that a session was used at `at` (never backwards; as [`Self::note_member_use`]).
    async fn note_session_use(
        &self,
        scope: &OrgScope,
        token_hash: &[u8; 32],
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Disables a member from `at` (its key and sessions are refused, its sessions closed) or,
    /// with `None`, enables it again; false when there is no such member or it already was.
    async fn set_member_disabled(
        &self,
        scope: &OrgScope,
        id: &str,
        at: Option<Timestamp>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
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
    /// no failures. Ends the member's sessions that a TOTP code opened (a sign-in's session
    /// that proved nothing, or proved its factor at the provider, stays). With `code`, the member's enrollment code of
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
    /// replayed); the member's failures go back to zero; the session `replaces` (a sign-in's,
    /// stepped up by the code) is deleted in the same transaction. False (nothing written or
    /// appended) otherwise.
    async fn open_session(
        &self,
        scope: &OrgScope,
        session: &Session,
        step: i64,
        replaces: Option<&[u8; 32]>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    /// Adds a session opened by a sign-in (no TOTP step is used).
    async fn start_session(
        &self,
        scope: &OrgScope,
        session: &Session,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// Ends a session (sign-out); false (nothing appended) when there is no such session.
    async fn end_session(
        &self,
        scope: &OrgScope,
        token_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// Adds a personal access token of a member.
    async fn add_personal_token(
        &self,
        scope: &OrgScope,
        token: &PersonalToken,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// A member's personal access tokens, oldest first (expired ones included).
    async fn personal_tokens(
        &self,
        scope: &OrgScope,
        member_id: &str,
    ) -> Result<Vec<PersonalToken>, StoreError>;

    /// Revokes a member's personal access token `id`; false (nothing appended) if the member
    /// has none of that id.
    async fn revoke_personal_token(
        &self,
        scope: &OrgScope,
        member_id: &str,
        id: &str,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    /// The member a personal access token hash authenticates, with its org and the token, if
    /// it has not expired at `now`.
    async fn personal_token(
        &self,
        token_hash: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<(OrgScope, Member, PersonalToken)>, StoreError>;

    /// Records that a personal access token was used at `at` (never backwards).
    async fn note_personal_token_use(
        &self,
        scope: &OrgScope,
        token_hash: &[u8; 32],
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// The member a session token hash authenticates, with its org and the session, if the
    /// session exists and has not expired at `now` (its member still exists).
    async fn session(
        &self,
        token_hash: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<(OrgScope, Member, Session)>, StoreError>;
}
