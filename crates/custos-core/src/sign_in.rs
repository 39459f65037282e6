//! Sign-in for people through an org's OpenID provider: the authorization code flow with
//! PKCE (S256), `state` and `nonce`, done by the `openidconnect` crate, ending in a session.
//!
//! [`Custos::start_sign_in`] discovers the provider, keeps the sign-in under way (keyed by the
//! hash of `state`, bound to the hash of a pre-login browser secret the API sets as a cookie)
//! and answers where to send the browser. [`Custos::finish_sign_in`] takes that sign-in once,
//! exchanges the code with the PKCE verifier, checks the ID token (signature by the
//! provider's published keys, `iss`, `aud`, `exp`, `nonce`), maps the person to a member by
//! `iss` + `sub` (never by e-mail), and opens a session whose idle limit is the org's
//! `session_timeout` and whose absolute one its `session_max_lifetime`. Every refusal is
//! audited with a reason code ([`SignInRefusal`]), counted, and charged to the source.
//!
//! Not here: ID tokens sent beside an API key as a second factor ([`crate::idp`]).

use custos_audit::{Actor, AuditAction, AuditEvent, Details, Outcome, Target};
use custos_store::{
    Member, OperatorRow, OperatorSession, OrgScope, PendingSignIn, PersonIdentity, Session,
};
use jiff::ToSpan;
use openidconnect::core::CoreAuthenticationFlow;
use openidconnect::{ClaimsVerificationError, CsrfToken, Nonce, PkceCodeChallenge};
use zeroize::Zeroizing;

use crate::members::{random_token, SESSION_PREFIX};
use crate::sign_in_provider::{Failure, Provider, Verified};
use crate::{token_hash, Authentication, Caller, CoreError, Custos, Principal, RequestContext};

/// Where the provider sends the browser back, under the policy's `[service] public_url`.
pub const CALLBACK_PATH: &str = "/v1/auth/oidc/callback";
/// What an operator's session token starts with (a member's starts with [`SESSION_PREFIX`]).
pub const OPERATOR_SESSION_PREFIX: &str = "cuso_";
/// How long a browser has to come back from the provider.
const SIGN_IN_TTL_MINUTES: i64 = 10;
/// The longest `return_to` path accepted.
const MAX_RETURN_TO: usize = 2048;

/// Who signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInFor {
    /// One of this org's people, through the org's identity provider.
    Org(String),
    /// An operator, through the deployment's `[operators.identity_provider]`.
    Operator,
}

/// Why a browser coming back from the provider was not signed in; [`SignInRefusal::code`] is
/// what the audit log and the metrics record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SignInRefusal {
    /// No sign-in under way has this `state` (never started, already finished, or forged).
    StateUnknown,
    /// The sign-in was started more than ten minutes ago.
    StateExpired,
    /// The browser that came back is not the one that started the sign-in (no pre-login
    /// cookie, or another one).
    BrowserMismatch,
    /// The provider sent an error instead of a code (the person cancelled, or was refused).
    ProviderError,
    /// The provider refused the code (expired, used before, or its PKCE verifier differs).
    CodeRefused,
    /// The token answer holds no ID token.
    IdTokenMissing,
    /// The ID token is not signed by one of the provider's keys with an allowed algorithm.
    BadSignature,
    /// The ID token's `iss` is not the org's provider.
    WrongIssuer,
    /// The ID token's `aud` does not name this deployment's client.
    WrongAudience,
    /// The ID token has expired.
    Expired,
    /// The ID token's `nonce` is not the one this sign-in sent.
    NonceMismatch,
    /// The ID token fails another check (malformed, bad subject, ...).
    IdTokenInvalid,
    /// The org changed or removed its provider while the browser was away.
    ProviderChanged,
    /// The person is no member of the org, and the org provisions nobody at sign-in.
    UnknownPerson,
    /// The person's member is disabled.
    MemberDisabled,
    /// An operator signed in without a second factor (`amr`): operators always need one.
    NoSecondFactor,
}

