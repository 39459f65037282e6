//! OpenAI responses streams: typed events (`event: response.output_text.delta` + JSON with `type`).
//!
//! Every `*.delta` event with a string `delta` streams one text, keyed by its type and position;
//! the matching `*.done` event ends it. Events carry a `sequence_number`: when a synthesized delta
//! is inserted, it takes the number of the event it precedes and every later event moves up by
//! one, so numbers stay strictly increasing as SDKs expect.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::StreamError;
use super::{event_name, parse_object, restore_object, restore_whole, to_data, with_data, Ctx};
use crate::restore::{Restorer, TextMode};
use crate::sse::SseEvent;

/// Delta types whose text is JSON source (tool-call arguments).
const JSON_DELTAS: &[&str] = &[
    "response.function_call_arguments.delta",
    "response.mcp_call_arguments.delta",
];

/// One streamed text: the delta type and where in the response it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    ty: String,
    item_id: Option<String>,
    output_index: Option<u64>,
    content_index: Option<u64>,
    summary_index: Option<u64>,
}

impl Key {
    fn of(ty: String, obj: &Map<String, Value>) -> Key {
        let n = |k: &str| obj.get(k).and_then(Value::as_u64);
        Key {
            ty,
            item_id: obj
                .get("item_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            output_index: n("output_index"),
            content_index: n("content_index"),
            summary_index: n("summary_index"),
        }
    }
}

/// A delta event to clone when releasing held text: its type and data without the delta.
#[derive(Debug)]
struct Template {
    event: Option<String>,
    obj: Map<String, Value>,
}

impl Template {
    fn of(event: &SseEvent, obj: &Map<String, Value>) -> Template {
        let mut obj = obj.clone();
        obj.remove("delta");
        // Log probabilities belong to the tokens already sent; do not repeat them.
        if let Some(lp) = obj.get_mut("logprobs") {
            *lp = Value::Array(Vec::new());
        }
        Template {
            event: event.event.clone(),
            obj,
        }
    }

    fn delta(&self, text: String, seq: Option<u64>) -> SseEvent {
        let mut obj = self.obj.clone();
        obj.insert("delta".into(), Value::String(text));
        if let Some(seq) = seq {
            obj.insert("sequence_number".into(), seq.into());
        }
        SseEvent {
            event: self.event.clone(),
            data: to_data(&obj),
            id: None,
            retry: None,
        }
    }
}

#[derive(Debug)]
struct Open {
    restorer: Restorer,
    template: Option<Template>,
}

#[derive(Debug, Default)]
pub(crate) struct ResponsesState {
    open: BTreeMap<Key, Open>,
    /// Synthesized events inserted so far: what later sequence numbers move up by.
    shift: u64,
    last_seq: Option<u64>,
}

impl ResponsesState {
    pub(crate) fn on_event(
        &mut self,
        event: SseEvent,
        mut ctx: Ctx<'_>,
    ) -> Result<Vec<SseEvent>, StreamError> {
        let named_delta = event
            .event
            .as_deref()
            .is_some_and(|e| e.ends_with(".delta"));
        let Some(mut obj) = parse_object(&event.data) else {
            if named_delta {
                return Err(StreamError::MalformedDelta(event_name(&event)));
            }
            return Ok(vec![restore_whole(event, ctx.map)]);
        };
        ctx.note_usage(&obj);
        let ty = obj
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or("")
            .to_string();
        let mut changed = self.renumber(&mut obj);
        let mut out = Vec::with_capacity(1);
        let streamed = ty.ends_with(".delta") && matches!(obj.get("delta"), Some(Value::String(_)));
        if streamed {
            let mode = if JSON_DELTAS.contains(&ty.as_str()) {
                TextMode::JsonString
            } else {
                TextMode::Plain
            };
            let open = self.open.entry(Key::of(ty, &obj)).or_insert_with(|| Open {
                restorer: Restorer::new(ctx.map.clone(), mode),
                template: None,
            });
            if let Some(Value::String(s)) = obj.get_mut("delta") {
                let released = open.restorer.push(s);
                if released != *s {
                    *s = released;
                    changed = true;
                }
            }
            if open.restorer.held() > 0 && open.template.is_none() {
                open.template = Some(Template::of(&event, &obj));
            }
        } else {
            if let Some(base) = ty.strip_suffix(".done") {
                let key = Key::of(format!("{base}.delta"), &obj);
                if let Some(synth) = self.release(&key, &mut obj) {
                    out.push(synth);
                    changed = true;
                }
            }
            changed |= restore_object(&mut obj, ctx.map);
        }
        out.push(if changed {
            with_data(&event, to_data(&obj))
        } else {
            event
        });
        Ok(out)
    }

    /// Moves the event's sequence number past the synthesized events; true when it changed.
    fn renumber(&mut self, obj: &mut Map<String, Value>) -> bool {
        let Some(seq) = obj.get("sequence_number").and_then(Value::as_u64) else {
            return false;
        };
        let seq = seq + self.shift;
        self.last_seq = Some(seq);
        if self.shift == 0 {
            return false;
        }
        obj.insert("sequence_number".into(), seq.into());
        true
    }

    /// Ends the text `key`: what it held, as a delta numbered before the `done` event `obj`.
    fn release(&mut self, key: &Key, obj: &mut Map<String, Value>) -> Option<SseEvent> {
        let mut open = self.open.remove(key)?;
        let held = open.restorer.finish();
        if held.is_empty() {
            return None;
        }
        let template = open.template?;
        let seq = obj.get("sequence_number").and_then(Value::as_u64);
        if let Some(seq) = seq {
            self.shift += 1;
            self.last_seq = Some(seq + 1);
            obj.insert("sequence_number".into(), (seq + 1).into());
        }
        Some(template.delta(held, seq))
    }

    pub(crate) fn finish(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for (_, mut open) in std::mem::take(&mut self.open) {
            let held = open.restorer.finish();
            let Some(template) = open.template.filter(|_| !held.is_empty()) else {
                continue;
            };
            let seq = self.last_seq.map(|s| s + 1);
            if seq.is_some() {
                self.last_seq = seq;
            }
            out.push(template.delta(held, seq));
        }
        out
    }

    /// Whether synthesized events moved later sequence numbers (every event is rewritten).
    pub(crate) fn renumbers(&self) -> bool {
        self.shift > 0
    }

    pub(crate) fn held(&self) -> usize {
        self.open.values().map(|o| o.restorer.held()).sum()
    }
}
