//! OpenAI Responses: `POST /v1/responses`, plain and streamed (the full event sequence).

use serde_json::{json, Value};

use crate::provider::{obfuscation, Ctx};
use crate::reply::{content_text, Conversation, Reply};
use crate::sse::Streamed;

/// Reads the conversation out of a Responses request (`input` a string or a list of items).
pub fn conversation(req: &Value) -> Conversation {
    let mut all_text = Vec::new();
    if let Some(instructions) = req.get("instructions").and_then(Value::as_str) {
        all_text.push(instructions.to_owned());
    }
    let mut last = (String::new(), false);
    match req.get("input") {
        Some(Value::String(s)) => {
            all_text.push(s.clone());
            last = (s.clone(), true);
        }
        Some(Value::Array(items)) => {
            for item in items {
                let (text, is_user) = item_text(item);
                all_text.push(text.clone());
                last = (text, is_user);
            }
        }
        _ => {}
    }
    Conversation {
        last_text: last.0,
        last_is_user: last.1,
        first_tool: first_tool(req),
        all_text,
    }
}

/// An input item's text, and whether it is a user message.
fn item_text(item: &Value) -> (String, bool) {
    let kind = item.get("type").and_then(Value::as_str);
    match kind {
        // A message may come without `type` (the short form `{"role", "content"}`).
        None | Some("message") => (
            content_text(item.get("content")),
            item.get("role").and_then(Value::as_str) == Some("user"),
        ),
        Some("function_call") => (str_field(item, "arguments"), false),
        Some("function_call_output") => (content_text(item.get("output")), false),
        _ => (String::new(), false),
    }
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The first declared tool, unless `tool_choice` is `"none"`.
fn first_tool(req: &Value) -> Option<String> {
    if req.get("tool_choice").and_then(Value::as_str) == Some("none") {
        return None;
    }
    let tool = req.get("tools")?.as_array()?.first()?;
    tool.get("name").and_then(Value::as_str).map(str::to_owned)
}

fn msg_id(ctx: &Ctx) -> String {
    format!("msg_{}", ctx.id)
}

fn fc_id(ctx: &Ctx) -> String {
    format!("fc_{}", ctx.id)
}

/// The output item, finished (`done`) or just opened.
fn item(ctx: &Ctx, done: bool) -> Value {
    let status = if done { "completed" } else { "in_progress" };
    match &ctx.reply {
        Reply::Text(text) => json!({
            "id": msg_id(ctx),
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": if done { json!([text_part(text)]) } else { json!([]) }
        }),
        Reply::ToolCall { name, arguments } => json!({
            "id": fc_id(ctx),
            "type": "function_call",
            "status": status,
            "call_id": ctx.call_id(),
            "name": name,
            "arguments": if done { arguments.as_str() } else { "" }
        }),
    }
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// The `response` object; `done` gives the completed one with output and usage.
fn response(ctx: &Ctx, done: bool) -> Value {
    let req = &ctx.req;
    let echo = |key: &str, default: Value| req.get(key).cloned().unwrap_or(default);
    let (status, output, usage) = if done {
        let usage = json!({
            "input_tokens": ctx.usage.input,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": ctx.usage.output,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": ctx.usage.input + ctx.usage.output
        });
        ("completed", json!([item(ctx, true)]), usage)
    } else {
        ("in_progress", json!([]), Value::Null)
    };
    json!({
        "id": format!("resp_{}", ctx.id),
        "object": "response",
        "created_at": ctx.created,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": null,
        "instructions": echo("instructions", Value::Null),
        "max_output_tokens": echo("max_output_tokens", Value::Null),
        "max_tool_calls": null,
        "model": ctx.model,
        "output": output,
        "parallel_tool_calls": echo("parallel_tool_calls", Value::Bool(true)),
        "previous_response_id": echo("previous_response_id", Value::Null),
        "reasoning": {"effort": null, "summary": null},
        "service_tier": "default",
        "store": echo("store", Value::Bool(true)),
        "temperature": echo("temperature", json!(1.0)),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": echo("tool_choice", json!("auto")),
        "tools": echo("tools", json!([])),
        "top_logprobs": 0,
        "top_p": echo("top_p", json!(1.0)),
        "truncation": "disabled",
        "usage": usage,
        "user": null,
        "metadata": echo("metadata", json!({}))
    })
}

/// The completed `response` object.
pub fn complete(ctx: &Ctx) -> Value {
    response(ctx, true)
}

/// Numbers the events as OpenAI does (`sequence_number` from 0).
struct Seq<'s> {
    s: &'s mut Streamed,
    n: u64,
}

impl Seq<'_> {
    /// A delta event's fields, with `obfuscation` padding unless the request turned it off.
    fn delta(&self, ctx: &Ctx, mut data: Value) -> Value {
        if ctx.obfuscate() {
            let d = data["delta"].as_str().unwrap_or_default().to_owned();
            data["obfuscation"] = Value::from(obfuscation(self.s.len(), &d));
        }
        data
    }

    fn push(&mut self, kind: &str, mut data: Value) {
        data["type"] = Value::from(kind);
        data["sequence_number"] = Value::from(self.n);
        self.n += 1;
        self.s.event(kind, &data);
    }
}

