//! Custos's HTTP API.
//!
//! What it is for: mapping HTTP onto `custos-core` — bearer-token authentication, JSON in and
//! out, RFC 9457 problem details with stable codes, request ids, `/healthz`, `/metrics` and a
//! generated `/openapi.json`. Handlers are thin: parse, call one core function, serialize.
//!
//! What it is not: business logic. Authorization, policy and audit live in `custos-core`.

mod audit_routes;
mod console;
mod console_evidence;
mod console_people;
mod console_requests;
mod incident_routes;
mod inputs;
mod llm_errors;
mod llm_forward;
mod llm_metrics;
mod llm_routes;
mod member_routes;
mod metrics;
mod openapi;
mod operator_routes;
mod privacy_routes;
mod problem;
mod request_routes;
mod routes;
mod security_routes;
pub mod server;
mod sign_in_routes;
mod support_routes;
mod token_routes;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use custos_core::{Caller, Custos};

pub use llm_routes::Gateway;
pub use metrics::Metrics;
pub use problem::{scrub_detail, ApiError, Problem};
pub use routes::ApiDoc;

/// Largest JSON request body accepted (files stream through their own route).
pub const MAX_JSON_BODY: usize = 2 * 1024 * 1024;

/// Shared state of the HTTP server.
#[derive(Clone)]
pub struct AppState {
    /// The services.
    pub custos: Arc<Custos>,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// The LLM gateway's upstream client, limits and metrics.
    pub gateway: Arc<Gateway>,
}

impl AppState {
    /// State over a set of services. Inside a Tokio runtime, also starts the task that
    /// appends the audit events of refused credentials every second (it ends with `custos`).
    pub fn new(custos: Arc<Custos>) -> Self {
        if tokio::runtime::Handle::try_current().is_ok() {
            let weak = Arc::downgrade(&custos);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(custos_core::AUTH_FAILURE_FLUSH);
                loop {
                    tick.tick().await;
                    let Some(custos) = weak.upgrade() else { break };
                    custos.flush_auth_failures().await;
                }
            });
        }
        AppState {
            custos,
            metrics: Arc::new(Metrics::default()),
            gateway: Arc::new(Gateway::default()),
        }
    }
}

/// The request id: always a fresh UUID chosen by Custos (returned in `x-request-id`).
#[derive(Debug, Clone)]
struct RequestId(String);

/// The caller's own `X-Request-Id`, if it passed [`client_request_id`] (echoed as
/// `x-client-request-id`, carried in audit events as `client_request_id`).
#[derive(Debug, Clone)]
struct ClientRequestId(String);

/// Longest caller request id kept.
pub const MAX_CLIENT_REQUEST_ID: usize = 128;

/// Largest body of a framework error response read to turn it into a problem document.
const MAX_REJECTION_BODY: usize = 4096;

/// The whole API as an axum router.
pub fn router(state: AppState) -> Router {
    routes::routes()
        .merge(llm_routes::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The caller's request id if it is short and made of token characters only; anything else
/// is dropped, so nothing a caller sends lands verbatim in a signed audit event.
fn client_request_id(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get("x-request-id")?.to_str().ok()?;
    let ok = !value.is_empty()
        && value.len() <= MAX_CLIENT_REQUEST_ID
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:+/=@".contains(c))
        // It is kept in signed audit leaves, which are never erased: an id that looks like
        // personal data (an e-mail address, a phone number) is dropped, not recorded.
        && problem::scanner().scan(value).is_empty();
    ok.then(|| value.to_string())
}

async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = uuid::Uuid::new_v4().to_string();
    let client_id = client_request_id(req.headers());
    req.extensions_mut().insert(RequestId(id.clone()));
    if let Some(c) = &client_id {
        req.extensions_mut().insert(ClientRequestId(c.clone()));
    }
    let method = req.method().clone();
    // The path names ids only, never content, so it is safe to log.
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    let mut response = as_problem(response, &id).await;
    let micros = started.elapsed().as_micros() as u64;
    state.metrics.observe(response.status().as_u16(), micros);
    tracing::info!(%method, %path, status = response.status().as_u16(), micros, request_id = %id, "request");
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert("x-request-id", v);
    }
    if let Some(v) = client_id.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert("x-client-request-id", v);
    }
    response
}