impl SignInRefusal {
    /// The short, stable reason code (never a token, a code or a claim).
    pub fn code(self) -> &'static str {
        match self {
            SignInRefusal::StateUnknown => "state_unknown",
            SignInRefusal::StateExpired => "state_expired",
            SignInRefusal::BrowserMismatch => "browser_mismatch",
            SignInRefusal::ProviderError => "provider_error",
            SignInRefusal::CodeRefused => "code_refused",
            SignInRefusal::IdTokenMissing => "id_token_missing",
            SignInRefusal::BadSignature => "bad_signature",
            SignInRefusal::WrongIssuer => "wrong_issuer",
            SignInRefusal::WrongAudience => "wrong_audience",
            SignInRefusal::Expired => "expired",
            SignInRefusal::NonceMismatch => "nonce_mismatch",
            SignInRefusal::IdTokenInvalid => "id_token_invalid",
            SignInRefusal::ProviderChanged => "provider_changed",
            SignInRefusal::UnknownPerson => "unknown_person",
            SignInRefusal::MemberDisabled => "member_disabled",
            SignInRefusal::NoSecondFactor => "no_second_factor",
        }
    }

    /// What the person is told (the reason code, and what to do).
    fn message(self) -> String {
        let what = match self {
            SignInRefusal::StateUnknown
            | SignInRefusal::StateExpired
            | SignInRefusal::BrowserMismatch => {
                "this sign-in is unknown, expired or was started in another browser; start again"
            }
            SignInRefusal::ProviderError => "the identity provider did not sign you in",
            SignInRefusal::UnknownPerson => {
                "you are not a member of this org; ask an owner or admin to add you"
            }
            SignInRefusal::MemberDisabled => "your membership of this org is disabled",
            SignInRefusal::NoSecondFactor => {
                "operators sign in with a second factor; sign in again with one"
            }
            _ => "the identity provider's answer was refused; start again",
        };
        format!("sign-in refused ({}): {what}", self.code())
    }

    /// The refusal a failed ID-token check is.
    pub(crate) fn of_claims(error: &ClaimsVerificationError) -> SignInRefusal {
        match error {
            ClaimsVerificationError::Expired(_) => SignInRefusal::Expired,
            ClaimsVerificationError::InvalidAudience(_) => SignInRefusal::WrongAudience,
            ClaimsVerificationError::InvalidIssuer(_) => SignInRefusal::WrongIssuer,
            ClaimsVerificationError::InvalidNonce(_) => SignInRefusal::NonceMismatch,
            ClaimsVerificationError::SignatureVerification(_) => SignInRefusal::BadSignature,
            _ => SignInRefusal::IdTokenInvalid,
        }
    }
}

/// What a started sign-in answers: where to send the browser, and the secret the browser
/// keeps (as its pre-login cookie) to prove it is the one that comes back.
pub struct SignInStart {
    /// The provider's authorization URL, with `state`, `nonce` and the PKCE challenge.
    pub location: String,
    /// The pre-login browser secret (the API's cookie value).
    pub browser_secret: Zeroizing<String>,
}

impl std::fmt::Debug for SignInStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInStart").finish_non_exhaustive()
    }
}

/// What the provider sent the browser back with.
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Callback {
    /// The `state` this sign-in sent.
    pub state: Option<String>,
    /// The authorization code.
    pub code: Option<String>,
    /// The provider's error code, when it did not sign the person in.
    pub error: Option<String>,
    /// The provider's explanation of `error` (not recorded).
    pub error_description: Option<String>,
    /// The issuer that answered (RFC 9207; checked by the ID token's `iss`).
    pub iss: Option<String>,
    /// Scopes granted (ignored).
    pub scope: Option<String>,
    /// Session state (ignored).
    pub session_state: Option<String>,
}

/// A finished sign-in: the session and where to send the browser.
pub struct SignedIn {
    /// The session token (`cuss_…`): the API's session cookie, or a bearer token.
    pub token: Zeroizing<String>,
    /// The path the browser goes to now.
    pub return_to: String,
    /// The org signed in to (`None`: an operator).
    pub org: Option<String>,
    /// The member or operator signed in as.
    pub who: String,
    /// Whether the provider proved a second factor (`amr`).
    pub second_factor: bool,
    /// When the session ends however it is used.
    pub expires_at: jiff::Timestamp,
    /// How long the session may go unused, in seconds.
    pub idle_seconds: i64,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("org", &self.org)
            .field("who", &self.who)
            .field("second_factor", &self.second_factor)
            .finish_non_exhaustive()
    }
}

