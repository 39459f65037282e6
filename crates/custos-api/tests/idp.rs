//! Identity-provider ID tokens as a second factor, over HTTP: a real Custos server and a
//! stand-in identity provider (a real HTTP server on loopback publishing `/jwks.json` with
//! Ed25519 keys this test makes), both on ephemeral ports.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use custos_core::SystemClock;
use custos_policy::Policy;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

mod support;

use support::{deploy, org_with_owner, serve, ADMIN};

type Server = support::Deployment;
const AUDIENCE: &str = "custos-app";

/// The built-in policy with `[network] allow = ["127.0.0.0/8"]`: the stand-in identity
/// provider runs on loopback, which run-time URLs may reach only when the policy says so.
async fn server() -> Server {
    server_with_network("allow = [\"127.0.0.0/8\"]").await
}

/// The built-in policy with `network` as its `[network]` table.
async fn server_with_network(network: &str) -> Server {
    let source = format!("{}\n[network]\n{network}\n", Policy::BUILTIN_TOML);
    let policy = Policy::parse(&source, "builtin.toml").unwrap();
    deploy(policy, Arc::new(SystemClock), |c| c).await
}

/// A stand-in identity provider: publishes the public halves of its keys and counts fetches.
struct Issuer {
    base: String,
    published: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

/// An Ed25519 signing key named `kid`.
struct Key {
    kid: String,
    signing: ed25519_dalek::SigningKey,
}

impl Key {
    fn new(seed: u8, kid: &str) -> Key {
        Key {
            kid: kid.into(),
            signing: ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        }
    }

