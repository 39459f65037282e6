//! The privacy center's signed links: the org's application sends its end user to
//! `/privacy/{org}?token=<JWT>`, a JWT it signs with a key the org registered in its
//! `privacy_center` setting (EdDSA or ES256), naming the subject (`sub`, the identifier the
//! app stores), the org (`aud`), a short life (`exp` at most 15 minutes ahead) and a one-time
//! id (`jti`, refused the second time). This module checks the setting and the links; the
//! pages that follow a link are built on it.
//!
//! Not for: the identity provider's ID tokens (`idp.rs`, whose key handling this reuses).

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use custos_audit::{Actor, AuditAction, AuditEvent, Details, Outcome};

use crate::idp::{refusal_of, select_key, token_header, TokenRefusal, LEEWAY_SECONDS};
use crate::{CoreError, Custos, RequestContext};

/// The longest a link may live, from its verification to its `exp`, in seconds.
pub const MAX_LINK_LIFETIME_SECONDS: i64 = 15 * 60;
/// The most keys an org may register.
const MAX_LINK_KEYS: usize = 5;
/// The most origins that may embed the privacy center.
const MAX_FRAME_ANCESTORS: usize = 10;
/// The longest `jti` accepted.
const MAX_JTI_CHARS: usize = 128;
/// What a privacy-center session token starts with.
pub const PRIVACY_SESSION_PREFIX: &str = "cupc_";
/// How long a privacy-center session lasts.
pub const PRIVACY_SESSION_LIFETIME: jiff::SignedDuration = jiff::SignedDuration::from_mins(30);
/// The part name of a session's sealed subject in its associated data.
const SESSION_SUBJECT_PART: &str = "privacy-session-subject";

/// The org's privacy center (the setting `privacy_center`).
// Defaults per field, not for the container: a container default would put the nested
// `colors` object's default in the schema, which generated clients cannot take.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyCenter {
    /// Public keys (JWK: `OKP`/`Ed25519` or `EC`/`P-256`, at most 5, no private parts) the
    /// org's application signs privacy-center links with.
    #[schema(value_type = Vec<Object>)]
    #[serde(default)]
    pub link_keys: Vec<serde_json::Value>,
    /// Origins allowed to embed the privacy center in a frame (`https://app.example.com`;
    /// plain `http` only for `localhost` and `127.0.0.1`), at most 10.
    #[serde(default)]
    pub frame_ancestors: Vec<String>,
    /// Send a one-time code to the subject's e-mail address as a second step after a link
    /// (not available yet: `true` is refused).
    #[serde(default)]
    pub email_codes: bool,
    /// The page's colors.
    #[serde(default)]
    pub colors: PrivacyColors,
}

/// The privacy center's colors (`#rrggbb`); unset ones keep Custos's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyColors {
    /// Buttons, links and the header's rule.
    pub accent: Option<String>,
    /// The page's background.
    pub background: Option<String>,
}

/// Whether `s` is a color as `#rrggbb`.
fn is_hex_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where a privacy-center session's subject is sealed (under the org's key).
fn session_subject(subject_ref: &str) -> crate::sealed_text::SealedText<'_> {
    crate::sealed_text::SealedText {
        id: subject_ref,
        part: SESSION_SUBJECT_PART,
        what: "a privacy session's subject",
    }
}

/// Why a link was refused; [`LinkRefusal::code`] is what the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// The org has no privacy center keys.
    NotEnabled,
    /// The token itself was refused (see [`TokenRefusal`]).
    Token(TokenRefusal),
    /// `exp` is further ahead than [`MAX_LINK_LIFETIME_SECONDS`].
    TooLong,
    /// `jti` is missing, empty or too long.
    NoJti,
    /// The link was used before.
    Replayed,
}

impl LinkRefusal {
    /// The short, stable reason code (never the token or its claims).
    pub fn code(&self) -> &'static str {
        match self {
            LinkRefusal::NotEnabled => "privacy_center_not_enabled",
            LinkRefusal::Token(t) => t.code(),
            LinkRefusal::TooLong => "lifetime_too_long",
            LinkRefusal::NoJti => "no_jti",
            LinkRefusal::Replayed => "replayed",
        }
    }
}

/// What a valid link says.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkClaims {
    /// The subject's identifier, as the org's records name it.
    pub subject: String,
    /// The link's one-time id.
    pub jti: String,
    /// When it expires (Unix seconds).
    pub exp: i64,
}

