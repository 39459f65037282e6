//! The HTTP listener in front of the router: how many connections it holds and how long a
//! client may take to send a request.
//!
//! - A connection is refused (closed at once) when the server already holds
//!   [`ConnectionLimits::max_connections`], or when its source already holds
//!   [`ConnectionLimits::max_connections_per_source`] (IPv6 sources count per /64, which one
//!   client usually holds whole). Both checks happen before a byte is read, so one client
//!   cannot exhaust the process's file descriptors and `/healthz` keeps answering others.
//! - A request's head must arrive within [`ConnectionLimits::header_read_timeout`] (hyper's
//!   own timer; it also closes idle keep-alive connections and, with TLS, bounds the
//!   handshake).
//! - A request's body must keep up with [`ConnectionLimits::body_read_timeout`] plus one
//!   second per [`ConnectionLimits::body_min_rate`] bytes received (Apache mod_reqtimeout's
//!   `body=...,MinRate=...` rule): a trickling body is cut off while a large upload at a
//!   sane rate is not. The connection is closed after the refusal.
//!
//! HTTP/1.1 only: hyper's HTTP/1 server is the one whose header timeout covers a connection
//! from its first byte (the auto-detecting server reads a version preface without a timeout).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// How long open connections get to finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (e.g. out of descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The limits on connections and on how fast requests must arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections held at once, in all (keep it below the process's descriptor limit).
    pub max_connections: usize,
    /// Connections held at once from one source address (IPv6: one /64).
    pub max_connections_per_source: usize,
    /// Time for a request's head (request line and headers), and for a TLS handshake.
    pub header_read_timeout: Duration,
    /// Time for a request body before [`ConnectionLimits::body_min_rate`] extends it.
    pub body_read_timeout: Duration,
    /// Each this many body bytes received extend the body's time by one second.
    pub body_min_rate: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 768,
            max_connections_per_source: 64,
            header_read_timeout: Duration::from_secs(15),
            body_read_timeout: Duration::from_secs(30),
            body_min_rate: 1024,
        }
    }
}

/// The key connections are counted under: the address, or its /64 for IPv6.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Open connections per source.
#[derive(Default)]
struct Sources {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in [`Sources`], given back on drop.
struct SourceSlot {
    sources: Arc<Sources>,
    key: IpAddr,
}

impl Sources {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Counts are updated whole under the lock; a panic elsewhere cannot tear them.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<SourceSlot> {
        let key = source_key(ip);
        let mut open = self.lock();
        let n = open.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            sources: self.clone(),
            key,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.sources.lock();
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// A request body that fails once it falls behind its deadline (see the module doc).
///
/// Hand-written: tower-http's `TimeoutBody` restarts its timer on every frame, so a body
/// sent one byte a second never trips it.
struct DeadlineBody<B> {
    inner: B,
    started: Instant,
    base: Duration,
    min_rate: u64,
    received: u64,
    sleep: Pin<Box<Sleep>>,
}

/// The error a body that fell behind its deadline ends with.
#[derive(Debug, thiserror::Error)]
#[error("request body arrived too slowly (the server's body read timeout passed)")]
pub struct BodyTooSlow;

impl<B> DeadlineBody<B> {
    fn new(inner: B, base: Duration, min_rate: u64) -> Self {
        let started = Instant::now();
        DeadlineBody {
            inner,
            started,
            base,
            min_rate: min_rate.max(1),
            received: 0,
            sleep: Box::pin(tokio::time::sleep_until(started + base)),
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        // The deadline first: a byte arriving late does not buy more time.
        if this.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTooSlow.into())));
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(frame) => frame,
        };
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
            this.received += data.map_or(0, |d| d.len() as u64);
            let earned = Duration::from_secs_f64(this.received as f64 / this.min_rate as f64);
            let deadline = this.started + this.base + earned;
            this.sleep.as_mut().reset(deadline);
        }
        Poll::Ready(frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What each connection task needs.
#[derive(Clone)]
struct Shared {
    app: Router,
    limits: ConnectionLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish
/// for up to 10 s. `tls`: serve HTTPS only, with this configuration.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let sources = Arc::new(Sources::default());
    let (stop, stopped) = watch::channel(false);
    let shared = Shared {
        app,
        limits,
        tls: tls.map(tokio_rustls::TlsAcceptor::from),
        shutdown: stopped,
    };
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(v) => v,
            Err(e) => {
                // Out of descriptors or a connection reset before accept: keep serving.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("connection refused: server connection limit reached");
            continue;
        };
        let Some(source_slot) = sources.try_take(peer.ip(), limits.max_connections_per_source)
        else {
            tracing::debug!("connection refused: per-source connection limit reached");
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            connection(stream, peer, shared).await;
            drop((slot, source_slot));
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a slot until it ends: holding them all means all ended.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(
        SHUTDOWN_GRACE + Duration::from_secs(1),
        slots.acquire_many(all),
    )
    .await;
    Ok(())
}

/// One connection: the TLS handshake if any, then HTTP/1.1 until either side ends it.
async fn connection(stream: TcpStream, peer: SocketAddr, shared: Shared) {
    // Small writes (a streamed LLM event, a short JSON answer) leave at once instead of
    // waiting for the peer's delayed ACK.
    let _ = stream.set_nodelay(true);
    match shared.tls.clone() {
        None => http(stream, peer, shared).await,
        Some(acceptor) => {
            let timeout = shared.limits.header_read_timeout;
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => http(tls, peer, shared).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }
}

async fn http<I>(io: I, peer: SocketAddr, shared: Shared)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Shared {
        app,
        limits,
        mut shutdown,
        ..
    } = shared;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let req =
            req.map(|body| DeadlineBody::new(body, limits.body_read_timeout, limits.body_min_rate));
        app.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    // The watch guard is dropped inside the branch's future, so nothing held across the
    // awaits below keeps the task from moving between threads.
    let stopping = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = stopping => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_count_per_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(source_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_source_slot_is_given_back_on_drop() {
        let sources = Arc::new(Sources::default());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let first = sources.try_take(ip, 1).expect("first");
        assert!(sources.try_take(ip, 1).is_none());
        assert!(sources.try_take("192.0.2.8".parse().unwrap(), 1).is_some());
        drop(first);
        assert!(sources.try_take(ip, 1).is_some());
        assert!(
            sources.lock().is_empty(),
            "no entry is kept for idle sources"
        );
    }
}