/// `return_to` if it is a path on this deployment (so a sign-in cannot send the browser
/// elsewhere: no scheme, no `//host`, no backslash, printable ASCII); `/` when not given.
pub fn check_return_to(return_to: Option<&str>) -> Result<String, CoreError> {
    let Some(path) = return_to else {
        return Ok("/".into());
    };
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && path.len() <= MAX_RETURN_TO
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if !ok {
        return Err(CoreError::invalid(
            "return_to",
            "must be a path on this deployment, such as /console (no scheme or host)",
        ));
    }
    Ok(path.to_string())
}

impl Custos {
    /// Starts a sign-in: of one of an org's people through the org's identity provider, or
    /// of an operator through the deployment's.
    pub async fn start_sign_in(
        &self,
        target: &SignInFor,
        return_to: Option<&str>,
        context: &RequestContext,
    ) -> Result<SignInStart, CoreError> {
        let return_to = check_return_to(return_to)?;
        let now = self.now();
        self.check_source(&anonymous(context), now)?;
        let public_url = self.public_url()?;
        let provider = match target {
            SignInFor::Org(org) => {
                // An unknown org and one without sign-in look the same: ids cannot be probed.
                let no_sign_in = || CoreError::NotFound(format!("sign-in for org {org}"));
                let (scope, row) = self.store.org(org).await?.ok_or_else(no_sign_in)?;
                if row.terminating_since.is_some() {
                    return Err(CoreError::OrgTerminated(org.to_string()));
                }
                self.org_provider(&scope).await?.ok_or_else(no_sign_in)?
            }
            SignInFor::Operator => self.operator_provider()?,
        };
        let (client, _) = self.provider_client(&provider, &public_url, false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge)
            .url();
        let browser_secret = Zeroizing::new(random_token(""));
        let pending = PendingSignIn {
            state_hash: token_hash(state.secret()),
            browser_hash: token_hash(&browser_secret),
            org_id: match target {
                SignInFor::Org(org) => Some(org.clone()),
                SignInFor::Operator => None,
            },
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to,
            expires_at: now + SIGN_IN_TTL_MINUTES.minutes(),
        };
        self.store.main().put_sign_in(&pending, now).await?;
        Ok(SignInStart {
            location: url.to_string(),
            browser_secret,
        })
    }

    /// Finishes a sign-in: the browser came back from the provider with `callback`, carrying
    /// its pre-login secret `browser`. Refusals are audited, counted and charged to the source.
    pub async fn finish_sign_in(
        &self,
        callback: &Callback,
        browser: Option<&str>,
        context: &RequestContext,
    ) -> Result<SignedIn, CoreError> {
        let now = self.now();
        self.check_source(&anonymous(context), now)?;
        let Some(state) = callback.state.as_deref() else {
            return Err(self
                .refuse_sign_in(context, SignInRefusal::StateUnknown, None)
                .await);
        };
        let Some(pending) = self.store.main().take_sign_in(&token_hash(state)).await? else {
            return Err(self
                .refuse_sign_in(context, SignInRefusal::StateUnknown, None)
                .await);
        };
        let org = pending.org_id.as_deref();
        let early = if pending.expires_at <= now {
            Some(SignInRefusal::StateExpired)
        } else if !browser.is_some_and(|b| {
            subtle::ConstantTimeEq::ct_eq(&token_hash(b)[..], &pending.browser_hash[..]).into()
        }) {
            Some(SignInRefusal::BrowserMismatch)
        } else if callback.error.is_some() {
            Some(SignInRefusal::ProviderError)
        } else if callback.code.is_none() {
            Some(SignInRefusal::CodeRefused)
        } else {
            None
        };
        if let Some(refusal) = early {
            return Err(self.refuse_sign_in(context, refusal, org).await);
        }
        let code = callback.code.clone().unwrap_or_default();
        let public_url = self.public_url()?;
        let (provider, scope) = match org {
            Some(org) => {
                let found = match self.store.org(org).await? {
                    Some((scope, _)) => self
                        .org_provider(&scope)
                        .await?
                        .map(|provider| (provider, Some(scope))),
                    None => None,
                };
                let Some(found) = found else {
                    return Err(self
                        .refuse_sign_in(context, SignInRefusal::ProviderChanged, Some(org))
                        .await);
                };
                found
            }
            None => (self.operator_provider()?, None),
        };
        let verified = self
            .verified_person(
                &provider,
                &public_url,
                code,
                pending.pkce_verifier.clone(),
                pending.nonce.clone(),
            )
            .await;
        let verified = match verified {
            Ok(verified) => verified,
            Err(Failure::Refused(refusal)) => {
                return Err(self.refuse_sign_in(context, refusal, org).await)
            }
            Err(Failure::Error(e)) => return Err(e),
        };
        match scope {
            Some(scope) => {
                self.sign_in_member(context, &scope, verified, pending.return_to)
                    .await
            }
            None => {
                self.sign_in_operator(context, verified, pending.return_to)
                    .await
            }
        }
    }

