//! The backup drill of the issue, on the built binary and a real data directory: take a
//! backup, erase a subject, purge records, restore (the key store, the database, both), and
//! show that the erased subject stays unreadable, purged records stay gone, the audit log and
//! the erasure's certificate verify, and everything else is back; the drill prints RTO and RPO.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::{post, Server, ADMIN};

const MARKER: &str = "RESTORE-MARKER-51c0";

fn run(data: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = support::cli(data).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn ok(data: &Path, args: &[&str]) -> String {
    let (code, out, err) = run(data, args);
    assert_eq!(code, Some(0), "{args:?}: {out}\n{err}");
    out
}

async fn get(s: &Server, token: &str, path: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// An org with a member; records of `alice`, of `bob`, and of no subject; one file.
struct Fixture {
    org: String,
    key: String,
    alice: Vec<String>,
    bob: Vec<String>,
    plain: Vec<String>,
    file: String,
}

async fn record(s: &Server, f: &Fixture, subject: Option<&str>, i: usize) -> String {
    let mut body = json!({"category": "messages", "content": {"text": format!("{MARKER} {i}")}});
    if let Some(subject) = subject {
        body["subject"] = json!(subject);
    }
    post(s, &f.key, &format!("/v1/orgs/{}/records", f.org), body).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn fill(s: &Server) -> Fixture {
    let org = post(s, ADMIN, "/v1/orgs", json!({"name": "acme"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let member = post(
        s,
        ADMIN,
        &format!("/v1/orgs/{org}/members"),
        json!({"name": "app", "roles": ["owner"]}),
    )
    .await;
    let mut f = Fixture {
        org,
        key: member["api_key"].as_str().unwrap().to_string(),
        alice: Vec::new(),
        bob: Vec::new(),
        plain: Vec::new(),
        file: String::new(),
    };
    for i in 0..3 {
        let id = record(s, &f, Some("alice"), i).await;
        f.alice.push(id);
        let id = record(s, &f, Some("bob"), i).await;
        f.bob.push(id);
    }
    for i in 0..4 {
        let id = record(s, &f, None, i).await;
        f.plain.push(id);
    }
    f.file = upload(s, &f, "notes.txt", &format!("{MARKER} in a file")).await;
    f
}

/// Uploads a file as a record; its id.
async fn upload(s: &Server, f: &Fixture, name: &str, body: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/orgs/{}/files?category=files&name={name}",
            s.base, f.org
        ))
        .bearer_auth(&f.key)
        .header("content-type", "text/plain")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// Readable with its content: 200 and the marker.
async fn readable(s: &Server, f: &Fixture, id: &str) -> bool {
    let (status, body) = get(s, &f.key, &format!("/v1/orgs/{}/records/{id}", f.org)).await;
    status == 200 && body.contains(MARKER)
}

/// An embedded deployment in a temporary directory, served with `serve_args` and filled by
/// [`fill`]: the directory (kept alive), the data directory, the server and the fixture.
async fn filled_deployment(
    serve_args: &[&str],
) -> (tempfile::TempDir, std::path::PathBuf, Server, Fixture) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = support::serve(support::cli(&data), serve_args).await;
    let f = fill(&server).await;
    (tmp, data, server, f)
}

/// After a key-store restore: alice's destroyed key stayed destroyed, bob's records read.
async fn assert_only_bob_readable(s: &Server, f: &Fixture) {
    for id in &f.alice {
        assert!(!readable(s, f, id).await, "alice's key came back");
    }
    for id in &f.bob {
        assert!(readable(s, f, id).await, "bob's {id} is not readable");
    }
}

async fn hard_delete(s: &Server, f: &Fixture, id: &str) {
    delete(s, f, id, true).await
}

async fn delete(s: &Server, f: &Fixture, id: &str, hard: bool) {
    let r = reqwest::Client::new()
        .delete(format!(
            "{}/v1/orgs/{}/records/{id}?hard={hard}",
            s.base, f.org
        ))
        .bearer_auth(&f.key)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// What the drill checks on the restored deployment.
async fn assert_restored(s: &Server, f: &Fixture, purged: &[String], lost: &str) {
    for id in &f.alice {
        assert!(!readable(s, f, id).await, "erased alice's {id} is readable");
    }
    for id in purged {
        let (status, _) = get(s, &f.key, &format!("/v1/orgs/{}/records/{id}", f.org)).await;
        assert_eq!(status, 404, "purged {id} came back");
    }
    for id in f
        .bob
        .iter()
        .chain(f.plain.iter().filter(|p| !purged.contains(p)))
    {
        assert!(readable(s, f, id).await, "{id} was not restored");
    }
    let (status, body) = get(
        s,
        &f.key,
        &format!("/v1/orgs/{}/records/{}/file", f.org, f.file),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, &*format!("{MARKER} in a file"))
    );
    // Written after the backup: beyond the recovery point.
    let (status, _) = get(s, &f.key, &format!("/v1/orgs/{}/records/{lost}", f.org)).await;
    assert_eq!(status, 404);
}

/// The backup directories under `to`, oldest first.
fn by_creation(to: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<(jiff::Timestamp, PathBuf)> = std::fs::read_dir(to)
        .unwrap()
        .map(|e| {
            let dir = e.unwrap().path();
            let m: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                    .unwrap();
            (m["created"].as_str().unwrap().parse().unwrap(), dir)
        })
        .collect();
    dirs.sort();
    dirs.into_iter().map(|(_, d)| d).collect()
}

fn count(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

fn replaced_db(data: &Path) -> PathBuf {
    std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("custos.db.replaced-")
                && !p.to_string_lossy().ends_with("-wal")
                && !p.to_string_lossy().ends_with("-shm")
        })
        .expect("the replaced database is kept")
}

#[tokio::test]
async fn restoring_both_stores_keeps_erasures_and_purges_and_brings_back_the_rest() {
    let (tmp, data, server, f) = filled_deployment(&[]).await;
    let gone = upload(&server, &f, "gone.txt", "a file purged after the backup").await;
    let gone_object = data.join(format!("objects/orgs/{}/blobs/{gone}", f.org));
    assert!(gone_object.is_file());
    let backups = tmp.path().join("backups");
    let key_backups = tmp.path().join("key-backups");
    let (b, kb) = (backups.to_str().unwrap(), key_backups.to_str().unwrap());
    let out = ok(&data, &["backup", "create", "--to", b]);
    assert!(out.contains("(full)"), "{out}");
    let out = ok(&data, &["backup", "create", "--key-store", "--to", kb]);
    assert!(out.starts_with("key-store backup "), "{out}");
    ok(&data, &["backup", "verify", "--key-store", "--to", kb]);

    // After the backup: erase alice, hard-delete two records, sweep (purges), write one more.
    let out = ok(
        &data,
        &["dsr", "erase", "--org", &f.org, "--subject", "alice"],
    );
    let certificate = tmp.path().join(out.lines().next().unwrap());
    assert!(certificate.is_file(), "{out}");
    let purged = vec![f.plain[0].clone(), f.plain[1].clone(), gone.clone()];
    for id in &purged {
        hard_delete(&server, &f, id).await;
    }
    ok(&data, &["sweep"]);
    assert!(!gone_object.exists());
    // Deleted after the sweep, so not purged yet when the database is replaced: a hard
    // delete and a soft delete; and a soft delete undone by a restore.
    hard_delete(&server, &f, &f.plain[2]).await;
    delete(&server, &f, &f.plain[3], false).await;
    delete(&server, &f, &f.bob[2], false).await;
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/orgs/{}/records/{}/restore",
            server.base, f.org, f.bob[2]
        ))
        .bearer_auth(&f.key)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let lost = record(&server, &f, None, 99).await;
    for id in f.alice.iter().chain(&purged) {
        assert!(!readable(&server, &f, id).await);
    }
    drop(server);

    // Both stores are lost to an older state: the key store entirely (its tombstones with
    // it), the database by restoring the backup.
    std::fs::remove_file(data.join("keys/keys.db")).unwrap();
    let out = ok(&data, &["backup", "restore", "--key-store", "--from", kb]);
    assert!(out.contains("subject key(s)"), "{out}");
    let destroyed_again: usize = out
        .split("replayed the audit log's key destructions: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(destroyed_again >= 1, "{out}");
    let out = ok(&data, &["backup", "restore", "--from", b]);
    assert!(out.contains("restored backup "), "{out}");
    assert!(out.contains("reconciled from audit index"), "{out}");
    let n = f.alice.len() + purged.len();
    assert!(out.contains(&format!(" {n} record(s) purged")), "{out}");
    assert!(out.contains(" 1 object(s) deleted"), "{out}");
    assert!(!gone_object.exists(), "a purged file's object came back");
    assert!(
        out.contains(" 1 pending deletion(s) marked for purge and 1 soft delete(s) replayed"),
        "{out}"
    );
    let mut purged = purged;
    purged.extend([f.plain[2].clone(), f.plain[3].clone()]);
    let db = data.join("custos.db");

    let server = support::serve(support::cli(&data), &[]).await;
    assert_restored(&server, &f, &purged, &lost).await;
    drop(server);
    let out = ok(&data, &["audit", "verify"]);
    assert!(out.contains("audit log verified"), "{out}");
    // The certificate issued after the backup still proves inclusion: the log continued.
    ok(&data, &["cert", "verify", certificate.to_str().unwrap()]);

    // Reconcile again: nothing changes (the server's sweep has purged what was marked).
    let records_after = count(&db, "SELECT count(*) FROM records");
    let aside = replaced_db(&data);
    let from = format!("sqlite:{}", aside.display());
    let out = ok(&data, &["backup", "reconcile", "--from", &from]);
    assert!(out.contains(" 0 record(s) purged"), "{out}");
    assert!(out.contains(" 0 subject key(s)"), "{out}");
    assert!(
        out.contains(" 0 pending deletion(s) marked for purge and 0 soft delete(s)"),
        "{out}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM records"), records_after);
    ok(&data, &["audit", "verify"]);
    let server = support::serve(support::cli(&data), &[]).await;
    assert_restored(&server, &f, &purged, &lost).await;
    drop(server);

    // The drill restores the newest backup elsewhere and prints RTO and RPO.
    let out = ok(&data, &["backup", "drill", "--from", b]);
    assert!(
        out.contains("recovery time ") && out.contains("(policy rto 4h: met)"),
        "{out}"
    );
    assert!(
        out.contains("recovery point ") && out.contains("(policy rpo 1h: met)"),
        "{out}"
    );
    assert!(out.contains("audit log verified"), "{out}");
    println!("{out}");

    // A backup older than the rpo is a missed target: exit 1.
    let newest = by_creation(&backups).pop().unwrap().join("manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&newest).unwrap()).unwrap();
    let old = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2);
    manifest["created"] = json!(old.to_string());
    std::fs::write(&newest, manifest.to_string()).unwrap();
    let (code, out, err) = run(&data, &["backup", "drill", "--from", b]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(out.contains("before now (policy rpo 1h: MISSED)"), "{out}");
    assert!(err.contains("beyond the rpo 1h"), "{err}");
}

#[tokio::test]
async fn a_key_store_backup_restored_later_does_not_bring_a_destroyed_key_back() {
    let (tmp, data, server, f) = filled_deployment(&[]).await;
    let kb = tmp.path().join("key-backups");
    let kb = kb.to_str().unwrap();
    ok(&data, &["backup", "create", "--key-store", "--to", kb]);
    ok(
        &data,
        &["dsr", "erase", "--org", &f.org, "--subject", "alice"],
    );
    let keys = data.join("keys/keys.db");
    let tombstones = count(&keys, "SELECT count(*) FROM destroyed_keys");
    assert!(tombstones >= 1, "destroying a key leaves a tombstone");
    drop(server);

    // The key store is kept; an older copy of it is merged in.
    let out = ok(&data, &["backup", "restore", "--key-store", "--from", kb]);
    assert!(out.contains("kept out by tombstones"), "{out}");
    let refused: usize = out
        .split("; ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(refused as i64, tombstones, "{out}");
    let server = support::serve(support::cli(&data), &[]).await;
    assert_only_bob_readable(&server, &f).await;
    drop(server);
}

#[tokio::test]
async fn incremental_backups_seal_only_changes_and_pruning_keeps_what_they_read() {
    let (tmp, data, server, f) = filled_deployment(&[]).await;
    let to = tmp.path().join("backups");
    let b = to.to_str().unwrap();
    let out = ok(&data, &["backup", "create", "--to", b]);
    assert!(out.contains("(full)"), "{out}");
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/orgs/{}/files?category=files&name=more.txt",
            server.base, f.org
        ))
        .bearer_auth(&f.key)
        .header("content-type", "text/plain")
        .body("a second file")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let out = ok(&data, &["backup", "create", "--to", b]);
    assert!(out.contains("(incremental)"), "{out}");
    assert!(out.contains("2 object(s) (1 sealed here)"), "{out}");
    drop(server);
    ok(&data, &["backup", "verify", "--to", b]);

    // The full backup is past retention, but the incremental reads from it: both stay.
    let dirs = by_creation(&to);
    let manifest_path = dirs[0].join("manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    assert_eq!(manifest["kind"], "full");
    let old = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(31 * 24);
    manifest["created"] = json!(old.to_string());
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let mut second: Value =
        serde_json::from_str(&std::fs::read_to_string(dirs[1].join("manifest.json")).unwrap())
            .unwrap();
    second["created"] = json!((old + jiff::SignedDuration::from_hours(1)).to_string());
    std::fs::write(dirs[1].join("manifest.json"), second.to_string()).unwrap();
    let out = ok(&data, &["backup", "create", "--to", b]);
    assert!(out.contains("(incremental)"), "{out}");
    // Both older backups hold an object the newest reads: neither is pruned.
    assert!(!out.contains("pruned"), "{out}");
    ok(&data, &["backup", "verify", "--to", b]);
    assert!(
        dirs[0].exists() && dirs[1].exists(),
        "a backup an incremental reads from was pruned"
    );

    // Restore from the incremental chain brings both files back.
    std::fs::remove_dir_all(data.join("objects")).unwrap();
    let out = ok(&data, &["backup", "restore", "--from", b]);
    assert!(out.contains("2 object(s)"), "{out}");
    let server = support::serve(support::cli(&data), &[]).await;
    let (status, body) = get(
        &server,
        &f.key,
        &format!("/v1/orgs/{}/records/{}/file", f.org, f.file),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, &*format!("{MARKER} in a file"))
    );
    drop(server);

    // A --full backup reads from nothing.
    let out = ok(&data, &["backup", "create", "--full", "--to", b]);
    assert!(
        out.contains("(full)") && out.contains("(2 sealed here)"),
        "{out}"
    );

    // A database whose log is not the backup's continuation (here: started afresh) is not
    // replaced: its later history could not be replayed.
    for f in ["custos.db", "custos.db-wal", "custos.db-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    let server = support::serve(support::cli(&data), &[]).await;
    post(&server, ADMIN, "/v1/orgs", json!({"name": "fresh"})).await;
    drop(server);
    let before = count(&data.join("custos.db"), "SELECT count(*) FROM audit_log");
    let (code, _, err) = run(&data, &["backup", "restore", "--from", b]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("does not begin with backup") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(
        count(&data.join("custos.db"), "SELECT count(*) FROM audit_log"),
        before
    );
}

const ROOT: &str = "9mvW6fN0m8Qm3Zb9Jx3h2b1Vn0pQ5sT7uY8wE4rA6cI=";

/// The binary on PostgreSQL data and key stores (objects in `data`).
fn on_pg(data: &Path, database: &str, keys: &str) -> std::process::Command {
    let mut c = support::cli(data);
    c.env("CUSTOS_DATABASE", database)
        .env("CUSTOS_KEYS", keys)
        .env("CUSTOS_ROOT_KEY", ROOT);
    c
}

fn pg_ok(data: &Path, database: &str, keys: &str, args: &[&str]) -> String {
    let out = on_pg(data, database, keys).args(args).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stdout}\n{stderr}");
    stdout
}

/// `pg_dump from`: PostgreSQL's own backup.
fn pg_dump(from: &support::PgDb) -> Vec<u8> {
    let dump = std::process::Command::new("pg_dump")
        .args(["--no-owner", &from.url])
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    dump.stdout
}

/// `psql to < dump`: its restore, into a new database.
fn pg_load(dump: &[u8], to: &support::PgDb) {
    let mut psql = std::process::Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", &to.url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    psql.stdin.take().unwrap().write_all(dump).unwrap();
    assert!(psql.wait().unwrap().success());
}

#[tokio::test]
async fn after_postgresql_restores_reconcile_keeps_erasures_and_purges() {
    let (Some(live), Some(keys), Some(data_backup), Some(keys_backup)) = (
        support::PgDb::create("bk_live"),
        support::PgDb::create("bk_keys"),
        support::PgDb::create("bk_data_restored"),
        support::PgDb::create("bk_keys_restored"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = support::serve(on_pg(&data, &live.url, &keys.url), &[]).await;
    let f = fill(&server).await;

    // PostgreSQL's own backups of both stores (pg_dump; restored below into new databases).
    pg_load(&pg_dump(&live), &data_backup);
    let keys_dump = pg_dump(&keys);
    pg_load(&keys_dump, &keys_backup);
    // restore and drill are for SQLite deployments; they say what to do instead.
    let out = on_pg(&data, &live.url, &keys.url)
        .args(["backup", "restore", "--from", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("custos backup reconcile"));
    let out = on_pg(&data, &live.url, &keys.url)
        .args(["backup", "drill", "--from", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
    // So is a key-store backup of a PostgreSQL key store.
    let out = on_pg(&data, &live.url, &keys.url)
        .args(["backup", "create", "--key-store", "--to", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));

    let out = pg_ok(
        &data,
        &live.url,
        &keys.url,
        &["dsr", "erase", "--org", &f.org, "--subject", "alice"],
    );
    let certificate = tmp.path().join(out.lines().next().unwrap());
    let purged = vec![f.plain[0].clone(), f.plain[1].clone()];
    for id in &purged {
        hard_delete(&server, &f, id).await;
    }
    pg_ok(&data, &live.url, &keys.url, &["sweep"]);
    let lost = record(&server, &f, None, 99).await;
    drop(server);

    // Both stores restored from their dumps (the key store's tombstones with it); the step
    // after: reconcile from the log of the database in use before.
    let (restored, restored_keys) = (&data_backup.url, &keys_backup.url);
    let out = pg_ok(
        &data,
        restored,
        restored_keys,
        &["backup", "reconcile", "--from", &live.url],
    );
    // alice's records (purged by the sweep after her erasure) and the two hard-deleted ones.
    let n = f.alice.len() + purged.len();
    assert!(out.contains(&format!(" {n} record(s) purged")), "{out}");
    let destroyed: usize = out
        .split("checkpoint(s) copied, ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(destroyed >= 1, "{out}");
    let again = pg_ok(
        &data,
        restored,
        restored_keys,
        &["backup", "reconcile", "--from", &live.url],
    );
    assert!(
        again.contains(" 0 subject key(s)") && again.contains(" 0 record(s) purged"),
        "{again}"
    );

    let server = support::serve(on_pg(&data, restored, restored_keys), &[]).await;
    assert_restored(&server, &f, &purged, &lost).await;
    drop(server);
    let out = pg_ok(&data, restored, restored_keys, &["audit", "verify"]);
    assert!(out.contains("audit log verified"), "{out}");
    pg_ok(
        &data,
        restored,
        restored_keys,
        &["cert", "verify", certificate.to_str().unwrap()],
    );

    // The key store alone restored (the data database kept): reconcile without --from
    // replays the key destructions of the deployment's own log.
    let Some(keys_only) = support::PgDb::create("bk_keys_only") else {
        return;
    };
    pg_load(&keys_dump, &keys_only);
    let out = pg_ok(&data, &live.url, &keys_only.url, &["backup", "reconcile"]);
    assert!(out.contains("reconciled the key store"), "{out}");
    assert!(!out.contains(": 0 subject key(s)"), "{out}");
    let server = support::serve(on_pg(&data, &live.url, &keys_only.url), &[]).await;
    assert_only_bob_readable(&server, &f).await;
    drop(server);
}

#[tokio::test]
async fn a_restore_without_reconcile_is_reconciled_later_from_the_replaced_log() {
    let (tmp, data, server, f) = filled_deployment(&[]).await;
    let b = tmp.path().join("backups");
    let b = b.to_str().unwrap();
    ok(&data, &["backup", "create", "--to", b]);
    ok(
        &data,
        &["dsr", "erase", "--org", &f.org, "--subject", "alice"],
    );
    let purged = vec![f.plain[3].clone()];
    hard_delete(&server, &f, &purged[0]).await;
    ok(&data, &["sweep"]);
    let lost = record(&server, &f, Some("bob"), 7).await;
    drop(server);

    let out = ok(&data, &["backup", "restore", "--no-reconcile", "--from", b]);
    assert!(out.contains("not reconciled (--no-reconcile)"), "{out}");
    // The restored log was written to (the restore is audited): the replaced log's later
    // entries follow it instead of taking their own indices.
    let from = format!("sqlite:{}", replaced_db(&data).display());
    let out = ok(&data, &["backup", "reconcile", "--from", &from]);
    let n = f.alice.len() + purged.len();
    assert!(out.contains(&format!(" {n} record(s) purged")), "{out}");
    assert!(!out.contains(" 0 log entries appended"), "{out}");
    let again = ok(&data, &["backup", "reconcile", "--from", &from]);
    assert!(again.contains(" 0 log entries appended"), "{again}");
    assert!(again.contains(" 0 record(s) purged"), "{again}");
    ok(&data, &["audit", "verify"]);
    let server = support::serve(support::cli(&data), &[]).await;
    assert_restored(&server, &f, &purged, &lost).await;
    drop(server);
}

#[tokio::test]
async fn an_org_terminated_after_the_backup_stays_terminated_after_a_restore() {
    let (tmp, data, server, f) = filled_deployment(&["--sweep-interval", "0"]).await;
    let b = tmp.path().join("backups");
    let b = b.to_str().unwrap();
    ok(&data, &["backup", "create", "--to", b]);
    let r = reqwest::Client::new()
        .delete(format!("{}/v1/orgs/{}", server.base, f.org))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    drop(server);
    let out = ok(&data, &["sweep"]);
    let db = data.join("custos.db");
    let terminated = "SELECT count(*) FROM orgs WHERE terminated_at IS NOT NULL";
    assert_eq!(count(&db, terminated), 1, "{out}");

    let out = ok(&data, &["backup", "restore", "--from", b]);
    assert!(out.contains(" 1 org key set(s) destroyed"), "{out}");
    assert!(out.contains(" 1 org termination(s) replayed"), "{out}");
    let n = f.alice.len() + f.bob.len() + f.plain.len() + 1;
    assert!(
        out.contains(&format!(" {n} record(s) purged, 1 object(s) deleted")),
        "{out}"
    );
    assert_eq!(count(&db, terminated), 1, "{out}");
    assert_eq!(count(&db, "SELECT count(*) FROM records"), 0, "{out}");
    assert_eq!(count(&db, "SELECT count(*) FROM members"), 0, "{out}");
    ok(&data, &["audit", "verify"]);
    let server = support::serve(support::cli(&data), &[]).await;
    let (status, _) = get(
        &server,
        &f.key,
        &format!("/v1/orgs/{}/records/{}", f.org, f.bob[0]),
    )
    .await;
    assert_ne!(status, 200);
    drop(server);
}
