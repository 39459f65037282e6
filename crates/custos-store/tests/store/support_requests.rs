//! Support requests: stored whole, listed newest first per org, and changed only by
//! compare-and-set transitions that append their events (and nothing when they lose).

use custos_store::{SupportRequestRow, SupportTransition};
use jiff::ToSpan;

use crate::support::*;

fn request(
    id: &str,
    created: jiff::Timestamp,
    categories: Option<Vec<String>>,
) -> SupportRequestRow {
    SupportRequestRow {
        id: id.into(),
        requested_by: "admin".into(),
        justification: "incident_response".into(),
        ticket: "INC-1".into(),
        reason: "a stuck job".into(),
        scope: "read".into(),
        categories,
        duration: "8h".into(),
        created_at: created,
        expires_at: created + 12.hours(),
        status: "pending".into(),
        decided_by: None,
        decided_at: None,
        active_until: None,
        revoked_by: None,
        revoked_at: None,
    }
}

pub async fn support_requests_round_trip_and_change_by_compare_and_set(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let t0 = now_us();
    let first = request(&v7_id(), t0, None);
    let second = request(&v7_id(), t0 + 1.seconds(), Some(vec!["messages".into()]));
    for r in [&first, &second] {
        let audit = [event(
            Some(&a),
            "support_request.create",
            &format!("support_request:{}", r.id),
        )];
        store.add_support_request(&a, r, &audit).await.unwrap();
        book.appended(&audit);
    }
    assert_eq!(
        store.support_requests(&a).await.unwrap(),
        vec![second.clone(), first.clone()],
        "newest first, stored whole"
    );
    assert!(store.support_requests(&b).await.unwrap().is_empty());
    assert_eq!(store.support_request(&b, &first.id).await.unwrap(), None);

    let approve = SupportTransition {
        from: "pending".into(),
        to: "approved".into(),
        by: "member:m1".into(),
        at: t0 + 2.seconds(),
        active_until: Some(t0 + 2.hours()),
    };
    let audit = [event(
        Some(&a),
        "support_request.approve",
        "support_request:x",
    )];
    assert!(store
        .transition_support_request(&a, &first.id, &approve, &audit)
        .await
        .unwrap());
    book.appended(&audit);
    // The loser of a race changes nothing and appends nothing; another org's id is not found.
    let late = [event(Some(&a), "support_request.deny", "support_request:x")];
    let deny = SupportTransition {
        to: "denied".into(),
        active_until: None,
        ..approve.clone()
    };
    assert!(!store
        .transition_support_request(&a, &first.id, &deny, &late)
        .await
        .unwrap());
    assert!(!store
        .transition_support_request(&b, &second.id, &approve, &late)
        .await
        .unwrap());
    let got = store.support_request(&a, &first.id).await.unwrap().unwrap();
    assert_eq!(
        (
            got.status.as_str(),
            got.decided_by.as_deref(),
            got.decided_at,
            got.active_until
        ),
        (
            "approved",
            Some("member:m1"),
            Some(approve.at),
            approve.active_until
        )
    );
    let revoke = SupportTransition {
        from: "approved".into(),
        to: "revoked".into(),
        by: "member:m2".into(),
        at: t0 + 3.seconds(),
        active_until: None,
    };
    let audit = [event(
        Some(&a),
        "support_request.revoke",
        "support_request:x",
    )];
    assert!(store
        .transition_support_request(&a, &first.id, &revoke, &audit)
        .await
        .unwrap());
    book.appended(&audit);
    let got = store.support_request(&a, &first.id).await.unwrap().unwrap();
    assert_eq!(
        (
            got.status.as_str(),
            got.revoked_by.as_deref(),
            got.revoked_at,
            got.active_until
        ),
        (
            "revoked",
            Some("member:m2"),
            Some(revoke.at),
            approve.active_until
        ),
        "revocation keeps the approval's record"
    );
    book.verify(store).await;
}
