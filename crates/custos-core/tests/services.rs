//! Core services against a real SQLite store, local object store and key store, with a
//! manual clock.

mod common;

use bytes::Bytes;
use common::*;
use custos_core::{
    Caller, CoreError, FileUpload, NewHold, NewMember, NewOrg, NewRecord, Principal,
};
use futures::StreamExt;
use serde_json::json;

fn message(subject: Option<&str>, text: &str) -> NewRecord {
    NewRecord {
        category: "messages".into(),
        subject: subject.map(str::to_string),
        content: json!({ "text": text }),
        metadata: Some(json!({"channel": "web"})),
    }
}

#[tokio::test]
async fn content_is_encrypted_at_rest() {
    let env = env();
    let org = env.org("acme").await;
    let member = env.member(&org, &["member"], &[], false).await;
    let marker = "MARKER-7f3a9c1e-encrypted-at-rest";
    let with_subject = env
        .custos
        .create_record(&member, &org, message(Some("alice"), marker))
        .await
        .unwrap();
    let org_level = env
        .custos
        .create_record(&member, &org, message(None, marker))
        .await
        .unwrap();
    let body = format!("file body {marker} ").repeat(10_000);
    let file = env
        .custos
        .upload_file(
            &member,
            &org,
            FileUpload {
                category: "files".into(),
                subject: Some("alice".into()),
                file_name: Some(format!("{marker}.txt")),
                ..Default::default()
            },
            futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(body.clone()))]),
        )
        .await
        .unwrap();

    // Readable through the API...
    for id in [&with_subject.id, &org_level.id] {
        let view = env.custos.get_record(&member, &org, id).await.unwrap();
        assert_eq!(view.content["text"], marker);
    }
    let download = env
        .custos
        .download_file(&member, &org, &file.id)
        .await
        .unwrap();
    let bytes: Vec<u8> = download.body.map(|c| c.unwrap().to_vec()).concat().await;
    assert_eq!(bytes, body.as_bytes());

    // ...and in no file under the data directory (database, WAL, objects, keys). The subject
    // id is stored only as a keyed reference, so it must not appear either.
    let files = files_under(&env.dir.path().join("data"));
    assert!(
        files.len() >= 4,
        "expected db, wal, object and key files: {files:?}"
    );
    for (path, bytes) in &files {
        assert!(
            !contains(bytes, marker.as_bytes()),
            "marker found in {}",
            path.display()
        );
    }
}

#[tokio::test]
async fn ciphertext_moved_to_another_record_or_org_fails_to_open() {
    let env = env();
    let org_a = env.org("a").await;
    let org_b = env.org("b").await;
    let a = env.member(&org_a, &["member"], &[], false).await;
    let b = env.member(&org_b, &["member"], &[], false).await;
    let r1 = env
        .custos
        .create_record(&a, &org_a, message(None, "one"))
        .await
        .unwrap();
    let r2 = env
        .custos
        .create_record(&a, &org_a, message(None, "two"))
        .await
        .unwrap();
    let r3 = env
        .custos
        .create_record(&b, &org_b, message(None, "three"))
        .await
        .unwrap();

    // Copy r1's sealed bytes (and key reference) over r2 (same org) and r3 (other org)
    // directly in the database, as an attacker with database access would.
    let db = rusqlite::Connection::open(env.dir.path().join("data/custos.db")).unwrap();
    for (target_org, target) in [(&org_a, &r2.id), (&org_b, &r3.id)] {
        db.execute(
            "UPDATE records SET sealed = (SELECT sealed FROM records WHERE id = ?1),
                                key_ref = (SELECT key_ref FROM records WHERE id = ?1)
             WHERE org_seq = (SELECT seq FROM orgs WHERE id = ?2) AND id = ?3",
            rusqlite::params![r1.id, target_org, target],
        )
        .unwrap();
    }
    let err = env.custos.get_record(&a, &org_a, &r2.id).await.unwrap_err();
    assert!(
        matches!(err, CoreError::Internal { detail: ref m, .. } if m.contains("authenticate")),
        "{err:?}"
    );
    // The crypto failure is kept as the cause, not only as text.
    assert!(
        matches!(
            std::error::Error::source(&err)
                .and_then(|s| s.downcast_ref::<custos_crypto::CryptoError>()),
            Some(custos_crypto::CryptoError::Unauthentic)
        ),
        "{err:?}"
    );
    let err = env.custos.get_record(&b, &org_b, &r3.id).await.unwrap_err();
    assert!(matches!(err, CoreError::Internal { .. }), "{err:?}");
    // The original still opens.
    assert_eq!(
        env.custos
            .get_record(&a, &org_a, &r1.id)
            .await
            .unwrap()
            .content["text"],
        "one"
    );
}

