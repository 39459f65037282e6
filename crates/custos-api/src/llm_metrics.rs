//! The LLM gateway's Prometheus metrics: its own added latency and the upstream latency as
//! histograms, calls and tokens by provider and model, refusals by reason.
//!
//! Hand-written like the rest of `/metrics` (a few atomics and small maps). `/metrics` is
//! unauthenticated and carries no caller-chosen string: the provider label is a name from the
//! policy, and the model label is the model only when the policy lists it for that provider
//! (`other` for anything else), so labels stay bounded and hold nothing a caller typed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Most distinct (provider, model) label pairs kept; later ones count as model `other`.
const MAX_SERIES: usize = 256;

/// A cumulative histogram with fixed upper bounds (seconds).
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    total: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let total = self.total.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {total}");
    }
}

/// Per (provider, model): calls by result, input and output tokens.
#[derive(Debug, Default, Clone)]
struct Series {
    calls: BTreeMap<String, u64>,
    input_tokens: u64,
    output_tokens: u64,
}

/// The gateway's metrics.
#[derive(Debug)]
pub struct LlmMetrics {
    added: Histogram,
    upstream: Histogram,
    series: Mutex<BTreeMap<(String, String), Series>>,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
}

impl Default for LlmMetrics {
    fn default() -> Self {
        LlmMetrics {
            added: Histogram::new(&[
                0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
            ]),
            upstream: Histogram::new(&[
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
            ]),
            series: Mutex::new(BTreeMap::new()),
            refusals: Mutex::new(BTreeMap::new()),
        }
    }
}

/// What one finished call adds to the metrics.
pub(crate) struct CallSample<'a> {
    /// A provider name of the policy.
    pub provider: &'a str,
    /// The model the caller named (labelled only if in `known_models`).
    pub model: &'a str,
    /// The models the policy lists for the provider.
    pub known_models: &'a [String],
    pub result: &'a str,
    pub added: Duration,
    pub upstream: Duration,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

impl LlmMetrics {
    /// Counts one forwarded call.
    pub(crate) fn call(&self, s: CallSample<'_>) {
        self.added.observe(s.added);
        self.upstream.observe(s.upstream);
        let mut series = self.series.lock().expect("metrics lock");
        let model = if s.known_models.iter().any(|m| m == s.model) {
            s.model
        } else {
            "other"
        };
        let mut key = (s.provider.to_string(), model.to_string());
        if !series.contains_key(&key) && series.len() >= MAX_SERIES {
            key.1 = "other".into();
        }
        let entry = series.entry(key).or_default();
        *entry.calls.entry(s.result.to_string()).or_insert(0) += 1;
        entry.input_tokens += s.input_tokens.unwrap_or(0);
        entry.output_tokens += s.output_tokens.unwrap_or(0);
    }

    /// Counts one refused call.
    pub(crate) fn refusal(&self, reason: &'static str) {
        *self
            .refusals
            .lock()
            .expect("metrics lock")
            .entry(reason)
            .or_insert(0) += 1;
    }

    /// The exposition text.
    pub(crate) fn render(&self, out: &mut String) {
        self.added.render(
            out,
            "custos_llm_gateway_added_seconds",
            "Time the gateway itself added to an LLM call (scan, transform, restore).",
        );
        self.upstream.render(
            out,
            "custos_llm_upstream_seconds",
            "Time the upstream provider took to answer an LLM call.",
        );
        let series = self.series.lock().expect("metrics lock").clone();
        out.push_str(
            "# HELP custos_llm_calls_total LLM calls forwarded, by provider, model and result.\n\
             # TYPE custos_llm_calls_total counter\n",
        );
        for ((provider, model), s) in &series {
            for (result, n) in &s.calls {
                let _ = writeln!(
                    out,
                    "custos_llm_calls_total{{provider=\"{provider}\",model=\"{model}\",result=\"{result}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP custos_llm_tokens_total Tokens as upstream providers reported them.\n\
             # TYPE custos_llm_tokens_total counter\n",
        );
        for ((provider, model), s) in &series {
            for (direction, n) in [("input", s.input_tokens), ("output", s.output_tokens)] {
                let _ = writeln!(
                    out,
                    "custos_llm_tokens_total{{provider=\"{provider}\",model=\"{model}\",direction=\"{direction}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP custos_llm_refusals_total LLM calls the gateway refused, by reason.\n\
             # TYPE custos_llm_refusals_total counter\n",
        );
        for (reason, n) in self.refusals.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "custos_llm_refusals_total{{reason=\"{reason}\"}} {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_series_are_labelled() {
        let m = LlmMetrics::default();
        m.call(CallSample {
            provider: "openai",
            model: "gpt-4o-mini",
            known_models: &["gpt-4o-mini".to_string()],
            result: "ok",
            added: Duration::from_micros(300),
            upstream: Duration::from_millis(20),
            input_tokens: Some(5),
            output_tokens: Some(7),
        });
        m.refusal("model_not_allowed");
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("custos_llm_gateway_added_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(out.contains("custos_llm_gateway_added_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(out.contains("custos_llm_gateway_added_seconds_bucket{le=\"+Inf\"} 1"));
        assert!(out.contains(
            "custos_llm_calls_total{provider=\"openai\",model=\"gpt-4o-mini\",result=\"ok\"} 1"
        ));
        assert!(out.contains(
            "custos_llm_tokens_total{provider=\"openai\",model=\"gpt-4o-mini\",direction=\"output\"} 7"
        ));
        assert!(out.contains("custos_llm_refusals_total{reason=\"model_not_allowed\"} 1"));
        // A model the policy does not list (any name a caller chose) is never a label.
        let m = LlmMetrics::default();
        m.call(CallSample {
            provider: "openai",
            model: "ada@example.com",
            known_models: &["gpt-4o-mini".to_string()],
            result: "ok",
            added: Duration::from_micros(300),
            upstream: Duration::from_millis(20),
            input_tokens: None,
            output_tokens: None,
        });
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains(
            "custos_llm_calls_total{provider=\"openai\",model=\"other\",result=\"ok\"} 1"
        ));
        assert!(!out.contains("example.com"));
    }
}
