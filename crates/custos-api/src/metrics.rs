//! Prometheus text metrics.
//!
//! Hand-written on purpose: a few atomic counters rendered in the text exposition format cost
//! less (in code and dependencies) than wiring a metrics registry crate for them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Request counters by status class, plus latency totals.
#[derive(Debug, Default)]
pub struct Metrics {
    by_class: [AtomicU64; 5],
    latency_micros_total: AtomicU64,
}

impl Metrics {
    /// Counts one finished request.
    pub fn observe(&self, status: u16, micros: u64) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.latency_micros_total
            .fetch_add(micros, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, audit_size: Option<u64>) -> String {
        let mut out = String::from(
            "# HELP custos_http_requests_total HTTP requests by status class.\n\
             # TYPE custos_http_requests_total counter\n",
        );
        for (i, c) in self.by_class.iter().enumerate() {
            out.push_str(&format!(
                "custos_http_requests_total{{class=\"{}xx\"}} {}\n",
                i + 1,
                c.load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "# HELP custos_http_request_seconds_total Time spent serving HTTP requests.\n\
             # TYPE custos_http_request_seconds_total counter\n\
             custos_http_request_seconds_total {}\n",
            self.latency_micros_total.load(Ordering::Relaxed) as f64 / 1e6
        ));
        if let Some(n) = audit_size {
            out.push_str(&format!(
                "# HELP custos_audit_log_entries Entries in the audit log.\n\
                 # TYPE custos_audit_log_entries gauge\n\
                 custos_audit_log_entries {n}\n"
            ));
        }
        out
    }
}