impl std::fmt::Debug for LinkClaims {
    // The subject is personal data: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkClaims")
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

/// The claims a link carries; `aud` is checked by the JWT crate.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

impl PrivacyCenter {
    /// Checks a change: keys (public, of the two accepted kinds, distinct key ids) and
    /// origins.
    pub(crate) fn check(&self) -> Result<(), CoreError> {
        // Refused rather than kept and ignored: an org that turns codes on must not believe
        // its privacy center asks for one while it does not.
        if self.email_codes {
            return Err(CoreError::invalid(
                "privacy_center.email_codes",
                "one-time e-mail codes are not available yet; leave it false (links alone \
                 sign the subject in)",
            ));
        }
        if self.link_keys.len() > MAX_LINK_KEYS {
            return Err(CoreError::invalid(
                "privacy_center.link_keys",
                format!("at most {MAX_LINK_KEYS} keys"),
            ));
        }
        let keys = self.key_set()?;
        for (i, key) in keys.keys.iter().enumerate() {
            let kid = key.common.key_id.as_deref();
            if kid.is_some()
                && keys.keys[..i]
                    .iter()
                    .any(|k| k.common.key_id.as_deref() == kid)
            {
                return Err(CoreError::invalid(
                    &format!("privacy_center.link_keys[{i}].kid"),
                    "is used by another key",
                ));
            }
        }
        if self.frame_ancestors.len() > MAX_FRAME_ANCESTORS {
            return Err(CoreError::invalid(
                "privacy_center.frame_ancestors",
                format!("at most {MAX_FRAME_ANCESTORS} origins"),
            ));
        }
        for (field, color) in [
            ("privacy_center.colors.accent", &self.colors.accent),
            ("privacy_center.colors.background", &self.colors.background),
        ] {
            if color.as_deref().is_some_and(|c| !is_hex_color(c)) {
                return Err(CoreError::invalid(field, "must be a color as #rrggbb"));
            }
        }
        for (i, origin) in self.frame_ancestors.iter().enumerate() {
            if !is_origin(origin) {
                return Err(CoreError::invalid(
                    &format!("privacy_center.frame_ancestors[{i}]"),
                    "must be an origin such as https://app.example.com (scheme, host and \
                     optional port; http only for localhost and 127.0.0.1)",
                ));
            }
        }
        Ok(())
    }

    /// The registered keys as a key set; an error names the first key that is not a public
    /// Ed25519 or P-256 key.
    pub(crate) fn key_set(&self) -> Result<JwkSet, CoreError> {
        let mut keys = Vec::new();
        for (i, raw) in self.link_keys.iter().enumerate() {
            let field = format!("privacy_center.link_keys[{i}]");
            let private = ["d", "p", "q", "k"]
                .iter()
                .any(|part| raw.get(part).is_some());
            if private {
                return Err(CoreError::invalid(
                    &field,
                    "holds a private or secret key part: register the public key only",
                ));
            }
            let jwk: Jwk = serde_json::from_value(raw.clone())
                .map_err(|e| CoreError::invalid(&field, format!("is not a JWK: {e}")))?;
            let fits = match &jwk.algorithm {
                AlgorithmParameters::OctetKeyPair(p) => p.curve == EllipticCurve::Ed25519,
                AlgorithmParameters::EllipticCurve(p) => p.curve == EllipticCurve::P256,
                _ => false,
            };
            if !fits || DecodingKey::from_jwk(&jwk).is_err() {
                return Err(CoreError::invalid(
                    &field,
                    "must be an Ed25519 (OKP) or P-256 (EC) public key",
                ));
            }
            keys.push(jwk);
        }
        Ok(JwkSet { keys })
    }
}

/// `scheme://host[:port]` with nothing after; `http` only on loopback names.
fn is_origin(s: &str) -> bool {
    let Ok(url) = url::Url::parse(s) else {
        return false;
    };
    let bare = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
        && !s.ends_with('/');
    let host = url.host_str().unwrap_or("");
    let scheme_ok = match url.scheme() {
        "https" => !host.is_empty(),
        "http" => host == "localhost" || host == "127.0.0.1",
        _ => false,
    };
    bare && scheme_ok
}

/// Verifies a privacy-center link for `org` against the org's keys at `now` (Unix seconds):
/// an EdDSA or ES256 signature by one of them, `aud` naming the org, `exp` not passed (60 s
/// leeway) and at most 15 minutes ahead, a `sub` that is a subject identifier, and a `jti`.
/// Whether the `jti` was used before is the caller's to check.
pub fn verify_link(
    token: &str,
    org: &str,
    keys: &JwkSet,
    now: i64,
) -> Result<LinkClaims, LinkRefusal> {
    if keys.keys.is_empty() {
        return Err(LinkRefusal::NotEnabled);
    }
    let refused = LinkRefusal::Token;
    let (alg, kid) = token_header(token).map_err(refused)?;
    if !matches!(alg, Algorithm::EdDSA | Algorithm::ES256) {
        return Err(refused(TokenRefusal::Algorithm));
    }
    let jwk = select_key(keys, alg, kid.as_deref()).ok_or(refused(TokenRefusal::UnknownKey))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| refused(TokenRefusal::UnknownKey))?;
    let mut validation = Validation::new(alg);
    // Time is checked below against the deployment's clock, not the system's.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["aud", "sub"]);
    validation.set_audience(&[org]);
    let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map_err(|e| refused(refusal_of(e.kind())))?
        .claims;
    let exp = match claims.exp {
        Some(exp) if now <= exp.saturating_add(LEEWAY_SECONDS) => exp,
        _ => return Err(refused(TokenRefusal::Expired)),
    };
    if exp > now.saturating_add(MAX_LINK_LIFETIME_SECONDS + LEEWAY_SECONDS) {
        return Err(LinkRefusal::TooLong);
    }
    if crate::records::check_subject(&Some(claims.sub.clone())).is_err() {
        return Err(refused(TokenRefusal::NoSubject));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.chars().count() <= MAX_JTI_CHARS)
        .ok_or(LinkRefusal::NoJti)?;
    Ok(LinkClaims {
        subject: claims.sub,
        jti,
        exp,
    })
}

