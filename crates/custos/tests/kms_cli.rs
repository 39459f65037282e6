//! `--kms aws-kms:KEY` as an operator runs it: the root key held in AWS KMS (moto's, started
//! by `tools/s3-stand-in/serve.sh`), reached through the standard `AWS_*` variables; no root
//! key file is written, rotation re-wraps inside KMS, and a malformed value is bad input.

#[path = "../../../tools/s3-stand-in/stand_in.rs"]
mod stand_in;
mod support;

use serde_json::{json, Value};
use stand_in::StandIn;

/// Calls one KMS JSON API action on the stand-in. It does not check signatures, but finds the
/// service named in the credential scope, so the header names `kms`.
async fn kms(s3: &StandIn, action: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(&s3.endpoint)
        .header("x-amz-target", format!("TrentService.{action}"))
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kms/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{action}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

#[tokio::test]
async fn the_root_key_can_live_in_aws_kms() {
    let Some(s3) = StandIn::start("the_root_key_can_live_in_aws_kms").await else {
        return;
    };
    let created = kms(
        &s3,
        "CreateKey",
        json!({"KeyUsage": "ENCRYPT_DECRYPT", "KeySpec": "SYMMETRIC_DEFAULT"}),
    )
    .await;
    let key_id = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    kms(
        &s3,
        "CreateAlias",
        json!({"AliasName": "alias/custos-root", "TargetKeyId": key_id}),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let run = |args: &[&str]| {
        let out = support::cli(&data)
            .args(["--kms", "aws-kms:alias/custos-root"])
            .args(args)
            .env("AWS_ENDPOINT_URL", &s3.endpoint)
            .env("AWS_ACCESS_KEY_ID", stand_in::ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", stand_in::SECRET_ACCESS_KEY)
            .env("AWS_REGION", stand_in::REGION)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, first, err) = run(&["audit", "key"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(&["keys", "rotate"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("rotated root key to version 2"), "{out}");
    let (code, again, err) = run(&["audit", "key"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(first, again);
    assert!(
        !data.join("keys/root.keyring").exists(),
        "a root key file beside a KMS root"
    );

    let out = support::cli(&data)
        .args(["--kms", "vault:secret/custos", "audit", "key"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected aws-kms:KEY"));
}
