//! Alert rules across instances, delivered reliably: two `custos serve` processes share one
//! PostgreSQL database; a member refused 6 times within a minute, 3 times through each, fires
//! the rule `5 denied in 1m` exactly once. The alert reaches a real SMTP server (aiosmtpd) and
//! a webhook receiver that checks each signature with the Standard Webhooks reference library
//! and is down (503) for its first 3 attempts. Both instances are killed after the first
//! attempt; a third one, started afterwards, continues from the durable outbox, and the
//! receiver gets the alert once, under one `webhook-id`.
//!
//! Needs PostgreSQL and Python with PyPI on first use; skipped with a loud message when either
//! is missing, fatal under `CI=true`.

#[path = "../../../tools/notify-stand-in/stand_in.rs"]
mod stand_in;
mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use stand_in::Receiver;
use support::{org_with_owner, post, send, PgDb, Server, ADMIN};

/// Base64 of 32 bytes: the root every instance shares.
const ROOT: &str = "9mvW6fN0m8Qm3Zb9Jx3h2b1Vn0pQ5sT7uY8wE4rA6cI=";
/// A Standard Webhooks secret (24 bytes, base64).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Shared {
    data: PgDb,
    keys: PgDb,
    dir: tempfile::TempDir,
    policy: std::path::PathBuf,
}

impl Shared {
    fn command(&self, name: &str) -> Command {
        let data = self.dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        let mut c = support::cli(&data);
        c.arg("--config")
            .arg(&self.policy)
            .env("CUSTOS_DATABASE", &self.data.url)
            .env(
                "CUSTOS_OBJECTS",
                format!("file:{}", self.dir.path().join("objects").display()),
            )
            .env("CUSTOS_KEYS", &self.keys.url)
            .env("CUSTOS_ROOT_KEY", ROOT)
            .env("OPS_WEBHOOK_SECRET", SECRET);
        c
    }

    async fn serve(&self, name: &str) -> Server {
        support::serve(self.command(name), &[]).await
    }
}

fn policy(webhook: &str, smtp_port: u16) -> String {
    format!(
        r#"{builtin}
[webhooks.ops]
url = "{webhook}"
secret_env = "OPS_WEBHOOK_SECRET"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
from = "custos@example.com"
starttls = false

[[alerts]]
name = "refusals"
match = {{ outcome = "denied", actor_kind = ["member"] }}
threshold = 5
window = "1m"
per = "actor"
severity = "high"
deliver = ["ops", "email:security@example.com"]
"#,
        builtin = custos_policy::Policy::BUILTIN_TOML
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_fires_once_across_instances_and_reaches_a_receiver_that_was_down() {
    let test = "a_rule_fires_once_across_instances_and_reaches_a_receiver_that_was_down";
    let (Some(data), Some(keys)) = (PgDb::create("alerts"), PgDb::create("alerts_keys")) else {
        return;
    };
    let Some(hook) = Receiver::webhook(test, SECRET, 3).await else {
        return;
    };
    let Some(smtp) = Receiver::smtp(test).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let policy_path = dir.path().join("custos.toml");
    std::fs::write(&policy_path, policy(&hook.url(), smtp.port)).unwrap();
    let shared = Shared {
        data,
        keys,
        dir,
        policy: policy_path,
    };
    let a = shared.serve("a").await;
    let b = shared.serve("b").await;

    let (org, owner) = org_with_owner(&a, "Acme").await;
    let member = post(
        &a,
        &owner,
        &format!("/v1/orgs/{org}/members"),
        json!({ "name": "Mallory", "roles": ["member"] }),
    )
    .await;
    let (member_id, key) = (
        member["id"].as_str().unwrap().to_string(),
        member["api_key"].as_str().unwrap().to_string(),
    );
    // Six refusals within a minute, alternating between the instances.
    for i in 0..6 {
        let s = if i % 2 == 0 { &a } else { &b };
        let (status, body) = send(
            s,
            reqwest::Method::GET,
            &key,
            &format!("/v1/orgs/{org}/members"),
            None,
        )
        .await;
        assert_eq!(status, 403, "{body}");
    }

    // The receiver answers 503 to the first attempt; then both instances die.
    let first = hook
        .wait_for(Duration::from_secs(20), |d| !d.is_empty())
        .await;
    assert_eq!(first.len(), 1, "the first attempt arrived: {first:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(a);
    drop(b);
    let c = shared.serve("c").await;

    // A third instance continues: attempts 2 and 3 fail, the 4th is accepted.
    let attempts = hook
        .wait_for(Duration::from_secs(90), |d| {
            d.iter().any(|a| a["status"] == 204)
        })
        .await;
    assert!(
        attempts.iter().any(|a| a["status"] == 204),
        "delivered after the receiver came back: {attempts:?}"
    );
    let statuses: Vec<i64> = attempts
        .iter()
        .map(|a| a["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [503, 503, 503, 204], "{attempts:?}");
    assert!(
        attempts.iter().all(|a| a["verified"] == true),
        "{attempts:?}"
    );
    let ids: BTreeSet<&str> = attempts.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "one message, one webhook-id: {attempts:?}");

    let alert: Value = serde_json::from_str(attempts[3]["body"].as_str().unwrap()).unwrap();
    assert_eq!(alert["type"], "alert.fired");
    let data = &alert["data"];
    assert_eq!(data["rule"], "refusals");
    assert_eq!(data["org"], json!(org));
    assert_eq!(data["actor"], json!(format!("member:{member_id}")));
    assert_eq!((&data["count"], &data["window"]), (&json!(5), &json!("1m")));
    assert!(!attempts[3]["body"].as_str().unwrap().contains("Mallory"));

    let mail = smtp
        .wait_for(Duration::from_secs(20), |m| !m.is_empty())
        .await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0]["to"], json!(["security@example.com"]));
    assert_eq!(mail[0]["subject"], "[Custos] high alert: refusals");
    assert!(
        mail[0]["body"].as_str().unwrap().contains("count: 5"),
        "{mail:?}"
    );

    // Nothing more arrives, and the log holds the one firing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hook.received().len(), 4);
    assert_eq!(smtp.received().len(), 1);
    let (status, page) = send(
        &c,
        reqwest::Method::GET,
        ADMIN,
        "/v1/audit/events?action=alert.fire&limit=100",
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let fired: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["rule"] == "refusals")
        .collect();
    assert_eq!(fired.len(), 1, "{page}");
    assert_eq!(fired[0]["event"]["org"], json!(org));
}
