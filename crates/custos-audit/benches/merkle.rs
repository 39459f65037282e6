//! Benchmarks for the costs that matter at scale: encoding and decoding an event (every append
//! and every read of a leaf), hashing per appended event, proof generation in a large tree,
//! and whole-log verification throughput.
//!
//! `cargo bench -p custos-audit`; `CUSTOS_BENCH_PROOF_SIZE` overrides the 10M-leaf proof tree.

// `criterion_group!` generates a public `benches` function that takes no doc comment.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use custos_audit::{
    consistency_proof, inclusion_proof, leaf_hash, verify_log, Actor, AuditEvent, Checkpoint,
    Frontier, MemoryNodeStore, NodeStore, StoredEntry,
};
use rand::{Rng, SeedableRng};

/// Realistic canonical events with UUID ids, ~215 bytes each.
fn events(n: u64) -> Vec<Vec<u8>> {
    let t0: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
    (0..n)
        .map(|i| {
            AuditEvent::new(
                t0 + jiff::SignedDuration::from_secs(i as i64),
                Actor::Member(format!("0196a3c2-7d1e-7b3a-9f00-{i:012x}")),
                custos_audit::AuditAction::RecordCreate,
            )
            .org("0196a3c2-0000-7000-8000-00000000abcd")
            .target(custos_audit::Target::Record(format!(
                "0196a3c2-7d1e-7b3a-8e11-{i:012x}"
            )))
            .to_canonical_bytes()
        })
        .collect()
}

fn append(c: &mut Criterion) {
    let evs = events(10_000);
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(evs.len() as u64));
    g.bench_function("hash+frontier+memory store, batch of 10k events", |b| {
        b.iter_batched(
            || (Frontier::new(), MemoryNodeStore::new()),
            |(mut f, mut store)| {
                let nodes = f
                    .append_batch(evs.iter().map(|e| leaf_hash(e)))
                    .expect("append");
                store.put_nodes(&nodes).expect("put");
                black_box(f.root())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn proofs(c: &mut Criterion) {
    let size: u64 = std::env::var("CUSTOS_BENCH_PROOF_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let mut f = Frontier::new();
    let mut store = MemoryNodeStore::new();
    // Leaves are hashes of the index: the tree shape, not the leaf content, drives proof cost.
    for chunk in (0..size).collect::<Vec<_>>().chunks(1 << 16) {
        let nodes = f
            .append_batch(chunk.iter().map(|i| leaf_hash(&i.to_le_bytes())))
            .expect("append");
        store.put_nodes(&nodes).expect("put");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut g = c.benchmark_group(format!("proof at {size} leaves"));
    g.bench_function("inclusion", |b| {
        b.iter(|| {
            let i = rng.gen_range(0..size);
            black_box(inclusion_proof(&store, i, size).expect("proof"))
        })
    });
    g.bench_function("consistency", |b| {
        b.iter(|| {
            let old = rng.gen_range(1..size);
            black_box(consistency_proof(&store, old, size).expect("proof"))
        })
    });
    g.finish();
}

fn verification(c: &mut Criterion) {
    let evs = events(100_000);
    let bytes: u64 = evs.iter().map(|e| e.len() as u64).sum();
    let mut f = Frontier::new();
    let mut cps = Vec::new();
    let mut rows = Vec::with_capacity(evs.len());
    for (i, e) in evs.iter().enumerate() {
        let h = leaf_hash(e);
        f.push(h).expect("push");
        rows.push((i as u64, e.as_slice(), h));
        if (i + 1) % 1000 == 0 {
            cps.push(Checkpoint {
                origin: "bench".into(),
                size: f.size(),
                root: f.root(),
                time: None,
            });
        }
    }
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);
    g.bench_function(
        format!(
            "100k events (avg {} B), stored leaf hashes, checkpoint every 1000",
            bytes / evs.len() as u64
        ),
        |b| {
            b.iter(|| {
                let entries = rows.iter().map(|(i, l, h)| StoredEntry {
                    index: *i,
                    leaf: *l,
                    leaf_hash: Some(*h),
                });
                black_box(verify_log(entries, &cps).expect("clean log"))
            })
        },
    );
    g.finish();
}

/// One event of each encoding version, as stored, with details (v2) or a `k=v` reason (v1).
fn encoding(c: &mut Criterion) {
    let t0: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
    let v2 = AuditEvent::new(
        t0,
        Actor::Member("0196a3c2-7d1e-7b3a-9f00-000000000001".into()),
        custos_audit::AuditAction::FileUpload,
    )
    .org("0196a3c2-0000-7000-8000-00000000abcd")
    .target(custos_audit::Target::Record(
        "0196a3c2-7d1e-7b3a-8e11-000000000001".into(),
    ))
    .request(
        Some("0196a3c2-7d1e-7b3a-8e11-0000000000ff".into()),
        Some("10.0.0.7".into()),
    )
    .details(
        custos_audit::Details::new()
            .category("uploads")
            .bytes(123_456u64),
    );
    let v2_bytes = v2.to_canonical_bytes();
    let v1_bytes = br#"{"action":"file.upload","actor":{"kind":"member","id":"0196a3c2-7d1e-7b3a-9f00-000000000001"},"org":"0196a3c2-0000-7000-8000-00000000abcd","outcome":"success","reason":"category=uploads bytes=123456","request_id":"0196a3c2-7d1e-7b3a-8e11-0000000000ff","source":"10.0.0.7","target":"record:0196a3c2-7d1e-7b3a-8e11-000000000001","time":"2026-01-02T03:04:05Z","v":1}"#;
    let mut g = c.benchmark_group("event");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode v2", |b| {
        b.iter(|| black_box(v2.to_canonical_bytes()))
    });
    g.bench_function("decode v2 (with its canonical check)", |b| {
        b.iter(|| black_box(AuditEvent::from_canonical_bytes(&v2_bytes).unwrap()))
    });
    let v1 = AuditEvent::from_canonical_bytes(v1_bytes).unwrap();
    g.bench_function("encode v1 (a leaf written before typed details)", |b| {
        b.iter(|| black_box(v1.to_canonical_bytes()))
    });
    g.bench_function("decode v1", |b| {
        b.iter(|| black_box(AuditEvent::from_canonical_bytes(v1_bytes).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, encoding, append, proofs, verification);
criterion_main!(benches);
