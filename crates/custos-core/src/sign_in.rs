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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use custos_audit::{Actor, AuditAction, AuditEvent, Details, Outcome, Target};
use custos_store::{Member, OrgScope, PendingSignIn, PersonIdentity, Session};
use jiff::ToSpan;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, SignatureVerificationError,
};
use zeroize::Zeroizing;

use crate::members::{random_token, SESSION_PREFIX};
use crate::outbound::{error_chain, Outbound, OutboundUrl, Rules};
use crate::settings::IdentityProvider;
use crate::{token_hash, Authentication, Caller, CoreError, Custos, Principal, RequestContext};

/// Where the provider sends the browser back, under the policy's `[service] public_url`.
pub const CALLBACK_PATH: &str = "/v1/auth/oidc/callback";
/// How long a browser has to come back from the provider.
const SIGN_IN_TTL_MINUTES: i64 = 10;
/// How long a provider's discovery document and keys are used before they are fetched again.
const METADATA_TTL: Duration = Duration::from_secs(300);
/// Shortest time between two refetches of a provider's keys for an ID token signed by a key
/// Custos does not hold (the provider rotated its keys), per issuer.
const REFRESH_COOLDOWN: Duration = Duration::from_secs(10);
/// Bound on one request to the provider (discovery, keys, code exchange).
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on connecting to the provider.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest `return_to` path accepted.
const MAX_RETURN_TO: usize = 2048;
/// The signature algorithms an ID token may use (asymmetric only: a client secret is never
/// a signing key here).
const ALGORITHMS: [CoreJwsSigningAlgorithm; 6] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// The client `openidconnect` builds from a provider's discovery document.
type ProviderClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

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
            _ => "the identity provider's answer was refused; start again",
        };
        format!("sign-in refused ({}): {what}", self.code())
    }

    /// The refusal a failed ID-token check is.
    fn of_claims(error: &ClaimsVerificationError) -> SignInRefusal {
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
    /// The org signed in to.
    pub org: String,
    /// The member signed in as.
    pub member: String,
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
            .field("member", &self.member)
            .field("second_factor", &self.second_factor)
            .finish_non_exhaustive()
    }
}

/// Providers' discovery documents and keys, and the refusal counters.
#[derive(Default)]
pub(crate) struct SignIns {
    providers: Mutex<HashMap<String, (Instant, Arc<CoreProviderMetadata>)>>,
    refreshed: Mutex<HashMap<String, Instant>>,
    refusals: Mutex<BTreeMap<SignInRefusal, u64>>,
    outbound: OnceLock<Result<Outbound, String>>,
}

impl SignIns {
    fn count(&self, refusal: SignInRefusal) {
        *self
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(refusal)
            .or_default() += 1;
    }

