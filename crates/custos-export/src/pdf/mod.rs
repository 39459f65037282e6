//! The PDF format: a document for people, and the generic text document certificates reuse.

mod file;
mod layout;
pub(crate) mod winansi;

use std::io::Write;

use file::Info;
use layout::{Layout, Style};

use crate::order::Order;
use crate::{ExportError, ExportEvent, ExportHeader, ExportRecord, ExportWriter};

pub use winansi::REPLACEMENT;

/// A human-readable time: `2026-01-02 03:04:05 UTC`.
fn when(t: &jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn opt_when(t: &Option<jiff::Timestamp>) -> String {
    t.as_ref().map(when).unwrap_or_else(|| "-".to_owned())
}

/// Content or metadata as text: a JSON string as itself, anything else pretty-printed.
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// Streams a PDF export.
pub(crate) struct PdfWriter<W: Write> {
    layout: Layout<W>,
    order: Order,
    /// Header categories with their record counts, for the headings.
    categories: Vec<(String, u64)>,
    /// Categories whose heading has been written, counted from the first.
    started: usize,
    events_started: bool,
    title: String,
    tool: String,
    generated_at: jiff::Timestamp,
}

impl<W: Write> PdfWriter<W> {
    /// Writes the title block and the summary table.
    pub(crate) fn begin(out: W, header: &ExportHeader) -> Result<Self, ExportError> {
        let order = Order::new(header.categories.iter().map(|c| c.category.as_str()))?;
        let title = format!("Data export: {}", header.org_name);
        let mut layout = Layout::new(out, &format!("{title} - subject {}", header.subject))?;
        layout.heading(Style::TITLE, &title, 6)?;
        layout.space(0.5);
        let mut facts = vec![
            format!("Organization: {} ({})", header.org_name, header.org),
            format!("Subject: {}", header.subject),
            format!("Generated: {}", when(&header.generated_at)),
        ];
        if let Some(request) = &header.request {
            facts.push(format!(
                "Request: {request}, due {}",
                opt_when(&header.request_due)
            ));
        }
        facts.push(format!("Produced by: {}", header.tool));
        for fact in facts {
            layout.text(Style::BODY, 0, &fact)?;
        }
        layout.space(1.0);
        layout.text(
            Style::BODY,
            0,
            &format!(
                "This document lists the data held about the subject: a summary per category, \
                 every record, and the audit events about the subject. Characters the PDF's \
                 standard font cannot show appear as '{REPLACEMENT}'; the JSON and CSV exports \
                 hold the exact text."
            ),
        )?;
        layout.space(1.5);
        summary_table(&mut layout, header)?;
        withheld_list(&mut layout, header)?;
        Ok(Self {
            layout,
            order,
            categories: header
                .categories
                .iter()
                .map(|c| (c.category.clone(), c.records))
                .collect(),
            started: 0,
            events_started: false,
            title,
            tool: header.tool.clone(),
            generated_at: header.generated_at,
        })
    }

    /// Writes the headings of categories up to `end` (exclusive). All but the last have no
    /// records; the last has some when `last_has_records` (a record just opened it).
    fn start_categories_until(
        &mut self,
        end: usize,
        last_has_records: bool,
    ) -> Result<(), ExportError> {
        if self.started == 0 && end > 0 {
            self.layout.space(1.5);
            self.layout.heading(Style::SECTION, "Records", 3)?;
        }
        while self.started < end {
            let (name, count) = &self.categories[self.started];
            let noun = if *count == 1 { "record" } else { "records" };
            let heading = format!("{name} ({count} {noun})");
            self.layout.space(1.0);
            self.layout.heading(Style::HEADING, &heading, 3)?;
            let has_records = last_has_records && self.started + 1 == end;
            if !has_records {
                self.layout.text(Style::BODY, 0, "No records.")?;
            }
            self.started += 1;
        }
        Ok(())
    }

    fn start_events(&mut self) -> Result<(), ExportError> {
        if !self.events_started {
            let rest = self.order.events();
            self.start_categories_until(rest.end, false)?;
            self.layout.space(1.5);
            self.layout
                .heading(Style::SECTION, "Audit events about the subject", 2)?;
            self.events_started = true;
        }
        Ok(())
    }
}

fn summary_table<W: Write>(
    layout: &mut Layout<W>,
    header: &ExportHeader,
) -> Result<(), ExportError> {
    layout.heading(Style::SECTION, "Summary", 3)?;
    // Column widths in characters: with the five gaps, 87 of the 91 a body line holds. The last
    // fits a whole time ("2026-01-02 03:04:05 UTC").
    const WIDTHS: [usize; 6] = [18, 8, 10, 9, 14, 23];
    let header_row = [
        "Category",
        "Records",
        "Retention",
        "Archive",
        "Class",
        "Next expiry",
    ];
    table_row(
        layout,
        Style::STRONG,
        &WIDTHS,
        &header_row.map(str::to_owned),
    )?;
    if header.categories.is_empty() {
        layout.text(Style::BODY, 0, "No data is held about the subject.")?;
    }
    for c in &header.categories {
        let row = [
            c.category.clone(),
            c.records.to_string(),
            c.retention.clone(),
            c.archive_after.clone().unwrap_or_else(|| "-".to_owned()),
            c.classification.clone(),
            opt_when(&c.next_expiry),
        ];
        table_row(layout, Style::BODY, &WIDTHS, &row)?;
    }
    Ok(())
}

/// The categories left out because the downloader may not read them, when there are any.
fn withheld_list<W: Write>(
    layout: &mut Layout<W>,
    header: &ExportHeader,
) -> Result<(), ExportError> {
    if header.withheld.is_empty() {
        return Ok(());
    }
    layout.space(1.5);
    layout.heading(Style::SECTION, "Withheld", 3)?;
    layout.text(
        Style::BODY,
        0,
        "The subject also has data in these categories. They are left out of this document \
         because the person who downloaded it may not read them.",
    )?;
    for w in &header.withheld {
        let noun = if w.records == 1 { "record" } else { "records" };
        layout.text(
            Style::BODY,
            0,
            &format!("{}: {} {noun}", w.category, w.records),
        )?;
    }
    Ok(())
}

/// One table row; a cell too wide for its column wraps within it and the row grows.
fn table_row<W: Write>(
    layout: &mut Layout<W>,
    style: Style,
    widths: &[usize; 6],
    cells: &[String; 6],
) -> Result<(), ExportError> {
    let wrapped: Vec<Vec<String>> = cells
        .iter()
        .zip(widths)
        .map(|(cell, w)| layout::wrap(cell, *w))
        .collect();
    let height = wrapped.iter().map(Vec::len).max().unwrap_or(1);
    for i in 0..height {
        let mut line = String::new();
        for (cell, w) in wrapped.iter().zip(widths) {
            let part = cell.get(i).map_or("", String::as_str);
            line.push_str(&format!("{part:<w$} "));
        }
        layout.line(style, 0, line.trim_end())?;
    }
    Ok(())
}

impl<W: Write> ExportWriter for PdfWriter<W> {
    fn record(&mut self, r: &ExportRecord) -> Result<(), ExportError> {
        let advance = self.order.record(&r.category)?;
        if let Some(index) = advance.opened {
            self.start_categories_until(index + 1, true)?;
        }
        let l = &mut self.layout;
        l.space(0.6);
        l.heading(Style::STRONG, &format!("Record {}", r.id), 3)?;
        l.text(
            Style::BODY,
            2,
            &format!("state: {}, tier: {}", r.state, r.tier),
        )?;
        l.text(
            Style::BODY,
            2,
            &format!(
                "created {}; archive at {}; expires {}; deleted {}",
                when(&r.created_at),
                opt_when(&r.archive_at),
                when(&r.expire_at),
                opt_when(&r.deleted_at)
            ),
        )?;
        if let Some(found) = r.pii.as_object().filter(|m| !m.is_empty()) {
            let list: Vec<String> = found.iter().map(|(k, v)| format!("{k} x{v}")).collect();
            l.text(
                Style::BODY,
                2,
                &format!("personal data found: {}", list.join(", ")),
            )?;
        }
        if let Some(f) = &r.file {
            let name = f.name.as_deref().unwrap_or("(no name)");
            let kind = f.content_type.as_deref().unwrap_or("unknown type");
            l.text(
                Style::BODY,
                2,
                &format!("file: {name} ({kind}, {} bytes)", f.size),
            )?;
            l.text(Style::BODY, 2, &format!("sha256: {}", f.sha256))?;
        }
        l.text(Style::STRONG, 2, "content:")?;
        l.text(Style::BODY, 4, &value_text(&r.content))?;
        let no_metadata =
            r.metadata.is_null() || r.metadata.as_object().is_some_and(|m| m.is_empty());
        if !no_metadata {
            l.text(Style::STRONG, 2, "metadata:")?;
            l.text(Style::BODY, 4, &value_text(&r.metadata))?;
        }
        Ok(())
    }

    fn event(&mut self, e: &ExportEvent) -> Result<(), ExportError> {
        self.start_events()?;
        let l = &mut self.layout;
        l.text(
            Style::BODY,
            0,
            &format!(
                "#{} {} {} ({})",
                e.index,
                when(&e.time),
                e.action,
                e.outcome
            ),
        )?;
        let mut detail = format!("by {}", e.actor);
        if let Some(target) = &e.target {
            detail.push_str(&format!(" on {target}"));
        }
        if let Some(reason) = &e.reason {
            detail.push_str(&format!("; reason: {reason}"));
        }
        l.text(Style::BODY, 4, &detail)?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        let no_events = !self.events_started;
        self.start_events()?;
        if no_events {
            self.layout.text(Style::BODY, 0, "No audit events.")?;
        }
        let this = *self;
        this.layout.finish(&Info {
            title: &this.title,
            producer: &this.tool,
            created: Some(this.generated_at),
        })
    }
}

/// Renders a document of text lines (a title, then each line wrapped; an empty line is a
/// blank line) as a PDF. The certificate of deletion uses it for its printable form.
pub fn certificate_pdf<W: Write>(title: &str, lines: &[String], out: W) -> Result<(), ExportError> {
    let mut layout = Layout::new(out, title)?;
    layout.heading(Style::TITLE, title, 2)?;
    layout.space(1.0);
    for line in lines {
        if line.is_empty() {
            layout.space(1.0);
        } else {
            layout.text(Style::BODY, 0, line)?;
        }
    }
    layout.finish(&Info {
        title,
        producer: "custos",
        created: None,
    })
}
