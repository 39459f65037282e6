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

pub async fn personal_tokens_are_scoped_expire_and_end_with_their_member(h: Harness) {
    use custos_store::PersonalToken;
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let erin = member("Erin", &["member"], &[], false);
    store.add_member(&a, &erin, &key_hash(), &[]).await.unwrap();
    let t0 = now_us();
    let token = |name: &str| PersonalToken {
        id: v7_id(),
        member_id: erin.id.clone(),
        name: name.into(),
        token_hash: key_hash(),
        created_at: t0,
        expires_at: t0 + 24.hours(),
        last_used_at: None,
    };
    let ci = token("ci");
    let audit = [event(Some(&a), "auth.token_create", "member:erin")];
    store.add_personal_token(&a, &ci, &audit).await.unwrap();
    book.appended(&audit);
    // Only a member of the org can hold one.
    let stray = PersonalToken {
        member_id: "nobody".into(),
        ..token("stray")
    };
    assert!(store.add_personal_token(&a, &stray, &audit).await.is_err());
    assert!(store.add_personal_token(&b, &ci, &audit).await.is_err());

    let (scope, who, got) = store
        .personal_token(&ci.token_hash, t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (scope.org_id(), who.id.as_str(), &got),
        (a.org_id(), erin.id.as_str(), &ci)
    );
    assert_eq!(
        store
            .personal_token(&ci.token_hash, t0 + 24.hours())
            .await
            .unwrap(),
        None,
        "expired"
    );
    store
        .note_personal_token_use(&a, &ci.token_hash, t0 + 1.hours())
        .await
        .unwrap();
    let listed = store.personal_tokens(&a, &erin.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at, Some(t0 + 1.hours()));
    assert!(store
        .personal_tokens(&b, &erin.id)
        .await
        .unwrap()
        .is_empty());

    // Revoked once, by its member's org only.
    let audit = [event(Some(&a), "auth.token_revoke", "member:erin")];
    assert!(!store
        .revoke_personal_token(&b, &erin.id, &ci.id, &audit)
        .await
        .unwrap());
    assert!(store
        .revoke_personal_token(&a, &erin.id, &ci.id, &audit)
        .await
        .unwrap());
    book.appended(&audit);
    assert_eq!(
        store.personal_token(&ci.token_hash, t0).await.unwrap(),
        None
    );

    // Disabling and removing the member end its tokens.
    let deploy = token("deploy");
    store.add_personal_token(&a, &deploy, &[]).await.unwrap();
    store
        .set_member_disabled(&a, &erin.id, Some(t0), &[])
        .await
        .unwrap();
    assert_eq!(
        store.personal_token(&deploy.token_hash, t0).await.unwrap(),
        None
    );
    store
        .set_member_disabled(&a, &erin.id, None, &[])
        .await
        .unwrap();
    let later = token("later");
    store.add_personal_token(&a, &later, &[]).await.unwrap();
    store.remove_member(&a, &erin.id, &[]).await.unwrap();
    assert_eq!(
        store.personal_token(&later.token_hash, t0).await.unwrap(),
        None
    );
    assert!(store
        .personal_tokens(&a, &erin.id)
        .await
        .unwrap()
        .is_empty());
    book.verify(store).await;
}
