//! Upgrades in place. `tests/fixtures/upgrade/` holds deployments written by the release
//! before schema migrations became versioned files (made once by
//! `tools/upgrade-fixture/make.py` and committed): a SQLite data directory, and a PostgreSQL
//! dump with its keys and objects. This binary opens each where it lies: the old schema
//! counter is adopted into the migration ledger, every record, file, export, certificate and
//! audit proof still reads and verifies, and new writes land beside the old ones.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{cli, send, serve, PgDb};

fn fixture(backend: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/upgrade/{backend}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The fixture's data directory copied into `dir`, and its manifest.
fn copy_fixture(backend: &str, dir: &Path) -> (PathBuf, Value) {
    let data = dir.join("data");
    copy_dir(&fixture(backend).join("data"), &data);
    let manifest = std::fs::read_to_string(fixture(backend).join("manifest.json")).unwrap();
    (data, serde_json::from_str(&manifest).unwrap())
}

/// `custos <global> <args>` on the copied deployment; its stdout, asserting success.
fn run(data: &Path, global: &[&str], args: &[&str]) -> String {
    let out = cli(data).args(global).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "custos {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn get(s: &support::Server, token: &str, path: String) -> (u16, Value) {
    send(s, Method::GET, token, &path, None).await
}

async fn download(base: &str, token: &str, path: &str) -> Vec<u8> {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "GET {path}");
    r.bytes().await.unwrap().to_vec()
}

