//! OpenAI chat completions streams: `data: {chat.completion.chunk}` events, then `data: [DONE]`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{parse_object, restore_whole, to_data, with_data, Ctx};
use crate::placeholder::PlaceholderMap;
use crate::restore::{restore_value, Restorer, TextMode};
use crate::sse::SseEvent;

/// A text streamed inside one choice's deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Content,
    Refusal,
    /// `reasoning_content`, sent by some OpenAI-compatible providers.
    ReasoningContent,
    /// `reasoning`, the same from others.
    Reasoning,
    /// `audio.transcript` of audio output.
    AudioTranscript,
    /// The deprecated `function_call.arguments`.
    FunctionCall,
    /// `tool_calls[].function.arguments` of the tool call with this `index`.
    Tool(u64),
}

/// The delta fields that stream a text: (key, key inside it if nested, which text, how written).
const STREAMED: &[(&str, Option<&str>, Field, TextMode)] = &[
    ("content", None, Field::Content, TextMode::Plain),
    ("refusal", None, Field::Refusal, TextMode::Plain),
    (
        "reasoning_content",
        None,
        Field::ReasoningContent,
        TextMode::Plain,
    ),
    ("reasoning", None, Field::Reasoning, TextMode::Plain),
    (
        "audio",
        Some("transcript"),
        Field::AudioTranscript,
        TextMode::Plain,
    ),
    (
        "function_call",
        Some("arguments"),
        Field::FunctionCall,
        TextMode::JsonString,
    ),
];

/// Chunk fields copied into synthesized chunks so SDKs see the same completion.
const HEAD_FIELDS: &[&str] = &["id", "object", "created", "model", "system_fingerprint"];

#[derive(Debug, Default)]
pub(crate) struct ChatState {
    open: BTreeMap<(u64, Field), Restorer>,
    head: Map<String, Value>,
}

