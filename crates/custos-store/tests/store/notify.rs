//! The outbox and the alert evaluator's state on both backends: messages queued once, claimed
//! by one caller at a time, retried, finished; one lease holder; steps committed only by it.

use custos_store::{AlertFiring, AlertStep, OutboxMessage, OutboxStatus, StoredSecurityEvent};
use jiff::ToSpan;

use crate::support::*;

fn message(id: &str, org: Option<&str>, at: jiff::Timestamp) -> OutboxMessage {
    OutboxMessage {
        id: id.to_string(),
        org_id: org.map(str::to_string),
        channel: "webhook:ops".into(),
        event_type: "alert.fired".into(),
        body: format!("{{\"id\":\"{id}\"}}").into_bytes(),
        created_at: at,
    }
}

pub async fn outbox_messages_are_claimed_once_retried_and_finished(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let t0 = now_us();
    let audit = [event(None, "record.create", "records")];
    store
        .enqueue(
            &[
                message("msg_1", Some("org-a"), t0),
                message("msg_2", None, t0),
            ],
            &audit,
        )
        .await
        .unwrap();
    book.appended(&audit);
    // Queuing again is idempotent: the first copy stays.
    let mut changed = message("msg_1", Some("org-a"), t0);
    changed.body = b"{}".to_vec();
    store.enqueue(&[changed], &[]).await.unwrap();

    let claimed = store
        .claim_messages(t0, t0 + 30.seconds(), 10)
        .await
        .unwrap();
    let mut ids: Vec<&str> = claimed.iter().map(|e| e.message.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["msg_1", "msg_2"]);
    let first = claimed.iter().find(|e| e.message.id == "msg_1").unwrap();
    assert_eq!(first.message, message("msg_1", Some("org-a"), t0));
    assert_eq!((first.attempts, first.status), (1, OutboxStatus::Pending));
    // Held: nobody else gets them until the claim runs out.
    assert!(store
        .claim_messages(t0 + 1.second(), t0 + 31.seconds(), 10)
        .await
        .unwrap()
        .is_empty());

    store
        .mark_delivered("msg_2", t0 + 1.second())
        .await
        .unwrap();
    store
        .retry_later("msg_1", t0 + 10.seconds(), "503 Service Unavailable")
        .await
        .unwrap();
    assert!(store
        .claim_messages(t0 + 9.seconds(), t0 + 40.seconds(), 10)
        .await
        .unwrap()
        .is_empty());
    let again = store
        .claim_messages(t0 + 10.seconds(), t0 + 40.seconds(), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].attempts, again[0].last_error.as_deref()),
        (2, Some("503 Service Unavailable"))
    );
    // A claim that ran out (its holder died) is taken over.
    let taken = store
        .claim_messages(t0 + 41.seconds(), t0 + 70.seconds(), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].attempts, 3);
    let audit = [event(None, "record.create", "records")];
    store
        .mark_failed("msg_1", t0 + 42.seconds(), "gave up", &audit)
        .await
        .unwrap();
    book.appended(&audit);
    assert!(store
        .claim_messages(t0 + 1.hour(), t0 + 2.hours(), 10)
        .await
        .unwrap()
        .is_empty());

    let listed = store.outbox_entries(None, None, 10).await.unwrap();
    let states: Vec<(&str, OutboxStatus)> = listed
        .iter()
        .map(|e| (e.message.id.as_str(), e.status))
        .collect();
    assert_eq!(
        states,
        [
            ("msg_2", OutboxStatus::Delivered),
            ("msg_1", OutboxStatus::Failed)
        ]
    );
    assert_eq!(listed[1].finished_at, Some(t0 + 42.seconds()));
    let of_a = store.outbox_entries(Some("org-a"), None, 10).await.unwrap();
    assert_eq!(of_a.len(), 1);
    assert!(store
        .outbox_entries(None, Some("msg_2"), 10)
        .await
        .unwrap()
        .iter()
        .all(|e| e.message.id == "msg_1"));
    book.verify(store).await;
}

