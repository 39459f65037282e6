//! The stand-in over HTTP: every route, plain and streamed, the reply logic and the directives.

use std::time::{Duration, Instant};

use custos_llm_stand_in::{start, Running};
use serde_json::{json, Value};

async fn stand_in() -> Running {
    start("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn post(s: &Running, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", s.base_url()))
        .header("authorization", "Bearer sk-test")
        .header("x-api-key", "ak-test")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// One SSE event: its `event:` name (if any) and its `data:` text.
#[derive(Debug)]
struct Event {
    name: Option<String>,
    data: String,
}

fn parse_sse(text: &str) -> Vec<Event> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push(v);
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            Event {
                name,
                data: data.join("\n"),
            }
        })
        .collect()
}

async fn stream(s: &Running, path: &str, body: &Value) -> Vec<Event> {
    let resp = post(s, path, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    parse_sse(&resp.text().await.unwrap())
}

fn json_of(e: &Event) -> Value {
    serde_json::from_str(&e.data).unwrap()
}

fn tool_chat() -> Value {
    json!([{"type": "function", "function": {"name": "record_contact", "parameters": {"type": "object"}}}])
}

#[tokio::test]
async fn chat_echoes_and_records_the_body() {
    let s = stand_in().await;
    let body = json!({"model": "stand-in", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello big world"}
    ]});
    let resp = post(&s, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "stand-in");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "You said: hello big world"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["usage"]["total_tokens"], 10);

    let recorded = s.state.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].path, "/v1/chat/completions");
    assert_eq!(recorded[0].authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(recorded[0].x_api_key.as_deref(), Some("ak-test"));
    assert_eq!(
        serde_json::from_str::<Value>(&recorded[0].body).unwrap(),
        body
    );
}

#[tokio::test]
async fn chat_calls_the_first_tool_then_answers_the_result() {
    let s = stand_in().await;
    let mut body = json!({"model": "stand-in", "tools": tool_chat(), "messages": [
        {"role": "user", "content": "mail ana@example.com"}
    ]});
    let v: Value = post(&s, "/v1/chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "record_contact");
    assert_eq!(
        call["function"]["arguments"],
        r#"{"text":"mail ana@example.com"}"#
    );
    body["messages"].as_array_mut().unwrap().extend([
        choice["message"].clone(),
        json!({"role": "tool", "tool_call_id": call["id"], "content": "saved ana"}),
    ]);
    let v: Value = post(&s, "/v1/chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "You said: saved ana");
}

#[tokio::test]
async fn chat_streams_chunks_usage_and_done() {
    let s = stand_in().await;
    let body = json!({"model": "stand-in+chunk-4", "stream": true,
        "stream_options": {"include_usage": true, "include_obfuscation": false},
        "messages": [{"role": "user", "content": "héllo wörld"}]});
    let events = stream(&s, "/v1/chat/completions", &body).await;
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(json_of).collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "You said: héllo wörld");
    let pieces: Vec<&str> = chunks[1..]
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(pieces[..pieces.len() - 1]
        .iter()
        .all(|p| p.len() >= 4 && p.len() <= 5));
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 2);
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["usage"], Value::Null);
    assert!(chunks.iter().all(|c| c.get("obfuscation").is_none()));
}

#[tokio::test]
async fn chat_streams_a_tool_call_split_in_two() {
    let s = stand_in().await;
    let body = json!({"model": "stand-in+split-5", "stream": true, "tools": tool_chat(),
        "messages": [{"role": "user", "content": "call me"}]});
    let events = stream(&s, "/v1/chat/completions", &body).await;
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(json_of).collect();
    let first = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["function"]["name"], "record_contact");
    assert_eq!(first["function"]["arguments"], "");
    assert!(first["id"].as_str().unwrap().starts_with("call_"));
    let args: Vec<&str> = chunks[1..]
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, vec![r#"{"tex"#, r#"t":"call me"}"#]);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
    // Without include_usage there is no usage field at all; obfuscation is on by default.
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert!(chunks
        .iter()
        .all(|c| c["obfuscation"].as_str().is_some_and(|o| !o.is_empty())));
}

#[tokio::test]
async fn responses_plain_echoes_instructions_and_counts_words() {
    let s = stand_in().await;
    let body =
        json!({"model": "stand-in", "instructions": "talk like a pirate", "input": "ahoy there"});
    let v: Value = post(&s, "/v1/responses", &body).await.json().await.unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["instructions"], "talk like a pirate");
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["content"][0]["text"], "You said: ahoy there");
    assert_eq!(v["usage"]["input_tokens"], 6);
    assert_eq!(v["usage"]["output_tokens"], 4);
}

