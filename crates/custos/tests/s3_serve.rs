//! `custos serve --objects s3://bucket/prefix` as an operator runs it: credentials and endpoint
//! from the standard AWS_* variables, files streamed to and from an S3-compatible server (moto,
//! started by `tools/s3-stand-in/serve.sh`), and only ciphertext at rest in the bucket.

#[path = "../../../tools/s3-stand-in/stand_in.rs"]
mod stand_in;
mod support;

use std::path::Path;

use serde_json::{json, Value};
use stand_in::StandIn;
use support::{cli, org_with_owner, post, Server};

const BUCKET: &str = "custos-serve";
const PREFIX: &str = "deploy/eu";

async fn serve(data: &Path, s3: &StandIn) -> Server {
    let mut command = cli(data);
    command
        .env("AWS_ENDPOINT", &s3.endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", stand_in::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", stand_in::SECRET_ACCESS_KEY)
        .env("AWS_REGION", stand_in::REGION);
    let objects = format!("s3://{BUCKET}/{PREFIX}");
    support::serve(command, &["--objects", &objects]).await
}

/// About 6 MiB: more than one 5 MiB part, so the upload to S3 is a real multipart upload.
/// The marker repeats throughout so any plaintext reaching the bucket would be found.
fn plaintext() -> (Vec<u8>, &'static [u8]) {
    let marker: &[u8] = b"PLAINTEXT-MARKER-6b1f0c";
    let mut data = Vec::with_capacity(6 * 1024 * 1024 + 4096);
    let mut i = 0u32;
    while data.len() < 6 * 1024 * 1024 + 999 {
        data.extend_from_slice(marker);
        data.extend_from_slice(&i.to_le_bytes());
        i += 1;
    }
    (data, marker)
}

#[tokio::test]
async fn files_go_to_s3_sealed_and_come_back_identical() {
    let Some(s3) = StandIn::start("files_go_to_s3_sealed_and_come_back_identical").await else {
        return;
    };
    s3.create_bucket(BUCKET).await;
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let s = serve(&data_dir, &s3).await;

    let (org, owner) = org_with_owner(&s, "Acme").await;
    let member = post(
        &s,
        &owner,
        &format!("/v1/orgs/{org}/members"),
        json!({ "name": "uploader", "roles": ["member"] }),
    )
    .await;
    let key = member["api_key"].as_str().unwrap().to_string();

    let (data, marker) = plaintext();
    let client = reqwest::Client::new();
    let r = client
        .post(format!(
            "{}/v1/orgs/{org}/files?category=files&name=big.bin",
            s.base
        ))
        .bearer_auth(&key)
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap();

    let r = client
        .get(format!("{}/v1/orgs/{org}/records/{id}/file", s.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body = r.bytes().await.unwrap();
    assert!(body.as_ref() == data.as_slice(), "downloaded bytes differ");

    // Everything went to the bucket, under the prefix: nothing to the local object store.
    let blob = format!("{PREFIX}/orgs/{org}/blobs/{id}");
    let keys = s3.keys(BUCKET, "").await;
    assert!(keys.contains(&blob), "{blob} not in {keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with(&format!("{PREFIX}/"))),
        "{keys:?}"
    );
    assert!(!data_dir.join("objects").exists());

    // At rest it is ciphertext: no trace of the marker, and the seal adds bytes.
    let stored = s3.get(BUCKET, &blob).await;
    assert!(stored.len() > data.len());
    assert!(
        !stored.windows(marker.len()).any(|w| w == marker),
        "plaintext found in the stored object"
    );
}

#[test]
fn an_s3_url_without_a_bucket_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cli(&tmp.path().join("data"))
        .args(["serve", "--objects", "s3:///prefix"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("s3:///prefix") && stderr.contains("bucket name is empty"),
        "{stderr}"
    );
}

#[test]
fn credentials_in_the_s3_url_are_refused_and_not_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cli(&tmp.path().join("data"))
        .args(["serve", "--objects", "s3://AKIDEXAMPLE:topsecret@bucket/p"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("AWS_ACCESS_KEY_ID"), "{printed}");
    assert!(!printed.contains("topsecret"), "{printed}");
}
