//! The OpenID provider side of a sign-in: discovery and keys (cached, refetched once when an
//! ID token names a key Custos does not hold), the code exchange with the PKCE verifier, and
//! the ID token's checks, all by the `openidconnect` crate over the outbound guard's client.
//!
//! Not here: what a verified person becomes (a member's or an operator's session), which is
//! [`crate::sign_in`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use custos_store::PersonIdentity;
use openidconnect::core::{CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, SignatureVerificationError,
};
use zeroize::Zeroizing;

use crate::outbound::{error_chain, Outbound, OutboundUrl, Rules};
use crate::sign_in::{SignInRefusal, CALLBACK_PATH};
use crate::{CoreError, Custos};

/// How long a provider's discovery document and keys are used before they are fetched again.
const METADATA_TTL: Duration = Duration::from_secs(300);
/// Shortest time between two refetches of a provider's keys for an ID token signed by a key
/// Custos does not hold (the provider rotated its keys), per issuer.
const REFRESH_COOLDOWN: Duration = Duration::from_secs(10);
/// Bound on one request to the provider (discovery, keys, code exchange).
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on connecting to the provider.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
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
pub(crate) type ProviderClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A provider people sign in through, and this deployment's client there.
pub(crate) struct Provider {
    /// Its issuer.
    pub issuer: String,
    /// Where the issuer was configured (`identity_provider.issuer`, or the policy's
    /// `[operators.identity_provider] issuer`), for errors.
    pub field: &'static str,
    /// This deployment's client id.
    pub client_id: String,
    /// The client secret, if the client has one.
    pub secret: Option<Zeroizing<String>>,
}

/// What a verified ID token says about the person.
pub(crate) struct Verified {
    /// The person (`iss` + `sub`).
    pub person: PersonIdentity,
    /// Whether its `amr` names a second factor.
    pub second_factor: bool,
    /// A display name for a member made at this sign-in (`preferred_username`, else the
    /// person's `iss` and `sub`).
    pub name: String,
}

/// Why a code did not become a verified person.
pub(crate) enum Failure {
    /// The sign-in is refused (audited by the caller).
    Refused(SignInRefusal),
    /// Something else failed (the provider is unreachable, ...).
    Error(CoreError),
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Self {
        Failure::Error(e)
    }
}

/// Providers' discovery documents and keys, and the sign-in refusal counters.
#[derive(Default)]
pub(crate) struct SignIns {
    providers: Mutex<HashMap<String, (Instant, Arc<CoreProviderMetadata>)>>,
    refreshed: Mutex<HashMap<String, Instant>>,
    refusals: Mutex<BTreeMap<SignInRefusal, u64>>,
    outbound: OnceLock<Result<Outbound, String>>,
}

impl SignIns {
    /// Counts a refusal.
    pub(crate) fn count(&self, refusal: SignInRefusal) {
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

impl Custos {
    /// The `openidconnect` client of `provider` (discovered, or from the cache unless
    /// `refresh`), with the HTTP client its requests go through.
    pub(crate) async fn provider_client(
        &self,
        provider: &Provider,
        public_url: &str,
        refresh: bool,
    ) -> Result<(ProviderClient, &reqwest::Client), CoreError> {
        let rules = Rules::new(&self.policy.network);
        let issuer_url =
            OutboundUrl::parse(&provider.issuer, &rules).map_err(|e| CoreError::UrlNotAllowed {
                field: provider.field.into(),
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
        let redirect = RedirectUrl::new(format!("{public_url}{CALLBACK_PATH}"))
            .map_err(|e| CoreError::internal_from("the sign-in redirect URI", e))?;
        let client = CoreClient::from_provider_metadata(
            (*metadata).clone(),
            ClientId::new(provider.client_id.clone()),
            provider
                .secret
                .as_ref()
                .map(|s| ClientSecret::new(s.to_string())),
        )
        .set_redirect_uri(redirect);
        Ok((client, http))
    }

    /// Exchanges `code` (with the PKCE `verifier`) at `provider` and checks the ID token
    /// against `nonce`.
    pub(crate) async fn verified_person(
        &self,
        provider: &Provider,
        public_url: &str,
        code: String,
        verifier: String,
        nonce: String,
    ) -> Result<Verified, Failure> {
        let (client, http) = self.provider_client(provider, public_url, false).await?;
        let exchanged = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| CoreError::internal_from("the provider has no token endpoint", e))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
            .request_async(http)
            .await;
        let tokens = match exchanged {
            Ok(tokens) => tokens,
            Err(RequestTokenError::ServerResponse(_)) => {
                return Err(Failure::Refused(SignInRefusal::CodeRefused))
            }
            Err(RequestTokenError::Parse(..)) => {
                return Err(Failure::Refused(SignInRefusal::IdTokenInvalid))
            }
            Err(e) => return Err(unavailable(provider, &e).into()),
        };
        let Some(id_token) = openidconnect::TokenResponse::id_token(&tokens) else {
            return Err(Failure::Refused(SignInRefusal::IdTokenMissing));
        };
        let nonce = Nonce::new(nonce);
        let verified = {
            let verifier = client.id_token_verifier().set_allowed_algs(ALGORITHMS);
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims = match verified {
            Ok(claims) => claims,
            // Signed by a key not in the keys held: the provider may have rotated them.
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                let (fresh, _) = self.provider_client(provider, public_url, true).await?;
                let verifier = fresh.id_token_verifier().set_allowed_algs(ALGORITHMS);
                id_token
                    .claims(&verifier, &nonce)
                    .cloned()
                    .map_err(|e| Failure::Refused(SignInRefusal::of_claims(&e)))?
            }
            Err(e) => return Err(Failure::Refused(SignInRefusal::of_claims(&e))),
        };
        let person = PersonIdentity {
            iss: claims.issuer().to_string(),
            sub: claims.subject().to_string(),
        };
        let amr: Vec<String> = claims
            .auth_method_refs()
            .map(|methods| methods.iter().map(|m| m.to_string()).collect())
            .unwrap_or_default();
        let name = claims
            .preferred_username()
            .map(|n| n.to_string())
            .unwrap_or_else(|| format!("{} {}", person.iss, person.sub));
        Ok(Verified {
            second_factor: crate::idp::names_second_factor(&amr),
            person,
            name,
        })
    }

    /// The provider's discovery document and keys: cached for [`METADATA_TTL`]; `refresh`
    /// fetches them again unless that was done less than [`REFRESH_COOLDOWN`] ago.
    async fn provider_metadata(
        &self,
        provider: &Provider,
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
            .map_err(|e| CoreError::invalid(provider.field, e.to_string()))?;
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
}

/// The provider could not be reached or answered nonsense (logged with its cause; the
/// answer names only the issuer).
fn unavailable(provider: &Provider, error: &dyn std::error::Error) -> CoreError {
    tracing::warn!(issuer = %provider.issuer, error = %error_chain(error), "identity provider unavailable");
    CoreError::IdentityProviderUnavailable(provider.issuer.clone())
}
