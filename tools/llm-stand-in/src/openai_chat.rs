//! OpenAI Chat Completions: `POST /v1/chat/completions`, plain and streamed.

use serde_json::{json, Value};

use crate::provider::{obfuscation, Ctx};
use crate::reply::{content_text, Conversation, Reply};
use crate::sse::Streamed;

/// Reads the conversation out of a Chat Completions request.
pub fn conversation(req: &Value) -> Conversation {
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut all_text = Vec::new();
    for m in messages {
        all_text.push(content_text(m.get("content")));
        let calls = m.get("tool_calls").and_then(Value::as_array);
        for call in calls.into_iter().flatten() {
            if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str) {
                all_text.push(args.to_owned());
            }
        }
    }
    let (last_text, last_is_user) = match messages.last() {
        Some(m) => (
            content_text(m.get("content")),
            m.get("role").and_then(Value::as_str) == Some("user"),
        ),
        None => (String::new(), false),
    };
    Conversation {
        last_text,
        last_is_user,
        first_tool: first_tool(req),
        all_text,
    }
}

/// The first declared tool, unless `tool_choice` is `"none"`.
fn first_tool(req: &Value) -> Option<String> {
    if req.get("tool_choice").and_then(Value::as_str) == Some("none") {
        return None;
    }
    let tool = req.get("tools")?.as_array()?.first()?;
    tool.pointer("/function/name")
        .or_else(|| tool.pointer("/custom/name"))
        .or_else(|| tool.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn usage(ctx: &Ctx) -> Value {
    json!({
        "prompt_tokens": ctx.usage.input,
        "completion_tokens": ctx.usage.output,
        "total_tokens": ctx.usage.input + ctx.usage.output,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

fn finish_reason(reply: &Reply) -> &'static str {
    match reply {
        Reply::Text(_) => "stop",
        Reply::ToolCall { .. } => "tool_calls",
    }
}

/// The `chat.completion` object.
pub fn complete(ctx: &Ctx) -> Value {
    let message = match &ctx.reply {
        Reply::Text(text) => json!({
            "role": "assistant",
            "content": text,
            "refusal": null,
            "annotations": []
        }),
        Reply::ToolCall { name, arguments } => json!({
            "role": "assistant",
            "content": null,
            "refusal": null,
            "annotations": [],
            "tool_calls": [{
                "id": ctx.call_id(),
                "type": "function",
                "function": {"name": name, "arguments": arguments}
            }]
        }),
    };
    json!({
        "id": format!("chatcmpl-{}", ctx.id),
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(&ctx.reply)
        }],
        "usage": usage(ctx),
        "service_tier": "default",
        "system_fingerprint": null
    })
}

/// The `chat.completion.chunk` events, then `[DONE]`.
pub fn stream(ctx: &Ctx, s: &mut Streamed) {
    let include_usage = ctx
        .req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let obfuscate = ctx.obfuscate();
    let mut n = 0;
    let mut chunk = |choices: Value, usage: Option<Value>| {
        let mut c = json!({
            "id": format!("chatcmpl-{}", ctx.id),
            "object": "chat.completion.chunk",
            "created": ctx.created,
            "model": ctx.model,
            "service_tier": "default",
            "system_fingerprint": null,
            "choices": choices
        });
        // With include_usage, OpenAI sends `"usage": null` on every chunk but the last.
        if include_usage {
            c["usage"] = usage.unwrap_or(Value::Null);
        }
        if let (true, Some(delta)) = (obfuscate, c.pointer("/choices/0/delta")) {
            let padding = obfuscation(n, &delta.to_string());
            c["obfuscation"] = Value::from(padding);
        }
        n += 1;
        c.to_string()
    };
    let choice = |delta: Value, finish: Option<&str>| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
    match &ctx.reply {
        Reply::Text(text) => {
            s.data(&chunk(
                choice(
                    json!({"role": "assistant", "content": "", "refusal": null}),
                    None,
                ),
                None,
            ));
            s.mark_first_delta();
            for d in ctx.directives.deltas(text) {
                s.data(&chunk(choice(json!({"content": d}), None), None));
            }
        }
        Reply::ToolCall { name, arguments } => {
            let first = json!({
                "role": "assistant",
                "content": null,
                "refusal": null,
                "tool_calls": [{
                    "index": 0,
                    "id": ctx.call_id(),
                    "type": "function",
                    "function": {"name": name, "arguments": ""}
                }]
            });
            s.data(&chunk(choice(first, None), None));
            s.mark_first_delta();
            for d in ctx.directives.deltas(arguments) {
                let delta = json!({"tool_calls": [{"index": 0, "function": {"arguments": d}}]});
                s.data(&chunk(choice(delta, None), None));
            }
        }
    }
    s.data(&chunk(
        choice(json!({}), Some(finish_reason(&ctx.reply))),
        None,
    ));
    if include_usage {
        s.data(&chunk(json!([]), Some(usage(ctx))));
    }
    s.data("[DONE]");
}

/// An error body as OpenAI sends it.
pub fn error(status: u16, message: &str) -> Value {
    let (kind, code) = match status {
        429 => ("requests", Value::from("rate_limit_exceeded")),
        400 => ("invalid_request_error", Value::Null),
        _ => ("server_error", Value::Null),
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_message_decides_and_every_text_counts() {
        let req = json!({
            "model": "m",
            "tools": [{"type": "function", "function": {"name": "save", "parameters": {}}}],
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "one "}, {"type": "text", "text": "two"}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "save", "arguments": "{\"a\": 1}"}}]},
                {"role": "tool", "tool_call_id": "c", "content": "saved it"}
            ]
        });
        let conv = conversation(&req);
        assert_eq!(conv.last_text, "saved it");
        assert!(!conv.last_is_user);
        assert_eq!(conv.first_tool.as_deref(), Some("save"));
        assert_eq!(
            conv.all_text,
            vec!["be brief", "one two", "", "{\"a\": 1}", "saved it"]
        );
    }
}
