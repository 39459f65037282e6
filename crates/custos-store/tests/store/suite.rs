//! The behaviour both backends must share, one `async fn(Harness)` per check.

use std::collections::HashSet;
use std::sync::Arc;

use custos_store::{OrgScope, RecordFilter, RecordRow, RecordState, StateChange, Store};

use crate::support::*;

async fn list_all(store: &dyn Store, scope: &OrgScope, filter: &RecordFilter) -> Vec<RecordRow> {
    store
        .list_records(scope, filter, None, u32::MAX)
        .await
        .unwrap()
}

fn ids(rows: &[RecordRow]) -> Vec<&str> {
    rows.iter().map(|r| r.id.as_str()).collect()
}

pub async fn orgs_create_get_list(h: Harness) {
    let store = &*h.store;
    assert_eq!(store.orgs().await.unwrap(), vec![]);

    // Created out of age order: `orgs()` is oldest first, not insertion order.
    let mut older = org("Older");
    let newer = org("Newer");
    older.created_at = newer.created_at - jiff::SignedDuration::from_secs(3600);
    let e1 = [event(None, "org.create", &format!("org:{}", newer.id))];
    let e2 = [event(None, "org.create", &format!("org:{}", older.id))];
    let newer_scope = store.create_org(&newer, &e1).await.unwrap();
    let older_scope = store.create_org(&older, &e2).await.unwrap();
    assert_eq!(newer_scope.org_id(), newer.id);
    assert_eq!(older_scope.org_id(), older.id);

    assert_eq!(
        store.org(&newer.id).await.unwrap(),
        Some((newer_scope.clone(), newer.clone()))
    );
    assert_eq!(
        store.org(&older.id).await.unwrap(),
        Some((older_scope, older.clone()))
    );
    assert_eq!(
        store.org(&uuid::Uuid::new_v4().to_string()).await.unwrap(),
        None
    );
    assert_eq!(store.orgs().await.unwrap(), vec![older, newer]);

    let mut book = AuditBook::default();
    book.appended(&e1);
    book.appended(&e2);
    book.verify(store).await;
}

pub async fn org_duplicate_id_conflicts(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let original = org("Original");
    let audit = [event(None, "org.create", "org:1")];
    store.create_org(&original, &audit).await.unwrap();
    book.appended(&audit);

    let mut duplicate = org("Impostor");
    duplicate.id = original.id.clone();
    duplicate.region = "us-east".into();
    assert_conflict(
        store
            .create_org(&duplicate, &[event(None, "org.create", "org:2")])
            .await,
    );

    // The first org is untouched and the failed create left no audit trace.
    assert_eq!(store.orgs().await.unwrap(), vec![original.clone()]);
    assert_eq!(store.org(&original.id).await.unwrap().unwrap().1, original);
    book.verify(store).await;
}

pub async fn members_lookup_by_key_hash(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;

    let alice = member("Alice", &["owner", "admin"], &["legal", "eng"], true);
    let bot = member("Bot", &["service"], &[], false);
    let bob = member("Bob", &["auditor"], &["finance"], false);
    let (ka, kbot, kb) = (key_hash(), key_hash(), key_hash());
    for (scope, m, k) in [(&a, &alice, &ka), (&a, &bot, &kbot), (&b, &bob, &kb)] {
        let audit = [event(
            Some(scope),
            "member.create",
            &format!("member:{}", m.id),
        )];
        store.add_member(scope, m, k, &audit).await.unwrap();
        book.appended(&audit);
    }

    assert_eq!(
        store.member_by_key_hash(&ka).await.unwrap(),
        Some((a.clone(), alice))
    );
    assert_eq!(
        store.member_by_key_hash(&kbot).await.unwrap(),
        Some((a.clone(), bot))
    );
    assert_eq!(
        store.member_by_key_hash(&kb).await.unwrap(),
        Some((b.clone(), bob))
    );
    assert_eq!(store.member_by_key_hash(&key_hash()).await.unwrap(), None);
    // A hash differing in one bit is a different key.
    let mut near = ka;
    near[31] ^= 1;
    assert_eq!(store.member_by_key_hash(&near).await.unwrap(), None);
    book.verify(store).await;
}

pub async fn member_duplicates_conflict(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let first = member("First", &["admin"], &[], true);
    let key = key_hash();
    let audit = [event(Some(&a), "member.create", "member:first")];
    store.add_member(&a, &first, &key, &audit).await.unwrap();
    book.appended(&audit);

    // The same key hash, in the same org or another one, is a conflict.
    let second = member("Second", &["member"], &[], false);
    let ev = [event(Some(&a), "member.create", "member:second")];
    assert_conflict(store.add_member(&a, &second, &key, &ev).await);
    assert_conflict(store.add_member(&b, &second, &key, &ev).await);
    // So is the same member id twice in one org, even with a fresh key.
    let fresh = key_hash();
    assert_conflict(store.add_member(&a, &first, &fresh, &ev).await);

    assert_eq!(
        store.member_by_key_hash(&key).await.unwrap(),
        Some((a.clone(), first))
    );
    assert_eq!(store.member_by_key_hash(&fresh).await.unwrap(), None);
    book.verify(store).await;
}

