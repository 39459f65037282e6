//! Personal access tokens: a person who signed in (with a second factor) makes a token for
//! remote use (`cup_…`, shown once). It carries the member's roles and never counts as a
//! second factor, so it cannot make another token or reach an MFA-gated category. It ends
//! when revoked, when it expires, or when its member is removed or disabled.
//!
//! Not here: API keys (a member has one, [`crate::members`]) and sessions ([`crate::totp`],
//! [`crate::sign_in`]).

use custos_audit::{Details, Target};
use custos_store::PersonalToken;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::authz::Operation;
use crate::members::random_token;
use crate::{token_hash, Caller, CoreError, Custos, Principal};

/// What a personal access token starts with.
pub const PERSONAL_TOKEN_PREFIX: &str = "cup_";
/// The shortest and longest life a token may be given.
const LIFETIME_BOUNDS: (&str, &str) = ("1h", "1y");
/// The most tokens one member may hold at once.
const MAX_TOKENS_PER_MEMBER: usize = 50;

/// A token to make.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPersonalToken {
    /// What the token is for (1 to 100 printable characters), shown in listings.
    pub name: String,
    /// How long it works: a duration from 1h to 1y (`"30d"`).
    pub expires_in: String,
}

/// A token as listings show it (never the token).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonalTokenView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// When it stops working.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
    /// When it was last used (to the minute), if ever.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<jiff::Timestamp>,
}

/// A token just made: the token itself, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedPersonalToken {
    /// Its id.
    pub id: String,
    /// The token (`cup_…`), shown once; send it as `Authorization: Bearer`.
    pub token: String,
    /// When it stops working.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
}

impl std::fmt::Debug for CreatedPersonalToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedPersonalToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl From<PersonalToken> for PersonalTokenView {
    fn from(t: PersonalToken) -> Self {
        PersonalTokenView {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
        }
    }
}

impl Custos {
    /// Makes a personal access token for the calling person (audited `auth.token_create`).
    pub async fn create_personal_token(
        &self,
        caller: &Caller,
        req: NewPersonalToken,
    ) -> Result<CreatedPersonalToken, CoreError> {
        let (scope, member) = self
            .authorize_own(caller, Operation::PersonalTokenCreate)
            .await?;
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(CoreError::invalid(
                "name",
                "must be 1 to 100 printable characters",
            ));
        }
        let lifetime =
            crate::settings::parse_bounded("expires_in", &req.expires_in, LIFETIME_BOUNDS)?;
        let store = self.store.for_org(&scope).await?;
        if store.personal_tokens(&scope, &member).await?.len() >= MAX_TOKENS_PER_MEMBER {
            return Err(CoreError::Conflict(format!(
                "a member holds at most {MAX_TOKENS_PER_MEMBER} personal access tokens; revoke one"
            )));
        }
        let now = self.now();
        let token = zeroize::Zeroizing::new(random_token(PERSONAL_TOKEN_PREFIX));
        let row = PersonalToken {
            id: uuid::Uuid::now_v7().to_string(),
            member_id: member.clone(),
            name: name.to_string(),
            token_hash: token_hash(&token),
            created_at: now,
            expires_at: lifetime.add_to(now),
            last_used_at: None,
        };
        let event = self
            .event(caller, custos_audit::AuditAction::AuthTokenCreate)
            .org(scope.org_id())
            .target(Target::Member(member))
            .details(Details::new().expires(row.expires_at));
        store.add_personal_token(&scope, &row, &[event]).await?;
        Ok(CreatedPersonalToken {
            id: row.id,
            token: token.to_string(),
            expires_at: row.expires_at,
        })
    }

    /// The calling person's personal access tokens, oldest first.
    pub async fn personal_tokens(
        &self,
        caller: &Caller,
    ) -> Result<Vec<PersonalTokenView>, CoreError> {
        let (scope, member) = self
            .authorize_own(caller, Operation::PersonalTokenList)
            .await?;
        let rows = self
            .store
            .for_org(&scope)
            .await?
            .personal_tokens(&scope, &member)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Revokes one of the calling person's personal access tokens (audited
    /// `auth.token_revoke`); another member's token is `not_found`.
    pub async fn revoke_personal_token(&self, caller: &Caller, id: &str) -> Result<(), CoreError> {
        let (scope, member) = self
            .authorize_own(caller, Operation::PersonalTokenRevoke)
            .await?;
        let event = self
            .event(caller, custos_audit::AuditAction::AuthTokenRevoke)
            .org(scope.org_id())
            .target(Target::Member(member.clone()));
        let revoked = self
            .store
            .for_org(&scope)
            .await?
            .revoke_personal_token(&scope, &member, id, &[event])
            .await?;
        if !revoked {
            return Err(CoreError::NotFound(format!("personal access token {id}")));
        }
        Ok(())
    }

    /// Authorizes `op` on the caller's own tokens: a member in its own org (the table's row
    /// decides), anyone else refused by the same row.
    async fn authorize_own(
        &self,
        caller: &Caller,
        op: Operation,
    ) -> Result<(custos_store::OrgScope, String), CoreError> {
        match &caller.principal {
            Principal::Member { scope, member, .. } => {
                let grant = self.authorize(caller, op, scope.org_id()).await?;
                Ok((grant.scope, member.id.clone()))
            }
            _ => {
                self.authorize_global(caller, op).await?;
                Err(CoreError::internal(
                    "the table lets only members use their personal access tokens",
                ))
            }
        }
    }
}
