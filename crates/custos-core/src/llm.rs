//! The LLM gateway's decisions: who may call which provider and model from where, what the
//! org's settings refuse, and the one metadata-only audit event each call leaves.
//!
//! The wire formats, scrubbing and streaming live in `custos-llm`, the HTTP relay in
//! `custos-api`; this module and [`crate::llm_calls`] hold what must be decided from the policy,
//! the org's settings and the authorization table, so the HTTP layer never decides on its own.

use std::collections::BTreeMap;

use custos_audit::Outcome;
use custos_crypto::SecretKey;
use custos_pii::EntityKind;
use custos_policy::{PiiAction, Provider, ProviderKind};

use custos_audit::{Details, Target};

use crate::authz::Operation;
use crate::settings::{valid_model_name, OrgSettings};
use crate::{Caller, CoreError, Custos, Principal};

/// Why the gateway refuses a call. Each has a stable reason code (audit, metrics, error
/// bodies); messages name the input and what is wrong, never content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmRefusal {
    /// Authentication or authorization refused the caller (already audited).
    #[error("{0}")]
    Core(#[from] CoreError),
    /// `{provider}` is not a provider of the policy.
    #[error(
        "no LLM provider named {0:?} is configured; see `custos policy show` ([llm] providers)"
    )]
    UnknownProvider(String),
    /// The route is not part of the provider's wire format.
    #[error("provider {provider:?} is of kind {kind}, which does not serve this route")]
    WrongKind {
        /// The provider's name.
        provider: String,
        /// Its kind.
        kind: &'static str,
    },
    /// The org's settings do not allow this provider.
    #[error("the org's settings do not allow provider {0:?} (setting llm_providers)")]
    ProviderNotAllowed(String),
    /// The provider serves none of the org's regions and the org does not allow transfer.
    #[error(
        "provider {provider:?} does not serve the org's region {region}; the org does not allow \
         data transfer outside it (setting allow_data_transfer)"
    )]
    RegionNotAllowed {
        /// The provider's name.
        provider: String,
        /// The org's region.
        region: String,
    },
    /// The body names no model, or a model name that is not one.
    #[error("`model` must be 1 to 128 letters, digits and - _ . : / @ +")]
    InvalidModel,
    /// The model name holds personal data: it would reach the provider, the audit log and the
    /// metrics, so it is refused rather than scrubbed (no provider has a model named so).
    #[error("`model` holds personal data ({}); send the provider's model name", .0.join(", "))]
    PiiInModel(Vec<String>),
    /// The policy or the org's settings do not allow this model.
    #[error("model {0:?} is not allowed for this org (policy models, setting llm_models)")]
    ModelNotAllowed(String),
    /// Private data mode refuses features that make the model reach outside.
    #[error(
        "the org's private data mode refuses requests that reach outside ({0}); remove it or \
         turn off setting private_data_mode"
    )]
    PrivateDataMode(String),
    /// The policy demands zero retention and the request asks the provider to keep it.
    #[error(
        "the policy demands zero retention ([llm] zero_retention), so the provider may not keep \
         the request: remove `{0}`"
    )]
    ProviderStorage(&'static str),
    /// A field is neither the value that keeps nothing nor absent, under zero retention.
    #[error(
        "`{field}` must be {expected} under the policy's zero retention ([llm] zero_retention)"
    )]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What it may be.
        expected: &'static str,
    },
    /// The policy's `[llm] pii` rule is `block` and the request holds these entity types.
    #[error("the request contains personal data the policy blocks: {}", .0.join(", "))]
    PiiBlocked(Vec<String>),
    /// The body is larger than the org allows.
    #[error("the request body is larger than {0} bytes (setting llm_max_request_bytes)")]
    TooLarge(u64),
    /// The org already runs as many calls as it allows.
    #[error(
        "the org already has {0} LLM calls running (setting llm_max_concurrency); retry shortly"
    )]
    Concurrency(u32),
    /// The body is not what the wire format needs.
    #[error("invalid request: {0}")]
    Malformed(String),
    /// Scanning or transforming the request failed; it was not forwarded (fail closed).
    #[error("the request could not be scanned for personal data, so it was not forwarded")]
    ScanFailed,
    /// The provider's key variable is not set in Custos's environment.
    #[error("provider {provider:?} has no API key: environment variable {var} is not set")]
    MissingUpstreamKey {
        /// The provider's name.
        provider: String,
        /// The variable named by `api_key_env`.
        var: String,
    },
}

