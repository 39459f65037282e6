//! The PII step of the write path: apply a category's `pii` rule to content before it is
//! sealed, and count what was found (types and counts only, never values).

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

use custos_crypto::SecretKey;
use custos_pii::{
    anonymize, AnonymizeError, EntityKind, Operator, OperatorContext, Operators, TokenVault,
    ValueCipher,
};
use custos_policy::{PiiAction, PiiRule};

use crate::CoreError;

/// A non-personal description of a blocked write, for the audit log and alert sinks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PiiAlert {
    /// Org id.
    pub org: String,
    /// Category the write targeted.
    pub category: String,
    /// Entity type → count of values found.
    pub entities: BTreeMap<String, u64>,
}

/// Receives alerts (a webhook in production); must not block.
pub trait AlertSink: Send + Sync + 'static {
    /// Delivers one alert, best effort.
    fn alert(&self, alert: &PiiAlert);
}

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
                CoreError::Internal(format!("policy PII entity {name:?} has no recognizer"))
            })
        })
        .collect()
}

/// Keys and vault one scrub pass may need.
pub(crate) struct ScrubKeys {
    pub hmac: Option<SecretKey>,
    pub cipher: Option<OrgValueCipher>,
}

/// The outcome of scrubbing one value.
pub(crate) struct Scrubbed {
    pub content: Value,
    pub counts: BTreeMap<String, u64>,
    /// Tokens minted for this record (sealed with it, so authorized readers can reverse them).
    pub vault: Option<TokenVault>,
}

/// Walks every string in `content`, detecting `kinds` and applying `operator`.
/// On `block`, returns the entity counts and the JSON paths of the hits (never values).
pub(crate) fn scrub_value(
    scanner: &custos_pii::Scanner,
    kinds: &[EntityKind],
    operator: Operator,
    keys: &ScrubKeys,
    content: Value,
) -> Result<Scrubbed, (BTreeMap<String, u64>, Vec<String>)> {
    let ops = Operators::uniform(operator.clone());
    let mut counts = BTreeMap::new();
    let mut blocked = Vec::new();
    let mut vault = TokenVault::new();
    let content = walk(content, "$", &mut |path, text| {
        let findings = scanner.scan_for(text, kinds);
        if findings.is_empty() {
            return None;
        }
        for f in &findings {
            *counts.entry(f.entity.as_str().to_string()).or_insert(0) += 1;
        }
        let mut ctx = OperatorContext::new();
        let hmac_bytes;
        if let Some(k) = &keys.hmac {
            hmac_bytes = k.with_bytes(|b| b.to_vec());
            ctx = ctx.with_hmac_key(&hmac_bytes);
        }
        if let Some(c) = &keys.cipher {
            ctx = ctx.with_cipher(c);
        }
        ctx = ctx.with_vault(&mut vault);
        match anonymize(text, &findings, &ops, &mut ctx) {
            Ok(out) => Some(out.text),
            Err(AnonymizeError::Blocked(b)) => {
                for (kind, start, end) in b.hits {
                    blocked.push(format!("{kind} at {path}[{start}..{end}]"));
                }
                None
            }
            Err(other) => {
                // Missing key/cipher cannot happen (the caller supplies what the action
                // needs); if it does, refuse rather than store unscrubbed text.
                blocked.push(format!("{path}: {other}"));
                None
            }
        }
    });
    if !blocked.is_empty() {
        return Err((counts, blocked));
    }
    Ok(Scrubbed {
        content,
        counts,
        vault: (!vault.is_empty()).then_some(vault),
    })
}

fn walk(value: Value, path: &str, f: &mut dyn FnMut(&str, &str) -> Option<String>) -> Value {
    match value {
        Value::String(s) => match f(path, &s) {
            Some(replaced) => Value::String(replaced),
            None => Value::String(s),
        },
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| walk(v, &format!("{path}[{i}]"), f))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let child = format!("{path}.{k}");
                    (k, walk(v, &child, f))
                })
                .collect(),
        ),
        other => other,
    }
}

/// A category's PII rule made ready to apply: entity kinds, operator and the org keys the
/// operator needs, resolved once per batch.
pub(crate) struct ScrubPlan {
    kinds: Vec<EntityKind>,
    operator: Operator,
    keys: ScrubKeys,
}

impl ScrubPlan {
    /// Applies the rule to one value (see [`scrub_value`]).
    pub fn apply(
        &self,
        scanner: &custos_pii::Scanner,
        content: Value,
    ) -> Result<Scrubbed, (BTreeMap<String, u64>, Vec<String>)> {
        scrub_value(
            scanner,
            &self.kinds,
            self.operator.clone(),
            &self.keys,
            content,
        )
    }
}

