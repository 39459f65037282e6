//! Errors of the LLM gateway in the providers' own shapes, so the official SDKs raise their
//! usual exception classes: OpenAI `{"error":{"message","type","param","code"}}`, Anthropic
//! `{"type":"error","error":{"type","message"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use custos_core::{CoreError, LlmRefusal};
use serde_json::json;

/// Which provider's error shape a route answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// OpenAI's (Chat Completions, Responses, models of an `openai` provider).
    OpenAi,
    /// Anthropic's (Messages, models of an `anthropic` provider).
    Anthropic,
}

/// Marks a response as already in a provider's shape: the problem-document middleware leaves it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProviderShaped;

/// A gateway error: status, stable code, message (never content).
#[derive(Debug, Clone)]
pub(crate) struct GatewayError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for `Retry-After` (429).
    pub retry_after: Option<String>,
}

impl GatewayError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GatewayError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The gateway's status for a refusal.
    pub fn from_refusal(refusal: &LlmRefusal) -> Self {
        let status = match refusal {
            LlmRefusal::Core(e) => core_status(e),
            LlmRefusal::UnknownProvider(_) | LlmRefusal::WrongKind { .. } => StatusCode::NOT_FOUND,
            LlmRefusal::ProviderNotAllowed(_)
            | LlmRefusal::RegionNotAllowed { .. }
            | LlmRefusal::ModelNotAllowed(_)
            | LlmRefusal::PrivateDataMode(_)
            | LlmRefusal::ProviderStorage(_) => StatusCode::FORBIDDEN,
            LlmRefusal::InvalidModel
            | LlmRefusal::PiiInModel(_)
            | LlmRefusal::InvalidField { .. }
            | LlmRefusal::PiiBlocked(_)
            | LlmRefusal::Malformed(_) => StatusCode::BAD_REQUEST,
            LlmRefusal::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            LlmRefusal::Concurrency(_) => StatusCode::TOO_MANY_REQUESTS,
            LlmRefusal::ScanFailed | LlmRefusal::MissingUpstreamKey { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            // A refusal this version does not know is the service's fault, not the caller's.
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if let LlmRefusal::Core(CoreError::Internal { detail, .. }) = refusal {
            tracing::error!(error = %detail, "LLM gateway: internal error");
        }
        tracing::debug!(reason = refusal.reason(), "LLM call refused");
        let mut e = GatewayError::new(status, refusal.reason(), refusal.to_string());
        if matches!(refusal, LlmRefusal::Concurrency(_)) {
            e.retry_after = Some("1".into());
        }
        e
    }

    /// The error as a JSON body in `dialect`'s shape.
    pub fn body(&self, dialect: Dialect) -> serde_json::Value {
        match dialect {
            Dialect::OpenAi => json!({"error": {
                "message": self.message,
                "type": openai_type(self.status),
                "param": null,
                "code": self.code,
            }}),
            Dialect::Anthropic => json!({"type": "error", "error": {
                "type": anthropic_type(self.status),
                "message": self.message,
            }}),
        }
    }

    /// The error as one server-sent event, for a stream that already started.
    pub fn event(&self, dialect: Dialect) -> Bytes {
        let data = self.body(dialect).to_string();
        Bytes::from(match dialect {
            Dialect::OpenAi => format!("data: {data}\n\n"),
            Dialect::Anthropic => format!("event: error\ndata: {data}\n\n"),
        })
    }

    /// The error as a complete response.
    pub fn response(&self, dialect: Dialect) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body(dialect).to_string(),
        )
            .into_response();
        if let Some(v) = self
            .retry_after
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response.extensions_mut().insert(ProviderShaped);
        response
    }
}

/// A JSON answer in a provider's shape (the problem-document middleware leaves it alone).
pub(crate) fn provider_json(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.extensions_mut().insert(ProviderShaped);
    r
}

fn core_status(e: &CoreError) -> StatusCode {
    match e {
        CoreError::Unauthenticated => StatusCode::UNAUTHORIZED,
        CoreError::Forbidden(_) | CoreError::MfaRequired(_) | CoreError::OrgTerminated(_) => {
            StatusCode::FORBIDDEN
        }
        CoreError::NotFound(_) => StatusCode::NOT_FOUND,
        CoreError::Conflict(_) => StatusCode::CONFLICT,
        CoreError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// OpenAI's `error.type` for a status.
fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

/// Anthropic's `error.type` for a status (its documented list).
fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_take_the_shapes_the_sdks_parse() {
        let e = GatewayError::from_refusal(&LlmRefusal::Concurrency(4));
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        let openai = e.body(Dialect::OpenAi);
        assert_eq!(openai["error"]["code"], "concurrency_limit");
        assert_eq!(openai["error"]["type"], "rate_limit_error");
        let anthropic = e.body(Dialect::Anthropic);
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "rate_limit_error");
        let r = e.response(Dialect::OpenAi);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let blocked = GatewayError::from_refusal(&LlmRefusal::PiiBlocked(vec!["US_SSN".into()]));
        assert_eq!(blocked.status, StatusCode::BAD_REQUEST);
        assert!(blocked.message.contains("US_SSN"));
        let big = GatewayError::from_refusal(&LlmRefusal::TooLarge(1024));
        assert_eq!(
            big.body(Dialect::Anthropic)["error"]["type"],
            "request_too_large"
        );
    }
}
