//! Data subject requests tell people through a real `custos serve`: the org's own webhook
//! (checked by the Standard Webhooks reference library) hears that a request was received,
//! is due soon, was extended (with the reason) and completed (with the export's or the
//! certificate's link); the person, at the contact the org keeps for them, gets e-mails at a
//! real SMTP server (aiosmtpd) — also when their erasure destroyed the key the address was
//! sealed under. Nothing in the audit log or the outbox keeps the address once it is sent.
//!
//! Needs Python and PyPI on first use; skipped with a loud message when missing, fatal under
//! `CI=true`.

#[path = "../../../tools/notify-stand-in/stand_in.rs"]
mod stand_in;
mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{org_with_owner, post, send, ADMIN};

const ORG_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// The webhook bodies of `kind` about request `id`.
fn of<'a>(bodies: &'a [Value], kind: &str, id: &str) -> Vec<&'a Value> {
    bodies
        .iter()
        .filter(|b| b["type"] == kind && b["data"]["request"] == id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_notify_the_org_and_e_mail_the_person() {
    let test = "requests_notify_the_org_and_e_mail_the_person";
    let Some(hook) = stand_in::Receiver::webhook(test, ORG_SECRET, 0).await else {
        return;
    };
    let Some(smtp) = stand_in::Receiver::smtp(test).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("custos.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[network]\nallow = [\"127.0.0.0/8\"]\n[smtp]\nhost = \"127.0.0.1\"\n\
             port = {}\nfrom = \"privacy@example.com\"\nstarttls = false\n",
            custos_policy::Policy::BUILTIN_TOML,
            smtp.port
        ),
    )
    .unwrap();
    let mut command = support::cli(&tmp.path().join("data"));
    command.arg("--config").arg(&config);
    let s = support::serve(command, &[]).await;
    let (org, owner) = org_with_owner(&s, "Acme").await;

    let (status, body) = send(
        &s,
        reqwest::Method::PATCH,
        &owner,
        &format!("/v1/orgs/{org}/settings"),
        Some(json!({ "channels": {
            "webhooks": [{ "url": hook.url(), "secret": ORG_SECRET }],
            "email_subjects": true,
            "remind_before": "30d",
        } })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["channels"]["email_subjects"], true);

    for subject in ["alice", "bob"] {
        post(
            &s,
            &owner,
            &format!("/v1/orgs/{org}/records"),
            json!({ "category": "messages", "subject": subject, "content": { "text": "hi" } }),
        )
        .await;
        let contact = send(
            &s,
            reqwest::Method::PUT,
            &owner,
            &format!("/v1/orgs/{org}/subjects/{subject}/contact"),
            Some(json!({ "email": format!("{subject}@example.com") })),
        )
        .await;
        assert_eq!(contact.0, 200, "{}", contact.1);
        assert_eq!(contact.1["email"], true);
        assert!(!contact.1.to_string().contains("@example.com"));
    }
    let (status, bad) = send(
        &s,
        reqwest::Method::PUT,
        &owner,
        &format!("/v1/orgs/{org}/subjects/alice/contact"),
        Some(json!({ "email": "not an address" })),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.to_string().contains("email"), "{bad}");

    // Alice asks for her data; the org needs more time, then hands it over.
    let access = post(
        &s,
        &owner,
        &format!("/v1/orgs/{org}/requests"),
        json!({ "type": "access", "subject": "alice" }),
    )
    .await;
    let access_id = access["id"].as_str().unwrap().to_string();
    // The reminder (due within 30 days) goes out while the request is open (before the extension moves it
    // further out).
    let got = hook
        .wait_for(Duration::from_secs(30), |d| {
            d.iter().any(|d| {
                d["body"].as_str().unwrap().contains("request.due_soon")
                    && d["body"].as_str().unwrap().contains(&access_id)
            })
        })
        .await;
    assert!(
        got.iter()
            .any(|d| d["body"].as_str().unwrap().contains("request.due_soon")),
        "{got:?}"
    );
    let reason = "Part of the records is in the cold archive";
    post(
        &s,
        &owner,
        &format!("/v1/orgs/{org}/requests/{access_id}/extend"),
        json!({ "by": "14d", "reason": reason }),
    )
    .await;
    let export = reqwest::Client::new()
        .get(format!(
            "{}/v1/orgs/{org}/requests/{access_id}/export",
            s.base
        ))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);

    // Bob asks to be erased: done at once, his contact (sealed under his key) with him.
    let erasure = post(
        &s,
        &owner,
        &format!("/v1/orgs/{org}/requests"),
        json!({ "type": "erasure", "subject": "bob" }),
    )
    .await;
    let erasure_id = erasure["id"].as_str().unwrap().to_string();
    assert_eq!(erasure["status"], "completed", "{erasure}");

    let done = |d: &[Value]| {
        d.iter()
            .filter(|d| d["body"].as_str().unwrap().contains("request.completed"))
            .count()
            >= 2
    };
    let got = hook.wait_for(Duration::from_secs(30), done).await;
    let bodies: Vec<Value> = got
        .iter()
        .map(|d| {
            assert_eq!(d["verified"], true, "{d}");
            serde_json::from_str(d["body"].as_str().unwrap()).unwrap()
        })
        .collect();
    for id in [&access_id, &erasure_id] {
        assert_eq!(of(&bodies, "request.received", id).len(), 1, "{bodies:?}");
        assert_eq!(of(&bodies, "request.completed", id).len(), 1, "{bodies:?}");
    }
    assert_eq!(of(&bodies, "request.due_soon", &access_id).len(), 1);
    let extended = of(&bodies, "request.extended", &access_id);
    assert_eq!(extended.len(), 1, "{bodies:?}");
    assert_eq!(extended[0]["data"]["reason"], reason);
    let link = |id: &str| of(&bodies, "request.completed", id)[0]["data"]["link"].clone();
    assert_eq!(
        link(&access_id),
        json!(format!("/v1/orgs/{org}/requests/{access_id}/export"))
    );
    assert_eq!(
        link(&erasure_id),
        json!(format!("/v1/orgs/{org}/requests/{erasure_id}/certificate"))
    );
    let text = serde_json::to_string(&bodies).unwrap();
    assert!(!text.contains("@example.com"), "no address in org notices");
    assert!(!text.contains("\"alice\""), "no identifier in org notices");

    // The people: Alice received, extended, completed; Bob received and completed, once.
    let mail = smtp
        .wait_for(Duration::from_secs(30), |m| m.len() >= 5)
        .await;
    let to = |who: &str| -> Vec<String> {
        let mut subjects: Vec<String> = mail
            .iter()
            .filter(|m| m["to"] == json!([format!("{who}@example.com")]))
            .map(|m| m["subject"].as_str().unwrap().to_string())
            .collect();
        subjects.sort();
        subjects
    };
    assert_eq!(
        to("alice"),
        [
            "Your data request is complete",
            "Your data request needs more time",
            "Your data request was received"
        ],
        "{mail:?}"
    );
    assert_eq!(
        to("bob"),
        [
            "Your data request is complete",
            "Your data request was received"
        ],
        "{mail:?}"
    );
    let alice_extended = mail
        .iter()
        .find(|m| m["subject"] == "Your data request needs more time")
        .unwrap();
    assert!(
        alice_extended["body"].as_str().unwrap().contains(reason),
        "{alice_extended}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.received().len(), 5, "nobody is told twice");

    // Sent: the addresses are gone from the outbox, and the audit log never had them.
    let (status, page) = send(
        &s,
        reqwest::Method::GET,
        ADMIN,
        &format!("/v1/notifications?org={org}&limit=100"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(!page.to_string().contains("@example.com"), "{page}");
    let to_people = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["channel"] == "subject-email")
        .count();
    assert_eq!(to_people, 5, "{page}");
    let (status, events) = send(
        &s,
        reqwest::Method::GET,
        ADMIN,
        "/v1/audit/events?limit=1000",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(!events.to_string().contains("@example.com"));
    assert!(events.to_string().contains("subject.contact"));
    assert!(events.to_string().contains("request.remind"));
}
