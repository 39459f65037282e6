//! TOTP over HTTP as an attacker with a stolen API key tries it: guessing codes ends in a
//! lockout only an owner or admin clears, and a member that must use a second factor cannot
//! enroll one with its key alone.

use std::sync::Arc;

use custos_core::{Clock, ManualClock};
use custos_policy::Policy;
use jiff::ToSpan;
use reqwest::StatusCode;
use serde_json::{json, Value};

mod support;

use support::{create_org_with_owner, deploy, Deployment, ADMIN};

struct Server {
    d: Deployment,
    clock: Arc<ManualClock>,
}

async fn server() -> Server {
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let policy = Policy::parse(Policy::BUILTIN_TOML, "builtin.toml").unwrap();
    let d = deploy(policy, clock.clone(), |c| c).await;
    Server { d, clock }
}

impl Server {
    /// Status, `Retry-After` and body of one call.
    async fn call(
        &self,
        method: &str,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Option<String>, Value) {
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
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (status, retry, r.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, token: &str, path: &str, body: Option<Value>) -> Value {
        let (status, _, v) = self.call(method, token, path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    /// An org with its first owner, who holds every role: (org id, the owner's API key, the
    /// owner's id).
    async fn org(&self) -> (String, String, String) {
        let created = create_org_with_owner(&self.d, json!({"name": "T"})).await;
        let owner = &created["owner"];
        (
            created["id"].as_str().unwrap().to_string(),
            owner["api_key"].as_str().unwrap().to_string(),
            owner["id"].as_str().unwrap().to_string(),
        )
    }

    /// Changes the settings of `org` as `token`.
    async fn settings(&self, org: &str, token: &str, settings: Value) {
        self.ok(
            "PATCH",
            token,
            &format!("/v1/orgs/{org}/settings"),
            Some(settings),
        )
        .await;
    }

    /// A member of `org` made by `creator` (an owner): (API key, id).
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

    async fn enroll(
        &self,
        org: &str,
        key: &str,
        code: Option<&str>,
    ) -> (StatusCode, Option<String>, Value) {
        let body = code.map(|c| json!({ "enrollment_code": c }));
        self.call(
            "POST",
            key,
            &format!("/v1/orgs/{org}/members/me/totp"),
            body,
        )
        .await
    }

    fn code_at(&self, secret: &str, offset_steps: i64) -> String {
        totp_rs::Builder::new()
            .with_digits(6)
            .with_step_duration(30)
            .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
            .build()
            .unwrap()
            .generate((self.clock.now().as_second() + 30 * offset_steps) as u64)
            .to_string()
    }

    async fn session(
        &self,
        org: &str,
        key: &str,
        code: &str,
    ) -> (StatusCode, Option<String>, Value) {
        self.call(
            "POST",
            key,
            &format!("/v1/orgs/{org}/sessions"),
            Some(json!({ "totp": code })),
        )
        .await
    }

    /// The org's audit events of `action` about member `id`.
    async fn events(&self, org: &str, action: &str, id: &str) -> Vec<Value> {
        let v = self
            .ok(
                "GET",
                ADMIN,
                &format!(
                    "/v1/audit/events?org={org}&action={action}&target=member:{id}&limit=1000"
                ),
                None,
            )
            .await;
        v["items"].as_array().unwrap().clone()
    }
}

/// A wrong code: none of the codes of the steps around now.
fn wrong(s: &Server, secret: &str, i: u32) -> String {
    let valid: Vec<String> = (-1..=1).map(|o| s.code_at(secret, o)).collect();
    (i..)
        .map(|n| format!("{:06}", (n * 7919 + 13) % 1_000_000))
        .find(|c| !valid.contains(c))
        .unwrap()
}

#[tokio::test]
async fn ten_thousand_guesses_end_in_a_lockout_that_only_an_owner_or_admin_clears() {
    let s = server().await;
    // The org's first owner holds every role.
    let (org, owner_key, _) = s.org().await;
    let (key, id) = s
        .member(&org, &owner_key, json!({"name": "m", "roles": ["member"]}))
        .await;
    let owner_secret = s.enroll(&org, &owner_key, None).await.2["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = s.enroll(&org, &key, None).await.2["secret"]
        .as_str()
        .unwrap()
        .to_string();

    // 10,000 wrong codes as fast as the server answers: a handful are checked, then every
    // one is refused unchecked with 429 and a Retry-After.
    let (mut checked, mut first_limited) = (0, None);
    for i in 0..10_000u32 {
        let (status, retry, answer) = s.session(&org, &key, &wrong(&s, &secret, i)).await;
        match status {
            StatusCode::FORBIDDEN => {
                assert!(first_limited.is_none(), "checked again after a 429 at {i}");
                checked += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(answer["code"], "rate_limited", "{answer}");
                let retry: u64 = retry.expect("Retry-After").parse().unwrap();
                assert!((1..=30).contains(&retry), "Retry-After {retry}");
                first_limited.get_or_insert(i);
            }
            other => panic!("guess {i}: {other} {answer}"),
        }
    }
    assert_eq!(checked, 5, "five codes checked before the first wait");
    assert_eq!(first_limited, Some(5));
    // The right code is refused too while the wait runs.
    let (status, _, _) = s.session(&org, &key, &s.code_at(&secret, 0)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Each checked code was audited as a denied session.open.
    let denied = s.events(&org, "session.open", &id).await;
    assert_eq!(denied.len(), 5, "{denied:?}");
    assert!(denied.iter().all(|e| e["event"]["outcome"] == "denied"
        && e["event"]["reason"] == "wrong_code"
        && e["event"]["failures"].is_u64()));

    // Waiting out each doubling delay buys one more check, until the tenth locks the factor.
    for n in 6..=10 {
        s.clock.advance(1.hour());
        let (status, _, answer) = s.session(&org, &key, &wrong(&s, &secret, n)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "wrong code {n}: {answer}");
    }
    s.clock.advance(30.days());
    let (status, retry, answer) = s.session(&org, &key, &s.code_at(&secret, 0)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(retry.as_deref(), Some("3600"));
    assert!(
        answer["detail"].as_str().unwrap().contains("locked"),
        "{answer}"
    );
    assert_eq!(s.events(&org, "member.totp_lock", &id).await.len(), 1);

    // The member cannot clear its own lockout; an owner can.
    let owner = s
        .session(&org, &owner_key, &s.code_at(&owner_secret, 0))
        .await
        .2["token"]
        .as_str()
        .unwrap()
        .to_string();
    let lockout = format!("/v1/orgs/{org}/members/{id}/totp-lockout");
    let (status, _, _) = s.call("DELETE", &key, &lockout, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = s.call("DELETE", &owner, &lockout, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(s.events(&org, "member.totp_unlock", &id).await.len(), 1);
    let (status, _, answer) = s.session(&org, &key, &s.code_at(&secret, 0)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

#[tokio::test]
async fn members_that_must_use_a_second_factor_enroll_only_with_a_code_an_owner_issued() {
    let s = server().await;
    // The org's first owner holds every role; it makes the members first, then requires MFA
    // of admins (from then on its management calls need a second factor).
    let (org, owner_key, owner_id) = s.org().await;
    let (admin_key, admin_id) = s
        .member(&org, &owner_key, json!({"name": "a", "roles": ["admin"]}))
        .await;
    let (strict_key, strict_id) = s
        .member(
            &org,
            &owner_key,
            json!({"name": "s", "roles": ["member"], "mfa": true}),
        )
        .await;
    let (plain_key, _) = s
        .member(&org, &owner_key, json!({"name": "p", "roles": ["member"]}))
        .await;
    s.settings(&org, &owner_key, json!({"require_mfa_for_admins": true}))
        .await;

    // No owner or admin has a factor yet: the first one enrolls with its key alone.
    let (status, _, answer) = s.enroll(&org, &owner_key, None).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let owner_secret = answer["secret"].as_str().unwrap().to_string();
    // From then on, an admin (the org requires MFA of admins) and a member created with
    // `mfa: true` cannot; a member that need not use MFA can.
    for key in [&admin_key, &strict_key] {
        let (status, _, answer) = s.enroll(&org, key, None).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("mfa_required")),
            "{answer}"
        );
        assert!(answer["detail"]
            .as_str()
            .unwrap()
            .contains("enrollment code"));
    }
    assert_eq!(
        s.enroll(&org, &plain_key, None).await.0,
        StatusCode::CREATED
    );

    // The owner's key alone cannot issue codes (it must use MFA); its session can.
    let issue = |id: &str| format!("/v1/orgs/{org}/members/{id}/totp-enrollment");
    let (status, _, _) = s.call("POST", &owner_key, &issue(&admin_id), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let owner = s
        .session(&org, &owner_key, &s.code_at(&owner_secret, 0))
        .await
        .2["token"]
        .as_str()
        .unwrap()
        .to_string();
    let code = s.ok("POST", &owner, &issue(&admin_id), None).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    // A wrong code is refused (and audited); the right one enrolls once.
    let (status, _, _) = s.enroll(&org, &admin_key, Some("cue_not-the-code")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let all = s
        .ok(
            "GET",
            ADMIN,
            &format!("/v1/audit/events?org={org}&action=member.totp_enroll&limit=1000"),
            None,
        )
        .await;
    assert_eq!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"]["outcome"] == "denied"
                && e["event"]["actor"]["id"] == admin_id.as_str())
            .count(),
        2,
        "one refusal without a code and one with a wrong one"
    );
    let (status, _, answer) = s.enroll(&org, &admin_key, Some(&code)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let admin_secret = answer["secret"].as_str().unwrap().to_string();
    let (status, _, _) = s.enroll(&org, &admin_key, Some(&code)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a code enrolls once");

    // A code lasts 15 minutes.
    let code = s.ok("POST", &owner, &issue(&strict_id), None).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    s.clock.advance(16.minutes());
    assert_eq!(
        s.enroll(&org, &strict_key, Some(&code)).await.0,
        StatusCode::FORBIDDEN
    );
    // (The owner's session outlived that: it lasts the org's session_timeout, 1 h.)
    let code = s.ok("POST", &owner, &issue(&strict_id), None).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.enroll(&org, &strict_key, Some(&code)).await.0,
        StatusCode::CREATED
    );
    // An admin issues codes only for members it may manage: not for an owner.
    let admin = s
        .session(&org, &admin_key, &s.code_at(&admin_secret, 0))
        .await
        .2["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, answer) = s.call("POST", &admin, &issue(&owner_id), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
}
