//! Orgs, members, retention overrides and legal holds.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use custos_policy::Duration;
use custos_store::{Hold, Org, OrgScope};

use custos_audit::{Details, Target};

use crate::authz::Operation;
use crate::members::check_name;
use crate::{Caller, CoreError, Custos, Principal};

/// Request to create an org.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    /// Display name.
    pub name: String,
    /// Home region; defaults to the policy's `default_region`.
    #[serde(default)]
    pub region: Option<String>,
    /// The org's first owner, created with it; it holds every role (so it can create members
    /// of each, and bind people to them). Without it the org has no owner yet.
    #[serde(default)]
    pub owner: Option<NewOwner>,
}

/// The first owner of a new org.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOwner {
    /// Display name.
    pub name: String,
}

/// An org just created: the org, and its first owner's API key when one was asked for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedOrg {
    /// The org.
    #[serde(flatten)]
    pub org: OrgView,
    /// The first owner, with its API key (shown this once; Custos keeps only its hash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::members::CreatedOwner>,
}

/// A created org reads as the org itself (`created.id`), the owner's key aside.
impl std::ops::Deref for CreatedOrg {
    type Target = OrgView;

    fn deref(&self) -> &OrgView {
        &self.org
    }
}

/// An org as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrgView {
    /// Org id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Home region.
    pub region: String,
    /// Creation time (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// `active`, `suspended` (its members refused until an operator resumes it),
    /// `terminating` (read-only, its data being purged) or `terminated`.
    pub status: &'static str,
    /// When an operator suspended it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub suspended_since: Option<jiff::Timestamp>,
    /// When termination was requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub terminating_since: Option<jiff::Timestamp>,
    /// When termination completed (all data purged, keys destroyed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub terminated_at: Option<jiff::Timestamp>,
}

impl From<Org> for OrgView {
    fn from(o: Org) -> Self {
        OrgView {
            status: match (o.terminating_since, o.terminated_at, o.suspended_at) {
                (_, Some(_), _) => "terminated",
                (Some(_), None, _) => "terminating",
                (None, None, Some(_)) => "suspended",
                (None, None, None) => "active",
            },
            suspended_since: o.suspended_at,
            id: o.id,
            name: o.name,
            region: o.region,
            created_at: o.created_at,
            terminating_since: o.terminating_since,
            terminated_at: o.terminated_at,
        }
    }
}

/// An org's retention for one category.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetentionView {
    /// Category.
    pub category: String,
    /// Effective retention.
    pub retention: String,
    /// Whether it is the org's override (else the policy default).
    pub overridden: bool,
}

/// Request to place a legal hold.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHold {
    /// Why (a case reference).
    pub reason: String,
    /// Hold only this subject's data.
    #[serde(default)]
    pub subject: Option<String>,
    /// Hold only this category.
    #[serde(default)]
    pub category: Option<String>,
}

/// A legal hold as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HoldView {
    /// Hold id.
    pub id: String,
    /// Reason.
    pub reason: String,
    /// Whether the hold is limited to a subject (the subject id itself is not stored).
    pub on_subject: bool,
    /// Category, if limited to one.
    pub category: Option<String>,
    /// When it was placed.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
}

impl From<Hold> for HoldView {
    fn from(h: Hold) -> Self {
        HoldView {
            id: h.id,
            reason: h.reason,
            on_subject: h.subject_ref.is_some(),
            category: h.category,
            created_at: h.created_at,
        }
    }
}

impl Custos {
    /// Creates an org in a region of the policy (admin only).
    pub async fn create_org(&self, caller: &Caller, req: NewOrg) -> Result<CreatedOrg, CoreError> {
        self.authorize_global(caller, Operation::OrgCreate).await?;
        check_name("name", &req.name)?;
        self.check_free_text("name", &req.name)?;
        if let Some(owner) = &req.owner {
            check_name("owner.name", &owner.name)?;
            self.check_free_text("owner.name", &owner.name)?;
        }
        let regions = &self.policy.service.regions;
        let region = req
            .region
            .unwrap_or_else(|| self.policy.service.default_region.clone());
        if !regions.contains(&region) {
            return Err(CoreError::invalid(
                "region",
                format!(
                    "{region:?} is not one of this deployment's regions ({})",
                    regions.join(", ")
                ),
            ));
        }
        let org = Org {
            id: uuid::Uuid::now_v7().to_string(),
            name: req.name,
            region,
            created_at: self.now(),
            terminating_since: None,
            terminated_at: None,
            suspended_at: None,
        };
        // The key comes first: an org row without a key would be unusable, while a key
        // without a row (crash in between) is inert.
        self.vault.ensure_org(&org.id).await?;
        let event = self
            .event(caller, custos_audit::AuditAction::OrgCreate)
            .org(&org.id)
            .target(Target::Org(org.id.to_string()));
        self.store.create_org(&org, &[event]).await?;
        let (scope, _) = self
            .store
            .org(&org.id)
            .await?
            .ok_or_else(|| CoreError::internal("the org just created is not in its store"))?;
        // A second transaction: should it not happen (a crash in between), the org is simply
        // ownerless, and its first owner can still be added to it.
        let owner = match req.owner {
            Some(owner) => Some(self.add_first_owner(caller, &scope, owner.name).await?),
            None => None,
        };
        Ok(CreatedOrg {
            org: org.into(),
            owner,
        })
    }