pub async fn records_round_trip_exactly(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let ids = v7_ids(3);

    // Every byte value, NULs included, and odd microseconds everywhere.
    let sealed: Vec<u8> = (0..=255u8).chain([0, 0, 255, 0]).collect();
    let full = RecordRow {
        id: ids[0].clone(),
        category: "uploads".into(),
        subject_ref: Some("subj:4f1c9a".into()),
        state: RecordState::Archived,
        created_at: at(1_767_225_600_000_001),
        archive_at: Some(at(1_774_998_000_999_999)),
        expire_at: at(4_102_444_800_123_457),  // 2100
        deleted_at: Some(at(-86_400_000_007)), // before 1970
        next_due_at: Some(at(1_780_000_000_654_321)),
        key_ref: "subject:4f1c9a".into(),
        sealed: Some(sealed),
        blob_size: Some(5 * 1024 * 1024 * 1024 + 7), // above u32::MAX
        pii: serde_json::json!({
            "EMAIL_ADDRESS": 2,
            "PHONE_NUMBER": 1,
            "nested": { "list": [1, 2.5, "x", null, true], "empty": {} }
        }),
    };
    // Nothing optional set: no subject, no times, pass-through (no content), no blob.
    let bare = RecordRow {
        id: ids[1].clone(),
        category: "messages".into(),
        subject_ref: None,
        state: RecordState::Active,
        created_at: at(1_767_225_600_000_000),
        archive_at: None,
        expire_at: at(1_798_761_600_000_000),
        deleted_at: None,
        next_due_at: None,
        key_ref: "org:1".into(),
        sealed: None,
        blob_size: None,
        pii: serde_json::json!({}),
    };
    // An empty sealed value is not the same as none; a zero blob size is not the same as none.
    let empty = RecordRow {
        id: ids[2].clone(),
        sealed: Some(Vec::new()),
        blob_size: Some(0),
        pii: serde_json::Value::Null,
        state: RecordState::SoftDeleted,
        ..bare.clone()
    };
    let rows = vec![full.clone(), bare.clone(), empty.clone()];
    let audit = [
        event(Some(&a), "record.create", &format!("record:{}", ids[0])),
        event(Some(&a), "record.create", &format!("record:{}", ids[1])),
        event(Some(&a), "record.create", &format!("record:{}", ids[2])),
    ];
    store.insert_records(&a, &rows, &audit).await.unwrap();
    book.appended(&audit);

    assert_eq!(
        store.record(&a, &full.id).await.unwrap(),
        Some(full.clone())
    );
    assert_eq!(
        store.record(&a, &bare.id).await.unwrap(),
        Some(bare.clone())
    );
    assert_eq!(
        store.record(&a, &empty.id).await.unwrap(),
        Some(empty.clone())
    );
    assert_eq!(store.record(&a, &v7_id()).await.unwrap(), None);
    assert_eq!(list_all(store, &a, &RecordFilter::default()).await, rows);
    book.verify(store).await;
}

pub async fn records_insert_is_all_or_none(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let ids = v7_ids(3);
    let existing = record(&ids[0], "messages", Some("s1"), RecordState::Active);
    let audit = [event(Some(&a), "record.create", "record:0")];
    store
        .insert_records(&a, std::slice::from_ref(&existing), &audit)
        .await
        .unwrap();
    book.appended(&audit);

    // A batch with one duplicate fails as a whole, after a fresh row and before another.
    let fresh1 = record(&ids[1], "messages", Some("s1"), RecordState::Active);
    let fresh2 = record(&ids[2], "messages", Some("s1"), RecordState::Active);
    let mut clash = existing.clone();
    clash.category = "files".into();
    let batch = [fresh1.clone(), clash, fresh2.clone()];
    let ev = [
        event(Some(&a), "record.create", "record:1"),
        event(Some(&a), "record.create", "record:2"),
    ];
    assert_conflict(store.insert_records(&a, &batch, &ev).await);
    assert_eq!(store.record(&a, &fresh1.id).await.unwrap(), None);
    assert_eq!(store.record(&a, &fresh2.id).await.unwrap(), None);
    assert_eq!(
        list_all(store, &a, &RecordFilter::default()).await,
        vec![existing.clone()]
    );
    book.verify(store).await;

    // Record ids are per org: another org may use the same id without touching A's record.
    let mut twin = existing.clone();
    twin.category = "files".into();
    let ev = [event(Some(&b), "record.create", "record:twin")];
    store
        .insert_records(&b, std::slice::from_ref(&twin), &ev)
        .await
        .unwrap();
    book.appended(&ev);
    assert_eq!(
        store.record(&a, &existing.id).await.unwrap(),
        Some(existing)
    );
    assert_eq!(store.record(&b, &twin.id).await.unwrap(), Some(twin));

    // An empty batch with no events is a no-op.
    store.insert_records(&a, &[], &[]).await.unwrap();
    book.verify(store).await;
}

/// A streamed insert commits only when every announced record arrived: a sender dropped
/// early, or a chunk that breaks a rule, leaves no record and no event.
pub async fn streamed_insert_is_all_or_none(h: Harness) {
    let store = h.store.clone();
    let mut book = AuditBook::default();
    let a = create_org(&*store, &mut book, "A").await;
    let ids = v7_ids(7);
    let rows: Vec<RecordRow> = ids
        .iter()
        .map(|id| record(id, "messages", Some("s1"), RecordState::Active))
        .collect();
    let audit = [event(Some(&a), "record.create", "records")];

    // Five announced, three sent, then the sender is gone: nothing is stored.
    let (sender, chunks) = custos_store::record_stream(5);
    let insert = {
        let (store, a, audit) = (store.clone(), a.clone(), audit.clone());
        tokio::spawn(async move { store.insert_record_stream(&a, chunks, &audit).await })
    };
    assert!(sender.send(rows[..2].to_vec()).await);
    assert!(sender.send(rows[2..3].to_vec()).await);
    drop(sender);
    let err = insert.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, custos_store::StoreError::Aborted(m) if m.contains("3 of 5")),
        "{err:?}"
    );
    assert!(list_all(&*store, &a, &RecordFilter::default())
        .await
        .is_empty());
    book.verify(&*store).await;

    // A duplicate id in the second chunk fails the whole stream.
    let (sender, chunks) = custos_store::record_stream(3);
    assert!(sender.send(rows[3..5].to_vec()).await);
    assert!(sender.send(vec![rows[3].clone()]).await);
    drop(sender);
    assert_conflict(store.insert_record_stream(&a, chunks, &audit).await);
    assert!(list_all(&*store, &a, &RecordFilter::default())
        .await
        .is_empty());
    book.verify(&*store).await;

    // Every record in three chunks: all stored, under the one event.
    let (sender, chunks) = custos_store::record_stream(7);
    for chunk in [&rows[..3], &rows[3..4], &rows[4..]] {
        assert!(sender.send(chunk.to_vec()).await);
    }
    drop(sender);
    store
        .insert_record_stream(&a, chunks, &audit)
        .await
        .unwrap();
    book.appended(&audit);
    assert_eq!(list_all(&*store, &a, &RecordFilter::default()).await, rows);
    book.verify(&*store).await;
}

