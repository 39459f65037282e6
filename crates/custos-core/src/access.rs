//! Authorization: which org a caller may act in, and what a category's access rule allows.

use custos_policy::Category;
use custos_store::OrgScope;

use crate::{Caller, CoreError, Custos, Principal};

/// Why a member may not touch a category, if it may not.
pub(crate) fn category_refusal(caller: &Caller, category: &Category) -> Option<CoreError> {
    match &caller.principal {
        Principal::System => None,
        Principal::Admin => Some(CoreError::Forbidden(
            "the admin token manages orgs and members; use a member's API key for data".into(),
        )),
        Principal::Member { member, .. } => {
            let rule = &category.access;
            let has_role = rule
                .roles
                .iter()
                .any(|role| member.roles.iter().any(|r| r == role.as_str()));
            if !has_role {
                let allowed: Vec<&str> = rule.roles.iter().map(|r| r.as_str()).collect();
                return Some(CoreError::Forbidden(format!(
                    "category `{}` is open to roles {}; the member has {}",
                    category.name,
                    allowed.join(", "),
                    if member.roles.is_empty() {
                        "none".to_string()
                    } else {
                        member.roles.join(", ")
                    }
                )));
            }
            if !rule.groups.is_empty() && !rule.groups.iter().any(|g| member.groups.contains(g)) {
                return Some(CoreError::Forbidden(format!(
                    "category `{}` is open to groups {}; the member is in none of them",
                    category.name,
                    rule.groups.join(", ")
                )));
            }
            if rule.require_mfa && !member.mfa {
                return Some(CoreError::MfaRequired(category.name.clone()));
            }
            None
        }
    }
}

/// What may still be done with an org once its termination started (members are gone by
/// then; this binds the admin token): read its status and evidence, and place or lift legal
/// holds, which still stop its purge.
const READABLE_AFTER_TERMINATION: &[&str] = &[
    "org.read",
    "org.terminate",
    "audit.read",
    "deletion_log.read",
    "lifecycle.overdue",
    "hold.create",
    "hold.read",
    "hold.release",
];

impl Custos {
    /// The scope of `org` if the caller may act in it. A member asking for another org gets
    /// `not_found` (not `forbidden`), so org ids cannot be probed; the attempt is audited.
    pub(crate) async fn scope_for(
        &self,
        caller: &Caller,
        org: &str,
        action: &str,
    ) -> Result<OrgScope, CoreError> {
        match &caller.principal {
            Principal::Member { scope, .. } if scope.org_id() == org => Ok(scope.clone()),
            Principal::Member { scope, .. } => {
                let own = scope.org_id().to_string();
                Err(self
                    .deny(
                        caller,
                        Some(&own),
                        action,
                        Some(format!("org:{org}")),
                        CoreError::NotFound(format!("org {org}")),
                    )
                    .await)
            }
            Principal::Admin | Principal::System => match self.store.org(org).await? {
                Some((_, o))
                    if o.terminating_since.is_some()
                        && !READABLE_AFTER_TERMINATION.contains(&action) =>
                {
                    Err(CoreError::OrgTerminated(org.to_string()))
                }
                Some((scope, _)) => Ok(scope),
                None => Err(CoreError::NotFound(format!("org {org}"))),
            },
        }
    }

    /// Requires the admin token, the system, or a member with one of `roles`.
    pub(crate) async fn require_manager(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        action: &str,
        roles: &[&str],
    ) -> Result<(), CoreError> {
        if let Principal::Member { member, .. } = &caller.principal {
            if !member.roles.iter().any(|r| roles.contains(&r.as_str())) {
                let error = CoreError::Forbidden(format!(
                    "`{action}` needs one of the roles {}",
                    roles.join(", ")
                ));
                return Err(self
                    .deny(caller, Some(scope.org_id()), action, None, error)
                    .await);
            }
        }
        Ok(())
    }

    /// The policy category named `name`, if the caller may use it; refusals are audited.
    pub(crate) async fn category_for(
        &self,
        caller: &Caller,
        scope: &OrgScope,
        name: &str,
        action: &str,
        target: Option<String>,
    ) -> Result<&custos_policy::Category, CoreError> {
        let category = self
            .policy
            .category(name)
            .ok_or_else(|| CoreError::UnknownCategory(name.to_string()))?;
        if let Some(error) = category_refusal(caller, category) {
            return Err(self
                .deny(caller, Some(scope.org_id()), action, target, error)
                .await);
        }
        Ok(category)
    }
}
