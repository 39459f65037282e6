//! Criterion benchmark: scan throughput on generated mixed text at 1 KB and 1 MB
//! (100 MB is in `examples/throughput.rs`, too slow for criterion's sampling).

// `criterion_group!` generates a public `benches` function that takes no doc comment.
#![allow(missing_docs)]

#[path = "../examples/common/mixed.rs"]
mod mixed;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn bench_scan(c: &mut Criterion) {
    let scanner = custos_pii::Scanner::new();
    let mut group = c.benchmark_group("scan_mixed");
    for size in [1usize << 10, 1 << 20] {
        let text = mixed::mixed_text(size, 42);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &text, |b, t| {
            b.iter(|| scanner.scan(t))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_scan);
criterion_main!(benches);
