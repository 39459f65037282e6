//! PII block alerts reach a policy webhook: a real `custos serve` evaluates the policy's alert
//! rules over its audit log and delivers through the outbox to a real receiver that checks the
//! Standard Webhooks signature with the reference library (tools/notify-stand-in). The alert
//! names the rule, org and category, never a value.

#[path = "../../../tools/notify-stand-in/stand_in.rs"]
mod stand_in;

use std::time::Duration;

use serde_json::{json, Value};

mod support;

use support::{cli, org_with_owner, post, post_status, Server};

const CARD: &str = "4111 1111 1111 1111";
const SSN: &str = "536-90-4399";
/// A Standard Webhooks secret (24 bytes, base64).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// `custos serve` with a policy that has a blocking category and a rule delivering its
/// refusals to the webhook at `url`.
async fn serve(dir: &std::path::Path, url: &str) -> Server {
    let config = dir.join("custos.toml");
    let extra = format!(
        r#"
[categories.card_notes]
retention = "30d"
access = {{ roles = ["owner", "admin", "member"] }}
pii = {{ detect = ["credit_card", "us_ssn"], action = "block" }}

[webhooks.ops]
url = "{url}"
secret_env = "OPS_WEBHOOK_SECRET"

[[alerts]]
name = "pii-blocked-ops"
match = {{ action = ["pii.blocked"] }}
threshold = 1
window = "1h"
per = "org"
severity = "medium"
deliver = ["ops"]
"#
    );
    std::fs::write(
        &config,
        format!("{}{extra}", custos_policy::Policy::BUILTIN_TOML),
    )
    .unwrap();
    let mut command = cli(&dir.join("data"));
    command
        .arg("--config")
        .arg(&config)
        .env("OPS_WEBHOOK_SECRET", SECRET);
    support::serve(command, &[]).await
}

