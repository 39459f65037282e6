//! The PDF export: poppler renders it, and `pdftotext` finds the summary and every record.
//!
//! Needs poppler-utils: `tools/ensure-poppler.sh` installs it when missing. If the tools are
//! still missing, the tests fail under `CI=true` and print a loud skip otherwise.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use custos_export::{certificate_pdf, ExportRecord, Format};
use serde_json::json;
use support::{category, event, export, header, record, sample};

fn have_poppler() -> bool {
    let found = |tool: &str| Command::new(tool).arg("-v").output().is_ok();
    found("pdftotext") && found("pdftoppm")
}

/// Whether poppler is usable; installs it if needed.
fn poppler() -> bool {
    if have_poppler() {
        return true;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/ensure-poppler.sh");
    let status = Command::new("bash").arg(&script).status();
    if have_poppler() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "pdftotext/pdftoppm are missing and {} failed: {status:?}",
            script.display()
        );
    }
    eprintln!(
        "\n!!!!!!!!\n!!! SKIPPED: pdftotext/pdftoppm (poppler-utils) are missing and could not be \
         installed ({status:?}); the PDF was not checked.\n!!!!!!!!\n"
    );
    false
}

struct Rendered {
    _dir: tempfile::TempDir,
    pdf: PathBuf,
    text: String,
}

/// Writes the PDF, checks that pdftoppm renders every page, and extracts its text.
fn render(bytes: &[u8], layout: bool) -> Rendered {
    assert!(bytes.starts_with(b"%PDF-1.7\n"));
    assert!(bytes.ends_with(b"%%EOF\n"));
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("export.pdf");
    std::fs::write(&pdf, bytes).unwrap();
    // To look at what the tests rendered: CUSTOS_EXPORT_KEEP_PDF=DIR keeps a copy of each PDF.
    if let Some(keep) = std::env::var_os("CUSTOS_EXPORT_KEEP_PDF") {
        let name = format!(
            "{}.pdf",
            std::thread::current()
                .name()
                .unwrap_or("pdf")
                .replace("::", "-")
        );
        std::fs::write(Path::new(&keep).join(name), bytes).unwrap();
    }

    let prefix = dir.path().join("page");
    let out = Command::new("pdftoppm")
        .args(["-r", "30", "-png"])
        .arg(&pdf)
        .arg(&prefix)
        .output()
        .unwrap();
    // pdftoppm exits 0 on many errors but reports them on stderr.
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "pdftoppm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pages = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".png")
        })
        .count();
    assert!(pages >= 1);

    let mut cmd = Command::new("pdftotext");
    if layout {
        cmd.arg("-layout");
    }
    let out = cmd.arg(&pdf).arg("-").output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "pdftotext: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Rendered {
        _dir: dir,
        pdf,
        text: String::from_utf8(out.stdout).unwrap(),
    }
}

fn page_count(pdf: &Path) -> usize {
    let out = Command::new("pdfinfo").arg(pdf).output().unwrap();
    let info = String::from_utf8(out.stdout).unwrap();
    let line = info
        .lines()
        .find(|l| l.starts_with("Pages:"))
        .expect("pdfinfo prints Pages");
    line["Pages:".len()..].trim().parse().unwrap()
}