/// Streams that overlap each get their own outcome: a failing one stores nothing and leaves
/// no event, the others store everything under their own event, whatever order the store
/// takes them in while the first holds the writer.
pub async fn overlapping_streams_succeed_or_fail_alone(h: Harness) {
    let store = h.store.clone();
    let mut book = AuditBook::default();
    let a = create_org(&*store, &mut book, "A").await;
    let rows: Vec<RecordRow> = v7_ids(6)
        .iter()
        .map(|id| record(id, "messages", None, RecordState::Active))
        .collect();
    let start = |chunks, target: &str| {
        let (store, a) = (store.clone(), a.clone());
        let audit = [event(Some(&a), "record.create", target)];
        let sent = audit.clone();
        let task = tokio::spawn(async move { store.insert_record_stream(&a, chunks, &sent).await });
        (task, audit)
    };
    // First: holds the writer until its second chunk arrives.
    let (first, chunks) = custos_store::record_stream(2);
    assert!(first.send(rows[..1].to_vec()).await);
    let (insert_first, audit_first) = start(chunks, "first");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // Second: a duplicate id within itself. Third: good. Both wait behind the first.
    let (second, chunks) = custos_store::record_stream(2);
    assert!(second.send(vec![rows[2].clone(), rows[2].clone()]).await);
    drop(second);
    let (insert_second, _) = start(chunks, "second");
    let (third, chunks) = custos_store::record_stream(3);
    assert!(third.send(rows[3..].to_vec()).await);
    drop(third);
    let (insert_third, audit_third) = start(chunks, "third");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(first.send(rows[1..2].to_vec()).await);
    drop(first);

    insert_first.await.unwrap().unwrap();
    assert_conflict(insert_second.await.unwrap());
    insert_third.await.unwrap().unwrap();
    let mut stored = rows[..2].to_vec();
    stored.extend_from_slice(&rows[3..]);
    assert_eq!(
        list_all(&*store, &a, &RecordFilter::default()).await,
        stored
    );
    // Two events, one per stored stream, in the order the store wrote them.
    let tail = store
        .audit_entries(None, book.events.len() as u64, u32::MAX)
        .await
        .unwrap();
    let leaf = |audit: &[custos_audit::AuditEvent]| audit[0].to_canonical_bytes();
    let order: Vec<&[custos_audit::AuditEvent]> =
        if tail.first().map(|e| &e.leaf) == Some(&leaf(&audit_first)) {
            vec![&audit_first, &audit_third]
        } else {
            vec![&audit_third, &audit_first]
        };
    for audit in order {
        book.appended(audit);
    }
    book.verify(&*store).await;
}

/// Twelve records of org A over two categories, two subjects (and none), three states, plus
/// look-alike records in org B; returns A's records in id order.
async fn seed_filter_corpus(
    store: &dyn Store,
    book: &mut AuditBook,
) -> (OrgScope, OrgScope, Vec<RecordRow>) {
    let a = create_org(store, book, "A").await;
    let b = create_org(store, book, "B").await;
    let states = [
        RecordState::Active,
        RecordState::Archived,
        RecordState::SoftDeleted,
    ];
    let subjects = [Some("s1"), Some("s2"), None];
    let categories = ["messages", "files"];
    let ids = v7_ids(12);
    let rows: Vec<RecordRow> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| record(id, categories[i % 2], subjects[i % 3], states[(i / 3) % 3]))
        .collect();
    // Inserted in reverse id order, so order of insertion cannot pass for order by id.
    let reversed: Vec<RecordRow> = rows.iter().rev().cloned().collect();
    let audit: Vec<_> = reversed
        .iter()
        .map(|r| event(Some(&a), "record.create", &format!("record:{}", r.id)))
        .collect();
    store.insert_records(&a, &reversed, &audit).await.unwrap();
    book.appended(&audit);
    // Org B has records with the same subjects and categories.
    let b_rows: Vec<RecordRow> = v7_ids(4)
        .iter()
        .enumerate()
        .map(|(i, id)| record(id, categories[i % 2], subjects[i % 2], RecordState::Active))
        .collect();
    store.insert_records(&b, &b_rows, &[]).await.unwrap();
    (a, b, rows)
}

pub async fn records_list_filters(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let (a, _b, rows) = seed_filter_corpus(store, &mut book).await;

    let filters = [
        RecordFilter::default(),
        RecordFilter {
            category: Some("files".into()),
            ..Default::default()
        },
        RecordFilter {
            subject_ref: Some("s1".into()),
            ..Default::default()
        },
        RecordFilter {
            states: vec![RecordState::Archived],
            ..Default::default()
        },
        RecordFilter {
            states: vec![RecordState::SoftDeleted, RecordState::Active],
            ..Default::default()
        },
        RecordFilter {
            subject_ref: Some("s2".into()),
            category: Some("messages".into()),
            states: vec![RecordState::Active, RecordState::SoftDeleted],
        },
        RecordFilter {
            category: Some("analytics".into()),
            ..Default::default()
        },
        RecordFilter {
            subject_ref: Some("nobody".into()),
            ..Default::default()
        },
    ];
    let mut nonempty = 0;
    for filter in &filters {
        let expected: Vec<RecordRow> = rows
            .iter()
            .filter(|r| {
                filter
                    .subject_ref
                    .as_ref()
                    .is_none_or(|s| r.subject_ref.as_ref() == Some(s))
                    && filter.category.as_ref().is_none_or(|c| &r.category == c)
                    && (filter.states.is_empty() || filter.states.contains(&r.state))
            })
            .cloned()
            .collect();
        nonempty += usize::from(!expected.is_empty());
        assert_eq!(list_all(store, &a, filter).await, expected, "{filter:?}");
    }
    // The corpus really exercises the filters (not everything empty, not everything equal).
    assert_eq!(nonempty, 6);
    let spot = RecordFilter {
        subject_ref: Some("s1".into()),
        category: Some("messages".into()),
        states: vec![],
    };
    assert_eq!(
        ids(&list_all(store, &a, &spot).await),
        vec![rows[0].id.as_str(), rows[6].id.as_str()]
    );
}

