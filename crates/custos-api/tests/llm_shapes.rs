//! Every position of the three wire formats, over HTTP against the stand-in provider (which
//! records what it received): a PII marker in every string, key, number and URL position of
//! more than 60 request shapes, and none of it may reach the provider.
//!
//! Structural positions (left alone by `custos-llm`'s schema, see `crates/custos-llm/src/
//! schema.rs`) and why:
//! - `model`: the provider matches it exactly; a model name holding personal data is refused
//!   before anything is sent (400 naming `model`), see [`a_model_name_holding_pii_is_refused`].
//! - `role`, `type` (of messages, content parts, items, tools, tool choices, sources),
//!   `tool_choice` as a string, `detail`, `format` of audio, `media_type`, `status`,
//!   `voice`, `modalities`, `include`, `reasoning.effort`: enum values the provider validates;
//!   kept only when shaped like one (a lowercase identifier), so an e-mail there is scanned
//!   all the same (the `enum position` cases below).
//! - base64 payloads (`input_audio.data`, Anthropic `source.data` of a `base64` source, a
//!   `data:...;base64,` URL): encoded media, kept only when longer than 256 base64 bytes.
//! - the names of the fields the wire formats define, at their own positions.
//!
//! [`structural_positions_arrive_unchanged`] checks that these arrive as they were sent.

mod support;

use std::sync::Arc;

use custos_core::SystemClock;
use custos_llm_stand_in::{start, Running};
use custos_policy::{PiiAction, Policy, Provider, ProviderKind};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{create_org_with_owner, deploy, Deployment, ADMIN};

const KEY_VAR: &str = "CUSTOS_TEST_LLM_UPSTREAM_KEY";
const UPSTREAM_KEY: &str = "upstream-secret-key-42";

/// The marker: an e-mail address (its local part must never reach the provider, in any
/// encoding).
const E: &str = "maria.gonzalez@example.com";
const LOCAL_PART: &str = "maria.gonzalez";
/// A payment card and a phone number, sent as JSON numbers.
const CARD: u64 = 4111111111111111;
const PHONE: u64 = 4155552671;

struct Gw {
    d: Deployment,
    up: Running,
    org: String,
    key: String,
}