    /// The org's provider for signing its people in, if it has one.
    async fn org_provider(&self, scope: &OrgScope) -> Result<Option<Provider>, CoreError> {
        let Some(idp) = self.org_settings_of(scope).await?.identity_provider else {
            return Ok(None);
        };
        Ok(Some(Provider {
            secret: self.open_client_secret(scope.org_id(), &idp).await?,
            client_id: idp.sign_in_client_id().to_string(),
            issuer: idp.issuer,
            field: "identity_provider.issuer",
        }))
    }

    /// The deployment's provider for its operators (`[operators.identity_provider]`; the
    /// client secret read from the variable it names, when it names one).
    fn operator_provider(&self) -> Result<Provider, CoreError> {
        let idp = self
            .policy
            .operators
            .identity_provider
            .as_ref()
            .ok_or_else(|| {
                CoreError::NotFound(
                    "operator sign-in: the policy names no [operators.identity_provider]".into(),
                )
            })?;
        let secret = match &idp.client_secret_env {
            None => None,
            Some(var) => Some(Zeroizing::new(std::env::var(var).map_err(|_| {
                CoreError::internal(format!(
                    "[operators.identity_provider] client_secret_env: {var} is not set"
                ))
            })?)),
        };
        Ok(Provider {
            issuer: idp.issuer.clone(),
            field: "[operators.identity_provider] issuer",
            client_id: idp.client_id.clone(),
            secret,
        })
    }

    /// A verified person of `scope`'s provider becomes (or is) a member and gets a session.
    async fn sign_in_member(
        &self,
        context: &RequestContext,
        scope: &OrgScope,
        verified: Verified,
        return_to: String,
    ) -> Result<SignedIn, CoreError> {
        let org = Some(scope.org_id());
        let settings = self.org_settings_of(scope).await?;
        let member = match self.member_of_person(scope, &verified.person).await? {
            Some(member) if member.disabled_at.is_some() => {
                return Err(self
                    .refuse_sign_in(context, SignInRefusal::MemberDisabled, org)
                    .await)
            }
            Some(member) => member,
            None => match settings
                .identity_provider
                .as_ref()
                .and_then(|p| p.jit_role.as_deref())
            {
                Some(role) => {
                    self.provision(context, scope, verified.person, verified.name, role)
                        .await?
                }
                None => {
                    return Err(self
                        .refuse_sign_in(context, SignInRefusal::UnknownPerson, org)
                        .await)
                }
            },
        };
        self.open_sign_in_session(
            context,
            scope,
            member,
            verified.second_factor,
            return_to,
            &settings,
        )
        .await
    }

    /// A verified person of the deployment's provider who is an operator gets an operator's
    /// session; only with a second factor.
    async fn sign_in_operator(
        &self,
        context: &RequestContext,
        verified: Verified,
        return_to: String,
    ) -> Result<SignedIn, CoreError> {
        if !verified.second_factor {
            return Err(self
                .refuse_sign_in(context, SignInRefusal::NoSecondFactor, None)
                .await);
        }
        let Some(operator) = self
            .store
            .main()
            .operator_by_identity(&verified.person)
            .await?
        else {
            return Err(self
                .refuse_sign_in(context, SignInRefusal::UnknownPerson, None)
                .await);
        };
        self.open_operator_session(context, operator, return_to)
            .await
    }