#[tokio::test]
async fn responses_stream_the_full_event_sequence() {
    let s = stand_in().await;
    let body = json!({"model": "stand-in+split-3", "stream": true, "instructions": "x", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    ]});
    let events = stream(&s, "/v1/responses", &body).await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    for (i, e) in events.iter().enumerate() {
        let v = json_of(e);
        assert_eq!(v["type"], e.name.as_deref().unwrap());
        assert_eq!(v["sequence_number"], i);
    }
    assert_eq!(json_of(&events[4])["delta"], "You");
    assert!(json_of(&events[4])["obfuscation"].is_string());
    assert!(json_of(&events[3]).get("obfuscation").is_none());
    assert_eq!(json_of(&events[5])["delta"], " said: hi");
    let done = json_of(&events[9]);
    assert_eq!(done["response"]["instructions"], "x");
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "You said: hi"
    );
    assert_eq!(done["response"]["usage"]["output_tokens"], 3);
    assert_eq!(json_of(&events[0])["response"]["status"], "in_progress");
}

#[tokio::test]
async fn responses_call_a_function_then_answer_its_output() {
    let s = stand_in().await;
    let tools = json!([{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]);
    let body = json!({"model": "stand-in", "stream": true, "tools": tools, "input": "find bob"});
    let events = stream(&s, "/v1/responses", &body).await;
    let deltas: String = events
        .iter()
        .filter(|e| e.name.as_deref() == Some("response.function_call_arguments.delta"))
        .map(|e| json_of(e)["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deltas, r#"{"text":"find bob"}"#);
    let done = events
        .iter()
        .find(|e| e.name.as_deref() == Some("response.function_call_arguments.done"))
        .map(json_of)
        .unwrap();
    assert_eq!(done["arguments"], deltas);
    let item = &json_of(events.last().unwrap())["response"]["output"][0];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["name"], "lookup");

    let next = json!({"model": "stand-in", "tools": tools, "input": [
        {"role": "user", "content": "find bob"},
        item,
        {"type": "function_call_output", "call_id": item["call_id"], "output": "bob is here"}
    ]});
    let v: Value = post(&s, "/v1/responses", &next).await.json().await.unwrap();
    assert_eq!(
        v["output"][0]["content"][0]["text"],
        "You said: bob is here"
    );
}

#[tokio::test]
async fn messages_plain_and_tool_use() {
    let s = stand_in().await;
    let body = json!({"model": "stand-in", "max_tokens": 100, "system": "sys",
        "messages": [{"role": "user", "content": "hello"}]});
    let resp = post(&s, "/v1/messages", &body).await;
    assert!(resp.headers().contains_key("request-id"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(
        v["content"][0],
        json!({"type": "text", "text": "You said: hello"})
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 2);
    assert_eq!(v["usage"]["output_tokens"], 3);

    let tools = json!([{"name": "save", "input_schema": {"type": "object"}}]);
    let body = json!({"model": "stand-in", "max_tokens": 100, "tools": tools,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "keep this"}]}]});
    let v: Value = post(&s, "/v1/messages", &body).await.json().await.unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][0]["type"], "tool_use");
    assert_eq!(v["content"][0]["name"], "save");
    assert_eq!(v["content"][0]["input"], json!({"text": "keep this"}));
}

#[tokio::test]
async fn messages_stream_events_in_order() {
    let s = stand_in().await;
    let tools = json!([{"name": "save", "input_schema": {"type": "object"}}]);
    let body = json!({"model": "stand-in+split-2", "max_tokens": 100, "stream": true, "tools": tools,
        "messages": [{"role": "user", "content": "ok"}]});
    let events = stream(&s, "/v1/messages", &body).await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for e in &events {
        assert_eq!(json_of(e)["type"], e.name.as_deref().unwrap());
    }
    assert_eq!(json_of(&events[1])["content_block"]["type"], "tool_use");
    let partial: Vec<Value> = events[3..5]
        .iter()
        .map(|e| json_of(e)["delta"].clone())
        .collect();
    assert_eq!(
        partial[0],
        json!({"type": "input_json_delta", "partial_json": "{\""})
    );
    assert_eq!(partial[1]["partial_json"], r#"text":"ok"}"#);
    let delta = json_of(&events[6]);
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 1);
}

#[tokio::test]
async fn models_follow_the_callers_provider() {
    let s = stand_in().await;
    let openai: Value = client()
        .get(format!("{}/v1/models", s.base_url()))
        .bearer_auth("sk")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openai["object"], "list");
    assert_eq!(openai["data"][0]["object"], "model");
    let anthropic: Value = client()
        .get(format!("{}/v1/models", s.base_url()))
        .header("x-api-key", "ak")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anthropic["has_more"], false);
    assert_eq!(anthropic["data"][0]["type"], "model");
    assert_eq!(anthropic["first_id"], anthropic["data"][0]["id"]);
}