    fn public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self.kid,
               "x": b64(&self.public())})
    }

    fn sign(&self, claims: &Value) -> String {
        let der = self.signing.to_pkcs8_der().unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Issuer {
    async fn start(keys: &[&Key]) -> Issuer {
        let published = Arc::new(Mutex::new(keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (p, f) = (published.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (p, f) = (p.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    let keys = p.lock().unwrap().clone();
                    axum::Json(json!({ "keys": keys }))
                }
            }),
        );
        Issuer {
            base: serve(app).await,
            published,
            fetches,
        }
    }

    fn publish(&self, key: &Key) {
        self.published.lock().unwrap().push(key.jwk());
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Claims of a fresh token for `AUDIENCE` whose user signed in with a password and a
    /// one-time code.
    fn claims(&self) -> Value {
        let now = jiff::Timestamp::now().as_second();
        json!({"iss": self.base, "aud": AUDIENCE, "sub": "user-1", "iat": now,
               "exp": now + 300, "amr": ["pwd", "otp"]})
    }

    fn settings(&self) -> Value {
        json!({"identity_provider": {"issuer": self.base, "audience": AUDIENCE,
               "jwks_uri": format!("{}/jwks.json", self.base)}})
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call(
        &self,
        req: reqwest::RequestBuilder,
        token: &str,
        id_token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = req.bearer_auth(token);
        if let Some(id_token) = id_token {
            req = req.header("X-Custos-Identity-Token", id_token);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let req = self.client.post(self.url(path)).json(&body);
        self.call(req, token, None).await
    }

    /// An org whose identity provider is `issuer` (if any): (org id, the API key of its first
    /// owner, the API key of an admin member bound to the provider's `user-1` (the person of
    /// [`Issuer::claims`])).
    async fn org(&self, issuer: Option<&Issuer>) -> (String, String, String) {
        let (org, owner, key) = self.org_bound(issuer).await;
        if let Some(issuer) = issuer {
            let req = self
                .client
                .patch(self.url(&format!("/v1/orgs/{org}/settings")))
                .json(&issuer.settings());
            let (s, body) = self.call(req, &owner, None).await;
            assert_eq!(s, StatusCode::OK, "{body}");
        }
        (org, owner, key)
    }

    /// An org with no identity provider yet: (org id, the API key of its first owner, the API
    /// key of an admin member bound to `issuer`'s `user-1` (if any)).
    async fn org_bound(&self, issuer: Option<&Issuer>) -> (String, String, String) {
        let (org, owner) = org_with_owner(self, "Acme").await;
        let members = format!("/v1/orgs/{org}/members");
        let mut admin = json!({"name": "app", "roles": ["admin"]});
        if let Some(issuer) = issuer {
            admin["identity"] = json!({"iss": issuer.base, "sub": "user-1"});
        }
        let (s, m) = self.post(&owner, &members, admin).await;
        assert_eq!(s, StatusCode::CREATED, "{m}");
        (org, owner, m["api_key"].as_str().unwrap().to_string())
    }

    /// Writes a `security_logs` record (roles owner/admin/auditor and a second factor).
    async fn write_security_log(
        &self,
        org: &str,
        key: &str,
        id_token: Option<&str>,
    ) -> (StatusCode, Value) {
        let req = self
            .client
            .post(self.url(&format!("/v1/orgs/{org}/records")))
            .json(&json!({"category": "security_logs", "content": "login burst"}));
        self.call(req, key, id_token).await
    }

    /// The reason codes of the denied `auth.identity_token` events (of `org`, if given).
    async fn refusals(&self, org: Option<&str>) -> Vec<String> {
        let filter = org.map(|o| format!("&org={o}")).unwrap_or_default();
        let path = format!("/v1/audit/events?action=auth.identity_token{filter}");
        let (s, page) = self
            .call(self.client.get(self.url(&path)), ADMIN, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert_eq!(e["event"]["outcome"], "denied", "{e}");
                e["event"]["reason"].as_str().unwrap().to_string()
            })
            .collect()
    }
}

/// Asserts the request failed as a 401 `unauthenticated` problem.
fn assert_unauthenticated((status, body): (StatusCode, Value)) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "unauthenticated", "{body}");
}

#[tokio::test]
async fn a_token_with_a_second_factor_opens_a_require_mfa_category() {
    let s = server().await;
    let key = Key::new(1, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let (org, _, api_key) = s.org(Some(&issuer)).await;

    let (status, body) = s.write_security_log(&org, &api_key, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "mfa_required");

    let token = key.sign(&issuer.claims());
    let (status, body) = s.write_security_log(&org, &api_key, Some(&token)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = s.write_security_log(&org, &api_key, Some(&token)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(issuer.fetches(), 1, "the key set is cached");
    assert!(s.refusals(Some(&org)).await.is_empty());
}

#[tokio::test]
async fn invalid_tokens_fail_the_request_and_are_audited_by_reason() {
    let s = server().await;
    let key = Key::new(1, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let (org, _, api_key) = s.org(Some(&issuer)).await;
    let signed = |change: &dyn Fn(&mut Value)| {
        let mut claims = issuer.claims();
        change(&mut claims);
        key.sign(&claims)
    };
    let now = jiff::Timestamp::now().as_second();
    let header = |h: Value| b64(h.to_string().as_bytes());
    let body = b64(issuer.claims().to_string().as_bytes());
    // HS256 keyed with the provider's public key bytes (the classic algorithm confusion).
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("k1".into());
    let confused = jsonwebtoken::encode(
        &hs,
        &issuer.claims(),
        &EncodingKey::from_secret(&key.public()),
    )
    .unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            signed(&|c| {
                c["exp"] = json!(now - 3600);
                c["iat"] = json!(now - 7200);
            }),
            "expired",
        ),
        (
            signed(&|c| c["aud"] = json!("someone-else")),
            "wrong_audience",
        ),
        (
            signed(&|c| c["iss"] = json!("https://evil.example.com")),
            "wrong_issuer",
        ),
        (
            format!("{}.{body}.", header(json!({"alg": "none", "typ": "JWT"}))),
            "algorithm_refused",
        ),
        (confused, "algorithm_refused"),
        (signed(&|c| c["amr"] = json!(["pwd"])), "no_second_factor"),
        (Key::new(9, "k1").sign(&issuer.claims()), "bad_signature"),
        ("not-a-jwt".into(), "malformed"),
    ];
    let mut expected = Vec::new();
    for (token, reason) in &cases {
        assert_unauthenticated(s.write_security_log(&org, &api_key, Some(token)).await);
        expected.push(reason.to_string());
    }
    // A refused token fails even requests the API key alone may make: no fallback.
    let (token, _) = &cases[0];
    let req = s.client.get(s.url(&format!("/v1/orgs/{org}/records")));
    assert_unauthenticated(s.call(req, &api_key, Some(token)).await);
    expected.push("expired".into());

    assert_eq!(s.refusals(Some(&org)).await, expected);
    // The audit log names reasons, never the tokens or their claims.
    let path = format!("/v1/audit/events?org={org}");
    let (_, page) = s.call(s.client.get(s.url(&path)), ADMIN, None).await;
    let log = page.to_string();
    for (token, _) in &cases {
        let signature = token.rsplit('.').next().unwrap_or_default();
        assert!(signature.is_empty() || !log.contains(signature));
    }
    assert!(!log.contains("someone-else") && !log.contains("user-1"));
}

#[tokio::test]
async fn an_unknown_kid_makes_one_refetch() {
    let s = server().await;
    let k1 = Key::new(1, "k1");
    let issuer = Issuer::start(&[&k1]).await;
    let (org, _, api_key) = s.org(Some(&issuer)).await;
    let (status, _) = s
        .write_security_log(&org, &api_key, Some(&k1.sign(&issuer.claims())))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(issuer.fetches(), 1);

    // The provider rotates to k2: the first token naming it makes one refetch.
    let k2 = Key::new(2, "k2");
    issuer.publish(&k2);
    let token = k2.sign(&issuer.claims());
    let (status, body) = s.write_security_log(&org, &api_key, Some(&token)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(issuer.fetches(), 2);
    let (status, _) = s.write_security_log(&org, &api_key, Some(&token)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(issuer.fetches(), 2);

    // A key the provider never published, right after that refetch: refused without another
    // fetch (the refetch cooldown keeps made-up key ids from hammering the provider).
    let stray = Key::new(3, "k3").sign(&issuer.claims());
    assert_unauthenticated(s.write_security_log(&org, &api_key, Some(&stray)).await);
    assert_eq!(issuer.fetches(), 2);
    assert_eq!(s.refusals(Some(&org)).await, vec!["unknown_key"]);

    // In another org using the same provider, a first unknown kid refetches once.
    let (other, _, other_key) = s.org(Some(&issuer)).await;
    let (status, _) = s.write_security_log(&other, &other_key, Some(&token)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(issuer.fetches(), 3);
    assert_unauthenticated(s.write_security_log(&other, &other_key, Some(&stray)).await);
    assert_eq!(issuer.fetches(), 4);
}

#[tokio::test]
async fn a_token_counts_only_with_a_key_of_the_providers_org() {
    let s = server().await;
    let (ka, kb) = (Key::new(1, "k1"), Key::new(2, "k1"));
    let (issuer_a, issuer_b) = (Issuer::start(&[&ka]).await, Issuer::start(&[&kb]).await);
    let (org_a, _, key_a) = s.org(Some(&issuer_a)).await;
    let (org_b, _, key_b) = s.org(Some(&issuer_b)).await;
    let (org_c, _, key_c) = s.org(None).await;
    let token_b = kb.sign(&issuer_b.claims());

    // Org B's token is valid for org B...
    let (status, body) = s.write_security_log(&org_b, &key_b, Some(&token_b)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // ...but not with org A's API key (A's provider did not sign it), not for an org with
    // no provider, and never with the admin token.
    assert_unauthenticated(s.write_security_log(&org_a, &key_a, Some(&token_b)).await);
    assert_unauthenticated(s.write_security_log(&org_b, &key_a, Some(&token_b)).await);
    assert_unauthenticated(s.write_security_log(&org_c, &key_c, Some(&token_b)).await);
    let req = s.client.get(s.url("/v1/orgs"));
    let audit_admin = s.refusals(None).await.len();
    assert_unauthenticated(s.call(req, ADMIN, Some(&token_b)).await);

    assert_eq!(s.refusals(Some(&org_a)).await, vec!["bad_signature"; 2]);
    assert_eq!(s.refusals(Some(&org_c)).await, vec!["no_identity_provider"]);
    assert!(s.refusals(Some(&org_b)).await.is_empty());
    let all = s.refusals(None).await;
    assert_eq!(all.len(), audit_admin + 1);
    assert_eq!(all.last().map(String::as_str), Some("not_member_key"));
}

#[tokio::test]
async fn a_token_counts_only_for_the_member_bound_to_its_person() {
    let s = server().await;
    let key = Key::new(1, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let (org, owner, _) = s.org(Some(&issuer)).await;
    let members = format!("/v1/orgs/{org}/members");
    let user_1 = key.sign(&issuer.claims());

    // Another admin, bound to nobody, presents user-1's valid token: refused.
    let (status, bob) = s
        .post(&owner, &members, json!({"name": "bob", "roles": ["admin"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bob}");
    let bob_key = bob["api_key"].as_str().unwrap();
    assert_unauthenticated(s.write_security_log(&org, bob_key, Some(&user_1)).await);

    // Bound to user-2, bob still cannot use user-1's token, but can use his own.
    let bob_path = format!("{members}/{}", bob["id"].as_str().unwrap());
    let patch = |identity: Value| {
        s.client
            .patch(s.url(&bob_path))
            .json(&json!({ "identity": identity }))
    };
    let user_2_identity = json!({"iss": issuer.base, "sub": "user-2"});
    let (status, body) = s.call(patch(user_2_identity.clone()), &owner, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["identity"], user_2_identity);
    assert_unauthenticated(s.write_security_log(&org, bob_key, Some(&user_1)).await);
    let mut claims = issuer.claims();
    claims["sub"] = json!("user-2");
    let user_2 = key.sign(&claims);
    let (status, body) = s.write_security_log(&org, bob_key, Some(&user_2)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // One person is one member: user-1 is already the first admin.
    let taken = json!({"iss": issuer.base, "sub": "user-1"});
    let (status, body) = s.call(patch(taken.clone()), &owner, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = s
        .post(
            &owner,
            &members,
            json!({"name": "carol", "roles": ["member"], "identity": taken}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // A malformed identity names its field.
    let (status, body) = s
        .call(patch(json!({"iss": "not a url", "sub": "x"})), &owner, None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("identity.iss"), "{body}");

    // Unbound again (`null`), bob's own token no longer counts either.
    let (status, body) = s.call(patch(Value::Null), &owner, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["identity"], Value::Null);
    assert_unauthenticated(s.write_security_log(&org, bob_key, Some(&user_2)).await);

    // A member that is only a `service` acts for whichever of its users signed in.
    let (status, app) = s
        .post(
            &owner,
            &members,
            json!({"name": "app", "roles": ["service"], "mfa": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app_key = app["api_key"].as_str().unwrap();
    let list = || s.client.get(s.url(&format!("/v1/orgs/{org}/records")));
    let (status, body) = s.call(list(), app_key, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for token in [&user_1, &user_2] {
        let (status, body) = s.call(list(), app_key, Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    assert_eq!(s.refusals(Some(&org)).await, vec!["identity_mismatch"; 3]);
    // The audit log says a member is bound, never to whom.
    let path = format!("/v1/audit/events?org={org}&action=member.update");
    let (_, page) = s.call(s.client.get(s.url(&path)), ADMIN, None).await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"]["identity_bound"] == true),
        "{page}"
    );
    assert!(!page.to_string().contains("user-2"), "{page}");
}

#[tokio::test]
async fn an_unreachable_key_set_refuses_the_token() {
    let s = server().await;
    let key = Key::new(1, "k1");
    let issuer = Issuer::start(&[&key]).await;
    // A port nothing listens on: bound, then released.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (org, owner, api_key) = s.org(None).await;
    let mut settings = issuer.settings();
    settings["identity_provider"]["jwks_uri"] = json!(format!("http://127.0.0.1:{port}/jwks.json"));
    let req = s
        .client
        .patch(s.url(&format!("/v1/orgs/{org}/settings")))
        .json(&settings);
    assert_eq!(s.call(req, &owner, None).await.0, StatusCode::OK);

    let token = key.sign(&issuer.claims());
    assert_unauthenticated(s.write_security_log(&org, &api_key, Some(&token)).await);
    assert_eq!(s.refusals(Some(&org)).await, vec!["jwks_unavailable"]);
}

#[tokio::test]
async fn the_openapi_document_names_the_identity_token_header() {
    let s = server().await;
    let doc: Value = s
        .client
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let scheme = &doc["components"]["securitySchemes"]["identity_token"];
    assert_eq!(scheme["type"], "apiKey", "{scheme}");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "x-custos-identity-token");
}

/// PATCHes the org's identity provider to `idp` as `owner` and returns the status and problem
/// code.
async fn set_idp(s: &Server, org: &str, owner: &str, idp: Value) -> (StatusCode, Value) {
    let req = s
        .client
        .patch(s.url(&format!("/v1/orgs/{org}/settings")))
        .json(&json!({ "identity_provider": idp }));
    let (status, body) = s.call(req, owner, None).await;
    (status, body["code"].clone())
}

#[tokio::test]
async fn a_loopback_key_set_needs_network_allow() {
    let key = Key::new(1, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let jwks = format!("{}/jwks.json", issuer.base);
    let idp = |uri: &str| json!({"issuer": issuer.base, "audience": AUDIENCE, "jwks_uri": uri});

    // No `[network] allow`: the loopback provider is refused when configured, unfetched.
    let closed = server_with_network("allow = []").await;
    let (org, owner, _) = closed.org(None).await;
    let refused = set_idp(&closed, &org, &owner, idp(&jwks)).await;
    assert_eq!(refused, (StatusCode::BAD_REQUEST, json!("url_not_allowed")));
    // The review's user-info bypasses are refused whatever `allow` says.
    let open = server().await;
    let (open_org, open_owner, api_key) = open.org_bound(Some(&issuer)).await;
    let port = issuer.base.rsplit(':').next().unwrap();
    for uri in [
        format!("http://localhost:1@127.0.0.1:{port}/jwks.json"),
        format!("http://127.0.0.1:80@127.0.0.1:{port}/jwks.json"),
        format!("http://[::1]@127.0.0.1:{port}/jwks.json"),
    ] {
        let got = set_idp(&open, &open_org, &open_owner, idp(&uri)).await;
        assert_eq!(
            got,
            (StatusCode::BAD_REQUEST, json!("url_not_allowed")),
            "{uri}"
        );
    }
    assert_eq!(issuer.fetches(), 0);

    // Listed in `allow`: accepted and fetched.
    assert_eq!(
        set_idp(&open, &open_org, &open_owner, idp(&jwks)).await.0,
        StatusCode::OK
    );
    let token = key.sign(&issuer.claims());
    let (status, body) = open
        .write_security_log(&open_org, &api_key, Some(&token))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(issuer.fetches(), 1);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_before_connecting() {
    // https to a name passes the URL check; the resolver then finds loopback, which this
    // deployment does not allow, so no connection is opened to the listener.
    let s = server_with_network("allow = []").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let key = Key::new(1, "k1");
    let issuer = Issuer::start(&[&key]).await;
    let (org, owner, api_key) = s.org(None).await;
    let idp = json!({"issuer": issuer.base, "audience": AUDIENCE,
                     "jwks_uri": format!("https://localhost:{port}/jwks.json")});
    assert_eq!(set_idp(&s, &org, &owner, idp).await.0, StatusCode::OK);
    let token = key.sign(&issuer.claims());
    assert_unauthenticated(s.write_security_log(&org, &api_key, Some(&token)).await);
    assert_eq!(s.refusals(Some(&org)).await, vec!["jwks_unavailable"]);
    let accepted =
        tokio::time::timeout(std::time::Duration::from_millis(300), listener.accept()).await;
    assert!(
        accepted.is_err(),
        "a connection was opened to a refused address"
    );
}
