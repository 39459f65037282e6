//! Residency: a policy whose two regions each have their own SQLite database and object
//! directory. An org's records, files and audit trail land only in its region's stores (a
//! marker written to an org of one region appears in no file of the other, nor in the main
//! stores); a move to the other region is refused without `allow_data_transfer` and, with it,
//! copies everything, removes it from the old region's stores, and is audited; every log
//! verifies.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::{send, Server, ADMIN};

/// Every file under `dir` with its path: what a marker may not appear in.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The files under `dir` (but its key store, `keys/`) whose path or bytes contain `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| !p.starts_with(dir.join("keys")))
        .filter(|p| {
            p.to_string_lossy().contains(needle)
                || std::fs::read(p)
                    .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

/// The built-in policy with `us-east` and `eu-central` on stores of their own under `root`.
fn policy(root: &Path) -> PathBuf {
    support::policy_with_region_stores(root, &[("us-east", "us"), ("eu-central", "eu")])
}

/// Creates an org in `region` named `name` and an owner; returns (org id, owner key).
async fn org_with_owner(s: &Server, name: &str, region: &str) -> (String, String) {
    let org = support::post(
        s,
        ADMIN,
        "/v1/orgs",
        json!({"name": name, "region": region}),
    )
    .await;
    let id = org["id"].as_str().unwrap().to_string();
    let owner = support::post(
        s,
        ADMIN,
        &format!("/v1/orgs/{id}/members"),
        json!({"name": "owner", "roles": ["owner"]}),
    )
    .await;
    (id, owner["api_key"].as_str().unwrap().to_string())
}

async fn upload(s: &Server, key: &str, org: &str, name: &str, body: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/orgs/{org}/files?category=uploads&name={name}",
            s.base
        ))
        .bearer_auth(key)
        .header("content-type", "text/plain")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let created: Value = r.json().await.unwrap();
    created["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_lives_in_its_region_and_moves_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let config = policy(root);
    let main = root.join("main");
    let command = || {
        let mut c = support::cli(&main);
        c.arg("--config").arg(&config);
        c
    };
    let server = support::serve(command(), &[]).await;
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200, "every region's stores answer");

    // The marker is the org's name: stored in plain text (unlike content, which is sealed),
    // so its absence from the other region's files means something.
    let marker = "residency-marker-7f3a9c";
    let (us_org, us_key) = org_with_owner(&server, marker, "us-east").await;
    let (eu_org, eu_key) = org_with_owner(&server, "eu-tenant", "eu-central").await;

    let record = support::post(
        &server,
        &us_key,
        &format!("/v1/orgs/{us_org}/records"),
        json!({"category": "messages", "subject": "subject-1", "content": {"text": marker},
               "metadata": {"tag": marker}}),
    )
    .await;
    let record_id = record["id"].as_str().unwrap().to_string();
    let file_id = upload(&server, &us_key, &us_org, "notes.txt", "file body").await;
    support::post(
        &server,
        &eu_key,
        &format!("/v1/orgs/{eu_org}/records"),
        json!({"category": "messages", "content": {"text": "hello from the eu"}}),
    )
    .await;

    // Nothing of the us org in the eu stores or the main ones, and the reverse; the check can
    // fail: the us stores do hold the marker. The key store (main/keys) is not data: it is
    // shared by every region and holds each org's wrapped key under the org's id.
    let (us_dir, eu_dir) = (root.join("us"), root.join("eu"));
    assert!(
        !files_holding(&us_dir, marker).is_empty(),
        "control: the us db holds the org"
    );
    for needle in [marker, &us_org, &record_id, &file_id] {
        assert_eq!(
            files_holding(&eu_dir, needle),
            Vec::<PathBuf>::new(),
            "{needle} in eu"
        );
        assert_eq!(
            files_holding(&main, needle),
            Vec::<PathBuf>::new(),
            "{needle} in main"
        );
    }
    assert_eq!(files_holding(&us_dir, &eu_org), Vec::<PathBuf>::new());
    assert_eq!(files_holding(&main, &eu_org), Vec::<PathBuf>::new());
    assert!(files_under(&us_dir.join("objects"))
        .iter()
        .any(|p| p.to_string_lossy().contains(&file_id)));

    // A move without allow_data_transfer: refused, audited, nothing changed.
    let settings = format!("/v1/orgs/{us_org}/settings");
    let (status, body) = send(
        &server,
        reqwest::Method::PATCH,
        &us_key,
        &settings,
        Some(json!({"region": "eu-central", "session_timeout": "2h"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "data_transfer_not_allowed");
    let (_, now) = send(&server, reqwest::Method::GET, &us_key, &settings, None).await;
    assert_eq!(now["region"], "us-east");
    assert_eq!(
        now["session_timeout"], "1h",
        "a refused move changes no setting"
    );
    assert_eq!(files_holding(&eu_dir, &us_org), Vec::<PathBuf>::new());

    // Allowed: the data moves, reads go to the new region.
    let (status, body) = send(
        &server,
        reqwest::Method::PATCH,
        &us_key,
        &settings,
        Some(json!({"allow_data_transfer": true, "region": "eu-central"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["region"], "eu-central");
    assert_eq!(body["allow_data_transfer"], true);
    let (status, read) = send(
        &server,
        reqwest::Method::GET,
        &us_key,
        &format!("/v1/orgs/{us_org}/records/{record_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["content"]["text"], marker);
    let file = reqwest::Client::new()
        .get(format!(
            "{}/v1/orgs/{us_org}/records/{file_id}/file",
            server.base
        ))
        .bearer_auth(&us_key)
        .send()
        .await
        .unwrap();
    assert_eq!(file.status().as_u16(), 200);
    assert_eq!(file.text().await.unwrap(), "file body");
    assert!(!files_holding(&eu_dir, &us_org).is_empty());
    assert!(
        !files_under(&us_dir.join("objects"))
            .iter()
            .any(|p| p.to_string_lossy().contains(&us_org)),
        "the old region keeps none of the org's objects"
    );
    let (_, org) = send(
        &server,
        reqwest::Method::GET,
        ADMIN,
        &format!("/v1/orgs/{us_org}"),
        None,
    )
    .await;
    assert_eq!(org["region"], "eu-central");

    // Audited in the org's (new) log: the refusal stays in the old region's history.
    let (_, events) = send(
        &server,
        reqwest::Method::GET,
        &us_key,
        "/v1/audit/events?action=org.move",
        None,
    )
    .await;
    let moves: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .filter(|e| e["action"] == "org.move")
        .collect();
    assert_eq!(moves.len(), 1, "{events}");
    assert_eq!(moves[0]["outcome"], "success");
    drop(server);

    // Every log verifies: the main one and each region's.
    let verified = command().args(["audit", "verify"]).output().unwrap();
    let out = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(out.contains("audit log verified"), "{out}");
    assert!(
        out.contains("audit log of region us-east verified"),
        "{out}"
    );
    assert!(
        out.contains("audit log of region eu-central verified"),
        "{out}"
    );

    // A backup of the main stores alone would miss the regions' data: refused.
    let backup = command()
        .args(["backup", "create", "--to"])
        .arg(root.join("backups"))
        .output()
        .unwrap();
    assert_eq!(backup.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&backup.stderr).contains("[regions."));
}
