//! Audit log figures through the real `SqliteStore` (and `PgStore` when reachable):
//!
//! 1. durable append throughput: batches of `CUSTOS_BENCH_AUDIT_BATCH` (default 1,000)
//!    events, one `append_audit` transaction each (WAL, synchronous=FULL: one fsync per
//!    batch, i.e. group commit), `CUSTOS_BENCH_AUDIT_APPEND` events (default 200,000);
//! 2. proof generation from stored nodes at `CUSTOS_BENCH_AUDIT_ENTRIES` entries (default
//!    10,000,000; the database is built once with large transactions and kept under
//!    `<target>/audit-bench/` for reuse);
//! 3. full verification speed: every leaf re-hashed and the tree recomputed, streamed from
//!    the store in pages, in MB/s of leaf bytes.
//!
//! ```text
//! cargo bench -p custos-store --bench audit
//! ```
//!
//! `CUSTOS_BENCH_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`) adds the append
//! figure on PostgreSQL; `CUSTOS_BENCH_ONLY=sqlite` skips it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use custos_audit::{leaf_hash, Actor, AuditEvent, LogVerifier, Outcome};
use custos_store::prelude::*;
use custos_store::{PgStore, SqliteStore, Store, STORED_MIN_LEVEL};

fn num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A realistic event: an API record creation by a member, with request id and source.
fn event(i: u64) -> AuditEvent {
    let t: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
    AuditEvent::new(
        t + jiff::SignedDuration::from_micros(i as i64 * 20),
        Actor::Member(format!("0190f3a2-7c1e-7d4b-9a8e-{:012x}", i % 1000)),
        custos_audit::AuditAction::RecordCreate,
    )
    .org(format!("0190f3a2-0000-7000-8000-{:012x}", i % 50))
    .target(custos_audit::Target::Record(format!(
        "0190f3a2-7c1e-7d4b-9a8e-{i:012x}"
    )))
    .outcome(if matches!(i % 97, 0) {
        Outcome::Denied
    } else {
        Outcome::Success
    })
    .request(
        Some(format!("4b1d6a8e-2f0c-4e5a-9b7d-{:012x}", i)),
        Some("10.0.3.17".into()),
    )
}

/// CPU seconds used by this process so far (user + system, all threads), from /proc: the
/// machine may be shared, so rates are also given per CPU-second.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