#[tokio::test]
async fn failures_in_provider_style() {
    let s = stand_in().await;
    let resp = post(
        &s,
        "/v1/chat/completions",
        &json!({"model": "stand-in+fail-500", "messages": []}),
    )
    .await;
    assert_eq!(resp.status(), 500);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "server_error");

    let resp = post(
        &s,
        "/v1/messages",
        &json!({"model": "m+fail-429", "max_tokens": 1, "messages": []}),
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    let resp = post(&s, "/v1/responses", &json!({"input": "no model"})).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(s.state.requests().len(), 3);
}

#[tokio::test]
async fn slow_and_drip_take_their_time() {
    let s = stand_in().await;
    let t = Instant::now();
    let resp = post(
        &s,
        "/v1/chat/completions",
        &json!({"model": "m+slow-300", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    let t = Instant::now();
    // "You said: x" in 11 one-byte deltas: role, 11 deltas, finish, [DONE]; 13 pauses.
    let events = stream(&s, "/v1/chat/completions", &json!({"model": "m+chunk-1+drip-20", "stream": true, "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(events.len(), 14);
    assert!(t.elapsed() >= Duration::from_millis(20 * 13));
    assert_eq!(s.state.disconnects(), 0);
}

#[tokio::test]
async fn a_dropped_hang_stream_counts_as_a_disconnect() {
    let s = stand_in().await;
    let body = json!({"model": "stand-in+hang+chunk-3", "stream": true, "max_tokens": 10,
        "messages": [{"role": "user", "content": "wait for me"}]});
    let mut resp = post(&s, "/v1/messages", &body).await;
    let mut seen = String::new();
    while !seen.contains("content_block_delta") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .expect("the first delta arrives")
            .unwrap()
            .expect("the stream is still open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // Nothing after the first delta.
    let more = tokio::time::timeout(Duration::from_millis(300), resp.chunk()).await;
    assert!(
        more.is_err(),
        "a hang stream sent more than its first delta"
    );
    assert!(seen.contains(r#""text":"You""#));
    assert_eq!(s.state.disconnects(), 0);
    drop(resp);
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.state.disconnects() == 0 {
        assert!(
            Instant::now() < deadline,
            "the disconnect was never counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.state.disconnects(), 1);
}

#[tokio::test]
async fn control_routes_list_clear_and_count() {
    let s = stand_in().await;
    post(
        &s,
        "/v1/chat/completions",
        &json!({"model": "m", "messages": []}),
    )
    .await;
    let c = client();
    let list: Value = c
        .get(format!("{}/_stand-in/requests", s.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["path"], "/v1/chat/completions");
    assert_eq!(list[0]["authorization"], "Bearer sk-test");
    let stats: Value = c
        .get(format!("{}/_stand-in/stats", s.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats, json!({"requests": 1, "disconnects": 0}));
    let del = c
        .delete(format!("{}/_stand-in/requests", s.base_url()))
        .send()
        .await
        .unwrap();
    assert!(del.status().is_success());
    assert!(s.state.requests().is_empty());
}

#[tokio::test]
async fn a_drip_stream_dropped_midway_counts_and_a_finished_one_does_not() {
    let s = stand_in().await;
    let body = json!({"model": "stand-in+chunk-1+drip-50", "stream": true,
        "input": "a reply long enough to take a while"});
    let mut resp = post(&s, "/v1/responses", &body).await;
    let first = resp.chunk().await.unwrap().expect("a first event");
    assert!(String::from_utf8_lossy(&first).starts_with("event: response.created\n"));
    drop(resp);
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.state.disconnects() == 0 {
        assert!(
            Instant::now() < deadline,
            "the disconnect was never counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = json!({"model": "stand-in+drip-1", "stream": true, "input": "short"});
    let events = stream(&s, "/v1/responses", &body).await;
    assert_eq!(
        events.last().unwrap().name.as_deref(),
        Some("response.completed")
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.state.disconnects(), 1);
}

#[tokio::test]
async fn dropping_running_stops_serving() {
    let s = stand_in().await;
    let base = s.base_url();
    let resp = client()
        .get(format!("{base}/_stand-in/stats"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    drop(s);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = reqwest::Client::new();
    assert!(fresh
        .get(format!("{base}/_stand-in/stats"))
        .send()
        .await
        .is_err());
}
