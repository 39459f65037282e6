//! DSR benchmarks: erasure latency, anonymize/aggregate throughput, export throughput and
//! peak memory, on a real deployment (SQLite store, local KMS, SQLite key store, objects on
//! disk) in a temporary directory.
//!
//! ```text
//! cargo run --release -p custos-core --example dsr_bench -- erase 100000 [--runs 3]
//! cargo run --release -p custos-core --example dsr_bench -- anonymize 100000
//! cargo run --release -p custos-core --example dsr_bench -- aggregate 100000
//! cargo run --release -p custos-core --example dsr_bench -- export 100000 [--formats json,csv,pdf]
//! ```
//!
//! Each case loads `--runs` subjects (default 3) with N records each through
//! `Custos::create_records` (batches of `MAX_BATCH_RECORDS`), then measures one subject per
//! run. Besides the human-readable lines it prints one `RESULT key=value ...` line per run,
//! which `bench/dsr.sh` turns into a table.
//!
//! - `erase`: N `messages` records (`delete`). Measures from just before `erase_subject` to
//!   the fault hook point `erasure.delete_keys_destroyed` (the `delete` slots are gone; from
//!   then on no copy of those records can be opened), checks there that the subject's
//!   `<ref>/messages` slot is no longer in the key store, and reports the total too.
//! - `anonymize` / `aggregate`: N `interactions` (`anonymize`) or `analytics` (`aggregate`)
//!   records; the total `erase_subject` time, with the time spent disposing of records.
//! - `export`: N `messages` records of one subject, exported by `export_subject` to
//!   `io::sink()` in a fresh child process per run and format (this binary re-executed), so
//!   that its peak RSS (`VmHWM`) is the export's and not the loading's.
//!
//! This is an example binary and not a `cargo bench` target because the export case needs a
//! process of its own per measurement, and the numbers are figures for a report (medians of
//! a few runs of a long operation), not a statistical comparison.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custos_core::{
    Caller, Custos, ExportFormat, ManualClock, NewOrg, NewRecord, Principal, MAX_BATCH_RECORDS,
};
use custos_crypto::{KeyVault, LocalKms};
use custos_keystore_sqlite::SqliteKeyStore;
use custos_policy::Policy;
use custos_store::prelude::*;
use custos_store::{ObjectLocation, Objects, RequestStore, SqliteStore};
use serde_json::json;

/// What the command line asks for.
struct Args {
    case: String,
    n: usize,
    runs: usize,
    formats: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: dsr_bench (erase|anonymize|aggregate|export) N [--runs R] [--formats json,csv,pdf]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let case = it.next().unwrap_or_else(|| usage());
    let n = it
        .next()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or_else(|| usage());
    let mut args = Args {
        case,
        n,
        runs: 3,
        formats: vec!["json".into(), "csv".into(), "pdf".into()],
    };
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--runs" => args.runs = value.parse().unwrap_or_else(|_| usage()),
            "--formats" => args.formats = value.split(',').map(str::to_string).collect(),
            _ => usage(),
        }
    }
    args
}

/// A deployment laid out as `tests/common/mod.rs` lays it out, under `data`.
struct Deployment {
    custos: Custos,
    store: Arc<SqliteStore>,
    vault: Arc<KeyVault>,
}

/// Opens (creating on first use) the deployment under `data`, with `hook` as fault hook.
fn open(data: &Path, hook: Option<custos_core::FaultHook>) -> Deployment {
    std::fs::create_dir_all(data.join("keys")).expect("data dir");
    let store = Arc::new(SqliteStore::open(&data.join("custos.db")).expect("store"));
    let objects = Objects::open(&ObjectLocation::File(data.join("objects"))).expect("objects");
    let kms = LocalKms::open_or_create(&data.join("keys/root.keyring")).expect("kms");
    let keys = SqliteKeyStore::open(&data.join("keys/keys.db")).expect("key store");
    let vault = Arc::new(KeyVault::new(Arc::new(kms), Arc::new(keys)));
    let clock = Arc::new(ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap()));
    let signer = custos_crypto::DeploymentSigner::open_or_create(
        &data.join("keys/signing.key"),
        "custos.bench",
    )
    .expect("signer");
    let mut custos = Custos::new(
        Arc::new(Policy::builtin()),
        store.clone(),
        objects,
        vault.clone(),
        clock,
    )
    .with_audit_signer(Arc::new(signer));
    if let Some(hook) = hook {
        custos = custos.with_fault_hook(hook);
    }
    Deployment {
        custos,
        store,
        vault,
    }
}

