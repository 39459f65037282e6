//! Load client for `bench/instances.sh`: creates records through one or more `custos serve`
//! instances at once and prints records/s and the audit log's growth per second.
//!
//!     records_load BASES ADMIN_TOKEN ORG MEMBER_KEY [--n N] [--c C]
//!
//! BASES is a comma-separated list of base URLs; callers take them in turn. Each record is one
//! `POST /v1/orgs/{org}/records` of about 200 bytes in the `messages` category.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

struct Args {
    bases: Vec<String>,
    admin: String,
    org: String,
    key: String,
    n: usize,
    c: usize,
}

fn args() -> Result<Args, String> {
    let usage = "usage: records_load BASES ADMIN_TOKEN ORG MEMBER_KEY [--n N] [--c C]";
    let mut it = std::env::args().skip(1);
    let mut next = |what: &str| it.next().ok_or(format!("missing {what}\n{usage}"));
    let bases = next("BASES")?.split(',').map(str::to_string).collect();
    let (admin, org, key) = (next("ADMIN_TOKEN")?, next("ORG")?, next("MEMBER_KEY")?);
    let mut a = Args {
        bases,
        admin,
        org,
        key,
        n: 3000,
        c: 32,
    };
    let rest: Vec<String> = std::env::args().skip(5).collect();
    for pair in rest.chunks(2) {
        let value = pair.get(1).ok_or(format!("{} needs a value", pair[0]))?;
        let parsed: usize = value.parse().map_err(|e| format!("{}: {e}", pair[0]))?;
        match pair[0].as_str() {
            "--n" => a.n = parsed,
            "--c" => a.c = parsed,
            other => return Err(format!("unknown argument {other:?}\n{usage}")),
        }
    }
    Ok(a)
}

async fn audit_size(client: &reqwest::Client, base: &str, admin: &str) -> u64 {
    let v: Value = client
        .get(format!("{base}/v1/audit/checkpoint"))
        .bearer_auth(admin)
        .send()
        .await
        .expect("checkpoint")
        .json()
        .await
        .expect("checkpoint JSON");
    v["size"].as_u64().unwrap_or(0)
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
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.c)
        .build()
        .unwrap();
    // Checkpoints trail appends by up to a second: take the size after one has caught up.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = audit_size(&client, &a.bases[0], &a.admin).await;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..a.c)
        .map(|w| {
            let (a, client, next) = (a.clone(), client.clone(), next.clone());
            tokio::spawn(async move {
                let base = &a.bases[w % a.bases.len()];
                let url = format!("{base}/v1/orgs/{}/records", a.org);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= a.n {
                        break;
                    }
                    let body = json!({
                        "category": "messages",
                        "subject": format!("user-{}", i % 100),
                        "content": {"text": format!("message {i}: the order arrived and support helped quickly")},
                    });
                    let r = client
                        .post(&url)
                        .bearer_auth(&a.key)
                        .json(&body)
                        .send()
                        .await
                        .expect("send");
                    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let after = audit_size(&client, &a.bases[0], &a.admin).await;
    let secs = elapsed.as_secs_f64();
    println!(
        "instances={} callers={} records={} seconds={:.2} records/s={:.0} audit appends/s={:.0}",
        a.bases.len(),
        a.c,
        a.n,
        secs,
        a.n as f64 / secs,
        (after - before) as f64 / secs
    );
}
