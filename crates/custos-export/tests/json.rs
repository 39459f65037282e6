//! The JSON export: it is one document, it validates against the shipped schema, and it gives
//! back exactly the records and events that went in.

mod support;

use custos_export::{
    ExportError, ExportEvent, ExportRecord, Format, WithheldCategory, EXPORT_SCHEMA, JSON_FORMAT,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use support::{category, event, export, header, record, sample};

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(EXPORT_SCHEMA).unwrap();
    assert!(
        jsonschema::meta::is_valid(&schema),
        "the shipped schema is not a valid schema"
    );
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schema errors: {errors:#?}");
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("the export is one JSON document")
}

#[test]
fn sample_export_validates_and_round_trips() {
    let (header, records, events) = sample();
    let doc = parse(&export(Format::Json, &header, &records, &events).unwrap());
    assert_valid(&validator(), &doc);

    assert_eq!(doc["format"], JSON_FORMAT);
    assert_eq!(doc["org"], "org_01J");
    assert_eq!(doc["org_name"], "Acme Grüße GmbH");
    assert_eq!(doc["subject"], "subject-7f3a");
    assert_eq!(doc["request"], "req_42");
    assert_eq!(doc["request_due"], "2026-06-03T10:11:12Z");
    assert_eq!(doc["generated_at"], "2026-05-04T10:11:12.5Z");
    assert_eq!(doc["tool"], "custos 0.1.0");
    let keys: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 12, "{keys:?}");
    assert_eq!(doc["withheld"], json!([]));

    let summary: Vec<custos_export::CategorySummary> =
        serde_json::from_value(doc["summary"].clone()).unwrap();
    assert_eq!(summary, header.categories);
    let back: Vec<ExportRecord> = serde_json::from_value(doc["records"].clone()).unwrap();
    assert_eq!(back, records);
    let back: Vec<ExportEvent> = serde_json::from_value(doc["events"].clone()).unwrap();
    assert_eq!(back, events);
}

#[test]
fn empty_subject_validates() {
    let h = header(vec![]);
    let doc = parse(&export(Format::Json, &h, &[], &[]).unwrap());
    assert_valid(&validator(), &doc);
    assert_eq!(doc["records"], json!([]));
    assert_eq!(doc["events"], json!([]));
    assert_eq!(doc["summary"], json!([]));

    let mut h = header(vec![category("contacts", 0)]);
    h.request = None;
    h.request_due = None;
    let doc = parse(&export(Format::Json, &h, &[], &[event(1, "dsr.export")]).unwrap());
    assert_valid(&validator(), &doc);
    assert_eq!(doc["request"], Value::Null);
    assert_eq!(doc["events"].as_array().unwrap().len(), 1);
}

#[test]
fn withheld_categories_are_named_with_their_counts() {
    let mut h = header(vec![category("contacts", 0)]);
    h.withheld = vec![WithheldCategory {
        category: "legal".into(),
        records: 3,
    }];
    let doc = parse(&export(Format::Json, &h, &[], &[]).unwrap());
    assert_valid(&validator(), &doc);
    assert_eq!(
        doc["withheld"],
        json!([{"category": "legal", "records": 3}])
    );
    let mut bad = doc.clone();
    bad["withheld"] = json!([{"category": "legal"}]);
    assert!(
        !validator().is_valid(&bad),
        "a withheld entry needs its count"
    );
}

