//! Three `custos serve` processes on one PostgreSQL database, one S3 bucket (moto) and one key
//! store on PostgreSQL, driven at once: writes across several orgs, reads through the other
//! instances, soft deletes, lifecycle sweeps by every instance, an org key rotation from the
//! CLI. Afterwards no write is lost, every record reads the same from every instance, every due
//! purge happened exactly once, the one audit log verifies (`custos audit verify` and the
//! independent Python verifier), and every instance's checkpoints verify under one key.
//!
//! Needs PostgreSQL and moto (installed from PyPI on first use); skipped with a loud message
//! when either is missing, fatal under `CI=true`.

#[path = "../../../tools/s3-stand-in/stand_in.rs"]
mod stand_in;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_core::{Caller, Custos, ManualClock, NewOrg, NewRecord, Principal};
use custos_crypto::{KeyVault, LocalKms};
use custos_keystore_pg::PgKeyStore;
use custos_policy::Policy;
use custos_store::{ObjectLocation, Objects, PgStore};
use serde_json::{json, Value};
use stand_in::StandIn;
use support::{PgDb, Server, ADMIN};

const BUCKET: &str = "custos-instances";
/// Base64 of 32 bytes: the root every instance shares.
const ROOT: &str = "9mvW6fN0m8Qm3Zb9Jx3h2b1Vn0pQ5sT7uY8wE4rA6cI=";
/// Records each writer creates per org.
const PER_ORG: usize = 12;
/// Records created 400 days ago through the library: due for purge when the instances start.
const EXPIRED: usize = 30;

/// The stores all instances share.
struct Shared {
    data: PgDb,
    keys: PgDb,
    s3: StandIn,
    dir: tempfile::TempDir,
}

impl Shared {
    fn objects_url(&self) -> String {
        format!("s3://{BUCKET}/deploy")
    }

    /// The binary with the shared stores, in `data` (each instance keeps its own admin-token
    /// file and nothing else there).
    fn command(&self, name: &str) -> Command {
        let data = self.dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        let mut c = support::cli(&data);
        c.env("CUSTOS_DATABASE", &self.data.url)
            .env("CUSTOS_OBJECTS", self.objects_url())
            .env("CUSTOS_KEYS", &self.keys.url)
            .env("CUSTOS_ROOT_KEY", ROOT)
            .env("AWS_ENDPOINT", &self.s3.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", stand_in::ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", stand_in::SECRET_ACCESS_KEY)
            .env("AWS_REGION", stand_in::REGION);
        c
    }

    /// Runs a CLI command against the shared stores; its stdout, asserting success.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.command("cli").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "custos {args:?}: {:?}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The services through the library, on `clock`: to create records in the past.
    async fn library(&self, clock: Arc<ManualClock>) -> Custos {
        for (k, v) in [
            ("AWS_ENDPOINT", self.s3.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", stand_in::ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", stand_in::SECRET_ACCESS_KEY),
            ("AWS_REGION", stand_in::REGION),
        ] {
            // This test binary holds this one test: no other thread reads the environment.
            std::env::set_var(k, v);
        }
        let store = PgStore::connect(&self.data.url, None).await.unwrap();
        let location: ObjectLocation = self.objects_url().parse().unwrap();
        let objects = Objects::open(&location).unwrap();
        let kms = LocalKms::from_env_value(ROOT).unwrap();
        let keys = PgKeyStore::connect(&self.keys.url, None).await.unwrap();
        let vault = Arc::new(KeyVault::new(Arc::new(kms), Arc::new(keys)));
        Custos::new(
            Arc::new(Policy::builtin()),
            Arc::new(store),
            objects,
            vault,
            clock,
        )
    }
}

