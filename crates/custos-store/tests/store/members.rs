//! `MemberStore` on both backends: member changes, key rotation, TOTP factors, sessions and
//! org settings, each audited in its own transaction and scoped to its org.

use custos_store::{PersonIdentity, Session};
use jiff::ToSpan;

use crate::support::*;

fn session(member: &str, expires: jiff::Timestamp) -> Session {
    Session {
        token_hash: key_hash(),
        member_id: member.to_string(),
        method: "totp".into(),
        expires_at: expires,
        last_used_at: None,
        second_factor: true,
        created_at: None,
        idle_seconds: None,
    }
}

pub async fn members_change_rotate_and_remove(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let alice = member("Alice", &["admin"], &["legal"], false);
    let key = key_hash();
    let audit = [event(Some(&a), "member.create", "member:alice")];
    store.add_member(&a, &alice, &key, &audit).await.unwrap();
    book.appended(&audit);
    assert_eq!(store.members(&a).await.unwrap(), vec![alice.clone()]);
    assert!(store.members(&b).await.unwrap().is_empty());
    assert_eq!(store.member(&b, &alice.id).await.unwrap(), None);

    // Changes apply in the member's own org only; elsewhere nothing is written or appended.
    let mut changed = alice.clone();
    changed.roles = vec!["owner".into()];
    changed.groups = vec![];
    changed.mfa = true;
    changed.identity = Some(PersonIdentity {
        iss: "https://idp.example.com".into(),
        sub: "248289761001".into(),
    });
    let audit = [event(Some(&b), "member.update", "member:alice")];
    assert!(!store.update_member(&b, &changed, &audit).await.unwrap());
    let audit = [event(Some(&a), "member.update", "member:alice")];
    assert!(store.update_member(&a, &changed, &audit).await.unwrap());
    book.appended(&audit);
    assert_eq!(
        store.member(&a, &alice.id).await.unwrap(),
        Some(changed.clone())
    );

    // A new key replaces the old one and ends the member's sessions.
    let audit = [event(Some(&a), "session.open", "member:alice")];
    let factor = b"sealed-secret".to_vec();
    assert!(store
        .set_totp(&a, &alice.id, &factor, None, &[])
        .await
        .unwrap());
    let s = session(&alice.id, now_us() + 1.hour());
    assert!(store.open_session(&a, &s, 100, None, &audit).await.unwrap());
    book.appended(&audit);
    assert_eq!(
        store
            .member_by_identity(&a, changed.identity.as_ref().unwrap())
            .await
            .unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store
            .member_by_identity(&b, changed.identity.as_ref().unwrap())
            .await
            .unwrap(),
        None,
        "a person bound in one org is nobody in another"
    );
    let (_, by_session, _) = store
        .session(&s.token_hash, now_us())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        by_session, changed,
        "the session's member carries its identity"
    );
    // One person is one member of an org: a second member bound to the same identity is
    // refused by the store itself.
    let mut twin = member("Twin", &["member"], &[], false);
    twin.identity = changed.identity.clone();
    assert!(store.add_member(&a, &twin, &key_hash(), &[]).await.is_err());
    let new_key = key_hash();
    let audit = [event(Some(&a), "member.key_rotate", "member:alice")];
    assert!(!store
        .set_member_key(&b, &alice.id, &new_key, &[])
        .await
        .unwrap());
    assert!(store
        .set_member_key(&a, &alice.id, &new_key, &audit)
        .await
        .unwrap());
    book.appended(&audit);
    assert_eq!(store.member_by_key_hash(&key).await.unwrap(), None);
    assert_eq!(
        store.member_by_key_hash(&new_key).await.unwrap(),
        Some((a.clone(), changed.clone()))
    );
    assert_eq!(store.session(&s.token_hash, now_us()).await.unwrap(), None);

    // Removal takes the factor and sessions with it.
    let s = session(&alice.id, now_us() + 1.hour());
    assert!(store.open_session(&a, &s, 101, None, &[]).await.unwrap());
    let audit = [event(Some(&a), "member.remove", "member:alice")];
    assert!(!store.remove_member(&b, &alice.id, &[]).await.unwrap());
    assert!(store.remove_member(&a, &alice.id, &audit).await.unwrap());
    book.appended(&audit);
    assert_eq!(store.member(&a, &alice.id).await.unwrap(), None);
    assert_eq!(store.totp(&a, &alice.id).await.unwrap(), None);
    assert_eq!(store.session(&s.token_hash, now_us()).await.unwrap(), None);
    assert!(!store.remove_member(&a, &alice.id, &[]).await.unwrap());
    book.verify(store).await;
}

