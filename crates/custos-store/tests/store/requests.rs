//! `RequestStore` on both backends: data subject requests (compare-and-set updates, due-time
//! order, cross-org listing by status), certificates stored with their request, and the record
//! changes of an erasure (re-seal and unlink, fold into aggregates, token destruction), each
//! audited in its own transaction and scoped to its org.

use custos_store::{
    PiiToken, RecordRewrite, RecordState, RequestCursor, RequestFilter, RequestKind, RequestStatus,
    StoredCertificate, SubjectRequest, TokenBatch,
};
use jiff::ToSpan;

use crate::support::*;

fn request(kind: RequestKind, subject: &str, due_in_days: i64) -> SubjectRequest {
    let now = now_us();
    SubjectRequest {
        id: v7_id(),
        kind,
        status: RequestStatus::Received,
        subject_ref: subject.to_string(),
        subject_sealed: Some(b"sealed\0subject".to_vec()),
        filed_by: "member:m1".into(),
        received_at: now,
        due_at: now + (due_in_days * 24).hours(),
        extended_at: None,
        extension_reason: None,
        status_reason: None,
        completed_at: None,
        progress: "{}".into(),
        version: 0,
    }
}

pub async fn requests_round_trip_and_update_by_compare_and_set(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let late = request(RequestKind::Erasure, "ref-1", 30);
    let soon = request(RequestKind::Access, "ref-2", 3);
    for q in [&late, &soon] {
        let audit = [event(
            Some(&a),
            "request.create",
            &format!("request:{}", q.id),
        )];
        store.create_request(&a, q, &audit).await.unwrap();
        book.appended(&audit);
    }
    assert_eq!(
        store.subject_request(&a, &late.id).await.unwrap(),
        Some(late.clone())
    );
    assert_eq!(store.subject_request(&b, &late.id).await.unwrap(), None);
    // By due time, and filtered.
    let all = store
        .list_requests(&a, &RequestFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(all, vec![soon.clone(), late.clone()]);
    let erasures = RequestFilter {
        kind: Some(RequestKind::Erasure),
        ..RequestFilter::default()
    };
    assert_eq!(
        store.list_requests(&a, &erasures, None, 10).await.unwrap(),
        vec![late.clone()]
    );
    let by_subject = RequestFilter {
        subject_ref: Some("ref-2".into()),
        statuses: vec![RequestStatus::Received],
        ..RequestFilter::default()
    };
    assert_eq!(
        store
            .list_requests(&a, &by_subject, None, 10)
            .await
            .unwrap(),
        vec![soon.clone()]
    );
    let after = RequestCursor {
        due_at: soon.due_at,
        id: soon.id.clone(),
    };
    assert_eq!(
        store
            .list_requests(&a, &RequestFilter::default(), Some(&after), 10)
            .await
            .unwrap(),
        vec![late.clone()]
    );
    assert!(store
        .list_requests(&b, &RequestFilter::default(), None, 10)
        .await
        .unwrap()
        .is_empty());

    // Compare-and-set: a stale version (or another org) changes nothing and appends nothing.
    let mut done = late.clone();
    done.status = RequestStatus::Completed;
    done.subject_sealed = None;
    done.completed_at = Some(now_us());
    done.progress = r#"{"phase":"certified"}"#.into();
    done.version = 1;
    let cert = StoredCertificate {
        id: v7_id(),
        request_id: late.id.clone(),
        issued_at: now_us(),
        body: "{\"signed\":true}".into(),
    };
    let audit = [event(Some(&b), "request.complete", "request:x")];
    assert!(!store
        .update_request(&b, &done, Some(&cert), &audit)
        .await
        .unwrap());
    let audit = [event(
        Some(&a),
        "request.complete",
        &format!("request:{}", late.id),
    )];
    assert!(store
        .update_request(&a, &done, Some(&cert), &audit)
        .await
        .unwrap());
    book.appended(&audit);
    assert!(!store
        .update_request(
            &a,
            &done,
            None,
            &[event(Some(&a), "request.complete", "request:y")]
        )
        .await
        .unwrap());
    assert_eq!(
        store.subject_request(&a, &late.id).await.unwrap(),
        Some(done.clone())
    );
    assert_eq!(
        store.certificates(&a, &late.id).await.unwrap(),
        vec![cert.clone()]
    );
    assert!(store.certificates(&b, &late.id).await.unwrap().is_empty());

    // Across orgs by status and due time (the SLA report, the resumer).
    let open = store
        .requests_by_status(
            &[RequestStatus::Received],
            None,
            now_us() + (10 * 24).hours(),
            10,
        )
        .await
        .unwrap();
    assert_eq!(open, vec![(a.clone(), soon.clone())]);
    let none = store
        .requests_by_status(&[RequestStatus::Received], None, now_us(), 10)
        .await
        .unwrap();
    assert!(none.is_empty());
    // A lower bound leaves out what came due before it.
    let from = |t| async move {
        store
            .requests_by_status(
                &[RequestStatus::Received],
                Some(t),
                now_us() + (10 * 24).hours(),
                10,
            )
            .await
            .unwrap()
    };
    assert_eq!(from(soon.due_at).await, vec![(a.clone(), soon.clone())]);
    assert!(from(soon.due_at + 1.second()).await.is_empty());
    book.verify(store).await;
}

pub async fn erasure_changes_records_and_tokens_in_their_org_only(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let ids = v7_ids(5);
    let rows = vec![
        record(&ids[0], "interactions", Some("alice"), RecordState::Active),
        record(&ids[1], "analytics", Some("alice"), RecordState::Active),
        record(
            &ids[2],
            "analytics",
            Some("alice"),
            RecordState::SoftDeleted,
        ),
        record(&ids[3], "messages", Some("alice"), RecordState::Archived),
        record(&ids[4], "messages", Some("bob"), RecordState::Active),
    ];
    let tokens = TokenBatch {
        minted: ["alice", "bob"]
            .iter()
            .enumerate()
            .map(|(i, s)| PiiToken {
                token: format!("<PERSON_{}>", i + 1),
                entity: "PERSON".into(),
                seq: i as u64 + 1,
                lookup: format!("lookup-{s}"),
                sealed_value: b"sealed".to_vec(),
                subject_ref: Some(s.to_string()),
                created_at: now_us(),
            })
            .collect(),
        existing: vec![],
    };
    let audit = [event(Some(&a), "record.create", "records")];
    assert!(store
        .insert_records_with_tokens(&a, &rows, &tokens, &audit)
        .await
        .unwrap());
    book.appended(&audit);

    let mut counts = store.subject_record_counts(&a, "alice").await.unwrap();
    counts.sort_by(|x, y| (&x.category, x.state.as_str()).cmp(&(&y.category, y.state.as_str())));
    let summary: Vec<(&str, RecordState, u64)> = counts
        .iter()
        .map(|c| (c.category.as_str(), c.state, c.records))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("analytics", RecordState::Active, 1),
            ("analytics", RecordState::SoftDeleted, 1),
            ("interactions", RecordState::Active, 1),
            ("messages", RecordState::Archived, 1),
        ]
    );
    assert!(store
        .subject_record_counts(&b, "alice")
        .await
        .unwrap()
        .is_empty());

    // Re-seal and unlink, by compare-and-set on the key: a second pass changes nothing.
    let rewrite = RecordRewrite {
        id: ids[0].clone(),
        from_key_ref: rows[0].key_ref.clone(),
        key_ref: "org:1".into(),
        sealed: Some(b"anonymized".to_vec()),
        pii: serde_json::json!({}),
    };
    assert_eq!(
        store
            .rewrite_records(&b, std::slice::from_ref(&rewrite), &[])
            .await
            .unwrap(),
        0
    );
    let audit = [event(Some(&a), "subject.anonymize", "request:r")];
    assert_eq!(
        store
            .rewrite_records(&a, std::slice::from_ref(&rewrite), &audit)
            .await
            .unwrap(),
        1
    );
    book.appended(&audit);
    let audit = [event(Some(&a), "subject.anonymize", "request:r")];
    assert_eq!(
        store.rewrite_records(&a, &[rewrite], &audit).await.unwrap(),
        0
    );
    book.appended(&audit);
    let row = store.record(&a, &ids[0]).await.unwrap().unwrap();
    assert_eq!((row.subject_ref, row.key_ref.as_str()), (None, "org:1"));
    assert_eq!(row.sealed.as_deref(), Some(&b"anonymized"[..]));

    // An archived record keeps its (empty) hot content when rewritten without a new one.
    let archived = RecordRewrite {
        id: ids[3].clone(),
        from_key_ref: rows[3].key_ref.clone(),
        key_ref: "org:1".into(),
        sealed: None,
        pii: serde_json::json!({}),
    };
    let audit = [event(Some(&a), "subject.anonymize", "request:r")];
    assert_eq!(
        store
            .rewrite_records(&a, &[archived], &audit)
            .await
            .unwrap(),
        1
    );
    book.appended(&audit);
    let row = store.record(&a, &ids[3]).await.unwrap().unwrap();
    assert_eq!(row.sealed, rows[3].sealed);

    // Aggregate: counted per category and month, marked for purge, unlinked; once.
    let targets = vec![
        (ids[1].clone(), RecordState::Active),
        (ids[2].clone(), RecordState::SoftDeleted),
        // Not in this state any more: skipped, not counted.
        (ids[4].clone(), RecordState::Archived),
    ];
    let audit = [event(Some(&a), "subject.aggregate", "request:r")];
    assert_eq!(
        store
            .aggregate_records(&a, &targets, now_us(), &audit)
            .await
            .unwrap(),
        2
    );
    book.appended(&audit);
    let audit = [event(Some(&a), "subject.aggregate", "request:r")];
    assert_eq!(
        store
            .aggregate_records(&a, &targets, now_us(), &audit)
            .await
            .unwrap(),
        0
    );
    book.appended(&audit);
    let aggregates = store.erasure_aggregates(&a).await.unwrap();
    assert_eq!(aggregates.len(), 1);
    assert_eq!(
        (aggregates[0].category.as_str(), aggregates[0].records),
        ("analytics", 2)
    );
    assert_eq!(
        aggregates[0].period.len(),
        7,
        "YYYY-MM: {}",
        aggregates[0].period
    );
    assert!(store.erasure_aggregates(&b).await.unwrap().is_empty());
    // Marked for purge as an erasure, so the deletion log will say why it went.
    let row = store.record(&a, &ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.subject_ref),
        (RecordState::ErasureRequested, None)
    );

    // Tokens of the subject go; another subject's stay.
    assert_eq!(
        store
            .destroy_subject_tokens(&b, "alice", &[])
            .await
            .unwrap(),
        0
    );
    let audit = [event(Some(&a), "subject.tokens_destroy", "request:r")];
    assert_eq!(
        store
            .destroy_subject_tokens(&a, "alice", &audit)
            .await
            .unwrap(),
        1
    );
    book.appended(&audit);
    let left = store
        .pii_tokens(&a, &["<PERSON_1>".into(), "<PERSON_2>".into()])
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].subject_ref.as_deref(), Some("bob"));
    book.verify(store).await;
}

