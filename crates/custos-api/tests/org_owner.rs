//! `POST /v1/orgs` with `owner`: the org comes with its first owner, who holds every role
//! and whose API key is in the answer once; bad input creates nothing.

use std::sync::Arc;

use custos_core::SystemClock;
use custos_policy::Policy;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

mod support;

use support::{deploy, ADMIN};

async fn call(
    d: &support::Deployment,
    method: Method,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = d
        .client
        .request(method, format!("{}{path}", d.base))
        .bearer_auth(token);
    if let Some(body) = body {
        r = r.json(&body);
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_org_created_with_its_owner_answers_with_the_owners_key_once() {
    let d = deploy(Policy::builtin(), Arc::new(SystemClock), |c| c).await;
    let body = json!({"name": "Acme", "owner": {"name": "Olive"}});
    let (status, created) = call(&d, Method::POST, ADMIN, "/v1/orgs", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let org = created["id"].as_str().unwrap();
    assert_eq!(created["status"], "active");
    let owner = &created["owner"];
    let key = owner["api_key"].as_str().unwrap();
    assert!(key.starts_with("cus_"), "{created}");
    assert_eq!(
        owner["roles"],
        json!(["owner", "admin", "member", "auditor", "service"])
    );

    // The owner acts in its org with that key, and creates members of every role.
    let members = format!("/v1/orgs/{org}/members");
    let (status, listed) = call(&d, Method::GET, key, &members, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed[0]["id"], owner["id"]);
    assert_eq!(listed[0]["name"], "Olive");
    for role in ["admin", "member", "auditor", "service"] {
        let body = json!({"name": role, "roles": [role]});
        let (status, m) = call(&d, Method::POST, key, &members, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{role}: {m}");
    }

    // Audited as a member creation by the admin, with what it grants.
    let path = format!("/v1/audit/events?org={org}&action=member.create");
    let (_, page) = call(&d, Method::GET, ADMIN, &path, None).await;
    let first = &page["items"][0]["event"];
    assert_eq!(first["actor"]["kind"], "admin", "{page}");
    assert_eq!(
        first["target"],
        format!("member:{}", owner["id"].as_str().unwrap())
    );
    assert_eq!(first["roles"], owner["roles"]);
    assert!(!page.to_string().contains(key), "the key is never recorded");

    // Without `owner`, no owner and no key in the answer.
    let (status, plain) = call(
        &d,
        Method::POST,
        ADMIN,
        "/v1/orgs",
        Some(json!({"name": "Bare"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(plain.get("owner").is_none(), "{plain}");
}

#[tokio::test]
async fn a_bad_owner_creates_no_org() {
    let d = deploy(Policy::builtin(), Arc::new(SystemClock), |c| c).await;
    for (owner, named) in [
        (json!({"name": ""}), "owner.name"),
        (json!({"name": "Olive", "roles": ["admin"]}), "roles"),
        (json!("Olive"), "owner"),
    ] {
        let body = json!({"name": "Acme", "owner": owner});
        let (status, problem) = call(&d, Method::POST, ADMIN, "/v1/orgs", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(named),
            "{named}: {problem}"
        );
    }
    let (_, orgs) = call(&d, Method::GET, ADMIN, "/v1/orgs", None).await;
    assert_eq!(orgs.as_array().unwrap().len(), 0, "{orgs}");
}
