//! Security events derived from the audit log: an org's kept as `security_logs` records and
//! listed to its evidence readers, the deployment's own listed to operators; neither holds a
//! key, a secret or content; both end with the `security_logs` retention.

mod common;

use custos_audit::{Actor, AuditAction, AuditEvent, Details, Outcome};
use custos_core::alerting::AlertEvaluator;
use custos_core::security_events::SecurityEventKind;
use custos_core::{CoreError, SweepOptions};
use custos_store::prelude::*;
use jiff::ToSpan;

async fn evaluate(env: &common::Env) {
    let mut evaluator = AlertEvaluator::new();
    while env.custos.evaluate_alerts(&mut evaluator).await.unwrap() > 0 {}
}

#[tokio::test]
async fn refusals_and_bad_keys_become_security_events_that_expire_with_security_logs() {
    let env = common::env();
    let org = env.org("Acme").await;
    let member = env.member(&org, &["member"], &[], false).await;
    let refused = env.custos.list_members(&member, &org).await;
    assert!(
        matches!(refused, Err(CoreError::Forbidden(_))),
        "{refused:?}"
    );
    let bad_key = "cus_AbCdEfGh_not-a-real-secret-0123456789";
    assert!(env.custos.authenticate(bad_key).await.is_err());
    // A deployment event as a refused key writes it (no org).
    let event = AuditEvent::new(
        custos_core::Clock::now(&*env.clock),
        Actor::Anonymous,
        AuditAction::AuthReject,
    )
    .outcome(Outcome::Denied)
    .reason("unknown_key")
    .details(Details::new().key_prefix("AbCdEfGh"));
    env.store.append_audit(&[event]).await.unwrap();
    evaluate(&env).await;

    let auditor = env.member(&org, &["auditor"], &[], true).await;
    let page = env
        .custos
        .security_events(&auditor, &org, None, None)
        .await
        .unwrap();
    let member_id = match &member.principal {
        custos_core::Principal::Member { member, .. } => member.id.to_string(),
        other => panic!("{other:?}"),
    };
    let denied: Vec<_> = page
        .items
        .iter()
        .filter(|e| e.kind == SecurityEventKind::AccessDenied)
        .collect();
    assert_eq!(denied.len(), 1, "{page:?}");
    assert_eq!(denied[0].action, "member.list");
    assert_eq!(denied[0].actor, format!("member:{member_id}"));
    assert_eq!(denied[0].org.as_deref(), Some(org.as_str()));
    // The first owner's creation (owner role) is a privileged member.
    assert!(page
        .items
        .iter()
        .any(|e| e.kind == SecurityEventKind::PrivilegedMember));
    // A member without the category's role (and second factor) is refused.
    assert!(env
        .custos
        .security_events(&member, &org, None, None)
        .await
        .is_err());

    let deployment = env
        .custos
        .deployment_security_events(&common::admin(), None, None)
        .await
        .unwrap();
    let failed: Vec<_> = deployment
        .items
        .iter()
        .filter(|e| e.kind == SecurityEventKind::AuthFailed)
        .collect();
    assert!(!failed.is_empty(), "{deployment:?}");
    assert!(failed
        .iter()
        .any(|e| e.details.get("key_prefix") == Some(&serde_json::json!("AbCdEfGh"))));
    let all = format!("{page:?}{deployment:?}");
    assert!(!all.contains("not-a-real-secret"), "no key material: {all}");
    assert!(
        env.custos
            .deployment_security_events(&member, None, None)
            .await
            .is_err(),
        "operators only"
    );

    // Thirteen months on, the sweep ends both with the `security_logs` retention (12mo).
    env.clock.advance(396.days());
    let first = env
        .custos
        .sweep(&SweepOptions::default(), &mut |_| {})
        .await
        .unwrap();
    assert!(first.security_events_purged >= 1, "{first:?}");
    assert!(
        first.purged >= 2,
        "the org's security_logs records: {first:?}"
    );
    let summary = env
        .custos
        .sweep(&SweepOptions::default(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(summary.security_events_purged, 0, "already purged");
    let auditor = env.member(&org, &["auditor"], &[], true).await;
    let page = env
        .custos
        .security_events(&auditor, &org, None, None)
        .await
        .unwrap();
    assert!(
        page.items
            .iter()
            .all(|e| e.time > custos_core::Clock::now(&*env.clock) - (366 * 24).hours()),
        "only this year's are left: {page:?}"
    );
    assert!(!page
        .items
        .iter()
        .any(|e| e.kind == SecurityEventKind::AccessDenied));
    let deployment = env
        .custos
        .deployment_security_events(&common::admin(), None, None)
        .await
        .unwrap();
    assert!(deployment
        .items
        .iter()
        .all(|e| e.kind != SecurityEventKind::AuthFailed
            || e.time > custos_core::Clock::now(&*env.clock) - 24.hours()));
}

/// A member naming an org id the log could not read back (empty: a mangled path) is refused
/// and audited without a target; and an unreadable entry already in the log is passed over by
/// the evaluator, which goes on with the events after it.
#[tokio::test]
async fn a_mangled_org_id_is_refused_and_an_unreadable_entry_does_not_stop_the_evaluator() {
    let env = common::env();
    let org = env.org("Acme").await;
    let member = env.member(&org, &["member"], &[], false).await;
    assert!(env.custos.list_members(&member, "").await.is_err());
    let page = env
        .custos
        .audit_events(
            &common::admin(),
            None,
            &custos_store::AuditFilter::default(),
            0,
            1000,
        )
        .await
        .unwrap();
    assert!(page
        .items
        .iter()
        .any(|e| e.event.action == AuditAction::MemberList));

    // What an older build could write: a target that does not read back.
    let bad = AuditEvent::new(
        custos_core::Clock::now(&*env.clock),
        Actor::System,
        AuditAction::MemberList,
    )
    .outcome(Outcome::Denied)
    .target(custos_audit::Target::Org(String::new()));
    env.store.append_audit(&[bad]).await.unwrap();
    assert!(env.custos.list_members(&member, &org).await.is_err());
    evaluate(&env).await;
    let auditor = env.member(&org, &["auditor"], &[], true).await;
    let page = env
        .custos
        .security_events(&auditor, &org, None, None)
        .await
        .unwrap();
    assert_eq!(
        page.items
            .iter()
            .filter(|e| e.kind == SecurityEventKind::AccessDenied)
            .count(),
        2,
        "both refusals of readable entries: {page:?}"
    );
}

/// A category whose PII rule says `alert = true` (the built-in `interactions`, seed 004)
/// raises a `pii_detected` security event per write that held PII (a record, a file's body):
/// counts, never values.
/// Other categories redact without one.
#[tokio::test]
async fn pii_found_in_an_alerting_category_is_a_security_event() {
    let env = common::env();
    let org = env.org("Acme").await;
    let owner = env.member(&org, &["owner"], &[], false).await;
    for (category, text) in [
        (
            "interactions",
            "reach me at jane@example.com or 555-867-5309",
        ),
        ("interactions", "nothing personal here"),
        ("messages", "and jane@example.com again"),
    ] {
        env.custos
            .create_record(
                &owner,
                &org,
                custos_core::NewRecord {
                    category: category.into(),
                    subject: Some("jane".into()),
                    content: serde_json::json!({ "text": text }),
                    metadata: None,
                },
            )
            .await
            .unwrap();
    }
    // A text file too: its body is scanned as it streams.
    env.custos
        .upload_file(
            &owner,
            &org,
            custos_core::FileUpload {
                category: "interactions".into(),
                subject: Some("jane".into()),
                file_name: Some("call.txt".into()),
                content_type: Some("text/plain".into()),
                ..Default::default()
            },
            futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
                b"callback: jane@example.com",
            ))]),
        )
        .await
        .unwrap();
    evaluate(&env).await;
    // `security_logs` is read with a second factor.
    let auditor = env.member(&org, &["auditor"], &[], true).await;
    let page = env
        .custos
        .security_events(&auditor, &org, None, None)
        .await
        .unwrap();
    let found: Vec<_> = page
        .items
        .iter()
        .filter(|e| e.kind == SecurityEventKind::PiiDetected)
        .collect();
    assert_eq!(found.len(), 2, "{page:?}");
    assert_eq!(found[1].details["entities"]["EMAIL_ADDRESS"], 1, "{page:?}");
    assert_eq!(found[0].action, "pii.detect");
    assert_eq!(
        found[0].details.get("category"),
        Some(&serde_json::json!("interactions"))
    );
    let entities = &found[0].details["entities"];
    assert_eq!(entities["EMAIL_ADDRESS"], 1, "{entities}");
    assert_eq!(entities["PHONE_NUMBER"], 1, "{entities}");
    let text = serde_json::to_string(&page).unwrap();
    assert!(
        !text.contains("jane@example.com") && !text.contains("867"),
        "{text}"
    );
}

