//! The LLM gateway's routes: the providers' own wire formats under `/llm/{provider}/v1/...`, so
//! an official SDK works by changing its base URL and using a Custos API key.
//!
//! Each call: authenticate (the key as the SDK sends it), admit (authorization table, provider,
//! region, org settings), read the body within the org's limit, have `custos-core` check and
//! scrub it (model, private data mode, zero retention, PII; fail closed), take a concurrency
//! slot, then forward ([`crate::llm_forward`]); `custos-core` records the finished call. Every
//! decision is made in `custos-core`; this module only relays HTTP. Every refusal is audited
//! and answered in the provider's error shape.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use custos_core::authz::Operation;
use custos_core::{Caller, LlmAdmission, LlmRefusal, PreparedCall};
use custos_llm::{Scrubbed, WireFormat};
use custos_policy::ProviderKind;

use crate::llm_errors::{Dialect, GatewayError};
use crate::llm_metrics::LlmMetrics;
use crate::AppState;

/// The gateway's shared state: the pooled upstream client, per-org in-flight counts, metrics.
pub struct Gateway {
    /// Upstream HTTP client (rustls, pooled connections).
    pub(crate) client: reqwest::Client,
    inflight: Mutex<HashMap<String, Arc<AtomicU32>>>,
    /// The gateway's metrics.
    pub metrics: LlmMetrics,
}

impl Default for Gateway {
    fn default() -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("the TLS backend initializes");
        Gateway {
            client,
            inflight: Mutex::new(HashMap::new()),
            metrics: LlmMetrics::default(),
        }
    }
}

/// One of the org's concurrency slots; given back on drop.
pub(crate) struct Slot(Arc<AtomicU32>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gateway {
    /// Takes one of `org`'s `limit` slots, or `None` when all are in use.
    fn slot(&self, org: &str, limit: u32) -> Option<Slot> {
        let counter = self
            .inflight
            .lock()
            .expect("gateway lock")
            .entry(org.to_string())
            .or_default()
            .clone();
        let taken = counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        // Not `then_some`: a Slot built for a refused call would give back a slot on drop.
        taken.then(|| Slot(counter))
    }
}

/// The gateway's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/llm/{provider}/v1/chat/completions",
            post(chat_completions),
        )
        .route("/llm/{provider}/v1/responses", post(responses))
        .route("/llm/{provider}/v1/messages", post(messages))
        .route("/llm/{provider}/v1/models", get(models))
}

async fn chat_completions(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    req: Request,
) -> Response {
    call(state, Operation::LlmChatCompletions, provider, req).await
}

async fn responses(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    req: Request,
) -> Response {
    call(state, Operation::LlmResponses, provider, req).await
}

async fn messages(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    req: Request,
) -> Response {
    call(state, Operation::LlmMessages, provider, req).await
}

/// The wire format of a call route.
fn format_of(op: Operation) -> WireFormat {
    match op {
        Operation::LlmResponses => WireFormat::Responses,
        Operation::LlmMessages => WireFormat::AnthropicMessages,
        _ => WireFormat::ChatCompletions,
    }
}

/// The path under the provider's base URL.
pub(crate) fn upstream_path(op: Operation) -> &'static str {
    match op {
        Operation::LlmResponses => "/v1/responses",
        Operation::LlmMessages => "/v1/messages",
        Operation::LlmModels => "/v1/models",
        _ => "/v1/chat/completions",
    }
}

/// The error shape of a route: fixed for the call routes; for models, the provider's kind
/// (or, for an unknown provider, the way the SDK sent its key).
fn dialect_of(state: &AppState, op: Operation, provider: &str, parts: &Parts) -> Dialect {
    match op {
        Operation::LlmMessages => Dialect::Anthropic,
        Operation::LlmModels => {
            let kind = state
                .custos
                .policy()
                .llm
                .providers
                .iter()
                .find(|p| p.name == provider)
                .map(|p| p.kind);
            match kind {
                Some(ProviderKind::Anthropic) => Dialect::Anthropic,
                Some(ProviderKind::OpenAi) => Dialect::OpenAi,
                None if parts.headers.contains_key("x-api-key") => Dialect::Anthropic,
                None => Dialect::OpenAi,
            }
        }
        _ => Dialect::OpenAi,
    }
}

/// The Custos key as the SDKs send it: `x-api-key` (Anthropic) or `Authorization: Bearer`.
fn presented_key(parts: &Parts) -> Option<&str> {
    let from_header = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let from_bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    from_header
        .or(from_bearer)
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Authenticates and admits a call; a refusal comes back as the response to send.
/// Names the data subject a call is made for (an app acting for its signed-in user).
const SUBJECT_HEADER: &str = "x-custos-subject";

async fn admit(
    state: &AppState,
    op: Operation,
    provider: &str,
    parts: &Parts,
    dialect: Dialect,
) -> Result<(Caller, LlmAdmission), Response> {
    let refuse = |r: LlmRefusal| {
        state.gateway.metrics.refusal(r.reason());
        GatewayError::from_refusal(&r).response(dialect)
    };
    let Some(token) = presented_key(parts) else {
        return Err(refuse(custos_core::CoreError::Unauthenticated.into()));
    };
    let caller = crate::caller_from(parts, state, token)
        .await
        .map_err(|e| refuse(e.into()))?;
    let subject = match parts.headers.get(SUBJECT_HEADER).map(|v| v.to_str()) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => {
            let r = LlmRefusal::Malformed(format!("{SUBJECT_HEADER} must be text"));
            return Err(refuse(r));
        }
    };
    let admission = state
        .custos
        .llm_admit(&caller, op, provider, subject)
        .await
        .map_err(refuse)?;
    Ok((caller, admission))
}

