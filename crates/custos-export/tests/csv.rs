//! The CSV export: a zip any unzip reads, one parseable RFC 4180 file per category plus events,
//! summary and withheld categories, and every value back as it went in, except that cells a
//! spreadsheet would run as formulas carry a leading `'` (OWASP CSV injection).

mod support;

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use custos_export::{
    category_file_names, ExportError, ExportRecord, Format, WithheldCategory, EVENT_COLUMNS,
    README_FILE, RECORD_COLUMNS, SUMMARY_COLUMNS, WITHHELD_COLUMNS,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use support::{category, export, header, record, sample};

/// The zip's entries in order, with their text.
fn entries(bytes: &[u8]) -> Vec<(String, String)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).expect("a readable zip");
    (0..zip.len())
        .map(|i| {
            let mut entry = zip.by_index(i).unwrap();
            assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            (entry.name().unwrap().into_owned(), text)
        })
        .collect()
}

/// Every CSV file in the zip, parsed: name → rows (the header row first). `README.txt`, the
/// one entry that is not CSV, is checked and left out.
fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut files = BTreeMap::new();
    for (i, (name, text)) in entries(bytes).into_iter().enumerate() {
        if name == README_FILE {
            assert_eq!(i, 0, "README.txt comes first");
            continue;
        }
        assert!(
            text.is_empty() || text.ends_with("\r\n"),
            "RFC 4180 line ends"
        );
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes());
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        files.insert(name, rows);
    }
    files
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// A record rebuilt from its CSV row (the inverse of the writer's mapping).
fn from_row(category: &str, row: &[String]) -> ExportRecord {
    let cell: BTreeMap<&str, &str> = RECORD_COLUMNS
        .iter()
        .copied()
        .zip(row.iter().map(String::as_str))
        .collect();
    let time = |k: &str| opt(cell[k]).map(|s| s.parse().unwrap());
    let file = opt(cell["file_sha256"]).map(|sha256| custos_export::ExportFile {
        name: opt(cell["file_name"]),
        content_type: opt(cell["file_content_type"]),
        size: cell["file_size"].parse().unwrap(),
        sha256,
        content_base64: opt(cell["file_content_base64"]),
    });
    ExportRecord {
        id: cell["id"].into(),
        category: category.into(),
        state: cell["state"].into(),
        tier: cell["tier"].into(),
        created_at: time("created_at").unwrap(),
        archive_at: time("archive_at"),
        expire_at: time("expire_at").unwrap(),
        deleted_at: time("deleted_at"),
        // A JSON string is written as the string itself: the caller knows it was one by it not
        // parsing as anything else, which holds for the sample's strings.
        content: serde_json::from_str(cell["content"])
            .unwrap_or_else(|_| Value::String(cell["content"].into())),
        metadata: serde_json::from_str(cell["metadata"]).unwrap(),
        pii: serde_json::from_str(cell["pii"]).unwrap(),
        file,
    }
}

#[test]
fn sample_export_unzips_and_round_trips() {
    let (header, records, events) = sample();
    let files = unzip(&export(Format::Csv, &header, &records, &events).unwrap());

    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "category-events.csv",
            "contacts.csv",
            "events.csv",
            "messages.csv",
            "summary.csv",
            "support_tickets.csv",
            "withheld.csv"
        ]
    );
    assert_eq!(
        files["withheld.csv"],
        [WITHHELD_COLUMNS.map(str::to_owned).to_vec()]
    );

    let summary = &files["summary.csv"];
    assert_eq!(summary[0], SUMMARY_COLUMNS);
    assert_eq!(summary.len(), 1 + header.categories.len());
    assert_eq!(
        summary[1],
        [
            "contacts",
            "2",
            "2y",
            "90d",
            "personal",
            "2027-03-01T00:00:00Z"
        ]
    );

    // Header-only file for the category without records.
    assert_eq!(
        files["support_tickets.csv"],
        [RECORD_COLUMNS.map(str::to_owned).to_vec()]
    );

    let mut back = Vec::new();
    for (cat, file) in [
        ("contacts", "contacts.csv"),
        ("events", "category-events.csv"),
        ("messages", "messages.csv"),
    ] {
        let rows = &files[file];
        assert_eq!(rows[0], RECORD_COLUMNS);
        back.extend(rows[1..].iter().map(|row| from_row(cat, row)));
    }
    assert_eq!(back, records);

    let ev = &files["events.csv"];
    assert_eq!(ev[0], EVENT_COLUMNS);
    assert_eq!(
        ev[1],
        [
            "7",
            "2025-01-02T03:04:06Z",
            "record.create",
            "member:alice",
            "rec_1",
            "ok",
            ""
        ]
    );
    assert_eq!(ev.len(), 3);
}

#[test]
fn string_content_is_the_string_and_other_content_is_json() {
    let h = header(vec![category("notes", 2)]);
    let records = [
        record("1", "notes", json!("a, \"quoted\"\nnew line")),
        record("2", "notes", json!({"k": [1, "two"]})),
    ];
    let files = unzip(&export(Format::Csv, &h, &records, &[]).unwrap());
    let rows = &files["notes.csv"];
    assert_eq!(rows[1][7], "a, \"quoted\"\nnew line");
    assert_eq!(rows[2][7], r#"{"k":[1,"two"]}"#);
    assert_eq!(rows[1][9], r#"{"EMAIL_ADDRESS":1}"#);
    // No events still gives events.csv with its header row.
    assert_eq!(
        files["events.csv"],
        [EVENT_COLUMNS.map(str::to_owned).to_vec()]
    );
}

#[test]
fn empty_subject_still_has_every_file() {
    let h = header(vec![category("a", 0), category("b", 0)]);
    let files = unzip(&export(Format::Csv, &h, &[], &[]).unwrap());
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "a.csv",
            "b.csv",
            "events.csv",
            "summary.csv",
            "withheld.csv"
        ]
    );
    let none = unzip(&export(Format::Csv, &header(vec![]), &[], &[]).unwrap());
    assert_eq!(none.len(), 3);
}