/// The Responses event sequence, from `response.created` to `response.completed`.
pub fn stream(ctx: &Ctx, s: &mut Streamed) {
    let mut e = Seq { s, n: 0 };
    e.push(
        "response.created",
        json!({"response": response(ctx, false)}),
    );
    e.push(
        "response.in_progress",
        json!({"response": response(ctx, false)}),
    );
    e.push(
        "response.output_item.added",
        json!({"output_index": 0, "item": item(ctx, false)}),
    );
    match &ctx.reply {
        Reply::Text(text) => {
            let at = |extra: Value| {
                let mut v = json!({"item_id": msg_id(ctx), "output_index": 0, "content_index": 0});
                if let (Value::Object(v), Value::Object(extra)) = (&mut v, extra) {
                    v.extend(extra);
                }
                v
            };
            e.push(
                "response.content_part.added",
                at(json!({"part": text_part("")})),
            );
            e.s.mark_first_delta();
            for d in ctx.directives.deltas(text) {
                e.push(
                    "response.output_text.delta",
                    at(e.delta(ctx, json!({"delta": d, "logprobs": []}))),
                );
            }
            e.push(
                "response.output_text.done",
                at(json!({"text": text, "logprobs": []})),
            );
            e.push(
                "response.content_part.done",
                at(json!({"part": text_part(text)})),
            );
        }
        Reply::ToolCall { name, arguments } => {
            e.s.mark_first_delta();
            for d in ctx.directives.deltas(arguments) {
                e.push(
                    "response.function_call_arguments.delta",
                    e.delta(
                        ctx,
                        json!({"item_id": fc_id(ctx), "output_index": 0, "delta": d}),
                    ),
                );
            }
            e.push(
                "response.function_call_arguments.done",
                json!({"item_id": fc_id(ctx), "output_index": 0, "name": name, "arguments": arguments}),
            );
        }
    }
    e.push(
        "response.output_item.done",
        json!({"output_index": 0, "item": item(ctx, true)}),
    );
    e.push(
        "response.completed",
        json!({"response": response(ctx, true)}),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_of_every_kind_are_read() {
        let req = json!({
            "model": "m",
            "instructions": "be kind",
            "tools": [{"type": "function", "name": "save", "parameters": {}}],
            "input": [
                {"role": "user", "content": "hello there"},
                {"type": "function_call", "call_id": "c", "name": "save", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "done"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]}
            ]
        });
        let conv = conversation(&req);
        assert_eq!(conv.last_text, "ab");
        assert!(conv.last_is_user);
        assert_eq!(conv.first_tool.as_deref(), Some("save"));
        assert_eq!(
            conv.all_text,
            vec!["be kind", "hello there", "{}", "done", "ok", "ab"]
        );
        let string_input = conversation(&json!({"model": "m", "input": "just this"}));
        assert_eq!(string_input.last_text, "just this");
        assert!(string_input.last_is_user);
        assert_eq!(string_input.first_tool, None);
    }
}
