//! The LLM gateway over HTTP against the stand-in provider (tools/llm-stand-in): placeholders
//! out, originals back (whole and streamed, split at every byte of a placeholder), every
//! refusal in the provider's shape and audited, upstream failures, a caller that goes away.

mod support;

use std::sync::Arc;
use std::time::Duration;

use custos_core::SystemClock;
use custos_llm_stand_in::{start, Running};
use custos_policy::{PiiAction, Policy, Provider, ProviderKind};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{create_org_with_owner, deploy, Deployment, ADMIN};

/// The variable the test providers' keys come from, and its value.
const KEY_VAR: &str = "CUSTOS_TEST_LLM_UPSTREAM_KEY";
const UPSTREAM_KEY: &str = "upstream-secret-key-42";

const EMAIL: &str = "maria.gonzalez@example.com";
const PHONE: &str = "(415) 555-2671";
const NAME: &str = "Maria Gonzalez";
const SSN: &str = "536-90-4399";

fn prompt() -> String {
    format!("My name is {NAME}, mail {EMAIL} or call {PHONE}.")
}

fn policy(standin: &str, action: PiiAction) -> Policy {
    let mut p = Policy::builtin();
    let provider = |name: &str, kind| Provider {
        name: name.into(),
        kind,
        base_url: standin.into(),
        regions: vec!["us-east".into(), "us-west".into()],
        api_key_env: Some(KEY_VAR.into()),
        models: vec![],
    };
    p.llm.providers = vec![
        provider("openai", ProviderKind::OpenAi),
        provider("anthropic", ProviderKind::Anthropic),
    ];
    p.llm.timeout_seconds = 2;
    if let Some(rule) = &mut p.llm.pii {
        rule.action = action;
    }
    p
}

struct Gw {
    d: Deployment,
    up: Running,
    org: String,
    /// The org's first owner's API key (it manages the org).
    owner: String,
    key: String,
}

async fn gateway(action: PiiAction, region: &str) -> Gw {
    gateway_with(action, region, |_| {}).await
}

