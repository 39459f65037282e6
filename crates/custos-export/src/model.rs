//! The plain data an export is made of: a header known up front, then records and events.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What is known before the first record: who, for whom, when, and the per-category summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportHeader {
    /// Org id.
    pub org: String,
    /// Org display name (the PDF's title page shows it).
    pub org_name: String,
    /// Subject reference the export is about.
    pub subject: String,
    /// Data subject request id, when the export answers one.
    pub request: Option<String>,
    /// When the export was generated.
    pub generated_at: Timestamp,
    /// Producing tool and version, e.g. `custos 0.1.0`.
    pub tool: String,
    /// One entry per category, in the order records will arrive.
    pub categories: Vec<CategorySummary>,
    /// When the request is due (GDPR one-month deadline), when there is a request.
    pub request_due: Option<Timestamp>,
    /// Categories left out because the downloader may not read them (empty: nothing was).
    #[serde(default)]
    pub withheld: Vec<WithheldCategory>,
}

/// A category of the subject's data left out of the export, with how many records it holds:
/// the downloader's access rules do not open it, and the export says so instead of
/// pretending the subject has nothing there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithheldCategory {
    /// Category name from the policy.
    pub category: String,
    /// Records of the subject in the category that were left out.
    pub records: u64,
}

/// What the subject has in one category and how long it is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategorySummary {
    /// Category name from the policy.
    pub category: String,
    /// Number of records of the subject in this category.
    pub records: u64,
    /// Retention period as the policy states it (e.g. `2y`).
    pub retention: String,
    /// When records move to the archive tier, if they do (e.g. `90d`).
    pub archive_after: Option<String>,
    /// Data classification of the category.
    pub classification: String,
    /// Earliest expiry among the subject's records in this category.
    pub next_expiry: Option<Timestamp>,
}

/// One stored record, decrypted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportRecord {
    /// Record id.
    pub id: String,
    /// Category name; must be one of the header's categories.
    pub category: String,
    /// `active`, `archived`, `soft_deleted` or `purge_requested`.
    pub state: String,
    /// `hot` or `archive`.
    pub tier: String,
    /// When the record was stored.
    pub created_at: Timestamp,
    /// When it moves (or moved) to the archive tier.
    pub archive_at: Option<Timestamp>,
    /// When it expires and is deleted.
    pub expire_at: Timestamp,
    /// When it was deleted, if it was.
    pub deleted_at: Option<Timestamp>,
    /// The stored content, any JSON.
    pub content: serde_json::Value,
    /// The stored metadata, any JSON.
    pub metadata: serde_json::Value,
    /// PII findings per entity, e.g. `{"EMAIL_ADDRESS": 2}`.
    pub pii: serde_json::Value,
    /// The attached file, if the record is a file.
    pub file: Option<ExportFile>,
}

/// A file attached to a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportFile {
    /// Original file name, if known.
    pub name: Option<String>,
    /// Media type, if known.
    pub content_type: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// The content in standard base64; `None` when it is too large to inline.
    pub content_base64: Option<String>,
}

/// One audit event about the subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportEvent {
    /// Index in the audit log.
    pub index: u64,
    /// When it happened.
    pub time: Timestamp,
    /// What was done, e.g. `record.create`.
    pub action: String,
    /// Who did it.
    pub actor: String,
    /// What it was done to, if anything.
    pub target: Option<String>,
    /// `ok`, `denied`, ...
    pub outcome: String,
    /// Why, when a reason was given.
    pub reason: Option<String>,
}