#[tokio::test]
async fn members_never_reach_another_org_and_the_attempt_is_audited() {
    let env = env();
    let org_a = env.org("a").await;
    let org_b = env.org("b").await;
    let a = env.member(&org_a, &["owner"], &[], true).await;
    let b = env.member(&org_b, &["owner"], &[], true).await;
    let rb = env
        .custos
        .create_record(&b, &org_b, message(None, "b's"))
        .await
        .unwrap();
    let before = env.audit_size().await;
    let err = env.custos.get_record(&a, &org_b, &rb.id).await.unwrap_err();
    assert!(matches!(err, CoreError::NotFound(_)));
    let err = env.custos.get_record(&a, &org_a, &rb.id).await.unwrap_err();
    assert!(matches!(err, CoreError::NotFound(_)));
    let err = env
        .custos
        .soft_delete(&a, &org_b, &rb.id)
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::NotFound(_)));
    let page = env
        .custos
        .list_records(&a, &org_a, None, None, None, None)
        .await
        .unwrap();
    assert!(page.items.is_empty());
    // The two cross-org attempts were recorded as denied.
    let events = env
        .custos
        .audit_events(&admin(), None, &Default::default(), before, 100)
        .await
        .unwrap();
    let denied: Vec<_> = events
        .items
        .iter()
        .filter(|e| e.event.outcome == custos_audit::Outcome::Denied)
        .collect();
    assert_eq!(denied.len(), 2, "{:?}", events.items);
    assert_eq!(
        denied[0].event.target,
        Some(custos_audit::Target::Org(org_b.to_string()))
    );
    // b's record is untouched.
    assert_eq!(
        env.custos
            .get_record(&b, &org_b, &rb.id)
            .await
            .unwrap()
            .state,
        "active"
    );
}