/// Subject refs that share a prefix (SQLite's subject index buckets by the first character)
/// list apart, page by page, and never across orgs.
pub async fn subject_listing_tells_refs_with_a_shared_prefix_apart(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let (one, two) = ("0123456789abcdef-one", "0123456789abcdef-two");
    let ids = v7_ids(9);
    let a_rows: Vec<RecordRow> = ids[..6]
        .iter()
        .enumerate()
        .map(|(i, id)| record(id, "messages", Some([one, two][i % 2]), RecordState::Active))
        .collect();
    store.insert_records(&a, &a_rows, &[]).await.unwrap();
    let b_rows: Vec<RecordRow> = ids[6..]
        .iter()
        .map(|id| record(id, "messages", Some(one), RecordState::Active))
        .collect();
    store.insert_records(&b, &b_rows, &[]).await.unwrap();
    for (scope, subject, expected) in [
        (&a, one, vec![&ids[0], &ids[2], &ids[4]]),
        (&a, two, vec![&ids[1], &ids[3], &ids[5]]),
        (&b, one, vec![&ids[6], &ids[7], &ids[8]]),
        (&b, two, vec![]),
        (&a, "0123456789abcdef", vec![]),
    ] {
        let filter = RecordFilter {
            subject_ref: Some(subject.into()),
            ..Default::default()
        };
        let mut listed = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_records(scope, &filter, after.as_deref(), 2)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            listed.extend(page.into_iter().map(|r| r.id));
        }
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(listed, expected, "{subject} in {}", scope.org_id());
    }
}

pub async fn records_pagination(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let (a, _b, rows) = seed_filter_corpus(store, &mut book).await;
    let all = RecordFilter::default();

    // Pages of 5 with the last id as cursor: 5, 5, 2, then nothing.
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_records(&a, &all, cursor.as_deref(), 5)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        cursor = Some(page.last().unwrap().id.clone());
        pages.push(page);
        assert!(pages.len() <= 3, "pagination does not end");
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![5, 5, 2]
    );
    assert_eq!(pages.concat(), rows);

    // The cursor is exclusive and need not be an existing id.
    let after3 = store
        .list_records(&a, &all, Some(&rows[3].id), 2)
        .await
        .unwrap();
    assert_eq!(after3, rows[4..6].to_vec());
    let mut between = rows[3].id.clone();
    between.push('!'); // sorts after rows[3].id and before rows[4].id
    assert_eq!(
        ids(&store
            .list_records(&a, &all, Some(&between), 1)
            .await
            .unwrap()),
        vec![rows[4].id.as_str()]
    );
    assert_eq!(
        store
            .list_records(&a, &all, Some(&rows[11].id), 10)
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(store.list_records(&a, &all, None, 0).await.unwrap(), vec![]);

    // Cursor and filter together.
    let files = RecordFilter {
        category: Some("files".into()),
        ..Default::default()
    };
    let odd: Vec<RecordRow> = rows.iter().skip(1).step_by(2).cloned().collect();
    let first = store.list_records(&a, &files, None, 4).await.unwrap();
    assert_eq!(first, odd[..4].to_vec());
    let rest = store
        .list_records(&a, &files, Some(&first[3].id), 4)
        .await
        .unwrap();
    assert_eq!(rest, odd[4..].to_vec());
}

pub async fn transition_is_compare_and_set(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let ids = v7_ids(2);
    let original = record(&ids[0], "messages", Some("s1"), RecordState::Active);
    let bystander = record(&ids[1], "messages", Some("s1"), RecordState::Active);
    store
        .insert_records(&a, &[original.clone(), bystander.clone()], &[])
        .await
        .unwrap();

    let deleted_at = at(1_770_000_000_000_001);
    let purge_at = at(1_772_592_000_000_002);
    let delete = StateChange {
        id: original.id.clone(),
        from: RecordState::Active,
        to: RecordState::SoftDeleted,
        deleted_at: Some(deleted_at),
        next_due_at: Some(purge_at),
    };
    let audit = [event(Some(&a), "record.delete", "record:0")];
    assert!(store.transition_record(&a, &delete, &audit).await.unwrap());
    book.appended(&audit);
    let deleted = RecordRow {
        state: RecordState::SoftDeleted,
        deleted_at: Some(deleted_at),
        next_due_at: Some(purge_at),
        ..original.clone()
    };
    assert_eq!(
        store.record(&a, &original.id).await.unwrap(),
        Some(deleted.clone())
    );
    book.verify(store).await;

    // The same change again: `from` no longer matches, so nothing changes and nothing is audited.
    let again = [event(Some(&a), "record.delete", "record:0-again")];
    assert!(!store.transition_record(&a, &delete, &again).await.unwrap());
    let wrong_from = StateChange {
        from: RecordState::Archived,
        to: RecordState::Active,
        deleted_at: None,
        next_due_at: None,
        ..delete.clone()
    };
    assert!(!store
        .transition_record(&a, &wrong_from, &again)
        .await
        .unwrap());
    let missing = StateChange {
        id: v7_id(),
        ..delete.clone()
    };
    assert!(!store.transition_record(&a, &missing, &again).await.unwrap());
    assert_eq!(store.record(&a, &original.id).await.unwrap(), Some(deleted));
    book.verify(store).await;

    // Restore clears `deleted_at`; the other record was never touched.
    let restore = StateChange {
        id: original.id.clone(),
        from: RecordState::SoftDeleted,
        to: RecordState::Active,
        deleted_at: None,
        next_due_at: None,
    };
    let audit = [
        event(Some(&a), "record.restore", "record:0"),
        event(Some(&a), "record.read", "record:0"),
    ];
    assert!(store.transition_record(&a, &restore, &audit).await.unwrap());
    book.appended(&audit);
    let restored = RecordRow {
        next_due_at: None,
        ..original.clone()
    };
    assert_eq!(
        store.record(&a, &original.id).await.unwrap(),
        Some(restored)
    );
    assert_eq!(
        store.record(&a, &bystander.id).await.unwrap(),
        Some(bystander)
    );
    book.verify(store).await;
}