async fn gateway() -> Gw {
    std::env::set_var(KEY_VAR, UPSTREAM_KEY);
    let up = start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut p = Policy::builtin();
    let provider = |name: &str, kind| Provider {
        name: name.into(),
        kind,
        base_url: up.base_url(),
        regions: vec!["us-east".into()],
        api_key_env: Some(KEY_VAR.into()),
        models: vec![],
    };
    p.llm.providers = vec![
        provider("openai", ProviderKind::OpenAi),
        provider("anthropic", ProviderKind::Anthropic),
    ];
    p.llm.timeout_seconds = 5;
    if let Some(rule) = &mut p.llm.pii {
        rule.action = PiiAction::Tokenize;
    }
    let d = deploy(p, Arc::new(SystemClock), |c| c).await;
    let created = create_org_with_owner(&d, json!({"name": "Acme", "region": "us-east"})).await;
    let org = created["id"].as_str().unwrap().to_string();
    let owner = created["owner"]["api_key"].as_str().unwrap();
    let post = |path: String, body: Value| {
        let rb = d
            .client
            .post(format!("{}{path}", d.base))
            .bearer_auth(owner);
        async move {
            rb.json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let member = json!({"name": "app", "roles": ["member"]});
    let key = post(format!("/v1/orgs/{org}/members"), member).await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    Gw { d, up, org, key }
}

impl Gw {
    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        let rb = self.d.client.post(format!("{}/llm{path}", self.d.base));
        let rb = if path.starts_with("/anthropic") {
            rb.header("x-api-key", &self.key)
        } else {
            rb.bearer_auth(&self.key)
        };
        rb.json(body).send().await.unwrap()
    }
}

const CHAT: &str = "/openai/v1/chat/completions";
const RESP: &str = "/openai/v1/responses";
const ANTH: &str = "/anthropic/v1/messages";

/// A chat body: one user message plus `extra` fields.
fn chat(messages: Value, extra: Value) -> Value {
    let mut b = json!({"model": "stand-in", "messages": messages});
    merge(&mut b, extra);
    b
}

fn resp(input: Value, extra: Value) -> Value {
    let mut b = json!({"model": "stand-in", "input": input});
    merge(&mut b, extra);
    b
}

fn anth(messages: Value, extra: Value) -> Value {
    let mut b = json!({"model": "stand-in", "max_tokens": 64, "messages": messages});
    merge(&mut b, extra);
    b
}

fn merge(b: &mut Value, extra: Value) {
    if let Value::Object(extra) = extra {
        b.as_object_mut().unwrap().extend(extra);
    }
}

fn user(content: Value) -> Value {
    json!([{"role": "user", "content": content}])
}

/// A key-value object whose key is the marker.
fn keyed(v: Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(E.to_string(), v);
    Value::Object(m)
}

fn args(v: Value) -> String {
    v.to_string()
}

/// Chat Completions shapes.
// One shape a line: the table reads as a list of positions.
#[rustfmt::skip]
fn chat_cases() -> Vec<(&'static str, &'static str, Value)> {
    let tool_call = |id: &str, name: &str, arguments: String| {
        json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": null,
            "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": id, "content": "ok"}])
    };
    let tool = |f: Value| json!({"tools": [{"type": "function", "function": f}]});
    vec![
        ("chat content", CHAT, chat(user(json!(format!("mail {E}"))), json!({}))),
        ("chat content part", CHAT, chat(user(json!([{"type": "text", "text": E}])), json!({}))),
        ("chat message name", CHAT, chat(json!([{"role": "user", "name": E, "content": "hi"}]), json!({}))),
        ("chat system", CHAT, chat(json!([{"role": "system", "content": E}, {"role": "user", "content": "hi"}]), json!({}))),
        ("chat developer parts", CHAT, chat(json!([{"role": "developer", "content": [{"type": "text", "text": E}]}, {"role": "user", "content": "hi"}]), json!({}))),
        ("chat tool call id", CHAT, chat(tool_call(E, "f", "{}".into()), json!({}))),
        ("chat tool call name", CHAT, chat(tool_call("c1", E, "{}".into()), json!({}))),
        ("chat tool call argument value", CHAT, chat(tool_call("c1", "f", args(json!({"to": E}))), json!({}))),
        ("chat tool call argument key", CHAT, chat(tool_call("c1", "f", args(keyed(json!(1)))), json!({}))),
        ("chat tool call argument card number", CHAT, chat(tool_call("c1", "f", args(json!({"n": CARD}))), json!({}))),
        ("chat tool call argument phone number", CHAT, chat(tool_call("c1", "f", args(json!({"phone": PHONE}))), json!({}))),
        ("chat tool call arguments not JSON", CHAT, chat(tool_call("c1", "f", format!("to {E}")), json!({}))),
        ("chat tool message content", CHAT, chat(json!([{"role": "tool", "tool_call_id": "c", "content": E}]), json!({}))),
        ("chat legacy function_call", CHAT, chat(json!([{"role": "assistant", "function_call": {"name": E, "arguments": args(json!({"a": E}))}}]), json!({}))),
        ("chat tool description", CHAT, chat(user(json!("hi")), tool(json!({"name": "f", "description": E})))),
        ("chat tool name", CHAT, chat(user(json!("hi")), tool(json!({"name": E})))),
        ("chat tool schema property name", CHAT, chat(user(json!("hi")), tool(json!({"name": "f", "parameters": {"type": "object", "properties": keyed(json!({"type": "string"}))}})))),
        ("chat tool schema format", CHAT, chat(user(json!("hi")), tool(json!({"name": "f", "parameters": {"type": "object", "properties": {"p": {"type": "string", "format": E}}}})))),
        ("chat tool schema enum", CHAT, chat(user(json!("hi")), tool(json!({"name": "f", "parameters": {"properties": {"p": {"enum": [E]}}, "required": [E]}})))),
        ("chat metadata value", CHAT, chat(user(json!("hi")), json!({"metadata": {"owner": E}}))),
        ("chat metadata key", CHAT, chat(user(json!("hi")), json!({"metadata": keyed(json!("x"))}))),
        ("chat metadata name and id", CHAT, chat(user(json!("hi")), json!({"metadata": {"name": E, "id": E, "type": E, "status": E}}))),
        ("chat metadata phone number", CHAT, chat(user(json!("hi")), json!({"metadata": {"phone": PHONE}}))),
        ("chat user", CHAT, chat(user(json!("hi")), json!({"user": E, "safety_identifier": E, "prompt_cache_key": E}))),
        ("chat image url query", CHAT, chat(user(json!([{"type": "image_url", "image_url": {"url": "https://img.test/a.png?owner=maria.gonzalez%40example.com"}}])), json!({}))),
        ("chat image url user info", CHAT, chat(user(json!([{"type": "image_url", "image_url": {"url": "https://maria.gonzalez%40example.com:pw@img.test/a.png"}}])), json!({}))),
        ("chat image url path", CHAT, chat(user(json!([{"type": "image_url", "image_url": {"url": format!("https://img.test/u/{E}/a.png"), "detail": "auto"}}])), json!({}))),
        ("chat image url fragment", CHAT, chat(user(json!([{"type": "image_url", "image_url": {"url": format!("https://img.test/a.png#{E}")}}])), json!({}))),
        ("chat image detail", CHAT, chat(user(json!([{"type": "image_url", "image_url": {"url": "https://img.test/a.png", "detail": E}}])), json!({}))),
        ("chat file name", CHAT, chat(user(json!([{"type": "file", "file": {"filename": E, "file_id": E}}])), json!({}))),
        ("chat file data URL as text", CHAT, chat(user(json!([{"type": "file", "file": {"file_data": format!("data:text/plain,{E}")}}])), json!({}))),
        ("chat audio data not base64", CHAT, chat(user(json!([{"type": "input_audio", "input_audio": {"data": E, "format": E}}])), json!({}))),
        ("chat response format schema", CHAT, chat(user(json!("hi")), json!({"response_format": {"type": "json_schema", "json_schema": {"name": E, "description": E, "schema": {"properties": keyed(json!({"description": E}))}}}}))),
        ("chat stop and prediction", CHAT, chat(user(json!("hi")), json!({"stop": [E], "prediction": {"type": "content", "content": E}}))),
        ("chat unknown field key", CHAT, chat(user(json!("hi")), keyed(json!("v")))),
        ("chat enum position role", CHAT, chat(json!([{"role": E, "content": "hi"}]), json!({}))),
        ("chat enum position part type", CHAT, chat(user(json!([{"type": E, "text": "hi"}])), json!({}))),
        ("chat enum position tool_choice", CHAT, chat(user(json!("hi")), json!({"tool_choice": E, "audio": {"voice": E, "format": "mp3"}}))),
        ("chat URL inside text", CHAT, chat(user(json!("see https://h.test/p?mail=maria.gonzalez%40example.com ok")), json!({}))),
    ]
}

