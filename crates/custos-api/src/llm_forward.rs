//! Forwarding an admitted, scrubbed call upstream and bringing the answer back restored.
//!
//! Streams are relayed event by event through a small channel: a task reads the provider's
//! bytes, parses server-sent events, restores placeholders ([`custos_llm::StreamRestorer`]
//! holds back at most a possible placeholder prefix) and sends each event on at once. When the
//! caller goes away the channel closes, the task stops and drops the upstream response, which
//! cancels the upstream request. Memory per call is bounded by the event size limit and the
//! channel's capacity. Nothing of the content is logged; the one audit event is metadata.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use custos_core::{LlmAdmission, LlmCallReport, LlmRefusal, LlmResult};
use custos_llm::{SseParser, StreamRestorer, Usage};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::llm_errors::{provider_json, Dialect, GatewayError, ProviderShaped};
use crate::llm_metrics::CallSample;
use crate::llm_routes::{upstream_path, Admitted};
use crate::AppState;

/// Largest single server-sent event accepted from a provider.
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;
/// Largest non-streamed provider answer accepted.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;
/// Events in flight between the upstream reader and the caller.
const CHANNEL_EVENTS: usize = 16;
/// Caller headers passed on to the provider (API versions and beta flags the SDKs send).
const FORWARDED_HEADERS: &[&str] = &["anthropic-version", "anthropic-beta", "openai-beta"];

/// A request to the provider with its credentials and the caller's version headers.
fn upstream_request(
    state: &AppState,
    admission: &LlmAdmission,
    method: reqwest::Method,
    path: &str,
    parts: Option<&Parts>,
) -> Result<reqwest::RequestBuilder, LlmRefusal> {
    let provider = &admission.provider;
    let url = format!("{}{path}", provider.base_url.trim_end_matches('/'));
    let mut rb = state.gateway.client.request(method, url);
    if let Some(var) = &provider.api_key_env {
        // Read per call and never stored: rotating the variable needs no restart.
        let key = std::env::var(var).map_err(|_| LlmRefusal::MissingUpstreamKey {
            provider: provider.name.clone(),
            var: var.clone(),
        })?;
        rb = match provider.kind {
            custos_policy::ProviderKind::Anthropic => rb.header("x-api-key", key),
            custos_policy::ProviderKind::OpenAi => rb.bearer_auth(key),
        };
    }
    if let Some(parts) = parts {
        for name in FORWARDED_HEADERS {
            if let Some(v) = parts.headers.get(*name) {
                rb = rb.header(*name, v.clone());
            }
        }
    }
    if provider.kind == custos_policy::ProviderKind::Anthropic
        && parts.is_none_or(|p| !p.headers.contains_key("anthropic-version"))
    {
        rb = rb.header("anthropic-version", "2023-06-01");
    }
    Ok(rb)
}

/// Sends the scrubbed body upstream and answers the caller.
pub(crate) async fn forward(
    state: AppState,
    call: Admitted,
    parts: &Parts,
    body: serde_json::Value,
) -> Response {
    let timeout = Duration::from_secs(state.custos.policy().llm.timeout_seconds);
    let rb = match upstream_request(
        &state,
        &call.admission,
        reqwest::Method::POST,
        upstream_path(call.admission.op),
        Some(parts),
    ) {
        Ok(rb) => rb,
        Err(r) => return refuse_late(&state, call, r).await,
    };
    let bytes = serde_json::to_vec(&body).expect("a JSON value serializes");
    drop(body);
    let rb = rb
        .header(header::CONTENT_TYPE, "application/json")
        .body(bytes);
    let added_before = call.started.elapsed();
    // Metadata only, at every level: never a prompt, a completion or a header value.
    tracing::trace!(
        provider = %call.admission.provider.name,
        model = %call.model,
        stream = call.stream,
        placeholders = call.scrubbed.placeholders.len(),
        "LLM call forwarded"
    );
    let upstream_started = Instant::now();
    let sent = tokio::time::timeout(timeout, rb.send()).await;
    let response = match sent {
        Err(_) => return upstream_failed(state, call, LlmResult::UpstreamTimeout, added_before),
        Ok(Err(_)) => {
            return upstream_failed(state, call, LlmResult::UpstreamUnreachable, added_before)
        }
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    if !status.is_success() {
        return upstream_status(state, call, response, added_before, upstream_started).await;
    }
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if is_stream {
        stream(
            state,
            call,
            response,
            timeout,
            added_before,
            upstream_started,
        )
    } else {
        whole(
            state,
            call,
            response,
            timeout,
            added_before,
            upstream_started,
        )
        .await
    }
}

/// A refusal after the concurrency slot was taken (a missing upstream key).
async fn refuse_late(state: &AppState, call: Admitted, refusal: LlmRefusal) -> Response {
    let refusal = state
        .custos
        .llm_refuse(
            &call.caller,
            call.admission.op,
            &call.admission.org,
            &call.admission.provider.name,
            Some(&call.model),
            refusal,
        )
        .await;
    state.gateway.metrics.refusal(refusal.reason());
    GatewayError::from_refusal(&refusal).response(call.dialect)
}

/// The provider answered with an error status: 429 and 5xx become the gateway's own errors
/// (with `Retry-After` passed on); other client errors are passed through as the provider
/// wrote them (they hold placeholders at most, never original values).
async fn upstream_status(
    state: AppState,
    call: Admitted,
    response: reqwest::Response,
    added: Duration,
    upstream_started: Instant,
) -> Response {
    let status = response.status().as_u16();
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let answer = match status {
        429 => {
            let mut e = GatewayError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "upstream_rate_limited",
                format!("provider {} is rate limiting", call.admission.provider.name),
            );
            e.retry_after = retry_after
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            e.response(call.dialect)
        }
        500..=599 => GatewayError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!(
                "provider {} answered {status}",
                call.admission.provider.name
            ),
        )
        .response(call.dialect),
        _ => provider_json(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            read_limited(response, MAX_ANSWER_BYTES)
                .await
                .unwrap_or_default(),
        ),
    };
    let upstream = upstream_started.elapsed();
    finish(
        &state,
        call,
        LlmResult::UpstreamStatus(status),
        Usage::default(),
        added,
        upstream,
    );
    answer
}