    /// Prometheus text of the refusal counters.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let refusals = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP custos_sign_in_refusals_total Browsers back from an identity provider \
             that were not signed in, by reason.\n# TYPE custos_sign_in_refusals_total counter"
        );
        for (refusal, n) in refusals.iter() {
            let _ = writeln!(
                out,
                "custos_sign_in_refusals_total{{reason=\"{}\"}} {n}",
                refusal.code()
            );
        }
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
    /// Starts a sign-in of one of `org`'s people through the org's identity provider.
    pub async fn start_sign_in(
        &self,
        org: &str,
        return_to: Option<&str>,
        context: &RequestContext,
    ) -> Result<SignInStart, CoreError> {
        let return_to = check_return_to(return_to)?;
        let now = self.now();
        self.check_source(&anonymous(context), now)?;
        let public_url = self.public_url()?;
        // An unknown org and one without sign-in look the same: org ids cannot be probed.
        let no_sign_in = || CoreError::NotFound(format!("sign-in for org {org}"));
        let (scope, row) = self.store.org(org).await?.ok_or_else(no_sign_in)?;
        if row.terminating_since.is_some() {
            return Err(CoreError::OrgTerminated(org.to_string()));
        }
        let provider = self
            .org_settings_of(&scope)
            .await?
            .identity_provider
            .ok_or_else(no_sign_in)?;
        let client = self
            .provider_client(org, &provider, &public_url, false)
            .await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .0
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
            org_id: Some(org.to_string()),
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
        let Some(org) = pending.org_id.clone() else {
            // Operator sign-ins are not started yet; such a row cannot exist.
            return Err(self
                .refuse_sign_in(context, SignInRefusal::StateUnknown, None)
                .await);
        };
        let org = org.as_str();
        if pending.expires_at <= now {
            return Err(self
                .refuse_sign_in(context, SignInRefusal::StateExpired, Some(org))
                .await);
        }
        let same_browser = browser.is_some_and(|b| {
            subtle::ConstantTimeEq::ct_eq(&token_hash(b)[..], &pending.browser_hash[..]).into()
        });
        if !same_browser {
            return Err(self
                .refuse_sign_in(context, SignInRefusal::BrowserMismatch, Some(org))
                .await);
        }
        if callback.error.is_some() {
            return Err(self
                .refuse_sign_in(context, SignInRefusal::ProviderError, Some(org))
                .await);
        }
        let Some(code) = callback.code.clone() else {
            return Err(self
                .refuse_sign_in(context, SignInRefusal::CodeRefused, Some(org))
                .await);
        };
        let Some((scope, _)) = self.store.org(org).await? else {
            return Err(self
                .refuse_sign_in(context, SignInRefusal::ProviderChanged, Some(org))
                .await);
        };
        let settings = self.org_settings_of(&scope).await?;
        let Some(provider) = settings.identity_provider.clone() else {
            return Err(self
                .refuse_sign_in(context, SignInRefusal::ProviderChanged, Some(org))
                .await);
        };
        let public_url = self.public_url()?;
        let client = self
            .provider_client(org, &provider, &public_url, false)
            .await?;
        let exchanged = client
            .0
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| CoreError::internal_from("the provider has no token endpoint", e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(client.1)
            .await;
        let tokens = match exchanged {
            Ok(tokens) => tokens,
            Err(RequestTokenError::ServerResponse(_)) => {
                return Err(self
                    .refuse_sign_in(context, SignInRefusal::CodeRefused, Some(org))
                    .await)
            }
            Err(RequestTokenError::Parse(..)) => {
                return Err(self
                    .refuse_sign_in(context, SignInRefusal::IdTokenInvalid, Some(org))
                    .await)
            }
            Err(e) => return Err(unavailable(&provider, &e)),
        };
        let Some(id_token) = openidconnect::TokenResponse::id_token(&tokens) else {
            return Err(self
                .refuse_sign_in(context, SignInRefusal::IdTokenMissing, Some(org))
                .await);
        };
        let nonce = Nonce::new(pending.nonce.clone());
        let verified = {
            let verifier = client.0.id_token_verifier().set_allowed_algs(ALGORITHMS);
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims = match verified {
            Ok(claims) => claims,
            // Signed by a key not in the keys held: the provider may have rotated them.
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                let fresh = self
                    .provider_client(org, &provider, &public_url, true)
                    .await?;
                let verifier = fresh.0.id_token_verifier().set_allowed_algs(ALGORITHMS);
                match id_token.claims(&verifier, &nonce) {
                    Ok(claims) => claims.clone(),
                    Err(e) => {
                        return Err(self
                            .refuse_sign_in(context, SignInRefusal::of_claims(&e), Some(org))
                            .await)
                    }
                }
            }
            Err(e) => {
                return Err(self
                    .refuse_sign_in(context, SignInRefusal::of_claims(&e), Some(org))
                    .await)
            }
        };
        let person = PersonIdentity {
            iss: claims.issuer().to_string(),
            sub: claims.subject().to_string(),
        };
        let amr: Vec<String> = claims
            .auth_method_refs()
            .map(|methods| methods.iter().map(|m| m.to_string()).collect())
            .unwrap_or_default();
        let second_factor = crate::idp::names_second_factor(&amr);
        let name = claims
            .preferred_username()
            .map(|n| n.to_string())
            .unwrap_or_else(|| format!("{} {}", person.iss, person.sub));
        let member = match self.member_of_person(&scope, &person).await? {
            Some(member) if member.disabled_at.is_some() => {
                return Err(self
                    .refuse_sign_in(context, SignInRefusal::MemberDisabled, Some(org))
                    .await)
            }
            Some(member) => member,
            None => match &provider.jit_role {
                Some(role) => self.provision(context, &scope, person, name, role).await?,
                None => {
                    return Err(self
                        .refuse_sign_in(context, SignInRefusal::UnknownPerson, Some(org))
                        .await)
                }
            },
        };
        self.open_sign_in_session(
            context,
            &scope,
            member,
            second_factor,
            pending.return_to,
            &settings,
        )
        .await
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
        let caller = Caller {
            principal: Principal::Member {
                scope: scope.clone(),
                member: member.clone(),
                auth: Authentication::SignInSession {
                    expires: expires_at,
                    second_factor,
                    token_hash: session.token_hash,
                },
            },
            request_id: context.request_id.clone(),
            client_request_id: context.client_request_id.clone(),
            source: context.source.clone(),
            grant: None,
        };
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
            org: scope.org_id().to_string(),
            member: member.id,
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

    /// The `openidconnect` client of the org's provider (discovered, or from the cache unless
    /// `refresh`), with the HTTP client its requests go through.
    async fn provider_client(
        &self,
        org: &str,
        provider: &IdentityProvider,
        public_url: &str,
        refresh: bool,
    ) -> Result<(ProviderClient, &reqwest::Client), CoreError> {
        let rules = Rules::new(&self.policy.network);
        let issuer_url =
            OutboundUrl::parse(&provider.issuer, &rules).map_err(|e| CoreError::UrlNotAllowed {
                field: "identity_provider.issuer".into(),
                message: e.to_string(),
            })?;
        let outbound = self
            .sign_ins
            .outbound
            .get_or_init(|| Outbound::new(&self.policy.network, PROVIDER_TIMEOUT, CONNECT_TIMEOUT))
            .as_ref()
            .map_err(|e| CoreError::internal(e.clone()))?;
        let http = outbound.client_for(&issuer_url);
        let metadata = self.provider_metadata(provider, http, refresh).await?;
        let secret = self.open_client_secret(org, provider).await?;
        let redirect = RedirectUrl::new(format!("{public_url}{CALLBACK_PATH}"))
            .map_err(|e| CoreError::internal_from("the sign-in redirect URI", e))?;
        let client = CoreClient::from_provider_metadata(
            (*metadata).clone(),
            ClientId::new(provider.sign_in_client_id().to_string()),
            secret.map(|s| ClientSecret::new(s.to_string())),
        )
        .set_redirect_uri(redirect);
        Ok((client, http))
    }

    /// The provider's discovery document and keys: cached for [`METADATA_TTL`]; `refresh`
    /// fetches them again unless that was done less than [`REFRESH_COOLDOWN`] ago.
    async fn provider_metadata(
        &self,
        provider: &IdentityProvider,
        http: &reqwest::Client,
        refresh: bool,
    ) -> Result<Arc<CoreProviderMetadata>, CoreError> {
        let issuer = &provider.issuer;
        let cached = self
            .sign_ins
            .providers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(issuer)
            .filter(|(at, _)| at.elapsed() < METADATA_TTL)
            .map(|(_, m)| m.clone());
        let may_refresh = refresh && {
            let mut refreshed = self
                .sign_ins
                .refreshed
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let due = refreshed
                .get(issuer)
                .is_none_or(|at| at.elapsed() >= REFRESH_COOLDOWN);
            if due {
                refreshed.insert(issuer.clone(), Instant::now());
            }
            due
        };
        if let Some(metadata) = cached.filter(|_| !may_refresh) {
            return Ok(metadata);
        }
        let issuer_url = IssuerUrl::new(issuer.clone())
            .map_err(|e| CoreError::invalid("identity_provider.issuer", e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer_url, http)
            .await
            .map_err(|e| unavailable(provider, &e))?;
        let metadata = Arc::new(metadata);
        self.sign_ins
            .providers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(issuer.clone(), (Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    /// Signs out: ends the session `token` is (audited as `auth.sign_out`). Anything else
    /// (an API key, an unknown or expired session) ends nothing and is not an error.
    pub async fn sign_out(&self, token: &str, context: &RequestContext) -> Result<(), CoreError> {
        if !token.starts_with(SESSION_PREFIX) {
            return Ok(());
        }
        let hash = token_hash(token);
        let Some((scope, member, session)) = self.store.session(&hash, self.now()).await? else {
            return Ok(());
        };
        let caller = Caller {
            principal: Principal::Member {
                scope: scope.clone(),
                member: member.clone(),
                auth: Authentication::SignInSession {
                    expires: session.expires_at,
                    second_factor: session.second_factor,
                    token_hash: hash,
                },
            },
            request_id: context.request_id.clone(),
            client_request_id: context.client_request_id.clone(),
            source: context.source.clone(),
            grant: None,
        };
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
    Caller {
        principal: Principal::System,
        request_id: context.request_id.clone(),
        client_request_id: context.client_request_id.clone(),
        source: context.source.clone(),
        grant: None,
    }
}

/// The provider could not be reached or answered nonsense (logged with its cause; the
/// answer names only the issuer).
fn unavailable(provider: &IdentityProvider, error: &dyn std::error::Error) -> CoreError {
    tracing::warn!(issuer = %provider.issuer, error = %error_chain(error), "identity provider unavailable");
    CoreError::IdentityProviderUnavailable(provider.issuer.clone())
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
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), all.len());
    }
}
