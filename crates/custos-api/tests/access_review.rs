//! Access reviews over real HTTP: last-use times move (at most once a minute), the sweep
//! disables members unused past the policy's `inactive_member_after` (their keys are refused
//! until an owner enables them), and a recorded review removes what it removes and is an
//! audit event naming the reviewed list's digest.

use std::sync::Arc;

use custos_core::{ManualClock, SweepOptions};
use custos_policy::Policy;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

mod support;

use support::{deploy, org_with_owner, ADMIN};

struct Org {
    d: support::Deployment,
    clock: Arc<ManualClock>,
    id: String,
    owner: String,
}

impl Org {
    async fn new() -> Org {
        let toml = Policy::BUILTIN_TOML.replace(
            "inactive_member_after = \"90d\"",
            "inactive_member_after = \"30d\"",
        );
        let policy = Policy::parse(&toml, "custos.toml").unwrap();
        assert_eq!(
            policy.access.inactive_member_after.map(|d| d.to_string()),
            Some("30d".into())
        );
        let clock = Arc::new(ManualClock::new("2026-06-01T00:00:00Z".parse().unwrap()));
        let d = deploy(policy, clock.clone(), |c| c).await;
        let mut org = Org {
            d,
            clock,
            id: String::new(),
            owner: String::new(),
        };
        // The org comes with its first owner, who holds every role (it manages members of
        // each).
        (org.id, org.owner) = org_with_owner(&org.d, "Acme").await;
        org
    }

