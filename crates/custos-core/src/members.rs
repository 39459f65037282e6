//! Members: creation, listing, changes, removal, API key rotation and revocation, TOTP
//! enrollment and sessions.
//!
//! No caller grants what it does not hold: the roles and groups a member gets (or keeps,
//! when another member changes or removes it) must all be the caller's own, and a caller
//! that must use a second factor cannot create or loosen a member that need not. Every
//! change is audited with every attribute it grants.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use custos_audit::AuditAction;
use custos_policy::Role;
use custos_store::{EnrollmentCode, Member, OrgScope, PersonIdentity, Session};

use custos_audit::{Details, Target};

use crate::authz::Operation;
use crate::limits::{factor_gate, FactorGate, LOCKED_RETRY_AFTER, LOCK_AFTER};
use crate::{generate_api_key, token_hash, Authentication, Caller, CoreError, Custos, Principal};

/// Session tokens start with this, so authentication knows where to look them up. API keys
/// are `cus_` and base64url, so no API key can start with it (`cus_s_` could: one key in
/// 4,096 would then be taken for a session).
pub(crate) const SESSION_PREFIX: &str = "cuss_";
/// TOTP parameters every authenticator app accepts (RFC 6238 defaults).
const TOTP_DIGITS: u8 = 6;
const TOTP_STEP: u64 = 30;
/// Codes of the previous and next step are accepted too (clock drift).
const TOTP_SKEW: u16 = 1;
/// Key purpose of the org key that seals TOTP secrets.
const TOTP_SEAL_PURPOSE: &str = "custos/totp-secret/v1";
/// How long an enrollment code works.
const ENROLLMENT_CODE_VALID: jiff::SignedDuration = jiff::SignedDuration::from_secs(15 * 60);
/// Enrollment codes start with this, so a code pasted as a bearer token is recognizable.
const ENROLLMENT_PREFIX: &str = "cue_";

/// Request to add a member.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// Display name.
    pub name: String,
    /// Roles: `owner`, `admin`, `member`, `auditor`, `service`.
    pub roles: Vec<String>,
    /// Groups, for category access rules.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Whether this member must prove a second factor (a TOTP session or an identity-provider
    /// token) for everything it does. A requirement, never a capability: it grants nothing.
    #[serde(default)]
    pub mfa: bool,
    /// The person this member is at the org's identity provider: an identity-provider token
    /// sent beside the member's key counts only when its `iss` + `sub` are these.
    #[serde(default)]
    pub identity: Option<PersonIdentity>,
}

/// A member just created, with its API key (shown this once).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedMember {
    /// Member id.
    pub id: String,
    /// Org id.
    pub org: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Whether the member must use a second factor for everything.
    pub mfa: bool,
    /// The person it is bound to, if any.
    pub identity: Option<PersonIdentity>,
    /// The API key. Store it now: Custos keeps only its hash.
    pub api_key: String,
}

/// A member as listings show it (never its key).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberView {
    /// Member id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Whether the member must use a second factor for everything.
    pub mfa: bool,
    /// The person it is bound to at the org's identity provider, if any.
    pub identity: Option<PersonIdentity>,
    /// Creation time (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// When any of its credentials was last used (to the minute; absent: never).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<jiff::Timestamp>,
    /// When it was disabled (absent: enabled); its key and sessions are refused meanwhile.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disabled_at: Option<jiff::Timestamp>,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        MemberView {
            id: m.id,
            name: m.name,
            roles: m.roles,
            groups: m.groups,
            mfa: m.mfa,
            identity: m.identity,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
            disabled_at: m.disabled_at,
        }
    }
}

/// A change of a member: only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberChange {
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New roles (replace the old ones).
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// New groups (replace the old ones).
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// New second-factor requirement.
    #[serde(default)]
    pub mfa: Option<bool>,
    /// Binds the member to a person at the org's identity provider; `null` unbinds it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<PersonIdentity>)]
    pub identity: Option<Option<PersonIdentity>>,
    /// `true` disables the member (its key and sessions are refused), `false` enables it
    /// again; only an owner may.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// A field that is present (even as `null`) is `Some`; an absent one stays `None` (by
