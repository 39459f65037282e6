//! The audit event and its canonical, versioned encoding.
//!
//! Both versions are compact JSON (no insignificant whitespace), UTF-8, top-level keys in
//! lexicographic byte order, absent optional fields omitted, times as RFC 3339 UTC strings.
//! These bytes are the Merkle leaf: `leaf_hash = SHA-256(0x00 || bytes)`. Leaves are never
//! re-encoded: a version-1 leaf stays version 1.
//!
//! - Version 1: `target` free text (`kind:id` by convention), details as `k=v` words in
//!   `reason`.
//! - Version 2 (written now): `target` one of the [`Target`] forms, `reason` only a code, and
//!   each of the action's [`Details`] fields as a top-level key (a `subject.erase` event
//!   carries `statement_sha256`, `certificate` and `subject_ref` this way).

use serde::{Deserialize, Serialize};

use crate::details::Details;
use crate::target::{Target, TargetError};

/// The encoding version written into every event as `"v"`. Version 1 (before typed details)
/// is still read, and re-encodes to its exact bytes.
pub const EVENT_ENCODING_VERSION: u8 = 2;

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
    /// An operator of the deployment signed in through its identity provider, by operator id.
    Operator(String),
    /// A data subject acting for themselves in the org's privacy center, by keyed subject
    /// reference (never the identifier).
    Subject(String),
}

impl Actor {
    /// The actor as the log's indexed column and filters name it (`admin`, `member:<id>`,
    /// `operator:<id>`, `subject:<reference>`, `system`, `anonymous`).
    pub fn name(&self) -> String {
        match self {
            Actor::Admin => "admin".into(),
            Actor::Member(id) => format!("member:{id}"),
            Actor::Operator(id) => format!("operator:{id}"),
            Actor::Subject(subject_ref) => format!("subject:{subject_ref}"),
            Actor::System => "system".into(),
            Actor::Anonymous => "anonymous".into(),
        }
    }
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
/// Its bytes are [`AuditEvent::to_canonical_bytes`]; field order here is lexicographic, the
/// order of the keys in those bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The action (`record.create`, `org.create`, `key.rotate`, ...; written as its name).
    pub action: crate::AuditAction,
    /// Who acted.
    pub actor: Actor,
    /// The caller's own request id (its `X-Request-Id`), validated and length-limited; kept
    /// apart from `request_id`, which Custos always chooses itself.
    pub client_request_id: Option<String>,
    /// Structured, non-personal details (counts, a category, a digest), typed per field; in
    /// version 2 each is a top-level key. For a version-1 event, what its `reason` text
    /// carried (read only; a version-1 event re-encodes from its `reason`).
    pub details: Details,
    /// The org the action concerns; `None` for deployment-wide actions.
    pub org: Option<String>,
    /// How the action ended.
    pub outcome: Outcome,
    /// A reason code (`forbidden`, `hard_delete`, ...): why it was refused, or which way it
    /// went. In version 1, free-form `k=v` text.
    pub reason: Option<String>,
    /// Custos's own id of the request that carried the action, for correlation with service
    /// logs (never chosen by the caller).
    pub request_id: Option<String>,
    /// The caller's network address, when the action came over the network.
    pub source: Option<String>,
    /// What was acted on.
    pub target: Option<Target>,
    /// When the action happened (UTC).
    pub time: jiff::Timestamp,
    /// Encoding version; [`EVENT_ENCODING_VERSION`] for events this build writes.
    pub v: u8,
}

/// Encoding version 1, exactly as it was written: `target` and `reason` as text.
#[derive(Serialize, Deserialize)]
struct EventV1 {
    action: crate::AuditAction,
    actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    time: jiff::Timestamp,
    v: u8,
}

/// Only the encoding version, read first (the rest is skipped without being built).
#[derive(Deserialize)]
struct Version {
    #[serde(default)]
    v: Option<u64>,
}

