//! Operators that transform detected values: redact, mask, block, replace, keyed hash,
//! encrypt (through a caller-supplied cipher), tokenize (through a caller-persisted vault).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::entity::{EntityKind, Finding};

/// What to do with one detected value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Replace with `[<ENTITY>_REDACTED]`.
    Redact,
    /// Replace every character but the last `keep_last` with `mask_char`.
    Mask {
        /// How many trailing characters stay visible.
        keep_last: usize,
        /// The character that hides the rest.
        mask_char: char,
    },
    /// Reject the whole text (see [`Blocked`]).
    Block,
    /// Replace with a fixed string.
    Replace(String),
    /// Replace with a keyed hash (HMAC-SHA256 under the org's key), stable across calls.
    Hash,
    /// Replace with the caller's reversible ciphertext token.
    Encrypt,
    /// Replace with a consistent per-org pseudonym such as `<PERSON_1>`.
    Tokenize,
    /// Leave the value as it is (still counted as detected by the caller).
    Keep,
}

/// The operator per entity kind, with a default for kinds not listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operators {
    /// Operator for kinds without an explicit entry.
    pub default: Operator,
    /// Per-kind overrides.
    pub per_entity: BTreeMap<EntityKind, Operator>,
}

impl Operators {
    /// The same operator for every kind.
    pub fn uniform(op: Operator) -> Operators {
        Operators {
            default: op,
            per_entity: BTreeMap::new(),
        }
    }

    /// Sets the operator for one kind.
    pub fn with(mut self, kind: EntityKind, op: Operator) -> Operators {
        self.per_entity.insert(kind, op);
        self
    }

    /// The operator that applies to `kind`.
    pub fn get(&self, kind: EntityKind) -> &Operator {
        self.per_entity.get(&kind).unwrap_or(&self.default)
    }
}

impl Default for Operators {
    fn default() -> Self {
        Operators::uniform(Operator::Redact)
    }
}

/// Reversible encryption supplied by the caller, so key handling stays in the crypto crate.
pub trait ValueCipher {
    /// Encrypts a value into a printable, self-delimiting token (no whitespace).
    fn seal(&self, plaintext: &str) -> String;
    /// Decrypts a token made by `seal`; `None` if it is not one or does not authenticate.
    fn open(&self, token: &str) -> Option<String>;
}

/// Mints the tokens of [`Operator::Tokenize`] itself, for a caller that keeps its own map from
/// tokens to values (the LLM gateway derives them from the value; no vault is built).
pub trait Tokenizer {
    /// The token for `value`, detected as `kind`; an error refuses the whole text.
    fn token(&mut self, kind: EntityKind, value: &str) -> Result<String, AnonymizeError>;
}

/// Per-call inputs some operators need: the org's hash key, cipher and token vault (or
/// tokenizer).
#[derive(Default)]
pub struct OperatorContext<'a> {
    /// Key for [`Operator::Hash`] (per org).
    pub hmac_key: Option<&'a [u8]>,
    /// Cipher for [`Operator::Encrypt`].
    pub cipher: Option<&'a dyn ValueCipher>,
    /// Vault for [`Operator::Tokenize`]; updated with new tokens, the caller persists it.
    pub vault: Option<&'a mut TokenVault>,
    /// Tokenizer for [`Operator::Tokenize`], used instead of the vault when set.
    pub tokenizer: Option<&'a mut dyn Tokenizer>,
}

impl<'a> OperatorContext<'a> {
    /// A context with nothing: enough for redact, mask, block, replace and keep.
    pub fn new() -> OperatorContext<'a> {
        OperatorContext::default()
    }

    /// Adds the org's HMAC key.
    pub fn with_hmac_key(mut self, key: &'a [u8]) -> Self {
        self.hmac_key = Some(key);
        self
    }

    /// Adds the cipher.
    pub fn with_cipher(mut self, cipher: &'a dyn ValueCipher) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// Adds the token vault.
    pub fn with_vault(mut self, vault: &'a mut TokenVault) -> Self {
        self.vault = Some(vault);
        self
    }

    /// Adds a tokenizer (takes precedence over a vault).
    pub fn with_tokenizer(mut self, tokenizer: &'a mut dyn Tokenizer) -> Self {
        self.tokenizer = Some(tokenizer);
        self
    }
}