/// `#[serde(default)]`), so `null` can mean "clear it".
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Checks a person's identity as a member is bound to it: `iss` is the provider's issuer URL
/// and `sub` its subject (OpenID Connect caps it at 255 ASCII characters).
fn check_identity(identity: &PersonIdentity) -> Result<(), CoreError> {
    let url = url::Url::parse(&identity.iss).map_err(|e| {
        CoreError::invalid(
            "identity.iss",
            format!("must be the provider's issuer URL ({e})"),
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") || identity.iss.len() > 2048 {
        return Err(CoreError::invalid(
            "identity.iss",
            "must be an https (or http) URL of at most 2048 characters",
        ));
    }
    let sub = &identity.sub;
    if sub.is_empty() || sub.len() > 255 || !sub.chars().all(|c| c.is_ascii_graphic()) {
        return Err(CoreError::invalid(
            "identity.sub",
            "must be 1 to 255 printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

/// A member's new API key (shown this once); the old one no longer works.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RotatedKey {
    /// Member id.
    pub id: String,
    /// The new API key.
    pub api_key: String,
}

/// A TOTP enrollment: the shared secret, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TotpEnrollment {
    /// `otpauth://totp/...` URI for an authenticator app (contains the secret).
    pub otpauth_uri: String,
    /// The secret in base32, for manual entry.
    pub secret: String,
}

/// Request to enroll the calling member's TOTP factor.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpEnrollmentRequest {
    /// The one-time code an owner or admin issued the member: needed by a member that must
    /// use a second factor (see the README), or to replace an enrolled factor without one.
    #[serde(default)]
    pub enrollment_code: Option<String>,
}

/// A one-time code that lets one member enroll its TOTP factor (shown this once).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnrollmentCodeView {
    /// The code; the member sends it as `enrollment_code` to `.../members/me/totp`.
    pub code: String,
    /// When it stops working (15 minutes after issue).
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
}

/// Request to open a session.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// The current code of the member's authenticator app.
    pub totp: String,
}

/// A session: a bearer token that proves a second factor until it expires.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    /// The session token (use as `Authorization: Bearer`); shown once.
    pub token: String,
    /// When it stops working (the org's `session_timeout` after opening).
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
}

