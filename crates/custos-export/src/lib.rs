//! Subject data exports for Custos: the bytes of a GDPR access or portability answer.
//!
//! What it is for: turning what the core gathered about one data subject (a header with a
//! per-category summary, then records grouped by category, then audit events) into one of three
//! formats, written to any [`std::io::Write`] as the data arrives:
//!
//! - **JSON** ([`Format::Json`]): one `custos-export/v1` document, described exactly by the
//!   JSON Schema (draft 2020-12) in [`EXPORT_SCHEMA`]. Machine-readable portability format.
//! - **CSV** ([`Format::Csv`]): a zip with `README.txt`, `summary.csv`, `withheld.csv`, one
//!   RFC 4180 `<category>.csv` per category (see [`category_file_names`]) and `events.csv`.
//!   Streamed (no `Seek`). Cells a spreadsheet would run as formulas are defused with a
//!   leading `'` ([`defuse_cell`], OWASP's CSV-injection guidance).
//! - **PDF** ([`Format::Pdf`]): a document for people, with a title block, a summary table, the
//!   records and the events; plus [`certificate_pdf`] for any titled list of text lines.
//!
//! What it is not: it reads no store, decrypts nothing and decides nothing about what belongs in
//! an export; the caller passes plain values. It logs nothing, and its errors never carry record
//! content.
//!
//! Memory: JSON and CSV hold one record at a time (plus the zip's per-entry index, a few dozen
//! bytes per file). PDF holds one page's content plus 8 bytes per PDF object (two per page):
//! each page is compressed and written as soon as it is full. Measured with
//! `examples/export_many.rs` (100,000 records of ~400 bytes plus 1,000 events, release build,
//! `/usr/bin/time -v`): peak RSS 2.5 MB for JSON, 3.0 MB for CSV and 6.1 MB for PDF (42,890
//! pages), the same order as for 1,000 records (2.5 / 3.0 / 3.1 MB).
//!
//! PDF text and its limits: the PDF uses the standard Courier fonts (no font is embedded, every
//! viewer has them, and a monospaced font makes wrapping exact) with WinAnsiEncoding, so text is
//! real text that `pdftotext` and screen readers extract. Characters outside WinAnsi
//! (Windows-1252: Latin-1 plus a few typographic signs), such as CJK, emoji or Cyrillic, are shown
//! as `?`; the document says so and points to the JSON and CSV exports for the exact text.
//!
//! PDF crate: `pdf-writer` (typst's), chosen over `printpdf` because it writes PDF objects one at
//! a time into small buffers, which is what lets pages stream out; `printpdf` builds the whole
//! document in memory before saving it. pdf-writer does no layout, so line wrapping
//! (`textwrap`) and pagination are done here.
//!
//! ```
//! use custos_export::{writer, CategorySummary, ExportHeader, ExportRecord, Format};
//!
//! let t = "2026-01-01T00:00:00Z".parse().unwrap();
//! let header = ExportHeader {
//!     org: "org_1".into(),
//!     org_name: "Example Ltd".into(),
//!     subject: "user-42".into(),
//!     request: None,
//!     generated_at: t,
//!     tool: "custos 0.1.0".into(),
//!     categories: vec![CategorySummary {
//!         category: "contacts".into(),
//!         records: 1,
//!         retention: "2y".into(),
//!         archive_after: None,
//!         classification: "personal".into(),
//!         next_expiry: None,
//!     }],
//!     request_due: None,
//!     withheld: vec![],
//! };
//! let record = ExportRecord {
//!     id: "rec_1".into(),
//!     category: "contacts".into(),
//!     state: "active".into(),
//!     tier: "hot".into(),
//!     created_at: t,
//!     archive_at: None,
//!     expire_at: t,
//!     deleted_at: None,
//!     content: serde_json::json!({"email": "a@example.com"}),
//!     metadata: serde_json::json!({}),
//!     pii: serde_json::json!({"EMAIL_ADDRESS": 1}),
//!     file: None,
//! };
//! // Any `Write + Send + 'static`: a file, a pipe to the HTTP body, ...
//! let mut w = writer(Format::Pdf, std::io::sink(), &header).unwrap();
//! w.record(&record).unwrap();
//! w.finish().unwrap();
//! ```

#![warn(missing_docs)]

mod csv_zip;
mod error;
mod json;
mod model;
mod order;
mod pdf;

use std::io::Write;
use std::str::FromStr;

pub use csv_zip::{
    category_file_names, defuse_cell, EVENTS_FILE, EVENT_COLUMNS, README_FILE, README_TEXT,
    RECORD_COLUMNS, SUMMARY_COLUMNS, SUMMARY_FILE, WITHHELD_COLUMNS, WITHHELD_FILE,
};
pub use error::ExportError;
pub use json::JSON_FORMAT;
pub use model::{
    CategorySummary, ExportEvent, ExportFile, ExportHeader, ExportRecord, WithheldCategory,
};
pub use pdf::{certificate_pdf, REPLACEMENT};

/// The JSON Schema (draft 2020-12) of the JSON export document.
pub const EXPORT_SCHEMA: &str = include_str!("../schema/export.schema.json");

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// One JSON document (`application/json`).
    Json,
    /// A zip of CSV files (`application/zip`).
    Csv,
    /// A PDF document (`application/pdf`).
    Pdf,
}

impl Format {
    /// Every format, in the order they are documented.
    pub const ALL: [Format; 3] = [Format::Json, Format::Csv, Format::Pdf];

    /// The format's name as `FromStr` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Pdf => "pdf",
        }
    }

    /// The media type of the output, for `Content-Type`.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "application/zip",
            Format::Pdf => "application/pdf",
        }
    }

    /// The extension of a file holding the output, without the dot (CSV exports are zips).
    pub fn file_extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "zip",
            Format::Pdf => "pdf",
        }
    }
}

impl FromStr for Format {
    type Err = ExportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            // Echo at most a short prefix: the value is caller input.
            .ok_or_else(|| ExportError::UnknownFormat(s.chars().take(32).collect()))
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Receives an export's records and events after [`writer`] wrote its beginning.
///
/// Call order: every record, grouped by category in the order of the header's categories, then
/// every event, then [`finish`](ExportWriter::finish). A record of an unknown category, out of
/// that order, or after an event is refused.
///
/// Dropping a writer without `finish` (the export failed half-way) leaves the output cut short:
/// the JSON does not parse and the zip has no central directory, so neither passes for a complete
/// export. A cut PDF lacks its trailer, but some viewers repair such files: the caller must still
/// report the transfer as failed (e.g. abort the HTTP response).
pub trait ExportWriter {
    /// Writes one record.
    fn record(&mut self, r: &ExportRecord) -> Result<(), ExportError>;
    /// Writes one audit event (after all records).
    fn event(&mut self, e: &ExportEvent) -> Result<(), ExportError>;
    /// Writes the end of the document and flushes the output.
    fn finish(self: Box<Self>) -> Result<(), ExportError>;
}

/// Starts an export in `format`: writes what the header says and returns the writer for the
/// records and events.
pub fn writer<W: Write + Send + 'static>(
    format: Format,
    out: W,
    header: &ExportHeader,
) -> Result<Box<dyn ExportWriter + Send>, ExportError> {
    Ok(match format {
        Format::Json => Box::new(json::JsonWriter::begin(out, header)?),
        Format::Csv => Box::new(csv_zip::CsvZipWriter::begin(out, header)?),
        Format::Pdf => Box::new(pdf::PdfWriter::begin(out, header)?),
    })
}