/// Every form a value could leak in: as written, and digits only.
fn leaks(text: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    for (name, value) in [("card", CARD), ("ssn", SSN), ("subject", "alice-subject")] {
        let digits: String = value.chars().filter(char::is_ascii_digit).collect();
        if text.contains(value) || (!digits.is_empty() && text.contains(&digits)) {
            found.push(name);
        }
    }
    if text.contains("1111 1111") || text.contains("90-4399") {
        found.push("value fragment");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_write_posts_a_value_free_alert_to_the_webhook() {
    let test = "blocked_write_posts_a_value_free_alert_to_the_webhook";
    let Some(receiver) = stand_in::Receiver::webhook(test, SECRET, 0).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = serve(tmp.path(), &receiver.url()).await;

    let (org, owner) = org_with_owner(&s, "Acme").await;
    let member = post(
        &s,
        &owner,
        &format!("/v1/orgs/{org}/members"),
        json!({ "name": "app", "roles": ["member"] }),
    )
    .await;
    let key = member["api_key"].as_str().unwrap().to_string();

    // PII in a category that redacts is not an alert.
    let (status, body) = post_status(
        &s,
        &key,
        &format!("/v1/orgs/{org}/records"),
        json!({ "category": "messages", "content": { "text": format!("card {CARD}") } }),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // PII in the blocking category is refused, and alerted.
    let (status, body) = post_status(
        &s,
        &key,
        &format!("/v1/orgs/{org}/records"),
        json!({
            "category": "card_notes",
            "subject": "alice-subject",
            "content": { "text": format!("card {CARD}, ssn {SSN}") },
        }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(leaks(&body), Vec::<&str>::new(), "refusal leaks: {body}");

    let got = receiver
        .wait_for(Duration::from_secs(15), |d| !d.is_empty())
        .await;
    assert_eq!(got.len(), 1, "one refusal, one delivery: {got:?}");
    let delivery = &got[0];
    assert_eq!(
        delivery["verified"], true,
        "the signature checks: {delivery}"
    );
    assert!(delivery["id"].as_str().unwrap().starts_with("msg_"));
    let raw = delivery["body"].as_str().unwrap();
    assert_eq!(leaks(raw), Vec::<&str>::new(), "alert leaks: {raw}");
    let alert: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(alert["type"], "alert.fired");
    let data = &alert["data"];
    assert_eq!(
        (
            &data["rule"],
            &data["org"],
            &data["action"],
            &data["category"],
            &data["count"]
        ),
        (
            &json!("pii-blocked-ops"),
            &json!(org),
            &json!("pii.blocked"),
            &json!("card_notes"),
            &json!(1)
        ),
        "{alert}"
    );

    // Nothing else arrives: the other write was not refused, and the rule's window holds.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 1);
}

/// An org names its own webhook in its settings (the secret write-only); the built-in rule
/// `denied-burst` (5 refusals of one actor in a minute, delivered to `org`) reaches it, signed
/// with the org's secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_denied_burst_reaches_the_orgs_own_webhook() {
    let test = "the_built_in_denied_burst_reaches_the_orgs_own_webhook";
    let org_secret = "whsec_c2VjcmV0LW9mLXRoZS1vcmctMDEyMzQ1Njc4OQ==";
    let Some(receiver) = stand_in::Receiver::webhook(test, org_secret, 0).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("custos.toml");
    // Org webhooks are run-time URLs: loopback only where the policy allows it.
    std::fs::write(
        &config,
        format!(
            "{}\n[network]\nallow = [\"127.0.0.0/8\"]\n",
            custos_policy::Policy::BUILTIN_TOML
        ),
    )
    .unwrap();
    let mut command = cli(&tmp.path().join("data"));
    command.arg("--config").arg(&config);
    let s = support::serve(command, &[]).await;
    let (org, owner) = org_with_owner(&s, "Acme").await;

    let (status, settings) = support::send(
        &s,
        reqwest::Method::PATCH,
        &owner,
        &format!("/v1/orgs/{org}/settings"),
        Some(json!({ "channels": { "webhooks": [{ "url": receiver.url(), "secret": org_secret }] } })),
    )
    .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(
        settings["channels"],
        json!({
            "webhooks": [{ "url": receiver.url() }],
            "emails": [],
            "email_subjects": false,
            "remind_before": "3d",
        }),
        "the secret is write-only"
    );
    assert!(!settings.to_string().contains("whsec_"), "{settings}");

    let member = post(
        &s,
        &owner,
        &format!("/v1/orgs/{org}/members"),
        json!({ "name": "app", "roles": ["member"] }),
    )
    .await;
    let key = member["api_key"].as_str().unwrap();
    for _ in 0..5 {
        let (status, _) = support::send(
            &s,
            reqwest::Method::GET,
            key,
            &format!("/v1/orgs/{org}/members"),
            None,
        )
        .await;
        assert_eq!(status, 403);
    }
    let of_type = |got: &[Value], t: &str| -> Vec<Value> {
        got.iter()
            .filter(|d| {
                serde_json::from_str::<Value>(d["body"].as_str().unwrap()).unwrap()["type"] == t
            })
            .cloned()
            .collect()
    };
    let got = receiver
        .wait_for(Duration::from_secs(15), |d| {
            !of_type(d, "alert.fired").is_empty() && !of_type(d, "security.notice").is_empty()
        })
        .await;
    assert!(
        got.iter().all(|d| d["verified"] == true),
        "signed with the org's secret: {got:?}"
    );
    // Naming the channel was itself a security settings change the org's admins are told of.
    // (The owner's creation may be told too: the evaluator reads the channels when it gets to
    // an event, and may get to both at once.)
    let notices: Vec<Value> = of_type(&got, "security.notice")
        .iter()
        .map(|d| serde_json::from_str(d["body"].as_str().unwrap()).unwrap())
        .filter(|n: &Value| n["data"]["kind"] == "security_settings_changed")
        .collect();
    assert_eq!(notices.len(), 1, "{got:?}");
    let notice = &notices[0];
    assert_eq!(notice["data"]["details"]["settings"], json!(["channels"]));
    assert!(!notice.to_string().contains("whsec_"), "{notice}");
    let alerts = of_type(&got, "alert.fired");
    assert_eq!(alerts.len(), 1, "{got:?}");
    let alert: Value = serde_json::from_str(alerts[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (
            &alert["data"]["rule"],
            &alert["data"]["org"],
            &alert["data"]["count"]
        ),
        (&json!("denied-burst"), &json!(org), &json!(5))
    );
}
