//! The structured, non-personal details an audit event carries (counts, a category name, a
//! subject's keyed reference, a digest), typed per field, and which fields each action may
//! carry ([`allowed_fields`]).
//!
//! Encoding version 2 writes each present field as a top-level key of the event, beside the
//! envelope (`action`, `actor`, `org`, ...); version 1 wrote the same facts as `k=v` text in
//! `reason`, and [`Details::from_v1_reason`] reads back the ones readers need.
//!
//! Hand-rolled by a macro rather than one struct per action: many actions share fields
//! (`subject_ref`, `records`), and one flat set with a per-action table keeps the decoder a
//! single function while still refusing a field the action does not carry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::AuditAction;

macro_rules! details {
    ($($(#[$doc:meta])* $field:ident : $ty:ty,)*) => {
        /// Structured details of an audit event; every field is optional and only the fields
        /// [`allowed_fields`] lists for the event's action may be set.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Details {
            $(
                $(#[$doc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        impl Details {
            /// The name of every field, as written.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field),)*];

            $(
                $(#[$doc])*
                pub fn $field(mut self, value: impl Into<$ty>) -> Self {
                    self.$field = Some(value.into());
                    self
                }
            )*

            /// The present fields, each with its value as compact JSON, in name order.
            pub(crate) fn json_fields(&self) -> BTreeMap<&'static str, String> {
                let mut out = BTreeMap::new();
                $(
                    if let Some(value) = &self.$field {
                        // Strings, numbers, lists and maps of them always serialize.
                        out.insert(
                            stringify!($field),
                            serde_json::to_string(value).expect("detail serializes"),
                        );
                    }
                )*
                out
            }
        }
    };
}

details! {
    /// A data category's name.
    category: String,
    /// Several categories' names (a batch write).
    categories: Vec<String>,
    /// A number of records.
    records: u64,
    /// Record ids (a batch create).
    ids: Vec<String>,
    /// Hex SHA-256 of the purged record ids, sorted and newline-joined.
    ids_sha256: String,
    /// Why records were purged (`retention`, `hard_delete`, `erasure`, ...).
    purge_reasons: Vec<String>,
    /// A size in bytes.
    bytes: u64,
    /// A number of data subjects.
    subjects: u64,
    /// A data subject's keyed reference (never the subject id itself).
    subject_ref: String,
    /// A data subject request's type (`access`, `erasure`, ...).
    request_type: String,
    /// A deadline.
    due: jiff::Timestamp,
    /// A deadline extension (`30d`, ...).
    by: String,
    /// A data subject request's new status.
    status: String,
    /// An erasure's round (1 for the first run).
    round: u64,
    /// Key ids about to be destroyed.
    keys: Vec<String>,
    /// A certificate of deletion's id.
    certificate: String,
    /// Hex SHA-256 of a certificate statement's JCS bytes (what the erasure event commits to).
    statement_sha256: String,
    /// An export's format (`json`, `csv`, ...).
    format: String,
    /// Archived records read for an export.
    archived_read: u64,
    /// The record id of a stored export.
    export: String,
    /// Categories left out of an export (the reader may not read them).
    withheld: Vec<String>,
    /// A member's roles.
    roles: Vec<String>,
    /// A member's groups.
    groups: Vec<String>,
    /// Whether a member must use a second factor for everything (member changes), or whether
    /// a sign-in proved one (`auth.sign_in`).
    mfa: bool,
    /// Whether a member is bound to a person of the identity provider (never whom).
    identity_bound: bool,
    /// How a factor was enrolled or a session opened (`enrollment_code`, `api_key`, `totp`).
    method: String,
    /// When something issued expires.
    expires: jiff::Timestamp,
    /// Consecutive wrong second-factor codes.
    failures: u64,
    /// PII found, by entity type (`EMAIL_ADDRESS` → count).
    entities: BTreeMap<String, u64>,
    /// PII entity types that refused a call.
    pii_types: Vec<String>,
    /// Until when an archived record is readable.
    readable_until: jiff::Timestamp,
    /// The region an org left.
    from_region: String,
    /// The region an org moved to.
    to_region: String,
    /// Changed org settings, by name, with their new values (never personal data).
    settings: BTreeMap<String, String>,
    /// A retention duration (`90d`, ...).
    retention: String,
    /// A step of a long action (`started`, `done`, `failed`).
    phase: String,
    /// A rotated key's new version.
    new_version: u64,
    /// Keys re-wrapped under a rotated key.
    rewrapped: u64,
    /// An API key's public prefix (never the key).
    key_prefix: String,
    /// Whether this failure used up the source address's allowance.
    source_limited: bool,
    /// An LLM model name.
    model: String,
    /// Whether an LLM call streamed.
    stream: bool,
    /// LLM input tokens.
    input_tokens: u64,
    /// LLM output tokens.
    output_tokens: u64,
    /// Milliseconds the call took at the gateway.
    latency_ms: u64,
    /// Milliseconds the call took upstream.
    upstream_ms: u64,
    /// How an LLM call ended (`ok`, `upstream_error`, ...).
    result: String,
    /// The record a retained prompt was stored as.
    prompt_record: String,
    /// The audit action a reconcile replayed.
    replayed: String,
    /// The first log index a reconcile replayed from.
    from_index: u64,
    /// A backup's id.
    backup: String,
    /// A backup's kind (`full`, `incremental`).
    backup_kind: String,
    /// The size of a backup's audit log.
    audit_size: u64,
    /// Files in a backup.
    files: u64,
    /// Log entries appended by a reconcile.
    appended: u64,
    /// Signed checkpoints copied by a reconcile.
    checkpoints: u64,
    /// Subject keys destroyed (again).
    keys_destroyed: u64,
    /// Orgs whose keys were destroyed (again).
    orgs_destroyed: u64,
    /// Records purged (again).
    records_purged: u64,
    /// Objects deleted (again).
    objects_deleted: u64,
    /// PII tokens destroyed (again).
    tokens_destroyed: u64,
    /// Org terminations replayed.
    terminations: u64,
    /// Records marked for purge (again).
    marked_for_purge: u64,
    /// Records soft-deleted (again).
    soft_deleted: u64,
    /// Whether only the key store was reconciled.
    key_store_only: bool,
    /// Org key sets merged from a key-store backup.
    org_keys: u64,
    /// Subject keys merged from a key-store backup.
    subject_keys: u64,
    /// Deployment keys merged from a key-store backup.
    deployment_keys: u64,
    /// Keys of a key-store backup refused because they are destroyed here.
    refused_destroyed: u64,
    /// When a member's credentials were last used (absent: never).
    last_used: jiff::Timestamp,
    /// Hex SHA-256 of the access review list a reviewer saw.
    review_sha256: String,
    /// Members a review kept.
    kept: Vec<String>,
    /// Members a review removed.
    removed: Vec<String>,
    /// The support grant an operator acted under (any action may carry it).
    grant: String,
    /// Why an operator asks for support access (`customer_initiated_support`, ...).
    justification: String,
    /// What a support grant lets an operator do (`metadata`, `read`, `read_write`).
    scope: String,
    /// How long a support grant lasts (`8h`, ...).
    duration: String,
    /// An alert rule's name.
    rule: String,
    /// How many events a rule counted when it fired.
    events: u64,
    /// An alert's severity (`low`, `medium`, `high`, `critical`).
    severity: String,
    /// An outbox message's id (its `webhook-id`).
    message: String,
    /// A notification's event type (`alert.fired`, ...).
    event_type: String,
    /// An incident clock's alert (`contain:soon`, `notify:overdue`, ...).
    clock: String,
    /// How many notifications were queued.
    messages: u64,
}

impl Details {
    /// No details.
    pub fn new() -> Self {
        Details::default()
    }

    /// The fields as `name=value` words, for people (an export's event list); never parsed
    /// back: readers use the typed fields.
    pub fn summary(&self) -> String {
        let words: Vec<String> = self
            .json_fields()
            .into_iter()
            .map(|(name, json)| match serde_json::from_str::<String>(&json) {
                Ok(text) => format!("{name}={text}"),
                Err(_) => format!("{name}={json}"),
            })
            .collect();
        words.join(" ")
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.json_fields().is_empty()
    }

    /// The fields a version-1 `reason` (`k=v` words) carried that readers still need: the
    /// subject reference, counts and digests, the certificate binding, a reconcile's start.
    /// Lenient, as version 1 was free text; never used to re-encode.
    pub fn from_v1_reason(reason: &str) -> Details {
        let list = |value: &str| -> Vec<String> {
            value
                .split(',')
                .filter(|v| !v.is_empty())
                .map(String::from)
                .collect()
        };
        let mut d = Details::default();
        for (key, value) in reason.split(' ').filter_map(|kv| kv.split_once('=')) {
            let number = value.parse::<u64>().ok();
            match key {
                "subject_ref" => d.subject_ref = Some(value.into()),
                "certificate" => d.certificate = Some(value.into()),
                "statement" => d.statement_sha256 = Some(value.into()),
                "category" => d.category = Some(value.into()),
                "records" => d.records = number,
                "ids_sha256" => d.ids_sha256 = Some(value.into()),
                "ids" => d.ids = Some(list(value)),
                "keys" => d.keys = Some(list(value)),
                "from_index" => d.from_index = number,
                "phase" => d.phase = Some(value.into()),
                "replayed" => d.replayed = Some(value.into()),
                _ => {}
            }
        }
        d
    }
}

/// The detail fields `action` may carry. Any action may instead (or also) carry a `reason`
/// code, e.g. why it was refused, and the [`GRANT_FIELD`].
pub fn allowed_fields(action: AuditAction) -> &'static [&'static str] {
    use AuditAction as A;
    const ERASURE: &[&str] = &["subject_ref"];
    const RECONCILE: &[&str] = &[
        "phase",
        "replayed",
        "from_index",
        "appended",
        "checkpoints",
        "keys_destroyed",
        "orgs_destroyed",
        "records_purged",
        "objects_deleted",
        "tokens_destroyed",
        "terminations",
        "marked_for_purge",
        "soft_deleted",
        "key_store_only",
        "records",
        "ids_sha256",
    ];
    const LLM: &[&str] = &[
        "model",
        "stream",
        "input_tokens",
        "output_tokens",
        "latency_ms",
        "upstream_ms",
        "entities",
        "pii_types",
        "result",
        "prompt_record",
        "subject_ref",
        "category",
    ];
    match action {
        A::OrgMove => &["from_region", "to_region"],
        A::SettingsUpdate => &["settings"],
        A::MemberCreate | A::MemberUpdate => &["roles", "groups", "mfa", "identity_bound"],
        A::MemberTotpEnroll => &["method"],
        A::MemberTotpEnrollmentCode => &["expires"],
        A::MemberTotpLock => &["failures"],
        A::MemberDisable => &["last_used"],
        A::AccessReviewRecord => &["review_sha256", "kept", "removed"],
        A::SupportRequestCreate => &[
            "justification",
            "scope",
            "categories",
            "duration",
            "expires",
        ],
        A::SupportRequestApprove => &["duration", "expires"],
        A::SessionOpen => &["method", "expires", "failures"],
        A::AuthSignIn => &["method", "mfa", "expires", "source_limited"],
        A::AuthTokenCreate => &["expires"],
        A::AuthReject => &["key_prefix", "source_limited"],
        A::RecordCreate => &["category", "categories", "records", "ids"],
        A::RecordArchive => &["category"],
        A::RecordRead | A::RecordReveal | A::FileDownload => &["category", "subject_ref"],
        A::RecordArchiveRestore => &["readable_until"],
        A::RecordPurge => &["records", "purge_reasons", "ids_sha256"],
        A::FileUpload => &["category", "bytes"],
        A::CategoryDeleteAll | A::RetentionRecompute => &["records"],
        A::RetentionSet => &["retention"],
        A::KeyRotate => &["phase", "new_version", "rewrapped"],
        A::PiiBlocked => &["entities"],
        A::RequestCreate => &["request_type", "subject_ref", "due"],
        A::RequestBulk => &["subjects"],
        A::RequestExtend => &["by", "due"],
        A::RequestStart => &["subject_ref", "round"],
        A::RequestComplete => &["subject_ref", "status"],
        A::RequestExport => &[
            "subject_ref",
            "format",
            "records",
            "archived_read",
            "export",
            "withheld",
        ],
        A::CertificateIssue => &["subject_ref", "certificate"],
        A::CertificateRead => &["certificate"],
        A::SubjectCryptoErase => &["subject_ref", "keys"],
        A::SubjectPurge | A::SubjectAnonymize => &["subject_ref", "records"],
        A::SubjectAggregate => &["subject_ref", "category", "records"],
        A::SubjectTokensDestroy => ERASURE,
        A::SubjectErase => &["subject_ref", "certificate", "statement_sha256"],
        A::LlmChatCompletions | A::LlmResponses | A::LlmMessages | A::LlmModels => LLM,
        A::BackupRestore => &["backup", "backup_kind", "audit_size", "files"],
        A::BackupReconcile => RECONCILE,
        A::AlertFire => &["rule", "events", "severity"],
        A::NotificationFail => &["message", "event_type"],
        A::SecurityEventPurge => &["due"],
        A::IncidentCreate => &["rule", "severity"],
        A::SubjectReference => &["subject_ref"],
        A::IncidentStatus => &["status"],
        A::IncidentAffected => &["subjects", "records"],
        A::IncidentClock => &["clock", "due"],
        A::IncidentNotify => &["subjects", "records", "messages"],
        A::SubjectContact => &["subject_ref", "status"],
        A::RequestRemind => &["due", "messages"],
        A::PiiDetect => &["category", "entities", "records"],
        A::NotificationPurge => &["due"],
        A::PrivacyLink => &["subject_ref", "expires"],
        A::PrivacyLinkPurge => &["due"],
        A::PrivacyExport => &["format", "export"],
        A::PrivacyCertificate => &["certificate"],
        A::BackupKeysRestore => &[
            "backup",
            "org_keys",
            "subject_keys",
            "deployment_keys",
            "refused_destroyed",
            "keys_destroyed",
            "orgs_destroyed",
        ],
        _ => &[],
    }
}

/// The field every action may carry: the support grant an operator acted under, so that the
/// org can list every access made under a grant from the log itself.
pub const GRANT_FIELD: &str = "grant";

/// The first field of `details` that `action` may not carry.
pub(crate) fn first_disallowed(action: AuditAction, details: &Details) -> Option<&'static str> {
    let allowed = allowed_fields(action);
    details
        .json_fields()
        .into_keys()
        .find(|name| *name != GRANT_FIELD && !allowed.contains(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allowed_field_exists() {
        for action in AuditAction::ALL {
            for name in allowed_fields(*action) {
                assert!(Details::FIELDS.contains(name), "{action}: {name}");
            }
        }
    }

    #[test]
    fn version_1_reasons_give_back_what_readers_need() {
        let d = Details::from_v1_reason("subject_ref=abc certificate=c1 statement=00ff");
        assert_eq!(d.subject_ref.as_deref(), Some("abc"));
        assert_eq!(d.certificate.as_deref(), Some("c1"));
        assert_eq!(d.statement_sha256.as_deref(), Some("00ff"));
        let d = Details::from_v1_reason("records=3 reasons=retention ids_sha256=aa");
        assert_eq!((d.records, d.ids_sha256.as_deref()), (Some(3), Some("aa")));
        let d = Details::from_v1_reason("phase=start from_index=17");
        assert_eq!(d.from_index, Some(17));
        assert!(Details::from_v1_reason("hard_delete").is_empty());
        let d = Details::from_v1_reason("records=2 categories=a ids=r1,r2");
        assert_eq!(d.ids, Some(vec!["r1".to_string(), "r2".to_string()]));
        let d = Details::from_v1_reason("subject_ref=s keys=");
        assert_eq!(d.keys, Some(vec![]));
    }
}