pub async fn the_alert_lease_has_one_holder_and_steps_commit_only_under_it(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let t0 = now_us();
    assert_eq!(
        store
            .take_alert_lease("a", t0, t0 + 10.seconds())
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        store
            .take_alert_lease("b", t0 + 1.second(), t0 + 11.seconds())
            .await
            .unwrap(),
        None,
        "held by a"
    );
    let firing = AlertFiring {
        rule: "denied-burst".into(),
        key: "actor:member:m1".into(),
        fired_at: t0,
        window_end: t0 + 60.seconds(),
        audit_idx: 4,
    };
    let audit = vec![event(None, "record.create", "records")];
    let step = AlertStep {
        log: None,
        cursor: 7,
        firings: vec![firing.clone()],
        messages: vec![message("msg_a", None, t0)],
        audit: audit.clone(),
        security_events: (0..3i64)
            .map(|i| StoredSecurityEvent {
                audit_idx: i as u64,
                time: t0 + i.seconds(),
                kind: "auth_failed".into(),
                body: format!("{{\"audit_index\":{i}}}"),
                expire_at: t0 + 1.hour() + i.seconds(),
            })
            .collect(),
        incidents: Vec::new(),
    };
    // Only the holder, from the cursor it read.
    assert!(!store.commit_alert_step("b", 0, &step).await.unwrap());
    assert!(!store.commit_alert_step("a", 3, &step).await.unwrap());
    assert!(store.commit_alert_step("a", 0, &step).await.unwrap());
    book.appended(&audit);
    assert_eq!(store.outbox_entries(None, None, 10).await.unwrap().len(), 1);
    assert_eq!(
        store.recent_firings(t0 + 59.seconds()).await.unwrap(),
        vec![firing]
    );

    // Renewed by its holder; taken by another once it runs out, from the committed cursor.
    assert_eq!(
        store
            .take_alert_lease("a", t0 + 5.seconds(), t0 + 15.seconds())
            .await
            .unwrap(),
        Some(7)
    );
    assert_eq!(
        store
            .take_alert_lease("b", t0 + 15.seconds(), t0 + 25.seconds())
            .await
            .unwrap(),
        Some(7)
    );
    let late = AlertStep {
        cursor: 9,
        ..AlertStep::default()
    };
    assert!(!store.commit_alert_step("a", 7, &late).await.unwrap());
    assert!(store.commit_alert_step("b", 7, &late).await.unwrap());
    // A region's own log has a cursor of its own, guarded by the same lease.
    assert_eq!(store.alert_cursor("eu-central").await.unwrap(), 0);
    let region = |from_cursor: u64| AlertStep {
        log: Some("eu-central".into()),
        cursor: from_cursor,
        ..AlertStep::default()
    };
    assert!(store.commit_alert_step("b", 0, &region(4)).await.unwrap());
    assert!(!store.commit_alert_step("b", 0, &region(5)).await.unwrap());
    assert!(store.commit_alert_step("b", 4, &region(6)).await.unwrap());
    assert!(
        !store.commit_alert_step("a", 6, &region(8)).await.unwrap(),
        "b holds it"
    );
    assert_eq!(store.alert_cursor("eu-central").await.unwrap(), 6);
    assert_eq!(
        store
            .take_alert_lease("b", t0 + 16.seconds(), t0 + 26.seconds())
            .await
            .unwrap(),
        Some(9),
        "the main cursor is apart"
    );
    // Deployment security events: newest first, paged by index, purged at their expiry.
    let listed = store.deployment_security_events(None, 2).await.unwrap();
    let idx: Vec<u64> = listed.iter().map(|e| e.audit_idx).collect();
    assert_eq!(idx, [2, 1]);
    assert_eq!(listed[0], step.security_events[2]);
    let rest = store.deployment_security_events(Some(1), 10).await.unwrap();
    assert_eq!(rest, vec![step.security_events[0].clone()]);
    let purge = [event(None, "record.create", "records")];
    assert_eq!(
        store
            .purge_security_events(t0 + 1.hour() + 1.second(), &purge)
            .await
            .unwrap(),
        2
    );
    book.appended(&purge);
    // Nothing left to purge: nothing deleted, nothing audited.
    let none = [event(None, "record.create", "records")];
    assert_eq!(
        store
            .purge_security_events(t0 + 1.hour() + 1.second(), &none)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .deployment_security_events(None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // Ended windows are dropped.
    assert!(store
        .recent_firings(t0 + 60.seconds())
        .await
        .unwrap()
        .is_empty());
    book.verify(store).await;
}

pub async fn subject_addresses_leave_the_outbox_when_finished(h: Harness) {
    let store = &*h.store;
    let t0 = now_us();
    let mut to_person = message("msg_p1", Some("org-a"), t0);
    to_person.channel = "subject-email:person@example.com".into();
    let mut failing = message("msg_p2", Some("org-a"), t0);
    failing.channel = "subject-email:other@example.com".into();
    let audit = [event(None, "record.create", "records")];
    assert!(store
        .enqueue(&[to_person.clone(), failing.clone()], &audit)
        .await
        .unwrap());
    // Nothing new: nothing written, not even the audit events.
    let size = store.audit_size().await.unwrap();
    assert!(!store.enqueue(&[to_person], &audit).await.unwrap());
    assert_eq!(store.audit_size().await.unwrap(), size);

    store
        .claim_messages(t0, t0 + 30.seconds(), 10)
        .await
        .unwrap();
    store.mark_delivered("msg_p1", t0).await.unwrap();
    store
        .mark_failed("msg_p2", t0, "550 no such user", &[])
        .await
        .unwrap();
    let channels: Vec<String> = store
        .outbox_entries(None, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.message.channel)
        .collect();
    assert_eq!(channels, ["subject-email", "subject-email"]);

    // Finished messages go when the sweep says; a pending one stays whatever its age.
    store
        .enqueue(&[message("msg_pending", None, t0)], &[])
        .await
        .unwrap();
    let audit = [event(None, "record.create", "records")];
    assert_eq!(
        store.purge_outbox(t0 - 1.second(), &audit).await.unwrap(),
        0
    );
    let size = store.audit_size().await.unwrap();
    assert_eq!(store.purge_outbox(t0, &audit).await.unwrap(), 2);
    assert_eq!(store.audit_size().await.unwrap(), size + 1);
    let left: Vec<String> = store
        .outbox_entries(None, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.message.id)
        .collect();
    assert_eq!(left, ["msg_pending"]);
}
