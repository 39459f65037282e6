//! The provider-independent part of a reply: what the model "says", how it is cut into
//! streamed deltas, and the directives a test puts in the model name.
//!
//! The rules, so that tests can predict every reply:
//! - `text` is the text of the last input message or item (string content, or its text parts
//!   joined with ""; for a tool result, its content text).
//! - Tools declared (and `tool_choice` not "none") and the last message a user message (not a
//!   tool result): one call to the first declared tool with arguments `{"text": text}` as
//!   serde_json writes it. Otherwise the text `"You said: " + text`.
//! - Usage: input tokens are the whitespace-separated words of every text in the request
//!   (system prompt or instructions, message texts, tool-call arguments, tool results); output
//!   tokens the words of the reply text or of the tool-call arguments.
//! - Model-name directives, joined by `+`: see [`Directives`].

use std::time::Duration;

/// Directives parsed from a model name such as `stand-in+split-12+drip-5`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `fail-500` / `fail-429`: answer with this error status instead of a reply.
    pub fail: Option<u16>,
    /// `slow-<ms>`: wait this long before sending the response headers.
    pub slow: Option<Duration>,
    /// `drip-<ms>`: wait this long between streamed events.
    pub drip: Option<Duration>,
    /// `split-<n>`: stream the payload as exactly two deltas split at byte n.
    pub split: Option<usize>,
    /// `chunk-<n>`: stream the payload in deltas of n bytes.
    pub chunk: Option<usize>,
    /// `hang`: stream the first delta, then wait until the client goes away.
    pub hang: bool,
}

/// Delta size when the model name names none: small, so even short replies arrive in pieces.
pub const DEFAULT_CHUNK: usize = 7;

impl Directives {
    /// Parses the `+`-separated parts of a model name; unknown parts are ignored, so any
    /// model name works.
    pub fn parse(model: &str) -> Self {
        let mut d = Directives::default();
        for part in model.split('+') {
            let number = |prefix: &str| -> Option<u64> { part.strip_prefix(prefix)?.parse().ok() };
            if part == "fail-500" {
                d.fail = Some(500);
            } else if part == "fail-429" {
                d.fail = Some(429);
            } else if part == "hang" {
                d.hang = true;
            } else if let Some(ms) = number("slow-") {
                d.slow = Some(Duration::from_millis(ms));
            } else if let Some(ms) = number("drip-") {
                d.drip = Some(Duration::from_millis(ms));
            } else if let Some(n) = number("split-") {
                d.split = usize::try_from(n).ok();
            } else if let Some(n) = number("chunk-") {
                d.chunk = usize::try_from(n).ok().filter(|&n| n > 0);
            }
        }
        d
    }

    /// Cuts a streamed payload (reply text or tool-call arguments) into its deltas.
    pub fn deltas(&self, payload: &str) -> Vec<String> {
        match self.split {
            Some(n) => {
                let at = ceil_char_boundary(payload, n);
                vec![payload[..at].to_owned(), payload[at..].to_owned()]
            }
            None => chunks(payload, self.chunk.unwrap_or(DEFAULT_CHUNK)),
        }
    }
}

/// The smallest char boundary at or after `n` (the end of the string when `n` is past it).
fn ceil_char_boundary(s: &str, n: usize) -> usize {
    if n >= s.len() {
        return s.len();
    }
    (n..=s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len())
}

/// Pieces of at least `n` bytes (the last may be shorter), each ending on a char boundary.
/// An empty payload still gives one (empty) delta, as providers send one.
fn chunks(s: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < s.len() {
        let end = ceil_char_boundary(s, start + n);
        out.push(s[start..end].to_owned());
        start = end;
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

/// What a request boils down to, whatever its wire format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    /// The text of the last input message or item.
    pub last_text: String,
    /// Whether that last message is a user message (not a tool result).
    pub last_is_user: bool,
    /// The name of the first declared tool, if any (none when `tool_choice` forbids tools).
    pub first_tool: Option<String>,
    /// Every piece of text in the request (system prompt, messages, tool calls and results).
    pub all_text: Vec<String>,
}

/// The model's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A plain text answer.
    Text(String),
    /// One call to a declared tool, with its arguments as a serialized JSON object.
    ToolCall {
        /// The tool's name.
        name: String,
        /// The arguments, serialized JSON.
        arguments: String,
    },
}

