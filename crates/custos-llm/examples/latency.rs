//! Prints the gateway's added latency: µs per scrub of 1/4/32 KB chat requests, per whole
//! response restore, and per streamed chunk restored. Run with `--release`. The PII engine's
//! own scan time is printed beside it: on a busy machine both p99 columns show preemption.
//! `--dense`: a distinct e-mail address and phone number every 256 bytes (the gateway
//! benchmark's prompts) instead of a few values repeated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_llm::{
    restore_response, scrub_request, EntityKind, PiiAction, PlaceholderKey, Scrubber, SseEvent,
    StreamRestorer, WireFormat,
};
use custos_pii::Scanner;
use serde_json::{json, Value};

const PROSE: &[&str] = &[
    "The delivery was late again and the customer asked whether a refund is possible. ",
    "Please summarise the conversation below and suggest a polite reply. ",
    "Our records show two orders in March, one returned, one still open. ",
    "She mentioned that the package was left at the wrong door. ",
];

/// A chat request of about `bytes` bytes, with an e-mail, a phone number or a name every ~250 bytes
/// (`dense`: a distinct e-mail and phone number every 256 bytes, as `llm_bench` sends).
fn request(bytes: usize, dense: bool) -> Value {
    let mut text = String::new();
    let mut i = 0;
    while dense && text.len() < bytes {
        text.push_str(&format!(
            "mail user{i}@example.com or call (415) 555-{:04} ",
            1000 + i % 9000
        ));
        for k in 0..4 {
            text.push_str(&PROSE[(i + k) % PROSE.len()][..48]);
        }
        i += 1;
    }
    while text.len() < bytes {
        text.push_str(PROSE[i % PROSE.len()]);
        match i % 3 {
            0 => text.push_str(&format!("Contact: user{}@example.com. ", i % 17)),
            1 => text.push_str("Call back on (415) 555-2671 after five. "),
            _ => text.push_str("My name is Ana Lopez and I live in Denver. "),
        }
        text.push_str(PROSE[(i + 1) % PROSE.len()]);
        i += 1;
    }
    let quarter = text.len() / 4;
    let mut cut = quarter;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a helpful support agent."},
            {"role": "user", "content": &text[..cut]},
            {"role": "assistant", "content": "Noted. Anything else?"},
            {"role": "user", "content": &text[cut..]}
        ]
    })
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1e6
}

fn main() {
    let dense = std::env::args().any(|a| a == "--dense");
    let scanner = Scanner::new();
    let key = PlaceholderKey::new(b"bench org key");
    let kinds = [
        EntityKind::EmailAddress,
        EntityKind::PhoneNumber,
        EntityKind::CreditCard,
        EntityKind::UsSsn,
        EntityKind::IbanCode,
        EntityKind::Person,
    ];
    let scrubber = Scrubber {
        scanner: &scanner,
        kinds: &kinds,
        action: PiiAction::Tokenize,
        key: &key,
    };
    println!(
        "size   scan-only p50 µs  scan-only p99 µs  redact p50 µs  scrub p50 µs  scrub p99 µs  restore p50 µs  stream µs/chunk  placeholders"
    );
    for kb in [1usize, 4, 32] {
        let body = request(kb * 1024, dense);
        let iters = if kb == 32 { 200 } else { 1000 };
        let mut scrub_times = Vec::with_capacity(iters);
        let mut restore_times = Vec::with_capacity(iters);
        let mut scan_times = Vec::with_capacity(iters);
        let mut redact_times = Vec::with_capacity(iters);
        let texts: Vec<&str> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["content"].as_str())
            .collect();
        let mut map = None;
        let mut sent = String::new();
        for _ in 0..iters {
            // The PII engine alone, for comparison: what scrubbing adds is the difference.
            let t = Instant::now();
            for text in &texts {
                std::hint::black_box(scanner.scan_for(text, &kinds));
            }
            scan_times.push(t.elapsed());
            let mut b = body.clone();
            let redact = Scrubber {
                action: PiiAction::Redact,
                ..scrubber
            };
            let t = Instant::now();
            scrub_request(WireFormat::ChatCompletions, &mut b, &redact).unwrap();
            redact_times.push(t.elapsed());
            let mut b = body.clone();
            let t = Instant::now();
            let s = scrub_request(WireFormat::ChatCompletions, &mut b, &scrubber).unwrap();
            scrub_times.push(t.elapsed());
            sent = b["messages"][3]["content"].as_str().unwrap().to_string();
            let mut answer = json!({"choices": [{"message": {"content": sent}}]});
            let t = Instant::now();
            restore_response(WireFormat::ChatCompletions, &mut answer, &s.placeholders);
            restore_times.push(t.elapsed());
            map = Some(s.placeholders);
        }
        let map = Arc::new(map.unwrap());
        // Stream the scrubbed text back in 16-byte chunks, as a model would.
        let chunks: Vec<SseEvent> = sent
            .as_bytes()
            .chunks(16)
            .map(|c| {
                let piece = String::from_utf8_lossy(c);
                SseEvent::data(
                    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                           "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]})
                    .to_string(),
                )
            })
            .collect();
        let reps = 20;
        let t = Instant::now();
        for _ in 0..reps {
            let mut s = StreamRestorer::new(WireFormat::ChatCompletions, map.clone());
            for c in chunks.iter().cloned() {
                std::hint::black_box(s.on_event(c).unwrap());
            }
            s.finish();
        }
        let per_chunk = t.elapsed().as_secs_f64() * 1e6 / (reps * chunks.len()) as f64;
        println!(
            "{:>2} KB  {:>16.1}  {:>16.1}  {:>13.1}  {:>12.1}  {:>12.1}  {:>14.1}  {:>15.2}  {:>12}",
            kb,
            percentile(&mut scan_times, 0.5),
            percentile(&mut scan_times, 0.99),
            percentile(&mut redact_times, 0.5),
            percentile(&mut scrub_times, 0.5),
            percentile(&mut scrub_times, 0.99),
            percentile(&mut restore_times, 0.5),
            per_chunk,
            map.len()
        );
    }
}
