//! The JSON format: one `custos-export/v1` document, written as records arrive.
//!
//! serde_json serializes each record and event straight into the stream; only the document's
//! punctuation (brackets and the commas between array items) is written by hand, because
//! serde_json has no incremental sequence writer for an unbounded array.

use std::io::{BufWriter, Write};

use serde::Serialize;

use crate::order::Order;
use crate::{ExportError, ExportEvent, ExportHeader, ExportRecord, ExportWriter};

/// Value of the document's `format` member.
pub const JSON_FORMAT: &str = "custos-export/v1";

/// Where the JSON document is: inside `records` or inside `events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Records,
    Events,
}

/// A failed write while serializing is an output error, not a JSON one.
fn json_error(e: serde_json::Error) -> ExportError {
    if e.is_io() {
        ExportError::Io(e.into())
    } else {
        ExportError::Json(e)
    }
}

/// Streams a JSON export.
pub(crate) struct JsonWriter<W: Write> {
    out: BufWriter<W>,
    order: Order,
    section: Section,
    /// Whether the current array has an item yet (for the comma before the next).
    has_item: bool,
}

/// The document's members that come before `records`, in the order they are written.
#[derive(Serialize)]
struct Head<'a> {
    format: &'static str,
    org: &'a str,
    org_name: &'a str,
    subject: &'a str,
    request: &'a Option<String>,
    request_due: &'a Option<jiff::Timestamp>,
    generated_at: &'a jiff::Timestamp,
    tool: &'a str,
    summary: &'a [crate::CategorySummary],
    withheld: &'a [crate::WithheldCategory],
}

impl<W: Write> JsonWriter<W> {
    /// Writes everything up to the opening bracket of `records`.
    pub(crate) fn begin(out: W, header: &ExportHeader) -> Result<Self, ExportError> {
        let order = Order::new(header.categories.iter().map(|c| c.category.as_str()))?;
        let mut out = BufWriter::new(out);
        let head = Head {
            format: JSON_FORMAT,
            org: &header.org,
            org_name: &header.org_name,
            subject: &header.subject,
            request: &header.request,
            request_due: &header.request_due,
            generated_at: &header.generated_at,
            tool: &header.tool,
            summary: &header.categories,
            withheld: &header.withheld,
        };
        // The head is small and fixed: serialize it as an object and reopen it by dropping the
        // closing brace, so its member order and escaping stay serde_json's.
        let mut bytes = serde_json::to_vec(&head).map_err(json_error)?;
        debug_assert_eq!(bytes.last(), Some(&b'}'));
        bytes.pop();
        out.write_all(&bytes)?;
        out.write_all(b",\"records\":[")?;
        Ok(Self {
            out,
            order,
            section: Section::Records,
            has_item: false,
        })
    }

    fn item(&mut self, value: &impl Serialize) -> Result<(), ExportError> {
        if self.has_item {
            self.out.write_all(b",")?;
        }
        serde_json::to_writer(&mut self.out, value).map_err(json_error)?;
        self.has_item = true;
        Ok(())
    }

    fn close_records(&mut self) -> Result<(), ExportError> {
        if self.section == Section::Records {
            self.order.events();
            self.out.write_all(b"],\"events\":[")?;
            self.section = Section::Events;
            self.has_item = false;
        }
        Ok(())
    }
}

impl<W: Write> ExportWriter for JsonWriter<W> {
    fn record(&mut self, r: &ExportRecord) -> Result<(), ExportError> {
        self.order.record(&r.category)?;
        self.item(r)
    }

    fn event(&mut self, e: &ExportEvent) -> Result<(), ExportError> {
        self.close_records()?;
        self.item(e)
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.close_records()?;
        self.out.write_all(b"]}")?;
        let mut inner = self.out.into_inner().map_err(|e| e.into_error())?;
        inner.flush()?;
        Ok(())
    }
}