/// Responses shapes.
// One shape a line: the table reads as a list of positions.
#[rustfmt::skip]
fn responses_cases() -> Vec<(&'static str, &'static str, Value)> {
    let items = |i: Value| resp(json!([{"role": "user", "content": "hi"}, i]), json!({}));
    vec![
        ("responses input string", RESP, resp(json!(E), json!({}))),
        ("responses instructions", RESP, resp(json!("hi"), json!({"instructions": E}))),
        ("responses message string", RESP, resp(json!([{"role": "user", "content": E}]), json!({}))),
        ("responses input_text", RESP, resp(json!([{"type": "message", "role": "user", "content": [{"type": "input_text", "text": E}]}]), json!({}))),
        ("responses input_image url", RESP, resp(json!([{"role": "user", "content": [{"type": "input_image", "image_url": format!("https://img.test/{E}.png"), "detail": "low"}]}]), json!({}))),
        ("responses input_file", RESP, resp(json!([{"role": "user", "content": [{"type": "input_file", "filename": E, "file_url": format!("https://f.test/x.pdf?u={E}")}]}]), json!({}))),
        ("responses function_call name and id", RESP, items(json!({"type": "function_call", "call_id": E, "id": E, "name": E, "arguments": "{}"}))),
        ("responses function_call argument value", RESP, items(json!({"type": "function_call", "call_id": "c", "name": "f", "arguments": args(json!({"to": E}))}))),
        ("responses function_call argument key", RESP, items(json!({"type": "function_call", "call_id": "c", "name": "f", "arguments": args(keyed(json!(true)))}))),
        ("responses function_call argument card", RESP, items(json!({"type": "function_call", "call_id": "c", "name": "f", "arguments": args(json!({"card": CARD}))}))),
        ("responses function_call_output", RESP, items(json!({"type": "function_call_output", "call_id": "c", "output": E}))),
        ("responses function_call_output parts", RESP, items(json!({"type": "function_call_output", "call_id": "c", "output": [{"type": "input_text", "text": E}]}))),
        ("responses custom_tool_call input", RESP, items(json!({"type": "custom_tool_call", "call_id": "c", "name": "raw", "input": E}))),
        ("responses tool description", RESP, resp(json!("hi"), json!({"tools": [{"type": "function", "name": E, "description": E, "parameters": {"properties": keyed(json!({"format": E}))}}]}))),
        ("responses prompt variables value", RESP, resp(json!("hi"), json!({"prompt": {"id": "pmpt_1", "variables": {"customer": E}}}))),
        ("responses prompt variables key", RESP, resp(json!("hi"), json!({"prompt": {"id": "pmpt_1", "variables": keyed(json!("x"))}}))),
        ("responses prompt variables part", RESP, resp(json!("hi"), json!({"prompt": {"id": "pmpt_1", "variables": {"doc": {"type": "input_text", "text": E}}}}))),
        ("responses metadata", RESP, resp(json!("hi"), json!({"metadata": {"name": E, "phone": PHONE}}))),
        ("responses text format schema", RESP, resp(json!("hi"), json!({"text": {"format": {"type": "json_schema", "name": E, "schema": {"properties": keyed(json!({}))}}}}))),
        ("responses user and cache key", RESP, resp(json!("hi"), json!({"user": E, "safety_identifier": E, "prompt_cache_key": E}))),
        ("responses mcp tool", RESP, resp(json!("hi"), json!({"tools": [{"type": "mcp", "server_label": E, "server_url": format!("https://mcp.test/{E}"), "headers": {"X-User": E}}]}))),
        ("responses item id and status", RESP, resp(json!([{"type": "message", "id": E, "status": E, "role": "user", "content": "hi"}]), json!({}))),
        ("responses reasoning item", RESP, items(json!({"type": "reasoning", "id": "r", "summary": [{"type": "summary_text", "text": E}]}))),
        ("responses enum position include", RESP, resp(json!("hi"), json!({"include": [E], "reasoning": {"effort": E}}))),
    ]
}