pub(crate) fn check_name(field: &str, value: &str) -> Result<(), CoreError> {
    if value.trim().is_empty() {
        return Err(CoreError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > 200 {
        return Err(CoreError::invalid(field, "must be at most 200 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn check_roles(roles: &[String]) -> Result<(), CoreError> {
    if roles.is_empty() {
        return Err(CoreError::invalid("roles", "give at least one role"));
    }
    for role in roles {
        role.parse::<Role>().map_err(|_| {
            // Named only when it is a short word: `detail` never carries long caller input.
            let shown = if role.len() <= 32 && role.chars().all(|c| c.is_ascii_alphanumeric()) {
                format!(" {role:?}")
            } else {
                String::new()
            };
            CoreError::invalid(
                "roles",
                format!("unknown role{shown}; expected owner, admin, member, auditor or service"),
            )
        })?;
    }
    Ok(())
}

fn check_groups(groups: &[String]) -> Result<(), CoreError> {
    if groups.len() > 64 {
        return Err(CoreError::invalid("groups", "at most 64 groups"));
    }
    for g in groups {
        if g.is_empty() || g.len() > 100 || g.chars().any(|c| c.is_control() || c == ',') {
            return Err(CoreError::invalid(
                "groups",
                "each group is 1 to 100 printable characters without commas",
            ));
        }
    }
    Ok(())
}

/// Why `caller` may not grant (or, for an existing member, hold power over) a member with
/// these attributes, if it may not: roles and groups must be the caller's own, and a caller
/// that must use a second factor cannot make a member that need not.
fn ungrantable(caller: &Caller, roles: &[String], groups: &[String], mfa: bool) -> Option<String> {
    let Principal::Member { member, .. } = &caller.principal else {
        return None;
    };
    if let Some(role) = roles.iter().find(|r| !member.roles.contains(r)) {
        return Some(format!(
            "the caller cannot grant the role {role}, which it does not hold"
        ));
    }
    if let Some(group) = groups.iter().find(|g| !member.groups.contains(g)) {
        return Some(format!(
            "the caller cannot grant the group {group}, which it is not in"
        ));
    }
    if member.mfa && !mfa {
        return Some(
            "the caller must use a second factor, so the member it manages must too".into(),
        );
    }
    None
}

/// Why `caller` may not manage `target`, an owner or admin, if it may not: only an owner, or
/// the member itself with a second factor, changes an owner's or admin's roles, MFA
/// requirement, key or factor (an admin must not loosen or take over a peer).
fn peer_manager(caller: &Caller, target: &Member) -> Option<String> {
    let Principal::Member { member, auth, .. } = &caller.principal else {
        return None;
    };
    let manager = |m: &Member| m.roles.iter().any(|r| r == "owner" || r == "admin");
    if !manager(target) || member.roles.iter().any(|r| r == "owner") {
        return None;
    }
    if member.id == target.id && auth.second_factor() {
        return None;
    }
    Some(if member.id == target.id {
        "managing its own membership as an admin needs a second factor".into()
    } else {
        "only an owner manages another owner or admin".into()
    })
}

/// What an audit event says a member was granted.
/// What a member may do, for its audit events; a bound identity is noted as bound, never
/// named (audit leaves outlive the people in them).
/// What a member may do, as audited (never whom it is bound to).
fn grants(member: &Member) -> Details {
    Details::new()
        .roles(member.roles.clone())
        .groups(member.groups.clone())
        .mfa(member.mfa)
        .identity_bound(member.identity.is_some())
}

fn random_token(prefix: &str) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

impl Custos {
    async fn refuse_grant(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        action: AuditAction,
        target: Option<Target>,
        why: String,
    ) -> CoreError {
        let org = scope.org_id().to_string();
        self.deny(
            caller,
            Some(&org),
            action,
            target,
            CoreError::Forbidden(why),
        )
        .await
    }

    /// Adds a member and returns its API key once.
    pub async fn add_member(
        &self,
        caller: &Caller,
        org: &str,
        req: NewMember,
    ) -> Result<CreatedMember, CoreError> {
        let grant = self.authorize(caller, Operation::MemberCreate, org).await?;
        check_name("name", &req.name)?;
        self.check_free_text("name", &req.name)?;
        check_roles(&req.roles)?;
        check_groups(&req.groups)?;
        if let Some(identity) = &req.identity {
            check_identity(identity)?;
        }
        if let Some(why) = ungrantable(caller, &req.roles, &req.groups, req.mfa) {
            return Err(self
                .refuse_grant(caller, &grant.scope, AuditAction::MemberCreate, None, why)
                .await);
        }
        self.identity_free(&grant.scope, req.identity.as_ref(), None)
            .await?;
        let member = Member {
            id: uuid::Uuid::now_v7().to_string(),
            name: req.name,
            roles: req.roles,
            groups: req.groups,
            mfa: req.mfa,
            created_at: self.now(),
            identity: req.identity,
            last_used_at: None,
            key_last_used_at: None,
            disabled_at: None,
        };
        let api_key = generate_api_key();
        let event = self
            .event(caller, custos_audit::AuditAction::MemberCreate)
            .org(org)
            .target(Target::Member(member.id.to_string()))
            .details(grants(&member));
        self.store
            .for_org(&grant.scope)
            .await?
            .add_member(&grant.scope, &member, &token_hash(&api_key), &[event])
            .await?;
        Ok(CreatedMember {
            id: member.id,
            org: org.to_string(),
            roles: member.roles,
            groups: member.groups,
            mfa: member.mfa,
            identity: member.identity,
            api_key,
        })
    }

    /// Refuses binding `identity` when another member of the org (not `except`) is bound to
    /// it: one person is one member. (The store's unique index settles a race.)
    async fn identity_free(
        &self,
        scope: &OrgScope,
        identity: Option<&PersonIdentity>,
        except: Option<&str>,
    ) -> Result<(), CoreError> {
        let Some(identity) = identity else {
            return Ok(());
        };
        let bound = self
            .store
            .for_org(scope)
            .await?
            .member_by_identity(scope, identity)
            .await?;
        match bound.filter(|m| Some(m.id.as_str()) != except) {
            Some(other) => Err(CoreError::Conflict(format!(
                "identity is already bound to member {}; unbind it there first",
                other.id
            ))),
            None => Ok(()),
        }
    }

    /// The org's members.
    pub async fn list_members(
        &self,
        caller: &Caller,
        org: &str,
    ) -> Result<Vec<MemberView>, CoreError> {
        let grant = self.authorize(caller, Operation::MemberList, org).await?;
        Ok(self
            .store
            .for_org(&grant.scope)
            .await?
            .members(&grant.scope)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The member `id`, if the caller may manage it (its roles and groups are the caller's
    /// own); refusals are audited under `action`.
    async fn managed_member(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        id: &str,
        action: AuditAction,
    ) -> Result<Member, CoreError> {
        let member = self
            .store
            .for_org(scope)
            .await?
            .member(scope, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("member {id}")))?;
        // Not `member.mfa`: loosening is checked on the new value, holding power is not.
        let why = ungrantable(caller, &member.roles, &member.groups, true)
            .or_else(|| peer_manager(caller, &member));
        if let Some(why) = why {
            let target = Some(Target::Member(id.to_string()));
            return Err(self.refuse_grant(caller, scope, action, target, why).await);
        }
        Ok(member)
    }

    /// One member as listings show it.
    async fn member_view(&self, scope: &OrgScope, id: &str) -> Result<MemberView, CoreError> {
        Ok(self
            .store
            .for_org(scope)
            .await?
            .member(scope, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("member {id}")))?
            .into())
    }

    /// Changes a member's name, roles, groups, second-factor requirement or bound identity,
    /// or (owners only) disables or enables it.
    pub async fn update_member(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
        mut change: MemberChange,
    ) -> Result<MemberView, CoreError> {
        let grant = self.authorize(caller, Operation::MemberUpdate, org).await?;
        let mut member = self
            .managed_member(caller, &grant.scope, id, AuditAction::MemberUpdate)
            .await?;
        if let Some(disabled) = change.disabled.take() {
            if disabled != member.disabled_at.is_some() {
                self.set_member_enabled(caller, &grant.scope, id, !disabled)
                    .await?;
                member.disabled_at = disabled.then(|| self.now());
            }
            let only_that = change.name.is_none()
                && change.roles.is_none()
                && change.groups.is_none()
                && change.mfa.is_none()
                && change.identity.is_none();
            if only_that {
                return self.member_view(&grant.scope, id).await;
            }
        }
        if let Some(name) = change.name {
            check_name("name", &name)?;
            self.check_free_text("name", &name)?;
            member.name = name;
        }
        if let Some(roles) = change.roles {
            check_roles(&roles)?;
            member.roles = roles;
        }
        if let Some(groups) = change.groups {
            check_groups(&groups)?;
            member.groups = groups;
        }
        if let Some(mfa) = change.mfa {
            member.mfa = mfa;
        }
        if let Some(identity) = change.identity {
            if let Some(identity) = &identity {
                check_identity(identity)?;
            }
            self.identity_free(&grant.scope, identity.as_ref(), Some(id))
                .await?;
            member.identity = identity;
        }
        if let Some(why) = ungrantable(caller, &member.roles, &member.groups, member.mfa) {
            let target = Some(Target::Member(id.to_string()));
            return Err(self
                .refuse_grant(caller, &grant.scope, AuditAction::MemberUpdate, target, why)
                .await);
        }
        let event = self
            .event(caller, custos_audit::AuditAction::MemberUpdate)
            .org(org)
            .target(Target::Member(id.to_string()))
            .details(grants(&member));
        if !self
            .store
            .for_org(&grant.scope)
            .await?
            .update_member(&grant.scope, &member, &[event])
            .await?
        {
            return Err(CoreError::NotFound(format!("member {id}")));
        }
        Ok(member.into())
    }

    /// Removes a member: its API key and sessions stop working at once.
    pub async fn remove_member(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<(), CoreError> {
        let grant = self.authorize(caller, Operation::MemberRemove, org).await?;
        self.managed_member(caller, &grant.scope, id, AuditAction::MemberRemove)
            .await?;
        let event = self
            .event(caller, custos_audit::AuditAction::MemberRemove)
            .org(org)
            .target(Target::Member(id.to_string()));
        if !self
            .store
            .for_org(&grant.scope)
            .await?
            .remove_member(&grant.scope, id, &[event])
            .await?
        {
            return Err(CoreError::NotFound(format!("member {id}")));
        }
        Ok(())
    }

    /// Issues a member a new API key (shown once); the old key and its sessions stop working.
    pub async fn rotate_member_key(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<RotatedKey, CoreError> {
        let grant = self
            .authorize(caller, Operation::MemberKeyRotate, org)
            .await?;
        self.managed_member(caller, &grant.scope, id, AuditAction::MemberKeyRotate)
            .await?;
        let api_key = generate_api_key();
        self.replace_key(
            caller,
            &grant.scope,
            id,
            &api_key,
            AuditAction::MemberKeyRotate,
        )
        .await?;
        Ok(RotatedKey {
            id: id.to_string(),
            api_key,
        })
    }

    /// Revokes a member's API key (and its sessions) without issuing a new one; a later
    /// rotation gives it a key again.
    pub async fn revoke_member_key(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<(), CoreError> {
        let grant = self
            .authorize(caller, Operation::MemberKeyRevoke, org)
            .await?;
        self.managed_member(caller, &grant.scope, id, AuditAction::MemberKeyRevoke)
            .await?;
        // The hash of a key nobody was ever shown: no token authenticates as this member.
        let unknowable = generate_api_key();
        self.replace_key(
            caller,
            &grant.scope,
            id,
            &unknowable,
            AuditAction::MemberKeyRevoke,
        )
        .await
    }

    async fn replace_key(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        id: &str,
        key: &str,
        action: AuditAction,
    ) -> Result<(), CoreError> {
        let event = self
            .event(caller, action)
            .org(scope.org_id())
            .target(Target::Member(id.to_string()));
        if !self
            .store
            .for_org(scope)
            .await?
            .set_member_key(scope, id, &token_hash(key), &[event])
            .await?
        {
            return Err(CoreError::NotFound(format!("member {id}")));
        }
        Ok(())
    }

    /// Enrolls the calling member's TOTP factor (replacing any earlier one and ending its
    /// sessions) and returns the secret once. A member that must use a second factor, or
    /// already has one, needs a second factor or a one-time enrollment code (see
    /// [`crate::authz::MfaRule::Enrollment`]); the code is used up by the enrollment.
    pub async fn enroll_totp(
        &self,
        caller: &Caller,
        org: &str,
        req: TotpEnrollmentRequest,
    ) -> Result<TotpEnrollment, CoreError> {
        let code = req.enrollment_code.as_deref().map(str::trim);
        let grant = self
            .authorize_with(caller, Operation::TotpEnroll, org, code)
            .await?;
        let Principal::Member { member, .. } = &caller.principal else {
            unreachable!("the table opens TOTP enrollment to members only");
        };
        // Used up only when it was what let the member in (a valid one, checked above).
        let used_code = code
            .filter(|_| grant.facts_enrollment_code())
            .map(crate::token_hash);
        let secret = custos_crypto::SecretKey::generate();
        // Wiped when dropped; the `Totp` value wipes its own copy (the crate's `zeroize`).
        let raw = zeroize::Zeroizing::new(secret.with_bytes(|b| b[..20].to_vec()));
        let totp = totp(&member.id, raw.to_vec())?;
        let sealed = self
            .vault
            .org_purpose_key(org, TOTP_SEAL_PURPOSE)
            .await?
            .seal(&totp_aad(org, &member.id), &raw);
        let event = self
            .event(caller, custos_audit::AuditAction::MemberTotpEnroll)
            .org(org)
            .target(Target::Member(member.id.to_string()))
            .details(Details::new().method(if used_code.is_some() {
                "enrollment_code"
            } else {
                "api_key"
            }));
        if !self
            .store
            .for_org(&grant.scope)
            .await?
            .set_totp(
                &grant.scope,
                &member.id,
                &sealed,
                used_code.as_ref(),
                &[event],
            )
            .await?
        {
            return Err(CoreError::NotFound(format!("member {}", member.id)));
        }
        Ok(TotpEnrollment {
            otpauth_uri: totp
                .to_url()
                .map_err(|e| CoreError::internal_from("TOTP URI", e))?,
            secret: totp_rs::Secret::from(raw.to_vec()).to_base32(),
        })
    }

    /// Issues member `id` a one-time code to enroll its TOTP factor with, valid 15 minutes
    /// (replacing an earlier one). Only for a member the caller may manage.
    pub async fn issue_enrollment_code(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<EnrollmentCodeView, CoreError> {
        let grant = self
            .authorize(caller, Operation::TotpEnrollmentCode, org)
            .await?;
        self.managed_member(
            caller,
            &grant.scope,
            id,
            AuditAction::MemberTotpEnrollmentCode,
        )
        .await?;
        let code = random_token(ENROLLMENT_PREFIX);
        let issued = EnrollmentCode {
            code_hash: token_hash(&code),
            expires_at: self
                .now()
                .checked_add(ENROLLMENT_CODE_VALID)
                .map_err(|e| CoreError::internal_from("enrollment code expiry", e))?,
        };
        let event = self
            .event(caller, AuditAction::MemberTotpEnrollmentCode)
            .org(org)
            .target(Target::Member(id.to_string()))
            .details(Details::new().expires(issued.expires_at));
        if !self
            .store
            .for_org(&grant.scope)
            .await?
            .set_enrollment_code(&grant.scope, id, &issued, &[event])
            .await?
        {
            return Err(CoreError::NotFound(format!("member {id}")));
        }
        Ok(EnrollmentCodeView {
            code,
            expires_at: issued.expires_at,
        })
    }

    /// Ends member `id`'s lockout after too many wrong TOTP codes (its count starts again).
    pub async fn clear_totp_lockout(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<(), CoreError> {
        let grant = self.authorize(caller, Operation::TotpUnlock, org).await?;
        self.managed_member(caller, &grant.scope, id, AuditAction::MemberTotpUnlock)
            .await?;
        let event = self
            .event(caller, AuditAction::MemberTotpUnlock)
            .org(org)
            .target(Target::Member(id.to_string()));
        if !self
            .store
            .for_org(&grant.scope)
            .await?
            .clear_totp_failures(&grant.scope, id, &[event])
            .await?
        {
            return Err(CoreError::NotFound(format!("TOTP factor of member {id}")));
        }
        Ok(())
    }

    /// Opens a session for the calling member with its API key and a TOTP code: the session
    /// token proves a second factor until the org's `session_timeout`. A code is accepted
    /// once: neither it nor an earlier code opens another session.
    pub async fn open_session(
        &self,
        caller: &Caller,
        org: &str,
        req: NewSession,
    ) -> Result<SessionView, CoreError> {
        let grant = self.authorize(caller, Operation::SessionOpen, org).await?;
        let Principal::Member { member, auth, .. } = &caller.principal else {
            unreachable!("the table opens sessions to members only");
        };
        if *auth != Authentication::ApiKey {
            return Err(CoreError::invalid(
                "authorization",
                "open a session with the member's API key, not with another session",
            ));
        }
        let refuse = |why: &str| CoreError::Forbidden(format!("session refused: {why}"));
        let target = Some(Target::Member(member.id.to_string()));
        let Some(factor) = self
            .store
            .for_org(&grant.scope)
            .await?
            .totp(&grant.scope, &member.id)
            .await?
        else {
            let error = refuse("the member has no TOTP factor enrolled");
            return Err(self
                .deny(caller, Some(org), AuditAction::SessionOpen, target, error)
                .await);
        };
        // Limits first, and no code is checked while one holds: a refused try costs nothing
        // and tells nothing.
        let now = self.now();
        self.check_source(caller, now)?;
        match factor_gate(factor.failures, factor.last_failure_at) {
            FactorGate::Open => {}
            FactorGate::WaitUntil(until) if until <= now => {}
            FactorGate::WaitUntil(until) => {
                return Err(CoreError::RateLimited {
                    message: format!(
                        "too many wrong TOTP codes for this member; try again after {until}"
                    ),
                    retry_after: seconds_until(now, until),
                })
            }
            FactorGate::Locked => {
                return Err(CoreError::RateLimited {
                    message: format!(
                        "this member's TOTP factor is locked after {LOCK_AFTER} wrong codes; \
                         an owner or admin clears it (DELETE \
                         /v1/orgs/{{org}}/members/{{id}}/totp-lockout)"
                    ),
                    retry_after: LOCKED_RETRY_AFTER,
                })
            }
        }
        // Counted before the code is checked (compare-and-set): concurrent guesses cannot
        // share one allowance; the right code sets the count back to zero.
        if !self
            .store
            .for_org(&grant.scope)
            .await?
            .reserve_totp_attempt(&grant.scope, &member.id, factor.failures, now)
            .await?
        {
            return Err(CoreError::RateLimited {
                message: "another TOTP code for this member is being checked; try again".into(),
                retry_after: 1,
            });
        }
        let raw = self
            .vault
            .org_purpose_key(org, TOTP_SEAL_PURPOSE)
            .await?
            .open(&totp_aad(org, &member.id), &factor.sealed)?;
        let totp = totp(&member.id, raw)?;
        let now_secs = now.as_second().max(0) as u64;
        let step = matching_step(&totp, req.totp.trim(), now_secs);
        let Some(step) = step.filter(|s| factor.last_step.is_none_or(|last| *s > last)) else {
            return Err(self
                .wrong_code(caller, org, &member.id, factor.failures + 1)
                .await);
        };
        let timeout = self
            .org_settings_of(&grant.scope)
            .await?
            .session_timeout()?;
        let token = random_token(SESSION_PREFIX);
        let session = Session {
            token_hash: token_hash(&token),
            member_id: member.id.clone(),
            method: "totp".into(),
            expires_at: timeout.add_to(self.now()),
            last_used_at: None,
        };
        let event = self
            .event(caller, custos_audit::AuditAction::SessionOpen)
            .org(org)
            .target(Target::Member(member.id.to_string()))
            .details(Details::new().method("totp").expires(session.expires_at));
        if !self
            .store
            .for_org(&grant.scope)
            .await?
            .open_session(&grant.scope, &session, step, &[event])
            .await?
        {
            // Another request used this code (or a later one) first.
            return Err(self
                .wrong_code(caller, org, &member.id, factor.failures + 1)
                .await);
        }
        Ok(SessionView {
            token,
            expires_at: session.expires_at,
        })
    }
}

impl Custos {
    /// Refuses a wrong (or expired, or replayed) TOTP code: audited with the member's count
    /// of wrong codes, and the lockout with it when this one locks the factor; counted against
    /// the caller's source.
    async fn wrong_code(
        &self,
        caller: &Caller,
        org: &str,
        member_id: &str,
        failures: u32,
    ) -> CoreError {
        if let Some(source) = &caller.source {
            self.source_failures.fail(source, self.now());
        }
        let target = Target::Member(member_id.to_string());
        let mut events = vec![self
            .event(caller, AuditAction::SessionOpen)
            .outcome(custos_audit::Outcome::Denied)
            .org(org)
            .target(target.clone())
            .reason("wrong_code")
            .details(Details::new().failures(failures))];
        if failures == LOCK_AFTER {
            events.push(
                self.event(caller, AuditAction::MemberTotpLock)
                    .org(org)
                    .target(target)
                    .details(Details::new().failures(failures)),
            );
        }
        match self.store.append_audit(&events).await {
            Ok(()) => {
                CoreError::Forbidden("session refused: wrong, expired or already used code".into())
            }
            Err(e) => e.into(),
        }
    }

    /// `rate_limited` while the caller's source has used up its failures.
    pub(crate) fn check_source(
        &self,
        caller: &Caller,
        now: jiff::Timestamp,
    ) -> Result<(), CoreError> {
        let Some(source) = &caller.source else {
            return Ok(());
        };
        self.source_failures
            .check(source, now)
            .map_err(|retry_after| CoreError::RateLimited {
                message: "too many failed attempts from this address; try again later".into(),
                retry_after,
            })
    }
}

/// Whole seconds from `now` until `until`, at least 1 (a `Retry-After` value).
fn seconds_until(now: jiff::Timestamp, until: jiff::Timestamp) -> u64 {
    let secs = now.duration_until(until).as_secs().max(1);
    u64::try_from(secs).unwrap_or(1)
}

/// Associated data binding a sealed TOTP secret to its org and member.
fn totp_aad(org: &str, member: &str) -> Vec<u8> {
    format!("custos/totp/{org}/{member}").into_bytes()
}

/// The RFC 6238 generator of a member's secret, named for authenticator apps.
fn totp(member_id: &str, secret: Vec<u8>) -> Result<totp_rs::Totp, CoreError> {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(TOTP_DIGITS)
        .with_skew(TOTP_SKEW)
        .with_step_duration(TOTP_STEP)
        .with_secret(secret)
        .with_issuer(Some("Custos"))
        .with_account_name(member_id)
        .build()
        .map_err(|e| CoreError::internal_from("TOTP setup", e))
}

/// The time step (`unix time / step`) whose code is `code`, within the allowed skew, if any
/// (the crate compares codes in constant time).
fn matching_step(totp: &totp_rs::Totp, code: &str, now: u64) -> Option<i64> {
    if code.len() != usize::from(TOTP_DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp.check(code, now).map(|step| step as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totp() -> totp_rs::Totp {
        super::totp("m", b"12345678901234567890".to_vec()).unwrap()
    }

    #[test]
    fn no_api_key_looks_like_a_session_token() {
        for _ in 0..20_000 {
            assert!(!crate::generate_api_key().starts_with(SESSION_PREFIX));
        }
        assert!(!"cus_".starts_with(SESSION_PREFIX) && !SESSION_PREFIX.starts_with("cus_"));
    }

    #[test]
    fn rfc6238_vector_matches_its_step() {
        // RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits); 6 digits: 287082.
        assert_eq!(matching_step(&totp(), "287082", 59), Some(1));
        assert_eq!(matching_step(&totp(), "287082", 59 + 30), Some(1));
        assert_eq!(matching_step(&totp(), "287082", 59 + 90), None);
        assert_eq!(matching_step(&totp(), "287083", 59), None);
        assert_eq!(matching_step(&totp(), "28708", 59), None);
        assert_eq!(matching_step(&totp(), "28708x", 59), None);
    }
}