pub async fn subject_contacts_are_kept_per_org_and_go_with_the_tokens(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "a").await;
    let b = create_org(store, &mut book, "b").await;
    let t0 = now_us();
    let audit = [event(Some(&a), "subject.contact", "org")];
    store
        .set_subject_contact(&a, "alice", Some(b"sealed-1".to_vec()), t0, &audit)
        .await
        .unwrap();
    book.appended(&audit);
    // A change replaces it; another org sees none.
    store
        .set_subject_contact(&a, "alice", Some(b"sealed-2".to_vec()), t0, &[])
        .await
        .unwrap();
    assert_eq!(
        store.subject_contact(&a, "alice").await.unwrap(),
        Some(b"sealed-2".to_vec())
    );
    assert_eq!(store.subject_contact(&b, "alice").await.unwrap(), None);
    store
        .set_subject_contact(&a, "bob", Some(b"sealed-b".to_vec()), t0, &[])
        .await
        .unwrap();
    store
        .set_subject_contact(&a, "bob", None, t0, &[])
        .await
        .unwrap();
    assert_eq!(store.subject_contact(&a, "bob").await.unwrap(), None);
    // The erasure's last step takes the contact with the tokens.
    store
        .destroy_subject_tokens(&a, "alice", &[])
        .await
        .unwrap();
    assert_eq!(store.subject_contact(&a, "alice").await.unwrap(), None);
    book.verify(store).await;
}