impl LlmRefusal {
    /// The stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            LlmRefusal::Core(e) => e.code(),
            LlmRefusal::UnknownProvider(_) => "unknown_provider",
            LlmRefusal::WrongKind { .. } => "wrong_provider_kind",
            LlmRefusal::ProviderNotAllowed(_) => "provider_not_allowed",
            LlmRefusal::RegionNotAllowed { .. } => "region_not_allowed",
            LlmRefusal::InvalidModel | LlmRefusal::PiiInModel(_) => "invalid_model",
            LlmRefusal::InvalidField { .. } => "invalid_input",
            LlmRefusal::ModelNotAllowed(_) => "model_not_allowed",
            LlmRefusal::PrivateDataMode(_) => "private_data_mode",
            LlmRefusal::ProviderStorage(_) => "zero_retention",
            LlmRefusal::PiiBlocked(_) => "pii_blocked",
            LlmRefusal::TooLarge(_) => "request_too_large",
            LlmRefusal::Concurrency(_) => "concurrency_limit",
            LlmRefusal::Malformed(_) => "invalid_request",
            LlmRefusal::ScanFailed => "scan_failed",
            LlmRefusal::MissingUpstreamKey { .. } => "upstream_key_missing",
        }
    }
}

/// A call the gateway admitted: everything the HTTP layer needs to scrub and forward it.
pub struct LlmAdmission {
    /// The operation (which route).
    pub op: Operation,
    /// The caller's org.
    pub org: String,
    /// The upstream provider.
    pub provider: Provider,
    /// The org's settings.
    pub settings: OrgSettings,
    /// The org key placeholders are derived under (stable for the org's life).
    pub placeholder_key: SecretKey,
    /// The policy's `[llm] pii` rule: entity kinds and action; `None`: nothing is scanned.
    pub pii: Option<(Vec<EntityKind>, PiiAction)>,
    /// Whether the org keeps scrubbed prompts (never under zero retention).
    pub retain_prompts: bool,
    /// The data subject the call is made for (`X-Custos-Subject`), if the caller named one:
    /// its keyed reference goes into the call's audit event (so an incident counts whose data
    /// went to the provider) and a kept prompt becomes the subject's record (erased with it).
    pub subject: Option<CallSubject>,
}

/// The data subject a gateway call is made for.
#[derive(Clone)]
pub struct CallSubject {
    /// The caller's identifier for the person.
    pub id: String,
    /// Its keyed reference.
    pub subject_ref: String,
}

/// The category an LLM call's disclosure of a subject's data is counted under when the
/// policy keeps no prompts in a category of its own.
pub const LLM_DISCLOSURE_CATEGORY: &str = "llm";

impl std::fmt::Debug for LlmAdmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmAdmission")
            .field("op", &self.op)
            .field("org", &self.org)
            .field("provider", &self.provider.name)
            .finish_non_exhaustive()
    }
}

/// How a forwarded call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmResult {
    /// The provider answered (2xx) and the answer reached the caller.
    Ok,
    /// The provider answered with this error status.
    UpstreamStatus(u16),
    /// The provider did not answer in time.
    UpstreamTimeout,
    /// The provider could not be reached, or its connection broke.
    UpstreamUnreachable,
    /// The provider's stream could not be read or restored; the caller got an error event.
    StreamError,
    /// The caller went away before the end; the upstream request was cancelled.
    CallerGone,
}

