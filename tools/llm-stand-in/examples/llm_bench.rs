//! A small load client for an LLM endpoint: the stand-in directly, or the gateway in front
//! of it. Sends N calls per prompt size (1 KB, 4 KB, 32 KB), plain and streamed, from C
//! concurrent callers, and prints p50/p99 latency and time to first byte.
//!
//! ```text
//! cargo run --release -p custos-llm-stand-in --example llm_bench -- \
//!     BASE KEY [--api chat|responses|messages] [--n 200] [--c 8] [--model stand-in] [--pii]
//!     [--size 1|4|32] [--stream-only]
//! ```
//! BASE is what an SDK would take: `http://127.0.0.1:P/v1` (OpenAI) or `http://127.0.0.1:P`
//! (Anthropic) for the stand-in; `.../llm/openai/v1` or `.../llm/anthropic` for the gateway.
//! `--pii` puts an e-mail address and a phone number in every 256 bytes of prompt.
//! Only loopback or your own test hosts: this is a load generator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Mutex;

#[derive(Debug, Clone)]
struct Args {
    base: String,
    key: String,
    api: String,
    n: usize,
    c: usize,
    model: String,
    pii: bool,
    /// Only this prompt size (KB); all three when unset.
    size: Option<usize>,
    /// Only streamed calls.
    stream_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let usage = "usage: llm_bench BASE KEY [--api chat|responses|messages] [--n N] [--c C] [--model M] [--pii] [--size KB] [--stream-only]";
    let base = it.next().ok_or(usage)?;
    let key = it.next().ok_or(usage)?;
    let mut a = Args {
        base: base.trim_end_matches('/').to_owned(),
        key,
        api: "chat".into(),
        n: 200,
        c: 8,
        model: "stand-in".into(),
        pii: false,
        size: None,
        stream_only: false,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--api" => a.api = value()?,
            "--n" => a.n = value()?.parse().map_err(|e| format!("--n: {e}"))?,
            "--c" => a.c = value()?.parse().map_err(|e| format!("--c: {e}"))?,
            "--model" => a.model = value()?,
            "--pii" => a.pii = true,
            "--size" => a.size = Some(value()?.parse().map_err(|e| format!("--size: {e}"))?),
            "--stream-only" => a.stream_only = true,
            other => return Err(format!("unknown argument {other:?}\n{usage}")),
        }
    }
    if !["chat", "responses", "messages"].contains(&a.api.as_str()) || a.n == 0 || a.c == 0 {
        return Err(usage.to_owned());
    }
    Ok(a)
}

/// A prompt of about `bytes` bytes of filler words (and PII every 256 bytes with `--pii`).
fn prompt(bytes: usize, pii: bool) -> String {
    const WORDS: [&str; 8] = [
        "the", "order", "arrived", "late", "and", "support", "helped", "quickly",
    ];
    let mut s = String::with_capacity(bytes + 64);
    let mut i = 0;
    while s.len() < bytes {
        if pii && i % 40 == 39 {
            s.push_str(&format!(
                "mail user{i}@example.com or call (415) 555-{:04} ",
                1000 + i % 9000
            ));
        } else {
            s.push_str(WORDS[i % WORDS.len()]);
            s.push(' ');
        }
        i += 1;
    }
    s
}

fn request(a: &Args, text: &str, stream: bool) -> (String, Value) {
    match a.api.as_str() {
        "chat" => (
            format!("{}/chat/completions", a.base),
            json!({"model": a.model, "stream": stream, "messages": [{"role": "user", "content": text}]}),
        ),
        "responses" => (
            format!("{}/responses", a.base),
            json!({"model": a.model, "stream": stream, "input": text}),
        ),
        _ => (
            format!("{}/v1/messages", a.base),
            json!({"model": a.model, "stream": stream, "max_tokens": 1024, "messages": [{"role": "user", "content": text}]}),
        ),
    }
}

/// One call: (time to the first body byte, total time).
async fn call(
    client: &reqwest::Client,
    a: &Args,
    text: &str,
    stream: bool,
) -> Result<(Duration, Duration), String> {
    let (url, body) = request(a, text, stream);
    let start = Instant::now();
    let mut resp = client
        .post(url)
        .bearer_auth(&a.key)
        .header("x-api-key", &a.key)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    let mut first = None;
    while let Some(_chunk) = resp.chunk().await.map_err(|e| format!("body: {e}"))? {
        first.get_or_insert_with(|| start.elapsed());
    }
    let total = start.elapsed();
    Ok((first.unwrap_or(total), total))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run(client: &reqwest::Client, a: &Args, size: usize, stream: bool) -> Result<(), String> {
    let text = Arc::new(prompt(size, a.pii));
    let results = Arc::new(Mutex::new(Vec::with_capacity(a.n)));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut callers = Vec::new();
    for _ in 0..a.c {
        let (client, a, text, results, next) = (
            client.clone(),
            a.clone(),
            text.clone(),
            results.clone(),
            next.clone(),
        );
        callers.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < a.n {
                let r = call(&client, &a, &text, stream).await;
                results.lock().await.push(r);
            }
        }));
    }
    for c in callers {
        c.await.map_err(|e| format!("caller: {e}"))?;
    }
    let wall = started.elapsed();
    let results = std::mem::take(&mut *results.lock().await);
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let mut ttfb: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|t| t.0))
        .collect();
    let mut total: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|t| t.1))
        .collect();
    ttfb.sort();
    total.sort();
    println!(
        "{:>9} {:>5} KB {:>6}  n={:<5} c={:<3} p50 {:>8.2} ms  p99 {:>8.2} ms  ttfb p50 {:>8.2} ms  p99 {:>8.2} ms  {:>8.1} calls/s  errors {}{}",
        a.api,
        size / 1024,
        if stream { "stream" } else { "plain" },
        a.n,
        a.c,
        ms(percentile(&total, 50.0)),
        ms(percentile(&total, 99.0)),
        ms(percentile(&ttfb, 50.0)),
        ms(percentile(&ttfb, 99.0)),
        total.len() as f64 / wall.as_secs_f64(),
        errors.len(),
        errors.first().map(|e| format!(" (first: {e})")).unwrap_or_default(),
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(a.c)
        .build()
        .expect("a reqwest client");
    for size in [1024, 4 * 1024, 32 * 1024] {
        if a.size.is_some_and(|kb| kb * 1024 != size) {
            continue;
        }
        for stream in [false, true] {
            if a.stream_only && !stream {
                continue;
            }
            if let Err(e) = run(&client, &a, size, stream).await {
                eprintln!("llm_bench: {e}");
                std::process::exit(1);
            }
        }
    }
}
