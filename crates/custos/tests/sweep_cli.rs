//! `custos sweep` end to end on a real data directory: output forms, and a crash test that
//! kills the sweeping process at 50 random points and shows that after restarts nothing was
//! purged early, nothing was lost, every action happened exactly once, no orphan blob or row
//! is left, and the audit log verifies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use custos_core::{
    Caller, Custos, FileUpload, ManualClock, NewHold, NewMember, NewOrg, NewRecord, Principal,
};
use custos_crypto::{KeyVault, LocalKms};
use custos_keystore_sqlite::SqliteKeyStore;
use custos_policy::Policy;
use custos_store::prelude::*;
use custos_store::{ObjectLocation, Objects, RecordState, SqliteStore};
use jiff::{Timestamp, ToSpan};
use serde_json::json;

/// A data directory laid out as `custos` lays it out, filled through the core library with
/// a manual clock (so records can be created in the past), then driven by the real binary.
struct Data {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

/// What the fixture created, by expected fate.
#[derive(Default)]
struct Fixture {
    org: String,
    /// Past retention: must end purged, each exactly once.
    expired: BTreeSet<String>,
    /// Past `archive_after` only: must end archived.
    archivable: BTreeSet<String>,
    /// Past retention but under a legal hold: must survive.
    held: BTreeSet<String>,
    /// Not due: must survive untouched.
    fresh: BTreeSet<String>,
}

fn days_before(t: Timestamp, n: i64) -> Timestamp {
    t.to_zoned(jiff::tz::TimeZone::UTC)
        .checked_sub(n.days())
        .unwrap()
        .timestamp()
}

impl Data {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        Data { _tmp: tmp, dir }
    }