pub async fn totp_steps_are_used_once_and_sessions_expire(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let bob = member("Bob", &["member"], &[], false);
    store.add_member(&a, &bob, &key_hash(), &[]).await.unwrap();
    // No factor, no member elsewhere: no enrollment, no session.
    assert!(!store.set_totp(&b, &bob.id, b"x", None, &[]).await.unwrap());
    let s = session(&bob.id, now_us() + 1.hour());
    assert!(!store.open_session(&a, &s, 7, None, &[]).await.unwrap());
    let audit = [event(Some(&a), "member.totp_enroll", "member:bob")];
    assert!(store
        .set_totp(&a, &bob.id, b"sealed", None, &audit)
        .await
        .unwrap());
    book.appended(&audit);
    let factor = store.totp(&a, &bob.id).await.unwrap().unwrap();
    assert_eq!(
        (factor.sealed.as_slice(), factor.last_step),
        (&b"sealed"[..], None)
    );
    assert_eq!(store.totp(&b, &bob.id).await.unwrap(), None);

    // Step 7 once; 7 again or 6 never; 8 after it.
    let audit = [event(Some(&a), "session.open", "member:bob")];
    assert!(store.open_session(&a, &s, 7, None, &audit).await.unwrap());
    book.appended(&audit);
    for step in [7, 6] {
        let again = session(&bob.id, now_us() + 1.hour());
        let audit = [event(Some(&a), "session.open", "member:bob")];
        assert!(!store
            .open_session(&a, &again, step, None, &audit)
            .await
            .unwrap());
        assert_eq!(
            store.session(&again.token_hash, now_us()).await.unwrap(),
            None
        );
    }
    assert_eq!(
        store.totp(&a, &bob.id).await.unwrap().unwrap().last_step,
        Some(7)
    );
    let later = session(&bob.id, now_us() + 1.hour());
    assert!(store.open_session(&a, &later, 8, None, &[]).await.unwrap());

    // A session authenticates its member until it expires.
    let (scope, m, found) = store
        .session(&s.token_hash, now_us())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((scope, m, found), (a.clone(), bob.clone(), s.clone()));
    let after = s.expires_at + 1.microsecond();
    assert_eq!(store.session(&s.token_hash, after).await.unwrap(), None);

    // Re-enrolling resets the step and ends the sessions.
    assert!(store
        .set_totp(&a, &bob.id, b"other", None, &[])
        .await
        .unwrap());
    assert_eq!(
        store.totp(&a, &bob.id).await.unwrap().unwrap().last_step,
        None
    );
    assert_eq!(
        store.session(&later.token_hash, now_us()).await.unwrap(),
        None
    );
    book.verify(store).await;
}

pub async fn totp_attempts_are_counted_once_each_and_enrollment_codes_enroll_once(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let bob = member("Bob", &["member"], &[], false);
    store.add_member(&a, &bob, &key_hash(), &[]).await.unwrap();
    assert!(store
        .set_totp(&a, &bob.id, b"sealed", None, &[])
        .await
        .unwrap());
    assert_eq!(
        store.enrolled_members(&a).await.unwrap(),
        vec![bob.id.clone()]
    );
    assert!(store.enrolled_members(&b).await.unwrap().is_empty());

    // Two attempts that saw the same count: only one is counted; the other must look again.
    let at = now_us();
    assert!(store
        .reserve_totp_attempt(&a, &bob.id, 0, at)
        .await
        .unwrap());
    assert!(!store
        .reserve_totp_attempt(&a, &bob.id, 0, at)
        .await
        .unwrap());
    assert!(store
        .reserve_totp_attempt(&a, &bob.id, 1, at)
        .await
        .unwrap());
    assert!(
        !store
            .reserve_totp_attempt(&b, &bob.id, 2, at)
            .await
            .unwrap(),
        "other org"
    );
    let factor = store.totp(&a, &bob.id).await.unwrap().unwrap();
    assert_eq!((factor.failures, factor.last_failure_at), (2, Some(at)));
    // A clear (audited) sets it back; so does an accepted code.
    let audit = [event(Some(&a), "member.totp_unlock", "member:bob")];
    assert!(store
        .clear_totp_failures(&a, &bob.id, &audit)
        .await
        .unwrap());
    book.appended(&audit);
    assert_eq!(store.totp(&a, &bob.id).await.unwrap().unwrap().failures, 0);
    assert!(store
        .reserve_totp_attempt(&a, &bob.id, 0, at)
        .await
        .unwrap());
    let s = session(&bob.id, now_us() + 1.hour());
    assert!(store.open_session(&a, &s, 3, None, &[]).await.unwrap());
    assert_eq!(store.totp(&a, &bob.id).await.unwrap().unwrap().failures, 0);

    // An enrollment code: replaced by the next, used up by the enrollment it lets in.
    let expires_at = now_us() + 15.minutes();
    let code = |byte: u8| custos_store::EnrollmentCode {
        code_hash: [byte; 32],
        expires_at,
    };
    let audit = [event(Some(&a), "member.totp_enrollment_code", "member:bob")];
    assert!(store
        .set_enrollment_code(&a, &bob.id, &code(1), &audit)
        .await
        .unwrap());
    book.appended(&audit);
    assert!(store
        .set_enrollment_code(&a, &bob.id, &code(2), &[])
        .await
        .unwrap());
    assert!(!store
        .set_enrollment_code(&b, &bob.id, &code(3), &[])
        .await
        .unwrap());
    assert_eq!(
        store.enrollment_code(&a, &bob.id).await.unwrap(),
        Some(code(2))
    );
    let replaced = store
        .set_totp(&a, &bob.id, b"new", Some(&[1; 32]), &[])
        .await;
    assert!(
        matches!(replaced, Err(custos_store::StoreError::Conflict(_))),
        "{replaced:?}"
    );
    assert_eq!(
        store.totp(&a, &bob.id).await.unwrap().unwrap().sealed,
        b"sealed",
        "a refused code changes nothing"
    );
    assert!(store
        .set_totp(&a, &bob.id, b"new", Some(&[2; 32]), &[])
        .await
        .unwrap());
    assert_eq!(store.enrollment_code(&a, &bob.id).await.unwrap(), None);
    let again = store
        .set_totp(&a, &bob.id, b"newer", Some(&[2; 32]), &[])
        .await;
    assert!(matches!(again, Err(custos_store::StoreError::Conflict(_))));
    book.verify(store).await;
}

