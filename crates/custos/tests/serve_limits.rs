//! `custos serve` against the review's slow and greedy clients (issue 23, point 7), with short
//! limits: a half-sent request head is closed, a trickling body is cut off, and one source's
//! connections beyond its share are closed while `/healthz` answers another source.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

mod support;

use support::{cli, org_with_owner, serve};

/// Reads until the server closes the connection; `None` if it is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test]
async fn slow_and_greedy_clients_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(
        cli(&dir.path().join("data")),
        &[
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
            "--max-connections-per-source",
            "3",
        ],
    )
    .await;
    let addr: SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
    // A member's key (the owner of a new org) for the slow request below.
    let (_, key) = org_with_owner(&s, "Acme").await;

    // Half a request head: closed within the header timeout.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut half, Duration::from_secs(4))
            .await
            .is_some(),
        "a half-sent head stays open"
    );

    // A body at one byte a second: refused and closed within a few seconds.
    let body = r#"{"text": "a body that takes its time"}"#;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/scan HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let trickle = async {
        for byte in body.bytes() {
            if slow.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(4), trickle).await;
    assert!(
        closed_within(&mut slow, Duration::from_secs(2))
            .await
            .is_some(),
        "a trickling body stays open"
    );

    // Three connections from 127.0.0.1 hold its share; a fourth is closed at once while
    // another source's /healthz answers within a second.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.1", addr).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = connect_from("127.0.0.1", addr).await;
    assert!(
        closed_within(&mut extra, Duration::from_millis(800))
            .await
            .is_some(),
        "one source got more than its share"
    );
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let r = other
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .expect("/healthz answers within 1 s");
    assert_eq!(r.status(), 200);
    drop(held);
}
