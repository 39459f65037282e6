//! RFC 9457 problem details: every error response is `application/problem+json` with a
//! stable `code`, a title per code, and the request id as `instance`.
//!
//! `detail` names the input and what is wrong with it, but echoes at most a short excerpt of
//! what the caller sent, with PII replaced by its entity type: error messages end up in
//! client logs and bug reports, where personal data must not travel.

use std::sync::OnceLock;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use custos_core::CoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Most characters of one piece of caller input a `detail` may echo.
pub const MAX_ECHO_CHARS: usize = 64;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`urn:custos:problem:<code>`).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type (one per `code`).
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong with this request, naming the input (caller input is echoed only as a
    /// short, PII-scrubbed excerpt).
    pub detail: String,
    /// Stable machine-readable code.
    pub code: String,
    /// This occurrence: the request id as `urn:uuid:<id>` (also in `x-request-id`).
    pub instance: String,
}

/// An error on its way to becoming a problem response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    /// Seconds for a `Retry-After` header (`rate_limited`).
    retry_after: Option<u64>,
}

impl ApiError {
    /// A problem with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// A 400 `invalid_input` naming `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::from(CoreError::invalid(field, message))
    }

    /// The problem document of this error, without `instance` (set by the request layer).
    /// Seconds for a `Retry-After` header, when the problem asks the caller to wait.
    pub(crate) fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    pub(crate) fn problem_doc(&self) -> Problem {
        Problem {
            type_uri: format!("urn:custos:problem:{}", self.code),
            title: title(self.code).to_string(),
            status: self.status.as_u16(),
            detail: scrub_detail(&self.detail),
            code: self.code.to_string(),
            instance: String::new(),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let status = match &e {
            CoreError::Unauthenticated => StatusCode::UNAUTHORIZED,
            CoreError::Forbidden(_)
            | CoreError::GrantRequired(_)
            | CoreError::OrgSuspended(_)
            | CoreError::MfaRequired(_)
            | CoreError::SignInRefused { .. }
            | CoreError::TransferNotAllowed(_) => StatusCode::FORBIDDEN,
            CoreError::NotFound(_) => StatusCode::NOT_FOUND,
            CoreError::Invalid { .. }
            | CoreError::UrlNotAllowed { .. }
            | CoreError::UnknownCategory(_) => StatusCode::BAD_REQUEST,
            CoreError::Conflict(_) | CoreError::MoveInProgress(_) => StatusCode::CONFLICT,
            CoreError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            CoreError::Erased | CoreError::OrgTerminated(_) => StatusCode::GONE,
            CoreError::PiiBlocked(_) => StatusCode::UNPROCESSABLE_ENTITY,
            CoreError::IdentityProviderUnavailable(_) => StatusCode::BAD_GATEWAY,
            CoreError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            // An error this version does not know is answered like an internal one.
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // The detail of a 500 may name internals (SQL, paths); log it once, answer with a
        // generic message. `detail` already carries its cause's message, so the log line
        // does not walk `source()` again.
        let detail = match &e {
            CoreError::Internal { detail, .. } => {
                tracing::error!(error = %detail, "internal error");
                "internal error".to_string()
            }
            _ if status == StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(error = %e, "internal error");
                "internal error".to_string()
            }
            _ => e.to_string(),
        };
        let retry_after = match &e {
            CoreError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        ApiError {
            status,
            code: e.code(),
            detail,
            retry_after,
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let (status, code) = match &r {
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            JsonRejection::JsonDataError(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
            _ => (StatusCode::BAD_REQUEST, "malformed_json"),
        };
        ApiError::new(status, code, format!("request body: {}", r.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("query string: {}", r.body_text()),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("path: {}", r.body_text()),
        )
    }
}

/// The title of each code: stable, human-readable, never request-specific.
pub fn title(code: &str) -> &'static str {
    match code {
        "unauthenticated" => "Missing or invalid credentials",
        "forbidden" => "Not allowed",
        "mfa_required" => "Multi-factor authentication required",
        "grant_required" => "A support grant the org approved is required",
        "not_found" => "Not found",
        "method_not_allowed" => "Method not allowed on this route",
        "invalid_input" => "Invalid input",
        "url_not_allowed" => "URL not allowed",
        "malformed_json" => "Malformed JSON body",
        "unknown_category" => "Unknown data category",
        "unsupported_media_type" => "Unsupported media type",
        "payload_too_large" => "Request body too large",
        "conflict" => "Conflicts with the current state",
        "org_terminated" => "Org terminated",
        "org_suspended" => "Org suspended",
        "erased" => "Content erased",
        "pii_blocked" => "Content refused by the PII rule",
        "data_transfer_not_allowed" => "The org does not allow its data to leave its region",
        "rate_limited" => "Too many failed attempts; try again later",
        "move_in_progress" => "The org is being moved to another region",
        "sign_in_refused" => "Sign-in refused",
        "identity_provider_unavailable" => "The identity provider is unavailable",
        "unavailable" => "Service unavailable",
        "not_ready" => "A service this instance needs does not answer",
        _ => "Internal error",
    }
}

/// The code of an error response that was not built as a problem (framework rejections).
pub(crate) fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_client_error() => "invalid_input",
        _ => "internal",
    }
}

/// A problem response for `status` whose detail is a framework's message.
pub(crate) fn from_status(status: StatusCode, detail: &str) -> ApiError {
    let code = code_for_status(status);
    let detail = if detail.trim().is_empty() || status.is_server_error() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        detail.to_string()
    };
    ApiError::new(status, code, detail)
}