impl fmt::Debug for OperatorContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("OperatorContext")
            .field("hmac_key", &self.hmac_key.map(|_| "<set>"))
            .field("cipher", &self.cipher.map(|_| "<set>"))
            .field("vault", &self.vault.as_ref().map(|v| v.len()))
            .field("tokenizer", &self.tokenizer.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// The text was rejected by a `Block` operator. Names entity kinds and char positions, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// (kind, char start, char end) of each blocked finding.
    pub hits: Vec<(EntityKind, usize, usize)>,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blocked: text contains")?;
        for (i, (k, s, e)) in self.hits.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{k} at {s}..{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Blocked {}

/// Why `anonymize` could not produce text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnonymizeError {
    /// A `Block` operator matched.
    #[error(transparent)]
    Blocked(#[from] Blocked),
    /// `Hash` needs `OperatorContext::hmac_key`.
    #[error("operator hash for {0} needs the org's HMAC key")]
    MissingKey(EntityKind),
    /// `Encrypt` needs `OperatorContext::cipher`.
    #[error("operator encrypt for {0} needs a cipher")]
    MissingCipher(EntityKind),
    /// `Tokenize` needs `OperatorContext::vault`.
    #[error("operator tokenize for {0} needs a token vault")]
    MissingVault(EntityKind),
    /// `Tokenize` met a value a frozen vault has no token for (see [`TokenVault::freeze`]).
    #[error("operator tokenize found a {0} value that has no token in the frozen vault")]
    NotInVault(EntityKind),
    /// A [`Tokenizer`] refused a value (names the kind and the reason, never the value).
    #[error("operator tokenize for {kind}: {reason}")]
    Tokenizer {
        /// The value's kind.
        kind: EntityKind,
        /// Why, without the value.
        reason: String,
    },
    /// A finding's offsets do not fit the text (findings from another text?).
    #[error("finding {index} ({entity}) has offsets outside the text or inside a character")]
    BadOffsets {
        /// Index into the findings slice.
        index: usize,
        /// Its kind.
        entity: EntityKind,
    },
}

/// The anonymized text and how many values of each kind were transformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anonymized {
    /// The output text.
    pub text: String,
    /// (kind, count) for every kind that had at least one value transformed (not `Keep`).
    pub applied: Vec<(EntityKind, usize)>,
}

/// One span `anonymize` transforms: overlapping findings merged into one.
struct Span {
    byte_start: usize,
    byte_end: usize,
    kind: EntityKind,
    score: f32,
    start: usize,
    end: usize,
}

/// Validates the findings' offsets against `text` and merges overlapping ones, so that no part
/// of any detected value survives; a merged span takes the kind of its highest-scoring finding.
/// Then refuses the whole text if any span's operator is `Block` (all-or-nothing).
fn merged_spans(
    text: &str,
    findings: &[Finding],
    ops: &Operators,
) -> Result<Vec<Span>, AnonymizeError> {
    // Validate offsets first: never panic, never silently skip a value.
    let mut spans: Vec<Span> = Vec::with_capacity(findings.len());
    for (index, f) in findings.iter().enumerate() {
        if f.byte_start >= f.byte_end || text.get(f.byte_start..f.byte_end).is_none() {
            return Err(AnonymizeError::BadOffsets {
                index,
                entity: f.entity,
            });
        }
        spans.push(Span {
            byte_start: f.byte_start,
            byte_end: f.byte_end,
            kind: f.entity,
            score: f.score,
            start: f.start,
            end: f.end,
        });
    }
    spans.sort_by_key(|s| (s.byte_start, std::cmp::Reverse(s.byte_end)));
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match merged.last_mut() {
            Some(m) if s.byte_start < m.byte_end => {
                if s.byte_end > m.byte_end {
                    m.byte_end = s.byte_end;
                    m.end = m.end.max(s.end);
                }
                if s.score > m.score {
                    m.kind = s.kind;
                    m.score = s.score;
                }
            }
            _ => merged.push(s),
        }
    }
    // Blocking is all-or-nothing: report every blocked hit before transforming anything.
    let hits: Vec<(EntityKind, usize, usize)> = merged
        .iter()
        .filter(|m| matches!(ops.get(m.kind), Operator::Block))
        .map(|m| (m.kind, m.start, m.end))
        .collect();
    if !hits.is_empty() {
        return Err(Blocked { hits }.into());
    }
    Ok(merged)
}