/// Anthropic Messages shapes.
// One shape a line: the table reads as a list of positions.
#[rustfmt::skip]
fn anthropic_cases() -> Vec<(&'static str, &'static str, Value)> {
    let tool_use = |id: &str, name: &str, input: Value| {
        json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": name, "input": input}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "ok"}]}])
    };
    let block = |b: Value| anth(user(json!([b])), json!({}));
    vec![
        ("anthropic system string", ANTH, anth(user(json!("hi")), json!({"system": E}))),
        ("anthropic system block", ANTH, anth(user(json!("hi")), json!({"system": [{"type": "text", "text": E, "cache_control": {"type": "ephemeral"}}]}))),
        ("anthropic content string", ANTH, anth(user(json!(E)), json!({}))),
        ("anthropic text block", ANTH, block(json!({"type": "text", "text": E}))),
        ("anthropic image url", ANTH, block(json!({"type": "image", "source": {"type": "url", "url": "https://img.test/a.png?who=maria.gonzalez%40example.com"}}))),
        ("anthropic image short base64", ANTH, block(json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": E}}))),
        ("anthropic document text", ANTH, block(json!({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": E}, "title": E, "context": E}))),
        ("anthropic document content", ANTH, block(json!({"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": E}]}}))),
        ("anthropic tool_use id", ANTH, anth(tool_use(E, "f", json!({})), json!({}))),
        ("anthropic tool_use name", ANTH, anth(tool_use("t", E, json!({})), json!({}))),
        ("anthropic tool_use input value", ANTH, anth(tool_use("t", "f", json!({"name": E, "type": E})), json!({}))),
        ("anthropic tool_use input key", ANTH, anth(tool_use("t", "f", keyed(json!(1))), json!({}))),
        ("anthropic tool_use input numbers", ANTH, anth(tool_use("t", "f", json!({"phone": PHONE, "card": CARD})), json!({}))),
        ("anthropic tool_result content", ANTH, block(json!({"type": "tool_result", "tool_use_id": E, "content": E}))),
        ("anthropic tool_result blocks", ANTH, block(json!({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": E}]}))),
        ("anthropic tool description", ANTH, anth(user(json!("hi")), json!({"tools": [{"name": E, "description": E, "input_schema": {"type": "object"}}]}))),
        ("anthropic tool schema property", ANTH, anth(user(json!("hi")), json!({"tools": [{"name": "f", "input_schema": {"type": "object", "properties": keyed(json!({"type": "string", "format": E}))}}]}))),
        ("anthropic mcp server", ANTH, anth(user(json!("hi")), json!({"mcp_servers": [{"type": "url", "name": E, "url": "https://maria.gonzalez%40example.com@mcp.test/s"}]}))),
        ("anthropic metadata", ANTH, anth(user(json!("hi")), json!({"metadata": {"user_id": E}}))),
        ("anthropic stop sequences", ANTH, anth(user(json!("hi")), json!({"stop_sequences": [E]}))),
        ("anthropic unknown block field", ANTH, block(json!({"type": "text", "text": "hi", "citations": [{"cited_text": E, "document_title": E}]}))),
        ("anthropic enum position role", ANTH, anth(json!([{"role": E, "content": "hi"}]), json!({}))),
        ("anthropic enum position tool_choice", ANTH, anth(user(json!("hi")), json!({"tool_choice": {"type": E, "name": E}}))),
    ]
}

/// True when `body` holds the marker or one of the numbers in any spelling.
fn leaks(body: &str) -> bool {
    let lower = body.to_lowercase();
    lower.contains(LOCAL_PART)
        || lower.contains("maria%2egonzalez")
        || body.contains(&CARD.to_string())
        || body.contains(&PHONE.to_string())
}

#[tokio::test]
async fn no_pii_marker_reaches_the_provider_in_any_request_shape() {
    let g = gateway().await;
    let cases: Vec<_> = chat_cases()
        .into_iter()
        .chain(responses_cases())
        .chain(anthropic_cases())
        .collect();
    assert!(cases.len() >= 60, "{} shapes", cases.len());
    let mut leaked = Vec::new();
    for (name, path, body) in &cases {
        g.up.state.clear();
        let r = g.post(path, body).await;
        let status = r.status();
        let answer = r.text().await.unwrap();
        let received = g.up.state.requests();
        // A refused call would pass vacuously: every shape must reach the provider.
        assert_eq!(
            received.len(),
            1,
            "{name}: not forwarded ({status}: {answer})"
        );
        if leaks(&received[0].body) {
            leaked.push(*name);
        }
    }
    assert!(
        leaked.is_empty(),
        "the provider received PII in: {leaked:?}"
    );
}

#[tokio::test]
async fn structural_positions_arrive_unchanged() {
    let g = gateway().await;
    let b64 = "QUJD".repeat(100);
    for (path, body) in [
        (
            CHAT,
            chat(
                json!([{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{b64}"), "detail": "high"}},
                    {"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}}]}]),
                json!({"tool_choice": "auto", "modalities": ["text"], "reasoning_effort": "low"}),
            ),
        ),
        (
            RESP,
            resp(
                json!([{"type": "message", "role": "user", "status": "completed", "content": [{"type": "input_text", "text": "hi"}]}]),
                json!({"include": ["reasoning.encrypted_content"], "reasoning": {"effort": "low"}, "store": false}),
            ),
        ),
        (
            ANTH,
            anth(
                user(
                    json!([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}}]),
                ),
                json!({"tool_choice": {"type": "auto"}}),
            ),
        ),
    ] {
        g.up.state.clear();
        g.post(path, &body).await;
        let sent: Value = serde_json::from_str(&g.up.state.requests()[0].body).unwrap();
        assert_eq!(sent, body, "{path}");
    }
}

#[tokio::test]
async fn a_model_name_holding_pii_is_refused() {
    let g = gateway().await;
    for (path, body) in [
        (CHAT, chat(user(json!("hi")), json!({"model": E}))),
        (RESP, resp(json!("hi"), json!({"model": format!("ft:{E}")}))),
        (ANTH, anth(user(json!("hi")), json!({"model": E}))),
    ] {
        let r = g.post(path, &body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        let text = r.text().await.unwrap();
        assert!(
            text.contains("`model`") && !text.contains(LOCAL_PART),
            "{text}"
        );
    }
    assert!(g.up.state.requests().is_empty(), "a refused call was sent");
    // A model the policy does not list is counted as `other`, and the refused names appear
    // nowhere: not in /metrics, not in the audit log.
    g.post(CHAT, &chat(user(json!("hi")), json!({"model": "stand-in"})))
        .await;
    let metrics =
        g.d.client
            .get(format!("{}/metrics", g.d.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert!(!metrics.contains(LOCAL_PART) && !metrics.contains("stand-in"));
    assert!(
        metrics.contains(
            "custos_llm_calls_total{provider=\"openai\",model=\"other\",result=\"ok\"} 1"
        ),
        "{metrics}"
    );
    let audit =
        g.d.client
            .get(format!("{}/v1/audit/events?org={}", g.d.base, g.org))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert!(audit.contains("invalid_model") && !audit.contains(LOCAL_PART));
}