/// The PII scanner shared by the request layer (details, client request ids).
pub(crate) fn scanner() -> &'static custos_pii::Scanner {
    static S: OnceLock<custos_pii::Scanner> = OnceLock::new();
    S.get_or_init(custos_pii::Scanner::new)
}

/// Bounds every echo of caller input in `detail` and replaces PII in it by its entity type.
///
/// Caller input reaches a detail quoted (`` `x` ``, `"x"`, from our messages and serde's) or
/// as a bare word (an id in "record X not found"); each quoted segment and each word is cut to
/// [`MAX_ECHO_CHARS`] characters, control characters are dropped, then the PII scanner runs
/// over the result.
pub fn scrub_detail(detail: &str) -> String {
    let bounded = bound_echoes(detail);
    let findings = scanner().scan(&bounded);
    let mut out = String::with_capacity(bounded.len());
    let mut at = 0;
    for f in findings {
        if f.byte_start < at {
            continue;
        }
        out.push_str(&bounded[at..f.byte_start]);
        out.push('<');
        out.push_str(f.entity.as_str());
        out.push('>');
        at = f.byte_end;
    }
    out.push_str(&bounded[at..]);
    out
}

fn bound_echoes(detail: &str) -> String {
    let mut out = String::with_capacity(detail.len().min(1024));
    // Characters since the last quote or whitespace boundary.
    let mut run = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in detail.chars() {
        let boundary = match quote {
            Some(q) if !escaped && c == q => {
                quote = None;
                true
            }
            Some(_) => false,
            None if c == '`' || c == '"' => {
                quote = Some(c);
                true
            }
            None => c.is_whitespace(),
        };
        escaped = quote == Some('"') && !escaped && c == '\\';
        if boundary {
            run = 0;
            out.push(if c.is_control() { ' ' } else { c });
            continue;
        }
        if c.is_control() {
            continue;
        }
        run += 1;
        if run <= MAX_ECHO_CHARS {
            out.push(c);
        } else if run == MAX_ECHO_CHARS + 1 {
            out.push('…');
        }
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem_doc();
        let mut response = problem_response(&problem);
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        // The request layer fills in `instance` and re-renders the body from this.
        response.extensions_mut().insert(problem);
        response
    }
}

/// Renders `problem` as an `application/problem+json` response.
pub(crate) fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // A struct of strings and an integer always serializes.
    let body = serde_json::to_string(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_quoted_input_is_cut() {
        let long = "x".repeat(500);
        let d = scrub_detail(&format!("unknown field `{long}`, expected `a`"));
        assert!(d.len() < 100, "{d}");
        assert!(d.contains(&"x".repeat(MAX_ECHO_CHARS)));
        assert!(!d.contains(&"x".repeat(MAX_ECHO_CHARS + 1)));
        assert!(d.ends_with("expected `a`"));
    }

    #[test]
    fn bare_words_and_controls_are_cut() {
        let d = scrub_detail(&format!("record {} not found\r\n", "y".repeat(300)));
        assert!(!d.contains(&"y".repeat(MAX_ECHO_CHARS + 1)), "{d}");
        assert!(!d.contains('\r') && !d.contains('\n'));
    }

    #[test]
    fn pii_is_replaced_by_its_type() {
        let d = scrub_detail(r#"invalid type: string "mail jane.doe@example.com", expected u32"#);
        assert!(!d.contains("jane.doe@example.com"), "{d}");
        assert!(d.contains("<EMAIL_ADDRESS>"), "{d}");
    }
}
