//! Identity-provider ID tokens as a second factor.
//!
//! An application acting for its signed-in user sends its member API key plus the org's
//! identity-provider ID token (a JWT). The token counts as a second factor when it is signed
//! by one of the provider's published keys with an asymmetric algorithm, carries the org's
//! configured `iss` and `aud`, is within `nbf`..`exp` (60 s leeway) by this deployment's
//! clock, and its `amr` (RFC 8176) names a second factor: see [`names_second_factor`].
//!
//! Verification is a plain function over a key set ([`verify_identity_token`]); the keys come
//! from a [`KeySource`] (HTTP by default) through a per-org cache with a TTL that is
//! refetched once when a token names a key id it does not hold (the provider rotated keys),
//! at most once per [`REFETCH_COOLDOWN`] so that tokens with made-up key ids cannot make
//! Custos hammer the provider.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::future::BoxFuture;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::outbound::{error_chain, Outbound, OutboundUrl, Rules};
use crate::settings::IdentityProvider;
use custos_store::PersonIdentity;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: i64 = 60;
/// How long a fetched key set is used before it is fetched again.
const JWKS_TTL: Duration = Duration::from_secs(300);
/// Shortest time between two refetches for unknown key ids, per org.
pub const REFETCH_COOLDOWN: Duration = Duration::from_secs(10);
/// Bounds on one key-set fetch: a slow provider must not hold requests.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on connecting to the provider.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest key-set document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Largest token accepted (real ID tokens are a few KiB).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The `amr` values (RFC 8176) that prove a factor other than something the user knows:
/// one-time codes, hardware or software keys, SMS, and biometrics.
pub const SECOND_FACTOR_METHODS: &[&str] =
    &["otp", "hwk", "swk", "sms", "fpt", "face", "iris", "retina"];

/// Why an identity token was refused; [`TokenRefusal::code`] is what the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// The bearer credential is not a member's API key (the admin token, a session).
    NotMemberKey,
    /// The member's org has no identity provider configured.
    NoIdentityProvider,
    /// Not a compact JWS with a JSON header and claims.
    Malformed,
    /// The header's `alg` is absent, `none`, symmetric (HS*) or unknown.
    Algorithm,
    /// No key of the provider's key set matches the token's `kid` and `alg`.
    UnknownKey,
    /// The signature does not verify with the provider's key.
    Signature,
    /// `iss` is missing or not the configured issuer.
    Issuer,
    /// `aud` is missing or does not name the configured audience.
    Audience,
    /// `exp` (plus leeway) has passed, or the token has no `exp`.
    Expired,
    /// `nbf` (minus leeway) has not come yet.
    NotYetValid,
    /// `amr` names no second factor.
    NoSecondFactor,
    /// The provider's key set could not be fetched or parsed.
    KeysUnavailable,
    /// `sub` is missing or empty.
    NoSubject,
    /// The token is valid but names another person than the one the member is bound to (or
    /// the member is bound to nobody and is not a `service` member).
    OtherPerson,
}

impl TokenRefusal {
    /// The short, stable reason code (never the token or its claims).
    pub fn code(&self) -> &'static str {
        match self {
            TokenRefusal::NotMemberKey => "not_member_key",
            TokenRefusal::NoIdentityProvider => "no_identity_provider",
            TokenRefusal::Malformed => "malformed",
            TokenRefusal::Algorithm => "algorithm_refused",
            TokenRefusal::UnknownKey => "unknown_key",
            TokenRefusal::Signature => "bad_signature",
            TokenRefusal::Issuer => "wrong_issuer",
            TokenRefusal::Audience => "wrong_audience",
            TokenRefusal::Expired => "expired",
            TokenRefusal::NotYetValid => "not_yet_valid",
            TokenRefusal::NoSecondFactor => "no_second_factor",
            TokenRefusal::KeysUnavailable => "jwks_unavailable",
            TokenRefusal::NoSubject => "no_subject",
            TokenRefusal::OtherPerson => "identity_mismatch",
        }
    }
}

/// Whether `amr` proves a second factor: it contains `mfa`, or at least one of
/// [`SECOND_FACTOR_METHODS`] (alone or with anything else, e.g. `["pwd", "otp"]`). Knowledge
/// factors alone (`pwd`, `pin`, `kba`) and other values never count.
pub fn names_second_factor(amr: &[String]) -> bool {
    amr.iter()
        .any(|m| m == "mfa" || SECOND_FACTOR_METHODS.contains(&m.as_str()))
}

