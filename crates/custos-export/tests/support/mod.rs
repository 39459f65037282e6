//! Shared fixtures for the export tests: a sample subject and an in-memory output.
#![allow(dead_code)] // Each test file uses a different part.

use std::io::Write;
use std::sync::{Arc, Mutex};

use custos_export::{
    writer, CategorySummary, ExportError, ExportEvent, ExportFile, ExportHeader, ExportRecord,
    Format,
};
use serde_json::json;

/// An output the test keeps a handle to after the writer took it (writers need `'static`).
#[derive(Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

pub fn category(name: &str, records: u64) -> CategorySummary {
    CategorySummary {
        category: name.into(),
        records,
        retention: "2y".into(),
        archive_after: Some("90d".into()),
        classification: "personal".into(),
        next_expiry: Some(ts("2027-03-01T00:00:00Z")),
    }
}

pub fn header(categories: Vec<CategorySummary>) -> ExportHeader {
    ExportHeader {
        org: "org_01J".into(),
        org_name: "Acme Grüße GmbH".into(),
        subject: "subject-7f3a".into(),
        request: Some("req_42".into()),
        generated_at: ts("2026-05-04T10:11:12.5Z"),
        tool: "custos 0.1.0".into(),
        categories,
        request_due: Some(ts("2026-06-03T10:11:12Z")),
        withheld: vec![],
    }
}

pub fn record(id: &str, category: &str, content: serde_json::Value) -> ExportRecord {
    ExportRecord {
        id: id.into(),
        category: category.into(),
        state: "active".into(),
        tier: "hot".into(),
        created_at: ts("2025-01-02T03:04:05Z"),
        archive_at: Some(ts("2025-04-02T03:04:05Z")),
        expire_at: ts("2027-01-02T03:04:05Z"),
        deleted_at: None,
        content,
        metadata: json!({"source": "web", "tags": ["a", "b"]}),
        pii: json!({"EMAIL_ADDRESS": 1}),
        file: None,
    }
}

pub fn event(index: u64, action: &str) -> ExportEvent {
    ExportEvent {
        index,
        time: ts("2025-01-02T03:04:06Z"),
        action: action.into(),
        actor: "member:alice".into(),
        target: Some("rec_1".into()),
        outcome: "ok".into(),
        reason: None,
    }
}

/// A subject with data in several categories: a file record, unicode, nested content,
/// strings with CSV's special characters, a category with no records, and a category named
/// like the events file.
pub fn sample() -> (ExportHeader, Vec<ExportRecord>, Vec<ExportEvent>) {
    let header = header(vec![
        category("contacts", 2),
        category("support_tickets", 0),
        category("events", 1),
        category("messages", 2),
    ]);
    let mut with_file = record("rec_file", "contacts", json!("scan of passport"));
    with_file.file = Some(ExportFile {
        name: Some("passport, page 1.png".into()),
        content_type: Some("image/png".into()),
        size: 4,
        sha256: "a".repeat(64),
        content_base64: Some("iVBORw==".into()),
    });
    with_file.state = "archived".into();
    with_file.tier = "archive".into();
    let mut big_file = record("rec_bigfile", "contacts", json!({"note": "large upload"}));
    big_file.file = Some(ExportFile {
        name: None,
        content_type: None,
        size: 50_000_000,
        sha256: "0123456789abcdef".repeat(4),
        content_base64: None,
    });
    big_file.deleted_at = Some(ts("2026-01-01T00:00:00Z"));
    big_file.state = "soft_deleted".into();
    let records = vec![
        with_file,
        big_file,
        record(
            "rec_ev",
            "events",
            json!({"kind": "login", "ip": "203.0.113.9"}),
        ),
        record(
            "rec_msg1",
            "messages",
            json!("Hello, \"Zoë\" — line one\nline two, with commas,\r\nand 日本語 😀"),
        ),
        record(
            "rec_msg2",
            "messages",
            json!({"thread": {"subject": "Re: billing", "parts": [1, 2.5, null, true,
                {"deep": {"deeper": ["x"]}}]}, "empty": {}}),
        ),
    ];
    let events = vec![event(7, "record.create"), event(9, "dsr.export")];
    (header, records, events)
}

/// Runs a whole export into memory.
pub fn export(
    format: Format,
    header: &ExportHeader,
    records: &[ExportRecord],
    events: &[ExportEvent],
) -> Result<Vec<u8>, ExportError> {
    let out = SharedBuf::default();
    let mut w = writer(format, out.clone(), header)?;
    for r in records {
        w.record(r)?;
    }
    for e in events {
        w.event(e)?;
    }
    w.finish()?;
    Ok(out.bytes())
}
