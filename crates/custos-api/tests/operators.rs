//! The deployment's operators: the bootstrap admin token creates the first one (only where
//! the policy names an operator identity provider) and is then retired: `403` on every route,
//! audited, unless the deployment runs with break-glass, where each use is audited.

use std::sync::Arc;

use custos_core::authz::TABLE;
use custos_core::{Caller, Principal, SystemClock};
use custos_policy::Policy;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

mod support;

use support::{deploy, Deployment, ADMIN};

const ISSUER: &str = "https://login.example.com";

fn policy() -> Policy {
    let text = format!(
        "{}\n[operators.identity_provider]\nissuer = \"{ISSUER}\"\nclient_id = \"custos\"\n",
        Policy::BUILTIN_TOML
    );
    Policy::parse(&text, "operators.toml").unwrap()
}

async fn call(
    d: &Deployment,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = d
        .client
        .request(
            method.parse::<Method>().unwrap(),
            format!("{}{path}", d.base),
        )
        .bearer_auth(ADMIN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The actions of the deployment's audit events, read as the system.
async fn actions(d: &Deployment) -> Vec<(String, String, Option<String>)> {
    let page = d
        .custos
        .audit_events(
            &Caller::new(Principal::System),
            None,
            &Default::default(),
            0,
            1000,
        )
        .await
        .unwrap();
    page.items
        .into_iter()
        .map(|e| {
            (
                e.event.action.to_string(),
                serde_json::to_value(e.event.outcome)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string(),
                e.event.reason.clone(),
            )
        })
        .collect()
}

fn first_operator() -> Value {
    json!({"identity": {"iss": ISSUER, "sub": "op-1"}, "name": "Oscar"})
}

#[tokio::test]
async fn after_the_first_operator_the_bootstrap_token_is_refused_everywhere() {
    let d = deploy(policy(), Arc::new(SystemClock), |c| c).await;
    let (_, org) = call(&d, "POST", "/v1/orgs", Some(json!({"name": "Acme"}))).await;
    let org = org["id"].as_str().unwrap().to_string();
    let (status, listed) = call(&d, "GET", "/v1/operators", None).await;
    assert_eq!((status, listed), (StatusCode::OK, json!([])));
    // Only a person of the operator identity provider.
    let wrong = json!({"identity": {"iss": "https://elsewhere.example", "sub": "op-1"}});
    let (status, answer) = call(&d, "POST", "/v1/operators", Some(wrong)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("identity.iss"),
        "{answer}"
    );
    let (status, created) = call(&d, "POST", "/v1/operators", Some(first_operator())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["identity"]["sub"], "op-1");
    assert_eq!(created["created_by"], "admin");

    // Retired: every route of the table answers 403 to it, the operator routes included.
    for rule in TABLE {
        let Some((method, path)) = rule.route else {
            continue;
        };
        let path = path
            .split('?')
            .next()
            .unwrap()
            .replace("{org}", &org)
            .replace("{id}", "01a21e0d-61f6-7419-9e7a-d7805e663ac4")
            .replace("{category}", "messages")
            .replace("{index}", "0")
            .replace("{provider}", "openai");
        let (status, answer) = call(&d, method, &path, Some(json!({}))).await;
        // The privacy center's pages take no bearer credential at all (only a subject's
        // session cookie): the token is not even looked at there.
        if rule.subject {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            continue;
        }
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        // The LLM gateway answers in the providers' shape.
        let detail = answer["detail"]
            .as_str()
            .or(answer["error"]["message"].as_str())
            .unwrap_or("");
        assert!(detail.contains("retired"), "{method} {path}: {answer}");
    }
    let refused = actions(&d)
        .await
        .into_iter()
        .filter(|(a, o, r)| {
            a == "auth.reject" && o == "denied" && r.as_deref() == Some("bootstrap_retired")
        })
        .count();
    assert!(
        refused
            >= TABLE
                .iter()
                .filter(|r| r.route.is_some() && !r.subject)
                .count()
    );
    assert!(actions(&d)
        .await
        .iter()
        .any(|(a, o, _)| a == "operator.create" && o == "success"));
}

#[tokio::test]
async fn break_glass_keeps_the_bootstrap_token_and_audits_each_use() {
    let d = deploy(policy(), Arc::new(SystemClock), |c| {
        c.with_break_glass(true)
    })
    .await;
    assert!(d.custos.operator_mode().contains("BREAK-GLASS"));
    let (status, _) = call(&d, "POST", "/v1/operators", Some(first_operator())).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = call(&d, "POST", "/v1/operators", Some(first_operator())).await;
    assert_eq!(status, StatusCode::CONFLICT, "only the first: {again}");
    let before = actions(&d).await.len();
    for _ in 0..2 {
        let (status, _) = call(&d, "GET", "/v1/orgs", None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let uses = actions(&d).await[before..]
        .iter()
        .filter(|(a, _, _)| a == "operator.break_glass")
        .count();
    assert_eq!(uses, 2, "each request is audited");

    // Every org's admins are told, through the outbox, once per channel and hour.
    let (status, created) = call(
        &d,
        "POST",
        "/v1/orgs",
        Some(json!({"name": "Acme", "owner": {"name": "Owner"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let org = created["id"].as_str().unwrap();
    let owner = created["owner"]["api_key"].as_str().unwrap();
    let r = d
        .client
        .patch(format!("{}/v1/orgs/{org}/settings", d.base))
        .bearer_auth(owner)
        .json(&json!({"channels": {"emails": ["security@acme.example"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for _ in 0..2 {
        let (status, _) = call(&d, "GET", "/v1/orgs", None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let mut evaluator = custos_core::alerting::AlertEvaluator::new();
    while d.custos.evaluate_alerts(&mut evaluator).await.unwrap() > 0 {}
    use custos_store::prelude::*;
    let told: Vec<_> = d
        .store
        .outbox_entries(Some(org), None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| String::from_utf8_lossy(&e.message.body).contains("break_glass_used"))
        .collect();
    assert_eq!(told.len(), 1, "one notice for the hour: {told:?}");
    assert_eq!(told[0].message.channel, "email:security@acme.example");
}

#[tokio::test]
async fn without_an_operator_identity_provider_the_token_is_the_operator() {
    let d = deploy(Policy::builtin(), Arc::new(SystemClock), |c| c).await;
    assert!(d.custos.operator_mode().contains("bootstrap admin token"));
    let (status, answer) = call(&d, "POST", "/v1/operators", Some(first_operator())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("[operators.identity_provider]"),
        "{answer}"
    );
    let (status, _) = call(&d, "GET", "/v1/orgs", None).await;
    assert_eq!(status, StatusCode::OK);
}
