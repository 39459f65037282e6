//! Hostile inputs over real HTTP: each answer is a 4xx problem document (never a 5xx, never
//! plain text), names the input, echoes no more than a short scrubbed excerpt of it, and
//! changes nothing.

use std::sync::Arc;

use custos_core::{SweepOptions, SystemClock};
use custos_policy::Policy;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

mod support;

use custos_store::prelude::*;
use support::{deploy, org_with_owner, ADMIN};

type Server = support::Deployment;

async fn server() -> Server {
    let policy = Policy::parse(Policy::BUILTIN_TOML, "builtin.toml").unwrap();
    deploy(policy, Arc::new(SystemClock), |c| c).await
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, method: Method, token: &str, path: &str) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn post_json(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn json(&self, token: &str, path: &str) -> Value {
        let r = self.send(Method::GET, token, path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    /// An org (with its first owner) and a member with `roles`, made by that owner; returns
    /// (org id, the member's API key).
    async fn org_with_member(&self, roles: &[&str]) -> (String, String) {
        let (org, owner) = org_with_owner(self, "Acme").await;
        let r = self
            .post_json(
                &owner,
                &format!("/v1/orgs/{org}/members"),
                &json!({"name": "app", "roles": roles}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let key = r.json::<Value>().await.unwrap()["api_key"]
            .as_str()
            .unwrap()
            .to_string();
        (org, key)
    }

    async fn record_count(&self, key: &str, org: &str) -> usize {
        let page = self
            .json(key, &format!("/v1/orgs/{org}/records?limit=1000"))
            .await;
        page["items"].as_array().unwrap().len()
    }
}

/// Asserts a problem document with `status` and `code`; returns it.
async fn problem(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "{:?}", response.url().path());
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert_eq!(body["type"], format!("urn:custos:problem:{code}"));
    assert_eq!(body["instance"], format!("urn:uuid:{id}"), "{body}");
    let title = body["title"].as_str().unwrap();
    assert!(!title.is_empty());
    assert!(!body["detail"].as_str().unwrap().is_empty(), "{body}");
    body
}

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap()
}

#[tokio::test]
async fn a_hold_on_a_terminated_org_is_refused_and_changes_nothing() {
    let s = server().await;
    let (org, key) = s.org_with_member(&["owner"]).await;
    let r = s
        .post_json(
            &key,
            &format!("/v1/orgs/{org}/records"),
            &json!({"category": "messages", "subject": "alice", "content": "hi"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s
        .send(Method::DELETE, ADMIN, &format!("/v1/orgs/{org}"))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    s.custos
        .sweep(&SweepOptions::default(), &mut |_| {})
        .await
        .unwrap();
    let view = s.json(ADMIN, &format!("/v1/orgs/{org}")).await;
    assert_eq!(view["status"], "terminated", "{view}");
    let holds = format!("/v1/orgs/{org}/holds");
    let before = s.json(ADMIN, &holds).await;
    for body in [
        json!({"reason": "litigation 42"}),
        json!({"reason": "litigation 42", "subject": "alice"}),
        json!({"reason": "litigation 42", "category": "messages"}),
    ] {
        let r = s.post_json(ADMIN, &holds, &body).await;
        problem(r, StatusCode::GONE, "org_terminated").await;
    }
    assert_eq!(s.json(ADMIN, &holds).await, before);
}

#[tokio::test]
async fn framework_rejections_are_problem_documents() {
    let s = server().await;
    let (org, key) = s.org_with_member(&["owner"]).await;
    // A path integer that is not one.
    let r = s.send(Method::GET, ADMIN, "/v1/audit/proof/abc").await;
    let body = problem(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    assert!(detail(&body).contains("path"), "{body}");
    let r = s
        .send(
            Method::GET,
            ADMIN,
            "/v1/audit/proof/99999999999999999999999",
        )
        .await;
    problem(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    // A query integer that is not one.
    let r = s
        .send(
            Method::GET,
            &key,
            &format!("/v1/orgs/{org}/records?limit=-1"),
        )
        .await;
    problem(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    // A method the route does not have keeps its `Allow` header.
    let r = s.send(Method::PUT, ADMIN, "/v1/orgs").await;
    assert!(r.headers().contains_key("allow"));
    let body = problem(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    assert_ne!(body["title"], "Method Not Allowed", "a title per code");
    let r = s.send(Method::GET, ADMIN, "/v1/nowhere").await;
    problem(r, StatusCode::NOT_FOUND, "not_found").await;
    // A JSON body with the wrong media type, and one that is not JSON.
    let r = s
        .client
        .post(s.url("/v1/orgs"))
        .bearer_auth(ADMIN)
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let r = s
        .client
        .post(s.url("/v1/orgs"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST, "malformed_json").await;
    // No credentials.
    let r = s.client.get(s.url("/v1/orgs")).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    problem(r, StatusCode::UNAUTHORIZED, "unauthenticated").await;
}

#[tokio::test]
async fn cursors_and_limits_are_validated_on_every_listing() {
    let s = server().await;
    let (org, key) = s.org_with_member(&["owner"]).await;
    let r = s
        .post_json(
            &key,
            &format!("/v1/orgs/{org}/records"),
            &json!({"category": "messages", "content": "hi"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    for listing in ["records", "deletion-log"] {
        for cursor in [
            "nope",
            "0",
            "../../etc",
            "0190F3C8-0000-7000-8000-000000000000",
        ] {
            let r = s
                .send(
                    Method::GET,
                    &key,
                    &format!("/v1/orgs/{org}/{listing}?cursor={cursor}"),
                )
                .await;
            let body = problem(r, StatusCode::BAD_REQUEST, "invalid_input").await;
            assert!(detail(&body).contains("cursor"), "{body}");
        }
        for limit in ["0", "1001", "4294967296", "x"] {
            let r = s
                .send(
                    Method::GET,
                    &key,
                    &format!("/v1/orgs/{org}/{listing}?limit={limit}"),
                )
                .await;
            let body = problem(r, StatusCode::BAD_REQUEST, "invalid_input").await;
            assert!(detail(&body).contains("limit"), "{body}");
        }
    }
    for limit in ["0", "1001"] {
        let r = s
            .send(
                Method::GET,
                ADMIN,
                &format!("/v1/audit/events?limit={limit}"),
            )
            .await;
        let body = problem(r, StatusCode::BAD_REQUEST, "invalid_input").await;
        assert!(detail(&body).contains("limit"), "{body}");
    }
    // A cursor the listing produced still works.
    let page = s
        .json(&key, &format!("/v1/orgs/{org}/records?limit=1"))
        .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = s
        .json(&key, &format!("/v1/orgs/{org}/records?cursor={cursor}"))
        .await;
    assert_eq!(next["items"], json!([]));
}

#[tokio::test]
async fn far_future_times_are_accepted() {
    let s = server().await;
    let page = s
        .json(
            ADMIN,
            "/v1/audit/events?since=2000-01-01T00:00:00Z&until=9999-12-31T23:59:59Z",
        )
        .await;
    assert!(page["items"].is_array());
    let page = s
        .json(ADMIN, "/v1/audit/events?since=9999-12-31T23:59:59Z")
        .await;
    assert_eq!(page["items"], json!([]));
    let r = s
        .send(Method::GET, ADMIN, "/v1/audit/events?until=9999-12-31")
        .await;
    problem(r, StatusCode::BAD_REQUEST, "invalid_input").await;
}

#[tokio::test]
async fn numbers_are_kept_exact_or_refused_by_name() {
    let s = server().await;
    let (org, key) = s.org_with_member(&["member"]).await;
    let records = format!("/v1/orgs/{org}/records");
    // 64-bit integers come back exactly.
    let r = s
        .client
        .post(s.url(&records))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(r#"{"category":"messages","content":{"n":9007199254740993,"m":18446744073709551615,"i":-9223372036854775808}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let text = s
        .send(Method::GET, &key, &format!("{records}/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("9007199254740993"), "{text}");
    assert!(text.contains("18446744073709551615"), "{text}");
    assert!(text.contains("-9223372036854775808"), "{text}");
    // Beyond 64 bits: refused, naming the field; nothing stored.
    for (body, field) in [
        (
            r#"{"category":"messages","content":{"a":{"b":[1,123456789012345678901234567890]}}}"#,
            "content.a.b[1]",
        ),
        (
            r#"{"category":"messages","content":"x","metadata":{"big":1e300}}"#,
            "metadata.big",
        ),
    ] {
        let r = s
            .client
            .post(s.url(&records))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let p = problem(r, StatusCode::BAD_REQUEST, "invalid_input").await;
        assert!(detail(&p).contains(field), "{p}");
    }
    assert_eq!(s.record_count(&key, &org).await, 1);
}

#[tokio::test]
async fn file_names_are_bounded_and_free_of_control_characters() {
    let s = server().await;
    let (org, key) = s.org_with_member(&["member"]).await;
    let long = "a".repeat(256);
    for name in ["a%0D%0Ab", "a%00b", "a%09b", long.as_str()] {
        let r = s
            .client
            .post(s.url(&format!("/v1/orgs/{org}/files?category=files&name={name}")))
            .bearer_auth(&key)
            .body("data")
            .send()
            .await
            .unwrap();
        let p = problem(r, StatusCode::BAD_REQUEST, "invalid_input").await;
        assert!(detail(&p).contains("name"), "{p}");
    }
    // The media type is checked too: it is served back in a header.
    for ctype in ["nonsense", "text/", "a/b/c", "text/caf\u{e9}"] {
        let r = s
            .client
            .post(s.url(&format!("/v1/orgs/{org}/files?category=files&name=ok.txt")))
            .bearer_auth(&key)
            .header("content-type", ctype)
            .body("data")
            .send()
            .await
            .unwrap();
        let p = problem(r, StatusCode::BAD_REQUEST, "invalid_input").await;
        assert!(detail(&p).contains("content-type"), "{p}");
    }
    assert_eq!(s.record_count(&key, &org).await, 0);
}

#[tokio::test]
async fn downloads_are_attachments_and_never_active_content() {
    let s = server().await;
    let (org, key) = s.org_with_member(&["member"]).await;
    let mut ids = Vec::new();
    for (ctype, name) in [
        ("text/html; charset=utf-8", "x\u{e9}\"; evil=1.html"),
        ("image/svg+xml", "pic.svg"),
        ("application/javascript", "a.js"),
        ("application/pdf", "report.pdf"),
    ] {
        let r = s
            .client
            .post(s.url(&format!("/v1/orgs/{org}/files?category=files")))
            .query(&[("name", name)])
            .bearer_auth(&key)
            .header("content-type", ctype)
            .body("<script>alert(1)</script>")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut types = Vec::new();
    for id in &ids {
        let r = s
            .send(
                Method::GET,
                &key,
                &format!("/v1/orgs/{org}/records/{id}/file"),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        let disposition = h["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment; filename=\""),
            "{disposition}"
        );
        assert!(disposition.contains("filename*=UTF-8''"), "{disposition}");
        types.push(h["content-type"].to_str().unwrap().to_string());
    }
    assert_eq!(
        types,
        [
            "application/octet-stream",
            "application/octet-stream",
            "application/octet-stream",
            "application/pdf"
        ]
    );
    let r = s
        .send(
            Method::GET,
            &key,
            &format!("/v1/orgs/{org}/records/{}/file", ids[0]),
        )
        .await;
    let disposition = r.headers()["content-disposition"].to_str().unwrap();
    assert_eq!(
        disposition,
        "attachment; filename=\"x___ evil_1.html\"; filename*=UTF-8''x%C3%A9%22%3B%20evil%3D1.html"
    );
}

#[tokio::test]
async fn details_echo_only_a_short_scrubbed_excerpt() {
    let s = server().await;
    let (org, key) = s.org_with_member(&["member"]).await;
    let secret = "jane.doe@example.com";
    let long_field = format!("{secret} {}", "z".repeat(5000));
    let cases = [
        json!({"category": "messages", "content": "x", long_field.clone(): 1}),
        json!({"category": format!("{secret} {}", "q".repeat(5000)), "content": "x"}),
        json!({"category": "messages", "subject": 5, "content": "x"}),
    ];
    for body in cases {
        let r = s
            .post_json(&key, &format!("/v1/orgs/{org}/records"), &body)
            .await;
        assert!(r.status().is_client_error());
        let text = r.text().await.unwrap();
        let p: Value = serde_json::from_str(&text).unwrap();
        let d = detail(&p);
        assert!(!d.contains(secret), "{d}");
        assert!(!d.contains(&"z".repeat(65)), "{d}");
        assert!(!d.contains(&"q".repeat(65)), "{d}");
        assert!(d.chars().count() < 400, "{d}");
    }
    // A record id in the path is echoed short, too.
    let r = s
        .send(
            Method::GET,
            &key,
            &format!("/v1/orgs/{org}/records/{}", "r".repeat(3000)),
        )
        .await;
    let p = problem(r, StatusCode::NOT_FOUND, "not_found").await;
    assert!(!detail(&p).contains(&"r".repeat(65)), "{p}");
    assert_eq!(s.record_count(&key, &org).await, 0);
}

#[tokio::test]
async fn request_ids_are_custos_own_and_the_callers_is_kept_apart() {
    let s = server().await;
    let r = s
        .client
        .post(s.url("/v1/orgs"))
        .bearer_auth(ADMIN)
        .header("x-request-id", "client-42")
        .json(&json!({"name": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let ours = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&ours).is_ok(), "{ours}");
    assert_eq!(r.headers()["x-client-request-id"], "client-42");
    // A hostile id is not echoed and not audited.
    let hostile = format!("evil\"}}{}", "x".repeat(200));
    let r = s
        .client
        .post(s.url("/v1/orgs"))
        .bearer_auth(ADMIN)
        .header("x-request-id", &hostile)
        .json(&json!({"name": "Beta"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(!r.headers().contains_key("x-client-request-id"));
    let page = s.json(ADMIN, "/v1/audit/events?action=org.create").await;
    let events: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["event"])
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["request_id"], ours.as_str());
    assert_eq!(events[0]["client_request_id"], "client-42");
    assert!(uuid::Uuid::parse_str(events[1]["request_id"].as_str().unwrap()).is_ok());
    assert!(events[1].get("client_request_id").is_none());
    assert_eq!(s.store.audit_size().await.unwrap(), 2);
    // An id that is personal data never reaches a signed leaf (which is never erased).
    for pii in ["zed@mailpit.io", "+1-202-555-0143"] {
        let r = s
            .client
            .post(s.url("/v1/orgs"))
            .bearer_auth(ADMIN)
            .header("x-request-id", pii)
            .json(&json!({"name": "Gamma"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert!(!r.headers().contains_key("x-client-request-id"), "{pii}");
    }
    let page = s.json(ADMIN, "/v1/audit/events?action=org.create").await;
    let text = page.to_string();
    assert!(
        !text.contains("mailpit") && !text.contains("555-0143"),
        "{text}"
    );
}

#[tokio::test]
async fn log_indexes_past_the_signed_range_are_refused() {
    let s = server().await;
    for path in [
        "/v1/audit/events?from=9223372036854775808",
        "/v1/audit/proof/9223372036854775808",
        "/v1/audit/proof/0?tree_size=18446744073709551615",
        "/v1/audit/consistency?from=9223372036854775808",
    ] {
        let r = s.send(Method::GET, ADMIN, path).await;
        problem(r, StatusCode::BAD_REQUEST, "invalid_input").await;
    }
}

#[tokio::test]
async fn openapi_declares_query_parameters_and_every_problem_status() {
    let s = server().await;
    let doc = s.json(ADMIN, "/openapi.json").await;
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            assert!(!op["parameters"].is_null() || op.get("parameters").is_none());
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                let in_path = path.contains(&format!("{{{name}}}"));
                assert_eq!(
                    p["in"],
                    if in_path { "path" } else { "query" },
                    "{method} {path} {name}"
                );
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.contains_key("4XX"), "{method} {path}");
            if op["security"].is_array() {
                for status in ["400", "401", "403", "404", "500"] {
                    let r = &responses[status];
                    assert_eq!(
                        r["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    assert!(operations >= 30, "{operations}");
    let list = &doc["paths"]["/v1/orgs/{org}/records"]["get"]["parameters"];
    let limit = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["required"], false);
    assert_eq!(limit["schema"]["maximum"], 1000);
    // The deployment's categories are listed where a request names one.
    let category = &doc["components"]["schemas"]["NewRecord"]["properties"]["category"];
    let listed = category["enum"].as_array().unwrap();
    assert!(listed.contains(&json!("messages")), "{category}");
    assert!(!listed.contains(&json!("payments_notes")), "{category}");
    let problem = &doc["components"]["schemas"]["Problem"];
    assert!(problem["required"]
        .as_array()
        .unwrap()
        .contains(&json!("instance")));
}
