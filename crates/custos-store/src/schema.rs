//! SQL text both backends share: column lists whose order the row decoders rely on, and the
//! per-org tables a completed termination empties.

/// Record columns, in the order `record_from_row` of each backend reads them.
pub(crate) const RECORD_COLUMNS: &str = "id, category, subject_ref, state, created_at, \
     archive_at, expire_at, deleted_at, next_due_at, key_ref, sealed, blob_size, pii";

/// Org columns, in the order `org_from_row` of each backend reads them.
pub(crate) const ORG_COLUMNS: &str =
    "id, name, region, created_at, terminate_requested_at, terminated_at, suspended_at";

/// What is left of an org once its records are purged and its termination completes; the
/// org row, its deletion log and its audit trail stay.
pub(crate) const TERMINATED_ORG_TABLES: &[&str] = &[
    "pii_tokens",
    "retention_overrides",
    "holds",
    "due_recompute",
    "org_settings",
    "member_factors",
    "sessions",
    "personal_tokens",
];