/// The provider could not be reached or did not answer in time.
fn upstream_failed(
    state: AppState,
    call: Admitted,
    result: LlmResult,
    added: Duration,
) -> Response {
    let (status, code, what) = match result {
        LlmResult::UpstreamTimeout => (
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "did not answer in time",
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "upstream_unreachable",
            "could not be reached",
        ),
    };
    let e = GatewayError::new(
        status,
        code,
        format!("provider {} {what}", call.admission.provider.name),
    );
    let dialect = call.dialect;
    let upstream = call.started.elapsed().saturating_sub(added);
    finish(&state, call, result, Usage::default(), added, upstream);
    e.response(dialect)
}

/// Reads at most `limit` bytes of a provider's answer.
async fn read_limited(response: reqwest::Response, limit: usize) -> Option<Bytes> {
    let mut out = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.ok()?;
        if out.len() + chunk.len() > limit {
            return None;
        }
        out.extend_from_slice(&chunk);
    }
    Some(Bytes::from(out))
}

/// A non-streamed answer: read whole, restore, send.
async fn whole(
    state: AppState,
    call: Admitted,
    response: reqwest::Response,
    timeout: Duration,
    added_before: Duration,
    upstream_started: Instant,
) -> Response {
    let body = match tokio::time::timeout(timeout, read_limited(response, MAX_ANSWER_BYTES)).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            return upstream_failed(state, call, LlmResult::UpstreamUnreachable, added_before)
        }
        Err(_) => return upstream_failed(state, call, LlmResult::UpstreamTimeout, added_before),
    };
    let upstream = upstream_started.elapsed();
    let restore_started = Instant::now();
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        let e = GatewayError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_invalid",
            format!(
                "provider {} answered with a body that is not JSON",
                call.admission.provider.name
            ),
        );
        let dialect = call.dialect;
        finish(
            &state,
            call,
            LlmResult::StreamError,
            Usage::default(),
            added_before,
            upstream,
        );
        return e.response(dialect);
    };
    drop(body);
    custos_llm::restore_response(call.format, &mut json, &call.scrubbed.placeholders);
    let usage = custos_llm::usage_of(call.format, &json);
    let bytes = serde_json::to_vec(&json).expect("a JSON value serializes");
    drop(json);
    let added = added_before + restore_started.elapsed();
    finish(&state, call, LlmResult::Ok, usage, added, upstream);
    provider_json(StatusCode::OK, bytes)
}