/// A data subject who came in through a valid link.
#[derive(Clone)]
pub struct LinkedSubject {
    /// The org.
    pub org: String,
    /// The subject's identifier, as the org's records name it; `None` once the subject was
    /// erased (the session then only shows their requests, by reference, and certificates).
    pub subject: Option<String>,
    /// Its keyed reference.
    pub subject_ref: String,
}

/// A privacy-center session opened by a link.
pub struct PrivacySignIn {
    /// The session token (`cupc_…`): the subject's browser keeps it; stored hashed.
    pub token: zeroize::Zeroizing<String>,
    /// When the session ends.
    pub expires_at: jiff::Timestamp,
    /// Who it is for.
    pub subject: LinkedSubject,
}

impl std::fmt::Debug for PrivacySignIn {
    // The token is a credential: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivacySignIn")
            .field("expires_at", &self.expires_at)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LinkedSubject {
    // The identifier is personal data: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedSubject")
            .field("org", &self.org)
            .field("subject_ref", &self.subject_ref)
            .finish_non_exhaustive()
    }
}

impl Custos {
    /// Forgets the used links whose expiry passed (the sweep); audited where any went.
    pub(crate) async fn purge_privacy_link_uses(&self) -> Result<u64, CoreError> {
        let now = self.now();
        // A link is refused once a minute (the leeway) has passed since its `exp`; its row is
        // kept a second longer than that.
        let before = now - jiff::SignedDuration::from_secs(LEEWAY_SECONDS + 1);
        let event = || {
            vec![
                AuditEvent::new(now, Actor::System, AuditAction::PrivacyLinkPurge)
                    .details(Details::new().due(before)),
            ]
        };
        Ok(self.store.purge_privacy_link_uses(before, event).await?)
    }

