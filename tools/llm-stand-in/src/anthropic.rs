//! Anthropic Messages: `POST /v1/messages`, plain and streamed.

use serde_json::{json, Value};

use crate::provider::Ctx;
use crate::reply::{content_text, Conversation, Reply};
use crate::sse::Streamed;

/// Reads the conversation out of a Messages request.
pub fn conversation(req: &Value) -> Conversation {
    let mut all_text = Vec::new();
    if req.get("system").is_some() {
        all_text.push(content_text(req.get("system")));
    }
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut last = (String::new(), false);
    for m in messages {
        let role_is_user = m.get("role").and_then(Value::as_str) == Some("user");
        last = match m.get("content") {
            Some(Value::Array(blocks)) => {
                all_text.extend(blocks.iter().map(block_text));
                let results: Vec<&Value> = blocks
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                    .collect();
                if results.is_empty() {
                    (blocks.iter().map(block_text).collect(), role_is_user)
                } else {
                    (results.into_iter().map(block_text).collect(), false)
                }
            }
            other => {
                let text = content_text(other);
                all_text.push(text.clone());
                (text, role_is_user)
            }
        };
    }
    Conversation {
        last_text: last.0,
        last_is_user: last.1,
        first_tool: first_tool(req),
        all_text,
    }
}

/// The first declared tool, unless `tool_choice` is `{"type": "none"}`.
fn first_tool(req: &Value) -> Option<String> {
    if req.pointer("/tool_choice/type").and_then(Value::as_str) == Some("none") {
        return None;
    }
    req.pointer("/tools/0/name")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The text of one content block: its text, a tool call's input, a tool result's content.
fn block_text(block: &Value) -> String {
    match block.get("type").and_then(Value::as_str) {
        Some("text") => content_text(block.get("text")),
        Some("tool_use") => block.get("input").map(Value::to_string).unwrap_or_default(),
        Some("tool_result") => content_text(block.get("content")),
        _ => String::new(),
    }
}

fn stop_reason(reply: &Reply) -> &'static str {
    match reply {
        Reply::Text(_) => "end_turn",
        Reply::ToolCall { .. } => "tool_use",
    }
}

fn tool_use_id(ctx: &Ctx) -> String {
    format!("toolu_{}", ctx.id)
}

fn message(ctx: &Ctx, content: Value, stop: Option<&str>, output_tokens: u64) -> Value {
    json!({
        "id": format!("msg_{}", ctx.id),
        "type": "message",
        "role": "assistant",
        "model": ctx.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": {
            "input_tokens": ctx.usage.input,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard"
        }
    })
}

/// The `message` object.
pub fn complete(ctx: &Ctx) -> Value {
    let block = match &ctx.reply {
        Reply::Text(text) => json!({"type": "text", "text": text}),
        Reply::ToolCall { name, arguments } => json!({
            "type": "tool_use",
            "id": tool_use_id(ctx),
            "name": name,
            "input": serde_json::from_str::<Value>(arguments).unwrap_or_else(|_| json!({}))
        }),
    };
    message(
        ctx,
        json!([block]),
        Some(stop_reason(&ctx.reply)),
        ctx.usage.output,
    )
}

/// The Messages event sequence, from `message_start` to `message_stop`.
pub fn stream(ctx: &Ctx, s: &mut Streamed) {
    let push = |s: &mut Streamed, kind: &str, mut data: Value| {
        data["type"] = Value::from(kind);
        s.event(kind, &data);
    };
    // Anthropic reports one output token at the start, the real count in message_delta.
    push(
        s,
        "message_start",
        json!({"message": message(ctx, json!([]), None, 1)}),
    );
    let (start, deltas) = match &ctx.reply {
        Reply::Text(text) => (
            json!({"type": "text", "text": ""}),
            ctx.directives
                .deltas(text)
                .into_iter()
                .map(|d| json!({"type": "text_delta", "text": d}))
                .collect::<Vec<_>>(),
        ),
        Reply::ToolCall { name, arguments } => (
            json!({"type": "tool_use", "id": tool_use_id(ctx), "name": name, "input": {}}),
            ctx.directives
                .deltas(arguments)
                .into_iter()
                .map(|d| json!({"type": "input_json_delta", "partial_json": d}))
                .collect(),
        ),
    };
    push(
        s,
        "content_block_start",
        json!({"index": 0, "content_block": start}),
    );
    push(s, "ping", json!({}));
    s.mark_first_delta();
    for delta in deltas {
        push(
            s,
            "content_block_delta",
            json!({"index": 0, "delta": delta}),
        );
    }
    push(s, "content_block_stop", json!({"index": 0}));
    push(
        s,
        "message_delta",
        json!({
            "delta": {"stop_reason": stop_reason(&ctx.reply), "stop_sequence": null},
            "usage": {"output_tokens": ctx.usage.output}
        }),
    );
    push(s, "message_stop", json!({}));
}

/// An error body as Anthropic sends it.
pub fn error(status: u16, message: &str, request_id: &str) -> Value {
    let kind = match status {
        400 => "invalid_request_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    json!({
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": request_id
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_result_is_not_a_user_turn() {
        let req = json!({
            "model": "m",
            "system": [{"type": "text", "text": "sys"}],
            "tools": [{"name": "save", "input_schema": {"type": "object"}}],
            "messages": [
                {"role": "user", "content": "hi you"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "save", "input": {"text": "hi"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "ok "}, {"type": "text", "text": "done"}]}]}
            ]
        });
        let conv = conversation(&req);
        assert_eq!(conv.last_text, "ok done");
        assert!(!conv.last_is_user);
        assert_eq!(conv.first_tool.as_deref(), Some("save"));
        assert_eq!(
            conv.all_text,
            vec!["sys", "hi you", r#"{"text":"hi"}"#, "ok done"]
        );
        let user = conversation(&json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
        ]}));
        assert_eq!(user.last_text, "ab");
        assert!(user.last_is_user);
    }
}
