//! Customer-approved support access over HTTP: the operator is bounded once an org has an
//! owner; it asks, an owner or admin with a second factor approves (or denies); the grant's
//! scope, categories, end, revocation and the org's `support_access` setting decide what the
//! operator may do; every access carries the grant in the audit log and is listed with its
//! inclusion proof. (The independent verifier checks those proofs in the `custos` crate's
//! `support_grants` test, against a served binary.)

use std::sync::Arc;

use custos_core::{Clock, ManualClock};
use custos_crypto::DeploymentSigner;
use custos_policy::Policy;
use jiff::ToSpan;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

mod support;

use support::{deploy, ADMIN};

struct World {
    d: support::Deployment,
    clock: Arc<ManualClock>,
    org: String,
    /// The org's first owner's API key.
    owner_key: String,
    /// A TOTP session of that owner (a second factor).
    owner: String,
}

impl World {
    async fn call(
        &self,
        method: &str,
        token: &str,
        grant: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let method: Method = method.parse().unwrap();
        let mut req = self
            .d
            .client
            .request(method, format!("{}{path}", self.d.base))
            .bearer_auth(token);
        if let Some(grant) = grant {
            req = req.header("X-Custos-Grant", grant);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, token: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, token, None, path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    fn org_path(&self, rest: &str) -> String {
        format!("/v1/orgs/{}{rest}", self.org)
    }

    /// A support request the operator files with `body` merged over a valid one.
    async fn file(&self, extra: Value) -> (StatusCode, Value) {
        let mut body = json!({
            "justification": "customer_initiated_support",
            "ticket": "SUP-4711",
            "reason": "the customer's nightly export fails",
            "scope": "read",
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let path = self.org_path("/support-requests");
        self.call("POST", ADMIN, None, &path, Some(body)).await
    }

    /// A request of `extra` filed and approved by the owner's session; its id.
    async fn grant(&self, extra: Value) -> String {
        let (status, req) = self.file(extra).await;
        assert_eq!(status, StatusCode::CREATED, "{req}");
        let id = req["id"].as_str().unwrap().to_string();
        let path = self.org_path(&format!("/support-requests/{id}/approve"));
        self.ok("POST", &self.owner, &path, None).await;
        id
    }

    /// A record the owner's session writes; its id.
    async fn record(&self, category: &str) -> String {
        self.ok(
            "POST",
            &self.owner,
            &self.org_path("/records"),
            Some(json!({"category": category, "content": {"text": "hello"}})),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn totp_code(secret: &str, at: jiff::Timestamp) -> String {
    totp_rs::Builder::new()
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(at.as_second() as u64)
        .to_string()
}

async fn world() -> World {
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let d = deploy(Policy::builtin(), clock.clone(), |c| {
        c.with_audit_signer(Arc::new(DeploymentSigner::ephemeral("Example SaaS")))
    })
    .await;
    let mut w = World {
        d,
        clock,
        org: String::new(),
        owner_key: String::new(),
        owner: String::new(),
    };
    let created = w
        .ok(
            "POST",
            ADMIN,
            "/v1/orgs",
            Some(json!({"name": "Acme", "owner": {"name": "Olive"}})),
        )
        .await;
    w.org = created["id"].as_str().unwrap().to_string();
    w.owner_key = created["owner"]["api_key"].as_str().unwrap().to_string();
    let secret = w
        .ok("POST", &w.owner_key, &w.org_path("/members/me/totp"), None)
        .await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    w.owner = w.owner_session(&secret).await;
    // Sessions last the org's timeout: make it the longest, so the owner outlives the grants.
    w.ok(
        "PATCH",
        &w.owner,
        &w.org_path("/settings"),
        Some(json!({"session_timeout": "24h"})),
    )
    .await;
    // A fresh time step: each TOTP code opens one session.
    w.clock.advance(31.seconds());
    w.owner = w.owner_session(&secret).await;
    w
}

impl World {
    /// A session of the owner, opened with its key and the current TOTP code of `secret`.
    async fn owner_session(&self, secret: &str) -> String {
        let code = totp_code(secret, self.clock.now());
        self.ok(
            "POST",
            &self.owner_key,
            &self.org_path("/sessions"),
            Some(json!({ "totp": code })),
        )
        .await["token"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

#[tokio::test]
async fn the_operator_needs_a_grant_the_org_approved_with_a_second_factor() {
    let w = world().await;
    let record = w.record("messages").await;
    let read = w.org_path(&format!("/records/{record}"));
    // No grant: refused, and the refusal is audited.
    let (status, answer) = w.call("GET", ADMIN, None, &read, None).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("grant_required")),
        "{answer}"
    );
    let (status, answer) = w
        .call(
            "POST",
            ADMIN,
            None,
            &w.org_path("/members"),
            Some(json!({"name": "mole", "roles": ["owner"]})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an operator adds no member: {answer}"
    );

    // Filed, pending; only an owner or admin with a second factor decides.
    let (status, req) = w
        .file(json!({"categories": ["messages"], "duration": "2h"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{req}");
    assert_eq!(
        (&req["status"], &req["active"]),
        (&json!("pending"), &json!(false))
    );
    let id = req["id"].as_str().unwrap();
    let approve = w.org_path(&format!("/support-requests/{id}/approve"));
    let plain = w
        .ok(
            "POST",
            &w.owner,
            &w.org_path("/members"),
            Some(json!({"name": "m", "roles": ["member", "auditor"]})),
        )
        .await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    for (who, code) in [
        (ADMIN, "forbidden"),
        (plain.as_str(), "forbidden"),
        (w.owner_key.as_str(), "mfa_required"),
    ] {
        let (status, answer) = w.call("POST", who, None, &approve, None).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::FORBIDDEN, Some(code)),
            "{answer}"
        );
    }
    // Pending is not active.
    let (status, answer) = w.call("GET", ADMIN, Some(id), &read, None).await;
    assert_eq!(answer["code"], "grant_required", "{status} {answer}");
    // Approved for less than asked (never more).
    let (status, answer) = w
        .call(
            "POST",
            &w.owner,
            None,
            &approve,
            Some(json!({"duration": "3h"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let approved = w
        .ok("POST", &w.owner, &approve, Some(json!({"duration": "1h"})))
        .await;
    assert_eq!(
        (&approved["status"], &approved["active"]),
        (&json!("approved"), &json!(true))
    );
    let (status, again) = w.call("POST", &w.owner, None, &approve, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");

    // Under the grant: exactly its scope (read) and categories (messages).
    let body = w.ok_under(id, "GET", &read).await;
    assert_eq!(body["content"]["text"], "hello");
    let logs = w.record("app_logs").await;
    let (status, answer) = w
        .call(
            "GET",
            ADMIN,
            Some(id),
            &w.org_path(&format!("/records/{logs}")),
            None,
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, answer) = w
        .call(
            "POST",
            ADMIN,
            Some(id),
            &w.org_path("/records"),
            Some(json!({"category": "messages", "content": "x"})),
        )
        .await;
    assert_eq!(
        answer["code"], "grant_required",
        "read is not read_write: {status}"
    );
    let listed = w.ok_under(id, "GET", &w.org_path("/records")).await;
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [record.as_str()],
        "only the granted category is listed"
    );
    // Nothing under a grant changes the org's settings or its members.
    for (method, path, body) in [
        (
            "PATCH",
            w.org_path("/settings"),
            json!({"require_mfa_for_admins": false}),
        ),
        (
            "POST",
            w.org_path("/members"),
            json!({"name": "x", "roles": ["owner"]}),
        ),
    ] {
        let (status, answer) = w.call(method, ADMIN, Some(id), &path, Some(body)).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden"))
        );
    }

    // The second the grant ends, it stops.
    w.clock.advance(59.minutes());
    w.ok_under(id, "GET", &read).await;
    w.clock.advance(1.minutes());
    let (status, answer) = w.call("GET", ADMIN, Some(id), &read, None).await;
    assert_eq!(answer["code"], "grant_required", "{status} {answer}");
    let listed = w
        .ok("GET", &w.owner, &w.org_path("/support-requests"), None)
        .await;
    assert_eq!(listed[0]["status"], "ended", "{listed}");
}

impl World {
    /// `GET`-like call under grant `grant` that must succeed; the body.
    async fn ok_under(&self, grant: &str, method: &str, path: &str) -> Value {
        let (status, v) = self.call(method, ADMIN, Some(grant), path, None).await;
        assert!(
            status.is_success(),
            "{method} {path} under {grant}: {status} {v}"
        );
        v
    }
}

#[tokio::test]
async fn a_metadata_grant_shows_no_content_and_revocation_is_immediate() {
    let w = world().await;
    let record = w.record("messages").await;
    let id = w.grant(json!({"scope": "metadata"})).await;
    let listed = w.ok_under(&id, "GET", &w.org_path("/records")).await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    for key in ["content", "metadata", "subject"] {
        assert!(
            items[0].get(key).is_none(),
            "a listing shows no {key}: {listed}"
        );
    }
    w.ok_under(&id, "GET", &w.org_path("/members")).await;
    w.ok_under(&id, "GET", &w.org_path("/deletion-log")).await;
    let read = w.org_path(&format!("/records/{record}"));
    let (status, answer) = w.call("GET", ADMIN, Some(&id), &read, None).await;
    assert_eq!(
        answer["code"], "grant_required",
        "metadata reads no content: {status}"
    );

    // Revoked: the next request under it is refused at once.
    let revoke = w.org_path(&format!("/support-requests/{id}/revoke"));
    let revoked = w.ok("POST", &w.owner, &revoke, None).await;
    assert_eq!(revoked["status"], "revoked");
    let (status, answer) = w
        .call("GET", ADMIN, Some(&id), &w.org_path("/records"), None)
        .await;
    assert_eq!(answer["code"], "grant_required", "{status} {answer}");
    let (status, _) = w.call("POST", &w.owner, None, &revoke, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn no_grant_edits_an_append_only_category() {
    let w = world().await;
    let audit = w.record("audit").await;
    let id = w.grant(json!({"scope": "read_write"})).await;
    let path = w.org_path(&format!("/records/{audit}"));
    for suffix in ["", "?hard=true"] {
        let (status, answer) = w
            .call("DELETE", ADMIN, Some(&id), &format!("{path}{suffix}"), None)
            .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{answer}"
        );
    }
    let (status, answer) = w
        .call(
            "POST",
            ADMIN,
            Some(&id),
            &w.org_path("/categories/audit/delete-all"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let view = w.ok("GET", &w.owner, &path, None).await;
    assert_eq!(view["state"], "active");
    // An editable category, the grant may change.
    let message = w.record("messages").await;
    let (status, answer) = w
        .call(
            "DELETE",
            ADMIN,
            Some(&id),
            &w.org_path(&format!("/records/{message}")),
            None,
        )
        .await;
    assert!(status.is_success(), "{status} {answer}");
}

#[tokio::test]
async fn requests_expire_unanswered_and_the_org_can_forbid_support_access() {
    let w = world().await;
    let (_, pending) = w.file(json!({})).await;
    let pending = pending["id"].as_str().unwrap().to_string();
    let active = w.grant(json!({})).await;
    w.clock.advance(12.hours().seconds(1));
    let approve = w.org_path(&format!("/support-requests/{pending}/approve"));
    let (status, answer) = w.call("POST", &w.owner, None, &approve, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("expired"),
        "{answer}"
    );
    // (The 8 h grant ended meanwhile too.)
    let active_8h = w.grant(json!({})).await;
    w.ok_under(&active_8h, "GET", &w.org_path("/records")).await;
    let (status, _) = w
        .call("GET", ADMIN, Some(&active), &w.org_path("/records"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    w.ok(
        "PATCH",
        &w.owner,
        &w.org_path("/settings"),
        Some(json!({"support_access": "forbidden"})),
    )
    .await;
    let (status, answer) = w.file(json!({})).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, answer) = w
        .call(
            "GET",
            ADMIN,
            Some(&active_8h),
            &w.org_path("/records"),
            None,
        )
        .await;
    assert_eq!(answer["code"], "grant_required", "{status} {answer}");
}

#[tokio::test]
async fn bad_support_requests_are_refused_and_store_nothing() {
    let w = world().await;
    for (extra, field) in [
        (json!({"justification": "curiosity"}), "justification"),
        (json!({"scope": "everything"}), "scope"),
        (json!({"duration": "9h"}), "duration"),
        (json!({"duration": "soon"}), "duration"),
        (json!({"categories": ["nope"]}), "nope"),
        (json!({"categories": []}), "categories"),
        (json!({"ticket": ""}), "ticket"),
        (json!({"reason": "call jane@example.com"}), "reason"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let (status, answer) = w.file(extra.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {answer}");
        let detail = answer["detail"].as_str().unwrap();
        assert!(detail.contains(field), "{extra}: {detail}");
        assert!(!detail.contains("jane@"), "{detail}");
    }
    let listed = w
        .ok("GET", &w.owner, &w.org_path("/support-requests"), None)
        .await;
    assert_eq!(listed, json!([]));
    // A malformed grant header is refused before anything is looked up or audited.
    let (status, answer) = w
        .call(
            "GET",
            ADMIN,
            Some("not a grant!"),
            &w.org_path("/records"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

#[tokio::test]
async fn every_access_under_a_grant_is_listed_with_its_proof() {
    let w = world().await;
    let record = w.record("messages").await;
    let id = w.grant(json!({"scope": "read_write"})).await;
    w.ok_under(&id, "GET", &w.org_path(&format!("/records/{record}")))
        .await;
    w.ok_under(&id, "GET", &w.org_path("/records")).await;
    w.ok_under(&id, "GET", &w.org_path("/holds")).await;
    // A refused try under the grant is an access too.
    let (status, _) = w
        .call("DELETE", ADMIN, Some(&id), &w.org_path("/holds/none"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let accesses = w
        .ok(
            "GET",
            &w.owner,
            &w.org_path(&format!("/support-requests/{id}/accesses")),
            None,
        )
        .await;
    let listed: Vec<u64> = accesses["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["audit_index"].as_u64().unwrap())
        .collect();
    // The same set, read from the whole log by the org's owner.
    let events = w
        .ok(
            "GET",
            &w.owner,
            &format!("/v1/audit/events?org={}&limit=1000", w.org),
            None,
        )
        .await;
    let carrying: Vec<u64> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["grant"] == id.as_str())
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, carrying);
    assert!(listed.len() >= 5, "{accesses}");
    let checkpoint = accesses["checkpoint"].as_str().unwrap();
    for access in accesses["accesses"].as_array().unwrap() {
        use base64::Engine;
        use sha2::Digest;
        let leaf = base64::engine::general_purpose::STANDARD
            .decode(access["leaf"].as_str().unwrap())
            .unwrap();
        let mut hasher = sha2::Sha256::new();
        hasher.update([0u8]);
        hasher.update(&leaf);
        let hash = base64::engine::general_purpose::STANDARD.encode(hasher.finalize());
        let proof = &access["inclusion_proof"];
        assert_eq!(proof["leaf_hash"], hash.as_str());
        assert_eq!(proof["index"], access["audit_index"]);
        assert!(
            checkpoint.contains(&format!("\n{}\n", proof["tree_size"])),
            "{checkpoint}"
        );
    }
    // The operator sees its own grant's accesses; a member that reads no evidence does not.
    let path = w.org_path(&format!("/support-requests/{id}/accesses"));
    w.ok("GET", ADMIN, &path, None).await;
    let plain = w
        .ok(
            "POST",
            &w.owner,
            &w.org_path("/members"),
            Some(json!({"name": "m", "roles": ["member"]})),
        )
        .await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = w.call("GET", &plain, None, &path, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_ownerless_org_gets_only_its_first_owner_from_the_operator() {
    let w = world().await;
    let org = w
        .ok("POST", ADMIN, "/v1/orgs", Some(json!({"name": "Bare"})))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let members = format!("/v1/orgs/{org}/members");
    let (status, answer) = w
        .call(
            "POST",
            ADMIN,
            None,
            &members,
            Some(json!({"name": "m", "roles": ["member"]})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    w.ok(
        "POST",
        ADMIN,
        &members,
        Some(json!({"name": "o", "roles": ["owner"]})),
    )
    .await;
    let (status, answer) = w
        .call(
            "POST",
            ADMIN,
            None,
            &members,
            Some(json!({"name": "o2", "roles": ["owner"]})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = w
        .call(
            "GET",
            ADMIN,
            None,
            &format!("/v1/orgs/{org}/settings"),
            None,
        )
        .await;
    assert_eq!(answer["code"], "grant_required", "{status}");
    // Deployment-level reads stay open.
    w.ok("GET", ADMIN, &format!("/v1/orgs/{org}"), None).await;
    w.ok("GET", ADMIN, "/v1/orgs", None).await;
}

#[tokio::test]
async fn a_suspended_org_refuses_its_members_until_the_operator_resumes_it() {
    let w = world().await;
    let record = w.record("messages").await;
    let read = w.org_path(&format!("/records/{record}"));
    let suspend = w.org_path("/suspend");
    // Only the operator suspends.
    let (status, answer) = w.call("POST", &w.owner, None, &suspend, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let view = w.ok("POST", ADMIN, &suspend, None).await;
    assert_eq!(view["status"], "suspended", "{view}");
    assert!(view["suspended_since"].is_string(), "{view}");
    let (status, _) = w.call("POST", ADMIN, None, &suspend, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "suspended once");
    // Members may read the org's status, and nothing else.
    let org = w.ok("GET", &w.owner, &w.org_path(""), None).await;
    assert_eq!(org["status"], "suspended");
    for (method, path) in [("GET", read.clone()), ("GET", w.org_path("/records"))] {
        let (status, answer) = w.call(method, &w.owner, None, &path, None).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("org_suspended")),
            "{method} {path}: {answer}"
        );
    }
    let view = w.ok("POST", ADMIN, &w.org_path("/resume"), None).await;
    assert_eq!(view["status"], "active", "{view}");
    w.ok("GET", &w.owner, &read, None).await;
    let (status, _) = w
        .call("POST", ADMIN, None, &w.org_path("/resume"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "not suspended");
    // Both were audited, and the refusal too.
    let events = w
        .ok(
            "GET",
            &w.owner,
            &format!("/v1/audit/events?org={}&limit=1000", w.org),
            None,
        )
        .await;
    let actions: Vec<(&str, &str)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"]["action"].as_str().unwrap(),
                e["event"]["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    for wanted in [
        ("org.suspend", "success"),
        ("org.resume", "success"),
        ("record.read", "denied"),
    ] {
        assert!(actions.contains(&wanted), "{wanted:?} in {actions:?}");
    }
}

#[tokio::test]
async fn a_grant_writes_nothing_into_a_terminating_org_whose_evidence_stays_readable() {
    let w = world().await;
    let id = w.grant(json!({"scope": "read_write"})).await;
    let (status, _) = w.call("DELETE", ADMIN, None, &w.org_path(""), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, answer) = w
        .call(
            "POST",
            ADMIN,
            Some(&id),
            &w.org_path("/records"),
            Some(json!({"category": "messages", "content": "late"})),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::GONE, Some("org_terminated")),
        "{answer}"
    );
    // Without a grant: still refused as such, and the evidence is open to the operator.
    let (status, answer) = w
        .call("GET", ADMIN, None, &w.org_path("/records"), None)
        .await;
    assert_eq!(answer["code"], "grant_required", "{status} {answer}");
    w.ok("GET", ADMIN, &w.org_path("/deletion-log"), None).await;
    w.ok("GET", ADMIN, &w.org_path("/holds"), None).await;
}
