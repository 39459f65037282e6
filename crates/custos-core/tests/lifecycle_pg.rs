//! Two sweepers, as two Custos instances with their own connection pools, on one PostgreSQL
//! database: every due record is purged exactly once between them.
//!
//! Needs PostgreSQL (`CUSTOS_TEST_POSTGRES_URL`, default the local test server); skipped
//! with a loud message when it is unreachable, fatal under `CI=true`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use custos_core::{Caller, Custos, ManualClock, NewOrg, NewRecord, Principal, SweepOptions};
use custos_crypto::{KeyVault, LocalKms};
use custos_keystore_sqlite::SqliteKeyStore;
use custos_policy::Policy;
use custos_store::prelude::*;
use custos_store::{ObjectLocation, Objects, PgStore};
use jiff::ToSpan;
use serde_json::json;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A store on a fresh schema, or `None` after a loud skip message.
async fn pg_store(url: &str, schema: &str) -> Option<PgStore> {
    match PgStore::connect(url, Some(schema)).await {
        Ok(store) => Some(store),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL at {url} unusable ({e}); CI=true makes this fatal")
        }
        Err(e) => {
            eprintln!("\n*** SKIPPED: PostgreSQL at {url} unusable ({e}); set CUSTOS_TEST_POSTGRES_URL, and CI=true to make this fatal ***\n");
            None
        }
    }
}

fn instance(store: PgStore, dir: &Path, clock: Arc<ManualClock>) -> Custos {
    let objects = Objects::open(&ObjectLocation::File(dir.join("objects"))).unwrap();
    let kms = LocalKms::open_or_create(&dir.join("keys/root.keyring")).unwrap();
    let keys = SqliteKeyStore::open(&dir.join("keys/keys.db")).unwrap();
    let vault = Arc::new(KeyVault::new(Arc::new(kms), Arc::new(keys)));
    Custos::new(
        Arc::new(Policy::builtin()),
        Arc::new(store),
        objects,
        vault,
        clock,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sweepers_on_one_database_do_each_action_once() {
    let url = std::env::var("CUSTOS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    let schema = format!("custos_sweep_{}", uuid::Uuid::new_v4().simple());
    let Some(first) = pg_store(&url, &schema).await else {
        return;
    };
    let second = pg_store(&url, &schema).await.expect("second connection");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    let clock = Arc::new(ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap()));
    // A third handle on the same database, to read what the two instances did.
    let reader = first.clone();
    let a = instance(first, dir.path(), clock.clone());
    let b = instance(second, dir.path(), clock.clone());

    let system = Caller::new(Principal::System);
    let org = a
        .create_org(
            &Caller::new(Principal::Admin),
            NewOrg {
                name: "acme".into(),
                region: None,
                owner: None,
            },
        )
        .await
        .unwrap()
        .org
        .id;
    const N: usize = 2000;
    for chunk in 0..(N / 500) {
        let batch = (0..500)
            .map(|i| NewRecord {
                category: "app_logs".into(),
                subject: Some(format!("user-{}", (chunk * 500 + i) % 40)),
                content: json!({ "line": i }),
                metadata: None,
            })
            .collect();
        a.create_records(&system, &org, batch).await.unwrap();
    }
    clock.advance(91.days());

    let opts = SweepOptions {
        batch: 20,
        ..SweepOptions::default()
    };
    let (mut quiet_a, mut quiet_b) = (|_: &_| {}, |_: &_| {});
    let (ra, rb) = tokio::join!(a.sweep(&opts, &mut quiet_a), b.sweep(&opts, &mut quiet_b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    eprintln!(
        "sweeper A purged {}, sweeper B purged {}",
        ra.purged, rb.purged
    );
    assert_eq!(ra.purged + rb.purged, N as u64);
    assert!(
        ra.purged > 0 && rb.purged > 0,
        "both sweepers should share the work"
    );

    // Exactly once: N deletion-log rows, each pointing at a batch purge event whose digest
    // covers exactly the rows pointing at it, and no other purge event.
    let store = &reader;
    let scope = store.org(&org).await.unwrap().unwrap().0;
    let log = store.deletion_log(&scope, None, 10_000).await.unwrap();
    assert_eq!(log.len(), N);
    let mut batches: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for e in &log {
        batches
            .entry(e.audit_index.expect("every purge names its audit event"))
            .or_default()
            .push(&e.record_id);
    }
    let filter = custos_store::AuditFilter {
        action: Some("record.purge".into()),
        ..Default::default()
    };
    let events = store.audit_query(None, &filter, 0, 10_000).await.unwrap();
    assert_eq!(events.len(), batches.len(), "a purge was audited twice");
    for e in events {
        let event = custos_audit::AuditEvent::from_canonical_bytes(&e.leaf).unwrap();
        let ids = &batches[&e.index];
        assert!(
            custos_core::purge_event_covers(&event, ids),
            "purge event {} does not cover its {} records",
            e.index,
            ids.len()
        );
    }
    // And nothing is left for a third pass.
    assert_eq!(a.sweep(&opts, &mut |_| {}).await.unwrap().purged, 0);
    PgStore::drop_schema(&url, &schema).await.unwrap();
}
