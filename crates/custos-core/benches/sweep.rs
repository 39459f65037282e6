//! Sweep cost: a pass over a store of `CUSTOS_BENCH_SWEEP_RECORDS` records (default
//! 1,000,000) of which 1% are due, against the same 10,000 due records in a store ten times
//! smaller, on SQLite. A pass should cost what is due, not what is stored.
//!
//! ```text
//! cargo bench -p custos-core --bench sweep
//! ```
//!
//! Records are loaded straight through `Store::insert_records` (1,000 per transaction, with
//! ~200 bytes of stand-in sealed content; the sweep never opens content), so loading does not
//! dominate the run. Due records are app logs past retention, and as retention makes them, the
//! oldest ones (the first loaded); each is purged with its deletion-log row and its audit
//! event, as in production. `CUSTOS_BENCH_SWEEP_SPREAD=1` spreads them evenly over the table
//! instead (every 100th record: the worst case for page locality).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_audit::{Actor, AuditEvent};
use custos_core::{Caller, Custos, ManualClock, NewOrg, Principal, SweepOptions};
use custos_crypto::{KeyVault, LocalKms};
use custos_keystore_sqlite::SqliteKeyStore;
use custos_policy::Policy;
use custos_store::prelude::*;
use custos_store::{ObjectLocation, Objects, RecordRow, RecordState, SqliteStore};

fn num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

struct Run {
    stored: usize,
    due: usize,
    load: Duration,
    sweep: Duration,
    purged: u64,
    idle_pass: Duration,
}

async fn run(dir: &Path, stored: usize, due: usize) -> Run {
    let now: jiff::Timestamp = "2027-06-01T00:00:00Z".parse().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("custos.db")).unwrap());
    let objects = Objects::open(&ObjectLocation::File(dir.join("objects"))).unwrap();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let kms = LocalKms::open_or_create(&dir.join("keys/root.keyring")).unwrap();
    let keys = SqliteKeyStore::open(&dir.join("keys/keys.db")).unwrap();
    let vault = Arc::new(KeyVault::new(Arc::new(kms), Arc::new(keys)));
    let clock = Arc::new(ManualClock::new(now));
    let custos = Custos::new(
        Arc::new(Policy::builtin()),
        store.clone(),
        objects,
        vault,
        clock,
    );
    let org = custos
        .create_org(
            &Caller::new(Principal::Admin),
            NewOrg {
                name: "bench".into(),
                region: None,
                owner: None,
            },
        )
        .await
        .unwrap()
        .org
        .id;
    let scope = store.org(&org).await.unwrap().unwrap().0;

    let day = jiff::SignedDuration::from_hours(24);
    let past = now - day * 10;
    let future = now + day * 300;
    let spread = std::env::var_os("CUSTOS_BENCH_SWEEP_SPREAD").is_some();
    let every = (stored / due.max(1)).max(1);
    let is_due = |k: usize| {
        if spread {
            k.is_multiple_of(every)
        } else {
            k < due
        }
    };
    let t = Instant::now();
    let mut i = 0;
    while i < stored {
        let n = 1000.min(stored - i);
        let rows: Vec<RecordRow> = (i..i + n)
            .map(|k| {
                let expire_at = if is_due(k) { past } else { future };
                RecordRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    category: "app_logs".into(),
                    subject_ref: None,
                    state: RecordState::Active,
                    created_at: expire_at - day * 90,
                    archive_at: None,
                    expire_at,
                    deleted_at: None,
                    next_due_at: Some(expire_at),
                    key_ref: "org:1".into(),
                    sealed: Some(vec![(k % 251) as u8; 200]),
                    blob_size: None,
                    pii: serde_json::json!({}),
                }
            })
            .collect();
        let event =
            AuditEvent::new(now, Actor::System, custos_audit::AuditAction::RecordCreate).org(&org);
        store.insert_records(&scope, &rows, &[event]).await.unwrap();
        i += n;
    }
    // Settle the load's WAL into the database first, so the checkpoint of a million inserts
    // is not charged to the sweep that follows.
    store.forget_deleted().await.unwrap();
    let load = t.elapsed();

    let t = Instant::now();
    let summary = custos
        .sweep(&SweepOptions::default(), &mut |_| {})
        .await
        .unwrap();
    let sweep = t.elapsed();
    let t = Instant::now();
    let idle = custos
        .sweep(&SweepOptions::default(), &mut |_| {})
        .await
        .unwrap();
    let idle_pass = t.elapsed();
    assert_eq!(idle.purged, 0);
    Run {
        stored,
        due: (0..stored).filter(|k| is_due(*k)).count(),
        load,
        sweep,
        purged: summary.purged,
        idle_pass,
    }
}

fn report(r: &Run) {
    println!(
        "stored {:>9}, due {:>6}: load {:>6.1} s; sweep {:>7.3} s, purged {:>6} = {:>8.0} purges/s; next pass with nothing due {:>7.3} ms",
        r.stored,
        r.due,
        r.load.as_secs_f64(),
        r.sweep.as_secs_f64(),
        r.purged,
        r.purged as f64 / r.sweep.as_secs_f64(),
        r.idle_pass.as_secs_f64() * 1000.0
    );
}

#[tokio::main]
async fn main() {
    let stored = num("CUSTOS_BENCH_SWEEP_RECORDS", 1_000_000);
    let due = stored / 100;
    println!(
        "custos sweep bench (SQLite, WAL, synchronous=FULL, secure_delete; load {:?})",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    for size in [stored / 10, stored] {
        let dir = tempfile::tempdir().unwrap();
        let r = run(dir.path(), size, due).await;
        assert_eq!(r.purged as usize, r.due);
        report(&r);
    }
}
