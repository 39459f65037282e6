//! The affected-subject computation of an incident over a large audit log, for
//! `bench/affected.sh`: time and peak memory of `Custos::incident_affected` on a real
//! deployment (SQLite store, local KMS, SQLite key store).
//!
//!   affected_bench generate DIR N      # a deployment in DIR whose log holds N more events
//!   affected_bench measure DIR SCOPE   # SCOPE: `actor` (one actor's reads) or `all`
//!
//! `generate` appends N audit events straight to the store, in time order, one millisecond
//! apart, in batches: 60% are disclosing (`record.read`, `record.reveal`, `file.download`,
//! `request.export`) by 1,000 members of two orgs over 100,000 subjects and three
//! categories; the rest are writes, sign-ins and LLM calls. `measure` runs in a fresh
//! process so its peak RSS (`VmHWM`) is the computation's, opens an incident over the whole
//! window (one actor, or every actor), computes its affected subjects, and prints
//! `RESULT scope=… events=… disclosing=… subjects=… records=… seconds=… peak_rss_mb=…`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use custos_audit::{Actor, AuditAction, AuditEvent, Details, Target};
use custos_core::incidents::{IncidentScope, NewIncident};
use custos_core::{Caller, Custos, NewOrg, Principal, SystemClock};
use custos_crypto::{KeyVault, LocalKms};
use custos_keystore_sqlite::SqliteKeyStore;
use custos_policy::Policy;
use custos_store::prelude::*;
use custos_store::{ObjectLocation, Objects, SqliteStore};

/// Members acting in the log (spread over both orgs).
const ACTORS: u64 = 1000;
/// Distinct subjects per org.
const SUBJECTS: u64 = 50_000;
/// Events appended per transaction.
const BATCH: u64 = 20_000;
/// Where the generated log starts.
const START: &str = "2026-01-01T00:00:00Z";

fn usage() -> ! {
    eprintln!("usage: affected_bench generate DIR N | affected_bench measure DIR (actor|all)");
    std::process::exit(2)
}

fn open(data: &Path) -> (Custos, Arc<SqliteStore>) {
    std::fs::create_dir_all(data.join("keys")).expect("data dir");
    let store = Arc::new(SqliteStore::open(&data.join("custos.db")).expect("store"));
    let objects = Objects::open(&ObjectLocation::File(data.join("objects"))).expect("objects");
    let kms = LocalKms::open_or_create(&data.join("keys/root.keyring")).expect("kms");
    let keys = SqliteKeyStore::open(&data.join("keys/keys.db")).expect("key store");
    let vault = Arc::new(KeyVault::new(Arc::new(kms), Arc::new(keys)));
    let signer = custos_crypto::DeploymentSigner::open_or_create(
        &data.join("keys/signing.key"),
        "custos.bench",
    )
    .expect("signer");
    let custos = Custos::new(
        Arc::new(Policy::builtin()),
        store.clone(),
        objects,
        vault,
        Arc::new(SystemClock),
    )
    .with_audit_signer(Arc::new(signer));
    (custos, store)
}

/// A cheap deterministic stream of numbers (splitmix64), so every run generates the same log.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Event `i` of the generated log.
fn event(i: u64, orgs: &[String; 2], n: &mut Numbers) -> AuditEvent {
    let start: jiff::Timestamp = START.parse().expect("start time");
    let time = start + jiff::SignedDuration::from_millis(i as i64);
    let actor = n.next() % ACTORS;
    let org = &orgs[(actor % 2) as usize];
    let subject = format!("{:032x}", (actor % 2) << 40 | (n.next() % SUBJECTS));
    let category = ["messages", "documents", "app_logs"][(n.next() % 3) as usize];
    let roll = n.next() % 100;
    let (action, details) = match roll {
        0..=44 => (
            AuditAction::RecordRead,
            Details::new().category(category).subject_ref(subject),
        ),
        45..=54 => (
            AuditAction::RecordReveal,
            Details::new().category(category).subject_ref(subject),
        ),
        55..=58 => (
            AuditAction::FileDownload,
            Details::new().category(category).subject_ref(subject),
        ),
        59 => (
            AuditAction::RequestExport,
            Details::new()
                .subject_ref(subject)
                .format("json")
                .records(n.next() % 50),
        ),
        60..=84 => (
            AuditAction::RecordCreate,
            Details::new().category(category).records(1u64),
        ),
        85..=94 => (
            AuditAction::LlmChatCompletions,
            Details::new().model("gpt-4o"),
        ),
        _ => (AuditAction::AuthSignIn, Details::new().method("oidc")),
    };
    AuditEvent::new(time, Actor::Member(format!("m{actor}")), action)
        .org(org.clone())
        .target(Target::Record(format!("{i:020}")))
        .details(details)
}

async fn generate(data: &Path, n: u64) {
    let (custos, store) = open(data);
    let admin = Caller::new(Principal::Admin);
    let mut orgs = Vec::new();
    for name in ["bench-a", "bench-b"] {
        let created = custos
            .create_org(
                &admin,
                NewOrg {
                    name: name.into(),
                    region: None,
                    owner: None,
                },
            )
            .await
            .expect("org");
        orgs.push(created.org.id);
    }
    let orgs: [String; 2] = orgs.try_into().expect("two orgs");
    std::fs::write(data.join("orgs"), orgs.join("\n")).expect("orgs file");
    let mut numbers = Numbers(42);
    let began = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<AuditEvent> = (i..(i + BATCH).min(n))
            .map(|j| event(j, &orgs, &mut numbers))
            .collect();
        store.append_audit(&batch).await.expect("append");
        i += batch.len() as u64;
        if i % 1_000_000 == 0 || i == n {
            eprintln!(
                "generated {i} events in {:.0} s",
                began.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "RESULT generated={n} seconds={:.1}",
        began.elapsed().as_secs_f64()
    );
}

/// The peak resident set size of this process so far, in MiB (`VmHWM`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

async fn measure(data: &Path, scope: &str) {
    let (custos, store) = open(data);
    let admin = Caller::new(Principal::Admin);
    let events = store.audit_size().await.expect("size");
    let actors = match scope {
        "actor" => vec!["member:m0".to_string()],
        "all" => vec![],
        _ => usage(),
    };
    let incident = custos
        .create_incident(
            &admin,
            NewIncident {
                title: "bench".into(),
                detected_at: None,
                scope: IncidentScope {
                    actors,
                    from: Some(START.parse().expect("start")),
                    ..IncidentScope::default()
                },
            },
        )
        .await
        .expect("incident");
    let before = peak_rss_mib();
    let began = Instant::now();
    let affected = custos
        .incident_affected(&admin, &incident.id)
        .await
        .expect("affected");
    let seconds = began.elapsed().as_secs_f64();
    let subjects: usize = affected.orgs.iter().map(|o| o.subjects.len()).sum();
    let records: u64 = affected
        .orgs
        .iter()
        .flat_map(|o| &o.subjects)
        .flat_map(|s| s.categories.values())
        .sum();
    println!(
        "RESULT scope={scope} events={events} subjects={subjects} records={records} \
         seconds={seconds:.2} peak_rss_mb={:.0} rss_before_mb={before:.0}",
        peak_rss_mib()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["generate", dir, n] => {
            let n = n.replace('_', "").parse().unwrap_or_else(|_| usage());
            generate(Path::new(dir), n).await
        }
        ["measure", dir, scope] => measure(Path::new(dir), scope).await,
        _ => usage(),
    }
}