/// Encoding version 2 as read: the envelope, the detail fields, and any other key (refused).
#[derive(Deserialize)]
struct EventV2 {
    action: crate::AuditAction,
    actor: Actor,
    #[serde(default)]
    client_request_id: Option<String>,
    #[serde(default)]
    org: Option<String>,
    outcome: Outcome,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    target: Option<String>,
    time: jiff::Timestamp,
    #[serde(flatten)]
    details: Details,
    /// Keys that are neither envelope nor detail fields (`v` among them, checked already).
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

/// Why stored bytes are not a valid event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not JSON, or a field of the wrong type, or a missing one, or an unknown action.
    #[error("audit event is not a valid event: {0}")]
    Json(#[from] serde_json::Error),
    /// No encoding version, or one this build does not know (written by a newer Custos).
    #[error("audit event has encoding version {0}, which this build does not know (it reads versions 1 and {EVENT_ENCODING_VERSION})")]
    UnknownVersion(u64),
    /// A key that is neither part of the envelope nor a detail field.
    #[error("audit event has an unknown field {0:?}")]
    UnknownField(String),
    /// A detail field the event's action does not carry.
    #[error("audit event {action} does not carry the detail {field:?}")]
    FieldNotAllowed {
        /// The event's action.
        action: crate::AuditAction,
        /// The field.
        field: &'static str,
    },
    /// A target that is not one this build writes.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A reason that is not a code (lowercase letters, digits, `_` and `.`).
    #[error("audit event reason {0:?} is not a reason code")]
    Reason(String),
    /// Valid, but not in canonical form (key order, whitespace): not bytes Custos wrote.
    #[error("audit event is not in canonical form")]
    NotCanonical,
}

/// Whether `text` is a reason code.
fn is_code(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

impl AuditEvent {
    /// A successful action by `actor` at `time`; set the optional fields with the builders.
    pub fn new(time: jiff::Timestamp, actor: Actor, action: crate::AuditAction) -> Self {
        AuditEvent {
            action,
            actor,
            client_request_id: None,
            details: Details::default(),
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

    /// Sets the target.
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// Sets the outcome.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Sets the reason code (lowercase letters, digits, `_`, `.`).
    pub fn reason(mut self, code: impl Into<String>) -> Self {
        let code = code.into();
        debug_assert!(is_code(&code), "reason {code:?} is not a code");
        self.reason = Some(code);
        self
    }

    /// Sets the structured details (only fields [`crate::details::allowed_fields`] lists for
    /// the action). A support grant already set stays unless `details` names one: it says
    /// under which grant the whole request acted, whatever the action adds.
    pub fn details(mut self, details: Details) -> Self {
        debug_assert_eq!(
            crate::details::first_disallowed(self.action, &details),
            None,
            "{} does not carry that detail",
            self.action
        );
        let grant = self.details.grant.take();
        self.details = details;
        if self.details.grant.is_none() {
            self.details.grant = grant;
        }
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
    /// A version-1 event (decoded from a leaf written before version 2) re-encodes to its
    /// exact bytes.
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        if self.v == 1 {
            return self.encode_v1();
        }
        // Each value serializes on its own (its own canonical form: structs in field order,
        // maps sorted); the keys, envelope and details together, are written in byte order.
        let json = |value: &dyn erased::Json| value.to_json();
        let mut fields = self.details.json_fields();
        let mut put = |key: &'static str, value: Option<String>| {
            if let Some(value) = value {
                let clash = fields.insert(key, value);
                debug_assert!(
                    clash.is_none(),
                    "detail field {key} clashes with the envelope"
                );
            }
        };
        put("action", Some(json(&self.action)));
        put("actor", Some(json(&self.actor)));
        put(
            "client_request_id",
            self.client_request_id.as_ref().map(|s| json(s)),
        );
        put("org", self.org.as_ref().map(|s| json(s)));
        put("outcome", Some(json(&self.outcome)));
        put("reason", self.reason.as_ref().map(|s| json(s)));
        put("request_id", self.request_id.as_ref().map(|s| json(s)));
        put("source", self.source.as_ref().map(|s| json(s)));
        put("target", self.target.as_ref().map(|t| json(&t.to_string())));
        put("time", Some(json(&self.time)));
        put("v", Some(json(&self.v)));
        let mut out = Vec::with_capacity(256);
        out.push(b'{');
        for (i, (key, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Keys are fixed identifiers: nothing to escape.
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(value.as_bytes());
        }
        out.push(b'}');
        out
    }

    fn encode_v1(&self) -> Vec<u8> {
        let v1 = EventV1 {
            action: self.action,
            actor: self.actor.clone(),
            client_request_id: self.client_request_id.clone(),
            org: self.org.clone(),
            outcome: self.outcome,
            reason: self.reason.clone(),
            request_id: self.request_id.clone(),
            source: self.source.clone(),
            target: self.target.as_ref().map(Target::to_string),
            time: self.time,
            v: 1,
        };
        // Serializing a struct of strings, enums and a timestamp cannot fail.
        serde_json::to_vec(&v1).expect("audit event serializes")
    }

    /// Decodes stored canonical bytes, of either encoding version; anything that is not an
    /// event this build could have written fails loudly (an unknown version, action, field or
    /// target form; a detail the action does not carry; version-2 bytes not in canonical
    /// form), so it is never read as something it is not.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let version = serde_json::from_slice::<Version>(bytes)?.v;
        match version {
            Some(1) => {
                let v1: EventV1 = serde_json::from_slice(bytes)?;
                let details = v1
                    .reason
                    .as_deref()
                    .map(Details::from_v1_reason)
                    .unwrap_or_default();
                Ok(AuditEvent {
                    action: v1.action,
                    actor: v1.actor,
                    client_request_id: v1.client_request_id,
                    details,
                    org: v1.org,
                    outcome: v1.outcome,
                    reason: v1.reason,
                    request_id: v1.request_id,
                    source: v1.source,
                    target: v1.target.as_deref().map(Target::parse_lenient),
                    time: v1.time,
                    v: 1,
                })
            }
            Some(2) => {
                let envelope: EventV2 = serde_json::from_slice(bytes)?;
                if let Some(key) = envelope.other.into_keys().find(|k| k != "v") {
                    return Err(DecodeError::UnknownField(key));
                }
                let details = envelope.details;
                if let Some(field) = crate::details::first_disallowed(envelope.action, &details) {
                    return Err(DecodeError::FieldNotAllowed {
                        action: envelope.action,
                        field,
                    });
                }
                if let Some(reason) = envelope.reason.as_deref().filter(|r| !is_code(r)) {
                    return Err(DecodeError::Reason(reason.into()));
                }
                let event = AuditEvent {
                    action: envelope.action,
                    actor: envelope.actor,
                    client_request_id: envelope.client_request_id,
                    details,
                    org: envelope.org,
                    outcome: envelope.outcome,
                    reason: envelope.reason,
                    request_id: envelope.request_id,
                    source: envelope.source,
                    target: envelope.target.as_deref().map(Target::parse).transpose()?,
                    time: envelope.time,
                    v: 2,
                };
                if event.to_canonical_bytes() != bytes {
                    return Err(DecodeError::NotCanonical);
                }
                Ok(event)
            }
            other => Err(DecodeError::UnknownVersion(other.unwrap_or(0))),
        }
    }
}

/// Shown (in API responses and exports) as its stored JSON.
impl Serialize for AuditEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let value: serde_json::Value = serde_json::from_slice(&self.to_canonical_bytes())
            .map_err(serde::ser::Error::custom)?;
        value.serialize(s)
    }
}

mod erased {
    /// A value serialized alone, as compact JSON.
    pub(super) trait Json {
        fn to_json(&self) -> String;
    }