pub async fn retention_overrides_upsert(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    assert_eq!(store.retention_overrides(&a).await.unwrap(), vec![]);

    for (scope, category, retention) in [
        (&a, "messages", "30d"),
        (&a, "files", "7y"),
        (&b, "messages", "1d"),
        (&a, "messages", "90d"), // replaces A's 30d
    ] {
        let audit = [event(
            Some(scope),
            "retention.set",
            &format!("category:{category}"),
        )];
        store
            .set_retention_override(scope, category, retention, &audit)
            .await
            .unwrap();
        book.appended(&audit);
    }
    let pair = |c: &str, r: &str| (c.to_string(), r.to_string());
    assert_eq!(
        store.retention_overrides(&a).await.unwrap(),
        vec![pair("files", "7y"), pair("messages", "90d")]
    );
    assert_eq!(
        store.retention_overrides(&b).await.unwrap(),
        vec![pair("messages", "1d")]
    );
    book.verify(store).await;
}

pub async fn holds_create_list_release(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    assert_eq!(store.holds(&a).await.unwrap(), vec![]);

    let whole = hold("case-1 (whole org)", None, None);
    let subject = hold("case-2", Some("subj:9"), None);
    let category = hold("case-3", None, Some("messages"));
    let both = hold("case-4", Some("subj:9"), Some("files"));
    for placed in [&whole, &subject, &category, &both] {
        let audit = [event(
            Some(&a),
            "hold.create",
            &format!("hold:{}", placed.id),
        )];
        store.create_hold(&a, placed, &audit).await.unwrap();
        book.appended(&audit);
    }
    assert_eq!(
        store.holds(&a).await.unwrap(),
        vec![
            whole.clone(),
            subject.clone(),
            category.clone(),
            both.clone()
        ]
    );
    assert_eq!(store.holds(&b).await.unwrap(), vec![]);
    assert_conflict(
        store
            .create_hold(&a, &whole, &[event(Some(&a), "hold.create", "hold:dup")])
            .await,
    );

    let released = now_us();
    let audit = [event(Some(&a), "hold.release", "hold:subject")];
    assert!(store
        .release_hold(&a, &subject.id, released, &audit)
        .await
        .unwrap());
    book.appended(&audit);
    assert_eq!(
        store.holds(&a).await.unwrap(),
        vec![whole.clone(), category.clone(), both.clone()]
    );

    // Releasing again, releasing through another org, releasing nothing: false, no audit.
    let noop = [event(Some(&a), "hold.release", "hold:noop")];
    assert!(!store
        .release_hold(&a, &subject.id, released, &noop)
        .await
        .unwrap());
    assert!(!store
        .release_hold(&b, &whole.id, released, &noop)
        .await
        .unwrap());
    assert!(!store
        .release_hold(&a, &uuid::Uuid::new_v4().to_string(), released, &noop)
        .await
        .unwrap());
    assert_eq!(store.holds(&a).await.unwrap(), vec![whole, category, both]);
    book.verify(store).await;
}

pub async fn audit_appends_exactly_the_given_events(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    book.verify(store).await; // empty log: size 0, no entries

    // Deployment-wide events carry no org.
    let boot = [
        event(None, "org.list", "org:deployment"),
        event(None, "key.rotate", "key:root"),
    ];
    store.append_audit(&boot).await.unwrap();
    book.appended(&boot);
    book.verify(store).await;

    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    book.verify(store).await;

    // Each mutating call appends exactly its events (none, one or several), in order.
    let ids = v7_ids(4);
    store
        .insert_records(
            &a,
            &[record(&ids[0], "messages", None, RecordState::Active)],
            &[],
        )
        .await
        .unwrap();
    book.verify(store).await;
    let ev = [
        event(Some(&b), "record.create", "record:1"),
        event(Some(&b), "record.create", "record:2"),
        event(Some(&b), "pii.scan", "record:2"),
    ];
    store
        .insert_records(
            &b,
            &[
                record(&ids[1], "messages", None, RecordState::Active),
                record(&ids[2], "files", Some("s"), RecordState::Active),
            ],
            &ev,
        )
        .await
        .unwrap();
    book.appended(&ev);
    book.verify(store).await;

    let m = member("M", &["member"], &[], false);
    let ev = [event(Some(&a), "member.create", "member:m")];
    store.add_member(&a, &m, &key_hash(), &ev).await.unwrap();
    book.appended(&ev);
    let ev = [event(Some(&a), "retention.set", "category:messages")];
    store
        .set_retention_override(&a, "messages", "10d", &ev)
        .await
        .unwrap();
    book.appended(&ev);
    let hb = hold("case", None, None);
    let ev = [event(Some(&b), "hold.create", "hold:b")];
    store.create_hold(&b, &hb, &ev).await.unwrap();
    book.appended(&ev);
    let ev = [event(Some(&b), "hold.release", "hold:b")];
    assert!(store.release_hold(&b, &hb.id, now_us(), &ev).await.unwrap());
    book.appended(&ev);
    let ev = [event(Some(&a), "record.archive", "record:0")];
    let change = StateChange {
        id: ids[0].clone(),
        from: RecordState::Active,
        to: RecordState::Archived,
        deleted_at: None,
        next_due_at: None,
    };
    assert!(store.transition_record(&a, &change, &ev).await.unwrap());
    book.appended(&ev);
    // A denied read by B's member, logged under A (where the data is).
    let ev = [event(Some(&a), "record.read", "record:0")
        .outcome(custos_audit::Outcome::Denied)
        .reason("wrong_org")];
    store.append_audit(&ev).await.unwrap();
    book.appended(&ev);
    book.verify(store).await;

    // The leaves decode back to the events that were appended.
    let all = store.audit_entries(None, 0, u32::MAX).await.unwrap();
    let indexes: Vec<u64> = all.iter().map(|e| e.index).collect();
    assert_eq!(indexes, (0..book.events.len() as u64).collect::<Vec<_>>());
    for (entry, expected) in all.iter().zip(&book.events) {
        let decoded = custos_audit::AuditEvent::from_canonical_bytes(&entry.leaf).unwrap();
        assert_eq!(&decoded, expected);
    }

    // Per org: only that org's events, with their global indexes.
    let for_a = store.audit_entries(Some(&a), 0, u32::MAX).await.unwrap();
    let for_b = store.audit_entries(Some(&b), 0, u32::MAX).await.unwrap();
    assert_eq!(for_a, book.entries(Some(&a)));
    assert_eq!(for_b, book.entries(Some(&b)));
    assert_eq!(for_a.len(), 4);
    assert_eq!(for_b.len(), 5);

    // `from` and `limit`.
    let whole = book.entries(None);
    assert_eq!(
        store.audit_entries(None, 3, 4).await.unwrap(),
        whole[3..7].to_vec()
    );
    assert_eq!(store.audit_entries(None, 0, 0).await.unwrap(), vec![]);
    assert_eq!(
        store
            .audit_entries(None, whole.len() as u64, 10)
            .await
            .unwrap(),
        vec![]
    );
    let a_from = for_a[1].index;
    assert_eq!(
        store.audit_entries(Some(&a), a_from, 2).await.unwrap(),
        for_a[1..3].to_vec()
    );
}

