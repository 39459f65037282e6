//! The deployment's operators. Where the policy names an operator identity provider
//! (`[operators.identity_provider]`), operators are people of it, known by `iss` + `sub`; the
//! bootstrap admin token creates the first one and is then retired: refused for everything
//! (`403`, audited) unless `serve` runs with `--break-glass`, where each use is audited as
//! `operator.break_glass` and logged. A deployment without one (a laptop) keeps the token as
//! its operator, bound by the same authorization table.
//!
//! Operators sign in at `GET /v1/auth/oidc/login?operator=true`, with a second factor, and
//! act as [`crate::Principal::Operator`], named `operator:<id>` in the audit log (the sign-in
//! itself is [`crate::sign_in`]).

use std::sync::atomic::Ordering;

use custos_audit::{AuditAction, Outcome, Target};
use custos_store::{OperatorRow, PersonIdentity};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::authz::Operation;
use crate::members::check_name;
use crate::{Caller, CoreError, Custos, Principal, RequestContext};

/// A person of an identity provider, as the API names one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityInput {
    /// The provider's issuer (`iss`).
    pub iss: String,
    /// The person's subject at the provider (`sub`).
    pub sub: String,
}

/// The first operator, as the bootstrap token creates it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOperator {
    /// The person of the deployment's operator identity provider.
    pub identity: IdentityInput,
    /// A display name (default `operator`).
    #[serde(default)]
    pub name: Option<String>,
}

/// An operator as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OperatorView {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The person it is.
    pub identity: IdentityInput,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Who created it (`admin`: the bootstrap token).
    pub created_by: String,
}

impl From<OperatorRow> for OperatorView {
    fn from(row: OperatorRow) -> Self {
        OperatorView {
            id: row.id,
            name: row.name,
            identity: IdentityInput {
                iss: row.identity.iss,
                sub: row.identity.sub,
            },
            created_at: row.created_at,
            created_by: row.created_by,
        }
    }
}

/// Why the bootstrap token is refused once an operator exists.
const RETIRED: &str = "the bootstrap admin token is retired: this deployment has an operator \
    (sign in through the operator identity provider), or restart `custos serve` with \
    --break-glass for an emergency (every use is audited)";

impl Custos {
    /// Lets the bootstrap admin token act even after operators exist (`serve --break-glass`);
    /// each use is audited and logged.
    pub fn with_break_glass(mut self, on: bool) -> Self {
        self.break_glass = on;
        self
    }

    /// How the deployment's operators act, for `serve`'s start-up message.
    pub fn operator_mode(&self) -> String {
        match (&self.policy.operators.identity_provider, self.break_glass) {
            (None, _) => "the bootstrap admin token (no [operators.identity_provider]); it is \
                 bound by the authorization table: inside an org with an owner only under a \
                 support grant"
                .into(),
            (Some(idp), false) => format!(
                "people of {}, signed in with a second factor at \
                 /v1/auth/oidc/login?operator=true (the bootstrap admin token creates the first \
                 operator, then is retired)",
                idp.issuer
            ),
            (Some(idp), true) => format!(
                "people of {}; BREAK-GLASS: the bootstrap admin token works and every use is \
                 audited",
                idp.issuer
            ),
        }
    }

    /// Creates the deployment's first operator (the bootstrap token, once).
    pub async fn create_operator(
        &self,
        caller: &Caller,
        req: NewOperator,
    ) -> Result<OperatorView, CoreError> {
        self.authorize_global(caller, Operation::OperatorCreate)
            .await?;
        let Some(idp) = &self.policy.operators.identity_provider else {
            return Err(CoreError::Conflict(
                "the deployment has no [operators.identity_provider]: its operator is the \
                 bootstrap admin token"
                    .into(),
            ));
        };
        if req.identity.iss != idp.issuer {
            return Err(CoreError::invalid(
                "identity.iss",
                format!(
                    "must be the operator identity provider's issuer ({})",
                    idp.issuer
                ),
            ));
        }
        check_name("identity.sub", &req.identity.sub)?;
        let name = req.name.unwrap_or_else(|| "operator".into());
        check_name("name", &name)?;
        self.check_free_text("name", &name)?;
        let row = OperatorRow {
            id: uuid::Uuid::now_v7().to_string(),
            name,
            identity: PersonIdentity {
                iss: req.identity.iss,
                sub: req.identity.sub,
            },
            created_at: self.now(),
            created_by: caller.actor_name(),
        };
        let event = self
            .event(caller, AuditAction::OperatorCreate)
            .target(Target::Operator(row.id.clone()));
        if !self.store.main().add_first_operator(&row, &[event]).await? {
            return Err(CoreError::Conflict(
                "an operator exists already: the bootstrap token creates only the first one".into(),
            ));
        }
        self.operators_exist.store(true, Ordering::Relaxed);
        Ok(row.into())
    }

    /// The deployment's operators, oldest first.
    pub async fn operators(&self, caller: &Caller) -> Result<Vec<OperatorView>, CoreError> {
        self.authorize_global(caller, Operation::OperatorList)
            .await?;
        let rows = self.store.main().operators().await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The bootstrap token's principal: the operator, unless operators exist (then refused,
    /// audited, or under break-glass allowed, audited and logged).
    pub(crate) async fn bootstrap_principal(
        &self,
        context: &RequestContext,
    ) -> Result<Principal, CoreError> {
        if !self.bootstrap_retired().await? {
            return Ok(Principal::Admin);
        }
        let caller = Caller::in_context(Principal::Admin, context);
        if self.break_glass {
            tracing::warn!(
                source = context.source.as_deref().unwrap_or("-"),
                "BREAK-GLASS: the retired bootstrap admin token was used"
            );
            let event = self.event(&caller, AuditAction::OperatorBreakGlass);
            self.store.main().append_audit(&[event]).await?;
            return Ok(Principal::Admin);
        }
        let event = self
            .event(&caller, AuditAction::AuthReject)
            .outcome(Outcome::Denied)
            .reason("bootstrap_retired");
        self.store.main().append_audit(&[event]).await?;
        Err(CoreError::Forbidden(RETIRED.into()))
    }

    /// Whether the bootstrap token is retired: the policy names an operator identity provider
    /// and an operator exists (remembered once seen: operators are not deleted).
    async fn bootstrap_retired(&self) -> Result<bool, CoreError> {
        if self.policy.operators.identity_provider.is_none() {
            return Ok(false);
        }
        if self.operators_exist.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let exist = self.store.main().has_operators().await?;
        if exist {
            self.operators_exist.store(true, Ordering::Relaxed);
        }
        Ok(exist)
    }
}
