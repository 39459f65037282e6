//! `custos backup create|list|verify` on a running embedded deployment: an online backup
//! holds no plaintext, verifies, and names the file when one was modified or moved in from
//! another backup.

mod support;

use std::path::{Path, PathBuf};

use serde_json::json;
use support::{post, ADMIN};

const MARKER: &str = "BACKUP-PLAINTEXT-MARKER-9f2c";

fn backup(data: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = support::cli(data)
        .arg("backup")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn every_file(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(every_file(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn an_online_backup_is_sealed_verifies_and_names_a_tampered_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = support::serve(support::cli(&data), &[]).await;
    let org = post(&server, ADMIN, "/v1/orgs", json!({"name": "acme"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let member = post(
        &server,
        ADMIN,
        &format!("/v1/orgs/{org}/members"),
        json!({"name": "app", "roles": ["owner"]}),
    )
    .await;
    let key = member["api_key"].as_str().unwrap().to_string();
    for i in 0..5 {
        post(
            &server,
            &key,
            &format!("/v1/orgs/{org}/records"),
            json!({"category": "messages", "content": {"text": format!("{MARKER} {i}")}}),
        )
        .await;
    }
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/orgs/{org}/files?category=files&name=notes.txt",
            server.base
        ))
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .body(format!("{MARKER} in a file"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    // Taken while the server runs.
    let to = tmp.path().join("backups");
    let to_arg = to.to_str().unwrap();
    let (code, out, err) = backup(&data, &["create", "--to", to_arg]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("backup "), "{out}");
    let (code, listed, _) = backup(&data, &["list", "--to", to_arg]);
    assert_eq!(code, Some(0));
    let ids: Vec<String> = std::fs::read_dir(&to)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ids.len(), 1);
    assert!(listed.contains(&ids[0]), "{listed}");
    let (code, out, err) = backup(&data, &["verify", "--to", to_arg]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(": ok"), "{out}");

    // Nothing in the backup is plaintext: not the records, not the file, not the database.
    let files = every_file(&to);
    assert!(files.iter().any(|f| f.ends_with("custos.db.sealed")));
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
            "plaintext in {}",
            f.display()
        );
        assert!(!bytes.starts_with(b"SQLite format 3"), "{}", f.display());
    }

    // An object blob moved in from another backup does not open here.
    let (code, _, err) = backup(&data, &["create", "--full", "--to", to_arg]);
    assert_eq!(code, Some(0), "{err}");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&to)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // Oldest first, by the manifests' creation times (ids taken in one second may sort
    // either way).
    dirs.sort_by_key(|d| {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("manifest.json")).unwrap())
                .unwrap();
        m["created"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    });
    let object = every_file(&dirs[0])
        .into_iter()
        .find(|f| f.to_string_lossy().contains("/objects/"))
        .unwrap();
    let rel = object.strip_prefix(&dirs[0]).unwrap();
    std::fs::copy(&object, dirs[1].join(rel)).unwrap();
    let newest = dirs[1].file_name().unwrap().to_str().unwrap().to_string();
    let (code, _, err) = backup(&data, &["verify", "--to", to_arg, &newest]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("objects/") && err.contains("does not open"),
        "{err}"
    );

    // A modified database blob is named.
    let oldest = dirs[0].file_name().unwrap().to_str().unwrap().to_string();
    let sealed = dirs[0].join("custos.db.sealed");
    let mut bytes = std::fs::read(&sealed).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&sealed, bytes).unwrap();
    let (code, _, err) = backup(&data, &["verify", "--to", to_arg, &oldest]);
    assert_eq!(code, Some(1));
    assert!(err.contains("custos.db: does not open"), "{err}");

    // Backups past the policy's [backups] retention (30 days) go when the next one is taken.
    let manifest_path = dirs[0].join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let old = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(31 * 24);
    manifest["created"] = json!(old.to_string());
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let (code, out, err) = backup(&data, &["create", "--to", to_arg]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("pruned backup {oldest}")), "{out}");
    assert!(!dirs[0].exists());
    assert!(dirs[1].exists(), "a backup within retention was pruned");

    // PostgreSQL deployments back up with PostgreSQL's tools.
    let out = support::cli(&data)
        .args([
            "--database",
            "postgres://db/custos",
            "backup",
            "create",
            "--to",
            to_arg,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
    drop(server);
}

#[tokio::test]
async fn serve_takes_backups_on_a_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let to = tmp.path().join("scheduled");
    let server = support::serve(
        support::cli(&data),
        &[
            "--backup-to",
            to.to_str().unwrap(),
            "--backup-interval",
            "1",
        ],
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let manifests = loop {
        let found: Vec<PathBuf> = std::fs::read_dir(&to)
            .map(|d| d.map(|e| e.unwrap().path().join("manifest.json")).collect())
            .unwrap_or_default();
        let done: Vec<PathBuf> = found.into_iter().filter(|m| m.is_file()).collect();
        if done.len() >= 2 {
            break done;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled backups in {}",
            to.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    drop(server);
    let (code, out, err) = backup(&data, &["verify", "--to", to.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(": ok"), "{out} ({} backups)", manifests.len());
}
