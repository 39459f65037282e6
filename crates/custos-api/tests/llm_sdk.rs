//! The official OpenAI and Anthropic Python SDKs (tools/llm-sdk-check, installed from PyPI
//! into target/llm-sdk-venv) against the gateway, which forwards to the stand-in provider:
//! three-turn conversations with PII over chat completions, responses and messages, plain and
//! streamed, with tool calls; the provider never sees an original value, the SDK always gets
//! the originals back, placeholders are identical across turns. Every refusal makes the SDK
//! raise its documented exception class.
//!
//! Without python3 or PyPI the check prints SKIPPED and these tests return; under CI=true
//! check.sh fails instead.

mod support;

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;

use custos_core::SystemClock;
use custos_llm_stand_in::{start, Running};
use custos_policy::{PiiAction, Policy, ProviderKind};
use serde_json::{json, Value};
use support::{create_org_with_owner, deploy, Deployment};

fn policy(standin: &str, action: PiiAction) -> Policy {
    let mut p = Policy::builtin();
    for provider in &mut p.llm.providers {
        provider.base_url = standin.to_string();
        provider.api_key_env = None;
    }
    assert!(p
        .llm
        .providers
        .iter()
        .any(|p| p.kind == ProviderKind::Anthropic));
    if let Some(rule) = &mut p.llm.pii {
        rule.action = action;
    }
    p
}

async fn setup(action: PiiAction) -> (Deployment, Running) {
    let up = start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let d = deploy(policy(&up.base_url(), action), Arc::new(SystemClock), |c| c).await;
    (d, up)
}