/// A JSON request to an instance.
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    server: &Server,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = client
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(token);
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Waits until every instance reports ready.
async fn ready(servers: &[Server]) {
    for s in servers {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = reqwest::get(format!("{}/readyz", s.base)).await;
            if r.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "{} never became ready", s.base);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What one writer did in one org.
#[derive(Default)]
struct Written {
    /// Record id → its org and the content written.
    kept: BTreeMap<String, (String, Value)>,
    /// Records soft-deleted after writing.
    deleted: BTreeSet<String>,
}

/// One writer: creates records in `org` through its instance, reads each back through the
/// next one, soft-deletes every fourth through the one after.
async fn writer(servers: Arc<Vec<Server>>, w: usize, org: String, key: String) -> Written {
    let client = reqwest::Client::new();
    let mut out = Written::default();
    let n = servers.len();
    for i in 0..PER_ORG {
        let content = json!({ "text": format!("writer {w} record {i}"), "n": i });
        let body = json!({ "category": "messages", "subject": format!("user-{}", i % 3), "content": content });
        let path = format!("/v1/orgs/{org}/records");
        let (status, created) = call(
            &client,
            reqwest::Method::POST,
            &servers[w % n],
            &key,
            &path,
            Some(body),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        let read = format!("/v1/orgs/{org}/records/{id}");
        let (status, got) = call(
            &client,
            reqwest::Method::GET,
            &servers[(w + 1) % n],
            &key,
            &read,
            None,
        )
        .await;
        assert_eq!(
            status, 200,
            "written on one instance, unreadable on another: {got}"
        );
        assert_eq!(got["content"], content);
        if i % 4 == 3 {
            let (status, body) = call(
                &client,
                reqwest::Method::DELETE,
                &servers[(w + 2) % n],
                &key,
                &read,
                None,
            )
            .await;
            assert!((200..300).contains(&status), "soft delete: {status} {body}");
            out.deleted.insert(id);
        } else {
            out.kept.insert(id, (org.clone(), content));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_deployment() {
    let Some(s3) = StandIn::start("three_instances_share_one_deployment").await else {
        return;
    };
    let (Some(data), Some(keys)) = (PgDb::create("data"), PgDb::create("keys")) else {
        return;
    };
    s3.create_bucket(BUCKET).await;
    let shared = Shared {
        data,
        keys,
        s3,
        dir: tempfile::tempdir().unwrap(),
    };

    // Records 400 days old: every instance's sweeper will find them due at once.
    let now = jiff::Timestamp::now();
    let clock = Arc::new(ManualClock::new(
        now - jiff::SignedDuration::from_hours(400 * 24),
    ));
    let lib = shared.library(clock.clone()).await;
    let system = Caller::new(Principal::System);
    let legacy = lib
        .create_org(
            &Caller::new(Principal::Admin),
            NewOrg {
                name: "legacy".into(),
                region: None,
                owner: None,
            },
        )
        .await
        .unwrap()
        .org
        .id;
    let old: Vec<NewRecord> = (0..EXPIRED)
        .map(|i| NewRecord {
            category: "app_logs".into(),
            subject: Some(format!("old-{}", i % 5)),
            content: json!({ "line": format!("GET /old/{i} 200") }),
            metadata: None,
        })
        .collect();
    let expired: BTreeSet<String> = lib
        .create_records(&system, &legacy, old)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    drop(lib);

    let servers: Vec<Server> = futures::future::join_all((0..3).map(|i| {
        let command = shared.command(&format!("instance-{i}"));
        async move {
            support::serve(
                command,
                &["--sweep-interval", "1", "--checkpoint-interval", "1"],
            )
            .await
        }
    }))
    .await;
    ready(&servers).await;
    let servers = Arc::new(servers);

    // Orgs and owners through different instances.
    let client = reqwest::Client::new();
    let mut orgs = Vec::new();
    for i in 0..3 {
        let s = &servers[i % 3];
        let (status, org) = call(
            &client,
            reqwest::Method::POST,
            s,
            ADMIN,
            "/v1/orgs",
            Some(json!({"name": format!("org-{i}")})),
        )
        .await;
        assert_eq!(status, 201, "{org}");
        let org = org["id"].as_str().unwrap().to_string();
        let path = format!("/v1/orgs/{org}/members");
        let body = json!({"name": "app", "roles": ["owner"]});
        let (status, member) = call(
            &client,
            reqwest::Method::POST,
            &servers[(i + 1) % 3],
            ADMIN,
            &path,
            Some(body),
        )
        .await;
        assert_eq!(status, 201, "{member}");
        orgs.push((org, member["api_key"].as_str().unwrap().to_string()));
    }

    // Three writers per org, one per instance, all at once; an org key rotation from the CLI
    // meanwhile.
    let mut tasks = Vec::new();
    for (org, key) in &orgs {
        for w in 0..3 {
            tasks.push(tokio::spawn(writer(
                servers.clone(),
                w,
                org.clone(),
                key.clone(),
            )));
        }
    }
    let rotated = shared.ok(&["keys", "rotate", "--org", &orgs[0].0]);
    assert!(rotated.contains("version 2"), "{rotated}");
    let mut written = Written::default();
    for t in tasks {
        let w = t.await.unwrap();
        written.kept.extend(w.kept);
        written.deleted.extend(w.deleted);
    }
    assert_eq!(written.kept.len() + written.deleted.len(), 3 * 3 * PER_ORG);

    // Every kept record reads the same from every instance; deleted ones from none.
    for (org, key) in &orgs {
        for s in servers.iter() {
            let (status, page) = call(
                &client,
                reqwest::Method::GET,
                s,
                key,
                &format!("/v1/orgs/{org}/records?limit=1000"),
                None,
            )
            .await;
            assert_eq!(status, 200, "{page}");
            let listed: BTreeSet<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect();
            for (id, (record_org, content)) in &written.kept {
                if record_org != org {
                    continue;
                }
                assert!(listed.contains(id), "{id} not listed by {}", s.base);
                let path = format!("/v1/orgs/{org}/records/{id}");
                let (status, got) = call(&client, reqwest::Method::GET, s, key, &path, None).await;
                assert_eq!(status, 200, "{got}");
                assert_eq!(&got["content"], content);
            }
            for id in &written.deleted {
                assert!(!listed.contains(id), "soft-deleted {id} still listed");
            }
        }
    }

    // An erasure through one instance: the subject's content is unreadable through every
    // other at once (subject keys are never cached; see ORG_KEY_RECHECK for org keys).
    let (org, key) = &orgs[1];
    let path = format!("/v1/orgs/{org}/requests");
    let body = json!({"type": "erasure", "subject": "user-0"});
    let (status, request) = call(
        &client,
        reqwest::Method::POST,
        &servers[0],
        key,
        &path,
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{request}");
    let erased: Vec<&String> = written
        .kept
        .iter()
        .filter(|(_, (o, c))| o == org && c["n"].as_u64().unwrap() % 3 == 0)
        .map(|(id, _)| id)
        .collect();
    assert!(!erased.is_empty());
    for s in &servers[1..] {
        for id in &erased {
            let path = format!("/v1/orgs/{org}/records/{id}");
            let (status, got) = call(&client, reqwest::Method::GET, s, key, &path, None).await;
            assert!(
                status == 404 || status == 410,
                "erased through one instance, read through another: {status} {got}"
            );
            assert!(got.get("content").is_none(), "{got}");
        }
    }

    // Every due purge done, by whichever instance got to it, exactly once: each record once
    // in the deletion log, and the purge events of the org count each record once.
    let path = format!("/v1/orgs/{legacy}/members");
    let body = json!({"name": "auditor", "roles": ["owner"]});
    let (status, member) = call(
        &client,
        reqwest::Method::POST,
        &servers[2],
        ADMIN,
        &path,
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{member}");
    let legacy_key = member["api_key"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let logged = loop {
        let path = format!("/v1/orgs/{legacy}/deletion-log?limit=1000");
        let (status, log) = call(
            &client,
            reqwest::Method::GET,
            &servers[0],
            &legacy_key,
            &path,
            None,
        )
        .await;
        assert_eq!(status, 200, "{log}");
        let ids: Vec<String> = log
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["record_id"].as_str().unwrap().to_string())
            .collect();
        if ids.len() >= EXPIRED {
            break ids;
        }
        assert!(
            Instant::now() < deadline,
            "the sweepers purged {} of {EXPIRED} due records",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(logged.len(), EXPIRED, "a record logged twice: {logged:?}");
    assert_eq!(logged.iter().cloned().collect::<BTreeSet<_>>(), expired);
    let export = shared.dir.path().join("export.jsonl");
    shared.ok(&["audit", "export", "--out", export.to_str().unwrap()]);
    let mut purged_by_events = 0;
    let mut created_by_events = 0;
    for line in std::fs::read_to_string(&export).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let e = &v["event"];
        match e["action"].as_str().unwrap() {
            "record.purge" if e["org"] == legacy.as_str() => {
                purged_by_events += e["records"].as_u64().unwrap_or(1) as usize
            }
            "record.create" if e["org"] != legacy.as_str() => created_by_events += 1,
            _ => {}
        }
    }
    assert_eq!(
        purged_by_events, EXPIRED,
        "purge events do not count each record once"
    );
    assert_eq!(
        created_by_events,
        written.kept.len() + written.deleted.len(),
        "a write without its audit event, or one twice"
    );

    // One audit log; every instance's checkpoint verifies under the one deployment key.
    let mut keys = BTreeSet::new();
    for s in servers.iter() {
        let (status, key) = call(
            &client,
            reqwest::Method::GET,
            s,
            ADMIN,
            "/v1/signing-key",
            None,
        )
        .await;
        assert_eq!(status, 200, "{key}");
        keys.insert(key["verifier_key"].as_str().unwrap().to_string());
    }
    assert_eq!(
        keys.len(),
        1,
        "instances sign with different keys: {keys:?}"
    );
    for (i, s) in servers.iter().enumerate() {
        let (status, cp) = call(
            &client,
            reqwest::Method::GET,
            s,
            ADMIN,
            "/v1/audit/checkpoint",
            None,
        )
        .await;
        assert_eq!(status, 200, "{cp}");
        let note = cp["checkpoint"].as_str().unwrap();
        let file = shared.dir.path().join(format!("checkpoint-{i}.txt"));
        std::fs::write(&file, note).unwrap();
        shared.ok(&["audit", "verify", "--checkpoint", file.to_str().unwrap()]);
    }
    if let Some(venv) = support::verifier_venv() {
        // A fresh export: its checkpoint covers every event the checks above appended.
        shared.ok(&["audit", "export", "--out", export.to_str().unwrap()]);
        let key = shared.dir.path().join("verifier-key.txt");
        std::fs::write(&key, shared.ok(&["audit", "key"])).unwrap();
        let script = support::workspace_root().join("tools/audit-verify/verify.py");
        let note = export.with_extension("jsonl.checkpoint");
        let out = Command::new(venv.join("bin/python"))
            .arg(script)
            .args(["export", "--key"])
            .arg(format!("@{}", key.display()))
            .arg("--note")
            .arg(&note)
            .arg("--export")
            .arg(&export)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "independent verifier: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Without the object store no instance is ready, though each is alive.
    drop(shared.s3);
    for s in servers.iter() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = reqwest::get(format!("{}/readyz", s.base)).await.unwrap();
            if r.status() == 503 {
                let problem: Value = r.json().await.unwrap();
                assert_eq!(
                    problem["detail"], "not answering: object store",
                    "{problem}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} still ready without S3",
                s.base
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let live = reqwest::get(format!("{}/healthz", s.base)).await.unwrap();
        assert_eq!(live.status(), 200);
    }
}
