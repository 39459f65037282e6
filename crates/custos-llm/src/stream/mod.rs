//! Restoring placeholders in a provider's event stream, event by event.
//!
//! Each text the provider streams in pieces (a choice's content, a tool call's arguments, a
//! content block) gets its own [`Restorer`], which holds back at most a possible placeholder
//! prefix; the event that ends that text first releases what is held, as a synthesized delta.
//! Every other event is forwarded with its strings restored whole. Nothing else is buffered.

mod anthropic;
mod chat;
mod responses;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::placeholder::PlaceholderMap;
use crate::reach::{usage_keys, Usage};
use crate::restore::{restore_cow, restore_value, TextMode};
use crate::sse::SseEvent;
use crate::WireFormat;

/// Why an upstream event could not be restored; the gateway ends the stream with an error
/// rather than forward text it could not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// A delta event's data is not the JSON object its type needs (names the event type only).
    #[error("stream event {0:?} carries malformed data")]
    MalformedDelta(String),
}

/// Restores placeholders in a provider's event stream, event by event, never buffering more
/// than a possible placeholder prefix per text being streamed.
#[derive(Debug)]
pub struct StreamRestorer {
    format: WireFormat,
    map: Arc<PlaceholderMap>,
    usage: Usage,
    state: State,
}

#[derive(Debug)]
enum State {
    Chat(chat::ChatState),
    Responses(responses::ResponsesState),
    Anthropic(anthropic::AnthropicState),
}

impl StreamRestorer {
    /// A restorer for one response stream in `format`, restoring from `map`.
    pub fn new(format: WireFormat, map: Arc<PlaceholderMap>) -> StreamRestorer {
        let state = match format {
            WireFormat::ChatCompletions => State::Chat(chat::ChatState::default()),
            WireFormat::Responses => State::Responses(responses::ResponsesState::default()),
            WireFormat::AnthropicMessages => State::Anthropic(anthropic::AnthropicState::default()),
        };
        StreamRestorer {
            format,
            map,
            usage: Usage::default(),
            state,
        }
    }

    /// Transforms one upstream event into the events to send now (usually one; the event that
    /// ends a text first gets a synthesized delta carrying what was held back).
    pub fn on_event(&mut self, event: SseEvent) -> Result<Vec<SseEvent>, StreamError> {
        if self.map.is_empty() {
            // Nothing to restore: forward as is, only reading usage where it can be.
            if event.data.contains("\"usage\"") {
                if let Some(obj) = parse_object(&event.data) {
                    note_usage(self.format, &obj, &mut self.usage);
                }
            }
            return Ok(vec![event]);
        }
        if self.passes_through(&event) {
            // Nothing held and no `<` in any form: the event cannot hold or finish a
            // placeholder, so it leaves as it came (most events of a long answer).
            if event.data.contains("\"usage\"") && !event.data.contains("\"usage\":null") {
                if let Some(obj) = parse_object(&event.data) {
                    note_usage(self.format, &obj, &mut self.usage);
                }
            }
            return Ok(vec![event]);
        }
        let ctx = Ctx {
            map: &self.map,
            format: self.format,
            usage: &mut self.usage,
        };
        match &mut self.state {
            State::Chat(s) => Ok(s.on_event(event, ctx)),
            State::Responses(s) => s.on_event(event, ctx),
            State::Anthropic(s) => s.on_event(event, ctx),
        }
    }

    /// Whether `event` can be forwarded untouched: no text is held back, no synthesized event
    /// moved the numbering, and its data (shaped like a JSON object) can spell no `<` or `>`:
    /// every placeholder starts with one, and a held prefix is the only other thing an event
    /// could complete.
    fn passes_through(&self, event: &SseEvent) -> bool {
        let renumbered = match &self.state {
            State::Responses(s) => s.renumbers(),
            _ => false,
        };
        let data = event.data.trim();
        !renumbered
            && self.held() == 0
            // Data that is not even shaped like an object gets the full check (and its error).
            && data.starts_with('{')
            && data.ends_with('}')
            && !may_hold_placeholder(data)
            // A backslash in a decoded string: it may begin such an escape in JSON text (tool
            // arguments), finished by a later event.
            && !data.contains("\\\\")
    }

