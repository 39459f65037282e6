//! An admitted gateway call, from its body to its audit event: the checks the body must pass
//! (model, private data mode, zero retention), its PII scrubbed under the policy's `[llm] pii`
//! rule, and the one metadata-only event each forwarded call leaves, appended in groups.
//!
//! The HTTP layer reads the body, holds the concurrency slot and relays bytes; everything it
//! would otherwise decide about a call is decided here.

use std::sync::{Arc, Mutex};

use custos_audit::{AuditEvent, Outcome};
use custos_llm::{PlaceholderKey, ScrubError, Scrubbed, Scrubber, StorageRefusal, WireFormat};

use custos_audit::Target;

use crate::llm::{LlmAdmission, LlmCallReport, LlmRefusal, LlmResult};
use crate::{Caller, Custos};

/// Most call events appended in one transaction.
const CALL_EVENTS_BATCH: usize = 512;

/// What the gateway forwards once a call's body passed every check.
#[derive(Debug)]
pub struct PreparedCall {
    /// The model it names.
    pub model: String,
    /// Whether it asks for a stream.
    pub stream: bool,
    /// What scrubbing replaced (placeholders to restore, counts per entity kind).
    pub scrubbed: Scrubbed,
}

/// Finished calls' events waiting to be appended, and whether a task is appending them.
#[derive(Debug, Default)]
pub(crate) struct CallEvents {
    queue: Mutex<(Vec<AuditEvent>, bool)>,
}

impl Custos {
    /// Checks an admitted call's body and scrubs it in place, in this order: the model (named,
    /// allowed, holding no personal data), private data mode (no feature that reaches outside
    /// the request), zero retention (nothing asks the provider to keep it), then PII under the
    /// policy's `[llm] pii` rule (fail closed). A refusal is audited, with the model when it
    /// is known, and returned.
    pub async fn llm_prepare(
        &self,
        caller: &Caller,
        admission: &LlmAdmission,
        format: WireFormat,
        json: &mut serde_json::Value,
    ) -> Result<PreparedCall, LlmRefusal> {
        let model = json
            .get("model")
            .and_then(|m| m.as_str())
            .map(str::to_string);
        let checked = self
            .llm_check_model(admission, model.as_deref())
            .and_then(|()| self.llm_check_body(admission, format, json));
        let outcome = checked.and_then(|()| self.llm_scrub(admission, format, json));
        match outcome {
            Ok(scrubbed) => Ok(PreparedCall {
                model: model.unwrap_or_default(),
                stream: json.get("stream").and_then(|s| s.as_bool()) == Some(true),
                scrubbed,
            }),
            Err(refusal) => Err(self
                .llm_refuse(
                    caller,
                    admission.op,
                    &admission.org,
                    &admission.provider.name,
                    model.as_deref(),
                    refusal,
                )
                .await),
        }
    }

    /// Private data mode and zero retention, on the request body.
    fn llm_check_body(
        &self,
        admission: &LlmAdmission,
        format: WireFormat,
        json: &mut serde_json::Value,
    ) -> Result<(), LlmRefusal> {
        if admission.settings.private_data_mode {
            if let Some(feature) = custos_llm::outside_reach(format, json) {
                return Err(LlmRefusal::PrivateDataMode(feature));
            }
        }
        if self.policy.llm.zero_retention {
            custos_llm::forbid_provider_storage(format, json).map_err(|e| match e {
                StorageRefusal::Retains(field) => LlmRefusal::ProviderStorage(field),
                StorageRefusal::Invalid { field, expected } => {
                    LlmRefusal::InvalidField { field, expected }
                }
            })?;
        }
        Ok(())
    }

    /// Scrubs the request in place under the policy's `[llm] pii` rule.
    fn llm_scrub(
        &self,
        admission: &LlmAdmission,
        format: WireFormat,
        json: &mut serde_json::Value,
    ) -> Result<Scrubbed, LlmRefusal> {
        let Some((kinds, action)) = &admission.pii else {
            return Ok(Scrubbed::default());
        };
        let action = match action {
            custos_policy::PiiAction::None => return Ok(Scrubbed::default()),
            custos_policy::PiiAction::Redact => custos_llm::PiiAction::Redact,
            custos_policy::PiiAction::Mask => custos_llm::PiiAction::Mask,
            custos_policy::PiiAction::Block => custos_llm::PiiAction::Block,
            // A model cannot use ciphertext or a bare hash; a keyed placeholder is both stable
            // and reversible by the gateway alone, which is what these actions promise.
            custos_policy::PiiAction::Tokenize
            | custos_policy::PiiAction::Encrypt
            | custos_policy::PiiAction::Hash => custos_llm::PiiAction::Tokenize,
        };
        let key = admission.placeholder_key.with_bytes(PlaceholderKey::new);
        let scrubber = Scrubber {
            scanner: self.scanner(),
            kinds,
            action,
            key: &key,
        };
        custos_llm::scrub_request(format, json, &scrubber).map_err(|e| match e {
            ScrubError::Blocked { kinds } => {
                LlmRefusal::PiiBlocked(kinds.iter().map(|k| k.as_str().to_string()).collect())
            }
            ScrubError::Malformed(field) => LlmRefusal::Malformed(field),
            ScrubError::Engine(detail) => {
                tracing::error!(error = %detail, "LLM gateway: PII scan failed; call refused");
                LlmRefusal::ScanFailed
            }
            // A failure this version does not know: refuse the call rather than pass it on.
            other => {
                tracing::error!(error = %other, "LLM gateway: PII scan failed; call refused");
                LlmRefusal::ScanFailed
            }
        })
    }

    /// Records a forwarded call: its one metadata-only event is queued, and one task at a
    /// time appends the queue; events that arrive while it commits go together in its next
    /// transaction (under load many calls share one commit; alone, a call's event is appended
    /// at once). Returns at once: the answer never waits for its audit commit.
    pub fn llm_finish(
        self: &Arc<Self>,
        caller: &Caller,
        admission: &LlmAdmission,
        report: &LlmCallReport,
    ) {
        let outcome = if report.result == LlmResult::Ok {
            Outcome::Success
        } else {
            Outcome::Failed
        };
        let mut details = report.details();
        if let Some(subject) = &admission.subject {
            details = details.subject_ref(subject.subject_ref.clone()).category(
                self.policy
                    .llm
                    .category
                    .clone()
                    .unwrap_or_else(|| crate::llm::LLM_DISCLOSURE_CATEGORY.to_string()),
            );
        }
        let event = self
            .event(caller, admission.op.rule().action)
            .org(&admission.org)
            .target(Target::Llm(admission.provider.name.to_string()))
            .outcome(outcome)
            .details(details);
        {
            let mut queue = self.llm_calls.queue.lock().expect("call events lock");
            queue.0.push(event);
            if queue.1 {
                return;
            }
            queue.1 = true;
        }
        let custos = self.clone();
        tokio::spawn(async move {
            loop {
                let batch = {
                    let mut queue = custos.llm_calls.queue.lock().expect("call events lock");
                    if queue.0.is_empty() {
                        queue.1 = false;
                        return;
                    }
                    let n = queue.0.len().min(CALL_EVENTS_BATCH);
                    queue.0.drain(..n).collect::<Vec<_>>()
                };
                if let Err(e) = custos.store.append_audit(&batch).await {
                    tracing::error!(error = %e, events = batch.len(),
                        "LLM gateway: call audit events could not be appended");
                }
            }
        });
    }
}
