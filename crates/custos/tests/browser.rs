//! The pages in a real browser: headless Debian chromium driven by Playwright
//! (`tools/browser-check/`, installed on first use), against a real `custos serve`.
//!
//! The privacy center: an end user, framed inside the org's application on another site,
//! deletes their data and downloads the certificate, which `custos cert verify` (with the
//! deployment's key) and the independent verifier accept; another user files "Request my
//! data" by keyboard and downloads the export; a site outside `frame_ancestors` cannot frame
//! the page; axe-core finds no serious or critical violation.
//!
//! The console: the owner signs in with the API key and a TOTP code, walks every page,
//! extends the most overdue request, verifies every audit entry shown and a certificate in
//! the browser, and sees a changed event, a wrong proof, a forged checkpoint and a changed
//! certificate rejected; axe-core again. Screenshots go to `target/screenshots/`.

mod support;

use std::process::Command;

use base64::Engine;
use serde_json::{json, Value};

use support::{cli, free_port, org_with_owner, post, send, serve, ADMIN};

/// The org application's link key seed (the browser test signs with it).
const KEY_SEED: [u8; 32] = [7u8; 32];

#[tokio::test]
async fn an_end_user_erases_their_data_from_the_embedded_privacy_center() {
    let Some(python) = support::browser_python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = serve(cli(&tmp.path().join("data")), &[]).await;
    let (org, owner) = org_with_owner(&s, "Acme Notes").await;
    let public = ed25519_dalek::SigningKey::from_bytes(&KEY_SEED)
        .verifying_key()
        .to_bytes();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "app",
        "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public)});
    let (embed_port, stranger_port) = (free_port(), free_port());
    let (status, answer) = send(
        &s,
        reqwest::Method::PATCH,
        &owner,
        &format!("/v1/orgs/{org}/settings"),
        Some(json!({"privacy_center": {
            "link_keys": [jwk],
            "frame_ancestors": [format!("http://localhost:{embed_port}")],
            "colors": {"accent": "#6b2fa0"}
        }})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    for (subject, text) in [("alice", "alice's note"), ("bob", "bob's note")] {
        post(
            &s,
            &owner,
            &format!("/v1/orgs/{org}/records"),
            json!({"category": "messages", "subject": subject, "content": {"text": text}}),
        )
        .await;
    }

    let out = tmp.path().join("out.json");
    let config = json!({
        "base": s.base,
        "org": org,
        "org_name": "Acme Notes",
        "key_seed": KEY_SEED.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "embed_port": embed_port,
        "stranger_port": stranger_port,
        "erased": "alice",
        "exporter": "bob",
        "shots": support::screenshot_dir(),
        "axe": support::target_dir().join("browser-check/node_modules/axe-core/axe.min.js"),
        "out": out,
        "out_dir": tmp.path(),
    });
    support::run_browser_test(&python, "privacy_center.py", &config, tmp.path());
    let got: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();

    // The certificate the browser downloaded verifies, with the deployment's key, by the CLI
    // and by the independent verifier.
    let certificate = got["certificate"].as_str().unwrap();
    let doc: Value = serde_json::from_slice(&std::fs::read(certificate).unwrap()).unwrap();
    assert_eq!(doc["subject"]["org"], org.as_str());
    let (_, key) = send(&s, reqwest::Method::GET, ADMIN, "/v1/signing-key", None).await;
    let key = key["verifier_key"].as_str().unwrap().to_string();
    let verified = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(["cert", "verify", certificate, "--key", &key])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    if let Some(venv) = support::verifier_venv() {
        let independent = Command::new(venv.join("bin/python"))
            .arg(support::workspace_root().join("tools/audit-verify/verify.py"))
            .args(["cert", "--key", &key, "--cert", certificate])
            .output()
            .unwrap();
        assert!(
            independent.status.success(),
            "{}{}",
            String::from_utf8_lossy(&independent.stdout),
            String::from_utf8_lossy(&independent.stderr)
        );
    }
    // Bob's export holds his note, not Alice's.
    let export: Value =
        serde_json::from_slice(&std::fs::read(got["export"].as_str().unwrap()).unwrap()).unwrap();
    let text = export.to_string();
    assert!(
        text.contains("bob's note") && !text.contains("alice's note"),
        "{text}"
    );
}

/// The policy the console test serves: the built-in one, with requests due a minute after
/// they are filed (the shortest deadline a policy can set), so one is overdue while the test
/// runs.
fn minute_deadlines(root: &std::path::Path) -> std::path::PathBuf {
    let shown = cli(&root.join("data"))
        .args(["policy", "show"])
        .output()
        .unwrap();
    assert!(shown.status.success());
    let text = String::from_utf8(shown.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("erasure_request_within"))
        .expect("the policy shows erasure_request_within")
        .to_string();
    let path = root.join("custos.toml");
    std::fs::write(
        &path,
        text.replace(&line, "erasure_request_within = \"1m\""),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn a_compliance_lead_extends_the_most_overdue_request_and_verifies_the_audit_log() {
    let Some(python) = support::browser_python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let config_file = minute_deadlines(tmp.path());
    let mut command = cli(&tmp.path().join("data"));
    command.arg("--config").arg(&config_file);
    let s = serve(command, &[]).await;
    let (org, owner) = org_with_owner(&s, "Acme Notes").await;
    // Filed first: due a minute from now, overdue while the browser walks the pages.
    let late = post(
        &s,
        &owner,
        &format!("/v1/orgs/{org}/requests"),
        json!({"type": "access", "subject": "dora"}),
    )
    .await;
    let enrolled = post(
        &s,
        &owner,
        &format!("/v1/orgs/{org}/members/me/totp"),
        json!({}),
    )
    .await;
    post(
        &s,
        &owner,
        &format!("/v1/orgs/{org}/records"),
        json!({"category": "messages", "subject": "carol", "content": {"text": "carol's note"}}),
    )
    .await;
    let erasure = post(
        &s,
        &owner,
        &format!("/v1/orgs/{org}/requests"),
        json!({"type": "erasure", "subject": "carol"}),
    )
    .await;
    let (_, key) = send(&s, reqwest::Method::GET, ADMIN, "/v1/signing-key", None).await;
    let out = tmp.path().join("out.json");
    let config = json!({
        "base": s.base,
        "org": org,
        "org_name": "Acme Notes",
        "api_key": owner,
        "totp_secret": enrolled["secret"],
        "verifier_key": key["verifier_key"],
        "erasure": erasure["id"],
        "shots": support::screenshot_dir(),
        "axe": support::target_dir().join("browser-check/node_modules/axe-core/axe.min.js"),
        "out": out,
    });
    support::run_browser_test(&python, "console.py", &config, tmp.path());
    let got: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();

    // The request the browser extended is the one filed first, and the API agrees.
    assert_eq!(got["extended"], late["id"]);
    assert!(got["steps"].as_u64().unwrap() <= 8, "{got}");
    let (_, request) = send(
        &s,
        reqwest::Method::GET,
        &owner,
        &format!("/v1/orgs/{org}/requests/{}", late["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert!(request["extended_at"].is_string(), "{request}");
    assert!(!request["overdue"].as_bool().unwrap(), "{request}");
}
