//! Operators: the first one is added once (a second "first" adds nothing and appends
//! nothing), listed oldest first, with its identity.

use custos_store::{OperatorRow, PersonIdentity};

use crate::support::*;

fn operator(sub: &str) -> OperatorRow {
    OperatorRow {
        id: v7_id(),
        name: format!("op {sub}"),
        identity: PersonIdentity {
            iss: "https://login.example.com".into(),
            sub: sub.into(),
        },
        created_at: now_us(),
        created_by: "admin".into(),
    }
}

pub async fn only_the_first_operator_is_added(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    assert!(!store.has_operators().await.unwrap());
    let first = operator("op-1");
    let audit = [event(
        None,
        "operator.create",
        &format!("operator:{}", first.id),
    )];
    assert!(store.add_first_operator(&first, &audit).await.unwrap());
    book.appended(&audit);
    let late = [event(None, "operator.create", "operator:late")];
    assert!(!store
        .add_first_operator(&operator("op-2"), &late)
        .await
        .unwrap());
    assert!(store.has_operators().await.unwrap());
    assert_eq!(store.operators().await.unwrap(), vec![first]);
    book.verify(store).await;
}

/// Suspending and resuming an org each happen once; the state reads back on the org.
pub async fn an_org_is_suspended_and_resumed_once_each(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let at = now_us();
    for (state, changes) in [
        (Some(at), true),
        (Some(at), false),
        (None, true),
        (None, false),
    ] {
        let audit = [event(Some(&a), "org.suspend", "org:a")];
        assert_eq!(
            store.set_org_suspended(&a, state, &audit).await.unwrap(),
            changes,
            "{state:?}"
        );
        if changes {
            book.appended(&audit);
        }
        let (_, org) = store.org(a.org_id()).await.unwrap().unwrap();
        assert_eq!(org.suspended_at, state);
    }
    book.verify(store).await;
}
