//! Applying the authorization table: resolving the org a caller acts in, asking
//! [`authz::decide`](crate::authz::decide), and auditing every refusal.

use custos_policy::Category;
use custos_store::OrgScope;

use crate::authz::{decide, CategoryRule, Facts, MfaRule, Operation};
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
        let rule = op.rule();
        let target = Some(format!("org:{org}"));
        let (org_row, settings) = match &caller.principal {
            Principal::Member { scope, .. } if scope.org_id() != org => {
                let own = scope.org_id().to_string();
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
        let factor_enrolled = match &caller.principal {
            Principal::Member { member, .. } if rule.mfa == MfaRule::IfEnrolled => {
                self.store.totp(&scope, &member.id).await?.is_some()
            }
            _ => false,
        };
        let settings = match settings {
            Some(s) => s,
            None => self.org_settings_of(&scope).await?,
        };
        let facts = Facts {
            terminating: row.terminating_since.is_some(),
            require_mfa_for_admins: settings.require_mfa_for_admins,
            factor_enrolled,
        };
        let all: Vec<&Category> = match rule.category {
            CategoryRule::All => self.policy.categories.values().collect(),
            _ => Vec::new(),
        };
        match decide(rule, &caller.principal, facts, &all) {
            Ok(()) => Ok(Grant {
                scope,
                region: row.region,
                settings,
                op,
                facts,
            }),
            Err(CoreError::OrgTerminated(_)) => Err(CoreError::OrgTerminated(org.to_string())),
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
        target: Option<String>,
    ) -> Result<&Category, CoreError> {
        let category = self
            .policy
            .category(name)
            .ok_or_else(|| CoreError::UnknownCategory(name.to_string()))?;
        let rule = grant.op.rule();
        if let Err(error) = decide(rule, &caller.principal, grant.facts, &[category]) {
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
        decide(grant.op.rule(), &caller.principal, grant.facts, &[category]).is_ok()
    }

    /// Authorizes an operation that acts in no org (creating orgs, deployment-wide audit
    /// material, scanning); refusals are audited.
    pub(crate) async fn authorize_global(
        &self,
        caller: &Caller,
        op: Operation,
    ) -> Result<(), CoreError> {
        let rule = op.rule();
        match decide(rule, &caller.principal, Facts::default(), &[]) {
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
}
