//! Scrubbing a request: find personal data in every caller text and replace it.
//!
//! Fail closed: every string is scanned except values under keys known to be structure
//! (identifiers, enums, names a provider validates) or binary payloads. A key that is usually
//! structural but holds an object (a JSON schema property called `name`, say) is walked, since
//! only strings can be trusted to be the enum they claim to be.

use std::collections::{BTreeMap, BTreeSet};

use custos_pii::{
    anonymize, AnonymizeError, EntityKind, Operator, OperatorContext, Operators, Scanner, Tokenizer,
};
use serde_json::{Map, Value};

use hmac::Hmac;
use sha2::Sha256;

use crate::placeholder::{placeholder_keyed, PlaceholderKey, PlaceholderMap};
use crate::WireFormat;

/// How detected values are handled (the policy's `[llm] pii` action).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiAction {
    /// Replace each value by its keyed placeholder; responses get the value back.
    Tokenize,
    /// Replace each value by `[KIND_REDACTED]`.
    Redact,
    /// Replace all but the last 4 characters (at most half) by `*`.
    Mask,
    /// Refuse the whole request when anything is found.
    Block,
}

/// What to detect and how to handle it.
#[derive(Debug, Clone, Copy)]
pub struct Scrubber<'a> {
    /// The PII engine.
    pub scanner: &'a Scanner,
    /// The kinds the policy detects; findings of other kinds are left alone.
    pub kinds: &'a [EntityKind],
    /// What happens to a detected value.
    pub action: PiiAction,
    /// The org key placeholders are derived under.
    pub key: &'a PlaceholderKey,
}

/// What scrubbing a request did.
#[derive(Debug, Clone, Default)]
pub struct Scrubbed {
    /// Values replaced per kind (one per merged span).
    pub counts: BTreeMap<EntityKind, u64>,
    /// Every placeholder this request minted, for restoring the response.
    pub placeholders: PlaceholderMap,
}

/// Why a request could not be scrubbed; never carries content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrubError {
    /// `block`: names entity kinds only, never values or positions inside values.
    #[error("request blocked: it contains {}", kinds_list(.kinds))]
    Blocked {
        /// The kinds found.
        kinds: BTreeSet<EntityKind>,
    },
    /// The body is not what the format needs (not an object, ...); message names the field, never content.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The PII engine failed; the call must be refused (fail closed).
    #[error("PII engine failed: {0}")]
    Engine(String),
}

fn kinds_list(kinds: &BTreeSet<EntityKind>) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Keys whose string values are structure: identifiers, enums, names providers validate.
const STRUCTURAL_KEYS: &[&str] = &[
    "model",
    "role",
    "type",
    "id",
    "call_id",
    "tool_call_id",
    "tool_use_id",
    "name",
    "previous_response_id",
    "service_tier",
    "reasoning_effort",
    "effort",
    "media_type",
    "detail",
    "status",
    "tool_choice",
    "modalities",
    "voice",
    "format",
    "encoding_format",
];

/// Keys holding binary payloads or references to them: never text, never scanned.
const BINARY_KEYS: &[&str] = &["image_url", "file_data", "input_audio", "url", "file_url"];

/// Content block types whose `input` is the model's tool input: free-form, every string scanned.
const TOOL_INPUT_TYPES: &[&str] = &["tool_use", "server_tool_use", "mcp_tool_use"];