/// A POST as `token`; the JSON answer.
async fn post_as(d: &Deployment, token: &str, path: &str, body: Value) -> Value {
    let r = d
        .client
        .post(format!("{}{path}", d.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

async fn gateway_with(action: PiiAction, region: &str, adjust: impl FnOnce(&mut Policy)) -> Gw {
    // Every test sets the same value, so parallel tests cannot disagree.
    std::env::set_var(KEY_VAR, UPSTREAM_KEY);
    let up = start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut policy = policy(&up.base_url(), action);
    adjust(&mut policy);
    let d = deploy(policy, Arc::new(SystemClock), |c| c).await;
    let created = create_org_with_owner(&d, json!({"name": "Acme", "region": region})).await;
    let org = created["id"].as_str().unwrap().to_string();
    let owner = created["owner"]["api_key"].as_str().unwrap().to_string();
    let member = json!({"name": "app", "roles": ["member"]});
    let key = post_as(&d, &owner, &format!("/v1/orgs/{org}/members"), member).await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    Gw {
        d,
        up,
        org,
        owner,
        key,
    }
}

impl Gw {
    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        let rb = self.d.client.post(format!("{}/llm{path}", self.d.base));
        let rb = if path.starts_with("/anthropic") {
            rb.header("x-api-key", &self.key)
        } else {
            rb.bearer_auth(&self.key)
        };
        rb.json(&body).send().await.unwrap()
    }

    async fn settings(&self, change: Value) {
        let r = self
            .d
            .client
            .patch(format!("{}/v1/orgs/{}/settings", self.d.base, self.org))
            .bearer_auth(&self.owner)
            .json(&change)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }

    /// Every body the provider received, joined.
    fn received(&self) -> String {
        self.up
            .state
            .requests()
            .iter()
            .map(|r| r.body.clone())
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn events(&self, action: &str) -> Vec<Value> {
        self.events_n(action, 1).await
    }

    /// At least `n` events of `action` (a call's event is appended off the caller's path:
    /// wait for them briefly).
    async fn events_n(&self, action: &str, n: usize) -> Vec<Value> {
        let mut items = Vec::new();
        for _ in 0..100 {
            let page: Value = self
                .d
                .client
                .get(format!(
                    "{}/v1/audit/events?org={}&action={action}",
                    self.d.base, self.org
                ))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            items = page["items"].as_array().unwrap().clone();
            if items.len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        items.into_iter().map(|i| i["event"].clone()).collect()
    }
}

fn chat(model: &str, text: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})
}

/// The `data:` payloads of an SSE body.
fn data_lines(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

/// The concatenated chat content deltas of a stream.
fn chat_text(body: &str) -> String {
    data_lines(body)
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

/// `<KIND_hex12>` occurrences, in order.
fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('<') {
        let tail = &rest[i..];
        if let Some(j) = tail.find('>') {
            let inner = &tail[1..j];
            if let Some((kind, hex)) = inner.rsplit_once('_') {
                if hex.len() == 12
                    && hex.chars().all(|c| c.is_ascii_hexdigit())
                    && kind.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                {
                    out.push(tail[..=j].to_string());
                }
            }
        }
        rest = &rest[i + 1..];
    }
    out
}

#[tokio::test]
async fn chat_completions_go_out_pseudonymized_and_come_back_restored() {
    let g = gateway(PiiAction::Tokenize, "us-east").await;
    let r = g
        .post(
            "/openai/v1/chat/completions",
            chat("stand-in", &prompt(), false),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        format!("You said: {}", prompt())
    );
    let received = g.received();
    for value in [EMAIL, PHONE, NAME] {
        assert!(!received.contains(value), "the provider received a value");
    }
    let first = placeholders(&received);
    assert_eq!(first.len(), 3, "three placeholders: {first:?}");
    // The upstream key came from the environment; the caller's Custos key never left.
    let rec = g.up.state.requests();
    assert_eq!(
        rec[0].authorization.as_deref(),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    assert!(!received.contains(&g.key));
    // The same values get the same placeholders in the next request.
    g.up.state.clear();
    let streamed = g
        .post(
            "/openai/v1/chat/completions",
            chat("stand-in", &prompt(), true),
        )
        .await;
    assert_eq!(
        chat_text(&streamed.text().await.unwrap()),
        format!("You said: {}", prompt())
    );
    assert_eq!(placeholders(&g.received()), first);
    // One metadata-only event per call.
    let events = g.events_n("llm.chat_completions", 2).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let e = &events[0];
    assert_eq!(
        (&e["model"], &e["stream"]),
        (&json!("stand-in"), &json!(false)),
        "{e}"
    );
    assert_eq!(e["entities"]["EMAIL_ADDRESS"], 1, "{e}");
    assert_eq!(e["result"], "ok", "{e}");
    assert_eq!(events[0]["target"], "llm:openai");
    let all = serde_json::to_string(&events).unwrap();
    for value in [EMAIL, PHONE, NAME] {
        assert!(!all.contains(value));
    }
}

#[tokio::test]
async fn a_placeholder_split_at_any_byte_is_restored() {
    let g = gateway(PiiAction::Tokenize, "us-east").await;
    let text = format!("write to {EMAIL} today");
    g.post(
        "/openai/v1/chat/completions",
        chat("stand-in", &text, false),
    )
    .await;
    let sent = serde_json::from_str::<Value>(&g.up.state.requests()[0].body).unwrap();
    let scrubbed = sent["messages"][0]["content"].as_str().unwrap().to_string();
    let reply = format!("You said: {scrubbed}");
    let p = placeholders(&reply).remove(0);
    let at = reply.find(&p).unwrap();
    for split in at..=at + p.len() {
        for (path, body) in [
            (
                "/openai/v1/chat/completions",
                chat(&format!("stand-in+split-{split}"), &text, true),
            ),
            (
                "/anthropic/v1/messages",
                json!({"model": format!("stand-in+split-{split}"), "max_tokens": 64,
                    "stream": true, "messages": [{"role": "user", "content": text}]}),
            ),
            (
                "/openai/v1/responses",
                json!({"model": format!("stand-in+split-{split}"), "stream": true,
                    "input": text}),
            ),
        ] {
            let r = g.post(path, body).await;
            assert_eq!(r.status(), StatusCode::OK);
            let sse = r.text().await.unwrap();
            assert!(
                !sse.contains(&p),
                "split {split} of {path}: placeholder leaked"
            );
            let events = data_lines(&sse)
                .iter()
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .collect::<Vec<_>>();
            let got: String = if path.contains("anthropic") {
                events
                    .iter()
                    .filter_map(|v| v["delta"]["text"].as_str().map(String::from))
                    .collect()
            } else if path.contains("responses") {
                events
                    .iter()
                    .filter(|v| v["type"] == "response.output_text.delta")
                    .filter_map(|v| v["delta"].as_str().map(String::from))
                    .collect()
            } else {
                chat_text(&sse)
            };
            assert_eq!(got, format!("You said: {text}"), "split {split} of {path}");
        }
    }
}

#[tokio::test]
async fn tool_calls_carry_placeholders_out_and_originals_back() {
    let g = gateway(PiiAction::Tokenize, "us-east").await;
    let tools = json!([{"type": "function", "function": {"name": "lookup",
        "description": "Look a customer up", "parameters": {"type": "object",
        "properties": {"text": {"type": "string"}}}}}]);
    for stream in [false, true] {
        let body = json!({"model": "stand-in", "stream": stream, "tools": tools,
            "messages": [{"role": "user", "content": prompt()}]});
        let r = g.post("/openai/v1/chat/completions", body).await;
        let text = r.text().await.unwrap();
        let args = if stream {
            data_lines(&text)
                .iter()
                .filter(|d| *d != "[DONE]")
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter_map(|v| {
                    v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                        .as_str()
                        .map(String::from)
                })
                .collect::<String>()
        } else {
            let v: Value = serde_json::from_str(&text).unwrap();
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let args: Value = serde_json::from_str(&args).unwrap();
        assert_eq!(args["text"], prompt(), "stream={stream}");
    }
    // The tool result goes back out pseudonymized, with the same placeholders.
    let body = json!({"model": "stand-in", "tools": tools, "messages": [
        {"role": "user", "content": prompt()},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "lookup", "arguments": json!({"text": prompt()}).to_string()}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": format!("{NAME} has SSN {SSN}")},
    ]});
    let r = g.post("/openai/v1/chat/completions", body).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        format!("You said: {NAME} has SSN {SSN}")
    );
    let received = g.received();
    for value in [EMAIL, PHONE, NAME, SSN] {
        assert!(!received.contains(value), "the provider received a value");
    }
}

#[tokio::test]
async fn refusals_are_provider_shaped_and_audited() {
    let g = gateway(PiiAction::Tokenize, "us-east").await;
    let refused = |r: &Value, code: &str| {
        assert_eq!(r["error"]["code"], code, "{r}");
        assert!(r["error"]["message"].as_str().is_some());
    };
    // Model not allowed.
    g.settings(json!({"llm_models": ["other-model"]})).await;
    let r = g
        .post("/openai/v1/chat/completions", chat("stand-in", "hi", false))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    refused(&r.json().await.unwrap(), "model_not_allowed");
    g.settings(json!({"llm_models": null, "private_data_mode": true}))
        .await;
    // Private data mode.
    let r = g
        .post(
            "/openai/v1/responses",
            json!({"model": "stand-in", "input": "news?", "tools": [{"type": "web_search_preview"}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    refused(&r.json().await.unwrap(), "private_data_mode");
    // Too large.
    g.settings(json!({"llm_max_request_bytes": 1024})).await;
    let r = g
        .post(
            "/openai/v1/chat/completions",
            chat("stand-in", &"word ".repeat(400), false),
        )
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    refused(&r.json().await.unwrap(), "request_too_large");
    // Provider not allowed; Anthropic's shape on its route.
    g.settings(json!({"llm_providers": ["openai"], "llm_max_request_bytes": 1048576}))
        .await;
    let r = g
        .post(
            "/anthropic/v1/messages",
            json!({"model": "stand-in", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "permission_error");
    // A body the gateway cannot scrub is refused, never forwarded as it is.
    let r = g
        .post(
            "/openai/v1/chat/completions",
            json!({"model": "stand-in", "messages": format!("mail {EMAIL}")}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("invalid_request") && !text.contains(EMAIL),
        "{text}"
    );
    // Unknown provider, wrong kind.
    let r = g
        .post("/nope/v1/chat/completions", chat("stand-in", "hi", false))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = g
        .post("/openai/v1/messages", chat("stand-in", "hi", false))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Concurrency: one slot, held by a stream that hangs.
    g.settings(json!({"llm_max_concurrency": 1, "llm_providers": null}))
        .await;
    let held = g
        .post(
            "/openai/v1/chat/completions",
            chat("stand-in+hang", "hi", true),
        )
        .await;
    assert_eq!(held.status(), StatusCode::OK);
    let r = g
        .post("/openai/v1/chat/completions", chat("stand-in", "hi", false))
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    refused(&r.json().await.unwrap(), "concurrency_limit");
    // A refusal takes no slot and gives none back: the next call is refused too.
    let r = g
        .post("/openai/v1/chat/completions", chat("stand-in", "hi", false))
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(held);
    // Nothing refused reached the provider; each refusal is one denied event.
    assert!(g
        .up
        .state
        .requests()
        .iter()
        .all(|r| r.body.contains("stand-in+hang")));
    let denied: Vec<String> = g
        .events("llm.chat_completions")
        .await
        .iter()
        .chain(g.events("llm.responses").await.iter())
        .chain(g.events("llm.messages").await.iter())
        .filter(|e| e["outcome"] == "denied")
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    for code in [
        "invalid_request",
        "model_not_allowed",
        "private_data_mode",
        "request_too_large",
        "provider_not_allowed",
        "unknown_provider",
        "wrong_provider_kind",
        "concurrency_limit",
    ] {
        assert!(
            denied.iter().any(|r| r.starts_with(code)),
            "{code} not audited: {denied:?}"
        );
    }
    let metrics =
        g.d.client
            .get(format!("{}/metrics", g.d.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert!(metrics.contains("custos_llm_refusals_total{reason=\"concurrency_limit\"} 2"));
    assert!(metrics.contains("custos_llm_gateway_added_seconds_count"));
}

#[tokio::test]
async fn zero_retention_asks_the_provider_to_keep_nothing() {
    let g = gateway(PiiAction::Tokenize, "us-east").await;
    // Responses: OpenAI keeps them unless told not to; the gateway tells it.
    let r = g
        .post(
            "/openai/v1/responses",
            json!({"model": "stand-in", "input": prompt()}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let sent: Value = serde_json::from_str(&g.up.state.requests()[0].body).unwrap();
    assert_eq!(sent["store"], json!(false), "{sent}");
    // A request that asks to be kept is refused before it leaves, and audited.
    for (path, body) in [
        (
            "/openai/v1/responses",
            json!({"model": "stand-in", "input": "hi", "store": true}),
        ),
        (
            "/openai/v1/responses",
            json!({"model": "stand-in", "input": "hi", "background": true}),
        ),
        (
            "/openai/v1/chat/completions",
            json!({"model": "stand-in", "store": true, "messages": [{"role": "user", "content": "hi"}]}),
        ),
    ] {
        let r = g.post(path, body).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "zero_retention", "{v}");
    }
    assert_eq!(
        g.up.state.requests().len(),
        1,
        "a refused call reached the provider"
    );
    let denied = g.events_n("llm.responses", 3).await;
    assert!(
        denied
            .iter()
            .any(|e| e["outcome"] == "denied" && e.to_string().contains("zero_retention")),
        "{denied:?}"
    );
    // Without zero retention the caller's choice goes through untouched.
    let g = gateway_with(PiiAction::Tokenize, "us-east", |p| {
        p.llm.zero_retention = false
    })
    .await;
    let r = g
        .post(
            "/openai/v1/responses",
            json!({"model": "stand-in", "input": "hi", "store": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let sent: Value = serde_json::from_str(&g.up.state.requests()[0].body).unwrap();
    assert_eq!(sent["store"], json!(true));
}

#[tokio::test]
async fn zero_retention_refuses_truthy_values_that_are_not_true() {
    let g = gateway(PiiAction::Tokenize, "us-east").await;
    let chat_with = |field: &str, v: Value| {
        let mut b = chat("stand-in", "hi", false);
        b[field] = v;
        ("/openai/v1/chat/completions", b)
    };
    let resp_with = |field: &str, v: Value| {
        let mut b = json!({"model": "stand-in", "input": "hi"});
        b[field] = v;
        ("/openai/v1/responses", b)
    };
    // Not `false`: refused as invalid input naming the field, never guessed at.
    for (path, body, field) in [
        (chat_with("store", json!("true")), "store"),
        (chat_with("store", json!(1)), "store"),
        (resp_with("store", json!("true")), "store"),
        (resp_with("store", json!(1)), "store"),
        (resp_with("store", json!(null)), "store"),
        (resp_with("background", json!("true")), "background"),
        (resp_with("background", json!(1)), "background"),
    ]
    .map(|((p, b), f)| (p, b, f))
    {
        let r = g.post(path, body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path} {field}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_input", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(&format!("`{field}`")), "{msg}");
    }
    // State the provider would keep or reuse: refused like `store: true`.
    for (path, body) in [
        resp_with("conversation", json!("conv_1")),
        resp_with("previous_response_id", json!("resp_1")),
        resp_with("prompt_cache_retention", json!("24h")),
        chat_with("prompt_cache_retention", json!("24h")),
    ] {
        let r = g.post(path, body).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "zero_retention", "{v}");
    }
    assert!(g.up.state.requests().is_empty(), "a refused call was sent");
}

#[tokio::test]
async fn a_provider_outside_the_orgs_region_needs_its_consent() {
    let g = gateway(PiiAction::Tokenize, "eu-central").await;
    let r = g
        .post("/openai/v1/chat/completions", chat("stand-in", "hi", false))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "region_not_allowed");
    assert!(g.up.state.requests().is_empty());
    g.settings(json!({"allow_data_transfer": true})).await;
    let r = g
        .post("/openai/v1/chat/completions", chat("stand-in", "hi", false))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn block_refuses_naming_entity_types_only() {
    let g = gateway(PiiAction::Block, "us-east").await;
    let r = g
        .post(
            "/openai/v1/chat/completions",
            chat("stand-in", &format!("SSN {SSN}"), false),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("US_SSN") && text.contains("pii_blocked"),
        "{text}"
    );
    assert!(!text.contains(SSN));
    assert!(g.up.state.requests().is_empty());
}

#[tokio::test]
async fn upstream_failures_become_provider_errors() {
    let g = gateway(PiiAction::Tokenize, "us-east").await;
    let r = g
        .post(
            "/openai/v1/chat/completions",
            chat("stand-in+fail-500", "hi", false),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "upstream_error"
    );
    let r = g
        .post(
            "/openai/v1/chat/completions",
            chat("stand-in+fail-429", "hi", false),
        )
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    // The policy's timeout is 2 s.
    let r = g
        .post(
            "/anthropic/v1/messages",
            json!({"model": "stand-in+slow-4000", "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "api_error"
    );
    let events = g.events("llm.messages").await;
    assert!(events.iter().any(|e| e["result"] == "upstream_timeout"));
}

#[tokio::test]
async fn a_caller_that_goes_away_cancels_the_upstream_request() {
    let g = gateway(PiiAction::Tokenize, "us-east").await;
    let r = g
        .post(
            "/openai/v1/chat/completions",
            chat("stand-in+hang", &prompt(), true),
        )
        .await;
    let mut body = r.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(body);
    for _ in 0..100 {
        if g.up.state.disconnects() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(g.up.state.disconnects(), 1);
    let events = g.events("llm.chat_completions").await;
    assert_eq!(events[0]["result"], "caller_gone", "{events:?}");
}

#[tokio::test]
async fn models_lists_what_the_org_may_use() {
    let g = gateway(PiiAction::Tokenize, "us-east").await;
    g.settings(json!({"llm_models": ["gpt-a", "claude-b"]}))
        .await;
    let v: Value =
        g.d.client
            .get(format!("{}/llm/openai/v1/models", g.d.base))
            .bearer_auth(&g.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-a", "claude-b"]);
    let v: Value =
        g.d.client
            .get(format!("{}/llm/anthropic/v1/models", g.d.base))
            .header("x-api-key", &g.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(v["has_more"], false);
    assert_eq!(v["data"][0]["type"], "model");
}

#[tokio::test]
async fn prompts_are_kept_scrubbed_only_when_the_org_opts_in_and_the_policy_allows() {
    let g = gateway(PiiAction::Tokenize, "us-east").await;
    let r =
        g.d.client
            .patch(format!("{}/v1/orgs/{}/settings", g.d.base, g.org))
            .bearer_auth(&g.owner)
            .json(&json!({"llm_retain_prompts": true}))
            .send()
            .await
            .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "zero retention refuses"
    );

    let g = gateway_with(PiiAction::Tokenize, "us-east", |p| {
        p.llm.zero_retention = false;
        p.llm.category = Some("app_logs".into());
    })
    .await;
    g.settings(json!({"llm_retain_prompts": true})).await;
    let r = g
        .post(
            "/openai/v1/chat/completions",
            chat("stand-in", &prompt(), false),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let events = g.events("llm.chat_completions").await;
    let id = events[0]["prompt_record"]
        .as_str()
        .unwrap_or_else(|| panic!("{events:?}"));
    let record: Value =
        g.d.client
            .get(format!("{}/v1/orgs/{}/records/{id}", g.d.base, g.org))
            .bearer_auth(&g.owner)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(record["category"], "app_logs", "{record}");
    let kept = record["content"]["request"]["messages"][0]["content"]
        .as_str()
        .unwrap();
    assert_eq!(placeholders(kept).len(), 3, "{kept}");
    for value in [EMAIL, PHONE, NAME] {
        assert!(!kept.contains(value));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_each_leave_exactly_one_event() {
    let g = gateway(PiiAction::Tokenize, "us-east").await;
    let calls = (0..24).map(|i| {
        g.post(
            "/openai/v1/chat/completions",
            chat("stand-in", &format!("call {i}: {EMAIL}"), i % 2 == 0),
        )
    });
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.unwrap();
    }
    let events = g.events_n("llm.chat_completions", 24).await;
    assert_eq!(events.len(), 24);
    assert!(events
        .iter()
        .all(|e| e["outcome"] == "success" && e["entities"]["EMAIL_ADDRESS"] == 1));
}

/// A call made for a named subject (`X-Custos-Subject`, an app acting for its user) names the
/// subject's keyed reference in its event, keeps its prompt as the subject's record, and
/// counts in an incident's affected subjects under the category prompts are kept in (the
/// owner's read of the kept prompt is another actor's, outside the incident's scope).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_for_a_named_subject_counts_in_an_incident() {
    let g = gateway_with(PiiAction::Tokenize, "us-east", |p| {
        p.llm.zero_retention = false;
        p.llm.category = Some("app_logs".into());
    })
    .await;
    g.settings(json!({"llm_retain_prompts": true})).await;
    let r =
        g.d.client
            .post(format!("{}/llm/openai/v1/chat/completions", g.d.base))
            .bearer_auth(&g.key)
            .header("X-Custos-Subject", "user-42")
            .json(&chat("stand-in", &prompt(), false))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let events = g.events("llm.chat_completions").await;
    let reference: Value =
        g.d.client
            .get(format!(
                "{}/v1/orgs/{}/subjects/user-42/reference",
                g.d.base, g.org
            ))
            .bearer_auth(&g.owner)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let subject_ref = reference["subject_ref"].as_str().unwrap();
    assert_eq!(events[0]["subject_ref"], subject_ref, "{events:?}");
    assert_eq!(events[0]["category"], "app_logs", "{events:?}");
    let id = events[0]["prompt_record"].as_str().unwrap();
    let record: Value =
        g.d.client
            .get(format!("{}/v1/orgs/{}/records/{id}", g.d.base, g.org))
            .bearer_auth(&g.owner)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(record["subject"], "user-42", "{record}");
    let actor = format!("member:{}", events[0]["actor"]["id"].as_str().unwrap());

    let incident = post_as(
        &g.d,
        ADMIN,
        "/v1/incidents",
        json!({"title": "Gateway key leaked",
               "scope": {"orgs": [g.org], "actors": [actor]}}),
    )
    .await;
    let affected: Value =
        g.d.client
            .get(format!(
                "{}/v1/incidents/{}/affected",
                g.d.base,
                incident["id"].as_str().unwrap()
            ))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let subjects = &affected["orgs"][0]["subjects"];
    let found = subjects
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject_ref"] == subject_ref)
        .unwrap_or_else(|| panic!("{affected}"));
    assert_eq!(found["categories"]["app_logs"], 1, "{affected}");

    // A subject that is not one is refused before anything is sent.
    let r =
        g.d.client
            .post(format!("{}/llm/openai/v1/chat/completions", g.d.base))
            .bearer_auth(&g.key)
            .header("X-Custos-Subject", "x".repeat(1000))
            .json(&chat("stand-in", &prompt(), false))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}
