//! A stand-in for the OpenAI and Anthropic HTTP APIs, for testing Custos's LLM gateway.
//!
//! It speaks the providers' wire formats (`/v1/chat/completions`, `/v1/responses`,
//! `/v1/messages`, `/v1/models`), plain and streamed, closely enough for the official SDKs,
//! and records every request body it receives so a test can prove what a provider would have
//! seen. Its replies are deterministic (an echo, or one call to the first declared tool; see
//! [`reply`]) and the model name carries directives that make it fail, stall or stream in
//! chosen pieces.
//!
//! It is not a model, checks no key, and keeps everything in memory: it is for tests and
//! benchmarks on loopback only.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod anthropic;
pub mod openai_chat;
pub mod openai_responses;
pub mod provider;
pub mod reply;
pub mod sse;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use provider::Api;

/// One request as the stand-in received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// The HTTP method.
    pub method: String,
    /// The request path, without the query.
    pub path: String,
    /// The query string, if any (it could carry data too).
    pub query: Option<String>,
    /// The `authorization` header (OpenAI's key), as sent.
    pub authorization: Option<String>,
    /// The `x-api-key` header (Anthropic's key), as sent.
    pub x_api_key: Option<String>,
    /// The body, as UTF-8 (invalid bytes replaced).
    pub body: String,
}

/// The stand-in's shared state: what it received and how streams ended.
#[derive(Debug)]
pub struct StandIn {
    requests: Mutex<Vec<Recorded>>,
    disconnects: AtomicU64,
    ids: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

impl StandIn {
    fn new(shutdown: watch::Receiver<bool>) -> Self {
        StandIn {
            requests: Mutex::new(Vec::new()),
            disconnects: AtomicU64::new(0),
            ids: AtomicU64::new(0),
            shutdown,
        }
    }

    /// Every provider request received, in order (the control routes are not recorded).
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Streams whose client went away before the end.
    pub fn disconnects(&self) -> u64 {
        self.disconnects.load(Ordering::SeqCst)
    }

    fn record(&self, r: Recorded) {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(r);
    }

    fn count_disconnect(&self) {
        self.disconnects.fetch_add(1, Ordering::SeqCst);
    }

    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// A stand-in serving on `addr`; it stops serving when dropped.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its state, to read what it received.
    pub state: Arc<StandIn>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// `http://ADDR`, the base URL of its routes.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

/// Starts a stand-in on `listen` (port 0 picks a free port; see [`Running::addr`]).
pub async fn start(listen: SocketAddr) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (stop, shutdown) = watch::channel(false);
    let state = Arc::new(StandIn::new(shutdown.clone()));
    let app = router(state.clone());
    // Streams are many small writes: without TCP_NODELAY, Nagle and delayed ACKs hold each
    // event back tens of milliseconds, which would show up as the gateway's latency.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let mut signal = shutdown;
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = signal.wait_for(|stop| *stop).await;
        });
        // Serving only ends when told to; an accept error has nowhere better to go.
        if let Err(e) = serve.await {
            eprintln!("llm-stand-in: server error: {e}");
        }
    });
    Ok(Running {
        addr,
        state,
        stop,
        task,
    })
}

/// The stand-in's routes: the providers' and its own control routes under `/_stand-in/`.
pub fn router(state: Arc<StandIn>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/responses", post(responses))
        .route("/v1/messages", post(messages))
        .route("/v1/models", get(models))
        .route(
            "/_stand-in/requests",
            get(list_requests).delete(clear_requests),
        )
        .route("/_stand-in/stats", get(stats))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

/// Bodies up to this size are recorded and answered; providers cap requests similarly.
const MAX_BODY: usize = 64 * 1024 * 1024;

async fn record(State(state): State<Arc<StandIn>>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/_stand-in/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    state.record(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        authorization: header("authorization"),
        x_api_key: header("x-api-key"),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn chat(State(state): State<Arc<StandIn>>, body: bytes::Bytes) -> Response {
    provider::handle(state, Api::Chat, &body).await
}

async fn responses(State(state): State<Arc<StandIn>>, body: bytes::Bytes) -> Response {
    provider::handle(state, Api::Responses, &body).await
}

async fn messages(State(state): State<Arc<StandIn>>, body: bytes::Bytes) -> Response {
    provider::handle(state, Api::Messages, &body).await
}

/// The models the stand-in lists; any model name is accepted all the same.
const MODELS: [&str; 2] = ["stand-in", "stand-in-large"];

/// OpenAI's list when the caller sent `authorization`, Anthropic's when it sent `x-api-key`.
async fn models(headers: HeaderMap) -> Json<Value> {
    if headers.contains_key("authorization") || !headers.contains_key("x-api-key") {
        let data: Vec<Value> = MODELS
            .iter()
            .map(|id| json!({"id": id, "object": "model", "created": 1_735_689_600, "owned_by": "custos-stand-in"}))
            .collect();
        Json(json!({"object": "list", "data": data}))
    } else {
        let data: Vec<Value> = MODELS
            .iter()
            .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"}))
            .collect();
        Json(json!({
            "data": data,
            "has_more": false,
            "first_id": MODELS[0],
            "last_id": MODELS[MODELS.len() - 1]
        }))
    }
}

async fn list_requests(State(state): State<Arc<StandIn>>) -> Json<Vec<Recorded>> {
    Json(state.requests())
}

async fn clear_requests(State(state): State<Arc<StandIn>>) -> StatusCode {
    state.clear();
    StatusCode::NO_CONTENT
}

async fn stats(State(state): State<Arc<StandIn>>) -> Json<Value> {
    Json(json!({
        "requests": state.requests().len(),
        "disconnects": state.disconnects()
    }))
}
