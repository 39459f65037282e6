//! The official Python SDKs against the stand-in directly (tools/llm-sdk-check with
//! LLM_EXPECT_PLACEHOLDERS=0): every conversation and every error case passes, which shows
//! the stand-in speaks the providers' wire formats as the SDKs parse them.
//!
//! Without python3 or PyPI the check prints SKIPPED and this test returns; under CI=true
//! check.sh fails instead.

use std::path::PathBuf;
use std::process::Output;

use custos_llm_stand_in::start;
use serde_json::json;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn run_check(base: &str, mode: Option<&str>, error_cases: &str) -> Output {
    let root = workspace_root();
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(root.join("tools/llm-sdk-check/check.sh"))
        .arg(root.join("target/llm-sdk-venv"))
        .args(mode)
        .env("LLM_OPENAI_BASE", format!("{base}/v1"))
        .env("LLM_ANTHROPIC_BASE", base)
        .env("LLM_STANDIN", base)
        .env("LLM_KEY", "sdk-check-key")
        .env("LLM_MODEL_OPENAI", "stand-in")
        .env("LLM_MODEL_ANTHROPIC", "stand-in+chunk-5")
        .env("LLM_EXPECT_PLACEHOLDERS", "0")
        .env("LLM_ERROR_CASES", error_cases)
        .kill_on_drop(true);
    cmd.output().await.expect("bash runs")
}

fn skipped(out: &Output) -> bool {
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && stderr.contains("llm-sdk-check: SKIPPED") {
        eprintln!("SKIPPED: {}", stderr.trim());
        return true;
    }
    false
}

fn assert_passed(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("llm-sdk-check: all checks passed"),
        "llm-sdk-check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_hold_three_turn_conversations_with_the_stand_in() {
    let s = start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let out = run_check(&s.base_url(), None, "[]").await;
    if skipped(&out) {
        return;
    }
    assert_passed(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
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
        "models/openai",
        "models/anthropic",
    ] {
        assert!(
            stdout.contains(&format!("ok {scenario}")),
            "{scenario} missing:\n{stdout}"
        );
    }
    // Every request carried the key the SDKs were given, in each provider's header.
    let recorded = s.state.requests();
    assert!(!recorded.is_empty());
    for r in &recorded {
        let key = r.authorization.as_deref().or(r.x_api_key.as_deref());
        assert!(
            key == Some("Bearer sdk-check-key") || key == Some("sdk-check-key"),
            "{} {} without the key",
            r.method,
            r.path
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_raise_their_own_error_classes() {
    let s = start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut cases = Vec::new();
    for (sdk, api) in [
        ("openai", "chat"),
        ("openai", "responses"),
        ("anthropic", "messages"),
    ] {
        for stream in [false, true] {
            cases.push(json!({"sdk": sdk, "api": api, "model": "stand-in+fail-429",
                "body_extra": {"stream": stream}, "expect_status": 429, "expect_class": "RateLimitError"}));
            cases.push(json!({"sdk": sdk, "api": api, "model": "stand-in+fail-500",
                "body_extra": {"stream": stream}, "expect_status": 500, "expect_class": "InternalServerError"}));
        }
    }
    let out = run_check(
        &s.base_url(),
        Some("errors"),
        &serde_json::Value::from(cases.clone()).to_string(),
    )
    .await;
    if skipped(&out) {
        return;
    }
    assert_passed(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("llm-sdk-check: ok error case").count(),
        cases.len()
    );
    // max_retries=0: one request per case, no retry on 429 or 500.
    assert_eq!(s.state.requests().len(), cases.len());
}
