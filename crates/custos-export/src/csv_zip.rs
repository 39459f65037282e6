//! The CSV format: a zip (deflate, streamed) holding `summary.csv`, one `<category>.csv` per
//! header category (header row only when the subject has no records there) and `events.csv`.
//!
//! The zip is written with `ZipWriter::new_stream`: entries carry data descriptors, so the
//! output never needs `Seek` and can be an HTTP body. Every entry is marked as a large (ZIP64)
//! file because its size is unknown when it starts and a category with inlined files can pass
//! 4 GiB; current unzip tools, Python's `zipfile`, Windows and macOS all read ZIP64.
//!
//! Cells are RFC 4180 (quoting, CRLF line ends, UTF-8 without BOM) and defused against
//! spreadsheet formula injection as OWASP's CSV-injection guidance says: a cell starting with
//! `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so a spreadsheet shows it
//! as text instead of running it. `README.txt`, the zip's first entry, says so; a reader that
//! wants the exact values strips that one quote from such cells (or reads the JSON export).
//! A subject's own data is still personal data written by anyone (a message reading
//! `=HYPERLINK(...)`), so exactness loses to the safety of whoever opens the file.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

use crate::order::Order;
use crate::{ExportError, ExportEvent, ExportHeader, ExportRecord, ExportWriter};

/// Header row of every category file.
pub const RECORD_COLUMNS: [&str; 15] = [
    "id",
    "state",
    "tier",
    "created_at",
    "archive_at",
    "expire_at",
    "deleted_at",
    "content",
    "metadata",
    "pii",
    "file_name",
    "file_content_type",
    "file_size",
    "file_sha256",
    "file_content_base64",
];

/// Header row of `events.csv`.
pub const EVENT_COLUMNS: [&str; 7] = [
    "index", "time", "action", "actor", "target", "outcome", "reason",
];

/// Header row of `summary.csv`.
pub const SUMMARY_COLUMNS: [&str; 6] = [
    "category",
    "records",
    "retention",
    "archive_after",
    "classification",
    "next_expiry",
];

/// Name of the events file inside the zip.
pub const EVENTS_FILE: &str = "events.csv";

/// Name of the summary file inside the zip.
pub const SUMMARY_FILE: &str = "summary.csv";

/// Name of the file listing withheld categories inside the zip.
pub const WITHHELD_FILE: &str = "withheld.csv";

/// Header row of `withheld.csv`.
pub const WITHHELD_COLUMNS: [&str; 2] = ["category", "records"];

/// Name of the note inside the zip that explains the files and the formula defusing.
pub const README_FILE: &str = "README.txt";

/// The text of `README.txt`.
pub const README_TEXT: &str = "custos-export/v1 (CSV)\r\n\
\r\n\
summary.csv   one row per category of the subject's data: records, retention, archiving.\r\n\
withheld.csv  categories left out because the person who downloaded this export may not\r\n\
              read them, with how many records each holds (only the header row: none).\r\n\
<category>.csv  the records of one category.\r\n\
events.csv    the audit events about the subject.\r\n\
\r\n\
Spreadsheet formulas are defused (OWASP CSV injection guidance): a cell that starts with\r\n\
=, +, -, @, a tab or a carriage return is written with a single quote (') in front of it,\r\n\
so spreadsheets show it as text. To get the exact value, remove that one leading quote\r\n\
from such cells, or use the JSON export.\r\n";

/// Characters that make a spreadsheet read a cell as a formula (OWASP's list).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `cell` as written: prefixed with `'` when a spreadsheet would take it for a formula.
pub fn defuse_cell(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

type Csv<W> = csv::Writer<ZipWriter<StreamWriter<Gate<W>>>>;

/// Passes writes through until the export is abandoned, then swallows them.
///
/// `ZipWriter`'s `Drop` finalizes the archive (writes the central directory). If an export
/// that failed half-way were finalized, the client would get a valid zip missing data, with
/// nothing saying so. So a writer dropped without `finish` closes the gate first, and the
/// output ends without a central directory: any unzip reports it as damaged.
struct Gate<W> {
    inner: W,
    open: Arc<AtomicBool>,
}

impl<W: Write> Write for Gate<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.open.load(Ordering::Relaxed) {
            self.inner.write(buf)
        } else {
            Ok(buf.len())
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.open.load(Ordering::Relaxed) {
            self.inner.flush()
        } else {
            Ok(())
        }
    }
}