    async fn call(
        &self,
        method: Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .d
            .client
            .request(method, format!("{}{path}", self.d.base))
            .bearer_auth(token);
        if let Some(body) = body {
            r = r.json(&body);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Adds a member with `role` (by the owner); (id, API key).
    async fn member(&self, name: &str, role: &str) -> (String, String) {
        self.member_with(name, &[role]).await
    }

    async fn member_with(&self, name: &str, roles: &[&str]) -> (String, String) {
        let path = format!("/v1/orgs/{}/members", self.id);
        let body = json!({"name": name, "roles": roles});
        let (status, m) = self
            .call(Method::POST, &self.owner, &path, Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{m}");
        (
            m["id"].as_str().unwrap().to_string(),
            m["api_key"].as_str().unwrap().to_string(),
        )
    }

    /// Something any member may do.
    async fn use_key(&self, key: &str) -> StatusCode {
        let path = format!("/v1/orgs/{}/records?category=messages", self.id);
        self.call(Method::GET, key, &path, None).await.0
    }

    async fn review(&self, token: &str) -> Value {
        let path = format!("/v1/orgs/{}/access-review", self.id);
        let (status, review) = self.call(Method::GET, token, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{review}");
        review
    }

    async fn reviewed(&self, id: &str) -> Value {
        let review = self.review(&self.owner).await;
        review["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in {review}"))
    }

    fn advance(&self, span: jiff::Span) {
        self.clock.advance(span);
    }

    async fn events(&self, action: &str) -> Vec<Value> {
        let path = format!("/v1/audit/events?org={}&action={action}", self.id);
        let (_, page) = self.call(Method::GET, ADMIN, &path, None).await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].clone())
            .collect()
    }
}

#[tokio::test]
async fn last_use_moves_at_most_once_a_minute_per_credential() {
    let o = Org::new().await;
    let (id, key) = o.member("Mia", "member").await;
    assert_eq!(o.reviewed(&id).await["last_used_at"], Value::Null);
    let t0 = o.clock_now();
    assert_eq!(o.use_key(&key).await, StatusCode::OK);
    let m = o.reviewed(&id).await;
    assert_eq!(
        (&m["last_used_at"], &m["key_last_used_at"]),
        (&json!(t0), &json!(t0))
    );
    // Within the minute: not written again.
    o.advance(jiff::Span::new().seconds(30));
    assert_eq!(o.use_key(&key).await, StatusCode::OK);
    assert_eq!(o.reviewed(&id).await["last_used_at"], json!(t0));
    // A minute later: it moves.
    o.advance(jiff::Span::new().seconds(31));
    let t1 = o.clock_now();
    assert_eq!(o.use_key(&key).await, StatusCode::OK);
    assert_eq!(o.reviewed(&id).await["last_used_at"], json!(t1));
    // The member listing shows it too.
    let path = format!("/v1/orgs/{}/members", o.id);
    let (_, members) = o.call(Method::GET, &o.owner, &path, None).await;
    let listed = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap();
    assert_eq!(listed["last_used_at"], json!(t1));
}

#[tokio::test]
async fn the_sweep_disables_inactive_members_and_an_owner_enables_them() {
    let o = Org::new().await;
    let (idle, idle_key) = o.member("Ida", "member").await;
    let (busy, busy_key) = o.member("Bo", "member").await;
    let (_, admin_key) = o.member("Ada", "admin").await;
    o.advance(jiff::Span::new().days(20));
    assert_eq!(o.use_key(&busy_key).await, StatusCode::OK);
    assert_eq!(o.use_key(&o.owner).await, StatusCode::OK);
    assert_eq!(o.use_key(&admin_key).await, StatusCode::OK);
    o.advance(jiff::Span::new().days(11));
    // Ida: 31 days since creation, never used: flagged; Bo: used 11 days ago.
    assert_eq!(o.reviewed(&idle).await["inactive"], true);
    assert_eq!(o.reviewed(&busy).await["inactive"], false);
    let summary =
        o.d.custos
            .sweep(&SweepOptions::default(), &mut |_| {})
            .await
            .unwrap();
    assert_eq!(summary.members_disabled, 1);
    assert_ne!(o.reviewed(&idle).await["disabled_at"], Value::Null);
    assert_eq!(o.use_key(&idle_key).await, StatusCode::UNAUTHORIZED);
    assert_eq!(o.use_key(&busy_key).await, StatusCode::OK);
    let disabled = o.events("member.disable").await;
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    assert_eq!(disabled[0]["reason"], "inactive");
    assert_eq!(disabled[0]["target"], format!("member:{idle}"));
    assert_eq!(disabled[0]["actor"]["kind"], "system");
    // A second sweep has nothing more to do.
    let again =
        o.d.custos
            .sweep(&SweepOptions::default(), &mut |_| {})
            .await
            .unwrap();
    assert_eq!(again.members_disabled, 0);

    // Only an owner enables it again (an admin is refused, and audited).
    let path = format!("/v1/orgs/{}/members/{idle}", o.id);
    let enable = Some(json!({"disabled": false}));
    let (status, _) = o
        .call(Method::PATCH, &admin_key, &path, enable.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(o.use_key(&idle_key).await, StatusCode::UNAUTHORIZED);
    let (status, view) = o.call(Method::PATCH, &o.owner, &path, enable).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["disabled_at"], Value::Null);
    assert_eq!(o.use_key(&idle_key).await, StatusCode::OK);
    assert_eq!(o.events("member.enable").await.len(), 1);
}

#[tokio::test]
async fn a_recorded_review_removes_what_it_removes_and_is_an_audit_event() {
    let o = Org::new().await;
    let (keep, keep_key) = o.member("Kai", "member").await;
    let (gone, gone_key) = o.member("Gus", "member").await;
    let (_, auditor_key) = o.member("Aud", "auditor").await;
    let review = o.review(&auditor_key).await;
    let digest = review["review_sha256"].as_str().unwrap().to_string();
    let ids: Vec<String> = review["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let kept: Vec<&String> = ids.iter().filter(|id| **id != gone).collect();
    let path = format!("/v1/orgs/{}/access-review", o.id);

    // An auditor reads it but does not record it.
    let decision = json!({"review_sha256": digest, "kept": kept, "removed": [gone]});
    let (status, _) = o
        .call(Method::POST, &auditor_key, &path, Some(decision.clone()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A review must decide on everyone, once, and only on members of the list.
    for (body, field) in [
        (json!({"review_sha256": digest, "kept": [keep]}), "kept"),
        (
            json!({"review_sha256": digest, "kept": ids, "removed": [keep]}),
            "removed[0]",
        ),
        (
            json!({"review_sha256": digest, "kept": ["nobody"]}),
            "kept[0]",
        ),
    ] {
        let (status, problem) = o.call(Method::POST, &o.owner, &path, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        let named = format!("invalid `{field}`");
        assert!(
            problem["detail"].as_str().unwrap().contains(&named),
            "{problem}"
        );
    }
    assert_eq!(
        o.use_key(&gone_key).await,
        StatusCode::OK,
        "nothing removed yet"
    );

    let (status, recorded) = o
        .call(Method::POST, &o.owner, &path, Some(decision.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{recorded}");
    assert_eq!(recorded["removed"], json!([gone]));
    assert_eq!(o.use_key(&gone_key).await, StatusCode::UNAUTHORIZED);
    assert_eq!(o.use_key(&keep_key).await, StatusCode::OK);
    // The auditor's refusal is on record too; the review is the one success.
    let events: Vec<Value> = o
        .events("access_review.record")
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "success")
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["review_sha256"], digest);
    assert_eq!(events[0]["removed"], json!([gone]));
    assert_eq!(o.events("member.remove").await.len(), 1);
    assert_eq!(o.events("access_review.read").await.len(), 1);

    // The list changed (a member is gone): the same decision again is stale.
    let (status, problem) = o.call(Method::POST, &o.owner, &path, Some(decision)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
}

impl Org {
    fn clock_now(&self) -> String {
        use custos_core::Clock;
        self.clock.now().to_string()
    }
}