pub async fn audit_fails_closed(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let ids = v7_ids(2);
    let existing = record(&ids[0], "messages", Some("s1"), RecordState::Active);
    store
        .insert_records(&a, std::slice::from_ref(&existing), &[])
        .await
        .unwrap();
    let m = member("M", &["admin"], &[], true);
    let mk = key_hash();
    store.add_member(&a, &m, &mk, &[]).await.unwrap();
    store
        .set_retention_override(&a, "messages", "30d", &[])
        .await
        .unwrap();
    let active_hold = hold("case", None, None);
    store.create_hold(&a, &active_hold, &[]).await.unwrap();
    book.verify(store).await;

    h.break_audit_log().await;

    let new_org = org("Never");
    assert_audit_down(
        store
            .create_org(&new_org, &[event(None, "org.create", "org:never")])
            .await,
    );
    assert_eq!(store.org(&new_org.id).await.unwrap(), None);

    let new_member = member("N", &["member"], &[], false);
    let nk = key_hash();
    assert_audit_down(
        store
            .add_member(
                &a,
                &new_member,
                &nk,
                &[event(Some(&a), "member.create", "member:n")],
            )
            .await,
    );
    assert_eq!(store.member_by_key_hash(&nk).await.unwrap(), None);

    let new_record = record(&ids[1], "messages", Some("s1"), RecordState::Active);
    assert_audit_down(
        store
            .insert_records(
                &a,
                std::slice::from_ref(&new_record),
                &[event(Some(&a), "record.create", "record:r")],
            )
            .await,
    );
    assert_eq!(store.record(&a, &new_record.id).await.unwrap(), None);

    let delete = StateChange {
        id: existing.id.clone(),
        from: RecordState::Active,
        to: RecordState::SoftDeleted,
        deleted_at: Some(now_us()),
        next_due_at: Some(now_us()),
    };
    assert_audit_down(
        store
            .transition_record(&a, &delete, &[event(Some(&a), "record.delete", "record:r")])
            .await,
    );
    assert_eq!(
        store.record(&a, &existing.id).await.unwrap(),
        Some(existing.clone())
    );

    for (category, retention) in [("messages", "1d"), ("files", "2y")] {
        assert_audit_down(
            store
                .set_retention_override(
                    &a,
                    category,
                    retention,
                    &[event(
                        Some(&a),
                        "retention.set",
                        &format!("category:{category}"),
                    )],
                )
                .await,
        );
    }
    assert_eq!(
        store.retention_overrides(&a).await.unwrap(),
        vec![("messages".to_string(), "30d".to_string())]
    );

    let new_hold = hold("case-2", Some("s1"), None);
    assert_audit_down(
        store
            .create_hold(&a, &new_hold, &[event(Some(&a), "hold.create", "hold:h")])
            .await,
    );
    assert_audit_down(
        store
            .release_hold(
                &a,
                &active_hold.id,
                now_us(),
                &[event(Some(&a), "hold.release", "hold:h")],
            )
            .await,
    );
    assert_eq!(store.holds(&a).await.unwrap(), vec![active_hold.clone()]);

    assert_audit_down(
        store
            .append_audit(&[event(None, "key.rotate", "key:k")])
            .await,
    );

    // Nothing reached the log, and nothing else changed.
    book.verify(store).await;
    assert_eq!(store.orgs().await.unwrap().len(), 1);
    assert_eq!(
        store.member_by_key_hash(&mk).await.unwrap(),
        Some((a.clone(), m))
    );
    assert_eq!(
        list_all(store, &a, &RecordFilter::default()).await,
        vec![existing.clone()]
    );

    // Once the log is back, appends continue at the next index: failed attempts left no gap.
    h.repair_audit_log().await;
    let audit = [event(Some(&a), "record.create", "record:r")];
    store
        .insert_records(&a, std::slice::from_ref(&new_record), &audit)
        .await
        .unwrap();
    book.appended(&audit);
    book.verify(store).await;
}

/// Eight tasks append at once (bare events and records with events): the log ends up with
/// every event exactly once, indexes 0..N without gaps, each task's events in its own order.
pub async fn concurrent_appends_are_gap_free(h: Harness) {
    const TASKS: usize = 8;
    const ROUNDS: usize = 6;
    let store = h.store.clone();
    let mut book = AuditBook::default();
    let a = create_org(&*store, &mut book, "A").await;
    let base = book.events.len();

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (store, a) = (Arc::clone(&store), a.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for round in 0..ROUNDS {
                let n = 1 + (t + round) % 3;
                let events: Vec<_> = (0..n)
                    .map(|i| event(Some(&a), "record.create", &format!("t{t}-r{round}-e{i}")))
                    .collect();
                if round % 2 == 0 {
                    store.append_audit(&events).await.unwrap();
                } else {
                    let r = record(&v7_id(), "messages", None, RecordState::Active);
                    store.insert_records(&a, &[r], &events).await.unwrap();
                }
                mine.extend(events);
            }
            mine
        }));
    }
    let mut per_task = Vec::new();
    for task in tasks {
        per_task.push(task.await.unwrap());
    }
    let total = base + per_task.iter().map(Vec::len).sum::<usize>();

    assert_eq!(store.audit_size().await.unwrap(), total as u64);
    let entries = store.audit_entries(None, 0, u32::MAX).await.unwrap();
    let indexes: Vec<u64> = entries.iter().map(|e| e.index).collect();
    assert_eq!(indexes, (0..total as u64).collect::<Vec<_>>());
    let leaves: Vec<&[u8]> = entries.iter().map(|e| e.leaf.as_slice()).collect();
    let distinct: HashSet<&[u8]> = leaves.iter().copied().collect();
    assert_eq!(distinct.len(), total, "duplicate leaves");
    for events in &per_task {
        let positions: Vec<usize> = events
            .iter()
            .map(|e| {
                let leaf = e.to_canonical_bytes();
                leaves
                    .iter()
                    .position(|l| *l == leaf.as_slice())
                    .expect("every appended event is in the log")
            })
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "a task's events are out of order: {positions:?}"
        );
    }
    let records = list_all(&*store, &a, &RecordFilter::default()).await;
    assert_eq!(records.len(), TASKS * ROUNDS / 2);
}