/// Every error response as a problem document carrying this request's id as `instance`:
/// ours get the id filled in; the framework's own (path rejections, 405, ...) are rebuilt.
async fn as_problem(response: Response, id: &str) -> Response {
    let status = response.status();
    // The LLM gateway answers in the providers' own shapes, which their SDKs parse.
    if response
        .extensions()
        .get::<llm_errors::ProviderShaped>()
        .is_some()
    {
        return response;
    }
    // The pages show their errors as pages.
    if response.extensions().get::<web::HtmlPage>().is_some() {
        return response;
    }
    if let Some(problem) = response.extensions().get::<Problem>() {
        let mut problem = problem.clone();
        problem.instance = format!("urn:uuid:{id}");
        let (mut parts, _) = response.into_parts();
        let rendered = problem::problem_response(&problem);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(problem::PROBLEM_JSON),
        );
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, rendered.into_body());
    }
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_REJECTION_BODY).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    let mut problem = problem::from_status(status, &text).problem_doc();
    problem.instance = format!("urn:uuid:{id}");
    let mut rebuilt = problem::problem_response(&problem);
    // Keep the framework's other headers (`Allow` on a 405, for one).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}

/// The header carrying the org's identity-provider ID token, a second factor for the
/// member API key in `Authorization`.
pub const IDENTITY_TOKEN_HEADER: &str = "x-custos-identity-token";

/// The header an operator names its support grant with, on every request made under it.
pub const GRANT_HEADER: &str = "x-custos-grant";

/// An authenticated caller, from `Authorization: Bearer <token>` (plus, optionally,
/// [`IDENTITY_TOKEN_HEADER`]).
pub struct Authed(pub Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (token, _) = presented_token(parts, state)?
            .ok_or_else(|| ApiError::from(custos_core::CoreError::Unauthenticated))?;
        Ok(Authed(caller_from(parts, state, &token).await?))
    }
}

/// The credential a request presents: `Authorization: Bearer <token>`, else a session token
/// in the session cookie (`true`). A request that changes something and is authenticated by
/// the cookie must come from this deployment's own pages: its `Origin` is the policy's
/// `[service] public_url` (a cross-site form cannot forge it), else `403`.
pub(crate) fn presented_token(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<(String, bool)>, custos_core::CoreError> {
    if let Some(token) = bearer_token(&parts.headers) {
        return Ok(Some((token, false)));
    }
    let Some(token) = sign_in_routes::cookie_value(&parts.headers, sign_in_routes::SESSION_COOKIE)
        .filter(|t| {
            t.starts_with(custos_core::SESSION_PREFIX)
                || t.starts_with(custos_core::sign_in::OPERATOR_SESSION_PREFIX)
        })
    else {
        return Ok(None);
    };
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if !safe {
        let own = state
            .custos
            .policy()
            .service
            .public_url
            .as_deref()
            .map(origin_of);
        let origin = parts
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        if own.is_none() || origin != own {
            return Err(custos_core::CoreError::Forbidden(
                "a change authenticated by the session cookie must come from this \
                 deployment's own pages (its Origin is not the policy's public_url)"
                    .into(),
            ));
        }
    }
    Ok(Some((token, true)))
}

/// The token of an `Authorization: Bearer <token>` header, if the request has one.
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// The origin (`scheme://host[:port]`) of an absolute URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// The request's ids and source address, for the audit log and source limits.
pub(crate) fn request_context(parts: &Parts) -> custos_core::RequestContext {
    custos_core::RequestContext {
        request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
        client_request_id: parts
            .extensions
            .get::<ClientRequestId>()
            .map(|r| r.0.clone()),
        source: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
    }
}

/// The caller presenting `token` on this request (plus, optionally, the identity token in
/// [`IDENTITY_TOKEN_HEADER`]), with the request's ids and source address.
pub(crate) async fn caller_from(
    parts: &Parts,
    state: &AppState,
    token: &str,
) -> Result<Caller, custos_core::CoreError> {
    let context = request_context(parts);
    let (request_id, client_request_id, source) = (
        context.request_id.clone(),
        context.client_request_id.clone(),
        context.source.clone(),
    );
    let principal = match parts.headers.get(IDENTITY_TOKEN_HEADER) {
        None => state.custos.authenticate_from(token, &context).await?,
        // A header that is not text is an invalid token, refused and audited as such.
        Some(id_token) => {
            let id_token = id_token.to_str().unwrap_or_default().trim();
            state
                .custos
                .authenticate_with_identity(token, id_token, context)
                .await?
        }
    };
    // Checked before it can reach the audit log: a grant id is a short word.
    let grant = match parts.headers.get(GRANT_HEADER) {
        None => None,
        Some(value) => match value.to_str().map(str::trim) {
            Ok(id) if custos_core::valid_grant_id(id) => Some(id.to_string()),
            _ => {
                return Err(custos_core::CoreError::invalid(
                    "X-Custos-Grant",
                    "must be a support grant id (letters, digits and dashes)",
                ))
            }
        },
    };
    Ok(Caller {
        principal,
        request_id,
        client_request_id,
        source,
        grant,
    })
}
