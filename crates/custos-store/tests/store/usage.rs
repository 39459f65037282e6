//! The org's records per category and state, with what is due within a window: counted in
//! the org only, sealed bytes and blobs summed, archive and purge told apart.

use custos_store::{CategoryUsage, RecordState};
use jiff::SignedDuration;

use crate::support::*;

pub async fn usage_counts_the_org_per_category_and_state(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let now = now_us();
    let week = now + SignedDuration::from_hours(24 * 7);
    let ids = v7_ids(6);
    // Messages: one archives within the week, one expires within it, one does neither.
    let mut archives = record(&ids[0], "messages", Some("s1"), RecordState::Active);
    archives.archive_at = Some(now + SignedDuration::from_hours(24));
    archives.next_due_at = archives.archive_at;
    let mut expires = record(&ids[1], "messages", Some("s1"), RecordState::Active);
    expires.archive_at = None;
    expires.expire_at = now + SignedDuration::from_hours(48);
    expires.next_due_at = Some(expires.expire_at);
    let later = record(&ids[2], "messages", None, RecordState::Active);
    // A soft-deleted message whose window ends within the week.
    let mut deleted = record(&ids[3], "messages", None, RecordState::SoftDeleted);
    deleted.next_due_at = Some(now + SignedDuration::from_hours(72));
    // Files in the archive tier, one with a blob.
    let archived = record(&ids[4], "files", None, RecordState::Archived);
    let mut blob = record(&ids[5], "files", None, RecordState::Archived);
    blob.sealed = None;
    blob.blob_size = Some(1000);
    let rows = [archives, expires, later, deleted, archived.clone(), blob];
    store.insert_records(&a, &rows, &[]).await.unwrap();
    // Org B's records count for B only.
    let other: Vec<_> = v7_ids(3)
        .iter()
        .map(|id| record(id, "messages", None, RecordState::Active))
        .collect();
    store.insert_records(&b, &other, &[]).await.unwrap();

    let sealed = |r: &custos_store::RecordRow| r.sealed.as_ref().map_or(0, |s| s.len() as u64);
    let messages_bytes: u64 = rows[..3].iter().map(sealed).sum();
    let usage = store.category_usage(&a, week).await.unwrap();
    let row = |category: &str, state: RecordState| CategoryUsage {
        category: category.into(),
        state,
        records: 0,
        bytes: 0,
        archive_due: 0,
        purge_due: 0,
    };
    assert_eq!(
        usage,
        vec![
            CategoryUsage {
                records: 2,
                bytes: sealed(&archived) + 1000,
                ..row("files", RecordState::Archived)
            },
            CategoryUsage {
                records: 3,
                bytes: messages_bytes,
                archive_due: 1,
                purge_due: 1,
                ..row("messages", RecordState::Active)
            },
            CategoryUsage {
                records: 1,
                bytes: sealed(&rows[3]),
                purge_due: 1,
                ..row("messages", RecordState::SoftDeleted)
            },
        ]
    );
    let theirs = store.category_usage(&b, week).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].records, 3);
    // Nothing is due within a window that ends now.
    let none = store.category_usage(&a, now).await.unwrap();
    assert!(
        none.iter().all(|u| u.archive_due == 0 && u.purge_due == 0),
        "{none:?}"
    );
    book.verify(store).await;
}
