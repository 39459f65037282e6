//! Single-thread scan throughput on generated mixed text (~5% PII lines) at 1 KB, 1 MB and 100 MB.
//!
//! `cargo run --release -p custos-pii --example throughput [-- SIZE_MB]`
//!
//! Prints wall-clock MB/s and, on Linux, MB/s per CPU-second of this thread (from
//! /proc/thread-self/schedstat), which stays meaningful on a machine shared with other work.

#[path = "common/mixed.rs"]
mod mixed;

use std::time::Instant;

/// Nanoseconds this thread has spent on a CPU, if the kernel exposes it.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn main() {
    let big_mb: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let scanner = custos_pii::Scanner::new();
    for (label, size, reps) in [
        ("1 KB", 1usize << 10, 20_000usize),
        ("1 MB", 1 << 20, 50),
        ("100 MB", big_mb << 20, 1),
    ] {
        let text = mixed::mixed_text(size, 42);
        // Warm-up, then time.
        let mut findings = scanner.scan(&text).len();
        let cpu0 = thread_cpu_ns();
        let t = Instant::now();
        for _ in 0..reps {
            findings = std::hint::black_box(scanner.scan(std::hint::black_box(&text))).len();
        }
        let secs = t.elapsed().as_secs_f64();
        let bytes = (text.len() * reps) as f64;
        let cpu = match (cpu0, thread_cpu_ns()) {
            (Some(a), Some(b)) if b > a => format!(
                "{:>8.1} MB/s per CPU-second",
                bytes / ((b - a) as f64 / 1e9) / 1e6
            ),
            _ => String::new(),
        };
        println!(
            "{label:>7}: {:>10} bytes x {reps:>6}  {:>8.1} MB/s wall  {cpu}  ({findings} findings per scan)",
            text.len(),
            bytes / secs / 1e6
        );
    }
}