    impl<T: serde::Serialize + ?Sized> Json for T {
        fn to_json(&self) -> String {
            // Strings, enums, numbers and timestamps always serialize.
            serde_json::to_string(self).expect("event field serializes")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::details::allowed_fields;
    use crate::AuditAction;

    fn time() -> jiff::Timestamp {
        "2026-01-02T03:04:05Z".parse().unwrap()
    }

    #[test]
    fn encoding_v1_leaves_decode_and_keep_their_bytes() {
        for text in [
            r#"{"action":"record.create","actor":{"kind":"member","id":"m1"},"org":"o1","outcome":"success","reason":"category=notes","target":"record:r1","time":"2026-01-02T03:04:05Z","v":1}"#,
            r#"{"action":"subject.erase","actor":{"kind":"system"},"org":"o1","outcome":"success","reason":"subject_ref=s1 certificate=c1 statement=ab","target":"request:q1","time":"2026-01-02T03:04:05Z","v":1}"#,
            r#"{"action":"backup.reconcile","actor":{"kind":"system"},"outcome":"success","reason":"phase=start from_index=4","target":"backup","time":"2026-01-02T03:04:05Z","v":1}"#,
            r#"{"action":"org.create","actor":{"kind":"admin"},"client_request_id":"c1","outcome":"success","request_id":"r1","target":"deployment","time":"2026-01-02T03:04:05Z","v":1}"#,
        ] {
            let event = AuditEvent::from_canonical_bytes(text.as_bytes()).unwrap();
            assert_eq!(event.v, 1);
            assert_eq!(
                std::str::from_utf8(&event.to_canonical_bytes()).unwrap(),
                text
            );
        }
        let erase = AuditEvent::from_canonical_bytes(
            br#"{"action":"subject.erase","actor":{"kind":"system"},"org":"o1","outcome":"success","reason":"subject_ref=s1 certificate=c1 statement=ab","target":"request:q1","time":"2026-01-02T03:04:05Z","v":1}"#,
        )
        .unwrap();
        assert_eq!(erase.details.statement_sha256.as_deref(), Some("ab"));
        assert_eq!(erase.target, Some(Target::Request("q1".into())));
    }

    #[test]
    fn encoding_v2_is_stable() {
        let event = AuditEvent::new(time(), Actor::Member("m1".into()), AuditAction::FileUpload)
            .org("o1")
            .target(Target::Record("r1".into()))
            .details(Details::new().category("notes").bytes(12u64));
        let bytes = event.to_canonical_bytes();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"action":"file.upload","actor":{"kind":"member","id":"m1"},"bytes":12,"category":"notes","org":"o1","outcome":"success","target":"record:r1","time":"2026-01-02T03:04:05Z","v":2}"#
        );
        assert_eq!(AuditEvent::from_canonical_bytes(&bytes).unwrap(), event);
        let erase = AuditEvent::new(time(), Actor::System, AuditAction::SubjectErase)
            .org("o1")
            .target(Target::Request("q1".into()))
            .details(
                Details::new()
                    .subject_ref("s1")
                    .certificate("c1")
                    .statement_sha256("ab"),
            );
        assert_eq!(
            String::from_utf8(erase.to_canonical_bytes()).unwrap(),
            r#"{"action":"subject.erase","actor":{"kind":"system"},"certificate":"c1","org":"o1","outcome":"success","statement_sha256":"ab","subject_ref":"s1","target":"request:q1","time":"2026-01-02T03:04:05Z","v":2}"#
        );
    }

