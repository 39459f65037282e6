//! The privacy center over a real `custos serve`, as an end user's browser meets it: the
//! org registers its application's key; a link the application signs lets the user in (a
//! partitioned, cross-site cookie; the token leaves the address at once); the user deletes
//! their data after a confirmation step, sees it done and downloads a certificate that
//! `custos cert verify` and the independent verifier accept. Forms without the session's
//! CSRF token, or posted from another site, change nothing; another user's request is not
//! found; a link works once.

mod support;

use std::process::Command;

use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use reqwest::StatusCode;
use serde_json::{json, Value};

use support::{cli, org_with_owner, post, send, serve, ADMIN};

/// The application's link key and its public JWK.
fn app_key() -> (jsonwebtoken::EncodingKey, Value) {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
    let x =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
    let der = signing.to_pkcs8_der().unwrap();
    (
        jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "app-1"}),
    )
}

/// A link for `sub` in `org`, valid five minutes.
fn link(org: &str, sub: &str, jti: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("app-1".into());
    let exp = jiff::Timestamp::now().as_second() + 300;
    let claims = json!({"sub": sub, "aud": org, "exp": exp, "jti": jti});
    jsonwebtoken::encode(&header, &claims, &app_key().0).unwrap()
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Takes a link: its session cookie's value and attributes.
async fn sign_in(base: &str, org: &str, sub: &str, jti: &str) -> (String, String) {
    let r = browser()
        .get(format!(
            "{base}/privacy/{org}?token={}",
            link(org, sub, jti)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/privacy/{org}").as_str());
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let value = set
        .strip_prefix("custos_privacy=")
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string();
    (value, set)
}

async fn page(
    base: &str,
    org: &str,
    cookie: &str,
    query: &str,
) -> (StatusCode, String, reqwest::header::HeaderMap) {
    let r = browser()
        .get(format!("{base}/privacy/{org}{query}"))
        .header("cookie", format!("custos_privacy={cookie}"))
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, r.text().await.unwrap(), headers)
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .expect("a form with a CSRF token");
    html[at + 19..].split('"').next().unwrap().to_string()
}

async fn submit(
    base: &str,
    org: &str,
    cookie: &str,
    origin: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    browser()
        .post(format!("{base}/privacy/{org}/requests"))
        .header("cookie", format!("custos_privacy={cookie}"))
        .header("origin", origin)
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_end_user_erases_their_data_and_downloads_a_certificate_that_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = serve(cli(&data), &[]).await;
    let base = s.base.clone();
    let (org, owner) = org_with_owner(&s, "Acme").await;
    let (status, _) = send(
        &s,
        reqwest::Method::PATCH,
        &owner,
        &format!("/v1/orgs/{org}/settings"),
        Some(json!({"privacy_center": {
            "link_keys": [app_key().1],
            "frame_ancestors": ["https://app.example.com"],
            "colors": {"accent": "#7a1fa2"}
        }})),
    )
    .await;
    assert_eq!(status, 200);
    for subject in ["alice", "bob"] {
        post(
            &s,
            &owner,
            &format!("/v1/orgs/{org}/records"),
            json!({"category": "messages", "subject": subject, "content": {"text": "hello"}}),
        )
        .await;
    }

    // The link opens a partitioned, cross-site session cookie for this org's center only.
    let (cookie, set) = sign_in(&base, &org, "alice", "l-1").await;
    assert!(cookie.starts_with("cupc_"), "{set}");
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=None",
        "Partitioned",
        &format!("Path=/privacy/{org}"),
    ] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    // Used once.
    let replay = browser()
        .get(format!(
            "{base}/privacy/{org}?token={}",
            link(&org, "alice", "l-1")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert!(replay.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));

    // The page: the org's name and color, the two buttons, strict headers that let the
    // org's application (and nobody else) frame it.
    let (status, html, headers) = page(&base, &org, &cookie, "").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("Acme") && html.contains("--accent:#7a1fa2;"),
        "{html}"
    );
    assert!(html.contains(">Request my data</button>"), "{html}");
    assert!(html.contains(">Delete my data</button>"), "{html}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(
        csp.contains("frame-ancestors https://app.example.com"),
        "{csp}"
    );
    assert!(headers.get("x-frame-options").is_none());
    assert_eq!(headers["referrer-policy"], "same-origin");

    // "Delete my data" asks first.
    let (_, confirm, _) = page(&base, &org, &cookie, "?confirm=erasure").await;
    assert!(
        confirm.contains(">Confirm: delete my data</button>"),
        "{confirm}"
    );
    let csrf = csrf_of(&confirm);
    let erase = [
        ("csrf", csrf.as_str()),
        ("type", "erasure"),
        ("confirmed", "yes"),
    ];
    // Without the session's token, or from another site, nothing happens.
    let forged = [
        ("csrf", "0123456789abcdef0123456789abcdef"),
        ("type", "erasure"),
        ("confirmed", "yes"),
    ];
    let r = submit(&base, &org, &cookie, &base, &forged).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = submit(&base, &org, &cookie, "https://evil.example", &erase).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (_, before, _) = page(&base, &org, &cookie, "").await;
    assert!(before.contains("No requests yet."), "{before}");
    // Unconfirmed, it goes back to the confirmation step.
    let r = submit(
        &base,
        &org,
        &cookie,
        &base,
        &[("csrf", &csrf), ("type", "erasure")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        format!("/privacy/{org}?confirm=erasure").as_str()
    );
    let r = submit(&base, &org, &cookie, &base, &erase).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // Done, with its certificate.
    let (_, after, _) = page(&base, &org, &cookie, "").await;
    assert!(
        after.contains("Deletion of my data") && after.contains(">Done<"),
        "{after}"
    );
    assert!(after.contains("Your data was erased."), "{after}");
    let at = after.find("/certificate\"").expect("a certificate link");
    let href_start = after[..at].rfind("href=\"").unwrap() + 6;
    let href = &after[href_start..at + 12];
    let r = browser()
        .get(format!("{base}{href}"))
        .header("cookie", format!("custos_privacy={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let certificate = r.bytes().await.unwrap();
    let cert_file = tmp.path().join("certificate.json");
    std::fs::write(&cert_file, &certificate).unwrap();
    let doc: Value = serde_json::from_slice(&certificate).unwrap();
    assert_eq!(doc["subject"]["org"], org.as_str(), "{doc}");

    // Anyone can check it: the CLI with the deployment's key, and the independent verifier.
    let (_, key) = send(&s, reqwest::Method::GET, ADMIN, "/v1/signing-key", None).await;
    let key = key["verifier_key"].as_str().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(["cert", "verify"])
        .arg(&cert_file)
        .args(["--key", &key])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(venv) = support::verifier_venv() {
        let out = Command::new(venv.join("bin/python"))
            .arg(support::workspace_root().join("tools/audit-verify/verify.py"))
            .args(["cert", "--key", &key, "--cert"])
            .arg(&cert_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The erasure is the subject's own doing in the audit log, by reference.
    let (_, events) = send(
        &s,
        reqwest::Method::GET,
        &owner,
        &format!("/v1/audit/events?org={org}&action=request.create"),
        None,
    )
    .await;
    let actor = &events["items"][0]["event"]["actor"];
    assert_eq!(actor["kind"], "subject", "{events}");
    assert_eq!(actor["id"], doc["subject"]["subject_ref"], "{events}");

    // Bob asks for his data and downloads it; Alice's session cannot reach Bob's request.
    let (bob, _) = sign_in(&base, &org, "bob", "l-2").await;
    let (_, html, _) = page(&base, &org, &bob, "").await;
    let r = submit(
        &base,
        &org,
        &bob,
        &base,
        &[("csrf", &csrf_of(&html)), ("type", "access")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, html, _) = page(&base, &org, &bob, "").await;
    let at = html.find("/export?format=json\"").expect("an export link");
    let href = &html[html[..at].rfind("href=\"").unwrap() + 6..at + 19];
    let r = browser()
        .get(format!("{base}{href}"))
        .header("cookie", format!("custos_privacy={bob}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let export: Value = r.json().await.unwrap();
    assert_eq!(export["records"].as_array().unwrap().len(), 1, "{export}");
    let r = browser()
        .get(format!("{base}{href}"))
        .header("cookie", format!("custos_privacy={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Erased, Alice can file nothing more.
    let r = submit(
        &base,
        &org,
        &cookie,
        &base,
        &[("csrf", &csrf), ("type", "access")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}
