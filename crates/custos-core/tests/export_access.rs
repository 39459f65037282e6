//! Exports apply the downloader's category rules: what the downloader may not read is left
//! out and named in `withheld` (JSON, CSV), the stored full export cannot be fetched around
//! that, and a `service` member gets everything of a request it filed itself.

mod common;

use std::io::{Cursor, Read};

use common::{env_with_policy, Env};
use custos_core::{Caller, NewRecord, NewRequest};
use custos_export::Format;
use custos_store::prelude::*;
use custos_store::RequestKind;
use futures::StreamExt;
use serde_json::{json, Value};

const SUBJECT: &str = "carol-9";
const SECRET: &str = "settlement draft for carol";

/// The built-in policy plus a `legal` category open to owners and admins in group `legal`,
/// with `exports` also open to `service` members (an app handing its users their data).
fn env() -> Env {
    let builtin = custos_policy::Policy::BUILTIN_TOML;
    let start = builtin.find("[categories.exports]").unwrap();
    let line = "access = { roles = [\"owner\", \"admin\"], require_mfa = true }";
    let at = start + builtin[start..].find(line).unwrap();
    let toml = format!(
        "{}access = {{ roles = [\"owner\", \"admin\", \"service\"] }}{}\n\
         [categories.legal]\nretention = \"1y\"\n\
         access = {{ roles = [\"owner\", \"admin\"], groups = [\"legal\"] }}\n",
        &builtin[..at],
        &builtin[at + line.len()..],
    );
    env_with_policy(custos_policy::Policy::parse(&toml, "custos.toml").unwrap())
}

async fn record(env: &Env, caller: &Caller, org: &str, category: &str, content: Value) {
    env.custos
        .create_record(
            caller,
            org,
            NewRecord {
                category: category.into(),
                subject: Some(SUBJECT.into()),
                content,
                metadata: None,
            },
        )
        .await
        .unwrap();
}

async fn request(env: &Env, caller: &Caller, org: &str) -> String {
    env.custos
        .create_request(
            caller,
            org,
            NewRequest {
                kind: RequestKind::Access,
                subject: SUBJECT.into(),
            },
        )
        .await
        .unwrap()
        .id
}

async fn bytes(download: custos_core::FileDownload) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = download.body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

async fn export(env: &Env, caller: &Caller, org: &str, id: &str, format: Format) -> Vec<u8> {
    let download = env
        .custos
        .request_export(caller, org, id, format)
        .await
        .unwrap();
    bytes(download).await
}