    fn custos(&self, clock: Arc<ManualClock>) -> Custos {
        let store = Arc::new(SqliteStore::open(&self.dir.join("custos.db")).unwrap());
        let objects = Objects::open(&ObjectLocation::File(self.dir.join("objects"))).unwrap();
        let keys = self.dir.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let kms = LocalKms::open_or_create(&keys.join("root.keyring")).unwrap();
        let key_store = SqliteKeyStore::open(&keys.join("keys.db")).unwrap();
        let vault = Arc::new(KeyVault::new(Arc::new(kms), Arc::new(key_store)));
        Custos::new(Arc::new(Policy::builtin()), store, objects, vault, clock)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
        cmd.arg("--data")
            .arg(&self.dir)
            .args(args)
            .current_dir(self.dir.parent().unwrap())
            .env_remove("CUSTOS_DATABASE")
            .env_remove("CUSTOS_OBJECTS")
            .env_remove("CUSTOS_KEYS")
            .env_remove("CUSTOS_ROOT_KEY")
            .env("CUSTOS_LOG", "warn");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "custos {args:?} failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Creates `expired` app-log records and `files` upload files past retention, `archivable`
    /// messages past archive_after only, `held` expired records under a subject hold, and
    /// `fresh` records not yet due.
    async fn fill(&self, expired: usize, files: usize, archivable: usize, held: usize) -> Fixture {
        let now = Timestamp::now();
        let clock = Arc::new(ManualClock::new(days_before(now, 400)));
        let custos = self.custos(clock.clone());
        let admin = Caller::new(Principal::Admin);
        let system = Caller::new(Principal::System);
        let org = custos
            .create_org(
                &admin,
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
        let mut fx = Fixture {
            org: org.clone(),
            ..Fixture::default()
        };
        let logs = |n: usize, subject: Option<&str>| -> Vec<NewRecord> {
            (0..n)
                .map(|i| NewRecord {
                    category: "app_logs".into(),
                    subject: subject
                        .map(str::to_string)
                        .or(Some(format!("user-{}", i % 50))),
                    content: json!({ "line": format!("GET /items/{i} 200") }),
                    metadata: None,
                })
                .collect()
        };
        for chunk in logs(expired, None).chunks(1000) {
            for r in custos
                .create_records(&system, &org, chunk.to_vec())
                .await
                .unwrap()
            {
                fx.expired.insert(r.id);
            }
        }
        for r in custos
            .create_records(&system, &org, logs(held, Some("held-subject")))
            .await
            .unwrap()
        {
            fx.held.insert(r.id);
        }
        for i in 0..files {
            let body = Bytes::from(format!("upload {i} ").repeat(2000));
            let r = custos
                .upload_file(
                    &system,
                    &org,
                    FileUpload {
                        category: "uploads".into(),
                        file_name: Some(format!("f{i}.txt")),
                        ..Default::default()
                    },
                    futures::stream::iter([Ok::<_, std::io::Error>(body)]),
                )
                .await
                .unwrap();
            fx.expired.insert(r.id);
        }
        // Messages: archived after 90 days, kept 365.
        clock.set(days_before(now, 120));
        let messages: Vec<NewRecord> = (0..archivable)
            .map(|i| NewRecord {
                category: "messages".into(),
                subject: None,
                content: json!({ "text": format!("message {i}") }),
                metadata: None,
            })
            .collect();
        for r in custos
            .create_records(&system, &org, messages)
            .await
            .unwrap()
        {
            fx.archivable.insert(r.id);
        }
        clock.set(days_before(now, 1));
        for r in custos
            .create_records(&system, &org, logs(50, None))
            .await
            .unwrap()
        {
            fx.fresh.insert(r.id);
        }
        let owner = custos
            .add_member(
                &admin,
                &org,
                NewMember {
                    name: "counsel".into(),
                    roles: vec!["owner".into()],
                    groups: vec![],
                    mfa: false,
                    identity: None,
                },
            )
            .await
            .unwrap();
        let owner = Caller::new(custos.authenticate(&owner.api_key).await.unwrap());
        custos
            .create_hold(
                &owner,
                &org,
                NewHold {
                    reason: "litigation".into(),
                    subject: Some("held-subject".into()),
                    category: None,
                },
            )
            .await
            .unwrap();
        fx
    }

    /// Record id → state, read from the database between runs.
    async fn states(&self, org: &str) -> BTreeMap<String, (RecordState, bool)> {
        let store = SqliteStore::open(&self.dir.join("custos.db")).unwrap();
        let scope = store.org(org).await.unwrap().unwrap().0;
        let mut out = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_records(&scope, &Default::default(), after.as_deref(), 1000)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for r in page {
                out.insert(r.id, (r.state, r.blob_size.is_some()));
            }
        }
        out
    }

    async fn deletion_log(&self, org: &str) -> Vec<custos_store::DeletionEntry> {
        let store = SqliteStore::open(&self.dir.join("custos.db")).unwrap();
        let scope = store.org(org).await.unwrap().unwrap().0;
        store.deletion_log(&scope, None, 100_000).await.unwrap()
    }

    /// Audit actions by name, decoded from the stored log.
    async fn audit_actions(&self) -> BTreeMap<String, BTreeMap<String, usize>> {
        let store = SqliteStore::open(&self.dir.join("custos.db")).unwrap();
        let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let mut from = 0;
        loop {
            let page = store.audit_entries(None, from, 5000).await.unwrap();
            let Some(last) = page.last() else { break };
            from = last.index + 1;
            for e in page {
                let event = custos_audit::AuditEvent::from_canonical_bytes(&e.leaf).unwrap();
                if let Some(target) = event.target {
                    *out.entry(event.action.as_str().to_string())
                        .or_default()
                        .entry(target.to_string())
                        .or_default() += 1;
                }
            }
        }
        out
    }

    /// The `record.purge` events by audit index.
    async fn purge_events(&self) -> BTreeMap<u64, custos_audit::AuditEvent> {
        let store = SqliteStore::open(&self.dir.join("custos.db")).unwrap();
        let filter = custos_store::AuditFilter {
            action: Some("record.purge".into()),
            ..Default::default()
        };
        let mut out = BTreeMap::new();
        let mut from = 0;
        loop {
            let page = store.audit_query(None, &filter, from, 5000).await.unwrap();
            let Some(last) = page.last() else { break };
            from = last.index + 1;
            for e in page {
                let event = custos_audit::AuditEvent::from_canonical_bytes(&e.leaf).unwrap();
                out.insert(e.index, event);
            }
        }
        out
    }

    /// Object keys (paths relative to the object store) present on disk.
    fn objects(&self) -> BTreeSet<String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    out.insert(p.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let root = self.dir.join("objects");
        let mut out = BTreeSet::new();
        walk(&root, &root, &mut out);
        out
    }
}

/// The record id an object key belongs to.
fn object_record(key: &str) -> String {
    let name = key.rsplit('/').next().unwrap();
    name.split('.').next().unwrap().to_string()
}

#[tokio::test]
async fn dry_run_json_and_summary() {
    let data = Data::new();
    let fx = data.fill(30, 2, 5, 3).await;
    let before = data.states(&fx.org).await;

    let out = data.ok(&["sweep", "--dry-run", "--json"]);
    let actions: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(actions.len(), 32 + 5 + 3, "{out}");
    for a in &actions {
        let keys: BTreeSet<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["org", "record", "category", "action", "due"])
        );
        assert_eq!(a["org"], fx.org.as_str());
    }
    let count = |kind: &str| actions.iter().filter(|a| a["action"] == kind).count();
    assert_eq!(
        (count("purge"), count("archive"), count("held")),
        (32, 5, 3)
    );
    assert_eq!(
        data.states(&fx.org).await,
        before,
        "a dry run changed records"
    );

    // A forecast a year ahead also sees the fresh records and the messages expire.
    let ahead = (Timestamp::now() + jiff::SignedDuration::from_hours(400 * 24)).to_string();
    let out = data.ok(&["sweep", "--dry-run", "--as-of", &ahead, "--json"]);
    assert_eq!(out.lines().count(), 32 + 5 + 3 + 50, "{out}");
    // --as-of without --dry-run and a bad time are input errors (exit 2).
    assert_eq!(
        data.run(&["sweep", "--as-of", &ahead]).status.code(),
        Some(2)
    );
    let bad = data.run(&["sweep", "--dry-run", "--as-of", "next tuesday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--as-of"));

    // SLA report: 32 records past retention + expired_within, 3 of them legally held.
    let report = data.run(&["sweep", "--report", "--json"]);
    assert_eq!(
        report.status.code(),
        Some(1),
        "overdue records fail the check"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(report.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 35);
    assert!(lines.iter().all(|l| l["kind"] == "expired"));
    assert_eq!(lines.iter().filter(|l| l["held"] == true).count(), 3);

    let summary = data.ok(&["sweep"]);
    assert!(
        summary.contains("did archive 5, purge 32; 3 held"),
        "{summary}"
    );
    assert!(data
        .ok(&["sweep", "--dry-run"])
        .contains("would archive 0, purge 0; 3 held"));
}