/// Scans and transforms every caller text of `body` in place (see the crate docs for what is
/// scanned). On any error nothing useful is left in `body`: the caller must not send it.
pub fn scrub_request(
    format: WireFormat,
    body: &mut Value,
    scrubber: &Scrubber,
) -> Result<Scrubbed, ScrubError> {
    check_shape(format, body)?;
    let ops = Operators::uniform(match scrubber.action {
        PiiAction::Tokenize => Operator::Tokenize,
        PiiAction::Redact => Operator::Redact,
        PiiAction::Mask => Operator::Mask {
            keep_last: 4,
            mask_char: '*',
        },
        // Block never reaches `anonymize`: kinds are collected instead, nothing is changed.
        PiiAction::Block => Operator::Block,
    });
    let mut walk = Walk {
        scrubber,
        ops,
        counts: BTreeMap::new(),
        map: PlaceholderMap::default(),
        mac: scrubber.key.mac(),
        blocked: BTreeSet::new(),
    };
    walk.value(body, None, false)?;
    if !walk.blocked.is_empty() {
        return Err(ScrubError::Blocked {
            kinds: walk.blocked,
        });
    }
    Ok(Scrubbed {
        counts: walk.counts,
        placeholders: walk.map,
    })
}

/// The few shape checks every provider would also make; anything else is left to the provider.
fn check_shape(format: WireFormat, body: &Value) -> Result<(), ScrubError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScrubError::Malformed("body: expected a JSON object".into()))?;
    let bad = |field: &str, want: &str| ScrubError::Malformed(format!("{field}: expected {want}"));
    match format {
        WireFormat::ChatCompletions | WireFormat::AnthropicMessages => match obj.get("messages") {
            Some(Value::Array(_)) => {}
            _ => return Err(bad("messages", "an array")),
        },
        WireFormat::Responses => match obj.get("input") {
            None | Some(Value::String(_)) | Some(Value::Array(_)) => {}
            Some(_) => return Err(bad("input", "a string or an array")),
        },
    }
    Ok(())
}

struct Walk<'w, 'a> {
    scrubber: &'w Scrubber<'a>,
    ops: Operators,
    counts: BTreeMap<EntityKind, u64>,
    map: PlaceholderMap,
    /// The org key's HMAC state, keyed once per request.
    mac: Hmac<Sha256>,
    blocked: BTreeSet<EntityKind>,
}

impl Walk<'_, '_> {
    /// Walks `v`, found under `key`; `free` means app-defined JSON (tool arguments and inputs),
    /// where no key is structural. Returns true when anything changed.
    fn value(&mut self, v: &mut Value, key: Option<&str>, free: bool) -> Result<bool, ScrubError> {
        match v {
            Value::String(s) if !free && key == Some("arguments") => self.arguments(s),
            Value::String(s) => self.text(s),
            Value::Array(items) => {
                let mut changed = false;
                for item in items {
                    changed |= self.value(item, key, free)?;
                }
                Ok(changed)
            }
            Value::Object(obj) if free => {
                let mut changed = false;
                for item in obj.values_mut() {
                    changed |= self.value(item, None, true)?;
                }
                Ok(changed)
            }
            Value::Object(obj) => self.object(obj, key),
            _ => Ok(false),
        }
    }

    fn object(
        &mut self,
        obj: &mut Map<String, Value>,
        key: Option<&str>,
    ) -> Result<bool, ScrubError> {
        let ty = obj.get("type").and_then(Value::as_str);
        // Anthropic `source: {type: "base64", data}`: the data is an encoded image or document.
        let base64_source = key == Some("source") && ty == Some("base64");
        let tool_input = ty.is_some_and(|t| TOOL_INPUT_TYPES.contains(&t));
        let mut changed = false;
        for (k, item) in obj.iter_mut() {
            let k = k.as_str();
            if BINARY_KEYS.contains(&k) || (base64_source && k == "data") {
                continue;
            }
            if STRUCTURAL_KEYS.contains(&k) && is_strings(item) {
                continue;
            }
            let free = tool_input && k == "input";
            changed |= self.value(item, Some(k), free)?;
        }
        Ok(changed)
    }

    /// Tool-call arguments are JSON text: scan the strings inside, not the JSON syntax.
    fn arguments(&mut self, s: &mut String) -> Result<bool, ScrubError> {
        let Ok(mut parsed) = serde_json::from_str::<Value>(s) else {
            return self.text(s);
        };
        if !self.value(&mut parsed, None, true)? {
            return Ok(false);
        }
        *s = serde_json::to_string(&parsed)
            .map_err(|_| ScrubError::Engine("re-encoding tool arguments failed".into()))?;
        Ok(true)
    }

