//! Findings of the hostile review (issue 23) that are about who may do what: erasure reaches
//! every category whoever filed it, append-only categories stay append-only, an admin cannot
//! loosen or take over a peer admin, and refused credentials leave a trace and a limit.

use std::sync::Arc;

use custos_core::{Clock, ManualClock};
use custos_crypto::DeploymentSigner;
use custos_policy::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};

mod support;

use support::{deploy, org_with_owner, Deployment, ADMIN};

struct Server {
    d: Deployment,
    clock: Arc<ManualClock>,
}

async fn server() -> Server {
    let extra = r#"
[categories.legal_notes]
retention = "30d"
access = { roles = ["owner", "admin", "member", "auditor", "service"], groups = ["legal"] }

[categories.secure_notes]
retention = "30d"
access = { roles = ["owner", "admin", "member", "auditor", "service"], require_mfa = true }
"#;
    let policy = Policy::parse(&format!("{}{extra}", Policy::BUILTIN_TOML), "review.toml").unwrap();
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let d = deploy(policy, clock.clone(), |c| {
        c.with_audit_signer(Arc::new(DeploymentSigner::ephemeral("Example SaaS")))
    })
    .await;
    Server { d, clock }
}

impl Server {
    async fn call(
        &self,
        method: &str,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .d
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.d.base))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, token: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, token, path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    /// An org with its first owner (every role): (org id, the owner's API key).
    async fn org(&self) -> (String, String) {
        org_with_owner(&self.d, "R").await
    }

    /// A member of `org` made by `creator` (an owner, or the admin token for the first owner
    /// of an org without one): (API key, id).
    async fn member(&self, org: &str, creator: &str, body: Value) -> (String, String) {
        let v = self
            .ok(
                "POST",
                creator,
                &format!("/v1/orgs/{org}/members"),
                Some(body),
            )
            .await;
        (
            v["api_key"].as_str().unwrap().into(),
            v["id"].as_str().unwrap().into(),
        )
    }

    /// A session for the member with `key` (enrolling it with the key alone).
    async fn session(&self, org: &str, key: &str) -> String {
        let secret = self
            .ok(
                "POST",
                key,
                &format!("/v1/orgs/{org}/members/me/totp"),
                None,
            )
            .await["secret"]
            .as_str()
            .unwrap()
            .to_string();
        let code = totp_rs::Builder::new()
            .with_digits(6)
            .with_step_duration(30)
            .with_secret(totp_rs::Secret::try_from_base32(&secret).unwrap())
            .build()
            .unwrap()
            .generate(self.clock.now().as_second() as u64)
            .to_string();
        self.ok(
            "POST",
            key,
            &format!("/v1/orgs/{org}/sessions"),
            Some(json!({ "totp": code })),
        )
        .await["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn events(&self, query: &str) -> Vec<Value> {
        self.ok(
            "GET",
            ADMIN,
            &format!("/v1/audit/events?{query}&limit=1000"),
            None,
        )
        .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }
}