impl LlmResult {
    fn as_reason(&self) -> String {
        match self {
            LlmResult::Ok => "ok".into(),
            LlmResult::UpstreamStatus(s) => format!("upstream_{s}"),
            LlmResult::UpstreamTimeout => "upstream_timeout".into(),
            LlmResult::UpstreamUnreachable => "upstream_unreachable".into(),
            LlmResult::StreamError => "stream_error".into(),
            LlmResult::CallerGone => "caller_gone".into(),
        }
    }
}

/// The metadata one call leaves in the audit log: never content.
#[derive(Debug, Clone)]
pub struct LlmCallReport {
    /// The model the caller asked for (a validated model name).
    pub model: String,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// Input tokens, as the provider reported them.
    pub input_tokens: Option<u64>,
    /// Output tokens, as the provider reported them.
    pub output_tokens: Option<u64>,
    /// Milliseconds from the request's arrival to the end of the answer.
    pub latency_ms: u64,
    /// Milliseconds the provider took (to its last byte).
    pub upstream_ms: u64,
    /// Values found per entity type.
    pub pii: BTreeMap<EntityKind, u64>,
    /// How it ended.
    pub result: LlmResult,
    /// The record keeping the scrubbed prompt, if the org keeps them.
    pub prompt_record: Option<String>,
}

impl LlmCallReport {
    /// The audit event's details: metadata only.
    pub(crate) fn details(&self) -> Details {
        let mut d = Details::new()
            .model(self.model.clone())
            .stream(self.stream)
            .latency_ms(self.latency_ms)
            .upstream_ms(self.upstream_ms)
            .result(self.result.as_reason());
        d.input_tokens = self.input_tokens;
        d.output_tokens = self.output_tokens;
        d.prompt_record = self.prompt_record.clone();
        if !self.pii.is_empty() {
            d = d.entities(
                self.pii
                    .iter()
                    .map(|(k, n)| (k.as_str().to_string(), *n))
                    .collect::<BTreeMap<_, _>>(),
            );
        }
        d
    }
}

/// The wire format a route's operation speaks, and the provider kind that serves it.
fn kind_for(op: Operation) -> Option<ProviderKind> {
    match op {
        Operation::LlmChatCompletions | Operation::LlmResponses => Some(ProviderKind::OpenAi),
        Operation::LlmMessages => Some(ProviderKind::Anthropic),
        _ => None,
    }
}

impl Custos {
    /// Admits a call of `op` to provider `name` by `caller`: authorization from the table, the
    /// provider exists and speaks the route's format, the org allows it, and it serves the
    /// org's region unless the org allows transfer. Refusals are audited.
    pub async fn llm_admit(
        &self,
        caller: &Caller,
        op: Operation,
        name: &str,
        subject: Option<&str>,
    ) -> Result<LlmAdmission, LlmRefusal> {
        let org = match &caller.principal {
            Principal::Member { scope, .. } => scope.org_id().to_string(),
            // The admin token acts in no org; the table refuses it (and audits that).
            _ => {
                self.authorize_global(caller, op).await?;
                return Err(CoreError::internal("the table admits the admin token").into());
            }
        };
        let grant = self.authorize(caller, op, &org).await?;
        let provider = match self.llm_provider_for(&grant, op, name) {
            Ok(p) => p,
            Err(refusal) => {
                return Err(self.llm_refuse(caller, op, &org, name, None, refusal).await)
            }
        };
        let placeholder_key = self
            .vault
            .org_purpose_key(&org, "custos/llm-placeholder/v1")
            .await
            .map_err(CoreError::from)?;
        let pii = match &self.policy.llm.pii {
            Some(rule) => Some((crate::pii::kinds_of(rule)?, rule.action)),
            None => None,
        };
        let retain_prompts = grant.settings.llm_retain_prompts && !self.policy.llm.zero_retention;
        let subject = match subject {
            Some(id) => {
                crate::records::check_subject(&Some(id.to_string()))
                    .map_err(|e| LlmRefusal::Malformed(format!("X-Custos-Subject: {e}")))?;
                Some(CallSubject {
                    id: id.to_string(),
                    subject_ref: self
                        .vault
                        .subject_ref(&org, id)
                        .await
                        .map_err(CoreError::from)?,
                })
            }
            None => None,
        };
        Ok(LlmAdmission {
            subject,
            op,
            org,
            provider,
            settings: grant.settings,
            placeholder_key,
            pii,
            retain_prompts,
        })
    }

