//! Sign-ins through an identity provider on both backends: sessions with an idle limit and a
//! second-factor flag, step-up and sign-out, and pending sign-ins taken once.

use custos_store::{PendingSignIn, Session};
use jiff::ToSpan;

use crate::support::*;

fn sign_in_session(member: &str, opened: jiff::Timestamp) -> Session {
    Session {
        token_hash: key_hash(),
        member_id: member.to_string(),
        method: "oidc".into(),
        expires_at: opened + 12.hours(),
        last_used_at: None,
        second_factor: false,
        created_at: Some(opened),
        idle_seconds: Some(30 * 60),
    }
}

pub async fn sign_in_sessions_end_when_idle_stepped_up_or_signed_out(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let dana = member("Dana", &["admin"], &[], false);
    store.add_member(&a, &dana, &key_hash(), &[]).await.unwrap();
    let t0 = now_us();
    let s = sign_in_session(&dana.id, t0);
    let audit = [event(Some(&a), "auth.sign_in", "member:dana")];
    store.start_session(&a, &s, &audit).await.unwrap();
    book.appended(&audit);
    let (_, _, got) = store.session(&s.token_hash, t0).await.unwrap().unwrap();
    assert_eq!(got, s);

    // Idle: alive just before 30 minutes unused, over at 30; a noted use moves the limit.
    assert!(store
        .session(&s.token_hash, t0 + 29.minutes())
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .session(&s.token_hash, t0 + 30.minutes())
            .await
            .unwrap(),
        None
    );
    store
        .note_session_use(&a, &s.token_hash, t0 + 20.minutes())
        .await
        .unwrap();
    assert!(store
        .session(&s.token_hash, t0 + 49.minutes())
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .session(&s.token_hash, t0 + 50.minutes())
            .await
            .unwrap(),
        None
    );

    // A TOTP step-up replaces the session with one that proves a second factor.
    store
        .set_totp(&a, &dana.id, b"sealed", None, &[])
        .await
        .unwrap();
    // Enrolling a factor ends the sessions a TOTP code opened, not a sign-in's.
    assert!(store.session(&s.token_hash, t0).await.unwrap().is_some());
    let up = Session {
        token_hash: key_hash(),
        method: "oidc+totp".into(),
        second_factor: true,
        ..s.clone()
    };
    assert!(store
        .open_session(&a, &up, 5, Some(&s.token_hash), &[])
        .await
        .unwrap());
    assert_eq!(store.session(&s.token_hash, t0).await.unwrap(), None);
    let (_, _, got) = store.session(&up.token_hash, t0).await.unwrap().unwrap();
    assert!(got.second_factor);
    // ... and a stepped-up one ends with its factor.
    store
        .set_totp(&a, &dana.id, b"sealed-again", None, &[])
        .await
        .unwrap();
    assert_eq!(store.session(&up.token_hash, t0).await.unwrap(), None);
    let up = Session {
        token_hash: key_hash(),
        ..up
    };
    assert!(store.open_session(&a, &up, 6, None, &[]).await.unwrap());

    // Sign-out: once, and only in the session's own org.
    let audit = [event(Some(&a), "auth.sign_out", "member:dana")];
    assert!(!store.end_session(&b, &up.token_hash, &audit).await.unwrap());
    assert!(store.end_session(&a, &up.token_hash, &audit).await.unwrap());
    book.appended(&audit);
    assert!(!store.end_session(&a, &up.token_hash, &audit).await.unwrap());
    assert_eq!(store.session(&up.token_hash, t0).await.unwrap(), None);
    book.verify(store).await;
}

pub async fn pending_sign_ins_are_taken_once_and_expired_ones_dropped(h: Harness) {
    let store = &*h.store;
    let t0 = now_us();
    let pending = |org: Option<&str>, expires| PendingSignIn {
        state_hash: key_hash(),
        browser_hash: key_hash(),
        org_id: org.map(str::to_string),
        nonce: "n-0S6_WzA2Mj".into(),
        pkce_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        return_to: "/console".into(),
        expires_at: expires,
    };
    let old = pending(Some("org-a"), t0 + 1.minutes());
    let op = pending(None, t0 + 10.minutes());
    store.put_sign_in(&old, t0).await.unwrap();
    store.put_sign_in(&op, t0).await.unwrap();
    assert_eq!(
        store.take_sign_in(&op.state_hash).await.unwrap(),
        Some(op.clone())
    );
    assert_eq!(store.take_sign_in(&op.state_hash).await.unwrap(), None);
    // Another sign-in started after `old` expired drops it.
    let new = pending(Some("org-b"), t0 + 20.minutes());
    store.put_sign_in(&new, t0 + 2.minutes()).await.unwrap();
    assert_eq!(store.take_sign_in(&old.state_hash).await.unwrap(), None);
    assert_eq!(
        store.take_sign_in(&new.state_hash).await.unwrap(),
        Some(new)
    );
}
