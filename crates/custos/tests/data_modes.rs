//! Everything `custos serve` writes under the data dir is private to its owner: files 0600
//! (database, WAL, SHM, object files, keys; the admin token is checked in cli.rs),
//! directories 0700, whatever the umask of the shell that started it.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

mod support;

use support::{cli, org_with_owner, post};

/// Every file and directory under `dir`, recursively.
fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        }
        out.push(path);
    }
}

#[tokio::test]
async fn serve_creates_data_files_0600_and_directories_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = support::serve(cli(&data), &[]).await;
    let (org, owner) = org_with_owner(&s, "Acme").await;
    let member = post(
        &s,
        &owner,
        &format!("/v1/orgs/{org}/members"),
        json!({"name": "app", "roles": ["member"]}),
    )
    .await;
    let key = member["api_key"].as_str().unwrap();
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/orgs/{org}/files?category=files&name=a.txt",
            s.base
        ))
        .bearer_auth(key)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    let mut paths = Vec::new();
    walk(&data, &mut paths);
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "custos.db",
        "custos.db-wal",
        "custos.db-shm",
        "keys.db",
        "root.keyring",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(
        paths
            .iter()
            .any(|p| p.to_string_lossy().contains("/blobs/")),
        "an object file in {paths:?}"
    );
    for path in paths {
        let meta = std::fs::metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{} is {mode:o}", path.display());
    }
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the data dir itself");
}