fn system() -> Caller {
    Caller::new(Principal::System)
}

/// The content of record `i` of `subject` in `category`: short text naming the subject, as
/// the built-in policy's categories hold it.
fn content(category: &str, subject: &str, i: usize) -> serde_json::Value {
    match category {
        "interactions" => json!({
            "question": format!("{subject} asked about invoice {i}; reply to the account email"),
            "answer": "The invoice was sent again; it is also in the billing page.",
        }),
        "analytics" => {
            json!({"event": "page_view", "page": format!("/docs/{}", i % 50), "ms": i % 900})
        }
        _ => json!(format!(
            "message {i} from {subject}: the parcel arrived today, thanks for the quick help"
        )),
    }
}

/// Stores `n` records of `subject` in `category`; returns the ids of the first and last.
async fn load(d: &Deployment, org: &str, category: &str, subject: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut i = 0;
    while i < n {
        let batch: Vec<NewRecord> = (i..n.min(i + MAX_BATCH_RECORDS))
            .map(|k| NewRecord {
                category: category.into(),
                subject: Some(subject.into()),
                content: content(category, subject, k),
                metadata: Some(json!({"source": "bench", "seq": k})),
            })
            .collect();
        i += batch.len();
        let created = d
            .custos
            .create_records(&system(), org, batch)
            .await
            .expect("records stored");
        if ids.is_empty() {
            ids.push(created[0].id.clone());
        }
        if i >= n {
            ids.push(created.last().expect("non-empty batch").id.clone());
        }
    }
    ids
}

