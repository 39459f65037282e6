//! Crypto-erasure reaches copies: a copy of the data directory (database and objects, not the
//! keys) taken before an erasure, served by a second `custos serve` with the live key store,
//! shows none of the erased subject's records, and another subject's records intact.

mod support;

use std::path::Path;

use serde_json::{json, Value};
use support::{cli, org_with_owner, post, serve};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

async fn read(base: &str, key: &str, org: &str, id: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(format!("{base}/v1/orgs/{org}/records/{id}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_copy_taken_before_an_erasure_shows_nothing_of_the_subject() {
    let root = tempfile::tempdir().unwrap();
    let (data, copy, keys) = (
        root.path().join("data"),
        root.path().join("copy"),
        root.path().join("keys"),
    );
    let keys_arg = keys.to_str().unwrap();
    let live = serve(
        {
            let mut c = cli(&data);
            c.args(["--keys", keys_arg]);
            c
        },
        &[],
    )
    .await;
    let (org, owner) = org_with_owner(&live, "Acme").await;
    let member = |roles: Value| json!({"name": "m", "roles": roles});
    let writer = post(
        &live,
        &owner,
        &format!("/v1/orgs/{org}/members"),
        member(json!(["member"])),
    )
    .await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let app = post(
        &live,
        &owner,
        &format!("/v1/orgs/{org}/members"),
        member(json!(["service"])),
    )
    .await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ids = Vec::new();
    for (subject, text) in [
        ("alice", "alice-secret-1"),
        ("alice", "alice-secret-2"),
        ("bob", "bob-kept-1"),
    ] {
        let created = post(
            &live,
            &writer,
            &format!("/v1/orgs/{org}/records"),
            json!({"category": "messages", "subject": subject, "content": text}),
        )
        .await;
        ids.push((subject, text, created["id"].as_str().unwrap().to_string()));
    }
    // The copy: the data directory only (the keys live elsewhere), taken with the server
    // stopped so the database file is consistent.
    drop(live);
    copy_dir(&data, &copy);
    assert!(!copy.join("keys").exists(), "the copy must not hold keys");

    let live = serve(
        {
            let mut c = cli(&data);
            c.args(["--keys", keys_arg]);
            c
        },
        &[],
    )
    .await;
    let erased = post(
        &live,
        &app,
        &format!("/v1/orgs/{org}/requests"),
        json!({"type": "erasure", "subject": "alice"}),
    )
    .await;
    assert_eq!(erased["status"], "completed", "{erased}");
    drop(live);

    let old = serve(
        {
            let mut c = cli(&copy);
            c.args(["--keys", keys_arg]);
            c
        },
        &[],
    )
    .await;
    for (subject, text, id) in &ids {
        let (status, body) = read(&old.base, &writer, &org, id).await;
        if *subject == "alice" {
            assert_ne!(
                status, 200,
                "alice's record {id} readable from the old copy: {body}"
            );
            assert!(!body.contains(text), "{body}");
        } else {
            assert_eq!(status, 200, "{body}");
            assert!(body.contains(text), "{body}");
        }
    }
}