pub async fn audit_query_filters_by_actor_action_target_and_time(h: Harness) {
    let store = &*h.store;
    let a = store.create_org(&org("A"), &[]).await.unwrap();
    let b = store.create_org(&org("B"), &[]).await.unwrap();
    let events = [
        event(Some(&a), "record.create", "record:1"),
        event(Some(&a), "record.read", "record:1"),
        event(Some(&b), "record.create", "record:9"),
        custos_audit::AuditEvent::new(
            now_us(),
            custos_audit::Actor::Member("m1".into()),
            custos_audit::AuditAction::RecordCreate,
        )
        .org(a.org_id())
        .target(custos_audit::Target::Record("2".into())),
        event(None, "key.rotate", "key:root"),
    ];
    store.append_audit(&events).await.unwrap();
    let base = store.audit_size().await.unwrap() - events.len() as u64;
    let idx = |found: Vec<custos_store::AuditEntry>| -> Vec<u64> {
        found.iter().map(|e| e.index - base).collect()
    };
    let q = |filter: custos_store::AuditFilter, scope: Option<OrgScope>| async move {
        store
            .audit_query(scope.as_ref(), &filter, base, 100)
            .await
            .unwrap()
    };
    let action = custos_store::AuditFilter {
        action: Some("record.create".into()),
        ..Default::default()
    };
    assert_eq!(idx(q(action.clone(), None).await), vec![0, 2, 3]);
    assert_eq!(idx(q(action.clone(), Some(a.clone())).await), vec![0, 3]);
    let target = custos_store::AuditFilter {
        target: Some("record:1".into()),
        ..Default::default()
    };
    assert_eq!(idx(q(target, Some(a.clone())).await), vec![0, 1]);
    let actor = custos_store::AuditFilter {
        actor: Some("member:m1".into()),
        ..Default::default()
    };
    assert_eq!(idx(q(actor, None).await), vec![3]);
    // Time range: [time of event 1, time of event 3).
    let since = events[1].time;
    let until = events[3].time;
    let range = custos_store::AuditFilter {
        since: Some(since),
        until: Some(until),
        ..Default::default()
    };
    assert_eq!(idx(q(range, None).await), vec![1, 2]);
    // Another org's scope never sees A's events.
    assert!(q(action, Some(b.clone()))
        .await
        .iter()
        .all(|e| e.index - base == 2));

    // Many actions and actors in one pass over a stretch of the log.
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let by = |actions: Vec<String>, actors: Vec<String>, from: u64, end: u64, limit: u32| async move {
        store
            .audit_by_actions(base + from, base + end, &actions, &actors, limit)
            .await
            .unwrap()
    };
    let end = events.len() as u64;
    assert_eq!(
        idx(by(
            strings(&["record.create", "record.read"]),
            vec![],
            0,
            end,
            100
        )
        .await),
        vec![0, 1, 2, 3]
    );
    assert_eq!(
        idx(by(
            strings(&["record.create", "key.rotate"]),
            strings(&["member:m1"]),
            0,
            end,
            100
        )
        .await),
        vec![3]
    );
    assert_eq!(
        idx(by(strings(&["record.create"]), vec![], 1, 3, 100).await),
        vec![2]
    );
    assert_eq!(
        idx(by(strings(&["record.create"]), vec![], 0, end, 2).await),
        vec![0, 2]
    );
    assert!(by(strings(&["org.create"]), vec![], 0, end, 100)
        .await
        .is_empty());
}

fn purge_of(row: &RecordRow, purged_at: jiff::Timestamp) -> custos_store::Purge {
    custos_store::Purge {
        from: row.state,
        entry: custos_store::DeletionEntry {
            record_id: row.id.clone(),
            category: row.category.clone(),
            created_at: row.created_at,
            due_at: row.expire_at,
            purged_at,
            reason: "expired".into(),
            audit_index: None,
        },
    }
}

/// A batch purge is all or nothing: one record changed meanwhile stops the whole batch (and
/// names the rest); the retried batch leaves one event that every deletion-log row names.
pub async fn purge_is_all_or_nothing_under_one_event(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let ids = v7_ids(3);
    let rows: Vec<RecordRow> = ids
        .iter()
        .map(|id| record(id, "app_logs", None, RecordState::Active))
        .collect();
    store.insert_records(&a, &rows, &[]).await.unwrap();
    let change = StateChange {
        id: ids[1].clone(),
        from: RecordState::Active,
        to: RecordState::SoftDeleted,
        deleted_at: Some(now_us()),
        next_due_at: Some(now_us()),
    };
    let audit = [event(Some(&a), "record.delete", "record:1")];
    assert!(store.transition_record(&a, &change, &audit).await.unwrap());
    book.appended(&audit);

    let when = now_us();
    let purges: Vec<_> = rows.iter().map(|r| purge_of(r, when)).collect();
    let batch = event(Some(&a), "record.purge", "deletion_log");
    let still = store.purge_records(&a, &purges, &batch).await.unwrap();
    assert_eq!(still, Some(vec![ids[0].clone(), ids[2].clone()]));
    assert_eq!(list_all(store, &a, &RecordFilter::default()).await.len(), 3);
    assert!(store.deletion_log(&a, None, 10).await.unwrap().is_empty());
    book.verify(store).await;

    let index = store.audit_size().await.unwrap();
    let retry = [purges[0].clone(), purges[2].clone()];
    let batch = event(Some(&a), "record.purge", "deletion_log");
    assert_eq!(store.purge_records(&a, &retry, &batch).await.unwrap(), None);
    book.appended(std::slice::from_ref(&batch));
    let left = list_all(store, &a, &RecordFilter::default()).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, ids[1]);
    let log = store.deletion_log(&a, None, 10).await.unwrap();
    assert_eq!(log.len(), 2);
    for (entry, purge) in log.iter().zip(&retry) {
        assert_eq!(
            *entry,
            custos_store::DeletionEntry {
                audit_index: Some(index),
                ..purge.entry.clone()
            }
        );
    }
    book.verify(store).await;
}

