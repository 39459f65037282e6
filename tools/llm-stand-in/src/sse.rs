//! Server-sent events: a channel-backed body that flushes each event as it is written, paces
//! events (`drip`), stops after the first delta (`hang`) and counts clients that went away
//! before the end.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::Stream;
use tokio::sync::{mpsc, watch};

use crate::reply::Directives;
use crate::StandIn;

/// A whole streamed reply, already framed, and where its first delta is.
#[derive(Debug, Clone)]
pub struct Streamed {
    /// Each SSE frame (`event:` and `data:` lines and the blank line).
    pub frames: Vec<String>,
    /// Index in `frames` of the first content delta (`hang` stops after it).
    pub first_delta: usize,
}

impl Streamed {
    /// An empty stream (its first delta defaults to its first frame).
    pub fn new() -> Self {
        Streamed {
            frames: Vec::new(),
            first_delta: 0,
        }
    }

    /// Appends a frame with an `event:` line, as OpenAI Responses and Anthropic send them.
    pub fn event(&mut self, name: &str, data: &serde_json::Value) {
        self.frames.push(format!("event: {name}\ndata: {data}\n\n"));
    }

    /// Appends a `data:`-only frame, as Chat Completions sends them.
    pub fn data(&mut self, data: &str) {
        self.frames.push(format!("data: {data}\n\n"));
    }

    /// Marks the next frame pushed as the first delta.
    pub fn mark_first_delta(&mut self) {
        self.first_delta = self.frames.len();
    }
}

impl Default for Streamed {
    fn default() -> Self {
        Self::new()
    }
}

/// Sends `streamed` as a `text/event-stream` response, paced by the directives.
pub fn respond(state: Arc<StandIn>, streamed: Streamed, directives: &Directives) -> Response {
    // Capacity 1: the producer runs at most one event ahead of what hyper has taken, so a
    // client that goes away is noticed at the next event.
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let total = streamed.frames.len();
    let shutdown = state.shutdown.clone();
    tokio::spawn(produce(
        tx,
        streamed,
        directives.drip,
        directives.hang,
        shutdown,
    ));
    let body = Body::from_stream(Tracked {
        rx,
        yielded: 0,
        total,
        state,
    });
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn produce(
    tx: mpsc::Sender<Bytes>,
    streamed: Streamed,
    drip: Option<std::time::Duration>,
    hang: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    for (i, frame) in streamed.frames.into_iter().enumerate() {
        if let (Some(pause), true) = (drip, i > 0) {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = tx.closed() => return,
            }
        }
        if tx.send(Bytes::from(frame)).await.is_err() {
            return;
        }
        if hang && i == streamed.first_delta {
            // Until the client goes away (or the stand-in stops): the rest never comes.
            tokio::select! {
                _ = tx.closed() => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
            return;
        }
    }
}

/// The response body: counts a disconnect when dropped before every frame was handed on.
struct Tracked {
    rx: mpsc::Receiver<Bytes>,
    yielded: usize,
    total: usize,
    state: Arc<StandIn>,
}

impl Stream for Tracked {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(frame)) => {
                self.yielded += 1;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.yielded < self.total {
            self.state.count_disconnect();
        }
    }
}
