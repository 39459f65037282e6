//! PII block alerts reach `CUSTOS_ALERT_WEBHOOK`: a real `custos serve` (and so the real
//! `WebhookSink`) posts to a real local HTTP server when a write to a `block` category is
//! refused, and the alert names org, category and entity counts but no value.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

mod support;

use support::{cli, org_with_owner, post, post_status, Server};

const CARD: &str = "4111 1111 1111 1111";
const SSN: &str = "536-90-4399";

/// One POST the webhook receiver got.
struct Delivery {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A local HTTP server that hands every POST to `/hooks/custos` to the returned channel.
async fn webhook_receiver() -> (String, mpsc::UnboundedReceiver<Delivery>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route(
            "/hooks/custos",
            axum::routing::post(
                |State(tx): State<mpsc::UnboundedSender<Delivery>>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let _ = tx.send(Delivery {
                        path: "/hooks/custos".into(),
                        headers,
                        body,
                    });
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/custos", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

/// `custos serve` with a policy that has a blocking category, alerting to `webhook`.
async fn serve(dir: &std::path::Path, webhook: &str) -> Server {
    let config = dir.join("custos.toml");
    let extra = r#"
[categories.card_notes]
retention = "30d"
access = { roles = ["owner", "admin", "member"] }
pii = { detect = ["credit_card", "us_ssn"], action = "block" }
"#;
    std::fs::write(
        &config,
        format!("{}{extra}", custos_policy::Policy::BUILTIN_TOML),
    )
    .unwrap();
    let mut command = cli(&dir.join("data"));
    command
        .arg("--config")
        .arg(&config)
        .env("CUSTOS_ALERT_WEBHOOK", webhook);
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
    let tmp = tempfile::tempdir().unwrap();
    let (webhook, mut deliveries) = webhook_receiver().await;
    let s = serve(tmp.path(), &webhook).await;

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

    let delivery = tokio::time::timeout(Duration::from_secs(15), deliveries.recv())
        .await
        .expect("the webhook got no alert within 15 s")
        .expect("receiver alive");
    assert_eq!(delivery.path, "/hooks/custos");
    assert_eq!(
        delivery.headers["content-type"].to_str().unwrap(),
        "application/json"
    );
    let raw = String::from_utf8(delivery.body.to_vec()).unwrap();
    assert_eq!(leaks(&raw), Vec::<&str>::new(), "alert leaks: {raw}");
    let alert: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        alert,
        json!({
            "type": "pii.blocked",
            "alert": {
                "org": org,
                "category": "card_notes",
                "entities": { "CREDIT_CARD": 1, "US_SSN": 1 },
            },
        })
    );

    // One refusal, one alert: nothing else arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), deliveries.recv())
            .await
            .is_err(),
        "a second alert was delivered"
    );
}