    /// The provider `name` if the route, the org's settings and its region allow it.
    fn llm_provider_for(
        &self,
        grant: &crate::access::Grant,
        op: Operation,
        name: &str,
    ) -> Result<Provider, LlmRefusal> {
        let provider = self
            .policy
            .llm
            .providers
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| LlmRefusal::UnknownProvider(target_name(name).to_string()))?;
        if let Some(kind) = kind_for(op) {
            if provider.kind != kind {
                return Err(LlmRefusal::WrongKind {
                    provider: provider.name.clone(),
                    kind: provider.kind.as_str(),
                });
            }
        }
        if let Some(allowed) = &grant.settings.llm_providers {
            if !allowed.iter().any(|a| a == name) {
                return Err(LlmRefusal::ProviderNotAllowed(name.to_string()));
            }
        }
        if !provider.regions.contains(&grant.region) && !grant.settings.allow_data_transfer {
            return Err(LlmRefusal::RegionNotAllowed {
                provider: name.to_string(),
                region: grant.region.clone(),
            });
        }
        Ok(provider.clone())
    }

    /// Checks the model a call names against the policy's provider list and the org's
    /// settings (not audited: [`Custos::llm_prepare`] audits the refusal).
    pub(crate) fn llm_check_model(
        &self,
        admission: &LlmAdmission,
        model: Option<&str>,
    ) -> Result<(), LlmRefusal> {
        let model = model
            .filter(|m| valid_model_name(m))
            .ok_or(LlmRefusal::InvalidModel)?;
        let found = self.scanner().scan_for(model, &model_kinds(admission));
        if !found.is_empty() {
            let kinds: std::collections::BTreeSet<&str> =
                found.iter().map(|f| f.entity.as_str()).collect();
            return Err(LlmRefusal::PiiInModel(
                kinds.into_iter().map(str::to_string).collect(),
            ));
        }
        let provider = &admission.provider;
        let in_policy = provider.models.is_empty() || provider.models.iter().any(|m| m == model);
        let in_settings = admission
            .settings
            .llm_models
            .as_ref()
            .is_none_or(|list| list.iter().any(|m| m == model));
        if in_policy && in_settings {
            Ok(())
        } else {
            Err(LlmRefusal::ModelNotAllowed(model.to_string()))
        }
    }

    /// The models the org may use through the admitted provider; `None` when neither the
    /// policy nor the org restricts them (the provider's own list applies).
    pub fn llm_models(&self, admission: &LlmAdmission) -> Option<Vec<String>> {
        let provider = &admission.provider;
        match (&admission.settings.llm_models, provider.models.is_empty()) {
            (None, true) => None,
            (None, false) => Some(provider.models.clone()),
            (Some(org), true) => Some(org.clone()),
            (Some(org), false) => Some(
                org.iter()
                    .filter(|m| provider.models.contains(m))
                    .cloned()
                    .collect(),
            ),
        }
    }

    /// Records a refused call (`denied`, with its reason code and, for blocked PII, the
    /// entity types) and returns the refusal. If the audit append fails, that is returned.
    pub async fn llm_refuse(
        &self,
        caller: &Caller,
        op: Operation,
        org: &str,
        provider: &str,
        model: Option<&str>,
        refusal: LlmRefusal,
    ) -> LlmRefusal {
        if matches!(refusal, LlmRefusal::Core(_)) {
            // Authentication and authorization refusals are audited where they happen.
            return refusal;
        }
        let mut details = Details::new();
        // A model name that holds personal data stays out of the log like any other value.
        let model = model.filter(|_| !matches!(refusal, LlmRefusal::PiiInModel(_)));
        if let Some(m) = model.filter(|m| valid_model_name(m)) {
            details = details.model(m);
        }
        if let LlmRefusal::PiiBlocked(kinds) = &refusal {
            details = details.pii_types(kinds.iter().map(ToString::to_string).collect::<Vec<_>>());
        }
        let event = self
            .event(caller, op.rule().action)
            .org(org)
            .target(Target::Llm(target_name(provider).to_string()))
            .outcome(Outcome::Denied)
            .reason(refusal.reason())
            .details(details);
        match self.store.append_audit(&[event]).await {
            Ok(()) => refusal,
            Err(e) => CoreError::from(e).into(),
        }
    }

    /// Keeps the call's scrubbed request (placeholders, never values) as a record of the
    /// policy's LLM category, when the org opted in and the policy allows it; returns the
    /// record's id. Stored by Custos itself (the `system` actor), audited as any record.
    pub async fn llm_retain_prompt(
        &self,
        admission: &LlmAdmission,
        model: &str,
        scrubbed: &serde_json::Value,
    ) -> Result<Option<String>, CoreError> {
        let category = match (&self.policy.llm.category, admission.retain_prompts) {
            (Some(c), true) if !self.policy.llm.zero_retention => c.clone(),
            _ => return Ok(None),
        };
        let record = crate::NewRecord {
            category,
            subject: admission.subject.as_ref().map(|s| s.id.clone()),
            content: serde_json::json!({
                "provider": admission.provider.name,
                "model": model,
                "request": scrubbed,
            }),
            metadata: None,
        };
        let system = Caller::new(Principal::System);
        let created = self.create_record(&system, &admission.org, record).await?;
        Ok(Some(created.id))
    }
}

