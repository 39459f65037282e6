//! Data subject requests over HTTP with a real client: an access request's export in JSON
//! (validated against the served schema), CSV (parsed by a standard reader) and PDF (read
//! back by poppler's `pdftotext`); an erasure whose certificate verifies offline against the
//! deployment's published key; afterwards no route returns the subject's content.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use custos_core::ManualClock;
use custos_crypto::DeploymentSigner;
use custos_policy::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};

mod support;

use support::{deploy, org_with_owner, Deployment};

const SUBJECT: &str = "customer-9001";

struct World {
    d: Deployment,
    org: String,
    owner: String,
    service: String,
    records: Vec<String>,
}

async fn post(d: &Deployment, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let r = d
        .client
        .post(format!("{}{path}", d.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(d: &Deployment, token: &str, path: &str) -> reqwest::Response {
    d.client
        .get(format!("{}{path}", d.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// A TOTP session of the member with API key `key` (the `exports` category needs a second
/// factor), enrolling its factor with the key alone.
async fn session(d: &Deployment, org: &str, key: &str) -> String {
    let (_, enrolled) = post(
        d,
        key,
        &format!("/v1/orgs/{org}/members/me/totp"),
        json!(null),
    )
    .await;
    let secret = enrolled["secret"].as_str().unwrap();
    let code = totp_rs::Builder::new()
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(jiff::Timestamp::now().as_second() as u64)
        .to_string();
    let (status, s) = post(
        d,
        key,
        &format!("/v1/orgs/{org}/sessions"),
        json!({"totp": code}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    s["token"].as_str().unwrap().to_string()
}

async fn world() -> World {
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let d = deploy(Policy::builtin(), clock, |c| {
        c.with_audit_signer(Arc::new(DeploymentSigner::ephemeral("Example SaaS")))
    })
    .await;
    let (org, owner_key) = org_with_owner(&d, "Acme").await;
    let (status, svc) = post(
        &d,
        &owner_key,
        &format!("/v1/orgs/{org}/members"),
        json!({"name": "app", "roles": ["service"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{svc}");
    let owner = session(&d, &org, &owner_key).await;
    let service = svc["api_key"].as_str().unwrap().to_string();
    let mut records = Vec::new();
    for (category, content) in [
        (
            "messages",
            json!(format!(
                "marker-msg-1, with a comma and \"quotes\" for {SUBJECT}"
            )),
        ),
        ("messages", json!("marker-msg-2\nsecond line")),
        ("documents", json!({"title": "marker-doc-1", "pages": 3})),
        ("interactions", json!({"q": "marker-int-1"})),
    ] {
        let (status, r) = post(
            &d,
            &owner,
            &format!("/v1/orgs/{org}/records"),
            json!({"category": category, "subject": SUBJECT, "content": content}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{r}");
        records.push(r["id"].as_str().unwrap().to_string());
    }
    // Someone else's record, which must never appear in this subject's export.
    post(
        &d,
        &owner,
        &format!("/v1/orgs/{org}/records"),
        json!({"category": "messages", "subject": "someone-else", "content": "marker-other"}),
    )
    .await;
    World {
        d,
        org,
        owner,
        service,
        records,
    }
}

fn poppler() -> bool {
    let have = || Command::new("pdftotext").arg("-v").output().is_ok();
    if have() {
        return true;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/ensure-poppler.sh");
    let _ = Command::new("bash").arg(&script).status();
    if have() {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "pdftotext is missing and tools/ensure-poppler.sh could not install it"
    );
    eprintln!("\n!!! SKIPPED the PDF checks: poppler-utils is missing\n");
    false
}

#[tokio::test]
async fn an_access_request_exports_json_csv_and_pdf() {
    let w = world().await;
    let (d, org) = (&w.d, &w.org);
    // The customer's application files it for its end user.
    let (status, req) = post(
        d,
        &w.service,
        &format!("/v1/orgs/{org}/requests"),
        json!({"type": "access", "subject": SUBJECT}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{req}");
    assert_eq!(req["status"], "received");
    let id = req["id"].as_str().unwrap();
    // The application that filed it downloads it for its user, although the `exports`
    // category is otherwise open to managers with a second factor only.
    let r = get(
        d,
        &w.service,
        &format!("/v1/orgs/{org}/requests/{id}/export"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    // A request the owner filed stays closed to the service key.
    let (status, theirs) = post(
        d,
        &w.owner,
        &format!("/v1/orgs/{org}/requests"),
        json!({"type": "portability", "subject": SUBJECT}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let theirs = theirs["id"].as_str().unwrap();
    let r = get(
        d,
        &w.service,
        &format!("/v1/orgs/{org}/requests/{theirs}/export"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // JSON, validated against the schema the deployment serves.
    let r = get(
        d,
        &w.owner,
        &format!("/v1/orgs/{org}/requests/{id}/export?format=json"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let export: Value = r.json().await.unwrap();
    let schema: Value = d
        .client
        .get(format!("{}/v1/schemas/export.json", d.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&export)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let ids: Vec<&str> = export["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let mut want: Vec<&str> = w.records.iter().map(String::as_str).collect();
    want.sort();
    let mut got = ids.clone();
    got.sort();
    assert_eq!(got, want);
    assert!(!export.to_string().contains("marker-other"));
    assert!(
        export["events"].as_array().unwrap().len() >= 2,
        "{}",
        export["events"]
    );

    // The first export completed the request.
    let (_, view) = (
        (),
        get(d, &w.owner, &format!("/v1/orgs/{org}/requests/{id}"))
            .await
            .json::<Value>()
            .await
            .unwrap(),
    );
    assert_eq!(view["status"], "completed");

    // CSV: a zip of RFC 4180 files, one per category.
    let r = get(
        d,
        &w.owner,
        &format!("/v1/orgs/{org}/requests/{id}/export?format=csv"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let bytes = r.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut messages = String::new();
    zip.by_name("messages.csv")
        .unwrap()
        .read_to_string(&mut messages)
        .unwrap();
    let mut reader = csv::Reader::from_reader(messages.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let content_col = headers.iter().position(|h| h == "content").unwrap();
    let contents: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[content_col].to_string())
        .collect();
    assert_eq!(contents.len(), 2);
    assert!(contents
        .iter()
        .any(|c| c.contains("marker-msg-1, with a comma and \"quotes\"")));
    assert!(contents
        .iter()
        .any(|c| c.contains("marker-msg-2\nsecond line")));

    // PDF: real text that pdftotext reads back.
    let r = get(
        d,
        &w.owner,
        &format!("/v1/orgs/{org}/requests/{id}/export?format=pdf"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let pdf = r.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    if poppler() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("export.pdf");
        std::fs::write(&file, &pdf).unwrap();
        let ppm = Command::new("pdftoppm")
            .args(["-r", "20", "-png"])
            .arg(&file)
            .arg(dir.path().join("page"))
            .status()
            .unwrap();
        assert!(ppm.success(), "pdftoppm failed to render the export");
        let out = Command::new("pdftotext")
            .arg(&file)
            .arg("-")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for marker in ["marker-msg-1", "marker-doc-1", "marker-int-1", "messages"] {
            assert!(text.contains(marker), "{marker} not in the PDF text");
        }
    }
}

#[tokio::test]
async fn an_erasure_over_http_is_certified_and_leaves_nothing_of_the_subject() {
    let w = world().await;
    let (d, org) = (&w.d, &w.org);
    // An access request first: its stored export is the subject's data too.
    let (_, access) = post(
        d,
        &w.owner,
        &format!("/v1/orgs/{org}/requests"),
        json!({"type": "access", "subject": SUBJECT}),
    )
    .await;
    let access = access["id"].as_str().unwrap().to_string();
    let r = get(
        d,
        &w.owner,
        &format!("/v1/orgs/{org}/requests/{access}/export"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);

    let (status, erased) = post(
        d,
        &w.service,
        &format!("/v1/orgs/{org}/requests"),
        json!({"type": "erasure", "subject": SUBJECT}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{erased}");
    assert_eq!(erased["status"], "completed");
    assert_eq!(erased["subject"], Value::Null);
    let id = erased["id"].as_str().unwrap();

    // The certificate verifies against the key the deployment publishes.
    let key: Value = get(d, &w.owner, "/v1/signing-key")
        .await
        .json()
        .await
        .unwrap();
    let r = get(
        d,
        &w.service,
        &format!("/v1/orgs/{org}/requests/{id}/certificate"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let cert = r.bytes().await.unwrap();
    let verified =
        custos_cert::verify(&cert, Some(key["verifier_key"].as_str().unwrap()), None).unwrap();
    assert_eq!(verified.certificate.statement.subject.request, id);
    assert!(!String::from_utf8_lossy(&cert).contains(SUBJECT));
    let r = get(
        d,
        &w.owner,
        &format!("/v1/orgs/{org}/requests/{id}/certificate?format=pdf"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.unwrap().starts_with(b"%PDF-"));

    // No route returns the subject's content any more.
    for (i, record) in w.records.iter().enumerate() {
        let r = get(d, &w.owner, &format!("/v1/orgs/{org}/records/{record}")).await;
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("marker-msg") && !body.contains("marker-doc"),
            "record {i}: {body}"
        );
        assert!(!body.contains(SUBJECT), "record {i}: {body}");
    }
    let r = get(
        d,
        &w.owner,
        &format!("/v1/orgs/{org}/records?subject={SUBJECT}"),
    )
    .await;
    let page: Value = r.json().await.unwrap();
    // The anonymized interaction is no longer linked to the subject.
    assert_eq!(page["items"], json!([]), "{page}");
    let r = get(
        d,
        &w.owner,
        &format!("/v1/orgs/{org}/requests/{access}/export"),
    )
    .await;
    assert_ne!(
        r.status(),
        StatusCode::OK,
        "the stored export went with the subject"
    );
    let body = r.text().await.unwrap();
    assert!(!body.contains("marker-msg"), "{body}");

    // Filing without a subject, or with a bad type, is a clear 400 and files nothing.
    let (status, problem) = post(
        d,
        &w.service,
        &format!("/v1/orgs/{org}/requests"),
        json!({"type": "forget", "subject": SUBJECT}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    // A service member cannot extend.
    let (status, _) = post(
        d,
        &w.service,
        &format!("/v1/orgs/{org}/requests/{access}/extend"),
        json!({"by": "1mo", "reason": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_bulk_erasure_takes_a_csv_and_answers_per_subject() {
    let w = world().await;
    let (d, org) = (&w.d, &w.org);
    let r = d
        .client
        .post(format!("{}/v1/orgs/{org}/requests/bulk", d.base))
        .bearer_auth(&w.owner)
        .header("content-type", "text/csv")
        .body(format!(
            "subject\n{SUBJECT}\n\"user, with comma\"\nsomeone-else\n"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let outcomes: Value = r.json().await.unwrap();
    let outcomes = outcomes.as_array().unwrap();
    assert_eq!(outcomes.len(), 3);
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o["index"], i);
        assert_eq!(o["status"], "completed", "{o}");
        assert!(o["certificate"].is_string());
    }
    // Ids are taken exactly as given: ` carol ` is not `carol` and is refused on its own row,
    // naming the line; a repeated id is a `duplicate` of its first row, not a failure.
    let (status, stored) = post(
        d,
        &w.owner,
        &format!("/v1/orgs/{org}/records"),
        json!({"category": "messages", "subject": " carol ", "content": "hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    let r = d
        .client
        .post(format!("{}/v1/orgs/{org}/requests/bulk", d.base))
        .bearer_auth(&w.owner)
        .header("content-type", "text/csv")
        .body("subject\n carol \ndup-1\ndup-1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let outcomes: Value = r.json().await.unwrap();
    let o = outcomes.as_array().unwrap();
    assert_eq!(o.len(), 3, "{outcomes}");
    assert_eq!(o[0]["status"], "failed", "{outcomes}");
    assert!(o[0]["request"].is_null(), "{outcomes}");
    let error = o[0]["error"].as_str().unwrap();
    assert!(
        error.contains("CSV line 2") && error.contains("whitespace"),
        "{error}"
    );
    // Lines ending in CRLF (a spreadsheet's export, a browser's form) are named alike.
    let r = d
        .client
        .post(format!("{}/v1/orgs/{org}/requests/bulk", d.base))
        .bearer_auth(&w.owner)
        .header("content-type", "text/csv")
        .body("subject\r\ndup-2\r\n carol \r\n")
        .send()
        .await
        .unwrap();
    let outcomes: Value = r.json().await.unwrap();
    let error = outcomes[1]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("CSV line 3") && error.contains("whitespace"),
        "{outcomes}"
    );
    assert!(
        !error.contains("carol"),
        "errors never carry the subject: {error}"
    );
    assert_eq!(o[1]["status"], "completed", "{outcomes}");
    assert_eq!(o[2]["status"], "duplicate", "{outcomes}");
    assert_eq!(o[2]["duplicate_of"], 1, "{outcomes}");
    assert_eq!(o[2]["request"], o[1]["request"], "{outcomes}");
    let id = stored["id"].as_str().unwrap();
    let read = d
        .client
        .get(format!("{}/v1/orgs/{org}/records/{id}", d.base))
        .bearer_auth(&w.owner)
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.status(),
        StatusCode::OK,
        "the record of ` carol ` is untouched"
    );

    let r = d
        .client
        .post(format!("{}/v1/orgs/{org}/requests/bulk", d.base))
        .bearer_auth(&w.owner)
        .header("content-type", "text/csv")
        .body("a,b\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}