impl Scrubbed {
    /// Content of a category without a PII rule.
    pub fn untouched(content: Value) -> Self {
        Scrubbed {
            content,
            counts: BTreeMap::new(),
            vault: None,
        }
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
    pub(crate) fn scrub_plan(
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
        let keys = ScrubKeys {
            hmac: matches!(operator, Operator::Hash)
                .then(|| self.vault.org_purpose_key(org, "custos/pii-hash/v1"))
                .transpose()?,
            cipher: matches!(operator, Operator::Encrypt)
                .then(|| -> Result<_, CoreError> {
                    Ok(OrgValueCipher {
                        key: self.vault.org_purpose_key(org, "custos/pii-encrypt/v1")?,
                        aad: format!("custos/pii-value/v1\0{org}").into_bytes(),
                    })
                })
                .transpose()?,
        };
        Ok(Some(ScrubPlan {
            kinds,
            operator,
            keys,
        }))
    }

    /// Refuses a write whose category blocks PII: the refusal is audited (and, if the policy
    /// has a `security_logs` category, written there as a security event) in one
    /// transaction, alert sinks are told, and nothing else is stored.
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
        let summary: Vec<String> = blocked
            .counts
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        let event = self
            .event(caller, "pii.blocked")
            .org(org)
            .target(format!("category:{}", blocked.category))
            .outcome(custos_audit::Outcome::Denied)
            .reason(summary.join(","));
        let mut rows = Vec::new();
        if let Some(security) = self.policy.category("security_logs") {
            let now = self.now();
            let envelope = crate::records::Envelope {
                content: serde_json::json!({
                    "event": "pii.blocked",
                    "category": blocked.category,
                    "entities": blocked.counts,
                    "request_id": caller.request_id,
                }),
                subject: None,
                metadata: Value::Null,
                file_name: None,
                content_type: None,
                tokens: None,
            };
            rows.push(self.sealed_row(
                scope,
                &mut crate::records::BatchKeys::default(),
                crate::records::RowSpec {
                    id: uuid::Uuid::now_v7().to_string(),
                    category: &security.name,
                    subject_ref: None,
                    now,
                    due: security.due_times(now, None),
                    pii: &BTreeMap::new(),
                },
                Some(envelope),
            )?);
        }
        self.store.insert_records(scope, &rows, &[event]).await?;
        if let Some(sink) = &self.alerts {
            sink.alert(&PiiAlert {
                org: org.to_string(),
                category: blocked.category.clone(),
                entities: blocked.counts.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn redacts_nested_strings_and_counts_types() {
        let scanner = custos_pii::Scanner::new();
        let kinds = [EntityKind::EmailAddress, EntityKind::UsSsn];
        let content = json!({"a": "mail bob@example.com now", "b": ["ssn 536-22-8726", 7]});
        let out = scrub_value(&scanner, &kinds, Operator::Redact, &keys(), content).unwrap();
        let text = out.content.to_string();
        assert!(
            !text.contains("bob@example.com") && !text.contains("536-22-8726"),
            "{text}"
        );
        assert_eq!(out.counts["EMAIL_ADDRESS"], 1);
        assert_eq!(out.counts["US_SSN"], 1);
        assert_eq!(out.content["b"][1], 7);
    }

    #[test]
    fn block_reports_types_and_positions_never_values() {
        let scanner = custos_pii::Scanner::new();
        let content = json!({"note": "card 4111 1111 1111 1111"});
        let Err((counts, hits)) = scrub_value(
            &scanner,
            &[EntityKind::CreditCard],
            Operator::Block,
            &keys(),
            content,
        ) else {
            panic!("expected a block")
        };
        assert_eq!(counts["CREDIT_CARD"], 1);
        assert_eq!(hits.len(), 1);
        assert!(hits[0].starts_with("CREDIT_CARD at $.note["), "{hits:?}");
        assert!(!hits[0].contains("4111"));
    }

    #[test]
    fn encrypt_round_trips_through_the_cipher() {
        let keys = keys();
        let scanner = custos_pii::Scanner::new();
        let out = scrub_value(
            &scanner,
            &[EntityKind::EmailAddress],
            Operator::Encrypt,
            &keys,
            json!("write to eve@example.org"),
        )
        .unwrap();
        let text = out.content.as_str().unwrap();
        let token = text.split_whitespace().last().unwrap();
        assert_eq!(
            keys.cipher.as_ref().unwrap().open(token).as_deref(),
            Some("eve@example.org")
        );
    }
}
