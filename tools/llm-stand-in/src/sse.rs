//! Server-sent events: a channel-backed body that flushes each event as it is written, paces
//! events (`drip`), stops after the first delta (`hang`) and counts clients that went away
//! before the end.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// One SSE frame and whether it is the reply's first content delta.
#[derive(Debug)]
pub struct Frame {
    bytes: Bytes,
    first_delta: bool,
}

/// Where a reply's frames go as they are built: the sending side of [`respond`]'s body.
#[derive(Debug)]
pub struct Streamed {
    tx: mpsc::Sender<Frame>,
    built: usize,
    mark_next: bool,
}

impl Streamed {
    /// A sink and the frames it will carry, built on a blocking thread at most two frames
    /// ahead of the sending, as a provider generates while it streams (and stops when the
    /// client is gone).
    pub fn channel() -> (Streamed, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(2);
        let sink = Streamed {
            tx,
            built: 0,
            mark_next: false,
        };
        (sink, rx)
    }

    /// Frames built so far.
    pub fn len(&self) -> usize {
        self.built
    }

    /// Whether no frame was built yet.
    pub fn is_empty(&self) -> bool {
        self.built == 0
    }

    /// Appends a frame with an `event:` line, as OpenAI Responses and Anthropic send them.
    pub fn event(&mut self, name: &str, data: &serde_json::Value) {
        self.push(format!("event: {name}\ndata: {data}\n\n"));
    }

    /// Appends a `data:`-only frame, as Chat Completions sends them.
    pub fn data(&mut self, data: &str) {
        self.push(format!("data: {data}\n\n"));
    }

    /// Marks the next frame pushed as the first delta (`hang` stops after it).
    pub fn mark_first_delta(&mut self) {
        self.mark_next = true;
    }

    fn push(&mut self, frame: String) {
        let first_delta = std::mem::take(&mut self.mark_next);
        self.built += 1;
        // A client that left closed the receiver; the frames have nowhere to go.
        let _ = self.tx.blocking_send(Frame {
            bytes: Bytes::from(frame),
            first_delta,
        });
    }
}

/// Sends the frames as a `text/event-stream` response, paced by the directives.
pub fn respond(
    state: Arc<StandIn>,
    frames: mpsc::Receiver<Frame>,
    directives: &Directives,
) -> Response {
    // Capacity 1: the producer runs at most one event ahead of what hyper has taken, so a
    // client that goes away is noticed at the next event.
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let total = Arc::new(AtomicUsize::new(usize::MAX));
    let shutdown = state.shutdown.clone();
    tokio::spawn(produce(
        tx,
        frames,
        total.clone(),
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

/// Hands the frames on one at a time; records how many there were once all are handed on.
async fn produce(
    tx: mpsc::Sender<Bytes>,
    mut frames: mpsc::Receiver<Frame>,
    total: Arc<AtomicUsize>,
    drip: Option<std::time::Duration>,
    hang: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut i = 0;
    while let Some(frame) = frames.recv().await {
        if let (Some(pause), true) = (drip, i > 0) {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = tx.closed() => return,
            }
        }
        i += 1;
        if tx.send(frame.bytes).await.is_err() {
            return;
        }
        if hang && frame.first_delta {
            // Until the client goes away (or the stand-in stops): the rest never comes.
            tokio::select! {
                _ = tx.closed() => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
            return;
        }
    }
    total.store(i, Ordering::Release);
}

/// The response body: counts a disconnect when dropped before every frame was handed on.
struct Tracked {
    rx: mpsc::Receiver<Bytes>,
    yielded: usize,
    /// Frames in the whole reply, once the producer handed on the last one.
    total: Arc<AtomicUsize>,
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
        if self.yielded < self.total.load(Ordering::Acquire) {
            self.state.count_disconnect();
        }
    }
}