/// The kinds a model name is checked for: the policy's `[llm] pii` kinds and, always, the
/// identifiers no model name ever holds (even when the policy scans prompts for none).
fn model_kinds(admission: &LlmAdmission) -> Vec<EntityKind> {
    let mut kinds = vec![
        EntityKind::EmailAddress,
        EntityKind::PhoneNumber,
        EntityKind::CreditCard,
        EntityKind::UsSsn,
    ];
    if let Some((policy, _)) = &admission.pii {
        kinds.extend(
            policy
                .iter()
                .filter(|k| !kinds.contains(k))
                .copied()
                .collect::<Vec<_>>(),
        );
    }
    kinds
}

/// A provider name from the route, safe for the audit log: unknown names are caller input.
fn target_name(provider: &str) -> &str {
    let ok = !provider.is_empty()
        && provider.len() <= 64
        && provider
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        provider
    } else {
        "invalid"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_reason_holds_metadata_only() {
        let report = LlmCallReport {
            model: "gpt-4o-mini".into(),
            stream: true,
            input_tokens: Some(12),
            output_tokens: None,
            latency_ms: 40,
            upstream_ms: 38,
            pii: BTreeMap::from([(EntityKind::EmailAddress, 2), (EntityKind::Person, 1)]),
            result: LlmResult::UpstreamStatus(500),
            prompt_record: None,
        };
        assert_eq!(
            report.details().summary(),
            "entities={\"EMAIL_ADDRESS\":2,\"PERSON\":1} input_tokens=12 latency_ms=40 \
             model=gpt-4o-mini result=upstream_500 stream=true upstream_ms=38"
        );
    }

    #[test]
    fn provider_names_from_the_route_are_sanitized() {
        assert_eq!(target_name("openai"), "openai");
        assert_eq!(target_name("a b@c"), "invalid");
        assert_eq!(target_name(&"x".repeat(65)), "invalid");
    }
}
