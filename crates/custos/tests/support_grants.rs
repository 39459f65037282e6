//! Support access on a served binary, checked from outside: an owner with a TOTP session
//! approves an operator's request, the operator acts under the grant, and every access the
//! org is shown is an audit leaf carrying the grant whose inclusion proof the independent
//! verifier (`tools/audit-verify/verify.py`, written from the specifications) accepts. And
//! `serve` says at start who the deployment's operator is.

use std::process::Command;

use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;

mod support;

use support::{cli, Server, ADMIN};

async fn call(
    s: &Server,
    method: &str,
    token: &str,
    grant: Option<&str>,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", s.base))
        .bearer_auth(token);
    if let Some(grant) = grant {
        r = r.header("X-Custos-Grant", grant);
    }
    if let Some(body) = body {
        r = r.json(&body);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn ok(s: &Server, method: &str, token: &str, path: &str, body: Option<Value>) -> Value {
    let (status, v) = call(s, method, token, None, path, body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {v}"
    );
    v
}

fn totp_now(secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp_rs::Builder::new()
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(now)
        .to_string()
}

#[tokio::test]
async fn every_access_under_a_grant_is_a_leaf_the_independent_verifier_proves() {
    let tmp = tempfile::tempdir().unwrap();
    let s = support::serve(cli(&tmp.path().join("data")), &[]).await;
    let created = ok(
        &s,
        "POST",
        ADMIN,
        "/v1/orgs",
        Some(json!({"name": "Acme", "owner": {"name": "Olive"}})),
    )
    .await;
    let org = created["id"].as_str().unwrap().to_string();
    let owner_key = created["owner"]["api_key"].as_str().unwrap().to_string();
    let secret = ok(
        &s,
        "POST",
        &owner_key,
        &format!("/v1/orgs/{org}/members/me/totp"),
        None,
    )
    .await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let session = ok(
        &s,
        "POST",
        &owner_key,
        &format!("/v1/orgs/{org}/sessions"),
        Some(json!({ "totp": totp_now(&secret) })),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let record = ok(
        &s,
        "POST",
        &session,
        &format!("/v1/orgs/{org}/records"),
        Some(json!({"category": "messages", "subject": "alice", "content": {"text": "hi"}})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let request = ok(
        &s,
        "POST",
        ADMIN,
        &format!("/v1/orgs/{org}/support-requests"),
        Some(
            json!({"justification": "customer_initiated_support", "ticket": "SUP-9",
            "reason": "a message does not render", "scope": "read", "categories": ["messages"]}),
        ),
    )
    .await;
    let grant = request["id"].as_str().unwrap().to_string();
    ok(
        &s,
        "POST",
        &session,
        &format!("/v1/orgs/{org}/support-requests/{grant}/approve"),
        None,
    )
    .await;
    let read = format!("/v1/orgs/{org}/records/{record}");
    let (status, body) = call(&s, "GET", ADMIN, Some(&grant), &read, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(&s, "GET", ADMIN, None, &read, None).await;
    assert_eq!(status, 403, "without naming the grant");

    let accesses = ok(
        &s,
        "GET",
        &session,
        &format!("/v1/orgs/{org}/support-requests/{grant}/accesses"),
        None,
    )
    .await;
    let list = accesses["accesses"].as_array().unwrap();
    assert!(list.len() >= 2, "{accesses}");
    let dir = tmp.path();
    let key = ok(&s, "GET", &session, "/v1/signing-key", None).await["verifier_key"]
        .as_str()
        .unwrap()
        .to_string();
    let note = dir.join("checkpoint.txt");
    std::fs::write(&note, accesses["checkpoint"].as_str().unwrap()).unwrap();
    let venv = support::verifier_venv();
    for (i, access) in list.iter().enumerate() {
        // The leaf is the event, carries the grant, and hashes to the proof's leaf hash.
        let leaf = base64::engine::general_purpose::STANDARD
            .decode(access["leaf"].as_str().unwrap())
            .unwrap();
        let event: Value = serde_json::from_slice(&leaf).unwrap();
        assert_eq!(event["grant"], grant.as_str(), "{event}");
        assert_eq!(event["org"], org.as_str(), "{event}");
        let hash = sha2::Sha256::new()
            .chain_update([0u8])
            .chain_update(&leaf)
            .finalize();
        let proof = &access["inclusion_proof"];
        assert_eq!(
            proof["leaf_hash"],
            base64::engine::general_purpose::STANDARD.encode(hash)
        );
        let Some(venv) = &venv else { continue };
        let file = dir.join(format!("proof-{i}.json"));
        std::fs::write(&file, proof.to_string()).unwrap();
        let out = Command::new(venv.join("bin/python"))
            .arg(support::workspace_root().join("tools/audit-verify/verify.py"))
            .args(["inclusion", "--key", &key, "--note"])
            .arg(&note)
            .arg("--proof")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "independent verifier on access {i}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The first lines `serve` prints, up to its `operators:` line.
fn serve_banner(data: &std::path::Path, global: &[&str], serve_args: &[&str]) -> String {
    use std::io::BufRead;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = cli(data)
        .args(global)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(serve_args)
        .env("CUSTOS_ADMIN_TOKEN", ADMIN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.trim_start().starts_with("operators:") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    banner
}

#[test]
fn serve_says_who_the_operator_is() {
    let tmp = tempfile::tempdir().unwrap();
    let laptop = serve_banner(&tmp.path().join("laptop"), &[], &[]);
    assert!(
        laptop.contains("operators: the bootstrap admin token"),
        "{laptop}"
    );
    let policy = tmp.path().join("custos.toml");
    let builtin = cli(&tmp.path().join("show"))
        .args(["policy", "show"])
        .output()
        .unwrap();
    let mut text = String::from_utf8(builtin.stdout).unwrap();
    text.push_str(
        "\n[operators.identity_provider]\nissuer = \"https://login.example.com\"\n\
         client_id = \"custos\"\n",
    );
    std::fs::write(&policy, text).unwrap();
    let config = ["--config", policy.to_str().unwrap()];
    let people = serve_banner(&tmp.path().join("people"), &config, &[]);
    assert!(
        people.contains("operators: people of https://login.example.com"),
        "{people}"
    );
    assert!(!people.contains("BREAK-GLASS"), "{people}");
    let glass = serve_banner(&tmp.path().join("glass"), &config, &["--break-glass"]);
    assert!(glass.contains("BREAK-GLASS"), "{glass}");
}
