//! Anthropic messages streams: `event: <type>` + JSON data. Content blocks stream their text
//! in `content_block_delta` events and end with `content_block_stop`, both by block `index`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::StreamError;
use super::{event_name, parse_object, restore_object, restore_whole, to_data, with_data, Ctx};
use crate::restore::{Restorer, TextMode};
use crate::sse::SseEvent;

/// The delta types that stream a text: (delta type, field holding the piece, how it is written).
const STREAMED: &[(&str, &str, TextMode)] = &[
    ("text_delta", "text", TextMode::Plain),
    ("thinking_delta", "thinking", TextMode::Plain),
    ("input_json_delta", "partial_json", TextMode::JsonString),
];

#[derive(Debug)]
struct Open {
    restorer: Restorer,
    /// The event name, the data without the piece, and the field the piece goes in.
    template: Option<(Option<String>, Map<String, Value>, &'static str)>,
}

#[derive(Debug, Default)]
pub(crate) struct AnthropicState {
    open: BTreeMap<u64, Open>,
}

impl AnthropicState {
    pub(crate) fn on_event(
        &mut self,
        event: SseEvent,
        mut ctx: Ctx<'_>,
    ) -> Result<Vec<SseEvent>, StreamError> {
        let Some(mut obj) = parse_object(&event.data) else {
            if event.event.as_deref() == Some("content_block_delta") {
                return Err(StreamError::MalformedDelta(event_name(&event)));
            }
            return Ok(vec![restore_whole(event, ctx.map)]);
        };
        ctx.note_usage(&obj);
        let ty = obj
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or("");
        let index = obj.get("index").and_then(Value::as_u64);
        let mut out = Vec::with_capacity(1);
        let changed = match (ty, index) {
            ("content_block_delta", Some(index)) => {
                match self.push(index, &event, &mut obj, ctx.map) {
                    Some(changed) => changed,
                    None => restore_object(&mut obj, ctx.map),
                }
            }
            ("content_block_delta", None) => {
                return Err(StreamError::MalformedDelta(event_name(&event)));
            }
            ("content_block_stop", Some(index)) => {
                out.extend(self.release(index));
                false
            }
            _ => restore_object(&mut obj, ctx.map),
        };
        out.push(if changed {
            with_data(&event, to_data(&obj))
        } else {
            event
        });
        Ok(out)
    }

    /// Feeds a streamed delta to its block's restorer; None when the delta is of another kind
    /// (citations, signatures), which is restored whole instead.
    fn push(
        &mut self,
        index: u64,
        event: &SseEvent,
        obj: &mut Map<String, Value>,
        map: &std::sync::Arc<crate::PlaceholderMap>,
    ) -> Option<bool> {
        let delta = obj.get("delta")?.as_object()?;
        let dty = delta.get("type")?.as_str()?;
        let &(_, field, mode) = STREAMED.iter().find(|(t, _, _)| *t == dty)?;
        if !matches!(delta.get(field), Some(Value::String(_))) {
            return None;
        }
        let open = self.open.entry(index).or_insert_with(|| Open {
            restorer: Restorer::new(map.clone(), mode),
            template: None,
        });
        let mut changed = false;
        if let Some(Value::String(s)) = obj.get_mut("delta").and_then(|d| d.get_mut(field)) {
            let released = open.restorer.push(s);
            if released != *s {
                *s = released;
                changed = true;
            }
        }
        if open.restorer.held() > 0 && open.template.is_none() {
            let mut t = obj.clone();
            if let Some(Value::Object(d)) = t.get_mut("delta") {
                d.remove(field);
            }
            open.template = Some((event.event.clone(), t, field));
        }
        Some(changed)
    }

    /// Ends block `index`: what it held, as a synthesized `content_block_delta`.
    fn release(&mut self, index: u64) -> Option<SseEvent> {
        let mut open = self.open.remove(&index)?;
        let held = open.restorer.finish();
        let (name, mut obj, field) = open.template.filter(|_| !held.is_empty())?;
        if let Some(Value::Object(d)) = obj.get_mut("delta") {
            d.insert(field.into(), Value::String(held));
        }
        Some(SseEvent {
            event: name,
            data: to_data(&obj),
            id: None,
            retry: None,
        })
    }

    pub(crate) fn finish(&mut self) -> Vec<SseEvent> {
        let indexes: Vec<u64> = self.open.keys().copied().collect();
        indexes
            .into_iter()
            .filter_map(|i| self.release(i))
            .collect()
    }

    pub(crate) fn held(&self) -> usize {
        self.open.values().map(|o| o.restorer.held()).sum()
    }
}