    /// At upstream end of stream: anything still held back, as synthesized delta events.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        match &mut self.state {
            State::Chat(s) => s.finish(),
            State::Responses(s) => s.finish(),
            State::Anthropic(s) => s.finish(),
        }
    }

    /// Usage seen so far (from the events that report it).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Bytes held back across all open texts (per text: less than the longest placeholder,
    /// plus 5 bytes of a cut-short escape in JSON text).
    pub fn held(&self) -> usize {
        match &self.state {
            State::Chat(s) => s.held(),
            State::Responses(s) => s.held(),
            State::Anthropic(s) => s.held(),
        }
    }
}

/// What the per-format states need from the restorer for one event.
pub(crate) struct Ctx<'a> {
    map: &'a Arc<PlaceholderMap>,
    format: WireFormat,
    usage: &'a mut Usage,
}

impl Ctx<'_> {
    fn note_usage(&mut self, obj: &Map<String, Value>) {
        note_usage(self.format, obj, self.usage);
    }
}

/// Reads the usage an event reports: chat chunks carry `usage`, Responses events
/// `response.usage`, Anthropic `message.usage` (message_start) or `usage` (message_delta).
fn note_usage(format: WireFormat, v: &Map<String, Value>, usage: &mut Usage) {
    let (i, o) = usage_keys(format);
    match format {
        WireFormat::ChatCompletions => usage.merge(v.get("usage"), i, o),
        WireFormat::Responses => usage.merge(v.get("response").and_then(|r| r.get("usage")), i, o),
        WireFormat::AnthropicMessages => {
            usage.merge(v.get("message").and_then(|m| m.get("usage")), i, o);
            usage.merge(v.get("usage"), i, o);
        }
    }
}

/// The event with new data, keeping its type and id.
fn with_data(event: &SseEvent, data: String) -> SseEvent {
    SseEvent {
        event: event.event.clone(),
        data,
        id: event.id.clone(),
        retry: event.retry,
    }
}

/// Serializes a JSON object as event data (serializing a map of JSON values cannot fail).
fn to_data(obj: &Map<String, Value>) -> String {
    serde_json::to_string(obj).unwrap_or_default()
}

/// True when data could hold a placeholder, also as JSON's `\u003c` escape of `<` (or end
/// one, as `\u003e`).
fn may_hold_placeholder(data: &str) -> bool {
    data.contains('<') || data.contains("\\u003")
}

/// Forwards an event with every placeholder restored whole: in each string of JSON data (JSON
/// text under `arguments`), or in the raw data when it is not JSON. Unchanged events are
/// forwarded as they came, not re-serialized.
fn restore_whole(event: SseEvent, map: &PlaceholderMap) -> SseEvent {
    if !may_hold_placeholder(&event.data) {
        return event;
    }
    match serde_json::from_str::<Value>(&event.data) {
        Ok(mut v) => {
            if restore_value(&mut v, map, None) {
                let data = serde_json::to_string(&v).unwrap_or_default();
                return with_data(&event, data);
            }
            event
        }
        Err(_) => match restore_cow(&event.data, map, TextMode::Plain) {
            std::borrow::Cow::Borrowed(_) => event,
            std::borrow::Cow::Owned(data) => with_data(&event, data),
        },
    }
}

/// Restores the strings of a parsed object whole; true when anything changed.
fn restore_object(obj: &mut Map<String, Value>, map: &PlaceholderMap) -> bool {
    obj.iter_mut().fold(false, |changed, (k, v)| {
        restore_value(v, map, Some(k)) | changed
    })
}

/// Parses event data as a JSON object.
fn parse_object(data: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(data) {
        Ok(Value::Object(obj)) => Some(obj),
        _ => None,
    }
}

/// A bounded, content-free name for an event in an error.
fn event_name(event: &SseEvent) -> String {
    let name = event.event.as_deref().unwrap_or("message");
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests;