    /// Scans one text once and applies the action to what was found.
    fn text(&mut self, s: &mut String) -> Result<bool, ScrubError> {
        let kinds = self.scrubber.kinds;
        let mut findings = self.scrubber.scanner.scan_for(s, kinds);
        findings.retain(|f| kinds.contains(&f.entity));
        if findings.is_empty() {
            return Ok(false);
        }
        if self.scrubber.action == PiiAction::Block {
            self.blocked.extend(findings.iter().map(|f| f.entity));
            return Ok(false);
        }
        let out = if self.scrubber.action == PiiAction::Tokenize {
            // Placeholders are minted as `anonymize` meets each value: no vault in between.
            let mut minter = Minter {
                mac: &self.mac,
                map: &mut self.map,
            };
            let mut ctx = OperatorContext::new().with_tokenizer(&mut minter);
            anonymize(s, &findings, &self.ops, &mut ctx)
        } else {
            anonymize(s, &findings, &self.ops, &mut OperatorContext::new())
        }
        .map_err(engine)?;
        for (kind, n) in out.applied {
            *self.counts.entry(kind).or_insert(0) += n as u64;
        }
        *s = out.text;
        Ok(true)
    }
}

/// Mints placeholders for one request: derived from the value under the org key and
/// recorded in the request's map (a value met again derives the same placeholder).
struct Minter<'m> {
    mac: &'m Hmac<Sha256>,
    map: &'m mut PlaceholderMap,
}

impl Tokenizer for Minter<'_> {
    fn token(&mut self, kind: EntityKind, value: &str) -> Result<String, AnonymizeError> {
        let token = placeholder_keyed(self.mac, kind, value);
        match self.map.get(&token) {
            Some(known) if known == value => {}
            // Restoring would hand one value's owner another's data: refuse instead.
            Some(_) => {
                return Err(AnonymizeError::Tokenizer {
                    kind,
                    reason: "two different values share one placeholder".into(),
                })
            }
            None => self.map.insert(token.clone(), value.to_string()),
        }
        Ok(token)
    }
}

/// True for a string or an array of strings (the shapes structural values take).
fn is_strings(v: &Value) -> bool {
    match v {
        Value::String(_) => true,
        Value::Array(items) => items.iter().all(|i| matches!(i, Value::String(_))),
        _ => false,
    }
}

/// The engine's errors name kinds and indexes only, never values.
fn engine(e: AnonymizeError) -> ScrubError {
    ScrubError::Engine(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placeholder::placeholder;

    #[test]
    fn a_placeholder_already_standing_for_another_value_is_refused() {
        let scanner = Scanner::new();
        let key = PlaceholderKey::new(b"k");
        let scrubber = Scrubber {
            scanner: &scanner,
            kinds: &[EntityKind::EmailAddress],
            action: PiiAction::Tokenize,
            key: &key,
        };
        let mut walk = Walk {
            scrubber: &scrubber,
            ops: Operators::uniform(Operator::Tokenize),
            counts: BTreeMap::new(),
            map: PlaceholderMap::default(),
            mac: key.mac(),
            blocked: BTreeSet::new(),
        };
        // Stands in for an HMAC collision, which no test can find by search.
        let p = placeholder(&key, EntityKind::EmailAddress, "ada@example.com");
        walk.map.insert(p.clone(), "eve@example.com".into());
        let mut s = "mail ada@example.com".to_string();
        let err = walk.text(&mut s).unwrap_err();
        assert!(matches!(err, ScrubError::Engine(_)), "{err:?}");
        assert!(!err.to_string().contains("example"));
        assert_eq!(s, "mail ada@example.com");
        assert_eq!(walk.map.get(&p), Some("eve@example.com"));
    }
}