    /// Opens a signed-in operator's session, audited as `auth.sign_in` by the operator.
    async fn open_operator_session(
        &self,
        context: &RequestContext,
        operator: OperatorRow,
        return_to: String,
    ) -> Result<SignedIn, CoreError> {
        let now = self.now();
        let limits = &self.policy.operators;
        let idle_seconds = now
            .duration_until(limits.session_timeout.add_to(now))
            .as_secs();
        let expires_at = limits.session_max_lifetime.add_to(now);
        let token = Zeroizing::new(random_token(OPERATOR_SESSION_PREFIX));
        let session = OperatorSession {
            token_hash: token_hash(&token),
            operator_id: operator.id.clone(),
            expires_at,
            created_at: now,
            last_used_at: None,
            idle_seconds,
        };
        let caller = Caller::in_context(
            Principal::Operator {
                id: operator.id.clone(),
                expires: expires_at,
            },
            context,
        );
        let event = self
            .event(&caller, AuditAction::AuthSignIn)
            .target(Target::Operator(operator.id.clone()))
            .details(Details::new().method("oidc").mfa(true).expires(expires_at));
        self.store
            .main()
            .start_operator_session(&session, &[event])
            .await?;
        Ok(SignedIn {
            token,
            return_to,
            org: None,
            who: operator.id,
            second_factor: true,
            expires_at,
            idle_seconds,
        })
    }

    /// Opens the session of a signed-in member, audited as `auth.sign_in`.
    async fn open_sign_in_session(
        &self,
        context: &RequestContext,
        scope: &OrgScope,
        member: Member,
        second_factor: bool,
        return_to: String,
        settings: &crate::settings::OrgSettings,
    ) -> Result<SignedIn, CoreError> {
        let now = self.now();
        let idle = settings.session_timeout()?;
        let idle_seconds = now.duration_until(idle.add_to(now)).as_secs();
        let expires_at = settings.session_max_lifetime()?.add_to(now);
        let token = Zeroizing::new(random_token(SESSION_PREFIX));
        let session = Session {
            token_hash: token_hash(&token),
            member_id: member.id.clone(),
            method: "oidc".into(),
            expires_at,
            last_used_at: None,
            second_factor,
            created_at: Some(now),
            idle_seconds: Some(idle_seconds),
        };
        let caller = Caller::in_context(
            Principal::Member {
                scope: scope.clone(),
                member: member.clone(),
                auth: Authentication::SignInSession {
                    expires: expires_at,
                    second_factor,
                    token_hash: session.token_hash,
                },
            },
            context,
        );
        let event = self
            .event(&caller, AuditAction::AuthSignIn)
            .org(scope.org_id())
            .target(Target::Member(member.id.clone()))
            .details(
                Details::new()
                    .method("oidc")
                    .mfa(second_factor)
                    .expires(expires_at),
            );
        self.store
            .for_org(scope)
            .await?
            .start_session(scope, &session, &[event])
            .await?;
        Ok(SignedIn {
            token,
            return_to,
            org: Some(scope.org_id().to_string()),
            who: member.id,
            second_factor,
            expires_at,
            idle_seconds,
        })
    }

    /// The member bound to `person`, if any.
    async fn member_of_person(
        &self,
        scope: &OrgScope,
        person: &PersonIdentity,
    ) -> Result<Option<Member>, CoreError> {
        Ok(self
            .store
            .for_org(scope)
            .await?
            .members(scope)
            .await?
            .into_iter()
            .find(|m| m.identity.as_ref() == Some(person)))
    }

    /// Creates the member `person` becomes at its first sign-in, with the org's `jit_role`
    /// (audited as `member.create` by the person's new member itself).
    async fn provision(
        &self,
        context: &RequestContext,
        scope: &OrgScope,
        person: PersonIdentity,
        name: String,
        role: &str,
    ) -> Result<Member, CoreError> {
        let member = Member {
            id: uuid::Uuid::now_v7().to_string(),
            name,
            roles: vec![role.to_string()],
            groups: Vec::new(),
            mfa: false,
            created_at: self.now(),
            identity: Some(person),
            last_used_at: None,
            key_last_used_at: None,
            disabled_at: None,
        };
        // The member signs in; an API key is made because every member has one, and is never
        // shown (an owner or admin rotates it to hand one out).
        let unused_key = Zeroizing::new(crate::generate_api_key());
        let event = AuditEvent::new(
            self.now(),
            Actor::Member(member.id.clone()),
            AuditAction::MemberCreate,
        )
        .request(context.request_id.clone(), context.source.clone())
        .client_request(context.client_request_id.clone())
        .org(scope.org_id())
        .target(Target::Member(member.id.clone()))
        .reason("just_in_time")
        .details(crate::members::grants(&member));
        self.store
            .for_org(scope)
            .await?
            .add_member(scope, &member, &token_hash(&unused_key), &[event])
            .await?;
        Ok(member)
    }

