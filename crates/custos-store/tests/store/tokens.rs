//! Org-wide PII tokens: written only with the records that use them, compare-and-set against
//! concurrent minting, scoped to their org, read back exactly.

use std::sync::Arc;

use custos_store::{PiiToken, RecordState, Store, TokenBatch, TokenResolution};

use crate::support::*;

/// A token row as core would mint it (the store never interprets lookup or sealed value).
fn token(entity: &str, seq: u64, lookup: &str, subject: Option<&str>) -> PiiToken {
    PiiToken {
        token: format!("<{entity}_{seq}>"),
        entity: entity.to_string(),
        seq,
        lookup: lookup.to_string(),
        sealed_value: format!("sealed:{lookup}\0\u{1}\u{ff}").into_bytes(),
        subject_ref: subject.map(str::to_string),
        created_at: now_us(),
    }
}

fn minting(tokens: &[&PiiToken]) -> TokenBatch {
    TokenBatch {
        minted: tokens.iter().map(|t| (*t).clone()).collect(),
        existing: vec![],
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub async fn tokens_are_written_with_their_records(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let entities = strings(&["EMAIL_ADDRESS", "PERSON"]);

    // A fresh org has no tokens: nothing found, numbering starts at 0 for every asked kind.
    assert_eq!(
        store
            .resolve_pii_tokens(&a, &strings(&["l-ana", "l-mail"]), &entities)
            .await
            .unwrap(),
        TokenResolution {
            found: vec![],
            last_seq: vec![("EMAIL_ADDRESS".into(), 0), ("PERSON".into(), 0)],
        }
    );

    let ana = token("PERSON", 1, "l-ana", Some("subject-1"));
    let mail = token("EMAIL_ADDRESS", 1, "l-mail", None);
    let ids = v7_ids(3);
    let rows = [
        record(&ids[0], "messages", Some("subject-1"), RecordState::Active),
        record(&ids[1], "messages", None, RecordState::Active),
    ];
    let audit = [
        event(Some(&a), "record.create", "record:0"),
        event(Some(&a), "record.create", "record:1"),
    ];
    assert!(store
        .insert_records_with_tokens(&a, &rows, &minting(&[&ana, &mail]), &audit)
        .await
        .unwrap());
    book.appended(&audit);
    for r in &rows {
        assert_eq!(store.record(&a, &r.id).await.unwrap().as_ref(), Some(r));
    }

    // Read back exactly, by lookup and by pseudonym; unknown ones are left out.
    let mut found = store
        .resolve_pii_tokens(&a, &strings(&["l-mail", "l-ana", "l-nobody"]), &entities)
        .await
        .unwrap();
    found.found.sort();
    assert_eq!(
        found,
        TokenResolution {
            found: vec![
                ("l-ana".into(), "<PERSON_1>".into()),
                ("l-mail".into(), "<EMAIL_ADDRESS_1>".into()),
            ],
            last_seq: vec![("EMAIL_ADDRESS".into(), 1), ("PERSON".into(), 1)],
        }
    );
    let mut got = store
        .pii_tokens(
            &a,
            &strings(&[
                "<PERSON_1>",
                "<PERSON_9>",
                "<EMAIL_ADDRESS_1>",
                "<PERSON_1>",
            ]),
        )
        .await
        .unwrap();
    got.sort_by(|x, y| x.token.cmp(&y.token));
    assert_eq!(got, vec![mail.clone(), ana.clone()]);

    // A second batch relies on an existing token and mints the next number of its kind.
    let bo = token("PERSON", 2, "l-bo", None);
    let batch = TokenBatch {
        minted: vec![bo.clone()],
        existing: strings(&["l-ana"]),
    };
    let row = record(&ids[2], "messages", None, RecordState::Active);
    let audit = [event(Some(&a), "record.create", "record:2")];
    assert!(store
        .insert_records_with_tokens(&a, std::slice::from_ref(&row), &batch, &audit)
        .await
        .unwrap());
    book.appended(&audit);
    let r = store
        .resolve_pii_tokens(&a, &[], &strings(&["PERSON", "US_SSN"]))
        .await
        .unwrap();
    assert_eq!(r.last_seq, vec![("PERSON".into(), 2), ("US_SSN".into(), 0)]);
    assert_eq!(
        store
            .pii_tokens(&a, &strings(&["<PERSON_2>"]))
            .await
            .unwrap(),
        vec![bo]
    );
    book.verify(store).await;
}

pub async fn tokens_insert_is_compare_and_set(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let ana = token("PERSON", 1, "l-ana", None);
    let ids = v7_ids(5);
    let first = record(&ids[0], "messages", None, RecordState::Active);
    let audit = [event(Some(&a), "record.create", "record:0")];
    assert!(store
        .insert_records_with_tokens(&a, std::slice::from_ref(&first), &minting(&[&ana]), &audit)
        .await
        .unwrap());
    book.appended(&audit);

    let lost = |batch: TokenBatch, id: &str| {
        let row = record(id, "messages", None, RecordState::Active);
        let audit = [event(Some(&a), "record.create", id)];
        let a = a.clone();
        async move {
            let stored = store
                .insert_records_with_tokens(&a, std::slice::from_ref(&row), &batch, &audit)
                .await
                .unwrap();
            assert!(!stored, "the batch must lose");
            assert_eq!(store.record(&a, &row.id).await.unwrap(), None);
        }
    };
    // The same value minted again (another batch got there first) ...
    let again = token("PERSON", 2, "l-ana", None);
    let fresh = token("EMAIL_ADDRESS", 1, "l-mail", None);
    lost(minting(&[&fresh, &again]), &ids[1]).await;
    // ... the same number for another value ...
    let clash = token("PERSON", 1, "l-bo", None);
    lost(minting(&[&clash]), &ids[2]).await;
    // ... or a token the batch relies on is gone.
    let missing = TokenBatch {
        minted: vec![fresh.clone()],
        existing: strings(&["l-ana", "l-erased"]),
    };
    lost(missing, &ids[3]).await;
    // Nothing of a lost batch stays: no token, no record, no audit event.
    assert_eq!(
        store
            .resolve_pii_tokens(&a, &strings(&["l-ana", "l-bo", "l-mail"]), &[])
            .await
            .unwrap()
            .found,
        vec![("l-ana".to_string(), "<PERSON_1>".to_string())]
    );
    assert_eq!(
        store
            .pii_tokens(&a, &strings(&["<PERSON_1>"]))
            .await
            .unwrap(),
        vec![ana]
    );
    book.verify(store).await;

    // A batch whose records fail (duplicate id) keeps none of its tokens either.
    let dup = record(&ids[0], "files", None, RecordState::Active);
    assert_conflict(
        store
            .insert_records_with_tokens(
                &a,
                &[dup],
                &minting(&[&fresh]),
                &[event(Some(&a), "record.create", "record:dup")],
            )
            .await,
    );
    assert!(store
        .pii_tokens(&a, &strings(&["<EMAIL_ADDRESS_1>"]))
        .await
        .unwrap()
        .is_empty());

    // And a failed audit append keeps nothing (fail closed).
    h.break_audit_log().await;
    let row = record(&ids[4], "messages", None, RecordState::Active);
    assert_audit_down(
        store
            .insert_records_with_tokens(
                &a,
                std::slice::from_ref(&row),
                &minting(&[&fresh]),
                &[event(Some(&a), "record.create", "record:audit-down")],
            )
            .await,
    );
    h.repair_audit_log().await;
    assert_eq!(store.record(&a, &row.id).await.unwrap(), None);
    assert!(store
        .pii_tokens(&a, &strings(&["<EMAIL_ADDRESS_1>"]))
        .await
        .unwrap()
        .is_empty());
    book.verify(store).await;
}

pub async fn tokens_are_scoped_to_their_org(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    // The same pseudonym and even the same lookup in two orgs are two unrelated tokens.
    let in_a = token("PERSON", 1, "l-same", Some("sa"));
    let mut in_b = token("PERSON", 1, "l-same", Some("sb"));
    in_b.sealed_value = b"sealed for B".to_vec();
    let ids = v7_ids(2);
    for (scope, t, id) in [(&a, &in_a, &ids[0]), (&b, &in_b, &ids[1])] {
        let audit = [event(Some(scope), "record.create", id)];
        let row = record(id, "messages", None, RecordState::Active);
        assert!(store
            .insert_records_with_tokens(scope, std::slice::from_ref(&row), &minting(&[t]), &audit)
            .await
            .unwrap());
        book.appended(&audit);
    }
    assert_eq!(
        store
            .pii_tokens(&a, &strings(&["<PERSON_1>"]))
            .await
            .unwrap(),
        vec![in_a]
    );
    assert_eq!(
        store
            .pii_tokens(&b, &strings(&["<PERSON_1>"]))
            .await
            .unwrap(),
        vec![in_b]
    );

    // B's tokens neither show in A's lookups nor count in A's numbering.
    let c = create_org(store, &mut book, "C").await;
    let only_b = token("EMAIL_ADDRESS", 7, "l-only-b", None);
    let audit = [event(Some(&b), "record.create", "record:b2")];
    assert!(store
        .insert_records_with_tokens(&b, &[], &minting(&[&only_b]), &audit)
        .await
        .unwrap());
    book.appended(&audit);
    for scope in [&a, &c] {
        let r = store
            .resolve_pii_tokens(scope, &strings(&["l-only-b"]), &strings(&["EMAIL_ADDRESS"]))
            .await
            .unwrap();
        assert_eq!(r.found, vec![]);
        assert_eq!(r.last_seq, vec![("EMAIL_ADDRESS".into(), 0)]);
        assert!(store
            .pii_tokens(scope, &strings(&["<EMAIL_ADDRESS_7>"]))
            .await
            .unwrap()
            .is_empty());
    }
    // Relying on another org's token is relying on a token that is not there.
    let audit = [event(Some(&c), "record.create", "record:c")];
    let borrowed = TokenBatch {
        minted: vec![],
        existing: strings(&["l-only-b"]),
    };
    assert!(!store
        .insert_records_with_tokens(&c, &[], &borrowed, &audit)
        .await
        .unwrap());
    book.verify(store).await;
}

pub async fn concurrent_minters_of_one_number_have_one_winner(h: Harness) {
    let store: Arc<dyn Store> = h.store.clone();
    let mut book = AuditBook::default();
    let a = create_org(&*store, &mut book, "A").await;
    // Eight batches each claim <PERSON_1> and <PERSON_2> for their own values, in opposite
    // orders (the shape that deadlocks without per-org serialization on PostgreSQL).
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, a) = (store.clone(), a.clone());
            tokio::spawn(async move {
                let one = token("PERSON", 1, &format!("l-{i}-one"), None);
                let two = token("PERSON", 2, &format!("l-{i}-two"), None);
                let batch = if i % 2 == 0 {
                    minting(&[&one, &two])
                } else {
                    minting(&[&two, &one])
                };
                let audit = [event(Some(&a), "record.create", &format!("batch-{i}"))];
                let won = store
                    .insert_records_with_tokens(&a, &[], &batch, &audit)
                    .await
                    .unwrap();
                (won, audit)
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        let (won, audit) = t.await.unwrap();
        if won {
            winners += 1;
            book.appended(&audit);
        }
    }
    assert_eq!(winners, 1);
    let stored = store
        .pii_tokens(&a, &strings(&["<PERSON_1>", "<PERSON_2>"]))
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored[0].lookup.split('-').nth(1),
        stored[1].lookup.split('-').nth(1),
        "both from the winning batch"
    );
    // Audit order is not known across tasks; only the count is checked here.
    assert_eq!(store.audit_size().await.unwrap(), book.events.len() as u64);
}
