//! Throughput of the three writers on 1,000 typical records written to `io::sink()`.
//! (The 100,000-record run with peak memory is `examples/export_many.rs`.)

// `criterion_group!` generates a public `benches` function that takes no doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use custos_export::{writer, CategorySummary, ExportHeader, ExportRecord, Format};
use serde_json::json;

const RECORDS: u64 = 1_000;

fn header(t: jiff::Timestamp) -> ExportHeader {
    ExportHeader {
        org: "org_bench".into(),
        org_name: "Bench Org".into(),
        subject: "subject-bench".into(),
        request: None,
        generated_at: t,
        tool: "custos 0.1.0".into(),
        categories: vec![CategorySummary {
            category: "messages".into(),
            records: RECORDS,
            retention: "2y".into(),
            archive_after: None,
            classification: "personal".into(),
            next_expiry: None,
        }],
        request_due: None,
        withheld: vec![],
    }
}

fn records(t: jiff::Timestamp) -> Vec<ExportRecord> {
    (0..RECORDS)
        .map(|i| ExportRecord {
            id: format!("rec_{i:08}"),
            category: "messages".into(),
            state: "active".into(),
            tier: "hot".into(),
            created_at: t,
            archive_at: None,
            expire_at: t,
            deleted_at: None,
            content: json!({
                "subject": format!("Message {i}"),
                "body": "Dear customer, thank you for your message. We will get back to you \
                         within two working days. Kind regards, the support team.",
                "email": "someone@example.com"
            }),
            metadata: json!({"source": "web"}),
            pii: json!({"EMAIL_ADDRESS": 1}),
            file: None,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let t: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let header = header(t);
    let records = records(t);
    let mut group = c.benchmark_group("export_1000_records");
    group.throughput(Throughput::Elements(RECORDS));
    for format in Format::ALL {
        group.bench_function(format.name(), |b| {
            b.iter(|| {
                let mut w = writer(format, std::io::sink(), &header).unwrap();
                for r in &records {
                    w.record(r).unwrap();
                }
                w.finish().unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