#[tokio::test]
async fn erasure_reaches_every_category_whoever_filed_it_and_names_the_filer() {
    let s = server().await;
    // The writer is in the `legal` group, which only a member of it may grant: it is the
    // org's first owner (every role), the one member the admin token makes (in an org without
    // an owner).
    let org = s
        .ok("POST", ADMIN, "/v1/orgs", Some(json!({"name": "R"})))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let every_role = ["owner", "admin", "member", "auditor", "service"];
    let (writer_key, _) = s
        .member(
            &org,
            ADMIN,
            json!({"name": "w", "roles": every_role, "groups": ["legal"]}),
        )
        .await;
    let (app, app_id) = s
        .member(
            &org,
            &writer_key,
            json!({"name": "app", "roles": ["service"]}),
        )
        .await;
    let writer = s.session(&org, &writer_key).await;
    let records = format!("/v1/orgs/{org}/records");
    let mut ids = Vec::new();
    for category in ["messages", "legal_notes", "secure_notes"] {
        let v = s
            .ok(
                "POST",
                &writer,
                &records,
                Some(json!({"category": category, "subject": "carol", "content": {"t": "x"}})),
            )
            .await;
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    // The service key may not read two of them...
    for id in &ids[1..] {
        let (status, _) = s.call("GET", &app, &format!("{records}/{id}"), None).await;
        assert!(status == StatusCode::FORBIDDEN, "{status}");
    }
    // ...but files the subject's erasure, which Custos fulfils over every category.
    let request = s
        .ok(
            "POST",
            &app,
            &format!("/v1/orgs/{org}/requests"),
            Some(json!({"type": "erasure", "subject": "carol"})),
        )
        .await;
    assert_eq!(request["status"], "completed", "{request}");
    for id in &ids {
        let (status, answer) = s
            .call("GET", &writer, &format!("{records}/{id}"), None)
            .await;
        assert!(
            status == StatusCode::GONE || status == StatusCode::NOT_FOUND,
            "{id} still readable: {status} {answer}"
        );
    }
    let filed = s.events(&format!("org={org}&action=request.create")).await;
    assert_eq!(filed.len(), 1);
    assert_eq!(
        filed[0]["event"]["actor"]["id"],
        app_id.as_str(),
        "{filed:?}"
    );
}

#[tokio::test]
async fn append_only_categories_refuse_every_delete() {
    let s = server().await;
    let (org, org_owner) = s.org().await;
    let (owner_key, _) = s
        .member(&org, &org_owner, json!({"name": "o", "roles": ["owner"]}))
        .await;
    let owner = s.session(&org, &owner_key).await;
    let records = format!("/v1/orgs/{org}/records");
    let id = s
        .ok(
            "POST",
            &owner,
            &records,
            Some(json!({"category": "audit", "content": {"entry": "kept"}})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (method, path) in [
        ("DELETE", format!("{records}/{id}")),
        ("DELETE", format!("{records}/{id}?hard=true")),
        (
            "POST",
            format!("/v1/orgs/{org}/categories/audit/delete-all"),
        ),
    ] {
        let (status, answer) = s.call(method, &owner, &path, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains("append-only"),
            "{answer}"
        );
    }
    let (status, _) = s
        .call("GET", &owner, &format!("{records}/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "still there");
}

#[tokio::test]
async fn an_admin_cannot_loosen_or_take_over_a_peer_admin() {
    let s = server().await;
    let (org, org_owner) = s.org().await;
    let (admin_key, admin_id) = s
        .member(&org, &org_owner, json!({"name": "a", "roles": ["admin"]}))
        .await;
    let (_, peer_id) = s
        .member(
            &org,
            &org_owner,
            json!({"name": "p", "roles": ["admin"], "mfa": true}),
        )
        .await;
    let (owner_key, _) = s
        .member(
            &org,
            &org_owner,
            json!({"name": "o", "roles": ["owner", "admin"]}),
        )
        .await;
    let admin = s.session(&org, &admin_key).await;
    let peer = format!("/v1/orgs/{org}/members/{peer_id}");
    for (method, path, body) in [
        ("PATCH", peer.clone(), Some(json!({"mfa": false}))),
        ("POST", format!("{peer}/key"), None),
        ("DELETE", format!("{peer}/key"), None),
        ("DELETE", peer.clone(), None),
    ] {
        let (status, answer) = s.call(method, &admin, &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
    }
    // The admin itself, with a second factor, may rotate its own key; with the key alone not.
    let own = format!("/v1/orgs/{org}/members/{admin_id}/key");
    assert_eq!(
        s.call("POST", &admin_key, &own, None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(s.call("POST", &admin, &own, None).await.0, StatusCode::OK);
    // An owner may.
    let owner = s.session(&org, &owner_key).await;
    s.ok("PATCH", &owner, &peer, Some(json!({"mfa": false})))
        .await;
}

#[tokio::test]
async fn mfa_refusals_name_the_category_once() {
    let s = server().await;
    let (org, org_owner) = s.org().await;
    let (key, _) = s
        .member(&org, &org_owner, json!({"name": "m", "roles": ["member"]}))
        .await;
    let (status, answer) = s
        .call(
            "POST",
            &key,
            &format!("/v1/orgs/{org}/records"),
            Some(json!({"category": "secure_notes", "content": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let detail = answer["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("category `secure_notes` needs a second factor"),
        "{detail}"
    );
}

#[tokio::test]
async fn refused_credentials_are_audited_counted_and_limited_per_source() {
    let s = server().await;
    let (org, org_owner) = s.org().await;
    let (key, _) = s
        .member(&org, &org_owner, json!({"name": "m", "roles": ["member"]}))
        .await;
    let path = format!("/v1/orgs/{org}/records?limit=1");
    let bad = "cus_ZZtop123secretpartthatisnotkept0000000000";
    for _ in 0..3 {
        assert_eq!(
            s.call("GET", bad, &path, None).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    s.d.custos.flush_auth_failures().await;
    let events = s.events("action=auth.reject").await;
    assert_eq!(events.len(), 3, "{events:?}");
    let leaf = serde_json::to_string(&events).unwrap();
    assert!(
        events.iter().all(
            |e| e["event"]["key_prefix"] == "ZZtop123" && e["event"]["reason"] == "unknown_key"
        ),
        "{leaf}"
    );
    assert!(!leaf.contains("secretpart"), "the secret is never recorded");
    let metrics =
        s.d.client
            .get(format!("{}/metrics", s.d.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert!(
        metrics.contains("custos_auth_failures_total{reason=\"unknown_key\"} 3"),
        "{metrics}"
    );
    // After its allowance the source gets 429 with Retry-After for bad keys, one audit event
    // saying it was limited, and no event per further try; valid keys still pass from it.
    for _ in 3..custos_core::limits::SOURCE_FAILURES {
        assert_eq!(
            s.call("GET", bad, &path, None).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    for _ in 0..50 {
        let r =
            s.d.client
                .get(format!("{}{path}", s.d.base))
                .bearer_auth(bad)
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers().contains_key("retry-after"));
    }
    assert_eq!(s.call("GET", &key, &path, None).await.0, StatusCode::OK);
    s.d.custos.flush_auth_failures().await;
    let events = s.events("action=auth.reject").await;
    assert_eq!(events.len() as u32, custos_core::limits::SOURCE_FAILURES);
    let limited: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"]["source_limited"] == true)
        .collect();
    assert_eq!(limited.len(), 1, "{limited:?}");
    s.clock.advance(jiff::Span::new().seconds(61));
    assert_eq!(
        s.call("GET", bad, &path, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn free_text_kept_in_plain_text_refuses_identifiers() {
    let s = server().await;
    let (status, answer) = s
        .call(
            "POST",
            ADMIN,
            "/v1/orgs",
            Some(json!({"name": "Call +1-202-555-0143"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("`name`"),
        "{answer}"
    );
    let (org, org_owner) = s.org().await;
    // A person's display name is fine for a member; an e-mail address is not.
    s.member(
        &org,
        &org_owner,
        json!({"name": "Alice Smith", "roles": ["owner"]}),
    )
    .await;
    let (status, _) = s
        .call(
            "POST",
            &org_owner,
            &format!("/v1/orgs/{org}/members"),
            Some(json!({"name": "zed@mailpit.io", "roles": ["member"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, answer) = s
        .call(
            "POST",
            &org_owner,
            &format!("/v1/orgs/{org}/holds"),
            Some(json!({"reason": "dispute with zed@mailpit.io"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("EMAIL_ADDRESS"),
        "{answer}"
    );
    assert!(!answer.to_string().contains("mailpit"), "{answer}");
    let holds = s
        .ok("GET", &org_owner, &format!("/v1/orgs/{org}/holds"), None)
        .await;
    assert_eq!(holds.as_array().map(Vec::len), Some(0), "{holds}");
}