impl ChatState {
    pub(crate) fn on_event(&mut self, event: SseEvent, mut ctx: Ctx<'_>) -> Vec<SseEvent> {
        if event.data.trim() == "[DONE]" {
            let mut out = self.flush_all();
            out.push(event);
            return out;
        }
        let Some(mut chunk) = parse_object(&event.data) else {
            return vec![restore_whole(event, ctx.map)];
        };
        ctx.note_usage(&chunk);
        for f in HEAD_FIELDS {
            if let Some(v) = chunk.get(*f) {
                self.head.insert(f.to_string(), v.clone());
            }
        }
        let mut changed = false;
        if let Some(Value::Array(choices)) = chunk.get_mut("choices") {
            for (pos, choice) in choices.iter_mut().enumerate() {
                let Some(choice) = choice.as_object_mut() else {
                    continue;
                };
                let idx = choice
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(pos as u64);
                if let Some(Value::Object(delta)) = choice.get_mut("delta") {
                    changed |= self.push_delta(idx, delta, ctx.map);
                }
                if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
                    let delta = choice
                        .entry("delta")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(delta) = delta {
                        changed |= self.flush_choice(idx, delta);
                    }
                }
            }
        }
        if changed {
            vec![with_data(&event, to_data(&chunk))]
        } else {
            vec![event]
        }
    }

    /// Feeds a delta's streamed texts to their restorers; other strings are restored whole.
    fn push_delta(
        &mut self,
        idx: u64,
        delta: &mut Map<String, Value>,
        map: &Arc<PlaceholderMap>,
    ) -> bool {
        let mut changed = false;
        for (name, value) in delta.iter_mut() {
            let streamed = STREAMED.iter().find(|(n, ..)| n == name);
            match (streamed, value) {
                (Some(&(_, None, field, mode)), Value::String(s)) => {
                    changed |= self.push(idx, field, mode, s, map);
                }
                (Some(&(_, Some(inner), field, mode)), Value::Object(obj)) => {
                    for (k, v) in obj.iter_mut() {
                        match v {
                            Value::String(s) if k == inner => {
                                changed |= self.push(idx, field, mode, s, map);
                            }
                            v => changed |= restore_value(v, map, Some(k)),
                        }
                    }
                }
                (None, Value::Array(calls)) if name == "tool_calls" => {
                    for (j, call) in calls.iter_mut().enumerate() {
                        let k = call
                            .get("index")
                            .and_then(Value::as_u64)
                            .unwrap_or(j as u64);
                        if let Some(Value::String(s)) = call.pointer_mut("/function/arguments") {
                            changed |= self.push(idx, Field::Tool(k), TextMode::JsonString, s, map);
                        }
                    }
                }
                (_, value) => changed |= restore_value(value, map, Some(name)),
            }
        }
        changed
    }

    fn push(
        &mut self,
        idx: u64,
        field: Field,
        mode: TextMode,
        s: &mut String,
        map: &Arc<PlaceholderMap>,
    ) -> bool {
        let r = self
            .open
            .entry((idx, field))
            .or_insert_with(|| Restorer::new(map.clone(), mode));
        let out = r.push(s);
        if out == *s {
            return false;
        }
        *s = out;
        true
    }

    /// Releases a finished choice's held texts into its last delta.
    fn flush_choice(&mut self, idx: u64, delta: &mut Map<String, Value>) -> bool {
        let keys: Vec<(u64, Field)> = self
            .open
            .range((idx, Field::Content)..)
            .take_while(|(k, _)| k.0 == idx)
            .map(|(k, _)| *k)
            .collect();
        let mut changed = false;
        for key in keys {
            if let Some(mut r) = self.open.remove(&key) {
                let held = r.finish();
                if !held.is_empty() {
                    append(delta, key.1, held);
                    changed = true;
                }
            }
        }
        changed
    }

    /// Everything still held, as one synthesized chunk per choice.
    fn flush_all(&mut self) -> Vec<SseEvent> {
        let mut deltas: BTreeMap<u64, Map<String, Value>> = BTreeMap::new();
        for ((idx, field), mut r) in std::mem::take(&mut self.open) {
            let held = r.finish();
            if !held.is_empty() {
                append(deltas.entry(idx).or_default(), field, held);
            }
        }
        deltas
            .into_iter()
            .map(|(idx, delta)| {
                let mut chunk = self.head.clone();
                chunk
                    .entry("object")
                    .or_insert_with(|| json!("chat.completion.chunk"));
                chunk.insert(
                    "choices".into(),
                    json!([{"index": idx, "delta": delta, "finish_reason": null}]),
                );
                SseEvent::data(to_data(&chunk))
            })
            .collect()
    }

    pub(crate) fn finish(&mut self) -> Vec<SseEvent> {
        self.flush_all()
    }

    pub(crate) fn held(&self) -> usize {
        self.open.values().map(Restorer::held).sum()
    }
}

/// Appends released text to a delta's field (a tool call's arguments: to the entry with its
/// index, or a new entry).
fn append(delta: &mut Map<String, Value>, field: Field, text: String) {
    if let Field::Tool(k) = field {
        return append_tool(delta, k, text);
    }
    let Some(&(name, inner, ..)) = STREAMED.iter().find(|(_, _, f, _)| *f == field) else {
        return;
    };
    let target = match inner {
        None => delta,
        Some(_) => {
            let obj = delta
                .entry(name)
                .or_insert_with(|| Value::Object(Map::new()));
            if !obj.is_object() {
                *obj = Value::Object(Map::new());
            }
            let Value::Object(obj) = obj else { return };
            obj
        }
    };
    let key = inner.unwrap_or(name);
    match target.get_mut(key) {
        Some(Value::String(s)) => s.push_str(&text),
        _ => {
            target.insert(key.into(), Value::String(text));
        }
    }
}

fn append_tool(delta: &mut Map<String, Value>, k: u64, text: String) {
    let calls = delta
        .entry("tool_calls")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !calls.is_array() {
        *calls = Value::Array(Vec::new());
    }
    let Value::Array(calls) = calls else { return };
    let existing = calls
        .iter_mut()
        .find(|c| c.get("index").and_then(Value::as_u64) == Some(k))
        .and_then(|c| c.pointer_mut("/function/arguments"));
    match existing {
        Some(Value::String(s)) => s.push_str(&text),
        _ => calls.push(json!({"index": k, "function": {"arguments": text}})),
    }
}