#[test]
fn sample_export_shows_summary_records_and_events() {
    if !poppler() {
        return;
    }
    let (header, mut records, events) = sample();
    for (i, r) in records.iter_mut().enumerate() {
        r.metadata = json!({ "marker": format!("META-MARK-{i}") });
    }
    let rendered = render(
        &export(Format::Pdf, &header, &records, &events).unwrap(),
        true,
    );
    let text = &rendered.text;

    for fact in [
        "Data export: Acme Grüße GmbH",
        "subject-7f3a",
        "org_01J",
        "req_42",
        "2026-05-04 10:11:12 UTC",
        "2026-06-03 10:11:12 UTC",
        "custos 0.1.0",
    ] {
        assert!(text.contains(fact), "missing {fact:?} in:\n{text}");
    }
    // The summary table, one row per category, columns in order.
    assert!(text.contains("Summary"));
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("contacts "))
        .expect("contacts row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[..6],
        ["contacts", "2", "2y", "90d", "personal", "2027-03-01"],
        "{row}"
    );
    assert!(text
        .lines()
        .any(|l| l.trim_start().starts_with("support_tickets ")));
    assert!(text.contains("support_tickets (0 records)") && text.contains("No records."));

    for (i, r) in records.iter().enumerate() {
        assert!(
            text.contains(&format!("Record {}", r.id)),
            "missing record {}",
            r.id
        );
        assert!(
            text.contains(&format!("META-MARK-{i}")),
            "missing metadata of {}",
            r.id
        );
    }
    for s in [
        "scan of passport",
        "large upload",
        "203.0.113.9",
        "Re: billing",
        "\"deeper\": [",
        "Hello, \"Zoë\" — line one",
        "line two, with commas,",
        "and ??? ?",
        "passport, page 1.png",
        "personal data found: EMAIL_ADDRESS x1",
        "state: soft_deleted, tier: hot",
    ] {
        assert!(text.contains(s), "missing {s:?} in:\n{text}");
    }
    assert!(text.contains("Audit events about the subject"));
    assert!(text.contains("#7 2025-01-02 03:04:06 UTC record.create (ok)"));
    assert!(text.contains("by member:alice on rec_1"));
}

#[test]
fn many_records_paginate_and_every_one_is_found() {
    if !poppler() {
        return;
    }
    let n = 400;
    let h = header(vec![category("notes", n)]);
    let long = "lorem ipsum dolor sit amet ".repeat(12);
    let records: Vec<ExportRecord> = (0..n)
        .map(|i| {
            record(
                &format!("r{i}"),
                "notes",
                json!(format!("UNIQ{i:05}X {long}")),
            )
        })
        .collect();
    let rendered = render(
        &export(Format::Pdf, &h, &records, &[event(1, "dsr.export")]).unwrap(),
        false,
    );
    for i in 0..n {
        assert!(
            rendered.text.contains(&format!("UNIQ{i:05}X")),
            "record {i} missing"
        );
    }
    // Long content wraps instead of running off the page: no extracted line is wider than a
    // body line (91 characters).
    let widest = rendered
        .text
        .lines()
        .map(|l| l.chars().count())
        .max()
        .unwrap();
    assert!(widest <= 91, "a line of {widest} characters");
    let pages = page_count(&rendered.pdf);
    assert!(pages > 50, "{pages} pages");
    assert!(rendered.text.contains(&format!("page {pages}")));
}

#[test]
fn empty_subject_renders() {
    if !poppler() {
        return;
    }
    let rendered = render(
        &export(Format::Pdf, &header(vec![]), &[], &[]).unwrap(),
        false,
    );
    assert!(rendered.text.contains("No data is held about the subject."));
    assert!(rendered.text.contains("No audit events."));
    assert_eq!(page_count(&rendered.pdf), 1);
}

#[test]
fn withheld_categories_are_named() {
    if !poppler() {
        return;
    }
    let mut h = header(vec![]);
    h.withheld = vec![custos_export::WithheldCategory {
        category: "legal".into(),
        records: 2,
    }];
    let rendered = render(&export(Format::Pdf, &h, &[], &[]).unwrap(), false);
    assert!(rendered.text.contains("Withheld"), "{}", rendered.text);
    assert!(
        rendered.text.contains("legal: 2 records"),
        "{}",
        rendered.text
    );
    let plain = render(
        &export(Format::Pdf, &header(vec![]), &[], &[]).unwrap(),
        false,
    );
    assert!(!plain.text.contains("Withheld"));
}

#[test]
fn certificate_lines_are_text() {
    if !poppler() {
        return;
    }
    let lines = vec![
        "Org: Acme".to_owned(),
        String::new(),
        format!("Signature: {}", "QUJD".repeat(40)),
        "Categories erased: contacts (3), messages (12)".to_owned(),
    ];
    let mut out = Vec::new();
    certificate_pdf("Certificate of deletion", &lines, &mut out).unwrap();
    let rendered = render(&out, false);
    assert!(rendered.text.contains("Certificate of deletion"));
    assert!(rendered.text.contains("Org: Acme"));
    assert!(rendered
        .text
        .contains("Categories erased: contacts (3), messages (12)"));
    // The long signature wraps; joined again it is whole.
    let joined: String = rendered.text.split_whitespace().collect();
    assert!(joined.contains(&"QUJD".repeat(40)));
}
