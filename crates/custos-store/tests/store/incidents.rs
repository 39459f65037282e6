//! Incidents on both backends: created with their first step, moved by compare-and-set with
//! each step numbered, clock alerts queued once, listings newest first.

use custos_store::{IncidentNotice, IncidentRow, IncidentStep, OutboxMessage};
use jiff::ToSpan;

use crate::support::*;

fn incident(id: &str, at: jiff::Timestamp) -> IncidentRow {
    IncidentRow {
        id: id.into(),
        title: "Leaked support key".into(),
        status: "detected".into(),
        detected_at: at,
        created_at: at,
        opened_by: "operator:op-1".into(),
        scope: "{\"orgs\":[]}".into(),
        contain_due: at + 1.hour(),
        assess_due: at + 6.hours(),
        notify_due: at + 72.hours(),
        warned: vec![],
    }
}

fn step(status: &str, at: jiff::Timestamp) -> IncidentStep {
    IncidentStep {
        seq: 0,
        status: status.into(),
        at,
        actor: "operator:op-1".into(),
        note: Some("rotated the key".into()),
    }
}

pub async fn incidents_move_forward_by_compare_and_set_and_warn_once(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let t0 = now_us();
    let audit = [event(None, "record.create", "records")];
    store
        .create_incident(&incident("inc-1", t0), &step("detected", t0), &audit)
        .await
        .unwrap();
    book.appended(&audit);
    store
        .create_incident(&incident("inc-2", t0), &step("detected", t0), &[])
        .await
        .unwrap();

    let audit = [event(None, "record.create", "records")];
    assert!(store
        .advance_incident(
            "inc-1",
            "detected",
            &step("contained", t0 + 5.minutes()),
            &audit
        )
        .await
        .unwrap());
    book.appended(&audit);
    // A second move from the old status changes nothing.
    assert!(!store
        .advance_incident(
            "inc-1",
            "detected",
            &step("assessed", t0 + 6.minutes()),
            &audit
        )
        .await
        .unwrap());
    let (row, steps) = store.incident("inc-1").await.unwrap().unwrap();
    assert_eq!(row.status, "contained");
    let seen: Vec<(u32, &str)> = steps.iter().map(|s| (s.seq, s.status.as_str())).collect();
    assert_eq!(seen, [(0, "detected"), (1, "contained")]);
    assert_eq!(steps[1].at, t0 + 5.minutes());
    assert!(store.incident("nope").await.unwrap().is_none());

    let message = OutboxMessage {
        id: "msg_w".into(),
        org_id: None,
        channel: "webhook:ops".into(),
        event_type: "incident.clock".into(),
        body: b"{}".to_vec(),
        created_at: t0,
    };
    let audit = [event(None, "record.create", "records")];
    assert!(store
        .warn_incident(
            "inc-2",
            "contain:soon",
            std::slice::from_ref(&message),
            &audit
        )
        .await
        .unwrap());
    book.appended(&audit);
    assert!(!store
        .warn_incident("inc-2", "contain:soon", &[message], &audit)
        .await
        .unwrap());
    assert_eq!(store.outbox_entries(None, None, 10).await.unwrap().len(), 1);
    let (row, _) = store.incident("inc-2").await.unwrap().unwrap();
    assert_eq!(row.warned, ["contain:soon"]);

    let ids = |rows: Vec<IncidentRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.incidents(false, None, 10).await.unwrap()),
        ["inc-2", "inc-1"]
    );
    assert_eq!(
        ids(store.incidents(false, Some("inc-2"), 10).await.unwrap()),
        ["inc-1"]
    );
    for (from, to) in [
        ("contained", "assessed"),
        ("assessed", "notified"),
        ("notified", "remediated"),
        ("remediated", "closed"),
    ] {
        assert!(store
            .advance_incident("inc-1", from, &step(to, t0 + 1.hour()), &[])
            .await
            .unwrap());
    }
    assert_eq!(
        ids(store.incidents(true, None, 10).await.unwrap()),
        ["inc-2"]
    );
    book.verify(store).await;
}

pub async fn incident_notices_are_recorded_once_with_their_messages(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let t0 = now_us();
    store
        .create_incident(&incident("inc-n", t0), &step("detected", t0), &[])
        .await
        .unwrap();
    let notice = |org: &str, at| IncidentNotice {
        incident_id: "inc-n".into(),
        org_id: org.into(),
        subjects: 2,
        records: 5,
        messages: 1,
        notified_at: at,
        actor: "operator:op-1".into(),
    };
    let message = |id: &str| OutboxMessage {
        id: id.into(),
        org_id: Some("org-a".into()),
        channel: "org-webhook:https://hooks.example/a".into(),
        event_type: "incident.notice".into(),
        body: b"{}".to_vec(),
        created_at: t0,
    };
    let audit = [event(None, "record.create", "records")];
    assert!(store
        .record_incident_notice(&notice("org-a", t0), &[message("msg_a")], &audit)
        .await
        .unwrap());
    book.appended(&audit);
    // Told once: a second notice of the same org queues nothing and audits nothing.
    assert!(!store
        .record_incident_notice(
            &notice("org-a", t0 + 1.minute()),
            &[message("msg_a2")],
            &audit
        )
        .await
        .unwrap());
    assert!(store
        .record_incident_notice(&notice("org-b", t0 + 2.minutes()), &[], &[])
        .await
        .unwrap());
    let told = store.incident_notices("inc-n").await.unwrap();
    assert_eq!(
        told,
        [notice("org-a", t0), notice("org-b", t0 + 2.minutes())]
    );
    let queued: Vec<String> = store
        .outbox_entries(None, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.message.id)
        .collect();
    assert_eq!(queued, ["msg_a"]);
    assert!(store.incident_notices("other").await.unwrap().is_empty());
    book.verify(store).await;
}