/// A new org (in `region`, with `settings`, set by its first owner) and a member key for it.
async fn org_key(d: &Deployment, region: &str, settings: Value) -> String {
    let created = create_org_with_owner(d, json!({"name": "Acme", "region": region})).await;
    let org = created["id"].as_str().unwrap().to_string();
    let owner = created["owner"]["api_key"].as_str().unwrap();
    let send = |rb: reqwest::RequestBuilder| async move {
        let r = rb.bearer_auth(owner).send().await.unwrap();
        assert!(r.status().is_success());
        r.json::<Value>().await.unwrap()
    };
    send(
        d.client
            .patch(format!("{}/v1/orgs/{org}/settings", d.base))
            .json(&settings),
    )
    .await;
    send(
        d.client
            .post(format!("{}/v1/orgs/{org}/members", d.base))
            .json(&json!({"name": "app", "roles": ["service"]})),
    )
    .await["api_key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn run_check(d: &Deployment, up: &Running, key: &str, cases: Option<Value>) -> Output {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(root.join("tools/llm-sdk-check/check.sh"))
        .arg(root.join("target/llm-sdk-venv"))
        .args(cases.as_ref().map(|_| "errors"))
        .env("LLM_OPENAI_BASE", format!("{}/llm/openai/v1", d.base))
        .env("LLM_ANTHROPIC_BASE", format!("{}/llm/anthropic", d.base))
        .env("LLM_STANDIN", up.base_url())
        .env("LLM_KEY", key)
        .env("LLM_MODEL_OPENAI", "stand-in")
        .env("LLM_MODEL_ANTHROPIC", "stand-in+chunk-5")
        .env("LLM_EXPECT_PLACEHOLDERS", "1")
        .env(
            "LLM_ERROR_CASES",
            cases.unwrap_or_else(|| json!([])).to_string(),
        )
        .kill_on_drop(true);
    cmd.output().await.expect("bash runs")
}

/// True (after saying so) when the check could not run outside CI.
fn skipped(out: &Output) -> bool {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let skip = out.status.success() && stderr.contains("llm-sdk-check: SKIPPED");
    if skip {
        eprintln!("SKIPPED: {}", stderr.trim());
    }
    skip
}

fn assert_passed(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("llm-sdk-check: all checks passed"),
        "llm-sdk-check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_hold_pseudonymized_conversations_through_the_gateway() {
    let (d, up) = setup(PiiAction::Tokenize).await;
    let key = org_key(&d, "us-east", json!({})).await;
    let out = run_check(&d, &up, &key, None).await;
    if skipped(&out) {
        return;
    }
    let stdout = assert_passed(&out);
    for scenario in [
        "chat/plain",
        "chat/stream",
        "chat/helper",
        "responses/plain",
        "responses/stream",
        "responses/helper",
        "messages/plain",
        "messages/stream",
        "messages/helper",
    ] {
        assert!(
            stdout.contains(&format!("ok {scenario}")),
            "{scenario} missing:\n{stdout}"
        );
    }
    // The provider saw neither the caller's Custos key nor any value (check.py asserted the
    // values per conversation and cleared the record between them; the key is checked on
    // the last conversation here).
    let recorded = up.state.requests();
    assert!(!recorded.is_empty());
    assert!(recorded.iter().all(|r| !r.body.contains(&key)
        && r.authorization.as_deref() != Some(&format!("Bearer {key}"))
        && r.x_api_key.as_deref() != Some(&key)));
}

/// One error case per SDK and API.
fn cases(model: &str, extra: Value, status: u16, openai: &str, anthropic: &str) -> Vec<Value> {
    [
        ("openai", "chat"),
        ("openai", "responses"),
        ("anthropic", "messages"),
    ]
    .iter()
    .map(|(sdk, api)| {
        let class = if *sdk == "openai" { openai } else { anthropic };
        let mut extra = extra.clone();
        // Per-API bodies for the cases that need content of their own.
        if let Some(per_api) = extra.get(*api).cloned() {
            extra = per_api;
        }
        json!({"sdk": sdk, "api": api, "model": model, "body_extra": extra,
                   "expect_status": status, "expect_class": class})
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_raises_the_sdks_documented_exception() {
    let (d, up) = setup(PiiAction::Tokenize).await;
    let mut runs: Vec<(String, Vec<Value>)> = Vec::new();
    // Model not allowed.
    let key = org_key(&d, "us-east", json!({"llm_models": ["some-other-model"]})).await;
    let denied = "PermissionDeniedError";
    runs.push((key, cases("stand-in", json!({}), 403, denied, denied)));
    // Region not allowed.
    let key = org_key(&d, "eu-central", json!({})).await;
    runs.push((key, cases("stand-in", json!({}), 403, denied, denied)));
    // Private data mode.
    let key = org_key(&d, "us-east", json!({"private_data_mode": true})).await;
    let outside = json!({
        "chat": {"web_search_options": {}},
        "responses": {"tools": [{"type": "web_search_preview"}]},
        "messages": {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
    });
    runs.push((key, cases("stand-in", outside, 403, denied, denied)));
    // Too large.
    let key = org_key(&d, "us-east", json!({"llm_max_request_bytes": 1024})).await;
    let big = json!({"padding": "x".repeat(2048)});
    runs.push((
        key,
        cases(
            "stand-in",
            big,
            413,
            "APIStatusError",
            "ContentTooLargeError",
        ),
    ));
    // Upstream failures, streamed and not.
    let key = org_key(&d, "us-east", json!({})).await;
    let mut failures = Vec::new();
    for stream in [false, true] {
        let s = json!({"stream": stream});
        let server = "InternalServerError";
        failures.extend(cases("stand-in+fail-500", s.clone(), 502, server, server));
        failures.extend(cases(
            "stand-in+fail-429",
            s,
            429,
            "RateLimitError",
            "RateLimitError",
        ));
    }
    runs.push((key.clone(), failures));
    // Concurrency: the org's one slot is held by a stream that hangs.
    let one = org_key(&d, "us-east", json!({"llm_max_concurrency": 1})).await;
    let held = d
        .client
        .post(format!("{}/llm/openai/v1/chat/completions", d.base))
        .bearer_auth(&one)
        .json(&json!({"model": "stand-in+hang", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert!(held.status().is_success());
    let rate = "RateLimitError";
    runs.push((one, cases("stand-in", json!({}), 429, rate, rate)));
    // Unknown key.
    let bad = "AuthenticationError";
    runs.push((
        "cus_not-a-key".into(),
        cases("stand-in", json!({}), 401, bad, bad),
    ));
    for (key, cases) in runs {
        let n = cases.len();
        let out = run_check(&d, &up, &key, Some(Value::from(cases))).await;
        if skipped(&out) {
            return;
        }
        let stdout = assert_passed(&out);
        assert_eq!(stdout.matches("llm-sdk-check: ok error case").count(), n);
    }
    drop(held);
    // Blocked PII, in a deployment whose policy blocks.
    let (d, up) = setup(PiiAction::Block).await;
    let key = org_key(&d, "us-east", json!({})).await;
    let pii = json!({
        "chat": {"messages": [{"role": "user", "content": "my SSN is 536-90-4399"}]},
        "responses": {"input": "my SSN is 536-90-4399"},
        "messages": {"messages": [{"role": "user", "content": "my SSN is 536-90-4399"}]},
    });
    let bad = "BadRequestError";
    let out = run_check(
        &d,
        &up,
        &key,
        Some(Value::from(cases("stand-in", pii, 400, bad, bad))),
    )
    .await;
    assert_passed(&out);
    assert!(
        up.state.requests().is_empty(),
        "a blocked call was forwarded"
    );
}