#[tokio::test]
async fn killed_sweeps_lose_nothing_and_do_everything_once() {
    let data = Data::new();
    let fx = data.fill(6000, 150, 1500, 100).await;
    let survivors: BTreeSet<&String> = fx.held.iter().chain(&fx.fresh).collect();
    // A deterministic spread of kill delays (xorshift), from "during start-up" to "deep
    // into the work".
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut kills_mid_work = 0;
    for round in 0..50 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_millis(20 + rng % 400);
        let mut child = data
            .command(&["sweep", "--json", "--lease", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            kills_mid_work += 1;
        }
        child.kill().ok();
        child.wait().unwrap();

        // Between crashes: nothing early, nothing lost.
        let states = data.states(&fx.org).await;
        for id in &survivors {
            assert_eq!(
                states.get(*id).map(|s| s.0),
                Some(RecordState::Active),
                "round {round}: survivor {id} touched"
            );
        }
        for id in &fx.archivable {
            assert!(states.contains_key(id), "round {round}: message {id} lost");
        }
        for e in data.deletion_log(&fx.org).await {
            assert!(e.due_at <= e.purged_at, "purged early: {e:?}");
            assert!(fx.expired.contains(&e.record_id), "round {round}: {e:?}");
            assert!(!states.contains_key(&e.record_id), "purged but still a row");
        }
    }
    assert!(
        kills_mid_work >= 10,
        "only {kills_mid_work} kills hit a running sweep"
    );

    // A last, uninterrupted run, once the killed runs' claims have lapsed, finishes the work.
    std::thread::sleep(Duration::from_millis(1100));
    data.ok(&["sweep"]);
    let states = data.states(&fx.org).await;
    let log = data.deletion_log(&fx.org).await;
    let purged: BTreeSet<String> = log.iter().map(|e| e.record_id.clone()).collect();
    assert!(
        purged == fx.expired,
        "purged {} records, expected the {} expired ones",
        purged.len(),
        fx.expired.len()
    );
    for id in &fx.archivable {
        assert_eq!(states[id].0, RecordState::Archived, "message {id}");
    }
    assert_eq!(
        states.len(),
        fx.archivable.len() + survivors.len(),
        "rows left over"
    );
    // Exactly once: each purged record is in one deletion-log row, each row points at the
    // batch event whose digest covers exactly the rows pointing at it, and there is no other
    // purge event; one audit event per archive.
    let events = data.purge_events().await;
    let mut batches: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for e in &log {
        let index = e.audit_index.expect("every purge names its audit event");
        batches.entry(index).or_default().push(&e.record_id);
    }
    assert_eq!(
        events.keys().copied().collect::<Vec<_>>(),
        batches.keys().copied().collect::<Vec<_>>(),
        "purge events without deletion-log rows, or rows without their event"
    );
    for (index, ids) in &batches {
        assert!(
            custos_core::purge_event_covers(&events[index], ids),
            "purge event {index} does not cover its {} records",
            ids.len()
        );
    }
    let actions = data.audit_actions().await;
    let archives = &actions["record.archive"];
    assert_eq!(archives.len(), fx.archivable.len());
    assert!(
        archives.values().all(|n| *n == 1),
        "an archive audited twice"
    );
    // No orphan blobs: every object belongs to a live record (archived hot copies included).
    for key in data.objects() {
        let id = object_record(&key);
        assert!(states.contains_key(&id), "orphan object {key}");
    }
    // No orphan rows: no live file record without its blob.
    let objects: BTreeSet<String> = data.objects().iter().map(|k| object_record(k)).collect();
    for (id, (_, has_blob)) in &states {
        if *has_blob {
            assert!(objects.contains(id), "record {id} lost its blob");
        }
    }
    data.ok(&["audit", "verify"]);
}