/// The claims Custos reads itself; `iss` and `aud` are checked by the JWT crate.
#[derive(Deserialize)]
struct Claims {
    iss: String,
    #[serde(default)]
    sub: String,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    amr: Vec<String>,
}

/// The asymmetric algorithm and key id of a token's header. The header is read by hand first
/// so that `alg: none` and symmetric algorithms are refused by name before any key is used.
pub fn token_header(token: &str) -> Result<(Algorithm, Option<String>), TokenRefusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenRefusal::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenRefusal::Malformed);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenRefusal::Malformed)?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| TokenRefusal::Malformed)?;
    let alg = match header.get("alg").and_then(|a| a.as_str()) {
        Some("RS256") => Algorithm::RS256,
        Some("RS384") => Algorithm::RS384,
        Some("RS512") => Algorithm::RS512,
        Some("PS256") => Algorithm::PS256,
        Some("PS384") => Algorithm::PS384,
        Some("PS512") => Algorithm::PS512,
        Some("ES256") => Algorithm::ES256,
        Some("ES384") => Algorithm::ES384,
        Some("EdDSA") => Algorithm::EdDSA,
        _ => return Err(TokenRefusal::Algorithm),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(serde_json::Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(TokenRefusal::Malformed),
    };
    Ok((alg, kid))
}

/// Parses a JWKS document, keeping the keys this crate can read (a provider may publish
/// encryption keys or key types Custos does not use).
pub fn parse_jwks(bytes: &[u8]) -> Result<JwkSet, String> {
    #[derive(Deserialize)]
    struct Raw {
        keys: Vec<serde_json::Value>,
    }
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS: {e}"))?;
    let keys = raw
        .keys
        .into_iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
        .collect();
    Ok(JwkSet { keys })
}

/// Whether `jwk` is a signing key of the kind `alg` needs (symmetric keys never are).
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return false;
    }
    if let Some(key_alg) = jwk.common.key_algorithm {
        // Both print the JOSE name (`EdDSA`, `RS256`, ...); a key pinned to another
        // algorithm must not verify this one.
        if key_alg.to_string() != format!("{alg:?}") {
            return false;
        }
    }
    match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), a) => matches!(
            a,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    }
}

/// The key that signed a token: the one with its `kid`, or the only fitting key when the
/// token names none.
pub(crate) fn select_key<'a>(
    keys: &'a JwkSet,
    alg: Algorithm,
    kid: Option<&str>,
) -> Option<&'a Jwk> {
    let mut fitting = keys.keys.iter().filter(|k| key_fits(k, alg));
    match kid {
        Some(kid) => fitting.find(|k| k.common.key_id.as_deref() == Some(kid)),
        None => match (fitting.next(), fitting.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        },
    }
}

/// Maps the JWT crate's refusals onto reason codes.
pub(crate) fn refusal_of(kind: &ErrorKind) -> TokenRefusal {
    match kind {
        ErrorKind::InvalidSignature => TokenRefusal::Signature,
        ErrorKind::InvalidIssuer => TokenRefusal::Issuer,
        ErrorKind::InvalidAudience => TokenRefusal::Audience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => TokenRefusal::Issuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => TokenRefusal::Audience,
        ErrorKind::MissingRequiredClaim(c) if c == "sub" => TokenRefusal::NoSubject,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => TokenRefusal::Algorithm,
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => TokenRefusal::UnknownKey,
        _ => TokenRefusal::Malformed,
    }
}

/// Verifies `token` against the provider `idp` with its key set `keys` at `now` (Unix
/// seconds): signature, `iss`, `aud`, `exp`/`nbf` with [`LEEWAY_SECONDS`], and a second
/// factor in `amr`. Returns the person the token is about (`iss` + `sub`).
pub fn verify_identity_token(
    token: &str,
    idp: &IdentityProvider,
    keys: &JwkSet,
    now: i64,
) -> Result<PersonIdentity, TokenRefusal> {
    let (alg, kid) = token_header(token)?;
    let jwk = select_key(keys, alg, kid.as_deref()).ok_or(TokenRefusal::UnknownKey)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| TokenRefusal::UnknownKey)?;
    let mut validation = Validation::new(alg);
    // Time is checked below against the deployment's clock, not the system's.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["iss", "aud", "sub"]);
    validation.set_issuer(&[&idp.issuer]);
    validation.set_audience(&[&idp.audience]);
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map_err(|e| refusal_of(e.kind()))?;
    let claims = data.claims;
    match claims.exp {
        Some(exp) if now <= exp.saturating_add(LEEWAY_SECONDS) => {}
        _ => return Err(TokenRefusal::Expired),
    }
    if claims
        .nbf
        .is_some_and(|nbf| now < nbf.saturating_sub(LEEWAY_SECONDS))
    {
        return Err(TokenRefusal::NotYetValid);
    }
    if !names_second_factor(&claims.amr) {
        return Err(TokenRefusal::NoSecondFactor);
    }
    if claims.sub.is_empty() {
        return Err(TokenRefusal::NoSubject);
    }
    Ok(PersonIdentity {
        iss: claims.iss,
        sub: claims.sub,
    })
}