fn json_export(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn categories_of(doc: &Value) -> Vec<String> {
    doc["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["category"].as_str().unwrap().to_string())
        .collect()
}

fn zip_entry(bytes: &[u8], name: &str) -> String {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut text = String::new();
    zip.by_name(name)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn an_export_leaves_out_what_the_downloader_may_not_read_and_names_it() {
    let env = env();
    let org = env.org("Acme").await;
    let lawyer = env.member(&org, &["owner"], &["legal"], true).await;
    let owner = env.member(&org, &["owner"], &[], true).await;
    record(&env, &lawyer, &org, "legal", json!(SECRET)).await;
    record(&env, &lawyer, &org, "messages", json!("hello from carol")).await;
    // The owner outside `legal` cannot read the record itself...
    let listed = env
        .custos
        .list_records(&owner, &org, Some(SUBJECT), Some("legal"), None, None)
        .await;
    assert!(listed.is_err(), "{listed:?}");

    // ...so its export leaves it out, and says so.
    let id = request(&env, &owner, &org).await;
    let doc = json_export(&export(&env, &owner, &org, &id, Format::Json).await);
    assert_eq!(categories_of(&doc), ["messages"]);
    assert_eq!(
        doc["withheld"],
        json!([{"category": "legal", "records": 1}])
    );
    assert!(!doc.to_string().contains(SECRET));
    let summary: Vec<&str> = doc["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert_eq!(summary, ["messages"]);

    let csv = export(&env, &owner, &org, &id, Format::Csv).await;
    assert_eq!(
        zip_entry(&csv, "withheld.csv"),
        "category,records\r\nlegal,1\r\n"
    );
    let mut zip = zip::ZipArchive::new(Cursor::new(&csv[..])).unwrap();
    assert!(zip.by_name("legal.csv").is_err());
    for i in 0..zip.len() {
        let mut text = String::new();
        zip.by_index(i).unwrap().read_to_string(&mut text).unwrap();
        assert!(!text.contains(SECRET));
    }
    let pdf = export(&env, &owner, &org, &id, Format::Pdf).await;
    assert!(pdf.starts_with(b"%PDF"));

    // A member of `legal` downloading the same request gets everything.
    let full = json_export(&export(&env, &lawyer, &org, &id, Format::Json).await);
    assert_eq!(categories_of(&full), ["legal", "messages"]);
    assert_eq!(full["withheld"], json!([]));
    assert!(full.to_string().contains(SECRET));

    // The owner asking again still gets its own, withheld, export, not the stored full one.
    let again = json_export(&export(&env, &owner, &org, &id, Format::Json).await);
    assert_eq!(categories_of(&again), ["messages"]);

    // Nor can the owner fetch the stored full export as a plain file.
    let exports = env
        .custos
        .list_records(&owner, &org, Some(SUBJECT), Some("exports"), None, None)
        .await
        .unwrap();
    let mut refused = 0;
    for item in &exports.items {
        match env.custos.download_file(&owner, &org, &item.id).await {
            Ok(download) => assert!(!contains(&bytes(download).await, SECRET)),
            Err(e) => {
                assert_eq!(e.code(), "forbidden", "{e}");
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 1, "exactly the lawyer's full export is refused");
}

#[tokio::test]
async fn a_service_member_gets_everything_of_a_request_it_filed_itself() {
    let env = env();
    let org = env.org("Acme").await;
    let lawyer = env.member(&org, &["owner"], &["legal"], true).await;
    let app = env.member(&org, &["service"], &[], false).await;
    record(&env, &lawyer, &org, "legal", json!(SECRET)).await;
    record(&env, &lawyer, &org, "messages", json!("hello from carol")).await;

    let own = request(&env, &app, &org).await;
    let doc = json_export(&export(&env, &app, &org, &own, Format::Json).await);
    assert_eq!(categories_of(&doc), ["legal", "messages"]);
    assert_eq!(doc["withheld"], json!([]));

    // A request someone else filed: the app's own category rules apply (neither `legal`
    // nor `messages` is open to `service`), and earlier exports are never part of one.
    let other = request(&env, &lawyer, &org).await;
    let doc = json_export(&export(&env, &app, &org, &other, Format::Json).await);
    assert!(categories_of(&doc).is_empty(), "{doc}");
    assert_eq!(
        doc["withheld"],
        json!([{"category": "legal", "records": 1}, {"category": "messages", "records": 1}])
    );
    assert!(!doc.to_string().contains(SECRET));
}

#[tokio::test]
async fn under_the_builtin_policy_a_service_member_downloads_only_its_own_requests_export() {
    // The built-in `exports` category is open to owners and admins with a second factor only:
    // the app still hands its user the export of the request it filed, and nothing else.
    let env = common::env();
    let org = env.org("Acme").await;
    let owner = env.member(&org, &["owner"], &[], true).await;
    let app = env.member(&org, &["service"], &[], false).await;
    record(&env, &owner, &org, "messages", json!("hello from carol")).await;

    let own = request(&env, &app, &org).await;
    let doc = json_export(&export(&env, &app, &org, &own, Format::Json).await);
    assert_eq!(categories_of(&doc), ["messages"]);
    assert_eq!(doc["withheld"], json!([]));
    // Downloading it again serves the stored export.
    let again = json_export(&export(&env, &app, &org, &own, Format::Json).await);
    assert_eq!(categories_of(&again), ["messages"]);

    let other = request(&env, &owner, &org).await;
    let Err(refused) = env
        .custos
        .request_export(&app, &org, &other, Format::Json)
        .await
    else {
        panic!("another member's request is refused");
    };
    assert_eq!(refused.code(), "forbidden", "{refused}");
    // The stored export stays out of reach as a plain file.
    let (scope, _) = env.store.org(&org).await.unwrap().unwrap();
    let stored = env
        .store
        .list_records(
            &scope,
            &custos_store::RecordFilter {
                category: Some("exports".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    let Err(refused) = env.custos.download_file(&app, &org, &stored[0].id).await else {
        panic!("the export record itself stays closed to the app");
    };
    assert_eq!(refused.code(), "forbidden", "{refused}");
}