    /// Takes a privacy-center link for `org`: verified against the org's keys, its `jti`
    /// recorded as used and a session opened for its subject in one transaction, audited as
    /// `privacy.link` with the subject's reference. A refusal is audited with its reason
    /// (never the token or its claims) and answers `unauthenticated`; an org that is unknown,
    /// terminated or has no privacy center answers the same.
    pub async fn privacy_link(
        &self,
        org: &str,
        token: &str,
        context: &RequestContext,
    ) -> Result<PrivacySignIn, CoreError> {
        let found = self.store.org(org).await?;
        let scope = match &found {
            Some((scope, o)) if o.terminated_at.is_none() && o.terminating_since.is_none() => {
                Some(scope.clone())
            }
            _ => None,
        };
        let keys = match &scope {
            Some(scope) => match self.org_settings_of(scope).await?.privacy_center {
                Some(center) => center.key_set()?,
                None => JwkSet { keys: Vec::new() },
            },
            None => JwkSet { keys: Vec::new() },
        };
        let event = |outcome: Outcome| {
            let mut event = AuditEvent::new(self.now(), Actor::Anonymous, AuditAction::PrivacyLink)
                .request(context.request_id.clone(), context.source.clone())
                .client_request(context.client_request_id.clone())
                .outcome(outcome);
            if let Some(scope) = &scope {
                event = event.org(scope.org_id());
            }
            event
        };
        let refuse = |refusal: LinkRefusal| async move {
            let denied = event(Outcome::Denied).reason(refusal.code());
            match self.store.append_audit(&[denied]).await {
                Ok(()) => CoreError::Unauthenticated,
                Err(e) => e.into(),
            }
        };
        let claims = match verify_link(token, org, &keys, self.now().as_second()) {
            Ok(claims) => claims,
            Err(refusal) => return Err(refuse(refusal).await),
        };
        let Some(scope) = scope.clone() else {
            return Err(CoreError::internal("a link verified without an org's keys"));
        };
        let subject_ref = self
            .vault
            .subject_ref(scope.org_id(), &claims.subject)
            .await?;
        let expires = jiff::Timestamp::from_second(claims.exp)
            .map_err(|e| CoreError::internal_from("a link's exp", e))?;
        let used = event(Outcome::Success).details(
            Details::new()
                .subject_ref(subject_ref.clone())
                .expires(expires),
        );
        let session_token =
            zeroize::Zeroizing::new(crate::members::random_token(PRIVACY_SESSION_PREFIX));
        let now = self.now();
        let subject_sealed = self
            .seal_text(
                &scope,
                None,
                &session_subject(&subject_ref),
                &claims.subject,
            )
            .await?;
        let session = custos_store::PrivacySession {
            token_hash: crate::token_hash(&session_token),
            subject_ref: subject_ref.clone(),
            subject_sealed,
            created_at: now,
            expires_at: now + PRIVACY_SESSION_LIFETIME,
        };
        let first = self
            .store
            .for_org(&scope)
            .await?
            .use_privacy_link(&scope, &claims.jti, expires, &session, &[used])
            .await?;
        if !first {
            return Err(refuse(LinkRefusal::Replayed).await);
        }
        Ok(PrivacySignIn {
            token: session_token,
            expires_at: session.expires_at,
            subject: LinkedSubject {
                org: scope.org_id().to_string(),
                subject: Some(claims.subject),
                subject_ref,
            },
        })
    }

