//! Scrubbing a request: find personal data in every caller text, key, number and URL and
//! replace it.
//!
//! Fail closed: the body is walked with the schema of its wire format ([`crate::schema`]), and
//! only the positions that schema names as structure are left alone (and only while their value
//! has the structural shape). Keys are scanned and transformed like the ingest path does for
//! record metadata: a key that transforms to one already present gets ` (2)`, ` (3)`, ...
//! suffixes, so two keys never collide. A number that holds personal data becomes the
//! transformed text (a string): the number itself must not reach the provider.

use std::collections::{BTreeMap, BTreeSet};

use custos_pii::{
    anonymize, AnonymizeError, EntityKind, Finding, Operator, OperatorContext, Operators, Scanner,
    Tokenizer,
};
use serde_json::{Map, Value};

use hmac::Hmac;
use sha2::Sha256;

use crate::placeholder::{placeholder_keyed, PlaceholderKey, PlaceholderMap};
use crate::schema::{self, Node, Shape};
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
#[non_exhaustive]
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
    walk.value(body, Node::Obj(schema::root(format)), None)?;
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
    /// Walks `v`, at a position the schema gives as `node`; `key` is the field `v` sits
    /// under (context for numbers). Returns `Some(replacement)` when `v` must be replaced
    /// by another value (a number holding personal data becomes a string); strings, arrays
    /// and objects are changed in place.
    fn value(
        &mut self,
        v: &mut Value,
        node: Node,
        key: Option<&str>,
    ) -> Result<Option<Value>, ScrubError> {
        match v {
            Value::String(s) => {
                self.string(s, node)?;
                Ok(None)
            }
            Value::Number(n) => self.number(n, key),
            Value::Array(items) => {
                for item in items.iter_mut() {
                    if let Some(new) = self.value(item, node, key)? {
                        *item = new;
                    }
                }
                Ok(None)
            }
            Value::Object(obj) => {
                let shape = match node {
                    Node::Obj(shape) | Node::Parts(shape) => Some(shape),
                    _ => None,
                };
                self.object(obj, shape)?;
                Ok(None)
            }
            Value::Null | Value::Bool(_) => Ok(None),
        }
    }

    /// A string at a `node` position.
    fn string(&mut self, s: &mut String, node: Node) -> Result<bool, ScrubError> {
        match node {
            Node::Token | Node::Obj(_) if schema::is_token(s) => Ok(false),
            Node::Binary if schema::is_binary(s) => Ok(false),
            Node::Url => self.url(s),
            Node::JsonText => self.arguments(s),
            _ => self.text(s),
        }
    }

    /// An object of `shape` (`None`: caller data, every key scanned). Keys the shape does not
    /// name are scanned; a key that transforms is renamed, with a suffix if the new name is
    /// taken, so no value is lost or merged.
    fn object(
        &mut self,
        obj: &mut Map<String, Value>,
        shape: Option<Shape>,
    ) -> Result<(), ScrubError> {
        let ty = obj.get("type").and_then(Value::as_str).map(str::to_owned);
        let mut entries: Vec<(String, Value, bool)> = Vec::with_capacity(obj.len());
        let keys: Vec<String> = obj.keys().cloned().collect();
        for k in keys {
            let field = shape.and_then(|sh| schema::field(sh, ty.as_deref(), &k));
            let mut item = obj.remove(&k).expect("key listed above");
            let node = field.unwrap_or(Node::Free);
            if let Some(new) = self.value(&mut item, node, Some(&k))? {
                item = new;
            }
            let mut new_key = k.clone();
            let transformed = field.is_none() && self.text(&mut new_key)?;
            entries.push((new_key, item, transformed));
        }
        // Kept keys first, so a transformed key never displaces one that was already there.
        for (k, v, _) in entries.iter_mut().filter(|e| !e.2) {
            obj.insert(std::mem::take(k), std::mem::take(v));
        }
        for (k, v, _) in entries.into_iter().filter(|e| e.2) {
            let k = unique_key(obj, k);
            obj.insert(k, v);
        }
        Ok(())
    }

    /// A number holding personal data (a phone or card number sent as a JSON number) becomes
    /// its transformed text; the field name is the context the recognizers need (`phone`).
    fn number(
        &mut self,
        n: &serde_json::Number,
        key: Option<&str>,
    ) -> Result<Option<Value>, ScrubError> {
        let digits = n.to_string();
        // Every entity scanned for that can be a bare number has at least 9 digits.
        if digits.bytes().filter(u8::is_ascii_digit).count() < 9 {
            return Ok(None);
        }
        let context = key.unwrap_or("number");
        let framed = format!("{context}: {digits}");
        let offset = framed.len() - digits.len();
        let kinds = self.scrubber.kinds;
        let hit = self
            .scrubber
            .scanner
            .scan_for(&framed, kinds)
            .into_iter()
            .filter(|f| kinds.contains(&f.entity))
            .find(|f| f.byte_end > offset);
        let Some(hit) = hit else { return Ok(None) };
        // The whole number is the value: a part of one is not a number the provider may see.
        let whole = Finding {
            start: 0,
            end: digits.chars().count(),
            byte_start: 0,
            byte_end: digits.len(),
            ..hit
        };
        let mut out = digits;
        if !self.apply(&mut out, vec![whole])? {
            return Ok(None);
        }
        Ok(Some(Value::String(out)))
    }

    /// A URL position: `data:` URLs keep a base64 payload; others are rewritten component by
    /// component.
    fn url(&mut self, s: &mut String) -> Result<bool, ScrubError> {
        if let Some(rest) = s.strip_prefix("data:") {
            if let Some((header, payload)) = rest.split_once(',') {
                if header.ends_with(";base64") && schema::is_binary(payload) {
                    return Ok(false);
                }
            }
        }
        match crate::url_scan::rewrite_url(s, &mut |piece| {
            let mut t = piece.to_string();
            Ok(self.plain(&mut t)?.then_some(t))
        })? {
            Some(new) => {
                *s = new;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Tool-call arguments are JSON text: scan the keys, strings and numbers inside, not the
    /// JSON syntax.
    fn arguments(&mut self, s: &mut String) -> Result<bool, ScrubError> {
        let Ok(mut parsed) = serde_json::from_str::<Value>(s) else {
            return self.text(s);
        };
        let before = parsed.clone();
        if let Some(new) = self.value(&mut parsed, Node::Free, None)? {
            parsed = new;
        }
        if parsed == before {
            return Ok(false);
        }
        *s = serde_json::to_string(&parsed)
            .map_err(|_| ScrubError::Engine("re-encoding tool arguments failed".into()))?;
        Ok(true)
    }

    /// Scans one text: its own findings, then each URL in it component by component (the
    /// engine reports a URL as one finding and looks no further inside).
    fn text(&mut self, s: &mut String) -> Result<bool, ScrubError> {
        let mut changed = self.plain(s)?;
        if s.contains("://") {
            let urls = self.scrubber.scanner.scan_for(s, &[EntityKind::Url]);
            // From the end, so earlier byte offsets stay valid.
            for f in urls.iter().rev().filter(|f| f.entity == EntityKind::Url) {
                let mut url = s[f.byte_start..f.byte_end].to_string();
                if self.url(&mut url)? {
                    s.replace_range(f.byte_start..f.byte_end, &url);
                    changed = true;
                }
            }
        }
        Ok(changed)
    }

    /// Scans one text once (URLs as the engine sees them) and applies the action.
    fn plain(&mut self, s: &mut String) -> Result<bool, ScrubError> {
        let kinds = self.scrubber.kinds;
        let mut findings = self.scrubber.scanner.scan_for(s, kinds);
        findings.retain(|f| kinds.contains(&f.entity));
        self.apply(s, findings)
    }

    /// Applies the action to `findings` of `s`.
    fn apply(&mut self, s: &mut String, findings: Vec<Finding>) -> Result<bool, ScrubError> {
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

/// `key`, or the first of `key (2)`, `key (3)`, ... that `map` does not hold yet (the same
/// rule the ingest path applies to record metadata keys).
fn unique_key(map: &Map<String, Value>, key: String) -> String {
    if !map.contains_key(&key) {
        return key;
    }
    (2u64..)
        .map(|n| format!("{key} ({n})"))
        .find(|k| !map.contains_key(k))
        .expect("some suffix is free")
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
