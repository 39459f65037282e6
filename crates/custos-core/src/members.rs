//! Members: creation, listing, changes, removal, API key rotation and revocation (TOTP
//! enrollment and sessions are in [`crate::totp`]).
//!
//! No caller grants what it does not hold: the roles and groups a member gets (or keeps,
//! when another member changes or removes it) must all be the caller's own, and a caller
//! that must use a second factor cannot create or loosen a member that need not. Every
//! change is audited with every attribute it grants.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use custos_audit::AuditAction;
use custos_policy::Role;
use custos_store::{Member, OrgScope, PersonIdentity};

use custos_audit::{Details, Target};

use crate::authz::Operation;
use crate::{generate_api_key, token_hash, Caller, CoreError, Custos, Principal};

/// Session tokens start with this, so authentication knows where to look them up. API keys
/// are `cus_` and base64url, so no API key can start with it (`cus_s_` could: one key in
/// 4,096 would then be taken for a session).
pub const SESSION_PREFIX: &str = "cuss_";

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

/// An org's first owner, created with the org, with its API key (shown this once).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedOwner {
    /// Member id.
    pub id: String,
    /// Roles: every role there is.
    pub roles: Vec<String>,
    /// The API key. Store it now: Custos keeps only its hash.
    pub api_key: String,
}

/// Every role, in the order the README lists them: what an org's first owner holds.
pub(crate) const EVERY_ROLE: [&str; 5] = ["owner", "admin", "member", "auditor", "service"];

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
    let member = match &caller.principal {
        Principal::Member { member, .. } => member,
        // An operator creates only an ownerless org's first owner (the authorization table
        // lets it create a member there at all).
        Principal::Admin | Principal::Operator { .. } if !roles.iter().any(|r| r == "owner") => {
            return Some(
                "an operator creates only the first owner of an org that has none: give the \
                 member the role owner (it then adds the others)"
                    .into(),
            )
        }
        _ => return None,
    };
    if let Some(role) = roles.iter().find(|r| !member.roles.contains(r)) {
        return Some(format!(
            "the caller cannot grant the role {role}, which it does not hold"
        ));
    }
    // An owner grants any group: groups are the org's own partition of its data, and someone
    // must be able to start one (the org's first owner is in none).
    let owner = member.roles.iter().any(|r| r == "owner");
    if let Some(group) = groups.iter().find(|g| !owner && !member.groups.contains(g)) {
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
pub(crate) fn grants(member: &Member) -> Details {
    Details::new()
        .roles(member.roles.clone())
        .groups(member.groups.clone())
        .mfa(member.mfa)
        .identity_bound(member.identity.is_some())
}

pub(crate) fn random_token(prefix: &str) -> String {
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

    /// Adds the first owner of a new org (no second factor required yet, no identity
    /// bound): it holds every role, so it can create members of each.
    pub(crate) async fn add_first_owner(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        name: String,
    ) -> Result<CreatedOwner, CoreError> {
        let member = Member {
            id: uuid::Uuid::now_v7().to_string(),
            name,
            roles: EVERY_ROLE.iter().map(|r| r.to_string()).collect(),
            groups: Vec::new(),
            mfa: false,
            created_at: self.now(),
            identity: None,
            last_used_at: None,
            key_last_used_at: None,
            disabled_at: None,
        };
        let api_key = generate_api_key();
        let event = self
            .event(caller, AuditAction::MemberCreate)
            .org(scope.org_id())
            .target(Target::Member(member.id.clone()))
            .details(grants(&member));
        self.store
            .for_org(scope)
            .await?
            .add_member(scope, &member, &token_hash(&api_key), &[event])
            .await?;
        Ok(CreatedOwner {
            id: member.id,
            roles: member.roles,
            api_key,
        })
    }

    /// The member `id`, if the caller may manage it (its roles and groups are the caller's
    /// own); refusals are audited under `action`.
    pub(crate) async fn managed_member(
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
}
