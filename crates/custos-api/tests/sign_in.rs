//! Sign-in for people through the org's identity provider, end to end with a real OpenID
//! provider (`tools/oidc-provider`, started here) served on `localhost` while Custos is on
//! `127.0.0.1`, so that the two sites' cookies stay apart as across real sites.

use std::sync::Arc;

use custos_core::{Clock, ManualClock};
use custos_policy::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};

mod support;

use support::oidc::{id_token_for, Browser, Provider, TokenSwapProxy};
use support::{deploy_on, org_with_owner, Deployment};

const CLIENT: &str = "custos";
const SECRET: &str = "s3cret-for-tests";

/// A deployment whose `public_url` is its own address, with an MFA-gated category.
async fn deployment(clock: Arc<ManualClock>) -> Deployment {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let policy = Policy::parse(
        &format!(
            r#"
[service]
name = "Acme"
regions = ["us-east"]
public_url = "{base}"

[network]
allow = ["127.0.0.0/8", "::1/128"]

[categories.messages]
retention = "30d"

[categories.secure_notes]
retention = "30d"
access = {{ require_mfa = true }}
"#
        ),
        "custos.toml",
    )
    .unwrap();
    let d = deploy_on(listener, policy, clock, |c| c).await;
    assert_eq!(d.base, base);
    d
}

/// The provider's configuration with Custos's client (and `other`, a second client of the
/// same provider) registered for this deployment's callback.
fn provider_config(d: &Deployment, code_ttl: u64) -> Value {
    let callback = format!("{}/v1/auth/oidc/callback", d.base);
    json!({
        "port": 0,
        "code_ttl": code_ttl,
        "clients": [
            {"client_id": CLIENT, "client_secret": SECRET, "redirect_uris": [callback]},
            {"client_id": "other", "client_secret": SECRET, "redirect_uris": [callback]},
        ]
    })
}

/// One test's world: Custos, the provider, an org whose provider it is, and its owner.
struct World {
    d: Deployment,
    clock: Arc<ManualClock>,
    provider: Provider,
    org: String,
    owner_key: String,
}

impl World {
    async fn new(code_ttl: u64) -> Option<World> {
        let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
        let d = deployment(clock.clone()).await;
        let provider = Provider::start(provider_config(&d, code_ttl))?;
        Some(World::of(d, clock, provider).await)
    }

    /// A world whose provider is reached through `proxy` (its issuer names the proxy).
    async fn behind(proxy: &TokenSwapProxy) -> Option<World> {
        let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
        let d = deployment(clock.clone()).await;
        let mut config = provider_config(&d, 60);
        config["issuer"] = json!(format!("http://localhost:{}", proxy.port));
        let provider = Provider::start(config)?;
        proxy.forward_to(provider.port);
        Some(World::of(d, clock, provider).await)
    }