/// Everything a forwarded call carries from admission to its audit event.
pub(crate) struct Admitted {
    pub caller: Caller,
    pub admission: LlmAdmission,
    pub dialect: Dialect,
    pub format: WireFormat,
    pub model: String,
    pub stream: bool,
    pub scrubbed: Scrubbed,
    pub started: Instant,
    /// Held until the call is finished (given back when the call drops).
    pub _slot: Slot,
    pub prompt_record: Option<String>,
}

async fn call(state: AppState, op: Operation, provider: String, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let dialect = dialect_of(&state, op, &provider, &parts);
    let (caller, admission) = match admit(&state, op, &provider, &parts, dialect).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let format = format_of(op);
    let org = admission.org.clone();
    // From here on every refusal is audited with what is known of the call.
    let refuse = |refusal: LlmRefusal, model: Option<String>| {
        let state = state.clone();
        let caller = caller.clone();
        let org = org.clone();
        let provider = provider.clone();
        async move {
            let refusal = state
                .custos
                .llm_refuse(&caller, op, &org, &provider, model.as_deref(), refusal)
                .await;
            state.gateway.metrics.refusal(refusal.reason());
            GatewayError::from_refusal(&refusal).response(dialect)
        }
    };
    let limit = admission.settings.llm_max_request_bytes;
    let bytes = match read_body(&parts, body, limit).await {
        Ok(b) => b,
        Err(r) => return refuse(r, None).await,
    };
    let mut json: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => {
            let r = LlmRefusal::Malformed("the body must be a JSON object".into());
            return refuse(r, None).await;
        }
    };
    drop(bytes);
    let prepared = match state
        .custos
        .llm_prepare(&caller, &admission, format, &mut json)
        .await
    {
        Ok(p) => p,
        Err(refusal) => {
            state.gateway.metrics.refusal(refusal.reason());
            return GatewayError::from_refusal(&refusal).response(dialect);
        }
    };
    let PreparedCall {
        model,
        stream,
        scrubbed,
    } = prepared;
    // After the checks and the scrub: a refused call never held a slot.
    let Some(slot) = state
        .gateway
        .slot(&admission.org, admission.settings.llm_max_concurrency)
    else {
        let r = LlmRefusal::Concurrency(admission.settings.llm_max_concurrency);
        return refuse(r, Some(model)).await;
    };
    // Kept before forwarding: an org that promised to keep prompts gets no call without one.
    let prompt_record = match state
        .custos
        .llm_retain_prompt(&admission, &model, &json)
        .await
    {
        Ok(id) => id,
        Err(e) => return refuse(LlmRefusal::Core(e), Some(model)).await,
    };
    let call = Admitted {
        caller,
        admission,
        dialect,
        format,
        model,
        stream,
        scrubbed,
        started,
        _slot: slot,
        prompt_record,
    };
    crate::llm_forward::forward(state, call, &parts, json).await
}

/// Reads the body, refusing one larger than `limit` bytes without reading past it.
async fn read_body(
    parts: &Parts,
    body: axum::body::Body,
    limit: u64,
) -> Result<bytes::Bytes, LlmRefusal> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(LlmRefusal::TooLarge(limit));
    }
    axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|_| LlmRefusal::TooLarge(limit))
}

/// `GET /llm/{provider}/v1/models`: the models this org may use, in the provider's list
/// shape; when neither the policy nor the org restricts them, the provider's own list.
async fn models(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let op = Operation::LlmModels;
    let dialect = dialect_of(&state, op, &provider, &parts);
    let (_, admission) = match admit(&state, op, &provider, &parts, dialect).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    match state.custos.llm_models(&admission) {
        Some(list) => {
            crate::llm_errors::provider_json(StatusCode::OK, model_list(dialect, &list).to_string())
        }
        None => crate::llm_forward::forward_models(&state, &admission, dialect).await,
    }
}

/// A list of model ids in the provider's shape.
fn model_list(dialect: Dialect, models: &[String]) -> serde_json::Value {
    use serde_json::json;
    match dialect {
        Dialect::OpenAi => json!({
            "object": "list",
            "data": models.iter().map(|m| json!({
                "id": m, "object": "model", "created": 0, "owned_by": "custos"
            })).collect::<Vec<_>>(),
        }),
        Dialect::Anthropic => json!({
            "data": models.iter().map(|m| json!({
                "type": "model", "id": m, "display_name": m,
                "created_at": "1970-01-01T00:00:00Z"
            })).collect::<Vec<_>>(),
            "has_more": false,
            "first_id": models.first(),
            "last_id": models.last(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_org_and_a_refusal_gives_none_back() {
        let g = Gateway::default();
        let a = g.slot("org-a", 2).expect("first");
        let b = g.slot("org-a", 2).expect("second");
        assert!(g.slot("org-a", 2).is_none());
        assert!(g.slot("org-a", 2).is_none(), "a refusal freed a slot");
        let other = g.slot("org-b", 1).expect("another org has its own");
        drop(a);
        let c = g
            .slot("org-a", 2)
            .expect("a finished call gives its slot back");
        assert!(g.slot("org-a", 2).is_none());
        drop((b, c, other));
        assert!(g.slot("org-a", 2).is_some());
    }

    #[test]
    fn keys_are_taken_as_each_sdk_sends_them() {
        let req = |h: &[(&str, &str)]| {
            let mut b = axum::http::Request::builder();
            for (k, v) in h {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap().into_parts().0
        };
        assert_eq!(presented_key(&req(&[("x-api-key", "k1")])), Some("k1"));
        assert_eq!(
            presented_key(&req(&[("authorization", "Bearer k2")])),
            Some("k2")
        );
        assert_eq!(presented_key(&req(&[("authorization", "Basic k3")])), None);
        assert_eq!(presented_key(&req(&[("x-api-key", " ")])), None);
    }
}
