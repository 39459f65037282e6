//! The audit event and its canonical, versioned encoding.
//!
//! Encoding version 1 is compact JSON (no insignificant whitespace), UTF-8, object keys in
//! lexicographic byte order, absent optional fields omitted, times as RFC 3339 UTC strings.
//! These bytes are the Merkle leaf: `leaf_hash = SHA-256(0x00 || bytes)`.

use serde::{Deserialize, Serialize};

/// The encoding version written into every event as `"v"`.
pub const EVENT_ENCODING_VERSION: u8 = 1;

/// Who performed an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// The deployment's bootstrap administrator (the admin token).
    Admin,
    /// An org member or service account, by member id.
    Member(String),
    /// Custos itself (scheduler, sweeps, key rotation run from the CLI).
    System,
    /// A caller that could not be authenticated.
    Anonymous,
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action took effect.
    Success,
    /// Authorization refused the action; nothing changed.
    Denied,
    /// The action was attempted and failed; nothing changed.
    Failed,
}

/// One audit event: who did what, when, to what, and how it ended. Never content.
///
/// Field order here is lexicographic on purpose: serde serializes struct fields in declaration
/// order, and that order is the canonical key order of encoding version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The action (`record.create`, `org.create`, `key.rotate`, ...; written as its name).
    pub action: crate::AuditAction,
    /// Who acted.
    pub actor: Actor,
    /// The caller's own request id (its `X-Request-Id`), validated and length-limited; kept
    /// apart from `request_id`, which Custos always chooses itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// The org the action concerns; `None` for deployment-wide actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// How the action ended.
    pub outcome: Outcome,
    /// Free-form, non-personal detail (a reason code, a category name, counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Custos's own id of the request that carried the action, for correlation with service
    /// logs (never chosen by the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The caller's network address, when the action came over the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What was acted on, as `kind:id` (`record:<uuid>`, `member:<uuid>`, `key:<id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// When the action happened (UTC).
    pub time: jiff::Timestamp,
    /// Encoding version; always [`EVENT_ENCODING_VERSION`] for events this build writes.
    pub v: u8,
}

/// Why stored bytes are not a valid event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not an event of any known encoding (bad JSON, a missing field, an unknown action).
    #[error("audit event is not valid encoding-v1 JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// An encoding version this build does not know (written by a newer Custos).
    #[error("audit event has encoding version {0}, which this build does not know (it reads version {EVENT_ENCODING_VERSION})")]
    UnknownVersion(u8),
}

impl AuditEvent {
    /// A successful action by `actor` at `time`; set the optional fields with the builders.
    pub fn new(time: jiff::Timestamp, actor: Actor, action: crate::AuditAction) -> Self {
        AuditEvent {
            action,
            actor,
            client_request_id: None,
            org: None,
            outcome: Outcome::Success,
            reason: None,
            request_id: None,
            source: None,
            target: None,
            time,
            v: EVENT_ENCODING_VERSION,
        }
    }

    /// Sets the org this event concerns.
    pub fn org(mut self, org: impl Into<String>) -> Self {
        self.org = Some(org.into());
        self
    }

    /// Sets the target (`kind:id`).
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Sets the outcome.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Sets a non-personal reason or detail.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Sets the request id and source address.
    pub fn request(mut self, request_id: Option<String>, source: Option<String>) -> Self {
        self.request_id = request_id;
        self.source = source;
        self
    }

    /// Sets the caller's own request id (already validated by the HTTP layer).
    pub fn client_request(mut self, client_request_id: Option<String>) -> Self {
        self.client_request_id = client_request_id;
        self
    }

    /// The canonical encoding: the exact bytes that are stored and hashed as the Merkle leaf.
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        // Serializing a struct of strings, enums and a timestamp cannot fail.
        serde_json::to_vec(self).expect("audit event serializes")
    }

    /// Decodes stored canonical bytes; an unknown encoding version or action fails loudly
    /// (never read as something it is not).
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let event: AuditEvent = serde_json::from_slice(bytes)?;
        if event.v != EVENT_ENCODING_VERSION {
            return Err(DecodeError::UnknownVersion(event.v));
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_v1_is_stable() {
        let time: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let event = AuditEvent::new(
            time,
            Actor::Member("m1".into()),
            crate::AuditAction::RecordCreate,
        )
        .org("o1")
        .target("record:r1");
        let bytes = event.to_canonical_bytes();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"action":"record.create","actor":{"kind":"member","id":"m1"},"org":"o1","outcome":"success","target":"record:r1","time":"2026-01-02T03:04:05Z","v":1}"#
        );
        assert_eq!(AuditEvent::from_canonical_bytes(&bytes).unwrap(), event);
    }

    #[test]
    fn unknown_versions_and_actions_fail_loudly() {
        let good = r#"{"action":"record.create","actor":{"kind":"system"},"outcome":"success","time":"2026-01-02T03:04:05Z","v":1}"#;
        assert!(AuditEvent::from_canonical_bytes(good.as_bytes()).is_ok());
        let newer = good.replace(r#""v":1"#, r#""v":2"#);
        let error = AuditEvent::from_canonical_bytes(newer.as_bytes()).unwrap_err();
        assert!(matches!(error, DecodeError::UnknownVersion(2)), "{error}");
        assert!(error.to_string().contains("encoding version 2"), "{error}");
        let invented = good.replace("record.create", "record.teleport");
        let error = AuditEvent::from_canonical_bytes(invented.as_bytes()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains(r#"unknown audit action "record.teleport""#),
            "{error}"
        );
    }

    #[test]
    fn every_action_keeps_its_name_in_the_bytes() {
        let time: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        for action in crate::AuditAction::ALL {
            let bytes = AuditEvent::new(time, Actor::System, *action).to_canonical_bytes();
            let text = String::from_utf8(bytes.clone()).unwrap();
            assert!(
                text.starts_with(&format!(r#"{{"action":"{}","#, action.as_str())),
                "{text}"
            );
            assert_eq!(
                AuditEvent::from_canonical_bytes(&bytes).unwrap().action,
                *action
            );
        }
    }

    #[test]
    fn client_request_id_sorts_after_actor_and_is_omitted_when_absent() {
        let time: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let event = AuditEvent::new(time, Actor::Admin, crate::AuditAction::OrgCreate)
            .request(Some("r1".into()), None)
            .client_request(Some("c1".into()));
        let bytes = event.to_canonical_bytes();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"action":"org.create","actor":{"kind":"admin"},"client_request_id":"c1","outcome":"success","request_id":"r1","time":"2026-01-02T03:04:05Z","v":1}"#
        );
        assert_eq!(AuditEvent::from_canonical_bytes(&bytes).unwrap(), event);
        let plain = AuditEvent::new(time, Actor::Admin, crate::AuditAction::OrgCreate);
        assert!(!String::from_utf8(plain.to_canonical_bytes())
            .unwrap()
            .contains("client_request_id"));
    }
}