async fn new_org(d: &Deployment) -> String {
    d.custos
        .create_org(
            &Caller::new(Principal::Admin),
            NewOrg {
                name: "bench".into(),
                region: None,
                owner: None,
            },
        )
        .await
        .expect("org")
        .org
        .id
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Named fault-hook points with the time each was reached, in order.
type Marks = Arc<Mutex<Vec<(&'static str, Instant)>>>;

/// What the hook found at `erasure.delete_keys_destroyed`: whether the subject's `delete`
/// slot was still in the key store.
type SlotCheck = Arc<Mutex<Option<bool>>>;

/// Whose `delete` slot the hook checks: the vault, the org and the subject reference of the
/// run in progress.
type SlotTarget = Arc<Mutex<Option<(Arc<KeyVault>, String, String)>>>;

/// A fault hook that notes when each point is reached (never failing), and at
/// `erasure.delete_keys_destroyed` checks the key store for the subject's `<ref>/messages`
/// slot (after taking the time, so the check is not part of the figure).
fn marking_hook(marks: Marks, check: SlotCheck, target: SlotTarget) -> custos_core::FaultHook {
    Arc::new(move |point| {
        let now = Instant::now();
        marks.lock().unwrap().push((point, now));
        if point == "erasure.delete_keys_destroyed" {
            if let Some((vault, org, sref)) = target.lock().unwrap().as_ref() {
                let slot = KeyVault::subject_slot(sref, "messages");
                // The hook is synchronous; the local key store answers without the reactor.
                let present = futures::executor::block_on(vault.subject_keys_of(org, sref))
                    .expect("key store readable")
                    .iter()
                    .any(|k| k.slot == slot);
                *check.lock().unwrap() = Some(present);
            }
        }
        false
    })
}

/// The first time `point` was reached.
fn mark(marks: &[(&'static str, Instant)], point: &str) -> Option<Instant> {
    marks.iter().find(|(p, _)| *p == point).map(|(_, t)| *t)
}

/// `erase`, `anonymize` and `aggregate`: load, then erase one subject per run.
async fn erasure_case(dir: &Path, args: &Args) {
    let category = match args.case.as_str() {
        "erase" => "messages",
        "anonymize" => "interactions",
        "aggregate" => "analytics",
        _ => usage(),
    };
    let marks: Marks = Arc::default();
    let check: SlotCheck = Arc::default();
    let target: SlotTarget = Arc::default();
    let d = open(
        &dir.join("data"),
        Some(marking_hook(marks.clone(), check.clone(), target.clone())),
    );
    let org = new_org(&d).await;
    let (scope, _) = d.store.org(&org).await.unwrap().expect("org stored");
    let subjects: Vec<String> = (0..args.runs).map(|r| format!("subject-{r:03}")).collect();
    let mut samples = Vec::new();
    for subject in &subjects {
        let started = Instant::now();
        samples.push(load(&d, &org, category, subject, args.n).await);
        let took = started.elapsed();
        println!(
            "loaded {} {category} records of {subject} in {:.1} s ({:.0} records/s)",
            args.n,
            took.as_secs_f64(),
            args.n as f64 / took.as_secs_f64()
        );
    }
    for (run, (subject, sample)) in subjects.iter().zip(&samples).enumerate() {
        let sref = d.vault.subject_ref(&org, subject).await.unwrap();
        *target.lock().unwrap() = Some((d.vault.clone(), org.clone(), sref.clone()));
        marks.lock().unwrap().clear();
        *check.lock().unwrap() = None;

        let started = Instant::now();
        let view = d
            .custos
            .erase_subject(&system(), &org, subject)
            .await
            .expect("erasure");
        let total = started.elapsed();

        assert_eq!(view.status.to_string(), "completed", "{view:?}");
        let marks = marks.lock().unwrap().clone();
        let since = |p: &str| mark(&marks, p).map(|t| ms(t - started));
        let keys_ms = since("erasure.delete_keys_destroyed");
        let dispose_ms = match (
            mark(&marks, "erasure.delete_keys_destroyed"),
            mark(&marks, "erasure.retained_keys_destroyed"),
        ) {
            (Some(a), Some(b)) => Some(ms(b - a)),
            _ => None,
        };
        verify(&d, &scope, &org, category, sample, &check, args.n).await;
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        println!(
            "run {}: {subject}: keys destroyed after {} ms; disposal {} ms; total {:.2} ms \
             ({:.0} records/s)",
            run + 1,
            fmt(keys_ms),
            fmt(dispose_ms),
            ms(total),
            args.n as f64 / total.as_secs_f64()
        );
        println!(
            "RESULT case={} n={} run={} keys_destroyed_ms={} dispose_ms={} total_ms={:.2} \
             records_per_s={:.0}",
            args.case,
            args.n,
            run + 1,
            fmt(keys_ms),
            fmt(dispose_ms),
            ms(total),
            args.n as f64 / total.as_secs_f64()
        );
        print_phases(started, &marks);
    }
}

/// Where the time of one erasure went: each distinct hook point, with the time since the
/// previous one (repeated per-page points are summed).
fn print_phases(started: Instant, marks: &[(&'static str, Instant)]) {
    let mut last = started;
    let mut rows: Vec<(&'static str, f64, usize)> = Vec::new();
    for (point, at) in marks {
        let d = ms(*at - last);
        last = *at;
        match rows.iter_mut().find(|(p, _, _)| p == point) {
            Some(row) => {
                row.1 += d;
                row.2 += 1;
            }
            None => rows.push((point, d, 1)),
        }
    }
    for (point, d, times) in rows {
        println!("    {point:<36} +{d:>10.2} ms  (x{times})");
    }
}

/// Checks what the erasure must have done, so the figures are of a real erasure.
async fn verify(
    d: &Deployment,
    scope: &custos_store::OrgScope,
    org: &str,
    category: &str,
    sample: &[String],
    check: &SlotCheck,
    n: usize,
) {
    match category {
        "messages" => {
            assert_eq!(
                *check.lock().unwrap(),
                Some(false),
                "the subject's messages slot must be gone when the hook fires"
            );
            for id in sample {
                assert!(
                    d.custos.get_record(&system(), org, id).await.is_err(),
                    "record {id} still readable"
                );
            }
        }
        "interactions" => {
            for id in sample {
                let kept = d.custos.get_record(&system(), org, id).await.expect("kept");
                let text = serde_json::to_string(&(&kept.content, &kept.metadata)).unwrap();
                assert!(
                    kept.subject.is_none() && !text.contains("subject-"),
                    "{text}"
                );
            }
        }
        _ => {
            let aggregated: u64 = d
                .store
                .erasure_aggregates(scope)
                .await
                .unwrap()
                .iter()
                .map(|a| a.records)
                .sum();
            assert!(aggregated >= n as u64, "{aggregated} aggregated of {n}");
        }
    }
}

/// The peak resident set size of this process so far, in KiB (`VmHWM`).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `export`: load once, then export in a child process per format and run.
async fn export_case(dir: &Path, args: &Args) {
    let data = dir.join("data");
    let (org, subject) = {
        let d = open(&data, None);
        let org = new_org(&d).await;
        let subject = "subject-000".to_string();
        let started = Instant::now();
        load(&d, &org, "messages", &subject, args.n).await;
        println!(
            "loaded {} messages records in {:.1} s",
            args.n,
            started.elapsed().as_secs_f64()
        );
        (org, subject)
    };
    let exe = std::env::current_exe().expect("own path");
    for format in &args.formats {
        for run in 1..=args.runs {
            let out = std::process::Command::new(&exe)
                .args(["export-child", format])
                .arg(&data)
                .args([&org, &subject])
                .output()
                .expect("child runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "export child failed: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            for line in stdout.lines() {
                match line.strip_prefix("CHILD ") {
                    Some(rest) => {
                        println!("RESULT case=export n={} run={run} {rest}", args.n)
                    }
                    None => println!("{line}"),
                }
            }
        }
    }
}

/// The child side of `export`: one export to `io::sink()`, then the figures.
async fn export_child(format: &str, data: &Path, org: &str, subject: &str) {
    let before = peak_rss_kib();
    let d = open(data, None);
    let format: ExportFormat = custos_core::export_format(format).expect("format");
    let mut out = CountingSink::default();
    let started = Instant::now();
    let records = d
        .custos
        .export_subject(&system(), org, subject, format, &mut out)
        .await
        .expect("export");
    let took = started.elapsed();
    let peak = peak_rss_kib();
    let mib = |k: Option<u64>| k.map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0));
    // MB of 10^6 bytes, the unit of the target (as `bench/upload-1gib.sh` counts it).
    let mb = |k: Option<u64>| k.map_or("-".into(), |k| format!("{:.1}", k as f64 * 1.024e-3));
    println!(
        "export {format}: {records} records, {:.1} MiB in {:.2} s ({:.0} records/s), \
         peak RSS {} MiB (at start {} MiB)",
        out.0 as f64 / (1 << 20) as f64,
        took.as_secs_f64(),
        records as f64 / took.as_secs_f64(),
        mib(peak),
        mib(before),
    );
    println!(
        "CHILD format={format} records={records} bytes={} secs={:.3} records_per_s={:.0} \
         peak_rss_mb={}",
        out.0,
        took.as_secs_f64(),
        records as f64 / took.as_secs_f64(),
        mb(peak)
    );
}

/// `io::sink()` that also counts the bytes, so the report can state the export's size.
#[derive(Default)]
struct CountingSink(u64);

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        std::io::sink().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where the temporary deployment goes: `CUSTOS_BENCH_DIR`, else the system temp dir.
fn base_dir() -> PathBuf {
    std::env::var_os("CUSTOS_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

#[tokio::main]
async fn main() {
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("export-child") && raw.len() == 6 {
        export_child(&raw[2], Path::new(&raw[3]), &raw[4], &raw[5]).await;
        return;
    }
    let args = parse_args();
    let base = base_dir();
    std::fs::create_dir_all(&base).expect("bench dir");
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    match args.case.as_str() {
        "erase" | "anonymize" | "aggregate" => erasure_case(dir.path(), &args).await,
        "export" => export_case(dir.path(), &args).await,
        _ => usage(),
    }
}