    /// Audits (batched, see [`crate::auth_failures`]), counts and charges a refused sign-in,
    /// and returns the refusal.
    async fn refuse_sign_in(
        &self,
        context: &RequestContext,
        refusal: SignInRefusal,
        org: Option<&str>,
    ) -> CoreError {
        let now = self.now();
        self.sign_ins.count(refusal);
        if let Some(source) = &context.source {
            self.source_failures.fail(source, now);
        }
        let mut details = Details::new().method("oidc");
        if self.check_source(&anonymous(context), now).is_err() {
            details = details.source_limited(true);
        }
        let mut event = AuditEvent::new(now, Actor::Anonymous, AuditAction::AuthSignIn)
            .request(context.request_id.clone(), context.source.clone())
            .client_request(context.client_request_id.clone())
            .outcome(Outcome::Denied)
            .reason(refusal.code())
            .details(details);
        if let Some(org) = org {
            event = event.org(org).target(Target::Org(org.to_string()));
        }
        // Batched with refused credentials: a flood of forged callbacks is not a flood of
        // commits.
        self.audit_refusal(event).await;
        CoreError::SignInRefused {
            reason: refusal.code(),
            message: refusal.message(),
        }
    }

    /// The policy's `[service] public_url`, which sign-in needs for its redirect URI.
    fn public_url(&self) -> Result<String, CoreError> {
        self.policy.service.public_url.clone().ok_or_else(|| {
            CoreError::Conflict(
                "sign-in through an identity provider needs the policy's [service] public_url \
                 (the address browsers reach this deployment at)"
                    .into(),
            )
        })
    }

    /// Signs out: ends the session `token` is (audited as `auth.sign_out`). Anything else
    /// (an API key, an unknown or expired session) ends nothing and is not an error.
    pub async fn sign_out(&self, token: &str, context: &RequestContext) -> Result<(), CoreError> {
        let hash = token_hash(token);
        if token.starts_with(OPERATOR_SESSION_PREFIX) {
            let main = self.store.main();
            let Some((operator, session)) = main.operator_session(&hash, self.now()).await? else {
                return Ok(());
            };
            let caller = Caller::in_context(
                Principal::Operator {
                    id: operator.id.clone(),
                    expires: session.expires_at,
                },
                context,
            );
            let event = self
                .event(&caller, AuditAction::AuthSignOut)
                .target(Target::Operator(operator.id));
            main.end_operator_session(&hash, &[event]).await?;
            return Ok(());
        }
        if !token.starts_with(SESSION_PREFIX) {
            return Ok(());
        }
        let Some((scope, member, session)) = self.store.session(&hash, self.now()).await? else {
            return Ok(());
        };
        let caller = Caller::in_context(
            Principal::Member {
                scope: scope.clone(),
                member: member.clone(),
                auth: Authentication::SignInSession {
                    expires: session.expires_at,
                    second_factor: session.second_factor,
                    token_hash: hash,
                },
            },
            context,
        );
        let event = self
            .event(&caller, AuditAction::AuthSignOut)
            .org(scope.org_id())
            .target(Target::Member(member.id.clone()));
        self.store
            .for_org(&scope)
            .await?
            .end_session(&scope, &hash, &[event])
            .await?;
        Ok(())
    }

    /// Prometheus text of the sign-in refusal counters.
    pub fn render_sign_in_metrics(&self, out: &mut String) {
        self.sign_ins.render(out);
    }
}

/// The caller an unauthenticated browser is, for source limits.
fn anonymous(context: &RequestContext) -> Caller {
    Caller::in_context(Principal::System, context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_stays_on_this_deployment() {
        assert_eq!(check_return_to(None).unwrap(), "/");
        assert_eq!(
            check_return_to(Some("/console/requests?due=7d")).unwrap(),
            "/console/requests?due=7d"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "console",
            "/a b",
            "",
        ] {
            assert!(check_return_to(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusal_codes_are_distinct() {
        use SignInRefusal::*;
        let all = [
            StateUnknown,
            StateExpired,
            BrowserMismatch,
            ProviderError,
            CodeRefused,
            IdTokenMissing,
            BadSignature,
            WrongIssuer,
            WrongAudience,
            Expired,
            NonceMismatch,
            IdTokenInvalid,
            ProviderChanged,
            UnknownPerson,
            MemberDisabled,
            NoSecondFactor,
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), all.len());
    }
}
