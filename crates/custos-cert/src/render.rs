//! A plain-text rendering of a certificate for people (the PDF is rendered elsewhere).

use std::fmt::Write as _;

use crate::model::{Certificate, Method, Status};

fn method_text(m: Method) -> &'static str {
    match m {
        Method::CryptographicErase => "cryptographic erase (keys destroyed)",
        Method::Purge => "purge",
        Method::Anonymize => "anonymization",
        Method::Aggregate => "aggregation",
    }
}

/// A plain-text summary: what was erased, how, what was held back, and how to check it.
/// It says nothing a verifier should trust: only [`crate::verify`] decides validity.
pub fn render_text(cert: &Certificate) -> String {
    let s = &cert.statement;
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!("Certificate of deletion {}", s.id));
    line(format!(
        "Status: {}",
        match s.status {
            Status::Completed => "completed",
            Status::PartiallyCompleted => "partially completed (records held back)",
        }
    ));
    line(format!(
        "Issued: {} by {} {} for log {}",
        s.issued_at, s.issuer.tool, s.issuer.version, s.issuer.origin
    ));
    line(format!("Org: {}", s.subject.org));
    line(format!("Subject reference: {}", s.subject.subject_ref));
    line(format!("Request: {}", s.subject.request));
    line(format!(
        "Received: {}  Due: {}  Completed: {}",
        s.times.received, s.times.due, s.times.completed
    ));
    line("Sanitization (NIST SP 800-88):".into());
    if s.sanitization.is_empty() {
        line("  (no records in scope)".into());
    }
    for c in &s.sanitization {
        let mut text = format!(
            "  {}: {} by {}; hot {}, archive {}, objects {}",
            c.category,
            c.disposition,
            method_text(c.method),
            c.tiers.hot,
            c.tiers.archive,
            c.tiers.objects
        );
        if c.held > 0 {
            // Writing to a String cannot fail.
            let _ = write!(text, "; {} held", c.held);
        }
        line(text);
    }
    line(format!("Keys destroyed: {}", s.keys_destroyed.len()));
    for k in &s.keys_destroyed {
        line(format!("  {k}"));
    }
    line(format!("Tokens destroyed: {}", s.tokens_destroyed));
    if !s.held_back.is_empty() {
        line("Held back under legal hold:".into());
        for h in &s.held_back {
            line(format!(
                "  hold {}: {} ({} records)",
                h.hold, h.reason, h.records
            ));
        }
    }
    line(format!("Verification: {}", s.verification));
    line(format!(
        "Audit log: entry {} of a tree of {}; signed by {}",
        cert.inclusion_proof.index, cert.inclusion_proof.tree_size, s.issuer.verifier_key
    ));
    line("Check it offline: custos cert verify FILE --key VERIFIER_KEY".into());
    out
}
