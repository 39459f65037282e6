//! The PII step of the write path: apply a category's `pii` rule to content before it is
//! sealed, and count what was found (types and counts only, never values).

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine;
use serde_json::Value;

use custos_crypto::SecretKey;
use custos_pii::{
    anonymize, tokenize_targets, AnonymizeError, EntityKind, Finding, Operator, OperatorContext,
    Operators, TokenVault, ValueCipher, VaultEntry,
};
use custos_policy::{PiiAction, PiiRule};
use custos_store::{PiiToken, TokenBatch};

use custos_audit::{Details, Target};

use crate::pii_walk::{rebuild_keyed, visit_keyed};
use crate::CoreError;

/// Encrypt operator: values sealed under a per-org key, reversible by whoever holds it.
pub(crate) struct OrgValueCipher {
    pub key: SecretKey,
    pub aad: Vec<u8>,
}

const ENC_PREFIX: &str = "enc:";

impl ValueCipher for OrgValueCipher {
    fn seal(&self, plaintext: &str) -> String {
        let sealed = self.key.seal(&self.aad, plaintext.as_bytes());
        format!(
            "{ENC_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
        )
    }

    fn open(&self, token: &str) -> Option<String> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.strip_prefix(ENC_PREFIX)?)
            .ok()?;
        String::from_utf8(self.key.open(&self.aad, &raw).ok()?).ok()
    }
}

/// The operator a policy PII action maps to.
pub fn operator_for(action: PiiAction) -> Operator {
    match action {
        PiiAction::Redact => Operator::Redact,
        PiiAction::Mask => Operator::Mask {
            keep_last: 4,
            mask_char: '*',
        },
        PiiAction::Block => Operator::Block,
        PiiAction::Tokenize => Operator::Tokenize,
        PiiAction::Encrypt => Operator::Encrypt,
        PiiAction::Hash => Operator::Hash,
        PiiAction::None => Operator::Keep,
    }
}

/// The entity kinds a rule detects. The policy crate validated the names; one that does not
/// map is a build mismatch between the two crates, reported as internal.
pub fn kinds_of(rule: &PiiRule) -> Result<Vec<EntityKind>, CoreError> {
    rule.detect
        .iter()
        .map(|name| {
            EntityKind::from_policy_name(name).ok_or_else(|| {
                CoreError::internal(format!("policy PII entity {name:?} has no recognizer"))
            })
        })
        .collect()
}

/// Keys one scrub pass may need.
pub(crate) struct ScrubKeys {
    pub hmac: Option<SecretKey>,
    pub cipher: Option<OrgValueCipher>,
}

/// What scanning one record found, kept until its org tokens (if any) are resolved.
#[derive(Clone, Default)]
pub(crate) struct Scan {
    /// Findings of each key and string of the content, in [`visit_keyed`] order (empty where
    /// none).
    pub findings: Vec<Vec<Finding>>,
    /// Findings of each key and string of the metadata, in [`visit_keyed`] order (empty
    /// when there is no metadata).
    pub meta: Vec<Vec<Finding>>,
    /// Entity type → count of values found.
    pub counts: BTreeMap<String, u64>,
    /// Distinct (kind, value) pairs the tokenize operator will replace, first seen first.
    pub targets: Vec<(EntityKind, String)>,
}

/// Entity counts and positions (never values) of a write a `block` rule refuses.
pub(crate) type BlockedHits = (BTreeMap<String, u64>, Vec<String>);

/// Collects what the texts of one write hold: counts, tokenize targets, blocked positions.
pub(crate) struct ScanAcc<'p> {
    plan: &'p ScrubPlan,
    scanner: &'p custos_pii::Scanner,
    /// The scan being filled (findings are pushed by the caller, in its own order).
    pub scan: Scan,
    blocked: Vec<String>,
    seen: HashSet<(EntityKind, String)>,
}