    async fn of(d: Deployment, clock: Arc<ManualClock>, provider: Provider) -> World {
        let (org, owner_key) = org_with_owner(&d, "Acme").await;
        let w = World {
            d,
            clock,
            provider,
            org,
            owner_key,
        };
        let (status, answer) = w
            .call(
                "PATCH",
                &w.owner_key.clone(),
                &format!("/v1/orgs/{}/settings", w.org),
                Some(json!({
                    "session_timeout": "10m",
                    "session_max_lifetime": "1h",
                    "identity_provider": {
                        "issuer": w.provider.issuer,
                        "audience": CLIENT,
                        "jwks_uri": format!("{}/jwks", w.provider.issuer),
                        "client_id": CLIENT,
                        "client_secret": SECRET,
                    }
                })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        w
    }

    /// An API call with a bearer credential.
    async fn call(
        &self,
        method: &str,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .d
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.d.base))
            .bearer_auth(token);
        if let Some(body) = body {
            r = r.json(&body);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Adds a member bound to the provider's person `sub`.
    async fn member(&self, name: &str, roles: &[&str], sub: &str) -> String {
        let (status, answer) = self
            .call(
                "POST",
                &self.owner_key,
                &format!("/v1/orgs/{}/members", self.org),
                Some(json!({
                    "name": name,
                    "roles": roles,
                    "identity": {"iss": self.provider.issuer, "sub": sub},
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer["id"].as_str().unwrap().to_string()
    }

    fn callback_prefix(&self) -> String {
        format!("{}/v1/auth/oidc/callback", self.d.base)
    }

    /// Starts a sign-in in `browser`; returns the provider's authorization URL.
    async fn start(&self, browser: &Browser) -> String {
        let seen = browser
            .get(&format!(
                "{}/v1/auth/oidc/login?org={}&return_to=/console",
                self.d.base, self.org
            ))
            .await;
        assert_eq!(seen.status, StatusCode::SEE_OTHER, "{}", seen.body);
        let location = seen.location.unwrap();
        assert!(location.starts_with(&self.provider.issuer), "{location}");
        location
    }

    /// A whole sign-in of `sub` with `amr`: the callback's answer and the session cookie.
    async fn sign_in(
        &self,
        browser: &Browser,
        sub: &str,
        amr: &str,
    ) -> (StatusCode, Option<String>, String) {
        let authorize = self.start(browser).await;
        let callback = browser
            .through_provider(&authorize, sub, amr, &self.callback_prefix())
            .await;
        let seen = browser.get(&callback).await;
        let session = browser.cookie(&self.d.base, "custos_session");
        (seen.status, session, seen.body)
    }

    /// The audit events of `action` in the deployment (oldest first), as the operator (the
    /// bootstrap token) reads them: refusals before an org is known belong to none.
    async fn events(&self, action: &str) -> Vec<Value> {
        let (status, page) = self
            .call(
                "GET",
                support::ADMIN,
                &format!("/v1/audit/events?action={action}&limit=1000"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["event"].clone())
            .collect()
    }

    /// The reason codes of refused sign-ins, oldest first.
    async fn refusals(&self) -> Vec<String> {
        self.d.custos.flush_auth_failures().await;
        self.events("auth.sign_in")
            .await
            .iter()
            .filter(|e| e["outcome"] == "denied")
            .map(|e| e["reason"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Creates a record of `category` with `token`; the status.
async fn write(w: &World, token: &str, category: &str) -> StatusCode {
    w.call(
        "POST",
        token,
        &format!("/v1/orgs/{}/records", w.org),
        Some(json!({"category": category, "subject": "user-1", "content": {"text": "hi"}})),
    )
    .await
    .0
}

#[tokio::test]
async fn a_person_signs_in_is_held_to_mfa_and_is_signed_out_when_idle_or_too_old() {
    let Some(w) = World::new(60).await else {
        return;
    };
    let alice = w.member("Alice", &["member"], "alice").await;
    let browser = Browser::new();

    // Signed in with a password only: a session, but no second factor.
    let (status, session, body) = w.sign_in(&browser, "alice", "pwd").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let session = session.expect("a session cookie");
    assert!(session.starts_with("cuss_"));
    assert_eq!(
        browser.cookie(&w.d.base, "custos_sign_in"),
        None,
        "pre-login cookie used up"
    );
    assert_eq!(write(&w, &session, "messages").await, StatusCode::CREATED);
    assert_eq!(
        write(&w, &session, "secure_notes").await,
        StatusCode::FORBIDDEN
    );
    let signed_in = w.events("auth.sign_in").await;
    let last = signed_in.last().unwrap();
    assert_eq!(last["outcome"], "success");
    assert_eq!(last["actor"]["id"], alice.as_str(), "{last}");
    assert_eq!(last["mfa"], false, "{last}");

    // A TOTP code after sign-in proves the second factor: the session is replaced.
    let (status, enrolled) = w
        .call(
            "POST",
            &session,
            &format!("/v1/orgs/{}/members/me/totp", w.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{enrolled}");
    let code = totp_rs::Builder::new()
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(
            totp_rs::Secret::try_from_base32(enrolled["secret"].as_str().unwrap()).unwrap(),
        )
        .build()
        .unwrap()
        .generate(w.clock.now().as_second() as u64)
        .to_string();
    let (status, stepped) = w
        .call(
            "POST",
            &session,
            &format!("/v1/orgs/{}/sessions", w.org),
            Some(json!({"totp": code})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stepped}");
    let stepped = stepped["token"].as_str().unwrap().to_string();
    assert_eq!(
        write(&w, &stepped, "secure_notes").await,
        StatusCode::CREATED
    );
    assert_eq!(
        write(&w, &session, "messages").await,
        StatusCode::UNAUTHORIZED,
        "the replaced session"
    );

    // Signed in with a one-time code at the provider (`amr` otp): MFA from the start.
    let (status, mfa_session, _) = w.sign_in(&Browser::new(), "alice", "pwd,otp").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let mfa_session = mfa_session.unwrap();
    assert_eq!(
        write(&w, &mfa_session, "secure_notes").await,
        StatusCode::CREATED
    );

    // Idle: used 9 minutes later it lives on; 10 minutes unused after that it is over.
    w.clock.advance(jiff::Span::new().minutes(9));
    assert_eq!(
        write(&w, &mfa_session, "messages").await,
        StatusCode::CREATED
    );
    w.clock.advance(jiff::Span::new().minutes(10));
    assert_eq!(
        write(&w, &mfa_session, "messages").await,
        StatusCode::UNAUTHORIZED
    );

    // Absolute: used every 5 minutes, it still ends an hour after sign-in.
    let (_, busy, _) = w.sign_in(&Browser::new(), "alice", "pwd").await;
    let busy = busy.unwrap();
    for _ in 0..11 {
        w.clock.advance(jiff::Span::new().minutes(5));
        assert_eq!(write(&w, &busy, "messages").await, StatusCode::CREATED);
    }
    w.clock.advance(jiff::Span::new().minutes(5));
    assert_eq!(write(&w, &busy, "messages").await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_session_cookie_works_for_reads_and_same_origin_changes_and_sign_out_ends_it() {
    let Some(w) = World::new(60).await else {
        return;
    };
    w.member("Bob", &["admin"], "bob").await;
    let browser = Browser::new();
    let (status, session, _) = w.sign_in(&browser, "bob", "pwd,otp").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let session = session.unwrap();
    let cookie = format!("custos_session={session}");
    let client = &w.d.client;
    let org_url = format!("{}/v1/orgs/{}", w.d.base, w.org);

    let r = client
        .get(&org_url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A change with the cookie from another site (or no Origin) is refused; from this
    // deployment's own origin it goes through.
    let records = format!("{org_url}/records");
    let body = json!({"category": "messages", "subject": "u", "content": {"t": 1}});
    for origin in [None, Some("http://localhost:1")] {
        let mut r = client.post(&records).header("cookie", &cookie).json(&body);
        if let Some(origin) = origin {
            r = r.header("origin", origin);
        }
        assert_eq!(
            r.send().await.unwrap().status(),
            StatusCode::FORBIDDEN,
            "{origin:?}"
        );
    }
    let r = client
        .post(&records)
        .header("cookie", &cookie)
        .header("origin", &w.d.base)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // Sign-out ends the session and clears the cookie; it is audited.
    let r = client
        .post(format!("{}/v1/auth/logout", w.d.base))
        .header("cookie", &cookie)
        .header("origin", &w.d.base)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("custos_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let r = client
        .get(&org_url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(w.events("auth.sign_out").await.len(), 1);
    // Signing out again, or with nothing, is no error.
    let r = client
        .post(format!("{}/v1/auth/logout", w.d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn refused_sign_ins_are_audited_with_their_reason_and_counted() {
    let Some(w) = World::new(2).await else { return };
    w.member("Carol", &["member"], "carol").await;
    let prefix = w.callback_prefix();

    // Another browser brings the answer back: no pre-login cookie.
    let a = Browser::new();
    let authorize = w.start(&a).await;
    let callback = a
        .through_provider(&authorize, "carol", "pwd", &prefix)
        .await;
    let seen = Browser::new().get(&callback).await;
    assert_eq!(seen.status, StatusCode::FORBIDDEN, "{}", seen.body);
    assert!(seen.body.contains("browser_mismatch"), "{}", seen.body);
    // The sign-in was used up by that: the right browser now finds it unknown.
    assert_eq!(a.get(&callback).await.status, StatusCode::FORBIDDEN);

    // A forged state.
    let seen = a.get(&format!("{prefix}?state=forged&code=x")).await;
    assert_eq!(seen.status, StatusCode::FORBIDDEN);

    // The provider's error instead of a code (the person cancelled).
    let b = Browser::new();
    w.start(&b).await;
    let state = state_of(&w.start(&b).await);
    let seen = b
        .get(&format!("{prefix}?state={state}&error=access_denied"))
        .await;
    assert!(seen.body.contains("provider_error"), "{}", seen.body);

    // A replayed code: used once by its own sign-in, then brought back under another one.
    let c = Browser::new();
    let authorize = w.start(&c).await;
    let first = c
        .through_provider(&authorize, "carol", "pwd", &prefix)
        .await;
    let code = query(&first, "code");
    assert_eq!(c.get(&first).await.status, StatusCode::SEE_OTHER);
    let state = state_of(&w.start(&c).await);
    let seen = c.get(&format!("{prefix}?state={state}&code={code}")).await;
    assert!(
        seen.body.contains("code_refused"),
        "replayed: {}",
        seen.body
    );

    // PKCE mismatch: an unused code of one sign-in finished under another (its verifier
    // does not match the code's challenge).
    let d = Browser::new();
    let authorize = w.start(&d).await;
    let unused = d
        .through_provider(&authorize, "carol", "pwd", &prefix)
        .await;
    let state = state_of(&w.start(&d).await);
    let seen = d
        .get(&format!(
            "{prefix}?state={state}&code={}",
            query(&unused, "code")
        ))
        .await;
    assert!(seen.body.contains("code_refused"), "PKCE: {}", seen.body);

    // An expired code (the provider keeps codes 2 s here).
    let e = Browser::new();
    let authorize = w.start(&e).await;
    let late = e
        .through_provider(&authorize, "carol", "pwd", &prefix)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(3_000)).await;
    let seen = e.get(&late).await;
    assert!(
        seen.body.contains("code_refused"),
        "expired code: {}",
        seen.body
    );

    // A nonce the browser changed on its way to the provider: the ID token carries it.
    let f = Browser::new();
    let authorize = w.start(&f).await;
    let tampered = replace_query(&authorize, "nonce", "chosen-by-the-browser");
    let back = f.through_provider(&tampered, "carol", "pwd", &prefix).await;
    let seen = f.get(&back).await;
    assert!(seen.body.contains("nonce_mismatch"), "{}", seen.body);

    // An expired sign-in: the browser took more than ten minutes.
    let g = Browser::new();
    let authorize = w.start(&g).await;
    let slow = g
        .through_provider(&authorize, "carol", "pwd", &prefix)
        .await;
    w.clock.advance(jiff::Span::new().minutes(11));
    let seen = g.get(&slow).await;
    assert!(seen.body.contains("state_expired"), "{}", seen.body);

    // A person of the provider who is no member, in an org that provisions nobody.
    let (status, _, body) = w.sign_in(&Browser::new(), "mallory", "pwd,otp").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("unknown_person"), "{body}");

    assert_eq!(
        w.refusals().await,
        [
            "browser_mismatch",
            "state_unknown",
            "state_unknown",
            "provider_error",
            "code_refused",
            "code_refused",
            "code_refused",
            "nonce_mismatch",
            "state_expired",
            "unknown_person",
        ]
    );
    let metrics =
        w.d.client
            .get(format!("{}/metrics", w.d.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert!(
        metrics.contains("custos_sign_in_refusals_total{reason=\"code_refused\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn keys_rotated_at_the_provider_are_fetched_again_and_unknown_people_join_when_the_org_allows(
) {
    let Some(w) = World::new(60).await else {
        return;
    };
    w.member("Dan", &["member"], "dan").await;
    let (status, _, body) = w.sign_in(&Browser::new(), "dan", "pwd").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    // The provider signs with a new key: Custos's cached keys do not hold it.
    w.provider.rotate_keys().await;
    let (status, session, body) = w.sign_in(&Browser::new(), "dan", "pwd").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "after rotation: {body}");
    assert_eq!(
        write(&w, &session.unwrap(), "messages").await,
        StatusCode::CREATED
    );

    // Just-in-time provisioning: with a role named, an unknown person becomes a member.
    let (status, answer) = w
        .call(
            "PATCH",
            &w.owner_key,
            &format!("/v1/orgs/{}/settings", w.org),
            Some(json!({"identity_provider": {
                "issuer": w.provider.issuer,
                "audience": CLIENT,
                "jwks_uri": format!("{}/jwks", w.provider.issuer),
                "client_id": CLIENT,
                "jit_role": "auditor",
            }})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        answer["identity_provider"].get("client_secret").is_none(),
        "write-only: {answer}"
    );
    // The secret was kept (same issuer and client): the code exchange still authenticates.
    let (status, session, body) = w.sign_in(&Browser::new(), "erin", "pwd").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let session = session.unwrap();
    let (status, members) = w
        .call(
            "GET",
            &w.owner_key,
            &format!("/v1/orgs/{}/members", w.org),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let erin = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["identity"]["sub"] == "erin")
        .unwrap_or_else(|| panic!("{members}"));
    assert_eq!(erin["roles"], json!(["auditor"]));
    assert_eq!(
        write(&w, &session, "messages").await,
        StatusCode::FORBIDDEN,
        "an auditor"
    );
}

#[tokio::test]
async fn id_tokens_of_another_issuer_another_client_or_with_changed_claims_are_refused() {
    let proxy = TokenSwapProxy::start().await;
    let Some(w) = World::behind(&proxy).await else {
        return;
    };
    w.member("Carol", &["member"], "carol").await;
    let callback = w.callback_prefix();
    // Through the proxy, untouched, signing in works.
    let (status, _, body) = w.sign_in(&Browser::new(), "carol", "pwd").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");

    // The same provider's token for its other client: wrong audience.
    let other = id_token_for(
        &Browser::new(),
        &w.provider.issuer,
        "other",
        SECRET,
        &callback,
        "carol",
    )
    .await;
    proxy.swap_next_id_token(other);
    let (status, _, body) = w.sign_in(&Browser::new(), "carol", "pwd").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("wrong_audience"), "{body}");

    // Another provider's token for a client of the same name: wrong issuer.
    let elsewhere = Provider::start(provider_config(&w.d, 60)).unwrap();
    let foreign = id_token_for(
        &Browser::new(),
        &elsewhere.issuer,
        CLIENT,
        SECRET,
        &callback,
        "carol",
    )
    .await;
    proxy.swap_next_id_token(foreign);
    let (_, _, body) = w.sign_in(&Browser::new(), "carol", "pwd").await;
    assert!(body.contains("wrong_issuer"), "{body}");

    // This provider's own token for this client, its claims changed after signing.
    let genuine = id_token_for(
        &Browser::new(),
        &w.provider.issuer,
        CLIENT,
        SECRET,
        &callback,
        "mallory",
    )
    .await;
    let forged = change_claim(&genuine, "sub", "carol");
    proxy.swap_next_id_token(forged);
    let (_, _, body) = w.sign_in(&Browser::new(), "carol", "pwd").await;
    assert!(body.contains("bad_signature"), "{body}");

    // A genuine token of this client from another sign-in: its nonce is not this one's.
    let replayed = id_token_for(
        &Browser::new(),
        &w.provider.issuer,
        CLIENT,
        SECRET,
        &callback,
        "carol",
    )
    .await;
    proxy.swap_next_id_token(replayed);
    let (_, _, body) = w.sign_in(&Browser::new(), "carol", "pwd").await;
    assert!(body.contains("nonce_mismatch"), "{body}");

    assert_eq!(
        w.refusals().await,
        [
            "wrong_audience",
            "wrong_issuer",
            "bad_signature",
            "nonce_mismatch"
        ]
    );
}

/// `jwt` with its claim `name` set to `value`, the signature kept as it was.
fn change_claim(jwt: &str, name: &str, value: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims[name] = json!(value);
    let payload = b64.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// The `state` of a provider authorization URL.
fn state_of(authorize: &str) -> String {
    query(authorize, "state")
}

/// Query parameter `name` of `url`.
fn query(url: &str, name: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{url} has no {name}"))
}

/// `url` with query parameter `name` set to `value`.
fn replace_query(url: &str, name: &str, value: &str) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

/// The environment variable the operator test's policy names for its client secret.
const OPERATOR_SECRET_ENV: &str = "CUSTOS_TEST_OPERATOR_CLIENT_SECRET";

#[tokio::test]
async fn operators_sign_in_with_a_second_factor_and_act_under_their_own_name() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let callback = format!("{base}/v1/auth/oidc/callback");
    let Some(provider) = Provider::start(json!({
        "port": 0,
        "clients": [{"client_id": "custos-operators", "client_secret": SECRET, "redirect_uris": [callback]}],
    })) else {
        return;
    };
    // Only this test reads the variable; the policy names it, never the secret.
    std::env::set_var(OPERATOR_SECRET_ENV, SECRET);
    let policy = Policy::parse(
        &format!(
            r#"
[service]
name = "Acme"
regions = ["us-east"]
public_url = "{base}"

[network]
allow = ["127.0.0.0/8", "::1/128"]

[operators]
session_timeout = "30m"

[operators.identity_provider]
issuer = "{issuer}"
client_id = "custos-operators"
client_secret_env = "{OPERATOR_SECRET_ENV}"

[categories.messages]
retention = "30d"
"#,
            issuer = provider.issuer
        ),
        "custos.toml",
    )
    .unwrap();
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let d = deploy_on(listener, policy, clock.clone(), |c| c).await;
    let call = |method: &str, token: &str, path: &str, body: Option<Value>| {
        let mut r = d
            .client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            r = r.json(&body);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, olga) = call(
        "POST",
        support::ADMIN,
        "/v1/operators",
        Some(json!({"name": "Olga", "identity": {"iss": provider.issuer, "sub": "olga"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{olga}");
    let olga = olga["id"].as_str().unwrap().to_string();
    // The bootstrap token is retired now.
    assert_eq!(
        call("GET", support::ADMIN, "/v1/orgs", None).await.0,
        StatusCode::FORBIDDEN
    );

    let sign_in = |sub: &'static str, amr: &'static str| {
        let browser = Browser::new();
        let (base, callback) = (base.clone(), callback.clone());
        async move {
            let seen = browser
                .get(&format!(
                    "{base}/v1/auth/oidc/login?operator=true&return_to=/console"
                ))
                .await;
            assert_eq!(seen.status, StatusCode::SEE_OTHER, "{}", seen.body);
            let back = browser
                .through_provider(&seen.location.unwrap(), sub, amr, &callback)
                .await;
            let seen = browser.get(&back).await;
            (
                seen.status,
                browser.cookie(&base, "custos_session"),
                seen.body,
            )
        }
    };
    // A password alone is not enough for an operator; a person who is none is refused.
    let (status, _, body) = sign_in("olga", "pwd").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("no_second_factor"), "{body}");
    let (_, _, body) = sign_in("mallory", "pwd,otp").await;
    assert!(body.contains("unknown_person"), "{body}");

    let (status, session, body) = sign_in("olga", "pwd,otp").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let session = session.unwrap();
    assert!(session.starts_with("cuso_"), "an operator's session");

    // The operator creates an org with its owner, and is named as itself in the log.
    let (status, org) = call(
        "POST",
        &session,
        "/v1/orgs",
        Some(json!({"name": "Beta", "owner": {"name": "Bea"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    let org = org["id"].as_str().unwrap().to_string();
    let (_, page) = call("GET", &session, "/v1/audit/events?action=org.create", None).await;
    let created = &page["items"][0]["event"];
    assert_eq!(
        created["actor"],
        json!({"kind": "operator", "id": olga}),
        "{created}"
    );
    // Inside the org it needs a grant, which it files under its own name.
    let (status, _) = call("GET", &session, &format!("/v1/orgs/{org}/records"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, filed) = call(
        "POST",
        &session,
        &format!("/v1/orgs/{org}/support-requests"),
        Some(json!({
            "justification": "customer_initiated_support",
            "ticket": "SUP-1",
            "reason": "the export fails",
            "scope": "metadata",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{filed}");
    assert_eq!(filed["requested_by"], format!("operator:{olga}"));

    // Idle for the policy's 30 minutes, the session is over; a new one is signed out.
    clock.advance(jiff::Span::new().minutes(31));
    assert_eq!(
        call("GET", &session, "/v1/operators", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, session, _) = sign_in("olga", "pwd,otp").await;
    let session = session.unwrap();
    assert_eq!(
        call("GET", &session, "/v1/operators", None).await.0,
        StatusCode::OK
    );
    let r = d
        .client
        .post(format!("{base}/v1/auth/logout"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        call("GET", &session, "/v1/operators", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_signed_in_person_makes_personal_access_tokens_that_never_count_as_a_second_factor() {
    let Some(w) = World::new(60).await else {
        return;
    };
    w.member("Fay", &["member"], "fay").await;
    let (_, plain, _) = w.sign_in(&Browser::new(), "fay", "pwd").await;
    let plain = plain.unwrap();
    let make = |token: String, expires_in: &'static str| {
        let w = &w;
        async move {
            w.call(
                "POST",
                &token,
                "/v1/auth/tokens",
                Some(json!({"name": "laptop cli", "expires_in": expires_in})),
            )
            .await
        }
    };
    // Without a second factor, no token.
    let (status, answer) = make(plain.clone(), "30d").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["code"], "mfa_required", "{answer}");

    let (_, session, _) = w.sign_in(&Browser::new(), "fay", "pwd,otp").await;
    let session = session.unwrap();
    let (status, answer) = make(session.clone(), "2y").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, created) = make(session.clone(), "1d").await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("cup_"));

    // The token works with the person's roles, but proves no second factor.
    assert_eq!(write(&w, &token, "messages").await, StatusCode::CREATED);
    assert_eq!(
        write(&w, &token, "secure_notes").await,
        StatusCode::FORBIDDEN
    );
    let (status, _) = make(token.clone(), "1d").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a token makes no token");

    // Listed without the token; revoked, it stops working.
    let (status, listed) = w.call("GET", &token, "/v1/auth/tokens", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&token));
    assert!(listed[0]["last_used_at"].is_string(), "{listed}");
    let id = created["id"].as_str().unwrap();
    let (status, _) = w
        .call(
            "DELETE",
            &w.owner_key,
            &format!("/v1/auth/tokens/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another member's token");
    let (status, _) = w
        .call("DELETE", &session, &format!("/v1/auth/tokens/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        write(&w, &token, "messages").await,
        StatusCode::UNAUTHORIZED
    );

    // A day later a token made for a day has expired.
    let (_, again) = make(session.clone(), "1d").await;
    let again = again["token"].as_str().unwrap().to_string();
    w.clock.advance(jiff::Span::new().hours(25));
    assert_eq!(
        write(&w, &again, "messages").await,
        StatusCode::UNAUTHORIZED
    );
    let events = w.events("auth.token_create").await;
    let made: Vec<&Value> = events
        .iter()
        .filter(|e| e["outcome"] == "success")
        .collect();
    assert_eq!(made.len(), 2, "and the refusals: {events:?}");
    assert_eq!(events.len() - made.len(), 2, "no factor, a token's own");
    assert!(!made[0].to_string().contains("cup_"), "{}", made[0]);
    assert_eq!(w.events("auth.token_revoke").await.len(), 1);
}
