//! Signing in to the console with a member's API key (plus its TOTP code when the member has
//! a second factor): the browser gets a session token, never the key.
//!
//! A code opens the same session `POST /v1/orgs/{org}/sessions` opens (it proves a second
//! factor). Without one, a member that has no second factor gets a session proving none,
//! with the same power as its key and the org's session lifetime; a member that has one (or
//! must use one) is told to enter its code. Either way the console holds nothing the key did
//! not: every page then calls the same authorized functions any client does.
//!
//! Not for: people signing in through an identity provider (`sign_in.rs`).

use custos_audit::{AuditAction, Details, Target};
use custos_store::Session;

use crate::authz::Operation;
use crate::members::{random_token, SESSION_PREFIX};
use crate::totp::NewSession;
use crate::{token_hash, Authentication, Caller, CoreError, Custos, Principal, RequestContext};

/// A console session just opened.
#[derive(Debug)]
pub struct ConsoleSession {
    /// The session token, for the `custos_session` cookie.
    pub token: String,
    /// When it stops working.
    pub expires_at: jiff::Timestamp,
    /// The org's id (the form may name the org by name).
    pub org: String,
}

impl Custos {
    /// Opens a console session for the member whose API key is `api_key`, in `org` (its id
    /// or its name), with `code` from its authenticator app if it has one. Wrong keys count
    /// against the source address like any refused credential; a key of another org is
    /// refused the same way (nothing says the org exists).
    pub async fn console_sign_in(
        &self,
        org: &str,
        api_key: &str,
        code: &str,
        context: &RequestContext,
    ) -> Result<ConsoleSession, CoreError> {
        let org = org.trim();
        let principal = self.authenticate_from(api_key.trim(), context).await?;
        let Principal::Member {
            scope,
            member,
            auth: Authentication::ApiKey,
        } = &principal
        else {
            return Err(CoreError::invalid(
                "API key",
                "must be a member's API key (operators sign in through their identity \
                 provider; sessions and personal tokens are not keys)",
            ));
        };
        let org_id = scope.org_id().to_string();
        let named = org == org_id
            || self
                .store
                .org(&org_id)
                .await?
                .is_some_and(|(_, row)| row.name == org);
        if !named {
            return Err(CoreError::Unauthenticated);
        }
        let caller = Caller::in_context(principal.clone(), context);
        let code = code.trim();
        if !code.is_empty() {
            let view = self
                .open_session(&caller, &org_id, NewSession { totp: code.into() })
                .await?;
            return Ok(ConsoleSession {
                token: view.token,
                expires_at: view.expires_at,
                org: org_id,
            });
        }
        let grant = self
            .authorize(&caller, Operation::SessionOpen, &org_id)
            .await?;
        let enrolled = self
            .store
            .for_org(&grant.scope)
            .await?
            .totp(&grant.scope, &member.id)
            .await?
            .is_some();
        if enrolled || member.mfa {
            return Err(CoreError::invalid(
                "Code",
                "this member signs in with a second factor: enter the current code of its \
                 authenticator app",
            ));
        }
        let now = self.now();
        let token = random_token(SESSION_PREFIX);
        let session = Session {
            token_hash: token_hash(&token),
            member_id: member.id.clone(),
            method: "api_key".into(),
            expires_at: grant.settings.session_timeout()?.add_to(now),
            last_used_at: None,
            second_factor: false,
            created_at: Some(now),
            idle_seconds: None,
        };
        let event = self
            .event(&caller, AuditAction::SessionOpen)
            .org(&org_id)
            .target(Target::Member(member.id.clone()))
            .details(
                Details::new()
                    .method(session.method.clone())
                    .expires(session.expires_at),
            );
        self.store
            .for_org(&grant.scope)
            .await?
            .start_session(&grant.scope, &session, &[event])
            .await?;
        Ok(ConsoleSession {
            token,
            expires_at: session.expires_at,
            org: org_id,
        })
    }
}
