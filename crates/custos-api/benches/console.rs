//! How long the console's pages take to render for an org holding 100,000 records and 1,000
//! data subject requests (SQLite, the embedded default), over real HTTP on loopback.
//!
//! `cargo bench -p custos-api --bench console` prints, per page, the median, p95 and worst of
//! `CUSTOS_BENCH_RUNS` loads (default 20, after 2 warm-ups) and whether the worst is under the
//! 200 ms target. `CUSTOS_BENCH_RECORDS` and `CUSTOS_BENCH_REQUESTS` change the org's size.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_core::{Caller, Custos, NewRecord, NewRequest, RequestContext, SystemClock};
use custos_crypto::{DeploymentSigner, KeyVault, LocalKms};
use custos_keystore_sqlite::SqliteKeyStore;
use custos_policy::Policy;
use custos_store::{ObjectLocation, Objects, RequestKind, SqliteStore};
use serde_json::{json, Value};

/// The operator token the benchmark's deployment accepts.
const ADMIN: &str = "bench-admin-token";
/// The target for every page.
const TARGET: Duration = Duration::from_millis(200);
/// Categories the records are spread over.
const CATEGORIES: [&str; 3] = ["messages", "app_logs", "interactions"];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let records = env_usize("CUSTOS_BENCH_RECORDS", 100_000);
    let requests = env_usize("CUSTOS_BENCH_REQUESTS", 1_000);
    let runs = env_usize("CUSTOS_BENCH_RUNS", 20);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Arc::new(SqliteStore::open(&data.join("custos.db")).unwrap());
    let objects = Objects::open(&ObjectLocation::File(data.join("objects"))).unwrap();
    let kms = LocalKms::open_or_create(&data.join("keys/root.keyring")).unwrap();
    let keys = SqliteKeyStore::open(&data.join("keys/keys.db")).unwrap();
    let vault = Arc::new(KeyVault::new(Arc::new(kms), Arc::new(keys)));
    let policy = Arc::new(Policy::builtin());
    let categories: Vec<&str> = CATEGORIES
        .iter()
        .copied()
        .filter(|c| policy.category(c).is_some())
        .collect();
    let custos = Arc::new(
        Custos::new(policy, store, objects, vault, Arc::new(SystemClock))
            .with_admin_token(ADMIN)
            .with_audit_signer(Arc::new(DeploymentSigner::ephemeral("Bench SaaS"))),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = custos_api::router(custos_api::AppState::new(custos.clone()));
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let created: Value = client
        .post(format!("{base}/v1/orgs"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "Bench Org", "owner": {"name": "Olive"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = created["id"].as_str().unwrap().to_string();
    let owner = created["owner"]["api_key"].as_str().unwrap().to_string();
    let principal = custos
        .authenticate_from(&owner, &RequestContext::default())
        .await
        .unwrap();
    let caller = Caller::in_context(principal, &RequestContext::default());

    let started = Instant::now();
    for batch in (0..records).collect::<Vec<_>>().chunks(1000) {
        let rows = batch
            .iter()
            .map(|i| NewRecord {
                category: categories[i % categories.len()].to_string(),
                subject: Some(format!("subject-{}", i % 5000)),
                content: json!({"text": format!("note {i} for the console benchmark")}),
                metadata: None,
            })
            .collect();
        custos.create_records(&caller, &org, rows).await.unwrap();
    }
    let mut first = None;
    let mut erasure = None;
    for i in 0..requests {
        // One in fifty is an erasure (it runs at once: deletion log and certificates).
        let kind = if i % 50 == 0 {
            RequestKind::Erasure
        } else {
            RequestKind::Access
        };
        let view = custos
            .create_request(
                &caller,
                &org,
                NewRequest {
                    kind,
                    subject: format!("subject-{}", i % 5000),
                },
            )
            .await
            .unwrap();
        first.get_or_insert(view.id.clone());
        if kind == RequestKind::Erasure {
            erasure = Some(view.id.clone());
        }
    }
    println!(
        "org: {records} records over {} categories, {requests} requests ({} erasures); set up in {:.1} s",
        categories.len(),
        requests.div_ceil(50),
        started.elapsed().as_secs_f64()
    );

    // What the overview is made of, each on its own (the usage figures counted afresh: the
    // cache starts empty; later loads within a minute reuse them).
    let t = Instant::now();
    custos.usage(&caller, &org).await.unwrap();
    let usage = t.elapsed();
    let t = Instant::now();
    custos.overdue(&caller, Some(&org)).await.unwrap();
    let overdue = t.elapsed();
    println!(
        "overview parts: usage {:.1} ms, late items {:.1} ms",
        usage.as_secs_f64() * 1e3,
        overdue.as_secs_f64() * 1e3
    );
    let request = first.unwrap();
    let erasure = erasure.unwrap();
    let pages = [
        ("overview", format!("/console/{org}")),
        ("requests", format!("/console/{org}/requests")),
        (
            "overdue requests",
            format!("/console/{org}/requests?overdue=true"),
        ),
        ("request", format!("/console/{org}/requests/{request}")),
        (
            "certificate",
            format!("/console/{org}/requests/{erasure}/certificate"),
        ),
        ("audit", format!("/console/{org}/audit")),
        (
            "audit search",
            format!("/console/{org}/audit?action=request.create"),
        ),
        ("retention", format!("/console/{org}/retention")),
        ("holds", format!("/console/{org}/holds")),
        ("deletion log", format!("/console/{org}/deletion-log")),
        ("members", format!("/console/{org}/members")),
        ("access review", format!("/console/{org}/access-review")),
        ("support", format!("/console/{org}/support-requests")),
        ("settings", format!("/console/{org}/settings")),
    ];
    println!(
        "{:<18} {:>9} {:>9} {:>9}  under {} ms",
        "page",
        "median",
        "p95",
        "worst",
        TARGET.as_millis()
    );
    let mut all_under = true;
    for (name, path) in pages {
        let mut times = Vec::with_capacity(runs);
        for i in 0..runs + 2 {
            let t = Instant::now();
            let r = client
                .get(format!("{base}{path}"))
                .bearer_auth(&owner)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body = r.bytes().await.unwrap();
            assert!(status.is_success(), "{name}: {status}");
            assert!(!body.is_empty());
            if i >= 2 {
                times.push(t.elapsed());
            }
        }
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        let worst = *times.last().unwrap();
        let under = worst < TARGET;
        all_under &= under;
        println!(
            "{name:<18} {:>7.1}ms {:>7.1}ms {:>7.1}ms  {}",
            at(0.5).as_secs_f64() * 1e3,
            at(0.95).as_secs_f64() * 1e3,
            worst.as_secs_f64() * 1e3,
            if under { "yes" } else { "NO" }
        );
    }
    println!(
        "every page under {} ms: {}",
        TARGET.as_millis(),
        if all_under { "yes" } else { "no" }
    );
}