#[test]
fn withheld_categories_are_listed_with_their_counts() {
    let mut h = header(vec![category("a", 0)]);
    h.withheld = vec![
        WithheldCategory {
            category: "legal".into(),
            records: 2,
        },
        WithheldCategory {
            category: "hr".into(),
            records: 1,
        },
    ];
    let files = unzip(&export(Format::Csv, &h, &[], &[]).unwrap());
    assert_eq!(
        files["withheld.csv"],
        [
            vec!["category".to_string(), "records".into()],
            vec!["legal".into(), "2".into()],
            vec!["hr".into(), "1".into()],
        ]
    );
}

/// OWASP CSV injection: every cell a spreadsheet would run as a formula gets a leading `'`,
/// in every file; others are untouched; README.txt says so.
#[test]
fn formula_cells_are_defused_in_every_file() {
    let hostile = [
        "=HYPERLINK(\"http://127.0.0.1/x\",\"click\")",
        "=1+1",
        "+1",
        "-2",
        "@SUM(A1)",
        "\tx",
        "\rx",
    ];
    let mut cat = category("notes", hostile.len() as u64 + 1);
    cat.retention = "=2+2".into();
    let mut h = header(vec![cat]);
    h.withheld = vec![WithheldCategory {
        category: "-legal".into(),
        records: 1,
    }];
    let mut records: Vec<ExportRecord> = hostile
        .iter()
        .enumerate()
        .map(|(i, t)| record(&format!("r{i}"), "notes", json!(t)))
        .collect();
    records.push(record("safe", "notes", json!("a = 1 + 1")));
    records[0].file = Some(custos_export::ExportFile {
        name: Some("=cmd|' /C calc'!A0".into()),
        content_type: Some("text/plain".into()),
        size: 1,
        sha256: "0".repeat(64),
        content_base64: None,
    });
    let mut ev = support::event(1, "record.read");
    ev.reason = Some("@evil".into());
    let bytes = export(Format::Csv, &h, &records, &[ev]).unwrap();
    let files = unzip(&bytes);
    let rows = &files["notes.csv"];
    for (row, t) in rows[1..].iter().zip(hostile) {
        assert_eq!(row[7], format!("'{t}"));
    }
    assert_eq!(
        rows.last().unwrap()[7],
        "a = 1 + 1",
        "only the first character counts"
    );
    assert_eq!(rows[1][10], "'=cmd|' /C calc'!A0");
    assert_eq!(files["summary.csv"][1][2], "'=2+2");
    assert_eq!(files["withheld.csv"][1][0], "'-legal");
    assert_eq!(files["events.csv"][1][6], "'@evil");
    let all = entries(&bytes);
    assert_eq!(all[0].0, README_FILE);
    assert!(all[0].1.contains("single quote"), "{}", all[0].1);
}

#[test]
fn records_out_of_order_are_refused() {
    let h = header(vec![category("a", 1), category("b", 1)]);
    let err = export(
        Format::Csv,
        &h,
        &[record("2", "b", json!(1)), record("1", "a", json!(1))],
        &[],
    );
    assert!(matches!(err, Err(ExportError::CategoryOutOfOrder(_))));
}

#[test]
fn category_file_names_match_the_export() {
    let (header, _, _) = sample();
    let names = category_file_names(header.categories.iter().map(|c| c.category.as_str()));
    assert_eq!(
        names,
        [
            "contacts.csv",
            "support_tickets.csv",
            "category-events.csv",
            "messages.csv"
        ]
    );
}

/// Info-ZIP's `unzip -t` accepts the streamed zip (data descriptors, ZIP64 entries).
#[test]
fn info_zip_reads_the_stream() {
    if std::process::Command::new("unzip")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: `unzip` is not installed; the zip crate's reader checked the archive");
        return;
    }
    let (header, records, events) = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.zip");
    std::fs::write(
        &path,
        export(Format::Csv, &header, &records, &events).unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new("unzip")
        .arg("-tq")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "unzip -t: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any text (RFC 4180 specials included) comes back from its cell unchanged, but for the
    /// `'` in front of a formula.
    #[test]
    fn any_text_round_trips(texts in prop::collection::vec(any::<String>(), 1..5)) {
        let h = header(vec![category("notes", texts.len() as u64)]);
        let records: Vec<ExportRecord> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut r = record(&format!("{i}"), "notes", json!(t));
                r.metadata = json!({ "t": t });
                r
            })
            .collect();
        let files = unzip(&export(Format::Csv, &h, &records, &[]).unwrap());
        let rows = &files["notes.csv"];
        prop_assert_eq!(rows.len(), texts.len() + 1);
        for (row, t) in rows[1..].iter().zip(&texts) {
            let want = if t.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{t}")
            } else {
                t.clone()
            };
            prop_assert_eq!(&row[7], &want);
            prop_assert_eq!(serde_json::from_str::<Value>(&row[8]).unwrap(), json!({ "t": t }));
        }
    }
}