/// Streams a CSV zip export.
pub(crate) struct CsvZipWriter<W: Write> {
    /// `None` only after a failed switch between zip entries (the writer is then unusable).
    csv: Option<Csv<W>>,
    options: SimpleFileOptions,
    order: Order,
    file_names: Vec<String>,
    /// Categories whose files have been started, counted from the first.
    started: usize,
    events_started: bool,
    /// Shared with the [`Gate`] under the zip writer.
    open: Arc<AtomicBool>,
}

/// The zip entry name of each category's file, in header order.
///
/// Category names from the policy are `[a-z][a-z0-9_]*`, but this crate does not trust its
/// input: anything else becomes `_` (so no entry can name a directory or climb out of one), and
/// a name that would collide with `events.csv`, `summary.csv`, `withheld.csv` or an earlier
/// category's file
/// gets a `category-` prefix and, if needed, a numeric suffix.
pub fn category_file_names<'a>(categories: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut used: Vec<String> = vec![
        EVENTS_FILE.to_owned(),
        SUMMARY_FILE.to_owned(),
        WITHHELD_FILE.to_owned(),
    ];
    let mut names = Vec::new();
    for category in categories {
        let mut base: String = category
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if base.is_empty() {
            base.push_str("category");
        }
        let mut name = format!("{base}.csv");
        let mut n = 1;
        while used.contains(&name) {
            name = if n == 1 {
                format!("category-{base}.csv")
            } else {
                format!("category-{base}-{n}.csv")
            };
            n += 1;
        }
        used.push(name.clone());
        names.push(name);
    }
    names
}

fn zip_time(t: jiff::Timestamp) -> zip::DateTime {
    // Zip times are local-less DOS times limited to 1980..2107: use UTC, and the zip epoch when
    // the time cannot be represented.
    zip::DateTime::try_from(t.to_zoned(jiff::tz::TimeZone::UTC).datetime()).unwrap_or_default()
}

fn time(t: &jiff::Timestamp) -> String {
    t.to_string()
}

fn opt_time(t: &Option<jiff::Timestamp>) -> String {
    t.as_ref().map(time).unwrap_or_default()
}

fn text_cell(v: Option<&String>) -> Cow<'_, str> {
    Cow::Borrowed(v.map_or("", String::as_str))
}

fn json_text(v: &serde_json::Value) -> Result<String, ExportError> {
    Ok(serde_json::to_string(v)?)
}

impl<W: Write> CsvZipWriter<W> {
    /// Starts the zip and writes `summary.csv`.
    pub(crate) fn begin(out: W, header: &ExportHeader) -> Result<Self, ExportError> {
        let order = Order::new(header.categories.iter().map(|c| c.category.as_str()))?;
        let file_names = category_file_names(header.categories.iter().map(|c| c.category.as_str()));
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(zip_time(header.generated_at))
            .unix_permissions(0o644)
            .large_file(true);
        let open = Arc::new(AtomicBool::new(true));
        let mut zip = ZipWriter::new_stream(Gate {
            inner: out,
            open: open.clone(),
        });
        zip.set_comment(format!(
            "custos-export/v1 generated by {}; formulas defused, see {README_FILE}",
            header.tool
        ))?;
        zip.start_file(README_FILE, options)?;
        zip.write_all(README_TEXT.as_bytes())?;
        zip.start_file(SUMMARY_FILE, options)?;
        let mut csv = csv_writer(zip);
        csv.write_record(SUMMARY_COLUMNS)?;
        for c in &header.categories {
            write_row(
                &mut csv,
                &[
                    c.category.clone(),
                    c.records.to_string(),
                    c.retention.clone(),
                    c.archive_after.clone().unwrap_or_default(),
                    c.classification.clone(),
                    opt_time(&c.next_expiry),
                ],
            )?;
        }
        let mut zip = csv.into_inner().map_err(|e| e.into_error())?;
        zip.start_file(WITHHELD_FILE, options)?;
        let mut csv = csv_writer(zip);
        csv.write_record(WITHHELD_COLUMNS)?;
        for w in &header.withheld {
            write_row(&mut csv, &[w.category.clone(), w.records.to_string()])?;
        }
        Ok(Self {
            csv: Some(csv),
            options,
            order,
            file_names,
            started: 0,
            events_started: false,
            open,
        })
    }

    fn csv(&mut self) -> Result<&mut Csv<W>, ExportError> {
        self.csv.as_mut().ok_or(ExportError::Poisoned)
    }

    /// Ends the current zip entry and starts `name` with `columns` as its header row.
    fn start_file(&mut self, name: &str, columns: &[&str]) -> Result<(), ExportError> {
        let csv = self.csv.take().ok_or(ExportError::Poisoned)?;
        let mut zip = csv.into_inner().map_err(|e| e.into_error())?;
        zip.start_file(name, self.options)?;
        let mut csv = csv_writer(zip);
        csv.write_record(columns)?;
        self.csv = Some(csv);
        Ok(())
    }

