//! Writes a synthetic export of many records and prints the throughput, for memory and speed
//! measurements:
//!
//!     cargo run --release -p custos-export --example export_many -- json 100000
//!     /usr/bin/time -v target/release/examples/export_many pdf 100000 /tmp/export.pdf
//!
//! Arguments: format (json|csv|pdf), record count (default 100000), output file (default: none,
//! the bytes are only counted).

use std::io::Write;
use std::time::Instant;

use custos_export::{writer, CategorySummary, ExportEvent, ExportHeader, ExportRecord, Format};
use serde_json::json;

/// Counts bytes on their way to an optional file.
struct Counting<W> {
    inner: W,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

const CATEGORIES: [&str; 4] = ["contacts", "orders", "support_tickets", "messages"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let format: Format = args.next().unwrap_or_else(|| "json".into()).parse()?;
    let count: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let out: Box<dyn Write + Send> = match args.next() {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::sink()),
    };
    let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let out = Counting {
        inner: out,
        bytes: bytes.clone(),
    };

    let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse()?;
    let per_category = count / CATEGORIES.len() as u64;
    let header = ExportHeader {
        org: "org_bench".into(),
        org_name: "Bench Org".into(),
        subject: "subject-bench".into(),
        request: Some("req_bench".into()),
        generated_at: t0,
        tool: "custos 0.1.0".into(),
        categories: CATEGORIES
            .iter()
            .enumerate()
            .map(|(i, c)| CategorySummary {
                category: (*c).into(),
                records: if i + 1 == CATEGORIES.len() {
                    count - per_category * (CATEGORIES.len() as u64 - 1)
                } else {
                    per_category
                },
                retention: "2y".into(),
                archive_after: Some("90d".into()),
                classification: "personal".into(),
                next_expiry: Some(t0),
            })
            .collect(),
        request_due: None,
        withheld: vec![],
    };

    let start = Instant::now();
    let mut w = writer(format, out, &header)?;
    let mut n = 0u64;
    for (ci, c) in header.categories.iter().enumerate() {
        for _ in 0..c.records {
            let r = ExportRecord {
                id: format!("rec_{n:08}"),
                category: c.category.clone(),
                state: "active".into(),
                tier: "hot".into(),
                created_at: t0,
                archive_at: Some(t0),
                expire_at: t0,
                deleted_at: None,
                content: json!({
                    "subject": format!("Order {n} for category {ci}"),
                    "body": "Dear customer, thank you for your message. We will get back to you \
                             within two working days. Kind regards, the support team.",
                    "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}],
                    "email": "someone@example.com"
                }),
                metadata: json!({"source": "web", "ip": "203.0.113.9"}),
                pii: json!({"EMAIL_ADDRESS": 1, "IP_ADDRESS": 1}),
                file: None,
            };
            w.record(&r)?;
            n += 1;
        }
    }
    for i in 0..1000 {
        w.event(&ExportEvent {
            index: i,
            time: t0,
            action: "record.read".into(),
            actor: "member:support".into(),
            target: Some(format!("rec_{i:08}")),
            outcome: "ok".into(),
            reason: None,
        })?;
    }
    w.finish()?;
    let secs = start.elapsed().as_secs_f64();
    let written = bytes.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{format}: {n} records + 1000 events in {secs:.2} s = {:.0} records/s, {:.1} MiB written",
        n as f64 / secs,
        written as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}
