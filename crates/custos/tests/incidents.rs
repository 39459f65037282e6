//! Incidents through a real `custos serve`: one actor per org reads 300 records of 120
//! subjects in two orgs; the incident's affected list names exactly those subjects (the
//! references `GET .../subjects/{subject}/reference` gives) with per-category counts; an
//! incident detected over an hour ago is overdue and its clock alert reaches the ops webhook
//! (checked by the Standard Webhooks reference library); the affected orgs are told, once:
//! an org's own webhook gets the incident notice and one notice per affected subject, by
//! reference; the report (with its notices) verifies with the independent Python verifier,
//! a tampered copy does not, and its PDF form reads back with poppler's `pdftotext`.
//!
//! Needs Python (the receiver and the verifier) and PyPI on first use; skipped with a loud
//! message when missing, fatal under `CI=true`.

#[path = "../../../tools/notify-stand-in/stand_in.rs"]
mod stand_in;
mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::{org_with_owner, post, send, Server, ADMIN};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ORG_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const SUBJECTS: usize = 60;
const RECORDS: usize = 150;

async fn get(s: &Server, token: &str, path: &str) -> Value {
    let (status, body) = send(s, reqwest::Method::GET, token, path, None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// An org with `RECORDS` records of `SUBJECTS` subjects (record j: subject j % SUBJECTS,
/// `messages` when j is even, `documents` when odd) and a reader; (org, owner key, reader
/// key, reader's actor name, record ids, expected subject_ref → category → count).
async fn org_with_records(
    s: &Server,
    name: &str,
) -> (
    String,
    String,
    String,
    String,
    Vec<String>,
    BTreeMap<String, BTreeMap<String, u64>>,
) {
    let (org, owner) = org_with_owner(s, name).await;
    let reader = post(
        s,
        &owner,
        &format!("/v1/orgs/{org}/members"),
        json!({ "name": "Reader", "roles": ["member"] }),
    )
    .await;
    let mut ids = Vec::new();
    let mut expected: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut refs = BTreeMap::new();
    for j in 0..RECORDS {
        let subject = format!("subject-{}", j % SUBJECTS);
        let category = if j % 2 == 0 { "messages" } else { "documents" };
        let created = post(
            s,
            &owner,
            &format!("/v1/orgs/{org}/records"),
            json!({ "category": category, "subject": subject, "content": { "n": j } }),
        )
        .await;
        ids.push(created["id"].as_str().unwrap().to_string());
        if !refs.contains_key(&subject) {
            let r = get(
                s,
                &owner,
                &format!("/v1/orgs/{org}/subjects/{subject}/reference"),
            )
            .await;
            refs.insert(
                subject.clone(),
                r["subject_ref"].as_str().unwrap().to_string(),
            );
        }
        *expected
            .entry(refs[&subject].clone())
            .or_default()
            .entry(category.to_string())
            .or_default() += 1;
    }
    (
        org,
        owner,
        reader["api_key"].as_str().unwrap().to_string(),
        format!("member:{}", reader["id"].as_str().unwrap()),
        ids,
        expected,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affected_subjects_clocks_and_a_report_that_verifies_independently() {
    let test = "affected_subjects_clocks_and_a_report_that_verifies_independently";
    let Some(hook) = stand_in::Receiver::webhook(test, SECRET, 0).await else {
        return;
    };
    let Some(org_hook) = stand_in::Receiver::webhook(test, ORG_SECRET, 0).await else {
        return;
    };
    let Some(venv) = support::verifier_venv() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("custos.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[network]\nallow = [\"127.0.0.0/8\"]\n\
             [webhooks.ops]\nurl = \"{}\"\nsecret_env = \"OPS_WEBHOOK_SECRET\"\n",
            custos_policy::Policy::BUILTIN_TOML,
            hook.url()
        ),
    )
    .unwrap();
    let mut command = support::cli(&tmp.path().join("data"));
    command
        .arg("--config")
        .arg(&config)
        .env("OPS_WEBHOOK_SECRET", SECRET);
    let s = support::serve(command, &[]).await;

    let (a, owner_a, reader_a, actor_a, ids_a, expected_a) = org_with_records(&s, "A").await;
    let (b, _, reader_b, actor_b, ids_b, expected_b) = org_with_records(&s, "B").await;
    let from = jiff::Timestamp::now();
    for (org, key, ids) in [(&a, &reader_a, &ids_a), (&b, &reader_b, &ids_b)] {
        for id in ids {
            get(&s, key, &format!("/v1/orgs/{org}/records/{id}")).await;
        }
    }

    // Detected 61 minutes ago: the contain clock (1h) has run out.
    let detected = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(61);
    let incident = post(
        &s,
        ADMIN,
        "/v1/incidents",
        json!({
            "title": "Reader keys leaked in a build log",
            "detected_at": detected.to_string(),
            "scope": { "actors": [actor_a, actor_b], "from": from.to_string() },
        }),
    )
    .await;
    let id = incident["id"].as_str().unwrap().to_string();
    assert_eq!(incident["status"], "detected");
    assert_eq!(incident["overdue"], true, "{incident}");
    assert_eq!(incident["clocks"][0]["name"], "contain");
    assert_eq!(incident["clocks"][0]["overdue"], true);

    let affected = get(&s, ADMIN, &format!("/v1/incidents/{id}/affected")).await;
    let orgs = affected["orgs"].as_array().unwrap();
    assert_eq!(orgs.len(), 2, "{affected}");
    let mut subjects = 0;
    for (org, expected) in [(&a, &expected_a), (&b, &expected_b)] {
        let found = orgs.iter().find(|o| o["org"] == org.as_str()).unwrap();
        let got: BTreeMap<String, BTreeMap<String, u64>> = found["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["subject_ref"].as_str().unwrap().to_string(),
                    serde_json::from_value(s["categories"].clone()).unwrap(),
                )
            })
            .collect();
        assert_eq!(&got, expected);
        subjects += got.len();
    }
    assert_eq!(subjects, 2 * SUBJECTS);

    // The overdue clock's alert reaches the ops webhook, signed.
    let got = hook
        .wait_for(Duration::from_secs(20), |d| {
            d.iter()
                .any(|d| d["body"].as_str().unwrap().contains("incident.clock"))
        })
        .await;
    let clock: Vec<Value> = got
        .iter()
        .filter(|d| d["verified"] == true)
        .map(|d| serde_json::from_str::<Value>(d["body"].as_str().unwrap()).unwrap())
        .filter(|b| b["type"] == "incident.clock" && b["data"]["incident"] == id.as_str())
        .collect();
    assert!(
        clock
            .iter()
            .any(|b| b["data"]["clock"] == "contain" && b["data"]["state"] == "overdue"),
        "{got:?}"
    );

    // Two steps, then the report.
    for status in ["contained", "assessed"] {
        let moved = post(
            &s,
            ADMIN,
            &format!("/v1/incidents/{id}/status"),
            json!({ "status": status, "note": "see the runbook" }),
        )
        .await;
        assert_eq!(moved["status"], status);
    }
    let (status, back) = send(
        &s,
        reqwest::Method::POST,
        ADMIN,
        &format!("/v1/incidents/{id}/status"),
        Some(json!({ "status": "contained" })),
    )
    .await;
    assert_eq!(status, 409, "{back}");
    // Org A names its own webhook; B has no channels (it is told, with nothing to send).
    let (status, body) = send(
        &s,
        reqwest::Method::PATCH,
        &owner_a,
        &format!("/v1/orgs/{a}/settings"),
        Some(json!({ "channels": { "webhooks": [{ "url": org_hook.url(), "secret": ORG_SECRET }] } })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let told = post(
        &s,
        ADMIN,
        &format!("/v1/incidents/{id}/notifications"),
        json!(null),
    )
    .await;
    let notified = told["notified"].as_array().unwrap();
    assert_eq!(notified.len(), 2, "{told}");
    let notice_a = notified.iter().find(|n| n["org"] == a.as_str()).unwrap();
    assert_eq!(notice_a["subjects"], SUBJECTS);
    assert_eq!(notice_a["records"], RECORDS);
    assert_eq!(notice_a["messages"], 1 + SUBJECTS, "{told}");
    let notice_b = notified.iter().find(|n| n["org"] == b.as_str()).unwrap();
    assert_eq!(notice_b["messages"], 0, "{told}");
    // Told once: a second call tells nobody again.
    let again = post(
        &s,
        ADMIN,
        &format!("/v1/incidents/{id}/notifications"),
        json!(null),
    )
    .await;
    assert_eq!(again["notified"], json!([]), "{again}");
    assert_eq!(again["already_notified"].as_array().unwrap().len(), 2);
    let got = org_hook
        .wait_for(Duration::from_secs(30), |d| {
            d.iter()
                .filter(|d| d["body"].as_str().unwrap().contains("incident."))
                .count()
                > SUBJECTS
        })
        .await;
    let bodies: Vec<Value> = got
        .iter()
        .map(|d| {
            assert_eq!(d["verified"], true, "{d}");
            serde_json::from_str::<Value>(d["body"].as_str().unwrap()).unwrap()
        })
        .collect();
    let org_notices: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["type"] == "incident.notice")
        .collect();
    assert_eq!(org_notices.len(), 1, "{bodies:?}");
    assert_eq!(org_notices[0]["data"]["subjects"], SUBJECTS);
    assert_eq!(
        org_notices[0]["data"]["categories"],
        json!({ "documents": RECORDS / 2, "messages": RECORDS / 2 })
    );
    let told_subjects: BTreeMap<String, BTreeMap<String, u64>> = bodies
        .iter()
        .filter(|b| b["type"] == "incident.subject_notice")
        .map(|b| {
            assert_eq!(b["data"]["incident"], id.as_str());
            (
                b["data"]["subject_ref"].as_str().unwrap().to_string(),
                serde_json::from_value(b["data"]["categories"].clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        told_subjects, expected_a,
        "each of A's subjects, by reference"
    );
    let read = get(&s, ADMIN, &format!("/v1/incidents/{id}")).await;
    assert_eq!(read["notifications"].as_array().unwrap().len(), 2);

    let report = get(&s, ADMIN, &format!("/v1/incidents/{id}/report")).await;
    assert_eq!(report["format"], "custos-incident-report/v1");
    assert_eq!(report["steps"].as_array().unwrap().len(), 3);
    assert_eq!(report["notices"].as_array().unwrap().len(), 2);
    let key = get(&s, ADMIN, "/v1/signing-key").await["verifier_key"]
        .as_str()
        .unwrap()
        .to_string();
    let verify = |doc: &Value| {
        let path = tmp.path().join("report.json");
        std::fs::write(&path, serde_json::to_vec(doc).unwrap()).unwrap();
        Command::new(venv.join("bin/python"))
            .arg(support::workspace_root().join("tools/audit-verify/verify.py"))
            .args(["report", "--key", &key, "--report"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let ok = verify(&report);
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    // A report claiming a step happened as another status does not verify.
    let mut forged = report.clone();
    forged["steps"][1]["status"] = json!("notified");
    forged["incident"]["timeline"][1]["status"] = json!("notified");
    let failed = verify(&forged);
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    // Nor one that says another org was told.
    let mut forged = report.clone();
    forged["notices"][0]["org"] = json!("org-that-was-never-told");
    forged["incident"]["notifications"][0]["org"] = json!("org-that-was-never-told");
    let failed = verify(&forged);
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");

    // The PDF for people: the clocks, each step and notice with its audit index.
    let pdf = reqwest::Client::new()
        .get(format!("{}/v1/incidents/{id}/report?format=pdf", s.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let bytes = pdf.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    if let Some(text) = support::pdf_text(&bytes, tmp.path()) {
        assert!(text.contains("Incident report"), "{text}");
        assert!(text.contains("Reader keys leaked in a build log"), "{text}");
        let first = report["steps"][0]["audit_index"].as_u64().unwrap();
        assert!(text.contains(&format!("[audit #{first}]")), "{text}");
        assert!(text.contains("(OVERDUE)"), "{text}");
        assert!(text.contains(&format!("org {a}")), "{text}");
    }
}
