//! Applying the authorization table: resolving the org a caller acts in, asking
//! [`authz::decide`](crate::authz::decide), and auditing every refusal.

use custos_audit::Target;
use custos_policy::Category;
use custos_store::OrgScope;

use crate::authz::{decide, CategoryRule, Facts, MfaRule, Operation, OperatorRule};
use crate::{Caller, CoreError, Custos, Principal};

/// An operation allowed in one org: its scope, and what the category checks still need.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// The org the operation acts in.
    pub scope: OrgScope,
    /// The org's home region.
    pub region: String,
    /// The org's settings, as read for this decision.
    pub settings: crate::settings::OrgSettings,
    op: Operation,
    facts: Facts,
}

impl Grant {
    /// Whether the caller presented its valid enrollment code for this decision.
    pub(crate) fn facts_enrollment_code(&self) -> bool {
        self.facts.enrollment_code
    }

    /// Marks this decision as a `service` member's own export (see [`Facts::own_export`]);
    /// only the export of a request it filed itself may set it.
    pub(crate) fn for_own_export(mut self, own: bool) -> Self {
        self.facts.own_export = own;
        self
    }
}

impl Custos {
    /// Authorizes `op` in `org` for `caller` from the authorization table. A member naming
    /// another org gets `not_found` (not `forbidden`), so org ids cannot be probed. For rules
    /// that apply the target category's access rule, the category is checked by
    /// [`Custos::authorize_category`] once it is known; for rules that apply every category,
    /// all of them are checked here. Refusals are audited.
    pub(crate) async fn authorize(
        &self,
        caller: &Caller,
        op: Operation,
        org: &str,
    ) -> Result<Grant, CoreError> {
        self.authorize_with(caller, op, org, None).await
    }

    /// [`Custos::authorize`] for a caller that may present a TOTP enrollment code (the
    /// [`MfaRule::Enrollment`] rule counts a valid one).
    pub(crate) async fn authorize_with(
        &self,
        caller: &Caller,
        op: Operation,
        org: &str,
        enrollment_code: Option<&str>,
    ) -> Result<Grant, CoreError> {
        let rule = op.rule();
        // An id the log could not read back (empty, control characters: a mangled path) is
        // no target; the refusal is still recorded.
        let target = Target::parse(&format!("org:{org}"))
            .ok()
            .filter(|t| *t == Target::Org(org.to_string()));
        let (org_row, settings) = match &caller.principal {
            Principal::Member { scope, .. } if scope.org_id() != org => {
                let own = scope.org_id().to_string();
                let error = CoreError::NotFound(format!("org {org}"));
                return Err(self
                    .deny(caller, Some(&own), rule.action, target, error)
                    .await);
            }
            Principal::Subject(linked) if linked.org != org => {
                let own = linked.org.clone();
                let error = CoreError::NotFound(format!("org {org}"));
                return Err(self
                    .deny(caller, Some(&own), rule.action, target, error)
                    .await);
            }
            // A member's own org: its row and its settings are read at the same time (every
            // member request pays this, the LLM gateway's included).
            Principal::Member { scope, .. } => {
                let (row, settings) =
                    tokio::join!(self.store.org(org), self.org_settings_of(scope));
                (row?, Some(settings?))
            }
            _ => (self.store.org(org).await?, None),
        };
        let Some((scope, row)) = org_row else {
            return Err(CoreError::NotFound(format!("org {org}")));
        };
        let settings = match settings {
            Some(s) => s,
            None => self.org_settings_of(&scope).await?,
        };
        let mut facts = Facts {
            terminating: row.terminating_since.is_some(),
            suspended: row.suspended_at.is_some(),
            require_mfa_for_admins: settings.require_mfa_for_admins,
            ..Facts::default()
        };
        if caller.principal.is_operator() {
            if rule.operator == OperatorRule::OwnerlessOrg {
                facts.has_owner = self.has_owner(&scope).await?;
            }
            if let Some(id) = &caller.grant {
                match self.active_grant(caller, &scope, &settings, id).await? {
                    Ok(grant) => facts.grant = Some(grant),
                    Err(error) => {
                        return Err(self
                            .deny(caller, Some(org), rule.action, target, error)
                            .await)
                    }
                }
            }
        }
        if let (Principal::Member { member, .. }, MfaRule::Enrollment) =
            (&caller.principal, rule.mfa)
        {
            self.enrollment_facts(&scope, member, enrollment_code, &mut facts)
                .await?;
        }
        let all: Vec<&Category> = match rule.category {
            CategoryRule::All => self.policy.categories.values().collect(),
            _ => Vec::new(),
        };
        match decide(rule, &caller.principal, &facts, &all) {
            Ok(()) => {
                if facts.grant.is_some() {
                    // Every request an operator makes under a grant is an access the org can
                    // list, whether or not the operation audits its own success.
                    let event = self
                        .event(caller, rule.action)
                        .org(org)
                        .target(Target::Org(org.to_string()))
                        .reason("support_grant");
                    self.store
                        .for_org(&scope)
                        .await?
                        .append_audit(&[event])
                        .await?;
                }
                Ok(Grant {
                    scope,
                    region: row.region,
                    settings,
                    op,
                    facts,
                })
            }
            Err(CoreError::OrgTerminated(_)) => Err(CoreError::OrgTerminated(org.to_string())),
            Err(CoreError::OrgSuspended(_)) => Err(self
                .deny(
                    caller,
                    Some(org),
                    rule.action,
                    target,
                    CoreError::OrgSuspended(org.into()),
                )
                .await),
            Err(error) => Err(self
                .deny(caller, Some(org), rule.action, target, error)
                .await),
        }
    }

