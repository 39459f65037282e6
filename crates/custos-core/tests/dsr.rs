//! Data subject requests end to end on a real SQLite store, key store and object store:
//! deadlines, erasure (keys first, then `delete`, `anonymize`, `aggregate`), legal holds,
//! certificates that verify offline, and crash resumption at every step.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{env, Env};
use custos_core::{
    Caller, CoreError, NewHold, NewRecord, NewRequest, Principal, RequestExtension, RequestQuery,
    RequestRejection, SweepOptions,
};
use custos_store::prelude::*;
use custos_store::{RecordFilter, RequestKind, RequestStatus, RequestStore};
use jiff::ToSpan;
use serde_json::json;

const ALICE: &str = "alice-42";
const BOB: &str = "bob-7";

/// What one test deployment holds: an org, an owner with a second factor, a service
/// member, and records of two subjects in `delete`, `anonymize` and `aggregate` categories.
struct Fixture {
    env: Env,
    org: String,
    owner: Caller,
    service: Caller,
    alice: Vec<(String, &'static str)>,
    bob: Vec<(String, &'static str)>,
}

async fn record(
    env: &Env,
    caller: &Caller,
    org: &str,
    category: &str,
    subject: &str,
    content: serde_json::Value,
) -> String {
    env.custos
        .create_record(
            caller,
            org,
            NewRecord {
                category: category.into(),
                subject: Some(subject.into()),
                content,
                metadata: Some(json!({"source": format!("form of {subject}")})),
            },
        )
        .await
        .unwrap()
        .id
}

async fn fixture() -> Fixture {
    let env = env();
    let org = env.org("Acme").await;
    let owner = env.member(&org, &["owner"], &[], true).await;
    let service = env.member(&org, &["service"], &[], false).await;
    let mut alice = Vec::new();
    for i in 0..3 {
        let id = record(
            &env,
            &owner,
            &org,
            "messages",
            ALICE,
            json!(format!("message {i} from {ALICE}")),
        )
        .await;
        alice.push((id, "messages"));
    }
    let id = record(
        &env,
        &owner,
        &org,
        "interactions",
        ALICE,
        json!({
            "question": format!("{ALICE} asked about invoice 17"),
            // A name and an address: PII the category's own rule (email, phone, SSN, card)
            // keeps on the way in, and erasure must not.
            "answer": "sent to Alice Johnson at 1600 Pennsylvania Avenue NW, Washington, DC 20500"
        }),
    )
    .await;
    alice.push((id, "interactions"));
    for _ in 0..2 {
        let id = record(
            &env,
            &owner,
            &org,
            "analytics",
            ALICE,
            json!({"event": "login"}),
        )
        .await;
        alice.push((id, "analytics"));
    }
    let mut bob = Vec::new();
    for category in ["messages", "interactions", "analytics"] {
        let id = record(
            &env,
            &owner,
            &org,
            category,
            BOB,
            json!(format!("{category} of {BOB}")),
        )
        .await;
        bob.push((id, category));
    }
    Fixture {
        env,
        org,
        owner,
        service,
        alice,
        bob,
    }
}

fn verifier_key(env: &Env) -> String {
    let signer = custos_core::AuditSigner::new(common::signer(&env.dir.path().join("data")));
    signer.verifier_key()
}

async fn certificates(f: &Fixture, request: &str) -> Vec<custos_store::StoredCertificate> {
    let (scope, _) = f.env.store.org(&f.org).await.unwrap().unwrap();
    f.env.store.certificates(&scope, request).await.unwrap()
}

#[tokio::test]
async fn an_erasure_destroys_keys_applies_each_disposition_and_issues_a_verifiable_certificate() {
    let f = fixture().await;
    let erased = f
        .env
        .custos
        .create_request(
            &f.service,
            &f.org,
            NewRequest {
                kind: RequestKind::Erasure,
                subject: ALICE.into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(erased.status, RequestStatus::Completed);
    assert_eq!(erased.subject, None, "the identifier is dropped once done");
    assert_eq!(erased.certificates.len(), 1);

    // No route returns Alice's content; Bob's is intact.
    for (id, category) in &f.alice {
        let read = f.env.custos.get_record(&f.owner, &f.org, id).await;
        // Only the anonymized interaction stays (checked below).
        assert_eq!(
            read.is_ok(),
            *category == "interactions",
            "alice's {category} record {id}"
        );
    }
    for (id, _) in &f.bob {
        f.env.custos.get_record(&f.owner, &f.org, id).await.unwrap();
    }

    // The anonymized interaction stays, unlinked, with neither the identifier nor its PII.
    let (scope, _) = f.env.store.org(&f.org).await.unwrap().unwrap();
    let interaction = &f.alice[3].0;
    let row = f
        .env
        .store
        .record(&scope, interaction)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.subject_ref, None);
    assert!(row.key_ref.starts_with("org:"), "{}", row.key_ref);
    let kept = f
        .env
        .custos
        .get_record(&f.owner, &f.org, interaction)
        .await
        .unwrap();
    let text = serde_json::to_string(&(&kept.content, &kept.metadata, &kept.subject)).unwrap();
    assert!(!text.contains(ALICE), "{text}");
    assert!(
        text.contains("invoice 17"),
        "the rest of the record is kept: {text}"
    );

    // Analytics survive only as counts.
    let aggregates = f.env.store.erasure_aggregates(&scope).await.unwrap();
    assert_eq!(aggregates.len(), 1);
    assert_eq!(
        (aggregates[0].category.as_str(), aggregates[0].records),
        ("analytics", 2)
    );

    // The sweep purges what the erasure marked, with deletion-log rows.
    f.env
        .custos
        .sweep(&SweepOptions::default(), &mut |_| {})
        .await
        .unwrap();
    let alice_ref = f.env.vault.subject_ref(&f.org, ALICE).await.unwrap();
    let left = f
        .env
        .store
        .list_records(
            &scope,
            &RecordFilter {
                subject_ref: Some(alice_ref.clone()),
                ..RecordFilter::default()
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    // The deletion log names the erasure as the cause, not a hard delete somebody asked for.
    let log = f.env.store.deletion_log(&scope, None, 100).await.unwrap();
    let alice_ids: Vec<String> = f
        .alice
        .iter()
        .filter(|(_, c)| *c != "interactions")
        .map(|(id, _)| id.clone())
        .collect();
    let reasons: Vec<&str> = log
        .iter()
        .filter(|e| alice_ids.contains(&e.record_id))
        .map(|e| e.reason.as_str())
        .collect();
    assert_eq!(reasons.len(), 5, "{log:?}");
    assert!(reasons.iter().all(|r| *r == "erasure"), "{reasons:?}");
    assert!(f
        .env
        .vault
        .subject_keys_of(&f.org, &alice_ref)
        .await
        .unwrap()
        .is_empty());

    // The certificate verifies offline with the deployment's key, and names the subject by
    // its reference only.
    let certs = certificates(&f, &erased.id).await;
    assert_eq!(certs.len(), 1);
    let body = certs[0].body.as_bytes();
    let key = verifier_key(&f.env);
    let verified = custos_cert::verify(body, Some(&key), Some(&alice_ref)).unwrap();
    let statement = &verified.certificate.statement;
    assert_eq!(statement.subject.request, erased.id);
    assert!(!certs[0].body.contains(ALICE));
    let methods: Vec<(String, u64)> = statement
        .sanitization
        .iter()
        .map(|s| (format!("{}:{:?}", s.category, s.method), s.tiers.hot))
        .collect();
    assert_eq!(
        methods,
        [
            ("analytics:Aggregate".to_string(), 2),
            ("interactions:Anonymize".to_string(), 1),
            ("messages:CryptographicErase".to_string(), 3)
        ]
    );
    assert_eq!(statement.keys_destroyed.len(), 3);
    // Another subject's reference does not match it.
    let bob_ref = f.env.vault.subject_ref(&f.org, BOB).await.unwrap();
    let wrong = custos_cert::verify(body, Some(&key), Some(&bob_ref)).unwrap_err();
    assert_eq!(wrong.check, custos_cert::Check::Subject);

    // The audit log never names Alice.
    let mut from = 0;
    loop {
        let page = f.env.store.audit_entries(None, from, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        from = last.index + 1;
        for e in &page {
            assert!(
                !common::contains(&e.leaf, ALICE.as_bytes()),
                "audit entry {} names alice",
                e.index
            );
        }
    }
}

#[tokio::test]
async fn a_legal_hold_keeps_its_records_until_released_then_a_second_certificate_is_issued() {
    let f = fixture().await;
    let hold = f
        .env
        .custos
        .create_hold(
            &f.owner,
            &f.org,
            NewHold {
                reason: "case 2026-17".into(),
                subject: Some(ALICE.into()),
                category: Some("messages".into()),
            },
        )
        .await
        .unwrap();
    let request = f
        .env
        .custos
        .erase_subject(&Caller::new(Principal::System), &f.org, ALICE)
        .await
        .unwrap();
    assert_eq!(request.status, RequestStatus::PartiallyCompleted);
    assert!(request.status_reason.as_deref().unwrap().contains(&hold.id));
    // Held messages stay readable; the rest is gone.
    for (id, category) in &f.alice {
        let read = f.env.custos.get_record(&f.owner, &f.org, id).await;
        match *category {
            "messages" => assert!(read.is_ok(), "held message {id} lost"),
            "interactions" => assert!(!serde_json::to_string(&read.unwrap().content)
                .unwrap()
                .contains(ALICE)),
            _ => assert!(read.is_err()),
        }
    }
    let certs = certificates(&f, &request.id).await;
    assert_eq!(certs.len(), 1);
    let first = custos_cert::verify(certs[0].body.as_bytes(), None, None).unwrap();
    assert_eq!(first.certificate.statement.held_back.len(), 1);
    assert_eq!(first.certificate.statement.held_back[0].records, 3);

    // Releasing the hold completes the erasure, with a second certificate.
    f.env
        .custos
        .release_hold(&f.owner, &f.org, &hold.id)
        .await
        .unwrap();
    let done = f
        .env
        .custos
        .get_request(&f.owner, &f.org, &request.id)
        .await
        .unwrap();
    assert_eq!(done.status, RequestStatus::Completed);
    assert_eq!(done.certificates.len(), 2);
    for (id, category) in &f.alice {
        if *category == "messages" {
            assert!(f.env.custos.get_record(&f.owner, &f.org, id).await.is_err());
        }
    }
    let certs = certificates(&f, &request.id).await;
    let second = custos_cert::verify(certs[1].body.as_bytes(), None, None).unwrap();
    let s = &second.certificate.statement;
    assert!(s.held_back.is_empty());
    assert_eq!(s.sanitization.len(), 1);
    assert_eq!(s.sanitization[0].tiers.hot, 3);
}

#[tokio::test]
async fn requests_have_calendar_deadlines_one_bounded_extension_and_an_overdue_flag() {
    let f = fixture().await;
    f.env.clock.set("2027-01-31T09:00:00Z".parse().unwrap());
    let access = f
        .env
        .custos
        .create_request(
            &f.service,
            &f.org,
            NewRequest {
                kind: RequestKind::Access,
                subject: BOB.into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(access.status, RequestStatus::Received);
    assert_eq!(access.subject.as_deref(), Some(BOB));
    // The built-in policy's 30d.
    assert_eq!(access.due_at, "2027-03-02T09:00:00Z".parse().unwrap());

    // A service member files but cannot extend or reject.
    let ext = || RequestExtension {
        by: "2mo".into(),
        reason: "many systems to search".into(),
    };
    let err = f
        .env
        .custos
        .extend_request(&f.service, &f.org, &access.id, ext())
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Forbidden(_)), "{err}");
    // Beyond the maximum: refused, nothing changes.
    let too_far = RequestExtension {
        by: "3mo".into(),
        reason: "x".into(),
    };
    let err = f
        .env
        .custos
        .extend_request(&f.owner, &f.org, &access.id, too_far)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at most 2mo"), "{err}");
    let extended = f
        .env
        .custos
        .extend_request(&f.owner, &f.org, &access.id, ext())
        .await
        .unwrap();
    assert_eq!(extended.due_at, "2027-05-02T09:00:00Z".parse().unwrap());
    let err = f
        .env
        .custos
        .extend_request(&f.owner, &f.org, &access.id, ext())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoreError::Conflict(_)),
        "extended twice: {err}"
    );

    // Overdue once past due, in the listing and in the SLA report.
    f.env.clock.set("2027-05-03T00:00:00Z".parse().unwrap());
    let page = f
        .env
        .custos
        .list_requests(
            &f.owner,
            &f.org,
            RequestQuery {
                overdue: true,
                ..RequestQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.items[0].overdue);
    let report = f
        .env
        .custos
        .overdue(&f.env.owner(&f.org).await, Some(&f.org))
        .await
        .unwrap();
    assert!(report
        .iter()
        .any(|o| o.request.as_deref() == Some(access.id.as_str())));

    // Rejecting one not started; a second rejection is a conflict.
    let portability = f
        .env
        .custos
        .create_request(
            &f.owner,
            &f.org,
            NewRequest {
                kind: RequestKind::Portability,
                subject: BOB.into(),
            },
        )
        .await
        .unwrap();
    let rejected = f
        .env
        .custos
        .reject_request(
            &f.owner,
            &f.org,
            &portability.id,
            RequestRejection {
                reason: "identity not verified".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(rejected.status, RequestStatus::Rejected);
    assert_eq!(rejected.subject, None);
    let listed = f
        .env
        .custos
        .list_requests(&f.owner, &f.org, RequestQuery::default())
        .await
        .unwrap();
    let dues: Vec<_> = listed.items.iter().map(|r| r.due_at).collect();
    let mut sorted = dues.clone();
    sorted.sort();
    assert_eq!(dues, sorted, "sorted by due time");
    let bad = RequestQuery {
        cursor: Some("no-such-request".into()),
        ..RequestQuery::default()
    };
    assert!(f
        .env
        .custos
        .list_requests(&f.owner, &f.org, bad)
        .await
        .is_err());
}

/// Runs one erasure with a fault injected at the `n`-th fault point (1-based); returns
/// whether the fault fired (false: the run had fewer points).
async fn crash_at(n: usize) -> bool {
    let f = fixture().await;
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let at = Arc::new(std::sync::Mutex::new(""));
    let point_at = at.clone();
    let crashing = f.env.reopen(|c| {
        c.with_fault_hook(Arc::new(move |point| {
            let hit = counter.fetch_add(1, Ordering::SeqCst) + 1 == n;
            if hit {
                *point_at.lock().unwrap() = point;
            }
            hit
        }))
    });
    let system = Caller::new(Principal::System);
    let first = crashing.erase_subject(&system, &f.org, ALICE).await;
    let fired = seen.load(Ordering::SeqCst) >= n;
    assert_eq!(first.is_err(), fired, "run {n}: {first:?}");
    if !fired {
        return false;
    }
    let n = format!("{n} ({})", at.lock().unwrap());
    // A restarted process finishes the same request once.
    let restarted = f.env.reopen(|c| c);
    let done = restarted
        .erase_subject(&system, &f.org, ALICE)
        .await
        .unwrap();
    assert_eq!(done.status, RequestStatus::Completed, "crash at {n}");
    let (scope, _) = f.env.store.org(&f.org).await.unwrap().unwrap();
    let all = f
        .env
        .store
        .list_requests(&scope, &custos_store::RequestFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "crash at {n}: one request");
    let certs = f.env.store.certificates(&scope, &done.id).await.unwrap();
    assert_eq!(certs.len(), 1, "crash at {n}: one certificate");
    custos_cert::verify(certs[0].body.as_bytes(), Some(&verifier_key(&f.env)), None).unwrap();
    let erase_events = f
        .env
        .store
        .audit_query(
            Some(&scope),
            &custos_store::AuditFilter {
                action: Some("subject.erase".into()),
                ..Default::default()
            },
            0,
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        erase_events.len(),
        1,
        "crash at {n}: one subject.erase event"
    );
    for (id, category) in &f.alice {
        let read = restarted.get_record(&f.owner, &f.org, id).await;
        assert_eq!(
            read.is_ok(),
            *category == "interactions",
            "crash at {n}: record {id}"
        );
    }
    for (id, _) in &f.bob {
        restarted.get_record(&f.owner, &f.org, id).await.unwrap();
    }
    true
}

#[tokio::test]
async fn an_erasure_killed_at_any_point_finishes_once_with_one_certificate() {
    let mut points = 0;
    for n in 1.. {
        if !crash_at(n).await {
            break;
        }
        points += 1;
    }
    assert!(points >= 20, "only {points} crash points exercised");
}

#[tokio::test]
async fn a_copy_of_the_data_taken_before_an_erasure_shows_none_of_the_subject() {
    let f = fixture().await;
    // Archive one of Alice's messages and one of Bob's first, so the archive tier is copied too.
    f.env.clock.advance(91.days());
    f.env
        .custos
        .sweep(&SweepOptions::default(), &mut |_| {})
        .await
        .unwrap();
    let data = f.env.dir.path().join("data");
    let copy = tempfile::tempdir().unwrap();
    f.env.store.forget_deleted().await.unwrap();
    copy_dir(&data.join("objects"), &copy.path().join("objects"));
    for file in ["custos.db", "custos.db-wal", "custos.db-shm"] {
        if data.join(file).exists() {
            std::fs::copy(data.join(file), copy.path().join(file)).unwrap();
        }
    }

    f.env
        .custos
        .erase_subject(&Caller::new(Principal::System), &f.org, ALICE)
        .await
        .unwrap();

    // The old copy, served with the live key store.
    let old_store =
        Arc::new(custos_store::SqliteStore::open(&copy.path().join("custos.db")).unwrap());
    let objects = custos_store::Objects::open(&custos_store::ObjectLocation::File(
        copy.path().join("objects"),
    ))
    .unwrap();
    let old = custos_core::Custos::new(
        Arc::new(custos_policy::Policy::builtin()),
        old_store.clone(),
        objects,
        f.env.vault.clone(),
        f.env.clock.clone(),
    );
    // Interactions expired (90d) before the copy; messages are in the archive tier.
    let mut archived = 0;
    for (id, category) in f.alice.iter().filter(|(_, c)| *c != "interactions") {
        if old
            .request_archive_restore(&f.owner, &f.org, id)
            .await
            .is_ok()
        {
            archived += 1;
        }
        let read = old.get_record(&f.owner, &f.org, id).await;
        assert!(read.is_err(), "old copy of {category} record {id} readable");
    }
    assert_eq!(
        archived, 3,
        "alice's messages were in the archive tier of the copy"
    );
    for (id, _) in f.bob.iter().filter(|(_, c)| *c != "interactions") {
        let _ = old.request_archive_restore(&f.owner, &f.org, id).await;
        old.get_record(&f.owner, &f.org, id).await.unwrap();
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