    /// Every org (admin), or the caller's own (member).
    pub async fn list_orgs(&self, caller: &Caller) -> Result<Vec<OrgView>, CoreError> {
        self.authorize_global(caller, Operation::OrgList).await?;
        match &caller.principal {
            Principal::Member { scope, .. } => Ok(self
                .store
                .org(scope.org_id())
                .await?
                .map(|(_, o)| vec![o.into()])
                .unwrap_or_default()),
            _ => Ok(self
                .store
                .orgs()
                .await?
                .into_iter()
                .map(Into::into)
                .collect()),
        }
    }

    /// One org.
    pub async fn get_org(&self, caller: &Caller, org: &str) -> Result<OrgView, CoreError> {
        let grant = self.authorize(caller, Operation::OrgRead, org).await?;
        self.org_view(&grant.scope).await
    }

    async fn org_view(&self, scope: &OrgScope) -> Result<OrgView, CoreError> {
        let (_, org) = self
            .store
            .org(scope.org_id())
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("org {}", scope.org_id())))?;
        Ok(org.into())
    }

    /// Starts terminating an org (the admin token, or an org owner): its members and API
    /// keys are revoked at once, it becomes read-only, and the sweeper purges every record
    /// (holds permitting), then destroys the org's keys, within the policy's
    /// `account_termination_within`. The audit trail stays. Asking again changes nothing.
    pub async fn terminate_org(&self, caller: &Caller, org: &str) -> Result<OrgView, CoreError> {
        let scope = self
            .authorize(caller, Operation::OrgTerminate, org)
            .await?
            .scope;
        let event = self
            .event(caller, custos_audit::AuditAction::OrgTerminate)
            .org(org)
            .target(Target::Org(org.to_string()));
        self.store
            .for_org(&scope)
            .await?
            .request_termination(&scope, self.now(), &[event])
            .await?;
        self.org_view(&scope).await
    }

    /// Suspends an org: its members are refused everything but reading the org
    /// (`org_suspended`) until an operator resumes it; data, deadlines and the sweep go on.
    pub async fn suspend_org(&self, caller: &Caller, org: &str) -> Result<OrgView, CoreError> {
        self.set_suspended(caller, org, true).await
    }

    /// Resumes a suspended org.
    pub async fn resume_org(&self, caller: &Caller, org: &str) -> Result<OrgView, CoreError> {
        self.set_suspended(caller, org, false).await
    }

    async fn set_suspended(
        &self,
        caller: &Caller,
        org: &str,
        suspend: bool,
    ) -> Result<OrgView, CoreError> {
        let (op, action) = if suspend {
            (Operation::OrgSuspend, custos_audit::AuditAction::OrgSuspend)
        } else {
            (Operation::OrgResume, custos_audit::AuditAction::OrgResume)
        };
        let scope = self.authorize(caller, op, org).await?.scope;
        let event = self
            .event(caller, action)
            .org(org)
            .target(Target::Org(org.to_string()));
        let at = suspend.then(|| self.now());
        let changed = self
            .store
            .for_org(&scope)
            .await?
            .set_org_suspended(&scope, at, &[event])
            .await?;
        if !changed {
            return Err(CoreError::Conflict(format!(
                "org {org} is {} suspended",
                if suspend { "already" } else { "not" }
            )));
        }
        self.org_view(&scope).await
    }

    /// The org's override for a category, parsed; `None` if it uses the policy default.
    pub(crate) async fn retention_override(
        &self,
        scope: &custos_store::OrgScope,
        category: &str,
    ) -> Result<Option<Duration>, CoreError> {
        let overrides = self
            .store
            .for_org(scope)
            .await?
            .retention_overrides(scope)
            .await?;
        overrides
            .into_iter()
            .find(|(c, _)| c == category)
            .map(|(_, r)| {
                r.parse::<Duration>()
                    .map_err(|_| CoreError::internal(format!("stored retention {r:?} is invalid")))
            })
            .transpose()
    }

    /// Sets the org's retention for a category, within the policy's `org_configurable` bounds.
    pub async fn set_retention(
        &self,
        caller: &Caller,
        org: &str,
        category: &str,
        retention: &str,
    ) -> Result<RetentionView, CoreError> {
        // The category is enumerated by the OpenAPI document: an unknown one is bad input,
        // before anything about the org (its state, the caller's rights) is looked at.
        self.known_category(category)?;
        let grant = self.authorize(caller, Operation::RetentionSet, org).await?;
        self.authorize_category(
            caller,
            &grant,
            category,
            Some(Target::Category(category.to_string())),
        )
        .await?;
        let scope = grant.scope;
        let duration: Duration = retention
            .parse()
            .map_err(|e| CoreError::invalid("retention", format!("{retention:?}: {e}")))?;
        self.policy
            .check_override(category, duration)
            .map_err(|e| CoreError::invalid("retention", e.to_string()))?;
        let event = self
            .event(caller, custos_audit::AuditAction::RetentionSet)
            .org(scope.org_id())
            .target(Target::Category(category.to_string()))
            .details(Details::new().retention(duration.to_string()));
        self.store
            .for_org(&scope)
            .await?
            .set_retention_override(&scope, category, &duration.to_string(), &[event])
            .await?;
        Ok(RetentionView {
            category: category.to_string(),
            retention: duration.to_string(),
            overridden: true,
        })
    }

    /// The org's effective retention for every category.
    pub async fn retention(
        &self,
        caller: &Caller,
        org: &str,
    ) -> Result<Vec<RetentionView>, CoreError> {
        let scope = self
            .authorize(caller, Operation::RetentionRead, org)
            .await?
            .scope;
        let overrides = self
            .store
            .for_org(&scope)
            .await?
            .retention_overrides(&scope)
            .await?;
        Ok(self
            .policy
            .categories
            .values()
            .map(
                |c| match overrides.iter().find(|(name, _)| *name == c.name) {
                    Some((_, r)) => RetentionView {
                        category: c.name.clone(),
                        retention: r.clone(),
                        overridden: true,
                    },
                    None => RetentionView {
                        category: c.name.clone(),
                        retention: c.retention.to_string(),
                        overridden: false,
                    },
                },
            )
            .collect())
    }

    /// Places a legal hold on the org, a subject or a category.
    pub async fn create_hold(
        &self,
        caller: &Caller,
        org: &str,
        req: NewHold,
    ) -> Result<HoldView, CoreError> {
        let scope = self
            .authorize(caller, Operation::HoldCreate, org)
            .await?
            .scope;
        // Once termination completed there is nothing left to hold, and the org's keys
        // (needed to name a subject) are destroyed: refuse instead of failing inside.
        if let Some((_, o)) = self.store.org(scope.org_id()).await? {
            if o.terminated_at.is_some() {
                return Err(CoreError::OrgTerminated(org.to_string()));
            }
        }
        check_name("reason", &req.reason)?;
        self.check_free_text("reason", &req.reason)?;
        if let Some(c) = &req.category {
            if self.policy.category(c).is_none() {
                return Err(CoreError::UnknownCategory(c.clone()));
            }
        }
        let subject_ref = match req.subject.as_deref() {
            Some(s) => Some(self.vault.subject_ref(scope.org_id(), s).await?),
            None => None,
        };
        let hold = Hold {
            id: uuid::Uuid::now_v7().to_string(),
            reason: req.reason,
            subject_ref,
            category: req.category,
            created_at: self.now(),
        };
        let event = self
            .event(caller, custos_audit::AuditAction::HoldCreate)
            .org(scope.org_id())
            .target(Target::Hold(hold.id.to_string()));
        self.store
            .for_org(&scope)
            .await?
            .create_hold(&scope, &hold, &[event])
            .await?;
        Ok(hold.into())
    }

    /// Releases a legal hold.
    pub async fn release_hold(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<(), CoreError> {
        let scope = self
            .authorize(caller, Operation::HoldRelease, org)
            .await?
            .scope;
        let event = self
            .event(caller, custos_audit::AuditAction::HoldRelease)
            .org(scope.org_id())
            .target(Target::Hold(id.to_string()));
        if self
            .store
            .for_org(&scope)
            .await?
            .release_hold(&scope, id, self.now(), &[event])
            .await?
        {
            // Erasures the hold kept partial complete now, with a new certificate. The
            // release stands even if that fails: the next sweep resumes them.
            if let Err(e) = self.resume_erasures(Some(&scope)).await {
                tracing::warn!(error = %e, "resuming erasures after a hold release failed");
            }
            Ok(())
        } else {
            Err(CoreError::NotFound(format!("active hold {id}")))
        }
    }

    /// The org's active holds.
    pub async fn holds(&self, caller: &Caller, org: &str) -> Result<Vec<HoldView>, CoreError> {
        let scope = self
            .authorize(caller, Operation::HoldList, org)
            .await?
            .scope;
        Ok(self
            .store
            .for_org(&scope)
            .await?
            .holds(&scope)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}