/// Termination starts once (members removed, every record due at once, other orgs
/// untouched), and completes only when no record is left, dropping the org's tokens,
/// overrides and holds but keeping its row and audit trail.
pub async fn termination_starts_once_and_completes_when_empty(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let (ka, kb) = (key_hash(), key_hash());
    for (scope, k) in [(&a, &ka), (&b, &kb)] {
        let m = member("M", &["owner"], &[], false);
        store.add_member(scope, &m, k, &[]).await.unwrap();
    }
    let a_rows: Vec<RecordRow> = v7_ids(3)
        .iter()
        .map(|id| record(id, "messages", Some("s1"), RecordState::Active))
        .collect();
    let b_row = record(&v7_id(), "messages", None, RecordState::Active);
    store.insert_records(&a, &a_rows, &[]).await.unwrap();
    store
        .insert_records(&b, std::slice::from_ref(&b_row), &[])
        .await
        .unwrap();
    store
        .set_retention_override(&a, "messages", "400d", &[])
        .await
        .unwrap();
    store
        .create_hold(&a, &hold("case", None, Some("files")), &[])
        .await
        .unwrap();

    let requested = now_us();
    let audit = [event(Some(&a), "org.terminate", "org:A")];
    assert!(store
        .request_termination(&a, requested, &audit)
        .await
        .unwrap());
    book.appended(&audit);
    let again = [event(Some(&a), "org.terminate", "org:A-again")];
    assert!(!store
        .request_termination(&a, now_us(), &again)
        .await
        .unwrap());
    book.verify(store).await;
    let (_, org_a) = store.org(a.org_id()).await.unwrap().unwrap();
    assert_eq!(org_a.terminating_since, Some(requested));
    assert_eq!(org_a.terminated_at, None);
    assert_eq!(store.member_by_key_hash(&ka).await.unwrap(), None);
    assert!(store.member_by_key_hash(&kb).await.unwrap().is_some());
    for row in list_all(store, &a, &RecordFilter::default()).await {
        assert_eq!(row.next_due_at, Some(requested), "{}", row.id);
    }
    assert_eq!(store.record(&b, &b_row.id).await.unwrap(), Some(b_row));

    // Records left: not finished, nothing appended.
    let done = [event(Some(&a), "org.terminated", "org:A")];
    assert!(!store.finish_termination(&a, now_us(), &done).await.unwrap());
    let purges: Vec<_> = a_rows.iter().map(|r| purge_of(r, now_us())).collect();
    let batch = event(Some(&a), "record.purge", "deletion_log");
    assert_eq!(
        store.purge_records(&a, &purges, &batch).await.unwrap(),
        None
    );
    book.appended(std::slice::from_ref(&batch));

    // A straggler written after the start is made due, and blocks completion.
    let straggler = record(&v7_id(), "messages", None, RecordState::Active);
    store
        .insert_records(&a, std::slice::from_ref(&straggler), &[])
        .await
        .unwrap();
    assert!(!store.finish_termination(&a, now_us(), &done).await.unwrap());
    let row = store.record(&a, &straggler.id).await.unwrap().unwrap();
    assert_eq!(row.next_due_at, Some(requested));
    let batch = event(Some(&a), "record.purge", "deletion_log");
    assert_eq!(
        store
            .purge_records(&a, &[purge_of(&row, now_us())], &batch)
            .await
            .unwrap(),
        None
    );
    book.appended(std::slice::from_ref(&batch));
    book.verify(store).await;

    let finished = now_us();
    assert!(store.finish_termination(&a, finished, &done).await.unwrap());
    book.appended(&done);
    let (_, org_a) = store.org(a.org_id()).await.unwrap().unwrap();
    assert_eq!(org_a.terminated_at, Some(finished));
    assert!(store.holds(&a).await.unwrap().is_empty());
    assert!(store.retention_overrides(&a).await.unwrap().is_empty());
    assert_eq!(store.deletion_log(&a, None, 10).await.unwrap().len(), 4);
    // Finished once: asking again changes nothing.
    let late = [event(Some(&a), "org.terminated", "org:A-again")];
    assert!(!store.finish_termination(&a, now_us(), &late).await.unwrap());
    book.verify(store).await;
}

/// A restore window opens only on an archived record, is scoped to its org, and reads back.
pub async fn archive_window_opens_only_on_archived_records(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let active = record(&v7_id(), "messages", None, RecordState::Active);
    let archived = RecordRow {
        sealed: None,
        ..record(&v7_id(), "messages", None, RecordState::Archived)
    };
    store
        .insert_records(&a, &[active.clone(), archived.clone()], &[])
        .await
        .unwrap();
    let until = now_us();
    let refused = [event(Some(&a), "record.archive_restore", "record:active")];
    assert!(!store
        .open_archive_window(&a, &active.id, until, &refused)
        .await
        .unwrap());
    assert!(!store
        .open_archive_window(&b, &archived.id, until, &refused)
        .await
        .unwrap());
    assert_eq!(store.archive_window(&a, &archived.id).await.unwrap(), None);
    let audit = [event(Some(&a), "record.archive_restore", "record:archived")];
    assert!(store
        .open_archive_window(&a, &archived.id, until, &audit)
        .await
        .unwrap());
    book.appended(&audit);
    assert_eq!(
        store.archive_window(&a, &archived.id).await.unwrap(),
        Some(until)
    );
    assert_eq!(store.archive_window(&b, &archived.id).await.unwrap(), None);
    assert_eq!(store.archive_window(&a, &active.id).await.unwrap(), None);
    book.verify(store).await;
}
