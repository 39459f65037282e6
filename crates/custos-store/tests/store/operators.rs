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

/// An operator is found by its person; its sessions end when idle, when expired, or once
/// signed out.
pub async fn operator_sessions_end_when_idle_expired_or_signed_out(h: Harness) {
    use jiff::ToSpan;
    let store = &*h.store;
    let mut book = AuditBook::default();
    let olga = operator("olga");
    store.add_first_operator(&olga, &[]).await.unwrap();
    assert_eq!(
        store.operator_by_identity(&olga.identity).await.unwrap(),
        Some(olga.clone())
    );
    let stranger = PersonIdentity {
        sub: "mallory".into(),
        ..olga.identity.clone()
    };
    assert_eq!(store.operator_by_identity(&stranger).await.unwrap(), None);

    let t0 = now_us();
    let session = custos_store::OperatorSession {
        token_hash: key_hash(),
        operator_id: olga.id.clone(),
        expires_at: t0 + 2.hours(),
        created_at: t0,
        last_used_at: None,
        idle_seconds: 30 * 60,
    };
    let audit = [event(
        None,
        "auth.sign_in",
        &format!("operator:{}", olga.id),
    )];
    store
        .start_operator_session(&session, &audit)
        .await
        .unwrap();
    book.appended(&audit);
    let found = |at| store.operator_session(&session.token_hash, at);
    let (who, got) = found(t0).await.unwrap().unwrap();
    assert_eq!((who, got), (olga.clone(), session.clone()));
    assert!(found(t0 + 30.minutes()).await.unwrap().is_none(), "idle");
    store
        .note_operator_session_use(&session.token_hash, t0 + 25.minutes())
        .await
        .unwrap();
    store
        .note_operator_session_use(&session.token_hash, t0 + 1.minutes())
        .await
        .unwrap();
    assert!(
        found(t0 + 54.minutes()).await.unwrap().is_some(),
        "used at 25 min"
    );
    assert!(found(t0 + 55.minutes()).await.unwrap().is_none());
    store
        .note_operator_session_use(&session.token_hash, t0 + 119.minutes())
        .await
        .unwrap();
    assert!(found(t0 + 2.hours()).await.unwrap().is_none(), "expired");

    let audit = [event(
        None,
        "auth.sign_out",
        &format!("operator:{}", olga.id),
    )];
    assert!(store
        .end_operator_session(&session.token_hash, &audit)
        .await
        .unwrap());
    book.appended(&audit);
    assert!(!store
        .end_operator_session(&session.token_hash, &audit)
        .await
        .unwrap());
    assert!(found(t0).await.unwrap().is_none());
    book.verify(store).await;
}