    #[test]
    fn unknown_versions_fields_and_forms_fail_loudly() {
        let good = r#"{"action":"record.create","actor":{"kind":"system"},"category":"notes","outcome":"success","target":"record:r1","time":"2026-01-02T03:04:05Z","v":2}"#;
        assert!(AuditEvent::from_canonical_bytes(good.as_bytes()).is_ok());
        let fails = |text: String, expect: &str| {
            let error = AuditEvent::from_canonical_bytes(text.as_bytes()).unwrap_err();
            assert!(error.to_string().contains(expect), "{text}: {error}");
            error
        };
        let newer = fails(good.replace(r#""v":2"#, r#""v":3"#), "encoding version 3");
        assert!(matches!(newer, DecodeError::UnknownVersion(3)));
        fails(good.replace(r#","v":2"#, ""), "encoding version 0");
        fails(
            good.replace("record.create", "record.teleport"),
            r#"unknown audit action "record.teleport""#,
        );
        fails(
            good.replace(r#""category""#, r#""colour""#),
            r#"unknown field "colour""#,
        );
        fails(
            good.replace(r#""category":"notes""#, r#""bytes":3"#),
            r#"record.create does not carry the detail "bytes""#,
        );
        fails(good.replace("record:r1", "thing:r1"), "is not one of");
        fails(
            good.replace(r#""outcome""#, r#""reason":"Free text","outcome""#),
            "is not a reason code",
        );
        fails(
            good.replace(r#""category":"notes","#, r#""category": "notes","#),
            "canonical",
        );
        fails(
            good.replace(r#""category":"notes""#, r#""category":7"#),
            "invalid type",
        );
    }

    #[test]
    fn every_action_keeps_its_name_in_the_bytes() {
        for action in AuditAction::ALL {
            let bytes = AuditEvent::new(time(), Actor::System, *action).to_canonical_bytes();
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

    /// The keys of the envelope; no detail field may take one of these names.
    const ENVELOPE: &[&str] = &[
        "action",
        "actor",
        "client_request_id",
        "org",
        "outcome",
        "reason",
        "request_id",
        "source",
        "target",
        "time",
        "v",
    ];

    #[test]
    fn no_detail_field_takes_an_envelope_key() {
        for field in Details::FIELDS {
            assert!(!ENVELOPE.contains(field), "{field}");
        }
    }

    #[test]
    fn client_request_id_sorts_after_actor_and_is_omitted_when_absent() {
        let event = AuditEvent::new(time(), Actor::Admin, AuditAction::OrgCreate)
            .request(Some("r1".into()), None)
            .client_request(Some("c1".into()));
        let bytes = event.to_canonical_bytes();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"action":"org.create","actor":{"kind":"admin"},"client_request_id":"c1","outcome":"success","request_id":"r1","time":"2026-01-02T03:04:05Z","v":2}"#
        );
        assert_eq!(AuditEvent::from_canonical_bytes(&bytes).unwrap(), event);
        let plain = AuditEvent::new(time(), Actor::Admin, AuditAction::OrgCreate);
        assert!(!String::from_utf8(plain.to_canonical_bytes())
            .unwrap()
            .contains("client_request_id"));
    }

    proptest::proptest! {
        /// A stored leaf changed anywhere (a byte replaced, dropped or added) never panics the
        /// decoder, and whatever still decodes is exactly what its bytes say: a version-2
        /// event re-encodes to those bytes, so no change goes unseen by the leaf hash.
        #[test]
        fn a_changed_leaf_decodes_to_its_own_bytes_or_fails(
            at in 0usize..400,
            byte in proptest::num::u8::ANY,
            how in 0u8..3,
        ) {
            let event = AuditEvent::new(time(), Actor::Member("m1".into()), AuditAction::SubjectErase)
                .org("o1")
                .target(Target::Request("q1".into()))
                .details(Details::new().subject_ref("s1").certificate("c1").statement_sha256("ab"));
            let mut bytes = event.to_canonical_bytes();
            let at = at % (bytes.len() + 1);
            match how {
                0 if at < bytes.len() => bytes[at] = byte,
                1 if at < bytes.len() => { bytes.remove(at); }
                _ => bytes.insert(at, byte),
            }
            if let Ok(decoded) = AuditEvent::from_canonical_bytes(&bytes) {
                if decoded.v == 2 {
                    proptest::prop_assert_eq!(decoded.to_canonical_bytes(), bytes);
                }
            }
        }

        #[test]
        fn any_v2_event_round_trips(
            action in proptest::sample::select(AuditAction::ALL),
            org in proptest::option::of("[a-z0-9-]{1,12}"),
            source in proptest::option::of("\\PC{0,20}"),
            count in proptest::option::of(0u64..u64::MAX),
            subject in proptest::option::of("\\PC{1,20}"),
        ) {
            let mut details = Details::new();
            if allowed_fields(action).contains(&"records") {
                details.records = count;
            }
            if allowed_fields(action).contains(&"subject_ref") {
                details.subject_ref = subject;
            }
            let mut event = AuditEvent::new(time(), Actor::Member("m".into()), action)
                .request(Some("q".into()), source)
                .details(details);
            event.org = org;
            let bytes = event.to_canonical_bytes();
            proptest::prop_assert_eq!(AuditEvent::from_canonical_bytes(&bytes).unwrap(), event);
        }
    }
}