/// The (kind, value) pairs [`anonymize`] would hand to the tokenize operator for these
/// findings, in text order (repeats included): what a caller with an external token store
/// must resolve before anonymizing with a frozen [`TokenVault`]. Fails as `anonymize` would on
/// bad offsets or a `Block` operator, so a refusal is known before any token is minted.
pub fn tokenize_targets<'t>(
    text: &'t str,
    findings: &[Finding],
    ops: &Operators,
) -> Result<Vec<(EntityKind, &'t str)>, AnonymizeError> {
    Ok(merged_spans(text, findings, ops)?
        .into_iter()
        .filter(|m| matches!(ops.get(m.kind), Operator::Tokenize))
        .map(|m| (m.kind, &text[m.byte_start..m.byte_end]))
        .collect())
}

/// Applies `ops` to every finding in `text`. Overlapping findings are merged so that no part of
/// any detected value survives; the merged span takes the kind of its highest-scoring finding.
pub fn anonymize(
    text: &str,
    findings: &[Finding],
    ops: &Operators,
    ctx: &mut OperatorContext<'_>,
) -> Result<Anonymized, AnonymizeError> {
    let merged = merged_spans(text, findings, ops)?;
    let mut out = String::with_capacity(text.len());
    let mut applied: BTreeMap<EntityKind, usize> = BTreeMap::new();
    let mut pos = 0;
    for Span {
        byte_start: bs,
        byte_end: be,
        kind,
        ..
    } in merged
    {
        out.push_str(&text[pos..bs]);
        let value = &text[bs..be];
        let op = ops.get(kind);
        match op {
            Operator::Keep => out.push_str(value),
            Operator::Redact => {
                out.push('[');
                out.push_str(kind.as_str());
                out.push_str("_REDACTED]");
            }
            Operator::Mask {
                keep_last,
                mask_char,
            } => {
                let n = value.chars().count();
                let keep = (*keep_last).min(n);
                // Keeping everything would leak the whole value; always hide at least half.
                let keep = keep.min(n / 2);
                for (i, c) in value.chars().enumerate() {
                    if i < n - keep {
                        out.push(*mask_char);
                    } else {
                        out.push(c);
                    }
                }
            }
            Operator::Replace(s) => out.push_str(s),
            Operator::Hash => {
                let key = ctx.hmac_key.ok_or(AnonymizeError::MissingKey(kind))?;
                out.push_str(&keyed_hash(key, value));
            }
            Operator::Encrypt => {
                let c = ctx.cipher.ok_or(AnonymizeError::MissingCipher(kind))?;
                out.push_str(&c.seal(value));
            }
            Operator::Tokenize if ctx.tokenizer.is_some() => {
                let t = ctx.tokenizer.as_deref_mut().expect("checked just above");
                out.push_str(&t.token(kind, value)?);
            }
            Operator::Tokenize => {
                let v = ctx
                    .vault
                    .as_deref_mut()
                    .ok_or(AnonymizeError::MissingVault(kind))?;
                if v.frozen {
                    let token = v
                        .token_of(kind, value)
                        .ok_or(AnonymizeError::NotInVault(kind))?;
                    out.push_str(token);
                } else {
                    out.push_str(&v.token_for(kind, value));
                }
            }
            // Blocked findings returned early above.
            Operator::Block => {}
        }
        if !matches!(op, Operator::Keep) {
            *applied.entry(kind).or_insert(0) += 1;
        }
        pos = be;
    }
    out.push_str(&text[pos..]);
    Ok(Anonymized {
        text: out,
        applied: applied.into_iter().collect(),
    })
}

/// HMAC-SHA256 of `value` under `key`, hex, truncated to 128 bits (enough to join on, short in text).
pub fn keyed_hash(key: &[u8], value: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(b"custos-pii/hash/v1\0");
    mac.update(value.as_bytes());
    let tag = mac.finalize().into_bytes();
    hex::encode(&tag[..16])
}

/// One value↔token pair in a vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultEntry {
    /// The kind the value was detected as.
    pub entity: EntityKind,
    /// The original value.
    pub value: String,
    /// Its pseudonym, e.g. `<PERSON_3>`.
    pub token: String,
}

#[derive(Serialize, Deserialize)]
struct VaultRepr {
    entries: Vec<VaultEntry>,
}

/// Per-org map between values and pseudonyms. The caller persists it (serde) and keeps it secret:
/// whoever holds it can reverse tokenization.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "VaultRepr", into = "VaultRepr")]
pub struct TokenVault {
    entries: Vec<VaultEntry>,
    by_value: HashMap<(EntityKind, String), usize>,
    by_token: HashMap<String, usize>,
    counters: BTreeMap<EntityKind, u64>,
    /// Set by [`TokenVault::freeze`]: tokenize only looks tokens up, never mints.
    frozen: bool,
}

