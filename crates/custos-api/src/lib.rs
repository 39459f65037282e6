//! Custos's HTTP API.
//!
//! What it is for: mapping HTTP onto `custos-core` — bearer-token authentication, JSON in and
//! out, RFC 9457 problem details with stable codes, request ids, `/healthz`, `/metrics` and a
//! generated `/openapi.json`. Handlers are thin: parse, call one core function, serialize.
//!
//! What it is not: business logic. Authorization, policy and audit live in `custos-core`.

mod audit_routes;
mod member_routes;
mod metrics;
mod problem;
mod routes;

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

pub use metrics::Metrics;
pub use problem::{ApiError, Problem};
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
}

impl AppState {
    /// State over a set of services.
    pub fn new(custos: Arc<Custos>) -> Self {
        AppState {
            custos,
            metrics: Arc::new(Metrics::default()),
        }
    }
}

/// The request id: the caller's `x-request-id` if sane, else a fresh UUID.
#[derive(Debug, Clone)]
struct RequestId(String);

/// The whole API as an axum router.
pub fn router(state: AppState) -> Router {
    routes::routes()
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    // The path names ids only, never content, so it is safe to log.
    let path = req.uri().path().to_string();
    let mut response = next.run(req).await;
    let micros = started.elapsed().as_micros() as u64;
    state.metrics.observe(response.status().as_u16(), micros);
    tracing::info!(%method, %path, status = response.status().as_u16(), micros, request_id = %id, "request");
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// The header carrying the org's identity-provider ID token, a second factor for the
/// member API key in `Authorization`.
pub const IDENTITY_TOKEN_HEADER: &str = "x-custos-identity-token";

/// An authenticated caller, from `Authorization: Bearer <token>` (plus, optionally,
/// [`IDENTITY_TOKEN_HEADER`]).
pub struct Authed(pub Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::from(custos_core::CoreError::Unauthenticated))?;
        let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let principal = match parts.headers.get(IDENTITY_TOKEN_HEADER) {
            None => state.custos.authenticate(token).await?,
            // A header that is not text is an invalid token, refused and audited as such.
            Some(id_token) => {
                let id_token = id_token.to_str().unwrap_or_default().trim();
                let (rid, src) = (request_id.clone(), source.clone());
                state
                    .custos
                    .authenticate_with_identity(token, id_token, rid, src)
                    .await?
            }
        };
        Ok(Authed(Caller {
            principal,
            request_id,
            source,
        }))
    }
}