/// Opens the copied deployment with this binary and checks everything the manifest names.
async fn upgrade_and_check(data: &Path, global: &[&str], m: &Value) {
    // Nothing has run yet: the status adopts the old counter without writing anything.
    let before: Value =
        serde_json::from_str(&run(data, global, &["migrate", "status", "--json"])).unwrap();
    let steps = before["databases"][0]["steps"].as_array().unwrap().clone();
    assert!(steps.len() >= 13, "{before}");
    for step in &steps[..13] {
        assert_eq!(step["applied"], true, "{step}");
        assert_eq!(
            step["applied_at"],
            Value::Null,
            "adopted, never timed: {step}"
        );
    }
    run(data, global, &["migrate", "run"]);
    let after: Value =
        serde_json::from_str(&run(data, global, &["migrate", "status", "--json"])).unwrap();
    let db = &after["databases"][0];
    assert_eq!(db["version"], db["known"], "{after}");
    run(data, global, &["audit", "verify"]);

    let mut command = cli(data);
    command.args(global);
    let server = serve(command, &[]).await;
    let org = m["org"].as_str().unwrap();
    let owner = m["owner"]["api_key"].as_str().unwrap();
    let app = m["app"]["api_key"].as_str().unwrap();

    let erased: Vec<&str> = m["erased_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for (id, want) in m["records"].as_object().unwrap() {
        let (status, record) = get(&server, owner, format!("/v1/orgs/{org}/records/{id}")).await;
        if erased.contains(&id.as_str()) {
            assert_eq!(status, 404, "erased record {id}: {record}");
        } else {
            assert_eq!(status, 200, "{record}");
            assert_eq!(record["content"], want["content"], "{record}");
        }
    }
    let anonymized = m["anonymized_record"].as_str().unwrap();
    let (status, record) = get(
        &server,
        owner,
        format!("/v1/orgs/{org}/records/{anonymized}"),
    )
    .await;
    assert_eq!(status, 200, "{record}");
    assert!(!record.to_string().contains("alice-1"), "{record}");
    let held = m["held_record"].as_str().unwrap();
    assert_eq!(
        get(&server, owner, format!("/v1/orgs/{org}/records/{held}"))
            .await
            .0,
        200
    );

    let file = &m["file"];
    let body = download(
        &server.base,
        owner,
        &format!(
            "/v1/orgs/{org}/records/{}/file",
            file["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(sha256(&body), file["sha256"].as_str().unwrap());

    // The stored export is served as it was made.
    let access = m["access_request"].as_str().unwrap();
    let (status, request) = get(&server, owner, format!("/v1/orgs/{org}/requests/{access}")).await;
    assert_eq!((status, &request["status"]), (200, &json!("completed")));
    let export = download(
        &server.base,
        app,
        &format!("/v1/orgs/{org}/requests/{access}/export?format=json"),
    )
    .await;
    assert_eq!(sha256(&export), m["export_sha256"].as_str().unwrap());

    // The certificate is the one issued, and verifies against the deployment's own key.
    let erasure = m["erasure_request"].as_str().unwrap();
    let (status, certificate) = get(
        &server,
        owner,
        format!("/v1/orgs/{org}/requests/{erasure}/certificate"),
    )
    .await;
    assert_eq!(status, 200, "{certificate}");
    assert_eq!(certificate, m["certificate"]);
    let cert_file = data.parent().unwrap().join("certificate.json");
    std::fs::write(&cert_file, certificate.to_string()).unwrap();
    run(
        data,
        global,
        &["cert", "verify", cert_file.to_str().unwrap()],
    );

    // New writes land beside the old data.
    let (status, created) = send(
        &server,
        Method::POST,
        owner,
        &format!("/v1/orgs/{org}/records"),
        Some(json!({"category": "messages", "subject": "dana-4", "content": "written after"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, record) = get(&server, owner, format!("/v1/orgs/{org}/records/{id}")).await;
    assert_eq!((status, &record["content"]), (200, &json!("written after")));
    drop(server);

    // The certificate's audit event still has its proof in the grown log, and the whole log
    // (old leaves and new) verifies.
    let index = certificate["inclusion_proof"]["index"].to_string();
    let proof: Value =
        serde_json::from_str(&run(data, global, &["audit", "proof", "--index", &index])).unwrap();
    assert_eq!(
        proof["leaf_hash"],
        certificate["inclusion_proof"]["leaf_hash"]
    );
    run(data, global, &["audit", "verify"]);

    // The independent verifier (Python, no Custos code) accepts the whole log, leaves written
    // before the change and after it, and the certificate issued before it.
    let Some(venv) = support::verifier_venv() else {
        return;
    };
    let dir = data.parent().unwrap();
    let (export, note, key) = (
        dir.join("export.jsonl"),
        dir.join("checkpoint.txt"),
        dir.join("verifier-key.txt"),
    );
    run(data, global, &["audit", "checkpoint"]);
    run(
        data,
        global,
        &["audit", "export", "--out", export.to_str().unwrap()],
    );
    // Leaves of both encodings are in the log: version 1 from before the change, version 2
    // (typed details) from after it, each exactly as it was hashed.
    let versions: std::collections::BTreeSet<u64> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|line| {
            let entry: Value = serde_json::from_str(line).unwrap();
            use base64::Engine as _;
            let leaf = base64::engine::general_purpose::STANDARD
                .decode(entry["leaf"].as_str().unwrap())
                .unwrap();
            let leaf: Value = serde_json::from_slice(&leaf).unwrap();
            leaf["v"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(
        versions,
        [1, 2].into(),
        "encoding versions in the upgraded log"
    );
    std::fs::write(&note, run(data, global, &["audit", "checkpoint"])).unwrap();
    std::fs::write(&key, run(data, global, &["audit", "key"])).unwrap();
    let verifier = support::workspace_root().join("tools/audit-verify/verify.py");
    let key_arg = format!("@{}", key.display());
    for args in [
        vec![
            "export",
            "--key",
            &key_arg,
            "--note",
            note.to_str().unwrap(),
            "--export",
            export.to_str().unwrap(),
        ],
        vec![
            "cert",
            "--key",
            &key_arg,
            "--cert",
            cert_file.to_str().unwrap(),
        ],
    ] {
        let out = Command::new(venv.join("bin/python"))
            .arg(&verifier)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "verify.py {}: {}{}",
            args[0],
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn a_sqlite_deployment_of_the_previous_release_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (data, manifest) = copy_fixture("sqlite", dir.path());
    upgrade_and_check(&data, &[], &manifest).await;
}

#[tokio::test]
async fn a_postgres_deployment_of_the_previous_release_upgrades_in_place() {
    let Some(db) = PgDb::create("upgrade") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (data, manifest) = copy_fixture("postgres", dir.path());
    let restored = Command::new("psql")
        .args([&db.url, "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(fixture("postgres").join("custos.sql"))
        .output()
        .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    upgrade_and_check(&data, &["--database", &db.url], &manifest).await;
}

#[tokio::test]
async fn a_database_newer_than_this_binary_is_refused_naming_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = copy_fixture("sqlite", dir.path());
    run(&data, &[], &["migrate", "run"]);
    let db = rusqlite::Connection::open(data.join("custos.db")).unwrap();
    db.execute_batch(
        "INSERT INTO custos_schema_steps (version, name, checksum, applied_at)
         VALUES (999, 'from_the_future', 'abc', 1)",
    )
    .unwrap();
    drop(db);
    let out = cli(&data).args(["migrate", "run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("version 999 (0999_from_the_future), newer than this binary"),
        "{stderr}"
    );
}