#[tokio::test]
async fn category_access_rules_roles_groups_and_mfa() {
    let env = env();
    let org = env.org("acme").await;
    let plain = env.member(&org, &["member"], &[], false).await;
    let admin_no_mfa = env.member(&org, &["admin"], &[], false).await;
    let admin_mfa = env.member(&org, &["admin"], &[], true).await;
    let security = |text: &str| NewRecord {
        category: "security_logs".into(),
        subject: None,
        content: json!(text),
        metadata: None,
    };
    let before = env.audit_size().await;
    let err = env
        .custos
        .create_record(&plain, &org, security("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "forbidden");
    let err = env
        .custos
        .create_record(&admin_no_mfa, &org, security("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mfa_required");
    // Two denials audited, nothing stored.
    assert_eq!(env.audit_size().await, before + 2);
    assert!(env
        .custos
        .list_records(&admin_mfa, &org, None, None, None, None)
        .await
        .unwrap()
        .items
        .is_empty());
    let ok = env
        .custos
        .create_record(&admin_mfa, &org, security("x"))
        .await
        .unwrap();
    assert_eq!(ok.category, "security_logs");
    // Listings hide what the caller may not read.
    env.custos
        .create_record(&plain, &org, message(None, "m"))
        .await
        .unwrap();
    let seen = env
        .custos
        .list_records(&plain, &org, None, None, None, None)
        .await
        .unwrap();
    assert_eq!(seen.items.len(), 1);
    assert_eq!(seen.items[0].category, "messages");
    // The operator manages orgs; inside one that has an owner it needs a support grant.
    let err = env
        .custos
        .create_record(&admin(), &org, message(None, "m"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "grant_required");
}

#[tokio::test]
async fn bad_input_changes_nothing() {
    let env = env();
    let org = env.org("acme").await;
    let m = env.member(&org, &["member"], &[], false).await;
    let before = env.audit_size().await;
    // A batch with one bad record stores none of it.
    let batch = vec![
        message(None, "ok"),
        NewRecord {
            category: "nope".into(),
            subject: None,
            content: json!("x"),
            metadata: None,
        },
    ];
    let err = env
        .custos
        .create_records(&m, &org, batch)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown_category");
    let bad_meta = NewRecord {
        metadata: Some(json!([1, 2])),
        ..message(None, "x")
    };
    let null = NewRecord {
        content: serde_json::Value::Null,
        ..message(None, "x")
    };
    let long_subject = message(Some(&"s".repeat(300)), "x");
    for bad in [bad_meta, null, long_subject] {
        let err = env.custos.create_record(&m, &org, bad).await.unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{err}");
    }
    // An empty batch stores and audits nothing; an oversized one is refused whole.
    assert!(env
        .custos
        .create_records(&m, &org, vec![])
        .await
        .unwrap()
        .is_empty());
    let oversized = vec![message(None, "x"); custos_core::MAX_BATCH_RECORDS + 1];
    let err = env
        .custos
        .create_records(&m, &org, oversized)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert!(err.to_string().contains("10001"), "{err}");
    assert_eq!(env.audit_size().await, before);
    assert!(env
        .custos
        .list_records(&m, &org, None, None, None, None)
        .await
        .unwrap()
        .items
        .is_empty());
    // Unknown region, unknown role.
    let err = env
        .custos
        .create_org(
            &admin(),
            NewOrg {
                name: "x".into(),
                region: Some("mars".into()),
                owner: None,
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("mars"), "{err}");
    let err = env
        .custos
        .add_member(
            &env.owner(&org).await,
            &org,
            NewMember {
                name: "x".into(),
                roles: vec!["king".into()],
                groups: vec![],
                mfa: false,
                identity: None,
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("king"), "{err}");
    assert_eq!(env.audit_size().await, before);
}

#[tokio::test]
async fn soft_delete_is_restorable_inside_the_window_only() {
    let env = env();
    let org = env.org("acme").await;
    let m = env.member(&org, &["member"], &[], false).await;
    let early = env
        .custos
        .create_record(&m, &org, message(None, "a"))
        .await
        .unwrap();
    let late = env
        .custos
        .create_record(&m, &org, message(None, "b"))
        .await
        .unwrap();
    env.custos.soft_delete(&m, &org, &early.id).await.unwrap();
    env.custos.soft_delete(&m, &org, &late.id).await.unwrap();
    // Hidden at once.
    assert_eq!(
        env.custos
            .get_record(&m, &org, &early.id)
            .await
            .unwrap_err()
            .code(),
        "not_found"
    );
    assert!(env
        .custos
        .list_records(&m, &org, None, None, None, None)
        .await
        .unwrap()
        .items
        .is_empty());
    // Day 29: restorable.
    env.clock.advance(jiff::Span::new().days(29));
    env.custos.restore(&m, &org, &early.id).await.unwrap();
    assert_eq!(
        env.custos
            .get_record(&m, &org, &early.id)
            .await
            .unwrap()
            .content["text"],
        "a"
    );
    // Day 30 and later: the window (30d) has closed.
    env.clock.advance(jiff::Span::new().days(1));
    let err = env.custos.restore(&m, &org, &late.id).await.unwrap_err();
    assert_eq!(err.code(), "conflict");
}

#[tokio::test]
async fn retention_overrides_stay_within_policy_bounds_and_set_due_times() {
    let env = env();
    let org = env.org("acme").await;
    let owner = env.member(&org, &["owner"], &[], true).await;
    let m = env.member(&org, &["member"], &[], false).await;
    assert_eq!(
        env.custos
            .set_retention(&m, &org, "messages", "30d")
            .await
            .unwrap_err()
            .code(),
        "forbidden"
    );
    let err = env
        .custos
        .set_retention(&owner, &org, "messages", "8y")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert!(err.to_string().contains("7y"), "{err}");
    assert_eq!(
        env.custos
            .set_retention(&owner, &org, "messages", "soon")
            .await
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    assert_eq!(
        env.custos
            .set_retention(&owner, &org, "nope", "30d")
            .await
            .unwrap_err()
            .code(),
        "unknown_category"
    );
    env.custos
        .set_retention(&owner, &org, "messages", "30d")
        .await
        .unwrap();
    let r = env
        .custos
        .create_record(&m, &org, message(None, "x"))
        .await
        .unwrap();
    assert_eq!(r.expire_at, "2026-01-31T00:00:00Z".parse().unwrap());
    // archive_after (90d) is past the 30-day retention, so nothing is archived.
    assert_eq!(r.archive_at, None);
    let views = env.custos.retention(&owner, &org).await.unwrap();
    let messages = views.iter().find(|v| v.category == "messages").unwrap();
    assert_eq!(
        (messages.retention.as_str(), messages.overridden),
        ("30d", true)
    );
}

#[tokio::test]
async fn destroyed_subject_key_erases_that_subject_only_and_rotation_keeps_data_readable() {
    let env = env();
    let org = env.org("acme").await;
    let m = env.member(&org, &["member"], &[], false).await;
    let alice = env
        .custos
        .create_record(&m, &org, message(Some("alice"), "a"))
        .await
        .unwrap();
    let bob = env
        .custos
        .create_record(&m, &org, message(Some("bob"), "b"))
        .await
        .unwrap();
    let none = env
        .custos
        .create_record(&m, &org, message(None, "n"))
        .await
        .unwrap();
    env.vault.rotate_root().await.unwrap();
    env.vault.rotate_org(&org).await.unwrap();
    for (id, text) in [(&alice.id, "a"), (&bob.id, "b"), (&none.id, "n")] {
        assert_eq!(
            env.custos.get_record(&m, &org, id).await.unwrap().content["text"],
            text
        );
    }
    let alice_ref = env.vault.subject_ref(&org, "alice").await.unwrap();
    assert_eq!(
        env.vault.destroy_subject(&org, &alice_ref).await.unwrap(),
        1
    );
    assert_eq!(
        env.custos
            .get_record(&m, &org, &alice.id)
            .await
            .unwrap_err()
            .code(),
        "erased"
    );
    assert_eq!(
        env.custos
            .get_record(&m, &org, &bob.id)
            .await
            .unwrap()
            .content["text"],
        "b"
    );
    // Listing by subject still finds alice's (erased) record ids.
    let page = env
        .custos
        .list_records(&m, &org, Some("alice"), None, None, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn pagination_walks_every_record_once() {
    let env = env();
    let org = env.org("acme").await;
    let m = env.member(&org, &["member"], &[], false).await;
    let batch: Vec<_> = (0..25)
        .map(|i| {
            message(
                Some(if i % 2 == 0 { "even" } else { "odd" }),
                &i.to_string(),
            )
        })
        .collect();
    let created = env.custos.create_records(&m, &org, batch).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = env
            .custos
            .list_records(&m, &org, Some("even"), None, cursor.as_deref(), Some(4))
            .await
            .unwrap();
        seen.extend(page.items.into_iter().map(|i| i.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<_> = created.iter().step_by(2).map(|c| c.id.clone()).collect();
    assert_eq!(seen, expected);
    assert_eq!(
        env.custos
            .list_records(&m, &org, None, None, None, Some(0))
            .await
            .unwrap_err()
            .code(),
        "invalid_input"
    );
}

#[tokio::test]
async fn holds_are_managed_by_owners_and_audited() {
    let env = env();
    let org = env.org("acme").await;
    let owner = env.member(&org, &["owner"], &[], true).await;
    let m = env.member(&org, &["member"], &[], false).await;
    let req = NewHold {
        reason: "case 42".into(),
        subject: Some("alice".into()),
        category: None,
    };
    assert_eq!(
        env.custos
            .create_hold(&m, &org, req.clone())
            .await
            .unwrap_err()
            .code(),
        "forbidden"
    );
    let hold = env.custos.create_hold(&owner, &org, req).await.unwrap();
    assert!(hold.on_subject);
    assert_eq!(env.custos.holds(&owner, &org).await.unwrap().len(), 1);
    env.custos
        .release_hold(&owner, &org, &hold.id)
        .await
        .unwrap();
    assert_eq!(
        env.custos
            .release_hold(&owner, &org, &hold.id)
            .await
            .unwrap_err()
            .code(),
        "not_found"
    );
    assert!(env.custos.holds(&owner, &org).await.unwrap().is_empty());
}

#[tokio::test]
async fn key_rotation_is_system_only_audited_and_fails_closed() {
    let env = env();
    let org = env.org("acme").await;
    let owner = env.member(&org, &["owner"], &[], true).await;
    let m = env.member(&org, &["member"], &[], false).await;
    let kept = env
        .custos
        .create_record(&m, &org, message(Some("alice"), "a"))
        .await
        .unwrap();
    // Not even an owner with a second factor, nor the admin token, rotates keys.
    for caller in [&owner, &admin()] {
        let err = env
            .custos
            .rotate_keys(caller, Some(&org))
            .await
            .unwrap_err();
        assert!(matches!(err, CoreError::Forbidden(_)), "{err:?}");
    }
    let system = Caller::new(Principal::System);
    let before = env.audit_size().await;
    let report = env.custos.rotate_keys(&system, Some(&org)).await.unwrap();
    assert_eq!(report.new_version, 2);
    // A start and a result event.
    assert_eq!(env.audit_size().await, before + 2);
    // With the audit log refusing appends, nothing is rotated.
    env.store
        .execute_raw_for_tests(
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'down'); END;",
        )
        .await
        .unwrap();
    assert!(env.custos.rotate_keys(&system, Some(&org)).await.is_err());
    assert!(env.custos.rotate_keys(&system, None).await.is_err());
    env.store
        .execute_raw_for_tests("DROP TRIGGER no_audit;")
        .await
        .unwrap();
    let report = env.custos.rotate_keys(&system, Some(&org)).await.unwrap();
    assert_eq!(
        report.new_version, 3,
        "the refused rotation left no version behind"
    );
    let report = env.custos.rotate_keys(&system, None).await.unwrap();
    assert_eq!(report.new_version, 2);
    assert_eq!(
        env.custos
            .get_record(&m, &org, &kept.id)
            .await
            .unwrap()
            .content["text"],
        "a"
    );
    let err = env
        .custos
        .rotate_keys(&system, Some("nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::NotFound(_)), "{err:?}");
}