pub async fn org_settings_upsert_per_org(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    assert_eq!(store.org_settings(&a).await.unwrap(), None);
    for doc in [
        r#"{"require_mfa_for_admins":true}"#,
        r#"{"session_timeout":"5m"}"#,
    ] {
        let audit = [event(Some(&a), "settings.update", "org:a")];
        store.set_org_settings(&a, doc, &audit).await.unwrap();
        book.appended(&audit);
        assert_eq!(store.org_settings(&a).await.unwrap().as_deref(), Some(doc));
    }
    assert_eq!(store.org_settings(&b).await.unwrap(), None);
    book.verify(store).await;
}

/// Last use only moves forward (key use moves the key's time too, session use only the
/// member's and the session's); disabling closes the sessions and counts once; enabling
/// counts once; nothing crosses orgs.
pub async fn last_use_moves_forward_and_disabling_closes_sessions(h: Harness) {
    let store = &*h.store;
    let mut book = AuditBook::default();
    let a = create_org(store, &mut book, "A").await;
    let b = create_org(store, &mut book, "B").await;
    let carol = member("Carol", &["member"], &[], false);
    store
        .add_member(&a, &carol, &key_hash(), &[])
        .await
        .unwrap();
    let t0 = now_us();
    let read = || async { store.member(&a, &carol.id).await.unwrap().unwrap() };

    store
        .note_member_use(&a, &carol.id, t0, true)
        .await
        .unwrap();
    let m = read().await;
    assert_eq!((m.last_used_at, m.key_last_used_at), (Some(t0), Some(t0)));
    // A session use later moves the member's time, not the key's; an earlier one nothing.
    let t1 = t0 + 5.minutes();
    store
        .note_member_use(&a, &carol.id, t1, false)
        .await
        .unwrap();
    store
        .note_member_use(&a, &carol.id, t0 - 1.hour(), true)
        .await
        .unwrap();
    // Another org's scope reaches nothing.
    store
        .note_member_use(&b, &carol.id, t1 + 1.hour(), true)
        .await
        .unwrap();
    let m = read().await;
    assert_eq!((m.last_used_at, m.key_last_used_at), (Some(t1), Some(t0)));

    // A session's own last use.
    store
        .set_totp(&a, &carol.id, b"sealed", None, &[])
        .await
        .unwrap();
    let s = session(&carol.id, t0 + 1.hour());
    assert!(store.open_session(&a, &s, 1, None, &[]).await.unwrap());
    store.note_session_use(&a, &s.token_hash, t1).await.unwrap();
    store
        .note_session_use(&b, &s.token_hash, t1 + 1.minutes())
        .await
        .unwrap();
    let (_, _, got) = store.session(&s.token_hash, t0).await.unwrap().unwrap();
    assert_eq!(got.last_used_at, Some(t1));

    // Disable: once, sessions closed; enable: once.
    let audit = [event(Some(&a), "member.disable", "member:carol")];
    assert!(!store
        .set_member_disabled(&b, &carol.id, Some(t1), &audit)
        .await
        .unwrap());
    assert!(store
        .set_member_disabled(&a, &carol.id, Some(t1), &audit)
        .await
        .unwrap());
    book.appended(&audit);
    assert!(!store
        .set_member_disabled(&a, &carol.id, Some(t1), &audit)
        .await
        .unwrap());
    assert_eq!(read().await.disabled_at, Some(t1));
    assert_eq!(store.session(&s.token_hash, t0).await.unwrap(), None);
    let audit = [event(Some(&a), "member.enable", "member:carol")];
    assert!(store
        .set_member_disabled(&a, &carol.id, None, &audit)
        .await
        .unwrap());
    book.appended(&audit);
    assert!(!store
        .set_member_disabled(&a, &carol.id, None, &audit)
        .await
        .unwrap());
    assert_eq!(read().await.disabled_at, None);
    book.verify(store).await;
}
