//! The HTTP API on a real server (loopback, ephemeral port) with a real client, over a real
//! SQLite store, object store and key store.

use std::sync::Arc;

use custos_core::SystemClock;
use custos_policy::Policy;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

mod support;

use custos_store::prelude::*;
use support::{deploy, org_with_owner, ADMIN};

type Server = support::Deployment;

/// A policy with the built-in categories plus one whose PII rule blocks.
fn policy() -> Policy {
    let extra = r#"
[categories.payments_notes]
retention = "30d"
access = { roles = ["owner", "admin", "member"] }
pii = { detect = ["credit_card", "us_ssn"], action = "block" }
"#;
    let source = format!("{}{extra}", Policy::BUILTIN_TOML);
    Policy::parse(&source, "test.toml").expect("test policy is valid")
}

async fn server() -> Server {
    deploy(policy(), Arc::new(SystemClock), |c| c).await
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A request without a body, as `token`.
    async fn send(&self, method: Method, token: &str, path: &str) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let r = self.send(Method::GET, token, path).await;
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A session token proving a second factor for the member with API key `key`: enrolls
    /// its TOTP factor and opens a session with the current code.
    async fn mfa_session(&self, org: &str, key: &str) -> String {
        let (status, enrolled) = self
            .post(key, &format!("/v1/orgs/{org}/members/me/totp"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{enrolled}");
        let secret = totp_rs::Secret::try_from_base32(enrolled["secret"].as_str().unwrap());
        let totp = totp_rs::Builder::new()
            .with_digits(6)
            .with_step_duration(30)
            .with_secret(secret.unwrap())
            .build()
            .unwrap();
        let (status, session) = self
            .post(
                key,
                &format!("/v1/orgs/{org}/sessions"),
                json!({"totp": totp.generate_current().to_string()}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        session["token"].as_str().unwrap().to_string()
    }

    /// An org and a member with `roles` and `mfa`; returns (org id, API key).
    async fn org_with_member(&self, roles: &[&str], mfa: bool) -> (String, String) {
        let (org, _, key) = self.org_with_owner_and_member(roles, mfa).await;
        (org, key)
    }

    /// An org with its first owner and a member with `roles` and `mfa` made by that owner;
    /// returns (org id, the owner's API key, the member's API key).
    async fn org_with_owner_and_member(
        &self,
        roles: &[&str],
        mfa: bool,
    ) -> (String, String, String) {
        let (org, owner) = org_with_owner(self, "Acme").await;
        let (s, m) = self
            .post(
                &owner,
                &format!("/v1/orgs/{org}/members"),
                json!({"name": "app", "roles": roles, "mfa": mfa}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{m}");
        (org, owner, m["api_key"].as_str().unwrap().to_string())
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

async fn assert_problem(response: reqwest::Response, status: StatusCode, code: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16());
    assert!(!body["detail"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn bad_requests_get_problem_documents_and_change_nothing() {
    let s = server().await;
    let (org, key) = s.org_with_member(&["member", "admin"], false).await;
    let records = s.url(&format!("/v1/orgs/{org}/records"));
    let audit_before = s.store.audit_size().await.unwrap();

    // Malformed JSON.
    let r = s
        .client
        .post(&records)
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{\"category\": \"messages\", ")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST, "malformed_json").await;
    // Not JSON at all.
    let r = s
        .client
        .post(&records)
        .bearer_auth(&key)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_problem(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    // Unknown field.
    let r = s
        .client
        .post(&records)
        .bearer_auth(&key)
        .json(&json!({"category": "messages", "content": "x", "colour": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    // Unknown category.
    let r = s
        .client
        .post(&records)
        .bearer_auth(&key)
        .json(&json!({"category": "nope", "content": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST, "unknown_category").await;
    // Oversized body.
    let big = "x".repeat(3 * 1024 * 1024);
    let r = s
        .client
        .post(&records)
        .bearer_auth(&key)
        .json(&json!({"category": "messages", "content": big}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // Wrong key, and no key.
    let r = s
        .client
        .post(&records)
        .bearer_auth("cus_wrong")
        .json(&json!({"category": "messages", "content": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let r = s
        .client
        .post(&records)
        .json(&json!({"category": "messages", "content": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    // Missing MFA for a require_mfa category (security_logs: owner/admin/auditor + MFA).
    let r = s
        .client
        .post(&records)
        .bearer_auth(&key)
        .json(&json!({"category": "security_logs", "content": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "mfa_required").await;
    // PII on a blocking category.
    let r = s
        .client
        .post(&records)
        .bearer_auth(&key)
        .json(&json!({"category": "payments_notes", "content": "card 4111 1111 1111 1111"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "pii_blocked");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("CREDIT_CARD") && !detail.contains("4111"),
        "{detail}"
    );
    // Unknown route.
    let r = s.client.get(s.url("/v1/nothing")).send().await.unwrap();
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;

    // Nothing was stored...
    let (status, page) = s
        .get(&key, &format!("/v1/orgs/{org}/records?limit=1000"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"], json!([]));
    // ...and the audit log holds only refusals: the MFA denial and the PII block.
    let (_, events) = s
        .get(ADMIN, &format!("/v1/audit/events?from={audit_before}"))
        .await;
    let actions: Vec<(&str, &str)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"]["action"].as_str().unwrap(),
                e["event"]["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![("record.create", "denied"), ("pii.blocked", "denied")]
    );
}

#[tokio::test]
async fn records_round_trip_with_pii_redacted_on_the_way_in() {
    let s = server().await;
    let (org, key) = s.org_with_member(&["member"], false).await;
    let (status, created) = s
        .post(
            &key,
            &format!("/v1/orgs/{org}/records"),
            json!({
                "category": "messages",
                "subject": "alice",
                "content": {"text": "reach me at alice@example.com or 4111-1111-1111-1111"},
                "metadata": {"channel": "email"}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["pii"],
        json!({"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1})
    );
    let id = created["id"].as_str().unwrap();
    let (status, record) = s.get(&key, &format!("/v1/orgs/{org}/records/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let text = record["content"]["text"].as_str().unwrap();
    assert!(
        !text.contains("alice@example.com") && !text.contains("4111"),
        "{text}"
    );
    assert!(text.contains("[EMAIL_ADDRESS_REDACTED]"), "{text}");
    assert_eq!(record["subject"], "alice");
    assert_eq!(record["metadata"], json!({"channel": "email"}));
    // Soft delete and restore through HTTP.
    let r = s
        .send(
            Method::DELETE,
            &key,
            &format!("/v1/orgs/{org}/records/{id}"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        s.get(&key, &format!("/v1/orgs/{org}/records/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    let r = s
        .send(
            Method::POST,
            &key,
            &format!("/v1/orgs/{org}/records/{id}/restore"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        s.get(&key, &format!("/v1/orgs/{org}/records/{id}")).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn files_stream_up_and_down_intact() {
    let s = server().await;
    let (org, key) = s.org_with_member(&["member"], false).await;
    // 5 MiB + a bit: several sealed chunks and a short last one.
    let data: Vec<u8> = (0..(5 * 1024 * 1024 + 12345u32))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let r = s
        .client
        .post(s.url(&format!(
            "/v1/orgs/{org}/files?category=files&name=blob.bin&subject=bob"
        )))
        .bearer_auth(&key)
        .header("content-type", "application/x-test")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let r = s
        .send(
            Method::GET,
            &key,
            &format!("/v1/orgs/{org}/records/{id}/file"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/x-test");
    assert_eq!(
        r.headers()["content-length"],
        data.len().to_string().as_str()
    );
    let body = r.bytes().await.unwrap();
    assert!(body.as_ref() == data.as_slice(), "downloaded bytes differ");
    let (_, view) = s.get(&key, &format!("/v1/orgs/{org}/records/{id}")).await;
    assert_eq!(view["file_name"], "blob.bin");
    assert_eq!(view["file_size"], data.len());
    // Another org's member cannot fetch it.
    let (_, other) = s.org_with_member(&["member"], false).await;
    let r = s
        .send(
            Method::GET,
            &other,
            &format!("/v1/orgs/{org}/records/{id}/file"),
        )
        .await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn text_uploads_are_scanned_by_name_and_body() {
    let s = server().await;
    let (org, key) = s.org_with_member(&["member"], false).await;
    let upload = |category: &str, name: &str, body: String| {
        s.client
            .post(s.url(&format!(
                "/v1/orgs/{org}/files?category={category}&name={name}"
            )))
            .bearer_auth(&key)
            .header("content-type", "text/csv")
            .body(body)
            .send()
    };
    // A redacting category: the body and the name are stored redacted.
    let body = "who,mail\nana,ana@example.com\n".repeat(5000);
    let r = upload("files", "ana%40example.com%20list.csv", body.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["pii"]["EMAIL_ADDRESS"], 5001);
    let id = created["id"].as_str().unwrap();
    let r = s
        .send(
            Method::GET,
            &key,
            &format!("/v1/orgs/{org}/records/{id}/file"),
        )
        .await;
    let expected = body.replace("ana@example.com", "[EMAIL_ADDRESS_REDACTED]");
    assert_eq!(
        r.headers()["content-length"],
        expected.len().to_string().as_str()
    );
    assert_eq!(r.text().await.unwrap(), expected);
    let (_, view) = s.get(&key, &format!("/v1/orgs/{org}/records/{id}")).await;
    assert_eq!(view["file_name"], "[EMAIL_ADDRESS_REDACTED] list.csv");

    // A blocking category refuses a body holding an SSN, naming only its position.
    let r = upload(
        "payments_notes",
        "a.csv",
        "id,ssn\n1,SSN 536-22-8726\n".to_string(),
    )
    .await
    .unwrap();
    let status = r.status();
    let problem: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "pii_blocked");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("US_SSN at body[13..24]"), "{detail}");
    assert!(!detail.contains("536-22"), "{detail}");
}

#[tokio::test]
async fn scan_reports_character_offsets() {
    let s = server().await;
    let (_, key) = s.org_with_member(&["member"], false).await;
    let text = "Grüße — mail juergen@example.com";
    let (status, body) = s.post(&key, "/v1/scan", json!({"text": text})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let f = &body["findings"][0];
    assert_eq!(f["entity"], "EMAIL_ADDRESS");
    let start = f["start"].as_u64().unwrap() as usize;
    let end = f["end"].as_u64().unwrap() as usize;
    let found: String = text.chars().skip(start).take(end - start).collect();
    assert_eq!(found, "juergen@example.com");
}

#[tokio::test]
async fn readyz_is_200_only_while_every_service_answers() {
    let s = server().await;
    let r = s.client.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "ready", "database": "ok", "objects": "ok", "keys": "ok"})
    );
    // The object store's root replaced by a file: no longer answering.
    let objects = s.dir.path().join("data/objects");
    std::fs::remove_dir_all(&objects).ok();
    std::fs::write(&objects, b"not a directory").unwrap();
    let r = s.client.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "not_ready", "{problem}");
    assert_eq!(
        problem["detail"], "not answering: object store",
        "{problem}"
    );
    // Liveness is another question: the process and its database are fine.
    let r = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn service_endpoints_and_openapi() {
    let s = server().await;
    let r = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "ok", "store": "sqlite"})
    );
    let doc: Value = s
        .client
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/orgs",
        "/v1/orgs/{org}/records",
        "/v1/orgs/{org}/records/{id}",
        "/v1/orgs/{org}/files",
        "/v1/scan",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("custos_http_requests_total{class=\"2xx\"}"),
        "{metrics}"
    );
    // Request ids are Custos's own; the caller's is echoed apart.
    let r = s
        .client
        .get(s.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "abc-123");
    assert!(uuid_like(r.headers()["x-request-id"].to_str().unwrap()));
    assert_eq!(r.headers()["x-client-request-id"], "abc-123");
}

#[tokio::test]
async fn hard_delete_delete_all_deletion_log_and_overdue_over_http() {
    let s = server().await;
    // Hard deletes are for owners and admins (the full matrix is in tests/authz.rs).
    let (org, owner, plain) = s.org_with_owner_and_member(&["member"], false).await;
    let (status, manager) = s
        .post(
            &owner,
            &format!("/v1/orgs/{org}/members"),
            json!({"name": "ops", "roles": ["admin"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{manager}");
    let key = manager["api_key"].as_str().unwrap().to_string();
    let (_, created) = s
        .post(
            &key,
            &format!("/v1/orgs/{org}/records"),
            json!({"category": "messages", "content": {"text": "bye"}}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let r = s
        .send(
            Method::DELETE,
            &key,
            &format!("/v1/orgs/{org}/records/{id}?hard=true"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        s.get(&key, &format!("/v1/orgs/{org}/records/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    let r = s
        .send(
            Method::POST,
            &key,
            &format!("/v1/orgs/{org}/records/{id}/restore"),
        )
        .await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    // A plain member may not press "delete all", nor read the deletion log or the SLA report.
    let r = s
        .send(
            Method::POST,
            &plain,
            &format!("/v1/orgs/{org}/categories/uploads/delete-all"),
        )
        .await;
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(
        s.get(&plain, &format!("/v1/orgs/{org}/deletion-log"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // An admin member may; nothing is purged before a sweep and nothing is overdue yet.
    let (status, n) = s
        .post(
            &key,
            &format!("/v1/orgs/{org}/categories/messages/delete-all"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{n}");
    assert_eq!(n["records"], 0, "the hard-deleted record is already marked");
    let (status, log) = s.get(&key, &format!("/v1/orgs/{org}/deletion-log")).await;
    assert_eq!((status, log), (StatusCode::OK, json!([])));
    let (status, overdue) = s
        .get(&key, &format!("/v1/orgs/{org}/lifecycle/overdue"))
        .await;
    assert_eq!((status, overdue), (StatusCode::OK, json!([])));
    let r = s
        .send(
            Method::POST,
            &key,
            &format!("/v1/orgs/{org}/categories/nope/delete-all"),
        )
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST, "unknown_category").await;
}

#[tokio::test]
async fn audit_events_filter_by_action_target_and_time() {
    let s = server().await;
    let (org, key) = s.org_with_member(&["member"], false).await;
    let (_, created) = s
        .post(
            &key,
            &format!("/v1/orgs/{org}/records"),
            json!({"category": "messages", "content": {"text": "hi"}}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let (status, page) = s
        .get(
            ADMIN,
            &format!("/v1/audit/events?org={org}&action=record.create&target=record:{id}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["event"]["action"], "record.create");
    let (_, later) = s
        .get(ADMIN, "/v1/audit/events?since=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(later["items"], json!([]));
    let r = s
        .send(Method::GET, ADMIN, "/v1/audit/events?until=yesterday")
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST, "invalid_input").await;
}

/// `POST …/archive-restore` is for owners and admins and only for archived records;
/// `DELETE /v1/orgs/{org}` (an owner) revokes every key at once and leaves the org readable
/// only as status and evidence.
#[tokio::test]
async fn archive_restore_and_org_termination_over_http() {
    let s = server().await;
    let (org, first_owner, member) = s.org_with_owner_and_member(&["member"], false).await;
    let (status, owner) = s
        .post(
            &first_owner,
            &format!("/v1/orgs/{org}/members"),
            json!({"name": "boss", "roles": ["owner"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{owner}");
    let owner = owner["api_key"].as_str().unwrap().to_string();
    let (_, created) = s
        .post(
            &member,
            &format!("/v1/orgs/{org}/records"),
            json!({"category": "messages", "content": {"text": "hot"}}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let restore = format!("/v1/orgs/{org}/records/{id}/archive-restore");
    let r = s.send(Method::POST, &member, &restore).await;
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = s.send(Method::POST, &owner, &restore).await;
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;

    // A member may not terminate; the owner may, once.
    let r = s
        .send(Method::DELETE, &member, &format!("/v1/orgs/{org}"))
        .await;
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    // Termination reaches every category, some of which need a second factor: the owner's
    // API key alone is refused, a TOTP session is not.
    let r = s
        .send(Method::DELETE, &owner, &format!("/v1/orgs/{org}"))
        .await;
    assert_problem(r, StatusCode::FORBIDDEN, "mfa_required").await;
    let session = s.mfa_session(&org, &owner).await;
    let r = s
        .send(Method::DELETE, &session, &format!("/v1/orgs/{org}"))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["status"], "terminating", "{view}");
    assert!(view["terminating_since"].is_string(), "{view}");

    // Every member key stops working at once.
    for key in [&member, &owner] {
        let r = s
            .send(Method::GET, key, &format!("/v1/orgs/{org}/records/{id}"))
            .await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    // The operator sees status and evidence, and may not write (without a grant it never
    // may; under one, termination refuses it: `support_access.rs`).
    let (status, view) = s.get(ADMIN, &format!("/v1/orgs/{org}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["status"], "terminating");
    assert_eq!(
        s.get(ADMIN, &format!("/v1/orgs/{org}/deletion-log"))
            .await
            .0,
        StatusCode::OK
    );
    let r = s
        .client
        .post(s.url(&format!("/v1/orgs/{org}/records")))
        .bearer_auth(ADMIN)
        .json(&json!({"category": "messages", "content": {"text": "late"}}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "grant_required").await;
    let r = s
        .send(Method::DELETE, ADMIN, &format!("/v1/orgs/{org}"))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED, "asking again is harmless");
}

#[tokio::test]
async fn a_store_failure_is_a_500_that_shows_no_internal_detail() {
    let s = server().await;
    // Every audit append fails with a message naming internals; creating an org appends one.
    s.store
        .execute_raw_for_tests(
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log
             BEGIN SELECT RAISE(ABORT, 'secret-internal-detail in audit_log'); END;",
        )
        .await
        .unwrap();
    let (status, body) = s.post(ADMIN, "/v1/orgs", json!({"name": "Acme"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let text = body.to_string();
    for internal in ["secret-internal-detail", "audit_log", "database", "SQL"] {
        assert!(!text.contains(internal), "{internal:?} leaked: {text}");
    }
    assert_eq!(body["code"], "internal", "{body}");
    assert_eq!(body["detail"], "internal error", "{body}");
}
