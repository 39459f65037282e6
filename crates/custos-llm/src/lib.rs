//! The LLM gateway's data path: scrub personal data out of provider requests and put it back
//! into responses and event streams.
//!
//! What it is for: the gateway receives a request in a provider's own wire format (OpenAI chat
//! completions, OpenAI responses, Anthropic messages), hands the body to [`scrub_request`], which
//! scans every caller text and replaces what it finds (with the `tokenize` action, by a
//! placeholder such as `<EMAIL_ADDRESS_3f9a0c12b4d7>` derived from the value under the org's key,
//! so the same value gets the same placeholder in every message, turn and request, with nothing
//! stored). The provider's answer goes through [`restore_response`] (whole bodies) or
//! [`StreamRestorer`] (server-sent events, parsed by [`SseParser`]), which put the original values
//! back, never holding more than a possible placeholder prefix per text being streamed.
//!
//! What it is not: an HTTP client or server, a policy engine or a store. It does no I/O, spawns
//! nothing, keeps nothing between calls, and never logs or puts into an error any prompt or
//! completion content: errors name fields and entity kinds only.
//!
//! ```
//! use std::sync::Arc;
//! use custos_llm::{restore_response, scrub_request, EntityKind, PiiAction, PlaceholderKey, Scrubber, WireFormat};
//! use custos_pii::Scanner;
//!
//! let scanner = Scanner::new();
//! let key = PlaceholderKey::new(b"org key bytes");
//! let scrubber = Scrubber { scanner: &scanner, kinds: &[EntityKind::EmailAddress], action: PiiAction::Tokenize, key: &key };
//! let mut body = serde_json::json!({
//!     "model": "gpt-4o",
//!     "messages": [{"role": "user", "content": "Write to ada@example.com"}]
//! });
//! let scrubbed = scrub_request(WireFormat::ChatCompletions, &mut body, &scrubber).unwrap();
//! let sent = body["messages"][0]["content"].as_str().unwrap().to_string();
//! assert!(!sent.contains("ada@example.com"));
//! assert_eq!(scrubbed.counts[&EntityKind::EmailAddress], 1);
//!
//! let mut answer = serde_json::json!({"choices": [{"message": {"content": sent}}]});
//! restore_response(WireFormat::ChatCompletions, &mut answer, &scrubbed.placeholders);
//! assert_eq!(answer["choices"][0]["message"]["content"], "Write to ada@example.com");
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod placeholder;
mod reach;
mod restore;
mod schema;
mod scrub;
mod sse;
mod stream;
mod url_scan;

pub use custos_pii::EntityKind;
pub use placeholder::{placeholder, PlaceholderKey, PlaceholderMap};
pub use reach::{forbid_provider_storage, outside_reach, usage_of, StorageRefusal, Usage};
pub use restore::{restore_response, restore_text, Restorer, TextMode};
pub use scrub::{scrub_request, PiiAction, ScrubError, Scrubbed, Scrubber};
pub use sse::{SseError, SseEvent, SseParser};
pub use stream::{StreamError, StreamRestorer};

/// Which wire format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireFormat {
    /// OpenAI `POST /v1/chat/completions`.
    ChatCompletions,
    /// OpenAI `POST /v1/responses`.
    Responses,
    /// Anthropic `POST /v1/messages`.
    AnthropicMessages,
}