#[test]
fn schema_rejects_what_the_writer_never_writes() {
    // The schema is strict: the tests above would pass with `{}` as the schema otherwise.
    let v = validator();
    let (header, records, events) = sample();
    let doc = parse(&export(Format::Json, &header, &records, &events).unwrap());

    let mut extra = doc.clone();
    extra["records"][0]["surprise"] = json!(1);
    assert!(!v.is_valid(&extra));
    let mut missing = doc.clone();
    missing["events"][0]
        .as_object_mut()
        .unwrap()
        .remove("actor");
    assert!(!v.is_valid(&missing));
    let mut bad_time = doc.clone();
    bad_time["generated_at"] = json!("yesterday");
    assert!(!v.is_valid(&bad_time));
    let mut bad_state = doc.clone();
    bad_state["records"][0]["state"] = json!("gone");
    assert!(!v.is_valid(&bad_state));
    let mut bad_hash = doc;
    bad_hash["records"][0]["file"]["sha256"] = json!("XYZ");
    assert!(!v.is_valid(&bad_hash));
}

#[test]
fn out_of_order_calls_are_refused() {
    let h = header(vec![category("a", 1), category("b", 1)]);
    let err = export(
        Format::Json,
        &h,
        &[record("2", "b", json!(1)), record("1", "a", json!(1))],
        &[],
    );
    assert!(matches!(err, Err(ExportError::CategoryOutOfOrder(c)) if c == "a"));
    let err = export(Format::Json, &h, &[record("1", "zz", json!(1))], &[]);
    assert!(matches!(err, Err(ExportError::UnknownCategory(c)) if c == "zz"));

    let out = support::SharedBuf::default();
    let mut w = custos_export::writer(Format::Json, out, &h).unwrap();
    w.event(&event(1, "x")).unwrap();
    assert!(matches!(
        w.record(&record("1", "a", json!(1))),
        Err(ExportError::RecordAfterEvents)
    ));

    let dup = header(vec![category("a", 1), category("a", 1)]);
    assert!(matches!(
        export(Format::Json, &dup, &[], &[]),
        Err(ExportError::DuplicateCategory(_))
    ));
}

#[test]
fn format_names_and_media_types() {
    for f in Format::ALL {
        assert_eq!(f.name().parse::<Format>().unwrap(), f);
        assert_eq!(f.to_string(), f.name());
    }
    assert_eq!(Format::Csv.media_type(), "application/zip");
    assert_eq!(Format::Csv.file_extension(), "zip");
    assert_eq!(Format::Pdf.media_type(), "application/pdf");
    assert_eq!(Format::Json.media_type(), "application/json");
    assert!(matches!("xml".parse::<Format>(), Err(ExportError::UnknownFormat(s)) if s == "xml"));
    assert!("JSON".parse::<Format>().is_err());
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinities", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_content_and_metadata_round_trip(
        items in prop::collection::vec((any_json(), any_json(), "\\PC{0,12}"), 0..6),
        split in 0usize..6,
    ) {
        let h = header(vec![category("first", 0), category("second", 0)]);
        let records: Vec<ExportRecord> = items
            .into_iter()
            .enumerate()
            .map(|(i, (content, metadata, id))| {
                let cat = if i < split { "first" } else { "second" };
                let mut r = record(&format!("{id}-{i}"), cat, content);
                r.metadata = metadata;
                r
            })
            .collect();
        let bytes = export(Format::Json, &h, &records, &[event(1, "x")]).unwrap();
        let doc = parse(&bytes);
        let v = validator();
        prop_assert!(v.is_valid(&doc));
        let back: Vec<ExportRecord> = serde_json::from_value(doc["records"].clone()).unwrap();
        prop_assert_eq!(back, records);
    }
}

/// The exact bytes of the sample export, so any change to the format shows up in review.
/// `UPDATE_GOLDEN=1 cargo test -p custos-export --test json` rewrites the file.
#[test]
fn sample_export_matches_the_golden_file() {
    let (header, records, events) = sample();
    let bytes = export(Format::Json, &header, &records, &events).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/sample.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    let golden =
        std::fs::read(&path).expect("tests/golden/sample.json (UPDATE_GOLDEN=1 writes it)");
    assert!(
        bytes == golden,
        "the JSON export changed; if on purpose, rerun with UPDATE_GOLDEN=1 and review the diff:\n{}",
        String::from_utf8_lossy(&bytes)
    );
}
