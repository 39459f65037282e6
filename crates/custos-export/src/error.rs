//! Export errors: what went wrong, with the cause kept, never a record's content.

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The output could not be written (e.g. the client went away).
    #[error("writing the export failed")]
    Io(#[from] std::io::Error),
    /// A record or event could not be serialized as JSON.
    #[error("serializing the export as JSON failed")]
    Json(#[from] serde_json::Error),
    /// A CSV row could not be written.
    #[error("writing a CSV row failed")]
    Csv(#[from] csv::Error),
    /// The zip container could not be written.
    #[error("writing the zip archive failed")]
    Zip(#[from] zip::result::ZipError),
    /// A format name other than `json`, `csv` or `pdf`.
    #[error("unknown export format `{0}` (expected json, csv or pdf)")]
    UnknownFormat(String),
    /// The header names the same category twice.
    #[error("category `{0}` appears twice in the export header")]
    DuplicateCategory(String),
    /// A record's category is not in the header.
    #[error("record category `{0}` is not in the export header")]
    UnknownCategory(String),
    /// A record came after the records of a later category (records must be grouped by category
    /// in the header's order).
    #[error("records of category `{0}` arrived after a later category's records")]
    CategoryOutOfOrder(String),
    /// An earlier write failed and left the writer unusable; the output is incomplete.
    #[error("an earlier write failed; the export is incomplete")]
    Poisoned,
    /// A record came after the first event.
    #[error("a record arrived after the audit events")]
    RecordAfterEvents,
}
