//! Load client for `bench/auth-flood.sh`: valid callers' records/s through one `custos serve`,
//! alone (before and after) and while a flood of requests with unknown API keys arrives at a
//! fixed rate from other source addresses (127.0.0.2 and up: with `--sources 1` the
//! per-source limit meets the flood after 100 failures; with many sources every failure is
//! evaluated and audited, the costlier case).
//!
//!     auth_flood BASE ORG MEMBER_KEY [--secs S] [--rate R] [--c C] [--sources N]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

struct Args {
    base: String,
    org: String,
    key: String,
    secs: u64,
    rate: u64,
    c: usize,
    sources: u64,
}

fn args() -> Result<Args, String> {
    let usage = "usage: auth_flood BASE ORG MEMBER_KEY [--secs S] [--rate R] [--c C] [--sources N]";
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.len() < 3 {
        return Err(usage.into());
    }
    let mut a = Args {
        base: all[0].clone(),
        org: all[1].clone(),
        key: all[2].clone(),
        secs: 10,
        rate: 1000,
        c: 16,
        sources: 1,
    };
    for pair in all[3..].chunks(2) {
        let value = pair.get(1).ok_or(format!("{} needs a value", pair[0]))?;
        let parsed: u64 = value.parse().map_err(|e| format!("{}: {e}", pair[0]))?;
        match pair[0].as_str() {
            "--secs" => a.secs = parsed,
            "--rate" => a.rate = parsed,
            "--c" => a.c = parsed as usize,
            "--sources" => a.sources = parsed.clamp(1, 250),
            other => return Err(format!("unknown argument {other:?}\n{usage}")),
        }
    }
    Ok(a)
}

/// Valid writes by `a.c` callers for `a.secs`; records/s.
async fn writers(a: &Arc<Args>) -> f64 {
    let client = reqwest::Client::new();
    let done = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(a.secs);
    let tasks: Vec<_> = (0..a.c)
        .map(|i| {
            let (client, a, done) = (client.clone(), a.clone(), done.clone());
            tokio::spawn(async move {
                let url = format!("{}/v1/orgs/{}/records", a.base, a.org);
                let mut n = 0u64;
                while Instant::now() < until {
                    let r = client
                        .post(&url)
                        .bearer_auth(&a.key)
                        .json(
                            &json!({"category": "messages", "subject": format!("s{i}-{n}"),
                                      "content": {"text": "a valid caller's record"}}),
                        )
                        .send()
                        .await
                        .expect("write");
                    assert_eq!(r.status().as_u16(), 201, "a valid write failed");
                    done.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    let started = Instant::now();
    for t in tasks {
        t.await.expect("writer");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Sends requests with unknown keys at `a.rate` per second, spread over `a.sources` source
/// addresses from 127.0.0.2 up, until `stop`; (sent, answered 401, answered 429).
async fn flood(a: Arc<Args>, stop: Arc<AtomicBool>) -> (usize, usize, usize) {
    let clients: Vec<reqwest::Client> = (0..a.sources)
        .map(|i| {
            let ip = std::net::Ipv4Addr::new(127, 0, 0, 2 + i as u8);
            reqwest::Client::builder()
                .local_address(Some(ip.into()))
                .build()
                .expect("flood client")
        })
        .collect();
    let (sent, unauth, limited) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / a.rate.max(1)));
    let mut inflight = tokio::task::JoinSet::new();
    let url = format!("{}/v1/orgs/{}/records?limit=1", a.base, a.org);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let n = sent.fetch_add(1, Ordering::Relaxed);
        let client = clients[n % clients.len()].clone();
        let (url, unauth, limited) = (url.clone(), unauth.clone(), limited.clone());
        inflight.spawn(async move {
            let bad = format!("cus_flood{n:08}{}", "x".repeat(34));
            if let Ok(r) = client.get(&url).bearer_auth(bad).send().await {
                match r.status().as_u16() {
                    401 => unauth.fetch_add(1, Ordering::Relaxed),
                    429 => limited.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
            }
        });
    }
    while inflight.join_next().await.is_some() {}
    (
        sent.load(Ordering::Relaxed),
        unauth.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
    )
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // A first run warms the server (page cache, pools, key caches); it is not reported.
    writers(&a).await;
    let before = writers(&a).await;
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = tokio::spawn(flood(a.clone(), stop.clone()));
    let flooded = writers(&a).await;
    stop.store(true, Ordering::Relaxed);
    let (sent, unauth, limited) = flooding.await.expect("flood");
    let after = writers(&a).await;
    let alone = (before + after) / 2.0;
    println!(
        "valid callers alone:        {before:.0} records/s before, {after:.0} after ({} callers, {} s each)",
        a.c, a.secs
    );
    println!(
        "during the flood:           {flooded:.0} records/s ({:.0}% of the mean alone)",
        100.0 * flooded / alone
    );
    println!(
        "flood: {sent} requests with unknown keys at {}/s from {} source(s): {unauth} answered \
         401, {limited} answered 429",
        a.rate, a.sources
    );
}