/// A streamed answer: relayed event by event.
fn stream(
    state: AppState,
    call: Admitted,
    response: reqwest::Response,
    idle: Duration,
    added_before: Duration,
    upstream_started: Instant,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL_EVENTS);
    let map = Arc::new(call.scrubbed.placeholders.clone());
    let mut restorer = StreamRestorer::new(call.format, map);
    let dialect = call.dialect;
    tokio::spawn(async move {
        let mut parser = SseParser::new(MAX_EVENT_BYTES);
        let mut upstream = response.bytes_stream();
        let mut transform = Duration::ZERO;
        let mut first_pending = true;
        let result = 'relay: loop {
            // A caller that goes away cancels at once, not at the provider's next byte.
            let next = tokio::select! {
                next = tokio::time::timeout(idle, upstream.next()) => next,
                () = tx.closed() => break LlmResult::CallerGone,
            };
            let t = Instant::now();
            let events = match next {
                Err(_) => break LlmResult::UpstreamTimeout,
                Ok(Some(Err(_))) => break LlmResult::UpstreamUnreachable,
                Ok(Some(Ok(chunk))) => parser.push(&chunk),
                Ok(None) => match parser.finish() {
                    Ok(mut last) => {
                        let mut out = Vec::new();
                        for e in last.drain(..) {
                            match restorer.on_event(e) {
                                Ok(v) => out.extend(v),
                                Err(_) => break 'relay LlmResult::StreamError,
                            }
                        }
                        out.extend(restorer.finish());
                        transform += t.elapsed();
                        if !out.is_empty() && tx.send(Ok(joined(&out))).await.is_err() {
                            break 'relay LlmResult::CallerGone;
                        }
                        break LlmResult::Ok;
                    }
                    Err(_) => break LlmResult::StreamError,
                },
            };
            let Ok(events) = events else {
                break LlmResult::StreamError;
            };
            let mut out = Vec::with_capacity(events.len());
            let mut t = t;
            for e in events {
                match restorer.on_event(e) {
                    Ok(v) => out.extend(v),
                    Err(_) => break 'relay LlmResult::StreamError,
                }
                // The caller's first byte does not wait for the rest of the first read.
                if first_pending && !out.is_empty() {
                    first_pending = false;
                    transform += t.elapsed();
                    if tx.send(Ok(joined(&out))).await.is_err() {
                        break 'relay LlmResult::CallerGone;
                    }
                    out.clear();
                    t = Instant::now();
                }
            }
            transform += t.elapsed();
            // The events of one upstream read leave together: one write, not one per event.
            if !out.is_empty() && tx.send(Ok(joined(&out))).await.is_err() {
                break 'relay LlmResult::CallerGone;
            }
        };
        // Dropping the upstream body here closes its connection: the provider stops.
        drop(upstream);
        let upstream_time = upstream_started.elapsed();
        if !matches!(result, LlmResult::Ok | LlmResult::CallerGone) {
            let (code, what) = match result {
                LlmResult::UpstreamTimeout => ("upstream_timeout", "stopped answering"),
                LlmResult::StreamError => {
                    ("stream_error", "sent a stream the gateway could not read")
                }
                _ => ("upstream_unreachable", "broke the connection"),
            };
            let e = GatewayError::new(
                StatusCode::BAD_GATEWAY,
                code,
                format!("provider {} {what}", call.admission.provider.name),
            );
            let _ = tx.send(Ok(e.event(dialect))).await;
        }
        let usage = restorer.usage();
        finish(
            &state,
            call,
            result,
            usage,
            added_before + transform,
            upstream_time,
        );
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut r = Response::new(Body::from_stream(body));
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r.extensions_mut().insert(ProviderShaped);
    r
}

/// Events as the bytes of one write.
fn joined(events: &[custos_llm::SseEvent]) -> Bytes {
    match events {
        [one] => one.to_bytes(),
        many => {
            let mut out = Vec::new();
            for e in many {
                out.extend_from_slice(&e.to_bytes());
            }
            Bytes::from(out)
        }
    }
}

/// Metrics and the one audit event of a forwarded call, appended off the caller's path. The
/// concurrency slot is given back when `call` drops here.
fn finish(
    state: &AppState,
    call: Admitted,
    result: LlmResult,
    usage: Usage,
    added: Duration,
    upstream: Duration,
) {
    let report = LlmCallReport {
        model: call.model.clone(),
        stream: call.stream,
        input_tokens: usage.input,
        output_tokens: usage.output,
        latency_ms: call.started.elapsed().as_millis() as u64,
        upstream_ms: upstream.as_millis() as u64,
        pii: call.scrubbed.counts.clone(),
        result,
        prompt_record: call.prompt_record.clone(),
    };
    state.gateway.metrics.call(CallSample {
        provider: &call.admission.provider.name,
        model: &call.model,
        known_models: &call.admission.provider.models,
        result: report_result(result),
        added,
        upstream,
        input_tokens: usage.input,
        output_tokens: usage.output,
    });
    state
        .custos
        .llm_finish(&call.caller, &call.admission, &report);
}

fn report_result(result: LlmResult) -> &'static str {
    match result {
        LlmResult::Ok => "ok",
        LlmResult::UpstreamStatus(_) => "upstream_status",
        LlmResult::UpstreamTimeout => "upstream_timeout",
        LlmResult::UpstreamUnreachable => "upstream_unreachable",
        LlmResult::StreamError => "stream_error",
        LlmResult::CallerGone => "caller_gone",
    }
}

/// `GET /v1/models` from the provider, passed through, when nothing restricts the models.
pub(crate) async fn forward_models(
    state: &AppState,
    admission: &LlmAdmission,
    dialect: Dialect,
) -> Response {
    let timeout = Duration::from_secs(state.custos.policy().llm.timeout_seconds);
    let rb = match upstream_request(state, admission, reqwest::Method::GET, "/v1/models", None) {
        Ok(rb) => rb,
        Err(r) => return GatewayError::from_refusal(&r).response(dialect),
    };
    let answer = match tokio::time::timeout(timeout, rb.send()).await {
        Ok(Ok(r)) if r.status().is_success() => read_limited(r, MAX_ANSWER_BYTES).await,
        _ => None,
    };
    match answer {
        Some(body) => provider_json(StatusCode::OK, body),
        None => GatewayError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!(
                "provider {} did not list its models",
                admission.provider.name
            ),
        )
        .response(dialect),
    }
}
