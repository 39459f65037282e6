//! The audit routes of a real `custos serve`: the signing key, signed checkpoints, inclusion
//! and consistency proofs that verify against them, the proof access rule (members prove only
//! their own org's entries), and the periodic checkpoint task.

use std::path::Path;
use std::time::Duration;

use custos_audit::{Checkpoint, ConsistencyProof, InclusionProof};
use serde_json::{json, Value};

mod support;

use support::{cli, org_with_owner, post, Server, ADMIN};

async fn serve(data: &Path) -> Server {
    support::serve(cli(data), &["--checkpoint-interval", "1"]).await
}

async fn get(s: &Server, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// An org with its first owner and an auditor made by that owner; returns (org id, owner key,
/// auditor key).
async fn org_with_auditor(s: &Server, name: &str) -> (String, String, String) {
    let (org, owner) = org_with_owner(s, name).await;
    let m = post(
        s,
        &owner,
        &format!("/v1/orgs/{org}/members"),
        json!({ "name": "auditor", "roles": ["auditor"] }),
    )
    .await;
    (org, owner, m["api_key"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn audit_routes_serve_verifiable_checkpoints_and_proofs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = serve(&data).await;
    let (org_a, owner_a, auditor_a) = org_with_auditor(&s, "A").await;
    let (org_b, _, _) = org_with_auditor(&s, "B").await;

    // The key, for anyone authenticated (an org member too).
    let (status, key) = get(&s, &auditor_a, "/v1/signing-key").await;
    assert_eq!(status, 200);
    let verifier_key = key["verifier_key"].as_str().unwrap().to_string();
    assert!(
        verifier_key.starts_with("custos/example-saas+"),
        "{verifier_key}"
    );
    assert_eq!(key["public_key"].as_str().unwrap().len(), 44);

    let (status, cp) = get(&s, &auditor_a, "/v1/audit/checkpoint").await;
    assert_eq!(status, 200, "{cp}");
    let head =
        Checkpoint::verify_signed(cp["checkpoint"].as_str().unwrap(), &verifier_key).unwrap();
    assert_eq!(head.size, cp["size"].as_u64().unwrap());
    assert!(head.size >= 4);

    // The admin may prove any entry.
    for index in 0..head.size {
        let (status, p) = get(&s, ADMIN, &format!("/v1/audit/proof/{index}")).await;
        assert_eq!(status, 200, "{p}");
        let p: InclusionProof = serde_json::from_value(p).unwrap();
        assert_eq!(p.tree_size, head.size);
        p.verify(&head.root).unwrap();
    }

    // A member proves its own org's entries, and gets not_found for another org's.
    let (_, own) = get(&s, &auditor_a, "/v1/audit/events").await;
    let own_index = own["items"][0]["index"].as_u64().unwrap();
    let (_, theirs) = get(&s, ADMIN, &format!("/v1/audit/events?org={org_b}")).await;
    let their_index = theirs["items"][0]["index"].as_u64().unwrap();
    let (status, p) = get(&s, &auditor_a, &format!("/v1/audit/proof/{own_index}")).await;
    assert_eq!(status, 200, "{p}");
    let (status, p) = get(&s, &auditor_a, &format!("/v1/audit/proof/{their_index}")).await;
    assert_eq!(status, 404, "{p}");
    let (status, _) = get(&s, ADMIN, &format!("/v1/audit/proof/{}", head.size + 100)).await;
    assert_eq!(status, 400);

    // The log grows; the next checkpoint is consistent with the first.
    org_with_auditor(&s, "C").await;
    let (_, cp2) = get(&s, ADMIN, "/v1/audit/checkpoint").await;
    let head2 =
        Checkpoint::verify_signed(cp2["checkpoint"].as_str().unwrap(), &verifier_key).unwrap();
    assert!(head2.size > head.size);
    let (status, c) = get(
        &s,
        &auditor_a,
        &format!("/v1/audit/consistency?from={}&to={}", head.size, head2.size),
    )
    .await;
    assert_eq!(status, 200, "{c}");
    let c: ConsistencyProof = serde_json::from_value(c).unwrap();
    c.verify(&head.root, &head2.root).unwrap();
    let (status, _) = get(&s, ADMIN, "/v1/audit/checkpoint").await;
    assert_eq!(status, 200);
    let (status, _) = reqwest::get(format!("{}/v1/audit/checkpoint", s.base))
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401);
    let (_, doc) = get(&s, ADMIN, "/openapi.json").await;
    for path in [
        "/v1/audit/checkpoint",
        "/v1/audit/proof/{index}",
        "/v1/audit/consistency",
        "/v1/signing-key",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} in the OpenAPI document"
        );
    }

    // The periodic task signs what the log grew by, with no request asking for it.
    post(
        &s,
        &owner_a,
        &format!("/v1/orgs/{org_a}/members"),
        json!({ "name": "late", "roles": ["member"] }),
    )
    .await;
    let mut anchored = String::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let out = cli(&data).args(["audit", "verify"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        anchored = String::from_utf8(out.stdout).unwrap();
        if anchored.contains(", 0 are not yet") {
            return;
        }
    }
    panic!("no periodic checkpoint covered the log: {anchored}");
}

#[tokio::test]
async fn by_default_serve_signs_a_checkpoint_within_a_second_of_appends() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // No --checkpoint-interval: the default bounds the uncovered tail to about a second.
    let s = support::serve(cli(&data), &[]).await;
    org_with_auditor(&s, "A").await;
    let appended = std::time::Instant::now();
    let mut report = String::new();
    while appended.elapsed() < Duration::from_secs(6) {
        let out = cli(&data).args(["audit", "verify"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        report = String::from_utf8(out.stdout).unwrap();
        if report.contains("uncovered: 0 trailing") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no checkpoint covered the appends within 6 s: {report}");
}