impl<'p> ScanAcc<'p> {
    /// An empty accumulator for `plan`.
    pub fn new(plan: &'p ScrubPlan, scanner: &'p custos_pii::Scanner) -> Self {
        ScanAcc {
            plan,
            scanner,
            scan: Scan::default(),
            blocked: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Scans one text found at `at` (a position, rendered only for a refusal).
    pub fn text(&mut self, at: &dyn std::fmt::Display, text: &str) -> Vec<Finding> {
        let found = self.scanner.scan_for(text, &self.plan.kinds);
        self.found(at, 0, text, &found);
        found
    }

    /// Records `found` (findings in `text`, found at `at`; `offset` chars precede `text` in
    /// what `at` names, for positions in a streamed body).
    pub fn found(
        &mut self,
        at: &dyn std::fmt::Display,
        offset: usize,
        text: &str,
        found: &[Finding],
    ) {
        if found.is_empty() {
            return;
        }
        for f in found {
            *self
                .scan
                .counts
                .entry(f.entity.as_str().to_string())
                .or_insert(0) += 1;
        }
        match tokenize_targets(text, found, &self.plan.ops) {
            Ok(values) => {
                for (kind, value) in values {
                    if self.seen.insert((kind, value.to_string())) {
                        self.scan.targets.push((kind, value.to_string()));
                    }
                }
            }
            Err(AnonymizeError::Blocked(b)) => {
                for (kind, start, end) in b.hits {
                    let (start, end) = (start + offset, end + offset);
                    self.blocked.push(format!("{kind} at {at}[{start}..{end}]"));
                }
            }
            // Cannot happen (findings come from this text); refuse rather than store
            // unscrubbed text if it does.
            Err(other) => self.blocked.push(format!("{at}: {other}")),
        }
    }

    /// True once a `block` rule refused something.
    pub fn is_blocked(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// The scan, or what a `block` rule refused.
    pub fn finish(self) -> Result<Scan, BlockedHits> {
        if self.blocked.is_empty() {
            Ok(self.scan)
        } else {
            Err((self.scan.counts, self.blocked))
        }
    }

    /// Scans every key and string of `metadata` into `scan.meta`.
    pub fn metadata(&mut self, metadata: &Value) {
        let mut meta = Vec::new();
        visit_keyed(metadata, "metadata", &mut |at, text| {
            let found = self.text(at, text);
            let hit = !found.is_empty();
            meta.push(found);
            hit
        });
        self.scan.meta = meta;
    }
}

/// A category's PII rule made ready to apply: entity kinds, operator and the org keys the
/// operator needs, resolved once per batch.
pub(crate) struct ScrubPlan {
    kinds: Vec<EntityKind>,
    ops: Operators,
    keys: ScrubKeys,
}

impl ScrubPlan {
    /// Every entity kind the scanner knows, redacted: what erasure's `anonymize` leaves of a
    /// record, whatever the category's own rule.
    pub fn redact_all() -> ScrubPlan {
        ScrubPlan {
            kinds: EntityKind::ALL.to_vec(),
            ops: Operators::uniform(Operator::Redact),
            keys: ScrubKeys {
                hmac: None,
                cipher: None,
            },
        }
    }

    /// True when the rule replaces values with org-wide pseudonyms.
    pub fn tokenizes(&self) -> bool {
        matches!(self.ops.default, Operator::Tokenize)
    }

    /// The entity kinds the rule detects.
    pub fn kinds(&self) -> &[EntityKind] {
        &self.kinds
    }

    /// Scans every key and string of `content` and of `metadata` for the rule's kinds (a key
    /// is data like a value: `{"zed@example.com": ...}` names a person). On `block`, returns the entity counts and the JSON paths of the hits
    /// (never values), before anything is minted.
    pub fn scan(
        &self,
        scanner: &custos_pii::Scanner,
        content: &Value,
        metadata: Option<&Value>,
    ) -> Result<Scan, BlockedHits> {
        let mut acc = ScanAcc::new(self, scanner);
        let mut findings = Vec::new();
        visit_keyed(content, "$", &mut |at, text| {
            let found = acc.text(at, text);
            let hit = !found.is_empty();
            findings.push(found);
            hit
        });
        acc.scan.findings = findings;
        // Records without metadata (the common case) pay nothing here.
        if let Some(m) = metadata.filter(|m| !m.is_null()) {
            acc.metadata(m);
        }
        acc.finish()
    }

    /// Applies the rule to `content` (keys and strings), given the findings
    /// [`ScrubPlan::scan`] made in it. `vault` holds the org tokens of the scan's targets
    /// (frozen: nothing is minted here). A key that held PII is replaced by its transformed
    /// form; two keys that transform alike get ` (2)`, ` (3)`, ... suffixes in key order, so
    /// neither value is lost.
    pub fn apply(
        &self,
        content: Value,
        findings: Vec<Vec<Finding>>,
        vault: Option<&mut TokenVault>,
    ) -> Result<Value, CoreError> {
        self.apply_keyed(content, findings, vault, "content")
    }

    /// Applies the rule to `metadata` (keys and strings), given the findings of
    /// [`ScanAcc::metadata`], as [`ScrubPlan::apply`] does to content.
    pub fn apply_metadata(
        &self,
        metadata: Value,
        findings: Vec<Vec<Finding>>,
        vault: Option<&mut TokenVault>,
    ) -> Result<Value, CoreError> {
        self.apply_keyed(metadata, findings, vault, "metadata")
    }

    fn apply_keyed(
        &self,
        value: Value,
        findings: Vec<Vec<Finding>>,
        mut vault: Option<&mut TokenVault>,
        part: &str,
    ) -> Result<Value, CoreError> {
        if findings.iter().all(Vec::is_empty) {
            return Ok(value);
        }
        let mut findings = findings.into_iter();
        let mut failed = None;
        // Same order as the scan's `visit_keyed`, so the n-th key or string meets its own
        // findings.
        let out = rebuild_keyed(value, &mut |text| {
            let found = findings.next().unwrap_or_default();
            match self.transform(text, &found, vault.as_deref_mut()) {
                Ok(out) => out,
                Err(e) => {
                    // Refuse rather than store unscrubbed text (the message names no value).
                    failed.get_or_insert_with(|| format!("PII rule in {part}: {e}"));
                    None
                }
            }
        });
        match failed {
            Some(why) => Err(CoreError::internal(why)),
            None => Ok(out),
        }
    }

    /// `text` with `found` transformed by the rule's operator; `None` when nothing was found.
    pub fn transform(
        &self,
        text: &str,
        found: &[Finding],
        vault: Option<&mut TokenVault>,
    ) -> Result<Option<String>, AnonymizeError> {
        if found.is_empty() {
            return Ok(None);
        }
        let hmac_bytes = self
            .keys
            .hmac
            .as_ref()
            .map(|k| k.with_bytes(|b| b.to_vec()));
        let mut ctx = OperatorContext::new();
        if let Some(b) = &hmac_bytes {
            ctx = ctx.with_hmac_key(b);
        }
        if let Some(c) = &self.keys.cipher {
            ctx = ctx.with_cipher(c);
        }
        if let Some(v) = vault {
            ctx = ctx.with_vault(v);
        }
        anonymize(text, found, &self.ops, &mut ctx).map(|out| Some(out.text))
    }
}

/// The org keys of the token map. Lookups are keyed hashes and values are sealed, so the
/// store holds neither a value nor anything a value can be checked against without the key.
/// Derived from the org's first key version: stable across rotation (a value keeps its
/// token), gone when the org's keys are destroyed.
pub(crate) struct TokenKeys {
    lookup: SecretKey,
    seal: SecretKey,
}

impl TokenKeys {
    /// The org's token keys (key-store I/O).
    pub async fn for_org(vault: &custos_crypto::KeyVault, org: &str) -> Result<Self, CoreError> {
        Ok(TokenKeys {
            lookup: vault
                .org_purpose_key(org, "custos/pii-token-lookup/v1")
                .await?,
            seal: vault
                .org_purpose_key(org, "custos/pii-token-seal/v1")
                .await?,
        })
    }

    /// The look-up key of (kind, value): HMAC-SHA256 under the org's lookup key, truncated to
    /// 128 bits (hex), which is plenty for a unique key within one org.
    pub fn lookup(&self, kind: EntityKind, value: &str) -> String {
        let kind = kind.as_str();
        let mut message = Vec::with_capacity(kind.len() + 1 + value.len());
        // Kind names hold no NUL, so (kind, value) pairs map to distinct messages.
        message.extend_from_slice(kind.as_bytes());
        message.push(0);
        message.extend_from_slice(value.as_bytes());
        self.lookup.keyed_digest_hex(&message)
    }

    /// Binds a sealed value to its org and pseudonym: a row copied to another org or token
    /// does not open.
    fn aad(org: &str, token: &str) -> Vec<u8> {
        format!("custos/pii-token/v1\0{org}\0{token}").into_bytes()
    }

    /// `value` sealed for the token row of `token`.
    pub fn seal(&self, org: &str, token: &str, value: &str) -> Vec<u8> {
        self.seal.seal(&Self::aad(org, token), value.as_bytes())
    }

    /// The value of a token row sealed by [`TokenKeys::seal`].
    pub fn open(&self, org: &str, token: &str, sealed: &[u8]) -> Result<String, CoreError> {
        let plain = self.seal.open(&Self::aad(org, token), sealed)?;
        String::from_utf8(plain)
            .map_err(|_| CoreError::internal(format!("PII token {token} holds invalid UTF-8")))
    }
}

/// Locks that queue this process's batches minting tokens in one org, striped by org.
///
/// New tokens take the next numbers of their kind, so two batches minting at once would claim
/// the same numbers and one would have to seal again. Holding the org's stripe from resolve to
/// commit makes minting batches of one org take turns instead (writes commit one at a time on
/// both backends anyway: SQLite has one writer, PostgreSQL serializes on the audit head).
/// Other processes sharing a PostgreSQL database are still caught by the store's
/// compare-and-set.
pub(crate) struct MintLocks([tokio::sync::Mutex<()>; 64]);

impl Default for MintLocks {
    fn default() -> Self {
        MintLocks(std::array::from_fn(|_| tokio::sync::Mutex::new(())))
    }
}

impl MintLocks {
    /// The lock of `org`'s stripe.
    pub async fn lock(&self, org: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        // A fixed (unseeded) hash: stripes only need to spread orgs, not resist anyone.
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(org);
        self.0[(h % self.0.len() as u64) as usize].lock().await
    }
}

/// The org tokens one batch uses: the pseudonym of every value it tokenizes, and the token
/// rows to write (or to find still present) with its records.
#[derive(Default)]
pub(crate) struct BatchTokens {
    by_value: HashMap<(EntityKind, String), String>,
    /// What the store writes and checks in the records' transaction.
    pub write: TokenBatch,
}

impl BatchTokens {
    /// A frozen vault with the tokens of `targets`; `None` when there are none. An internal
    /// error if one was not resolved (a bug: every target of the batch is resolved).
    pub fn vault_for(
        &self,
        targets: &[(EntityKind, String)],
    ) -> Result<Option<TokenVault>, CoreError> {
        if targets.is_empty() {
            return Ok(None);
        }
        let mut entries = Vec::with_capacity(targets.len());
        for (kind, value) in targets {
            let token = self.by_value.get(&(*kind, value.clone())).ok_or_else(|| {
                CoreError::internal(format!("a {kind} value of the batch has no org token"))
            })?;
            entries.push(VaultEntry {
                entity: *kind,
                value: value.clone(),
                token: token.clone(),
            });
        }
        let mut vault = TokenVault::from_entries(entries);
        vault.freeze();
        Ok(Some(vault))
    }
}

/// A write refused because its category blocks PII that was found in it.
pub(crate) struct PiiBlocked {
    /// Category of the refused record.
    pub category: String,
    /// Entity type → count.
    pub counts: BTreeMap<String, u64>,
    /// Entity types and JSON positions of the hits (never values).
    pub hits: Vec<String>,
}

impl crate::Custos {
    /// `category`'s PII rule with the org keys it needs; `None` if it has no rule.
    pub(crate) async fn scrub_plan(
        &self,
        scope: &custos_store::OrgScope,
        category: &custos_policy::Category,
    ) -> Result<Option<ScrubPlan>, CoreError> {
        let Some(rule) = &category.pii else {
            return Ok(None);
        };
        let kinds = kinds_of(rule)?;
        let operator = operator_for(rule.action);
        let org = scope.org_id();
        let hmac = match operator {
            Operator::Hash => Some(
                self.vault
                    .org_purpose_key(org, "custos/pii-hash/v1")
                    .await?,
            ),
            _ => None,
        };
        let cipher = match operator {
            Operator::Encrypt => Some(OrgValueCipher {
                key: self
                    .vault
                    .org_purpose_key(org, "custos/pii-encrypt/v1")
                    .await?,
                aad: format!("custos/pii-value/v1\0{org}").into_bytes(),
            }),
            _ => None,
        };
        let keys = ScrubKeys { hmac, cipher };
        Ok(Some(ScrubPlan {
            kinds,
            ops: Operators::uniform(operator),
            keys,
        }))
    }

    /// The org tokens of a batch's distinct `wanted` values (kind, value, subject ref of the
    /// first record holding it), in one store read: existing tokens as stored, the rest
    /// minted after the org's highest number per kind and sealed. Nothing is written here;
    /// the store writes new tokens only with the records that use them.
    pub(crate) async fn resolve_tokens(
        &self,
        scope: &custos_store::OrgScope,
        keys: &TokenKeys,
        wanted: Vec<(EntityKind, String, Option<String>)>,
    ) -> Result<BatchTokens, CoreError> {
        let mut out = BatchTokens::default();
        self.resolve_more_tokens(scope, keys, wanted, &mut out)
            .await?;
        Ok(out)
    }

    /// Like [`Custos::resolve_tokens`], adding to `out` the tokens of the `wanted` values it
    /// lacks: a streamed upload resolves window by window, and its new tokens number on
    /// from those it already minted (not yet stored).
    pub(crate) async fn resolve_more_tokens(
        &self,
        scope: &custos_store::OrgScope,
        keys: &TokenKeys,
        mut wanted: Vec<(EntityKind, String, Option<String>)>,
        out: &mut BatchTokens,
    ) -> Result<(), CoreError> {
        wanted.retain(|(k, v, _)| !out.by_value.contains_key(&(*k, v.clone())));
        if wanted.is_empty() {
            return Ok(());
        }
        let org = scope.org_id();
        let lookups: Vec<String> = wanted.iter().map(|(k, v, _)| keys.lookup(*k, v)).collect();
        let mut entities: Vec<String> = wanted
            .iter()
            .map(|(k, _, _)| k.as_str().to_string())
            .collect();
        entities.sort();
        entities.dedup();
        let resolution = self
            .store
            .for_org(scope)
            .await?
            .resolve_pii_tokens(scope, &lookups, &entities)
            .await?;
        let found: HashMap<String, String> = resolution.found.into_iter().collect();
        let mut last: HashMap<String, u64> = resolution.last_seq.into_iter().collect();
        for t in &out.write.minted {
            let n = last.entry(t.entity.clone()).or_insert(0);
            *n = (*n).max(t.seq);
        }
        let now = self.now();
        for ((kind, value, subject_ref), lookup) in wanted.into_iter().zip(lookups) {
            let token = match found.get(&lookup) {
                Some(token) => {
                    out.write.existing.push(lookup);
                    token.clone()
                }
                None => {
                    let n = last.entry(kind.as_str().to_string()).or_insert(0);
                    *n += 1;
                    let token = custos_pii::format_token(kind, *n);
                    out.write.minted.push(PiiToken {
                        token: token.clone(),
                        entity: kind.as_str().to_string(),
                        seq: *n,
                        lookup,
                        sealed_value: keys.seal(org, &token, &value),
                        subject_ref,
                        created_at: now,
                    });
                    token
                }
            };
            out.by_value.insert((kind, value), token);
        }
        Ok(())
    }

    /// A vault of the org tokens among `tokens`, opened, to reveal a record with. Tokens no
    /// longer stored (erased) are left out and so stay pseudonyms.
    pub(crate) async fn org_token_vault(
        &self,
        scope: &custos_store::OrgScope,
        tokens: &[String],
    ) -> Result<TokenVault, CoreError> {
        let org = scope.org_id();
        let keys = TokenKeys::for_org(&self.vault, org).await?;
        let rows = self
            .store
            .for_org(scope)
            .await?
            .pii_tokens(scope, tokens)
            .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let entity = row.entity.parse().map_err(|_| {
                CoreError::internal(format!("PII token {} has an unknown kind", row.token))
            })?;
            entries.push(VaultEntry {
                entity,
                value: keys.open(org, &row.token, &row.sealed_value)?,
                token: row.token,
            });
        }
        Ok(TokenVault::from_entries(entries))
    }

    /// Refuses a write whose category blocks PII: the refusal is audited, and nothing else is
    /// stored. The evaluator keeps it as a security event (in `security_logs`) and alert
    /// rules matching `pii.blocked` see it, both from the audit log.
    pub(crate) async fn refuse_pii(
        &self,
        caller: &crate::Caller,
        scope: &custos_store::OrgScope,
        blocked: PiiBlocked,
    ) -> CoreError {
        match self.record_refusal(caller, scope, &blocked).await {
            Ok(()) => CoreError::PiiBlocked(format!(
                "category `{}` blocks PII; found {}",
                blocked.category,
                blocked.hits.join(", ")
            )),
            Err(e) => e,
        }
    }

    async fn record_refusal(
        &self,
        caller: &crate::Caller,
        scope: &custos_store::OrgScope,
        blocked: &PiiBlocked,
    ) -> Result<(), CoreError> {
        let org = scope.org_id();
        let event = self
            .event(caller, custos_audit::AuditAction::PiiBlocked)
            .org(org)
            .target(Target::Category(blocked.category.to_string()))
            .outcome(custos_audit::Outcome::Denied)
            .details(Details::new().entities(blocked.counts.clone()));
        self.store.append_audit(&[event]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn keys() -> ScrubKeys {
        ScrubKeys {
            hmac: Some(SecretKey::generate()),
            cipher: Some(OrgValueCipher {
                key: SecretKey::generate(),
                aad: b"org".to_vec(),
            }),
        }
    }

    fn plan(kinds: &[EntityKind], operator: Operator) -> ScrubPlan {
        ScrubPlan {
            kinds: kinds.to_vec(),
            ops: Operators::uniform(operator),
            keys: keys(),
        }
    }

    fn scanner() -> &'static custos_pii::Scanner {
        static S: std::sync::OnceLock<custos_pii::Scanner> = std::sync::OnceLock::new();
        S.get_or_init(custos_pii::Scanner::new)
    }

    /// Scan then apply, as the write path does for rules that do not tokenize.
    fn scrub(plan: &ScrubPlan, content: Value) -> (Value, BTreeMap<String, u64>) {
        let scan = plan
            .scan(scanner(), &content, None)
            .unwrap_or_else(|(_, hits)| panic!("blocked: {hits:?}"));
        (
            plan.apply(content, scan.findings, None).unwrap(),
            scan.counts,
        )
    }

    /// Token keys of a fresh org.
    fn token_keys() -> TokenKeys {
        TokenKeys {
            lookup: SecretKey::generate(),
            seal: SecretKey::generate(),
        }
    }

    /// Tokens for `targets` numbered from `first` on, as `resolve_tokens` would mint them.
    fn tokens_for(targets: &[(EntityKind, String)], first: u64) -> BatchTokens {
        let mut out = BatchTokens::default();
        for (i, (kind, value)) in targets.iter().enumerate() {
            out.by_value.insert(
                (*kind, value.clone()),
                custos_pii::format_token(*kind, first + i as u64),
            );
        }
        out
    }

    #[test]
    fn redacts_nested_strings_and_counts_types() {
        let plan = plan(
            &[EntityKind::EmailAddress, EntityKind::UsSsn],
            Operator::Redact,
        );
        let content = json!({"a": "mail bob@example.com now", "b": ["ssn 536-22-8726", 7]});
        let (out, counts) = scrub(&plan, content);
        let text = out.to_string();
        assert!(
            !text.contains("bob@example.com") && !text.contains("536-22-8726"),
            "{text}"
        );
        assert_eq!(counts["EMAIL_ADDRESS"], 1);
        assert_eq!(counts["US_SSN"], 1);
        assert_eq!(out["b"][1], 7);
    }

    #[test]
    fn block_reports_types_and_positions_never_values() {
        let plan = plan(&[EntityKind::CreditCard], Operator::Block);
        let content = json!({"note": "card 4111 1111 1111 1111"});
        let Err((counts, hits)) = plan.scan(scanner(), &content, None) else {
            panic!("expected a block")
        };
        assert_eq!(counts["CREDIT_CARD"], 1);
        assert_eq!(hits.len(), 1);
        assert!(hits[0].starts_with("CREDIT_CARD at $.note["), "{hits:?}");
        assert!(!hits[0].contains("4111"));
    }

    #[test]
    fn metadata_keys_and_values_are_redacted_and_colliding_keys_get_suffixes() {
        let plan = plan(
            &[EntityKind::EmailAddress, EntityKind::UsSsn],
            Operator::Redact,
        );
        let metadata = json!({
            "a@example.com": 1,
            "b@example.org": {"note": "SSN 536-22-8726"},
            "plain": ["mail c@example.net", true],
        });
        let scan = plan
            .scan(scanner(), &json!("no pii"), Some(&metadata))
            .unwrap();
        assert_eq!(scan.counts["EMAIL_ADDRESS"], 3);
        assert_eq!(scan.counts["US_SSN"], 1);
        let out = plan.apply_metadata(metadata, scan.meta, None).unwrap();
        assert_eq!(
            out,
            json!({
                "[EMAIL_ADDRESS_REDACTED]": 1,
                "[EMAIL_ADDRESS_REDACTED] (2)": {"note": "SSN [US_SSN_REDACTED]"},
                "plain": ["mail [EMAIL_ADDRESS_REDACTED]", true],
            })
        );
    }

    #[test]
    fn a_renamed_key_never_replaces_a_kept_one() {
        let plan = plan(&[EntityKind::EmailAddress], Operator::Redact);
        let metadata = json!({"[EMAIL_ADDRESS_REDACTED]": "kept", "z@example.com": "moved"});
        let scan = plan.scan(scanner(), &json!(1), Some(&metadata)).unwrap();
        let out = plan.apply_metadata(metadata, scan.meta, None).unwrap();
        assert_eq!(
            out,
            json!({"[EMAIL_ADDRESS_REDACTED]": "kept", "[EMAIL_ADDRESS_REDACTED] (2)": "moved"})
        );
    }

    #[test]
    fn metadata_blocks_name_positions_and_hide_pii_keys() {
        let plan = plan(
            &[EntityKind::EmailAddress, EntityKind::UsSsn],
            Operator::Block,
        );
        let metadata = json!({"ok": "fine", "x@example.com": {"why": "SSN 536-22-8726"}});
        let Err((counts, hits)) = plan.scan(scanner(), &json!("clean"), Some(&metadata)) else {
            panic!("expected a block")
        };
        assert_eq!(counts["EMAIL_ADDRESS"], 1);
        assert_eq!(counts["US_SSN"], 1);
        assert_eq!(
            hits,
            vec![
                "EMAIL_ADDRESS at metadata{key 1}[0..13]",
                "US_SSN at metadata.{key 1}.why[4..15]",
            ]
        );
    }

    #[test]
    fn tokenized_metadata_keys_use_the_org_tokens() {
        let plan = plan(&[EntityKind::EmailAddress], Operator::Tokenize);
        let content = json!("from ana@example.com");
        let metadata = json!({"ana@example.com": "bo@example.com"});
        let scan = plan.scan(scanner(), &content, Some(&metadata)).unwrap();
        assert_eq!(scan.targets.len(), 2, "{:?}", scan.targets);
        let tokens = tokens_for(&scan.targets, 1);
        let mut vault = tokens.vault_for(&scan.targets).unwrap().unwrap();
        let out = plan
            .apply_metadata(metadata, scan.meta, Some(&mut vault))
            .unwrap();
        assert_eq!(out, json!({"<EMAIL_ADDRESS_1>": "<EMAIL_ADDRESS_2>"}));
    }

    #[test]
    fn encrypt_round_trips_through_the_cipher() {
        let plan = plan(&[EntityKind::EmailAddress], Operator::Encrypt);
        let (out, _) = scrub(&plan, json!("write to eve@example.org"));
        let text = out.as_str().unwrap();
        let token = text.split_whitespace().last().unwrap();
        assert_eq!(
            plan.keys.cipher.as_ref().unwrap().open(token).as_deref(),
            Some("eve@example.org")
        );
    }

    #[test]
    fn tokenize_uses_the_resolved_org_tokens_and_mints_nothing() {
        let plan = plan(
            &[EntityKind::EmailAddress, EntityKind::Person],
            Operator::Tokenize,
        );
        let content = json!({
            "a": "Ana Lopez wrote to ana@example.com",
            "b": ["ana@example.com again", 3],
        });
        let scan = plan.scan(scanner(), &content, None).unwrap();
        assert_eq!(
            scan.targets,
            vec![
                (EntityKind::Person, "Ana Lopez".to_string()),
                (EntityKind::EmailAddress, "ana@example.com".to_string()),
            ],
            "distinct values, first seen first"
        );
        let tokens = tokens_for(&scan.targets, 40);
        let mut vault = tokens.vault_for(&scan.targets).unwrap().unwrap();
        let out = plan
            .apply(content.clone(), scan.findings, Some(&mut vault))
            .unwrap();
        assert_eq!(
            out,
            json!({
                "a": "<PERSON_40> wrote to <EMAIL_ADDRESS_41>",
                "b": ["<EMAIL_ADDRESS_41> again", 3],
            })
        );
        assert_eq!(vault.len(), 2, "nothing minted beside the org tokens");
        assert_eq!(
            custos_pii::detokenize(out["a"].as_str().unwrap(), &vault),
            "Ana Lopez wrote to ana@example.com"
        );
    }

    #[test]
    fn an_unresolved_target_is_an_error_not_a_local_token() {
        let plan = plan(&[EntityKind::EmailAddress], Operator::Tokenize);
        let content = json!("to ana@example.com and bo@example.com");
        let scan = plan.scan(scanner(), &content, None).unwrap();
        let tokens = tokens_for(&scan.targets[..1], 1);
        assert!(tokens.vault_for(&scan.targets).is_err());
        let mut partial = tokens.vault_for(&scan.targets[..1]).unwrap().unwrap();
        let err = plan
            .apply(content, scan.findings, Some(&mut partial))
            .unwrap_err();
        assert!(!err.to_string().contains("bo@"), "{err}");
    }

    #[test]
    fn token_lookups_are_keyed_per_org_and_kind() {
        let (a, b) = (token_keys(), token_keys());
        let l = a.lookup(EntityKind::Person, "Ana Lopez");
        assert_eq!(l, a.lookup(EntityKind::Person, "Ana Lopez"), "stable");
        assert_eq!(l.len(), 32);
        assert!(!l.contains("Ana"));
        assert_ne!(l, b.lookup(EntityKind::Person, "Ana Lopez"), "per org");
        assert_ne!(
            l,
            a.lookup(EntityKind::EmailAddress, "Ana Lopez"),
            "per kind"
        );
        assert_ne!(l, a.lookup(EntityKind::Person, "Ana Lopez "), "exact value");
    }

    #[test]
    fn sealed_token_values_are_bound_to_org_and_token() {
        let keys = token_keys();
        let sealed = keys.seal("org-a", "<PERSON_1>", "Ana Lopez");
        assert!(!String::from_utf8_lossy(&sealed).contains("Ana"));
        assert_eq!(
            keys.open("org-a", "<PERSON_1>", &sealed).unwrap(),
            "Ana Lopez"
        );
        assert!(keys.open("org-a", "<PERSON_2>", &sealed).is_err());
        assert!(keys.open("org-b", "<PERSON_1>", &sealed).is_err());
        assert!(token_keys().open("org-a", "<PERSON_1>", &sealed).is_err());
    }

    fn pii_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{1,8}(\\.[a-z]{1,8})?@[a-z]{2,9}\\.(com|org|io)",
            Just("Anna Kowalski".to_string()),
            Just("(415) 555-2671".to_string()),
            Just("536-90-4399".to_string()),
            Just("4111 1111 1111 1111".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Tokenize with org tokens, then reveal with the same tokens: the exact original.
        #[test]
        fn tokenize_then_reveal_round_trips(
            // No '<' in the filler: a literal `<KIND_n>` typed by a user would be revealed too.
            prefix in "[^<]{0,24}",
            vals in proptest::collection::vec(pii_value(), 1..5),
            sep in "[a-z ,.;]{1,10}",
            first in 1u64..1_000_000,
        ) {
            let text = format!("{prefix} {} end", vals.join(&sep));
            let plan = plan(
                &[
                    EntityKind::EmailAddress,
                    EntityKind::Person,
                    EntityKind::PhoneNumber,
                    EntityKind::UsSsn,
                    EntityKind::CreditCard,
                ],
                Operator::Tokenize,
            );
            let content = json!({ "text": text, "n": 1 });
            let scan = plan.scan(scanner(), &content, None).unwrap();
            let tokens = tokens_for(&scan.targets, first);
            let mut vault = tokens.vault_for(&scan.targets).unwrap().unwrap_or_default();
            let out = plan.apply(content, scan.findings, Some(&mut vault)).unwrap();
            let masked = out["text"].as_str().unwrap();
            // A value that also occurs where the scanner does not see it (context) may stay
            // there, so only values occurring once are checked.
            for (_, value) in scan.targets.iter().filter(|(_, v)| text.matches(v.as_str()).count() == 1) {
                prop_assert!(!masked.contains(value.as_str()), "{value:?} left in {masked:?}");
            }
            prop_assert_eq!(custos_pii::detokenize(masked, &vault), text);
        }
    }
}