async fn append_throughput(store: &dyn Store, total: u64, batch: u64) -> (f64, f64) {
    let start_size = store.audit_size().await.unwrap();
    let batches: Vec<Vec<AuditEvent>> = (0..total / batch)
        .map(|b| {
            (start_size + b * batch..start_size + (b + 1) * batch)
                .map(event)
                .collect()
        })
        .collect();
    let started = Instant::now();
    let cpu = cpu_secs();
    for events in &batches {
        store.append_audit(events).await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = (cpu_secs() - cpu).max(0.01);
    let n = (total / batch * batch) as f64;
    (n / secs, n / cpu)
}

async fn build_big(store: &SqliteStore, entries: u64) {
    let mut size = store.audit_size().await.unwrap();
    if size >= entries {
        println!("  reusing the {size}-entry log");
        return;
    }
    let started = Instant::now();
    let chunk = 100_000u64;
    while size < entries {
        let n = chunk.min(entries - size);
        let events: Vec<AuditEvent> = (size..size + n).map(event).collect();
        store.append_audit(&events).await.unwrap();
        size += n;
        if matches!(size % 1_000_000, 0) {
            println!(
                "  built {size} entries ({:.0} events/s)",
                size as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "  built {entries} entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

async fn proofs(store: &SqliteStore, size: u64) {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let root = store.audit_root(size).await.unwrap();
    // Warm the page cache the way a serving process is warm.
    for _ in 0..200 {
        store
            .audit_inclusion_proof(next() % size, size)
            .await
            .unwrap();
    }
    let mut times = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let index = next() % size;
        let t = Instant::now();
        let p = store.audit_inclusion_proof(index, size).await.unwrap();
        times.push(t.elapsed());
        p.verify(&root).unwrap();
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "  inclusion proof at {size} entries: mean {:.0} µs, p50 {:.0} µs, p99 {:.0} µs ({} hashes)",
        mean.as_secs_f64() * 1e6,
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        store
            .audit_inclusion_proof(size / 3, size)
            .await
            .unwrap()
            .hashes
            .len()
    );
    let mut times = Vec::with_capacity(500);
    for _ in 0..500 {
        let old = 1 + next() % (size - 1);
        let t = Instant::now();
        store.audit_consistency_proof(old, size).await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "  consistency proof to {size}: p50 {:.0} µs, p99 {:.0} µs",
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6
    );
    let t = Instant::now();
    store.audit_root(size).await.unwrap();
    println!(
        "  root from stored nodes at {size}: {:.0} µs",
        t.elapsed().as_secs_f64() * 1e6
    );
}

/// What `custos audit verify` does: stream pages (two read ahead in parallel while one is hashed),
/// re-hash every leaf, check it against its stored hash, recompute the tree.
async fn verify_speed(store: std::sync::Arc<SqliteStore>, size: u64) {
    const PAGE: u32 = 20_000;
    let started = Instant::now();
    let cpu = cpu_secs();
    let mut v = LogVerifier::new([]);
    let mut bytes = 0u64;
    let read = |start: u64| {
        let s = store.clone();
        tokio::spawn(async move { s.audit_rows(start, PAGE).await })
    };
    let mut inflight = std::collections::VecDeque::new();
    let mut next_start = 0u64;
    for _ in 0..2 {
        inflight.push_back((next_start, read(next_start)));
        next_start += u64::from(PAGE);
    }
    while let Some((start, task)) = inflight.pop_front() {
        let page = task.await.unwrap().unwrap();
        if page.is_empty() {
            break;
        }
        inflight.push_back((next_start, read(next_start)));
        next_start += u64::from(PAGE);
        let end = start + u64::from(PAGE);
        for r in page.iter().take_while(|r| r.index < end) {
            bytes += r.leaf.len() as u64;
            v.push(r.index, &r.leaf, r.leaf_hash.as_ref()).unwrap();
        }
    }
    let report = v.finish().unwrap();
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu;
    assert_eq!(report.size, size);
    assert_eq!(report.root, store.audit_root(size).await.unwrap());
    println!(
        "  full verification of {size} entries ({:.0} MB of leaves): {secs:.1} s, {:.0} MB/s, {:.0} entries/s",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs,
        size as f64 / secs
    );
    println!("  ({cpu:.1} CPU-seconds used, reader and hasher threads together)");
    // The hashing alone, without the store, for reference.
    let leaves: Vec<Vec<u8>> = (0..200_000)
        .map(|i| event(i).to_canonical_bytes())
        .collect();
    let b: usize = leaves.iter().map(Vec::len).sum();
    let t = Instant::now();
    let mut f = custos_audit::Frontier::new();
    for l in &leaves {
        f.push(leaf_hash(l)).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  (hashing only: {:.0} MB/s over {}-byte leaves)",
        b as f64 / 1e6 / secs,
        b / leaves.len()
    );
}

#[tokio::main]
async fn main() {
    let append_total = num("CUSTOS_BENCH_AUDIT_APPEND", 200_000);
    let batch = num("CUSTOS_BENCH_AUDIT_BATCH", 1_000).max(1);
    let entries = num("CUSTOS_BENCH_AUDIT_ENTRIES", 10_000_000);
    let only = std::env::var("CUSTOS_BENCH_ONLY").unwrap_or_default();
    println!(
        "audit bench: stored node levels >= {STORED_MIN_LEVEL}, event ~{} bytes",
        event(12345).to_canonical_bytes().len()
    );

    println!("[1] durable append, SQLite (WAL, synchronous=FULL), batches of {batch}:");
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("custos.db")).unwrap();
    let (rate, per_cpu) = append_throughput(&store, append_total, batch).await;
    println!(
        "  {rate:.0} events/s wall over {append_total} events (target >= 50,000); \
         {per_cpu:.0} events per CPU-second of this process"
    );
    drop(store);

    if only.is_empty() || only == "pg" {
        let url = std::env::var("CUSTOS_BENCH_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("custos_audit_bench_{}", std::process::id());
        match PgStore::connect(&url, Some(&schema)).await {
            Ok(pg) => {
                println!("[1b] durable append, PostgreSQL, batches of {batch}:");
                let (rate, per_cpu) =
                    append_throughput(&pg, append_total.min(100_000), batch).await;
                println!("  {rate:.0} events/s wall; {per_cpu:.0} per CPU-second of Custos");
                drop(pg);
                let _ = PgStore::drop_schema(&url, &schema).await;
            }
            Err(e) => println!("[1b] PostgreSQL skipped: {e}"),
        }
    }

    println!("[2] proofs from the real store at {entries} entries:");
    let big_dir = target_dir().join("audit-bench");
    std::fs::create_dir_all(&big_dir).unwrap();
    let path = big_dir.join(format!("audit-{entries}-k{STORED_MIN_LEVEL}.db"));
    let store = std::sync::Arc::new(SqliteStore::open(&path).unwrap());
    build_big(&store, entries).await;
    proofs(&store, entries).await;

    println!("[3] full verification:");
    verify_speed(store, entries).await;
}