    /// Checks the access rule of category `name` for the operation of `grant`; refusals are
    /// audited with `target`.
    pub(crate) async fn authorize_category(
        &self,
        caller: &Caller,
        grant: &Grant,
        name: &str,
        target: Option<Target>,
    ) -> Result<&Category, CoreError> {
        let category = self
            .policy
            .category(name)
            .ok_or_else(|| CoreError::UnknownCategory(name.to_string()))?;
        let rule = grant.op.rule();
        if let Err(error) = decide(rule, &caller.principal, &grant.facts, &[category]) {
            let org = grant.scope.org_id().to_string();
            return Err(self
                .deny(caller, Some(&org), rule.action, target, error)
                .await);
        }
        Ok(category)
    }

    /// Whether the operation of `grant` may touch category `category` (listings leave out
    /// what the caller may not see instead of refusing).
    pub(crate) fn may_use_category(
        &self,
        caller: &Caller,
        grant: &Grant,
        category: &Category,
    ) -> bool {
        decide(
            grant.op.rule(),
            &caller.principal,
            &grant.facts,
            &[category],
        )
        .is_ok()
    }

    /// Authorizes an operation that acts in no org (creating orgs, deployment-wide audit
    /// material, scanning); refusals are audited.
    pub(crate) async fn authorize_global(
        &self,
        caller: &Caller,
        op: Operation,
    ) -> Result<(), CoreError> {
        let rule = op.rule();
        match decide(rule, &caller.principal, &Facts::default(), &[]) {
            Ok(()) => Ok(()),
            Err(error) => {
                let org = match &caller.principal {
                    Principal::Member { scope, .. } => Some(scope.org_id().to_string()),
                    _ => None,
                };
                Err(self
                    .deny(caller, org.as_deref(), rule.action, None, error)
                    .await)
            }
        }
    }

    /// `Ok` if the policy defines category `name` (an unknown one is `unknown_category`).
    pub(crate) fn known_category(&self, name: &str) -> Result<(), CoreError> {
        match self.policy.category(name) {
            Some(_) => Ok(()),
            None => Err(CoreError::UnknownCategory(name.to_string())),
        }
    }

    /// Whether a member of the org holds `owner`.
    async fn has_owner(&self, scope: &OrgScope) -> Result<bool, CoreError> {
        let members = self.store.for_org(scope).await?.members(scope).await?;
        Ok(members.iter().any(|m| m.roles.iter().any(|r| r == "owner")))
    }

    /// What the enrollment rule needs to know: whether the member has a factor, whether any
    /// owner or admin of the org has one, and whether `code` is its valid enrollment code.
    async fn enrollment_facts(
        &self,
        scope: &OrgScope,
        member: &custos_store::Member,
        code: Option<&str>,
        facts: &mut Facts,
    ) -> Result<(), CoreError> {
        let enrolled = self
            .store
            .for_org(scope)
            .await?
            .enrolled_members(scope)
            .await?;
        facts.factor_enrolled = enrolled.contains(&member.id);
        let members = self.store.for_org(scope).await?.members(scope).await?;
        facts.no_manager_factor = !members.iter().any(|m| {
            enrolled.contains(&m.id) && m.roles.iter().any(|r| r == "owner" || r == "admin")
        });
        if let Some(code) = code {
            let issued = self
                .store
                .for_org(scope)
                .await?
                .enrollment_code(scope, &member.id)
                .await?;
            facts.enrollment_code = issued.is_some_and(|issued| {
                issued.expires_at > self.now()
                    && subtle::ConstantTimeEq::ct_eq(
                        &issued.code_hash[..],
                        &crate::token_hash(code)[..],
                    )
                    .into()
            });
        }
        Ok(())
    }
}