impl From<VaultRepr> for TokenVault {
    fn from(r: VaultRepr) -> Self {
        let mut v = TokenVault::default();
        for e in r.entries {
            v.insert(e);
        }
        v
    }
}

impl From<TokenVault> for VaultRepr {
    fn from(v: TokenVault) -> Self {
        VaultRepr { entries: v.entries }
    }
}

impl fmt::Debug for TokenVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The values are the secret: show only the size.
        f.debug_struct("TokenVault")
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl TokenVault {
    /// An empty vault.
    pub fn new() -> TokenVault {
        TokenVault::default()
    }

    /// Number of stored pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no value was tokenized yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All pairs, in creation order.
    pub fn entries(&self) -> &[VaultEntry] {
        &self.entries
    }

    fn insert(&mut self, e: VaultEntry) {
        if self.by_token.contains_key(&e.token)
            || self.by_value.contains_key(&(e.entity, e.value.clone()))
        {
            return;
        }
        // Keep counters ahead of any token already issued, so new tokens never collide.
        if let Some(n) = parse_token(&e.token)
            .filter(|(k, _)| *k == e.entity)
            .map(|(_, n)| n)
        {
            let c = self.counters.entry(e.entity).or_insert(0);
            *c = (*c).max(n);
        }
        let idx = self.entries.len();
        self.by_value.insert((e.entity, e.value.clone()), idx);
        self.by_token.insert(e.token.clone(), idx);
        self.entries.push(e);
    }

    /// A vault holding exactly `entries` (pairs from an external token store). Entries whose
    /// value or token is already present are ignored.
    pub fn from_entries(entries: impl IntoIterator<Item = VaultEntry>) -> TokenVault {
        let mut v = TokenVault::default();
        for e in entries {
            v.insert(e);
        }
        v
    }

    /// Stops [`anonymize`] from minting: a value without a token is then an error
    /// ([`AnonymizeError::NotInVault`]) instead of a new `<KIND_n>`. For callers whose tokens
    /// are numbered by an external store, where a locally minted number would collide.
    pub fn freeze(&mut self) {
        self.frozen = true;
    }

    /// The token already issued for `value`, if any; never mints.
    pub fn token_of(&self, entity: EntityKind, value: &str) -> Option<&str> {
        self.by_value
            .get(&(entity, value.to_string()))
            .map(|&i| self.entries[i].token.as_str())
    }

    /// The token for `value`, minting `<KIND_n>` on first sight.
    pub fn token_for(&mut self, entity: EntityKind, value: &str) -> String {
        if let Some(&i) = self.by_value.get(&(entity, value.to_string())) {
            return self.entries[i].token.clone();
        }
        let c = self.counters.entry(entity).or_insert(0);
        *c += 1;
        let mut token = format_token(entity, *c);
        while self.by_token.contains_key(&token) {
            *c += 1;
            token = format_token(entity, *c);
        }
        self.insert(VaultEntry {
            entity,
            value: value.to_string(),
            token: token.clone(),
        });
        token
    }

    /// The original value of a token.
    pub fn value_of(&self, token: &str) -> Option<&str> {
        self.by_token
            .get(token)
            .map(|&i| self.entries[i].value.as_str())
    }
}

/// The pseudonym text of the `n`th token of `entity`: `<PERSON_3>`. The one place the format
/// is defined, for vaults and for callers that number tokens in their own store.
pub fn format_token(entity: EntityKind, n: u64) -> String {
    format!("<{}_{}>", entity.as_str(), n)
}

/// The kind and number of a token made by [`format_token`]; `None` for any other text.
pub fn parse_token(token: &str) -> Option<(EntityKind, u64)> {
    let inner = token.strip_prefix('<')?.strip_suffix('>')?;
    let (kind, n) = inner.rsplit_once('_')?;
    Some((kind.parse().ok()?, n.parse().ok()?))
}

/// Replaces every `<KIND_n>` token the vault knows with its original value; unknown tokens stay.
pub fn detokenize(text: &str, vault: &TokenVault) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        // Tokens are short and ASCII: look for the closing '>' within a bounded window.
        let close = after.bytes().take(40).position(|c| c == b'>');
        match close
            .map(|c| &after[..=c])
            .and_then(|tok| vault.value_of(tok).map(|v| (tok.len(), v)))
        {
            Some((len, value)) => {
                out.push_str(value);
                rest = &after[len..];
            }
            None => {
                out.push('<');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