pub async fn a_privacy_link_is_used_once_per_org_and_forgotten_after_expiry(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "a").await;
    let b = create_org(store, &mut book, "b").await;
    let t0 = now_us();
    let mut n = 0u8;
    let mut session = || {
        n += 1;
        custos_store::PrivacySession {
            token_hash: [n; 32],
            subject_ref: "alice".into(),
            subject_sealed: b"sealed".to_vec(),
            created_at: t0,
            expires_at: t0 + 30.minutes(),
        }
    };
    let first = session();
    let audit = [event(Some(&a), "privacy.link", "org")];
    assert!(store
        .use_privacy_link(&a, "j-1", t0, &first, &audit)
        .await
        .unwrap());
    book.appended(&audit);
    let found = store
        .privacy_session(&a, &first.token_hash, t0)
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&first));
    assert!(store
        .privacy_session(&b, &first.token_hash, t0)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .privacy_session(&a, &first.token_hash, t0 + 30.minutes())
        .await
        .unwrap()
        .is_none());
    // The second use writes nothing (no session either), its audit event neither.
    let second = session();
    assert!(!store
        .use_privacy_link(&a, "j-1", t0, &second, &audit)
        .await
        .unwrap());
    assert!(store
        .privacy_session(&a, &second.token_hash, t0)
        .await
        .unwrap()
        .is_none());
    // The same id in another org is another link.
    assert!(store
        .use_privacy_link(&b, "j-1", t0, &session(), &[])
        .await
        .unwrap());
    assert!(store
        .use_privacy_link(&a, "j-2", t0 + 10.minutes(), &session(), &[])
        .await
        .unwrap());
    let audit = [event(None, "privacy.link_purge", "org")];
    assert_eq!(
        store
            .purge_privacy_link_uses(t0 - 1.second(), &audit)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.purge_privacy_link_uses(t0, &audit).await.unwrap(), 2);
    book.appended(&audit);
    // Sessions end with their lifetime; then the remaining link goes too.
    assert_eq!(
        store
            .purge_privacy_link_uses(t0 + 30.minutes(), &[])
            .await
            .unwrap(),
        4
    );
    // Forgotten: usable again as far as the store goes (the link's `exp` refuses it).
    assert!(store
        .use_privacy_link(&a, "j-1", t0, &session(), &[])
        .await
        .unwrap());
    // An erasure's last step takes the subject's identifier out of its sessions; they go on
    // by reference.
    let last = session();
    assert!(store
        .use_privacy_link(&a, "j-9", t0, &last, &[])
        .await
        .unwrap());
    store
        .destroy_subject_tokens(&a, "alice", &[])
        .await
        .unwrap();
    let kept = store
        .privacy_session(&a, &last.token_hash, t0)
        .await
        .unwrap()
        .expect("the session goes on");
    assert!(kept.subject_sealed.is_empty());
    assert_eq!(kept.subject_ref, last.subject_ref);
    book.verify(store).await;
}
