//! `custos backup ... --to s3://bucket/prefix`: data and key-store backups kept in S3 (moto,
//! started by `tools/s3-stand-in/serve.sh`), with the deployment's AWS_* settings: sealed
//! objects only in the bucket, incremental backups reading unchanged objects from older ones,
//! and verify, drill and restore reading them back.

#[path = "../../../tools/s3-stand-in/stand_in.rs"]
mod stand_in;
mod support;

use std::path::Path;

use serde_json::json;
use stand_in::StandIn;
use support::{post, ADMIN};

const BUCKET: &str = "custos-backups";
const MARKER: &str = "S3-BACKUP-MARKER-7d21";

fn cli(data: &Path, s3: &StandIn) -> std::process::Command {
    let mut c = support::cli(data);
    c.env("AWS_ENDPOINT", &s3.endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", stand_in::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", stand_in::SECRET_ACCESS_KEY)
        .env("AWS_REGION", stand_in::REGION);
    c
}

fn ok(data: &Path, s3: &StandIn, args: &[&str]) -> String {
    let out = cli(data, s3).args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn upload(s: &support::Server, org: &str, key: &str, name: &str, body: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/orgs/{org}/files?category=files&name={name}",
            s.base
        ))
        .bearer_auth(key)
        .header("content-type", "text/plain")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn backups_to_s3_are_sealed_incremental_and_restore() {
    let Some(s3) = StandIn::start("backups_to_s3_are_sealed_incremental_and_restore").await else {
        return;
    };
    s3.create_bucket(BUCKET).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = support::serve(support::cli(&data), &[]).await;
    let org = post(&server, ADMIN, "/v1/orgs", json!({"name": "acme"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key = post(
        &server,
        ADMIN,
        &format!("/v1/orgs/{org}/members"),
        json!({"name": "app", "roles": ["owner"]}),
    )
    .await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let mut records = Vec::new();
    for i in 0..3 {
        let id = post(
            &server,
            &key,
            &format!("/v1/orgs/{org}/records"),
            json!({"category": "messages", "content": {"text": format!("{MARKER} {i}")}}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        records.push(id);
    }
    let file = upload(&server, &org, &key, "a.txt", &format!("{MARKER} a")).await;

    let to = format!("s3://{BUCKET}/prod/backups");
    let out = ok(&data, &s3, &["backup", "create", "--to", &to]);
    assert!(out.contains("(full)") && out.contains(&to), "{out}");
    upload(&server, &org, &key, "b.txt", &format!("{MARKER} b")).await;
    let out = ok(&data, &s3, &["backup", "create", "--to", &to]);
    assert!(
        out.contains("(incremental)") && out.contains("(1 sealed here)"),
        "{out}"
    );
    let keys_to = format!("s3://{BUCKET}/prod/keys");
    ok(
        &data,
        &s3,
        &["backup", "create", "--key-store", "--to", &keys_to],
    );
    drop(server);

    // Only sealed files in the bucket: no marker, no SQLite header.
    let keys = s3.keys(BUCKET, "prod/").await;
    assert!(
        keys.iter().filter(|k| k.ends_with("manifest.json")).count() == 3,
        "{keys:?}"
    );
    for k in &keys {
        let bytes = s3.get(BUCKET, k).await;
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
            "plaintext in {k}"
        );
        if !k.starts_with("prod/keys/") {
            assert!(!bytes.starts_with(b"SQLite format 3"), "{k}");
        }
    }
    let listed = ok(&data, &s3, &["backup", "list", "--to", &to]);
    assert_eq!(listed.matches("incremental").count(), 1, "{listed}");
    ok(&data, &s3, &["backup", "verify", "--to", &to]);
    ok(
        &data,
        &s3,
        &["backup", "verify", "--key-store", "--to", &keys_to],
    );
    let out = ok(&data, &s3, &["backup", "drill", "--from", &to]);
    assert!(
        out.contains("recovery time") && out.contains("drill passed"),
        "{out}"
    );

    // Lose the data directory's database and objects; restore both from S3.
    std::fs::remove_file(data.join("custos.db")).unwrap();
    for side in ["custos.db-wal", "custos.db-shm"] {
        let _ = std::fs::remove_file(data.join(side));
    }
    std::fs::remove_dir_all(data.join("objects")).unwrap();
    let out = ok(&data, &s3, &["backup", "restore", "--from", &to]);
    assert!(out.contains("2 object(s)"), "{out}");
    let server = support::serve(support::cli(&data), &[]).await;
    for id in &records {
        let r = reqwest::Client::new()
            .get(format!("{}/v1/orgs/{org}/records/{id}", server.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.text().await.unwrap().contains(MARKER));
    }
    let r = reqwest::Client::new()
        .get(format!("{}/v1/orgs/{org}/records/{file}/file", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), format!("{MARKER} a"));
    drop(server);
    ok(&data, &s3, &["audit", "verify"]);
}