    /// Starts the files of categories up to `end` (exclusive) that have none yet.
    fn start_categories_until(&mut self, end: usize) -> Result<(), ExportError> {
        while self.started < end {
            let name = self.file_names[self.started].clone();
            self.start_file(&name, &RECORD_COLUMNS)?;
            self.started += 1;
        }
        Ok(())
    }

    fn start_events(&mut self) -> Result<(), ExportError> {
        if !self.events_started {
            let done = self.order.events();
            self.start_categories_until(done.end)?;
            self.start_file(EVENTS_FILE, &EVENT_COLUMNS)?;
            self.events_started = true;
        }
        Ok(())
    }
}

/// Writes one data row, every cell defused (header rows are ours and written as they are).
fn write_row<T: Write, S: AsRef<str>>(
    csv: &mut csv::Writer<T>,
    cells: &[S],
) -> Result<(), ExportError> {
    csv.write_record(cells.iter().map(|c| defuse_cell(c.as_ref()).into_owned()))?;
    Ok(())
}

fn csv_writer<T: Write>(out: T) -> csv::Writer<T> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out)
}

impl<W: Write> ExportWriter for CsvZipWriter<W> {
    fn record(&mut self, r: &ExportRecord) -> Result<(), ExportError> {
        let advance = self.order.record(&r.category)?;
        if let Some(index) = advance.opened {
            self.start_categories_until(index + 1)?;
        }
        let content: Cow<'_, str> = match &r.content {
            serde_json::Value::String(s) => Cow::Borrowed(s),
            other => Cow::Owned(json_text(other)?),
        };
        let file = r.file.as_ref();
        // Borrowed cells: an inlined file's base64 can be megabytes and is not copied.
        let row: [Cow<'_, str>; 15] = [
            Cow::Borrowed(&r.id),
            Cow::Borrowed(&r.state),
            Cow::Borrowed(&r.tier),
            Cow::Owned(time(&r.created_at)),
            Cow::Owned(opt_time(&r.archive_at)),
            Cow::Owned(time(&r.expire_at)),
            Cow::Owned(opt_time(&r.deleted_at)),
            content,
            Cow::Owned(json_text(&r.metadata)?),
            Cow::Owned(json_text(&r.pii)?),
            text_cell(file.and_then(|f| f.name.as_ref())),
            text_cell(file.and_then(|f| f.content_type.as_ref())),
            Cow::Owned(file.map(|f| f.size.to_string()).unwrap_or_default()),
            text_cell(file.map(|f| &f.sha256)),
            text_cell(file.and_then(|f| f.content_base64.as_ref())),
        ];
        // Only cells that need the quote are copied (not the megabytes of an inlined file).
        let row = row.map(|c| {
            if c.starts_with(FORMULA_STARTS) {
                Cow::Owned(format!("'{c}"))
            } else {
                c
            }
        });
        self.csv()?.write_record(row.iter().map(|c| c.as_bytes()))?;
        Ok(())
    }

    fn event(&mut self, e: &ExportEvent) -> Result<(), ExportError> {
        self.start_events()?;
        let row = [
            e.index.to_string(),
            time(&e.time),
            e.action.clone(),
            e.actor.clone(),
            e.target.clone().unwrap_or_default(),
            e.outcome.clone(),
            e.reason.clone().unwrap_or_default(),
        ];
        write_row(self.csv()?, &row)?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.start_events()?;
        let csv = self.csv.take().ok_or(ExportError::Poisoned)?;
        let zip = csv.into_inner().map_err(|e| e.into_error())?;
        let mut out = zip.finish()?.into_inner();
        out.flush()?;
        Ok(())
    }
}

impl<W: Write> Drop for CsvZipWriter<W> {
    fn drop(&mut self) {
        // After `finish` the zip writer is gone and this is a no-op; before, the export was
        // abandoned and must not be finalized (see `Gate`).
        self.open.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_distinct() {
        let names = category_file_names([
            "contacts",
            "events",
            "summary",
            "../etc/passwd",
            "",
            "contacts",
            "category-events",
        ]);
        assert_eq!(
            names,
            [
                "contacts.csv",
                "category-events.csv",
                "category-summary.csv",
                "___etc_passwd.csv",
                "category.csv",
                "category-contacts.csv",
                "category-category-events.csv",
            ]
        );
    }
}