impl Reply {
    /// The deterministic reply to a conversation: a tool call when tools are declared and the
    /// user just spoke, otherwise an echo.
    pub fn to(conv: &Conversation) -> Reply {
        match &conv.first_tool {
            Some(name) if conv.last_is_user => Reply::ToolCall {
                name: name.clone(),
                arguments: serde_json::json!({ "text": conv.last_text }).to_string(),
            },
            _ => Reply::Text(format!("You said: {}", conv.last_text)),
        }
    }

    /// The text streamed for this reply: the answer, or the tool call's arguments.
    pub fn payload(&self) -> &str {
        match self {
            Reply::Text(t) => t,
            Reply::ToolCall { arguments, .. } => arguments,
        }
    }
}

/// Token counts: whitespace-separated words in, words out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Words in all the request's text.
    pub input: u64,
    /// Words in the reply's text (or tool-call arguments).
    pub output: u64,
}

impl Usage {
    /// Counts the words of a conversation and its reply.
    pub fn of(conv: &Conversation, reply: &Reply) -> Usage {
        Usage {
            input: conv.all_text.iter().map(|t| words(t)).sum(),
            output: words(reply.payload()),
        }
    }
}

/// Whitespace-separated words.
pub fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Joins the `text` of content parts, skipping parts without text (images, files).
pub fn joined_text(parts: &[serde_json::Value]) -> String {
    parts
        .iter()
        .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
        .collect()
}

/// The text of a `content` field that is either a string or a list of parts.
pub fn content_text(content: Option<&serde_json::Value>) -> String {
    match content {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(parts)) => joined_text(parts),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn directives_parse_every_kind_and_ignore_the_rest() {
        let d = Directives::parse("stand-in+split-12+drip-5+slow-30+chunk-3+hang+fail-429+x-1");
        assert_eq!(d.split, Some(12));
        assert_eq!(d.drip, Some(Duration::from_millis(5)));
        assert_eq!(d.slow, Some(Duration::from_millis(30)));
        assert_eq!(d.chunk, Some(3));
        assert!(d.hang);
        assert_eq!(d.fail, Some(429));
        assert_eq!(Directives::parse("gpt-4o"), Directives::default());
        assert_eq!(Directives::parse("m+fail-500").fail, Some(500));
        assert_eq!(Directives::parse("m+chunk-0").chunk, None);
    }

    #[test]
    fn split_moves_forward_to_a_char_boundary() {
        let d = Directives::parse("m+split-1");
        // 'é' is two bytes: byte 1 is inside it.
        assert_eq!(d.deltas("éa"), vec!["é".to_owned(), "a".to_owned()]);
        let d = Directives::parse("m+split-99");
        assert_eq!(d.deltas("abc"), vec!["abc".to_owned(), String::new()]);
    }

    #[test]
    fn tool_call_only_when_the_user_spoke_last() {
        let mut conv = Conversation {
            last_text: "hi \"there\"".into(),
            last_is_user: true,
            first_tool: Some("lookup".into()),
            all_text: vec!["sys prompt".into(), "hi \"there\"".into()],
        };
        let reply = Reply::to(&conv);
        assert_eq!(
            reply,
            Reply::ToolCall {
                name: "lookup".into(),
                arguments: r#"{"text":"hi \"there\""}"#.into()
            }
        );
        assert_eq!(
            Usage::of(&conv, &reply),
            Usage {
                input: 4,
                output: 2
            }
        );
        conv.last_is_user = false;
        assert_eq!(
            Reply::to(&conv),
            Reply::Text("You said: hi \"there\"".into())
        );
        conv.last_is_user = true;
        conv.first_tool = None;
        assert_eq!(
            Reply::to(&conv),
            Reply::Text("You said: hi \"there\"".into())
        );
    }

    proptest! {
        #[test]
        fn deltas_concatenate_to_the_payload(s in "\\PC{0,40}", n in 1usize..12, split in proptest::option::of(0usize..50)) {
            let d = Directives { chunk: Some(n), split, ..Directives::default() };
            let parts = d.deltas(&s);
            prop_assert_eq!(parts.concat(), s.clone());
            if split.is_some() {
                prop_assert_eq!(parts.len(), 2);
            } else {
                for p in &parts[..parts.len().saturating_sub(1)] {
                    // At least n bytes, and at most n plus one char's extra bytes.
                    prop_assert!(p.len() >= n && p.len() < n + 4);
                }
            }
        }
    }
}
