//! A quick look at a stored event: the few fields a scan over millions of entries needs (who
//! disclosed which subject's data of which category, when), read without building the whole
//! event. Version 2 leaves are read in place (borrowing their strings); older ones through the
//! full decoder.
//!
//! Not for: anything that re-encodes or trusts an event as a whole (use
//! [`AuditEvent::from_canonical_bytes`], which also refuses unknown fields).

use std::borrow::Cow;

use serde::Deserialize;

use crate::{AuditAction, AuditEvent, DecodeError, Outcome};

/// The fields of an event a scan reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glimpse<'a> {
    /// The org, if any.
    pub org: Option<Cow<'a, str>>,
    /// The action.
    pub action: AuditAction,
    /// How it ended.
    pub outcome: Outcome,
    /// When.
    pub time: jiff::Timestamp,
    /// The subject's keyed reference, if the event names one.
    pub subject_ref: Option<Cow<'a, str>>,
    /// The category, if the event names one.
    pub category: Option<Cow<'a, str>>,
    /// A count of records, if the event carries one.
    pub records: Option<u64>,
}

/// The version 2 layout, envelope and detail fields side by side; other keys are skipped.
/// Strings are borrowed from the bytes: one holding an escape fails this read, and the full
/// decoder takes over.
#[derive(Deserialize)]
struct V2<'a> {
    v: u64,
    #[serde(default)]
    org: Option<&'a str>,
    action: AuditAction,
    outcome: Outcome,
    time: jiff::Timestamp,
    #[serde(default)]
    subject_ref: Option<&'a str>,
    #[serde(default)]
    category: Option<&'a str>,
    #[serde(default)]
    records: Option<u64>,
}

/// A glimpse of the stored bytes of an event.
pub fn glimpse(bytes: &[u8]) -> Result<Glimpse<'_>, DecodeError> {
    if let Ok(v2) = serde_json::from_slice::<V2<'_>>(bytes) {
        if v2.v == 2 {
            return Ok(Glimpse {
                org: v2.org.map(Cow::Borrowed),
                action: v2.action,
                outcome: v2.outcome,
                time: v2.time,
                subject_ref: v2.subject_ref.map(Cow::Borrowed),
                category: v2.category.map(Cow::Borrowed),
                records: v2.records,
            });
        }
    }
    let event = AuditEvent::from_canonical_bytes(bytes)?;
    Ok(Glimpse {
        org: event.org.map(Cow::Owned),
        action: event.action,
        outcome: event.outcome,
        time: event.time,
        subject_ref: event.details.subject_ref.map(Cow::Owned),
        category: event.details.category.map(Cow::Owned),
        records: event.details.records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, Details, Target};

    #[test]
    fn a_glimpse_agrees_with_the_full_decoder() {
        let event = AuditEvent::new(
            "2026-03-01T10:00:00Z".parse().unwrap(),
            Actor::Member("m1".into()),
            AuditAction::RecordRead,
        )
        .org("org-1")
        .target(Target::Record("r\"1".into()))
        .details(Details::new().category("messages").subject_ref("ab12"));
        let bytes = event.to_canonical_bytes();
        let g = glimpse(&bytes).unwrap();
        assert_eq!(g.org.as_deref(), Some("org-1"));
        assert_eq!(g.action, AuditAction::RecordRead);
        assert_eq!(g.outcome, Outcome::Success);
        assert_eq!(g.time, event.time);
        assert_eq!(g.subject_ref.as_deref(), Some("ab12"));
        assert_eq!(g.category.as_deref(), Some("messages"));
        assert_eq!(g.records, None);
        // Borrowed where the bytes hold the string as it is.
        assert!(matches!(g.org, Some(Cow::Borrowed(_))));
        // A string with an escape is read by the full decoder, to the same result.
        let escaped = AuditEvent::new(event.time, Actor::System, AuditAction::RecordRead)
            .org("org \"q\"")
            .details(Details::new().category("messages"));
        let bytes = escaped.to_canonical_bytes();
        let g = glimpse(&bytes).unwrap();
        assert_eq!(g.org.as_deref(), Some("org \"q\""));
        assert!(matches!(g.org, Some(Cow::Owned(_))));
        assert!(glimpse(b"{\"v\":2}").is_err());
        assert!(glimpse(b"not json").is_err());
    }
}