/// Where an identity provider's key set comes from (HTTP in production; tests may feed keys).
pub trait KeySource: Send + Sync {
    /// Fetches and parses the key set published at `jwks_uri`; the error says why, for logs.
    fn fetch<'a>(&'a self, jwks_uri: &'a str) -> BoxFuture<'a, Result<JwkSet, String>>;
}

/// Fetches key sets over HTTP(S) with bounded timeouts and no redirects, under the outbound
/// rules of [`crate::outbound`]: the URL is checked again at each fetch (the policy's
/// `[network] allow` may have changed since the setting was stored) and every address its
/// host resolves to is checked before connecting.
#[derive(Default)]
pub struct HttpKeySource {
    network: custos_policy::Network,
    client: OnceLock<Result<Outbound, String>>,
}

impl HttpKeySource {
    /// A key source under the policy's `[network]` rules.
    pub fn new(network: custos_policy::Network) -> Self {
        HttpKeySource {
            network,
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<&Outbound, String> {
        self.client
            .get_or_init(|| Outbound::new(&self.network, FETCH_TIMEOUT, CONNECT_TIMEOUT))
            .as_ref()
            .map_err(Clone::clone)
    }

    async fn get(&self, jwks_uri: &str) -> Result<JwkSet, String> {
        // Refused before any connection: nothing is sent for a URL the rules do not allow.
        let url = OutboundUrl::parse(jwks_uri, &Rules::new(&self.network))
            .map_err(|e| format!("jwks_uri {e}"))?;
        let origin = url.origin();
        let response = self
            .client()?
            .get(&url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("fetching keys from {origin}: {}", error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(format!("{origin} answered {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(format!(
                "{origin}: key set larger than {MAX_JWKS_BYTES} bytes"
            ));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading keys from {origin}: {}", error_chain(&e)))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "{origin}: key set larger than {MAX_JWKS_BYTES} bytes"
            ));
        }
        parse_jwks(&body)
    }
}

impl KeySource for HttpKeySource {
    fn fetch<'a>(&'a self, jwks_uri: &'a str) -> BoxFuture<'a, Result<JwkSet, String>> {
        Box::pin(self.get(jwks_uri))
    }
}

/// One org's fetched key set.
struct CachedKeys {
    jwks_uri: String,
    fetched: Instant,
    /// When a token with an unknown key id last made a refetch.
    refetched: Option<Instant>,
    keys: Arc<JwkSet>,
}

/// Key sets per org, reused for [`JWKS_TTL`] (and refetched at once when the org points at
/// another URL).
pub struct JwksCache {
    source: Arc<dyn KeySource>,
    entries: Mutex<HashMap<String, CachedKeys>>,
}

impl Default for JwksCache {
    fn default() -> Self {
        JwksCache::new(Arc::new(HttpKeySource::default()))
    }
}

impl JwksCache {
    /// An empty cache over `source`.
    pub fn new(source: Arc<dyn KeySource>) -> Self {
        JwksCache {
            source,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The org's key set and whether it was fetched just now: cached while fresh unless
    /// `refresh`, else fetched.
    async fn keys(
        &self,
        org: &str,
        jwks_uri: &str,
        refresh: bool,
    ) -> Result<(Arc<JwkSet>, bool), TokenRefusal> {
        if !refresh {
            if let Some(keys) = self.fresh(org, jwks_uri) {
                return Ok((keys, false));
            }
        }
        let keys = match self.source.fetch(jwks_uri).await {
            Ok(keys) => Arc::new(keys),
            Err(e) => {
                // The URL is org configuration, not personal data; the token is not logged.
                tracing::warn!(org, error = %e, "identity provider keys unavailable");
                return Err(TokenRefusal::KeysUnavailable);
            }
        };
        let now = Instant::now();
        let mut entries = self.lock();
        let refetched = match refresh {
            true => Some(now),
            false => entries.get(org).and_then(|e| e.refetched),
        };
        let entry = CachedKeys {
            jwks_uri: jwks_uri.to_string(),
            fetched: now,
            refetched,
            keys: keys.clone(),
        };
        entries.insert(org.to_string(), entry);
        Ok((keys, true))
    }

    fn fresh(&self, org: &str, jwks_uri: &str) -> Option<Arc<JwkSet>> {
        self.lock()
            .get(org)
            .filter(|e| e.jwks_uri == jwks_uri && e.fetched.elapsed() < JWKS_TTL)
            .map(|e| e.keys.clone())
    }

    /// Whether an unknown key id may refetch the org's keys now.
    fn may_refetch(&self, org: &str) -> bool {
        self.lock()
            .get(org)
            .and_then(|e| e.refetched)
            .is_none_or(|t| t.elapsed() >= REFETCH_COOLDOWN)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedKeys>> {
        // A panic while holding the map cannot leave it inconsistent: entries are whole.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Verifies `token` for `org` with the cached keys; a token naming a key the cache does
    /// not hold makes one refetch (the provider may have rotated its keys), unless the keys
    /// were just fetched or another refetch happened within [`REFETCH_COOLDOWN`].
    pub async fn verify(
        &self,
        org: &str,
        idp: &IdentityProvider,
        token: &str,
        now: i64,
    ) -> Result<PersonIdentity, TokenRefusal> {
        // Unsigned and symmetric tokens are refused before any fetch.
        token_header(token)?;
        let (keys, fetched) = self.keys(org, &idp.jwks_uri, false).await?;
        match verify_identity_token(token, idp, &keys, now) {
            Err(TokenRefusal::UnknownKey) if !fetched && self.may_refetch(org) => {
                let (keys, _) = self.keys(org, &idp.jwks_uri, true).await?;
                verify_identity_token(token, idp, &keys, now)
            }
            outcome => outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const NOW: i64 = 1_800_000_000;

    fn provider() -> IdentityProvider {
        IdentityProvider {
            issuer: "https://idp.example.com".into(),
            audience: "custos-client".into(),
            jwks_uri: "https://idp.example.com/jwks.json".into(),
            client_id: None,
            client_secret: None,
            jit_role: None,
        }
    }

    /// A signing key (from `seed`) and its public JWK named `kid`.
    fn key(seed: u8, kid: &str) -> (EncodingKey, Jwk) {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let der = sk.to_pkcs8_der().expect("pkcs8");
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sk.verifying_key());
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"});
        (
            EncodingKey::from_ed_der(der.as_bytes()),
            serde_json::from_value(jwk).expect("jwk"),
        )
    }

    fn claims() -> Value {
        json!({"iss": "https://idp.example.com", "aud": "custos-client", "sub": "u1",
               "exp": NOW + 300, "iat": NOW, "amr": ["pwd", "otp"]})
    }

    /// The person [`claims`] names.
    fn person() -> Result<PersonIdentity, TokenRefusal> {
        Ok(PersonIdentity {
            iss: "https://idp.example.com".into(),
            sub: "u1".into(),
        })
    }

    fn sign(enc: &EncodingKey, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, enc).expect("sign")
    }

    fn set(keys: Vec<Jwk>) -> JwkSet {
        JwkSet { keys }
    }

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn second_factor_rule() {
        let amr = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(names_second_factor(&amr(&["pwd", "otp"])));
        assert!(names_second_factor(&amr(&["mfa"])));
        assert!(names_second_factor(&amr(&["hwk"])));
        assert!(names_second_factor(&amr(&["face", "pwd"])));
        assert!(!names_second_factor(&amr(&["pwd"])));
        assert!(!names_second_factor(&amr(&["pwd", "pin", "kba"])));
        assert!(!names_second_factor(&amr(&["OTP"])));
        assert!(!names_second_factor(&[]));
    }

    #[test]
    fn unsigned_symmetric_and_malformed_headers_are_refused() {
        let body = b64(&claims());
        let token = |h: Value| format!("{}.{body}.", b64(&h));
        assert_eq!(
            token_header(&token(json!({"alg": "none"}))),
            Err(TokenRefusal::Algorithm)
        );
        assert_eq!(
            token_header(&token(json!({"alg": "HS256", "kid": "k"}))),
            Err(TokenRefusal::Algorithm)
        );
        assert_eq!(
            token_header(&token(json!({"typ": "JWT"}))),
            Err(TokenRefusal::Algorithm)
        );
        assert_eq!(
            token_header(&token(json!({"alg": "EdDSA", "kid": 7}))),
            Err(TokenRefusal::Malformed)
        );
        assert_eq!(token_header("abc.def"), Err(TokenRefusal::Malformed));
        assert_eq!(token_header("!!.a.b"), Err(TokenRefusal::Malformed));
        assert_eq!(
            token_header(&token(json!({"alg": "ES256", "kid": "k"}))),
            Ok((Algorithm::ES256, Some("k".into())))
        );
    }

    #[test]
    fn a_valid_token_verifies() {
        let (enc, jwk) = key(1, "k1");
        let token = sign(&enc, "k1", &claims());
        assert_eq!(
            verify_identity_token(&token, &provider(), &set(vec![jwk]), NOW),
            person()
        );
    }

    #[test]
    fn each_claim_is_checked() {
        let (enc, jwk) = key(1, "k1");
        let keys = set(vec![jwk]);
        let check = |change: &dyn Fn(&mut Value), now: i64| {
            let mut c = claims();
            change(&mut c);
            verify_identity_token(&sign(&enc, "k1", &c), &provider(), &keys, now)
        };
        let exp = NOW + 300;
        assert_eq!(check(&|_| {}, exp + LEEWAY_SECONDS), person());
        assert_eq!(
            check(&|_| {}, exp + LEEWAY_SECONDS + 1),
            Err(TokenRefusal::Expired)
        );
        let no_exp = |c: &mut Value| {
            c.as_object_mut().unwrap().remove("exp");
        };
        assert_eq!(check(&no_exp, NOW), Err(TokenRefusal::Expired));
        let later = |c: &mut Value| c["nbf"] = json!(NOW + 120);
        assert_eq!(check(&later, NOW), Err(TokenRefusal::NotYetValid));
        assert_eq!(check(&later, NOW + 60), person());
        let aud = |c: &mut Value| c["aud"] = json!(["other", "another"]);
        assert_eq!(check(&aud, NOW), Err(TokenRefusal::Audience));
        let aud_list = |c: &mut Value| c["aud"] = json!(["other", "custos-client"]);
        assert_eq!(check(&aud_list, NOW), person());
        let no_aud = |c: &mut Value| {
            c.as_object_mut().unwrap().remove("aud");
        };
        assert_eq!(check(&no_aud, NOW), Err(TokenRefusal::Audience));
        let iss = |c: &mut Value| c["iss"] = json!("https://evil.example.com");
        assert_eq!(check(&iss, NOW), Err(TokenRefusal::Issuer));
        let pwd = |c: &mut Value| c["amr"] = json!(["pwd"]);
        assert_eq!(check(&pwd, NOW), Err(TokenRefusal::NoSecondFactor));
        let no_amr = |c: &mut Value| {
            c.as_object_mut().unwrap().remove("amr");
        };
        assert_eq!(check(&no_amr, NOW), Err(TokenRefusal::NoSecondFactor));
        // Without a subject the token names nobody a member could be bound to.
        let no_sub = |c: &mut Value| {
            c.as_object_mut().unwrap().remove("sub");
        };
        assert_eq!(check(&no_sub, NOW), Err(TokenRefusal::NoSubject));
        let empty_sub = |c: &mut Value| c["sub"] = json!("");
        assert_eq!(check(&empty_sub, NOW), Err(TokenRefusal::NoSubject));
    }

    #[test]
    fn keys_must_match_kid_kind_and_signature() {
        let (enc, _) = key(1, "k1");
        let (_, other) = key(2, "k1");
        let token = sign(&enc, "k1", &claims());
        // Another key published under the same kid: the signature does not verify.
        assert_eq!(
            verify_identity_token(&token, &provider(), &set(vec![other]), NOW),
            Err(TokenRefusal::Signature)
        );
        let (_, k2) = key(1, "k2");
        assert_eq!(
            verify_identity_token(&token, &provider(), &set(vec![k2]), NOW),
            Err(TokenRefusal::UnknownKey)
        );
        // The right key pinned to another algorithm, or marked for encryption, does not count.
        let (_, mut pinned) = key(1, "k1");
        pinned.common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::ES256);
        let (_, mut enc_use) = key(1, "k1");
        enc_use.common.public_key_use = Some(PublicKeyUse::Encryption);
        for jwk in [pinned, enc_use] {
            assert_eq!(
                verify_identity_token(&token, &provider(), &set(vec![jwk]), NOW),
                Err(TokenRefusal::UnknownKey)
            );
        }
        // A symmetric key in the set never verifies anything, even with an asymmetric alg.
        let oct: Jwk = serde_json::from_value(json!({"kty": "oct", "k": "c2VjcmV0", "kid": "k1"}))
            .expect("oct jwk");
        assert_eq!(
            verify_identity_token(&token, &provider(), &set(vec![oct]), NOW),
            Err(TokenRefusal::UnknownKey)
        );
    }

    #[test]
    fn jwks_parsing_skips_unreadable_keys() {
        let (_, jwk) = key(1, "k1");
        let doc = json!({"keys": [{"kty": "weird"}, jwk]});
        let keys = parse_jwks(doc.to_string().as_bytes()).expect("jwks");
        assert_eq!(keys.keys.len(), 1);
        assert!(parse_jwks(b"[]").is_err());
    }

    /// A key source whose keys the test changes, counting fetches.
    struct Feed {
        keys: Mutex<Vec<Jwk>>,
        fetches: AtomicUsize,
    }

    impl KeySource for Feed {
        fn fetch<'a>(&'a self, _uri: &'a str) -> BoxFuture<'a, Result<JwkSet, String>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let keys = self.keys.lock().unwrap().clone();
            Box::pin(async move { Ok(JwkSet { keys }) })
        }
    }

    #[tokio::test]
    async fn the_cache_refetches_once_for_an_unknown_kid() {
        let (enc1, jwk1) = key(1, "k1");
        let (enc2, jwk2) = key(2, "k2");
        let feed = Arc::new(Feed {
            keys: Mutex::new(vec![jwk1]),
            fetches: AtomicUsize::new(0),
        });
        let cache = JwksCache::new(feed.clone());
        let fetches = || feed.fetches.load(Ordering::SeqCst);
        let t1 = sign(&enc1, "k1", &claims());
        let t2 = sign(&enc2, "k2", &claims());
        // Cold cache and an unknown kid: the one fetch just made is not repeated.
        assert_eq!(
            cache.verify("o", &provider(), &t2, NOW).await,
            Err(TokenRefusal::UnknownKey)
        );
        assert_eq!(fetches(), 1);
        assert_eq!(cache.verify("o", &provider(), &t1, NOW).await, person());
        assert_eq!(fetches(), 1, "fresh keys are reused");
        // The provider rotates: the unknown kid makes one refetch, which finds it.
        feed.keys.lock().unwrap().push(jwk2);
        assert_eq!(cache.verify("o", &provider(), &t2, NOW).await, person());
        assert_eq!(fetches(), 2);
        let (enc3, _) = key(3, "k3");
        let t3 = sign(&enc3, "k3", &claims());
        assert_eq!(
            cache.verify("o", &provider(), &t3, NOW).await,
            Err(TokenRefusal::UnknownKey)
        );
        assert_eq!(fetches(), 2, "no second refetch within the cooldown");
        // Another org's cache entry is its own.
        assert_eq!(cache.verify("p", &provider(), &t1, NOW).await, person());
        assert_eq!(fetches(), 3);
        assert_eq!(
            cache.verify("p", &provider(), &t3, NOW).await,
            Err(TokenRefusal::UnknownKey)
        );
        assert_eq!(fetches(), 4, "the first unknown kid of an org refetches");
        // An unsigned token is refused without touching the keys.
        let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims()));
        assert_eq!(
            cache.verify("q", &provider(), &none, NOW).await,
            Err(TokenRefusal::Algorithm)
        );
        assert_eq!(fetches(), 4);
        // Once the cooldown has passed, an unknown kid refetches again.
        cache.lock().get_mut("o").unwrap().refetched = Some(Instant::now() - REFETCH_COOLDOWN);
        assert_eq!(
            cache.verify("o", &provider(), &t3, NOW).await,
            Err(TokenRefusal::UnknownKey)
        );
        assert_eq!(fetches(), 5);
    }
}