/// While an org is being moved to another region its security events wait (a write into the
/// old home would make the move start over), then are kept once.
#[tokio::test]
async fn security_events_wait_for_a_move_and_are_kept_once() {
    let env = common::env();
    let org = env.org("Acme").await;
    let member = env.member(&org, &["member"], &[], false).await;
    assert!(env.custos.list_members(&member, &org).await.is_err());
    let now = jiff::Timestamp::now();
    assert!(env
        .store
        .claim_org_move(&org, "mover", now, now + 60.seconds())
        .await
        .unwrap());
    let mut evaluator = AlertEvaluator::new();
    assert_eq!(env.custos.evaluate_alerts(&mut evaluator).await.unwrap(), 0);
    let auditor = env.member(&org, &["auditor"], &[], true).await;
    let kept = |page: custos_core::security_events::SecurityEventPage| {
        page.items
            .iter()
            .filter(|e| e.kind == SecurityEventKind::AccessDenied)
            .count()
    };
    let page = env
        .custos
        .security_events(&auditor, &org, None, None)
        .await
        .unwrap();
    assert_eq!(kept(page), 0, "nothing while the move holds the org");
    env.store.release_org_move(&org, "mover").await.unwrap();
    while env.custos.evaluate_alerts(&mut evaluator).await.unwrap() > 0 {}
    while env.custos.evaluate_alerts(&mut evaluator).await.unwrap() > 0 {}
    let page = env
        .custos
        .security_events(&auditor, &org, None, None)
        .await
        .unwrap();
    assert_eq!(kept(page), 1);
}