    /// The subject of the org's privacy-center session `token`; `unauthenticated` when there
    /// is none (unknown, ended, or the org gone). A subject erased since comes back without
    /// its identifier.
    pub async fn privacy_session(
        &self,
        org: &str,
        token: &str,
    ) -> Result<LinkedSubject, CoreError> {
        if !token.starts_with(PRIVACY_SESSION_PREFIX) {
            return Err(CoreError::Unauthenticated);
        }
        let Some((scope, found)) = self.store.org(org).await? else {
            return Err(CoreError::Unauthenticated);
        };
        if found.terminated_at.is_some() || found.terminating_since.is_some() {
            return Err(CoreError::Unauthenticated);
        }
        let Some(session) = self
            .store
            .for_org(&scope)
            .await?
            .privacy_session(&scope, &crate::token_hash(token), self.now())
            .await?
        else {
            return Err(CoreError::Unauthenticated);
        };
        // An erased subject's session goes on by reference alone.
        let subject = if session.subject_sealed.is_empty() {
            None
        } else {
            // The org's keys destroyed since: nobody left to serve.
            let Some(subject) = self
                .open_text(
                    &scope,
                    &session_subject(&session.subject_ref),
                    &session.subject_sealed,
                )
                .await?
            else {
                return Err(CoreError::Unauthenticated);
            };
            Some(subject)
        };
        Ok(LinkedSubject {
            org: scope.org_id().to_string(),
            subject,
            subject_ref: session.subject_ref,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header};

    #[test]
    fn colors_are_hex_triplets_and_an_error_names_the_field() {
        let with = |accent: &str| PrivacyCenter {
            colors: PrivacyColors {
                accent: Some(accent.into()),
                background: None,
            },
            ..PrivacyCenter::default()
        };
        assert!(with("#0b57D0").check().is_ok());
        let codes = PrivacyCenter {
            email_codes: true,
            ..PrivacyCenter::default()
        };
        let err = codes.check().unwrap_err().to_string();
        assert!(err.contains("privacy_center.email_codes"), "{err}");
        for bad in ["red", "#fff", "#0b57d0;x", "0b57d0x", "#gggggg"] {
            let err = with(bad).check().unwrap_err().to_string();
            assert!(err.contains("privacy_center.colors.accent"), "{bad}: {err}");
        }
    }

    const ORG: &str = "0193a1b2-0000-7000-8000-000000000001";
    const NOW: i64 = 1_800_000_000;

    /// An Ed25519 key pair from `seed`: the signing key and its public JWK.
    fn ed25519(seed: u8, kid: &str) -> (EncodingKey, serde_json::Value) {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let signing = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let public = signing.verifying_key().to_bytes();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public);
        let der = signing.to_pkcs8_der().expect("pkcs8");
        (
            EncodingKey::from_ed_der(der.as_bytes()),
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid}),
        )
    }

    fn link(key: &EncodingKey, kid: Option<&str>, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    fn center(keys: Vec<serde_json::Value>) -> PrivacyCenter {
        PrivacyCenter {
            link_keys: keys,
            ..PrivacyCenter::default()
        }
    }

    #[test]
    fn a_link_is_checked_claim_by_claim() {
        let (key, jwk) = ed25519(7, "app-1");
        let keys = center(vec![jwk]).key_set().unwrap();
        let claims = |aud: &str, exp: i64, jti: Option<&str>| {
            let mut c = serde_json::json!({"sub": "user-42", "aud": aud, "exp": exp});
            if let Some(j) = jti {
                c["jti"] = j.into();
            }
            c
        };
        let ok = link(&key, Some("app-1"), claims(ORG, NOW + 600, Some("j-1")));
        let got = verify_link(&ok, ORG, &keys, NOW).unwrap();
        assert_eq!((got.subject.as_str(), got.jti.as_str()), ("user-42", "j-1"));
        assert!(!format!("{got:?}").contains("user-42"));
        // No kid, one fitting key: that one.
        let no_kid = link(&key, None, claims(ORG, NOW + 600, Some("j-2")));
        assert!(verify_link(&no_kid, ORG, &keys, NOW).is_ok());

        let code = |token: &str| verify_link(token, ORG, &keys, NOW).unwrap_err().code();
        assert_eq!(
            code(&link(
                &key,
                Some("app-1"),
                claims("other-org", NOW + 600, Some("j"))
            )),
            "wrong_audience"
        );
        assert_eq!(
            code(&link(
                &key,
                Some("app-1"),
                claims(ORG, NOW - 120, Some("j"))
            )),
            "expired"
        );
        assert_eq!(
            code(&link(
                &key,
                Some("app-1"),
                claims(ORG, NOW + 3600, Some("j"))
            )),
            "lifetime_too_long"
        );
        assert_eq!(
            code(&link(&key, Some("app-1"), claims(ORG, NOW + 600, None))),
            "no_jti"
        );
        assert_eq!(
            code(&link(
                &key,
                Some("other"),
                claims(ORG, NOW + 600, Some("j"))
            )),
            "unknown_key"
        );
        // Signed by a key the org never registered.
        let (stranger, _) = ed25519(9, "app-1");
        assert_eq!(
            code(&link(
                &stranger,
                Some("app-1"),
                claims(ORG, NOW + 600, Some("j"))
            )),
            "bad_signature"
        );
        // HS256 with the public key as a secret: refused by name.
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(ORG, NOW + 600, Some("j")),
            &EncodingKey::from_secret(b"x"),
        )
        .unwrap();
        assert_eq!(code(&hs), "algorithm_refused");
        assert_eq!(
            verify_link(&ok, ORG, &JwkSet { keys: vec![] }, NOW)
                .unwrap_err()
                .code(),
            "privacy_center_not_enabled"
        );
    }

    #[test]
    fn the_setting_takes_public_keys_and_origins_only() {
        let (_, jwk) = ed25519(7, "a");
        assert!(center(vec![jwk.clone()]).check().is_ok());
        let mut private = jwk.clone();
        private["d"] = "AAAA".into();
        let err = center(vec![private]).check().unwrap_err().to_string();
        assert!(
            err.contains("link_keys[0]") && err.contains("private"),
            "{err}"
        );
        let rsa = serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"});
        assert!(center(vec![rsa]).check().is_err());
        let err = center(vec![jwk.clone(), jwk.clone()])
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("link_keys[1].kid"), "{err}");
        let origins = |list: &[&str]| PrivacyCenter {
            frame_ancestors: list.iter().map(|s| s.to_string()).collect(),
            ..PrivacyCenter::default()
        };
        assert!(
            origins(&["https://app.example.com", "http://localhost:3000"])
                .check()
                .is_ok()
        );
        for bad in [
            "http://app.example.com",
            "https://app.example.com/path",
            "https://app.example.com/",
            "*",
            "https://user@app.example.com",
        ] {
            assert!(origins(&[bad]).check().is_err(), "{bad}");
        }
    }
}
