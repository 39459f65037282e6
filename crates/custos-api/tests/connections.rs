//! The listener's limits with real sockets on loopback: slow request heads and bodies are cut
//! off, and one source cannot hold every connection while `/healthz` answers others.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_api::server::{serve, ConnectionLimits};
use custos_core::SystemClock;
use custos_policy::Policy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

mod support;

use support::{deploy, org_with_owner};

/// Short limits, so each test takes seconds.
fn limits() -> ConnectionLimits {
    ConnectionLimits {
        max_connections: 32,
        max_connections_per_source: 4,
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        body_min_rate: 1024,
    }
}

/// A deployment served by [`serve`] with `limits`; returns its address and the deployment
/// (kept alive by the caller).
async fn start(limits: ConnectionLimits) -> (SocketAddr, support::Deployment) {
    let policy = Policy::parse(Policy::BUILTIN_TOML, "builtin.toml").unwrap();
    let d = deploy(policy, Arc::new(SystemClock), |c| c).await;
    let app = custos_api::router(custos_api::AppState::new(d.custos.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, app, limits, None, std::future::pending()));
    (addr, d)
}

/// A connection to `to` from the loopback address `from` (Linux answers all of 127/8).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// Reads until the server closes the connection, at most `within`; returns what it sent and
/// how long that took, or `None` if the connection was still open at the end.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<(String, Duration)> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some((
                    String::from_utf8_lossy(&got).into_owned(),
                    started.elapsed(),
                ))
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// `/healthz` from `from`, bounded by one second.
async fn healthz_from(from: &str, addr: SocketAddr) -> reqwest::StatusCode {
    let client = reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("/healthz answers within 1 s")
        .status()
}

#[tokio::test]
async fn half_a_request_head_is_closed_within_the_header_timeout() {
    let (addr, _d) = start(limits()).await;
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: custos\r\nX-Slow: ")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let (_, took) = read_until_closed(&mut half, Duration::from_secs(5))
        .await
        .expect("a half-sent head is cut off");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    let (_, took) = read_until_closed(&mut silent, Duration::from_secs(5))
        .await
        .expect("a connection that sends nothing is closed");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    // A whole request on the same server is answered.
    assert_eq!(healthz_from("127.0.0.1", addr).await, 200);
}

#[tokio::test]
async fn a_body_trickling_one_byte_a_second_is_cut_off() {
    let (addr, d) = start(limits()).await;
    // A member's key (the org's owner), made through the deployment's unlimited server.
    let (_, key) = org_with_owner(&d, "Acme").await;
    let body = r#"{"text": "nothing to see here, just a slow body"}"#;
    let head = format!(
        "POST /v1/scan HTTP/1.1\r\nHost: custos\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // The same body sent at once is accepted.
    let mut fast = TcpStream::connect(addr).await.unwrap();
    fast.write_all(format!("{head}{body}").as_bytes())
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    fast.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");

    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let trickle = async {
        for byte in body.bytes() {
            if slow.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    // 1 s allowed plus 1 s per KiB received: a few bytes in, the body is refused and closed.
    let _ = tokio::time::timeout(Duration::from_secs(4), trickle).await;
    let (answer, _) = read_until_closed(&mut slow, Duration::from_secs(2))
        .await
        .expect("the slow body's connection is closed");
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn one_source_cannot_take_every_connection() {
    let (addr, _d) = start(limits()).await;
    // Four connections from 127.0.0.1 fill its share for the 1 s their heads may take.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from("127.0.0.1", addr).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        held.push(s);
    }
    // Give the server a moment to account for them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = connect_from("127.0.0.1", addr).await;
    let (sent, took) = read_until_closed(&mut extra, Duration::from_millis(900))
        .await
        .expect("the fifth connection from one source is closed at once");
    assert!(sent.is_empty(), "{sent}");
    assert!(took < Duration::from_millis(900));
    // Another source is served meanwhile.
    let started = Instant::now();
    assert_eq!(healthz_from("127.0.0.2", addr).await, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    // Once the held connections go, the first source is served again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(healthz_from("127.0.0.1", addr).await, 200);
}

#[tokio::test]
async fn the_server_wide_limit_holds_across_sources() {
    let (addr, _d) = start(ConnectionLimits {
        max_connections: 6,
        ..limits()
    })
    .await;
    let mut held = Vec::new();
    for from in ["127.0.0.11", "127.0.0.12", "127.0.0.13"] {
        for _ in 0..2 {
            held.push(connect_from(from, addr).await);
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = connect_from("127.0.0.14", addr).await;
    assert!(
        read_until_closed(&mut extra, Duration::from_millis(900))
            .await
            .is_some(),
        "a seventh connection is closed at once"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(healthz_from("127.0.0.14", addr).await, 200);
}
