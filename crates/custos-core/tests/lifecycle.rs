//! The lifecycle engine driven by a manual clock through years of the built-in policy.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use custos_core::{
    ActionKind, Caller, Clock, CoreError, FileUpload, NewHold, NewRecord, Principal, SweepAction,
    SweepOptions,
};
use custos_store::prelude::*;
use jiff::{Timestamp, ToSpan};
use serde_json::json;

/// `t` plus `n` calendar days (UTC).
fn plus_days(t: Timestamp, n: i64) -> Timestamp {
    t.to_zoned(jiff::tz::TimeZone::UTC)
        .checked_add(n.days())
        .unwrap()
        .timestamp()
}

fn system() -> Caller {
    Caller::new(Principal::System)
}

fn record(category: &str, subject: Option<&str>) -> NewRecord {
    NewRecord {
        category: category.into(),
        subject: subject.map(str::to_string),
        content: json!({ "text": format!("a {category} record") }),
        metadata: None,
    }
}

impl Env {
    /// One real sweep at the clock's current time; the actions it took.
    async fn sweep(&self) -> Vec<SweepAction> {
        let mut actions = Vec::new();
        self.custos
            .sweep(&SweepOptions::default(), &mut |a| actions.push(a.clone()))
            .await
            .expect("sweep");
        actions
    }

    /// Uploads `body` as a file record of category `files`; its id.
    async fn upload(&self, caller: &Caller, org: &str, body: Vec<u8>) -> String {
        self.custos
            .upload_file(
                caller,
                org,
                FileUpload {
                    category: "files".into(),
                    subject: None,
                    file_name: Some("f.bin".into()),
                    ..Default::default()
                },
                futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(body))]),
            )
            .await
            .unwrap()
            .id
    }

    async fn dry_run(&self, as_of: Option<Timestamp>) -> Vec<SweepAction> {
        let mut actions = Vec::new();
        let opts = SweepOptions {
            dry_run: true,
            as_of,
            ..SweepOptions::default()
        };
        self.custos
            .sweep(&opts, &mut |a| actions.push(a.clone()))
            .await
            .expect("dry run");
        actions
    }
}

/// Every category's data is archived and purged on its due day, an org's override is
/// respected, and a category hold stops purges until it is released.
#[tokio::test]
async fn years_of_policy_archive_and_purge_each_category_on_its_day() {
    let env = env();
    let start = env.custos.now();
    let org = env.org("acme").await;
    let other = env.org("globex").await;
    // Globex keeps messages 400 days instead of 365, within the policy's bounds.
    let owner = env.member(&other, &["owner"], &[], true).await;
    env.custos
        .set_retention(&owner, &other, "messages", "400d")
        .await
        .unwrap();
    let hold = env
        .custos
        .create_hold(
            &owner,
            &other,
            NewHold {
                reason: "litigation 2026-17".into(),
                subject: None,
                category: Some("app_logs".into()),
            },
        )
        .await
        .unwrap();

    // (org, record id) → (category, archive_at, expire_at)
    let mut expected = BTreeMap::new();
    for category in env.custos.policy().categories.values() {
        let created = env
            .custos
            .create_record(&system(), &org, record(&category.name, Some("alice")))
            .await
            .unwrap();
        expected.insert(
            created.id,
            (category.name.clone(), created.archive_at, created.expire_at),
        );
    }
    let globex_messages = env
        .custos
        .create_record(&system(), &other, record("messages", None))
        .await
        .unwrap();
    assert_eq!(globex_messages.expire_at, plus_days(start, 400));
    let globex_logs = env
        .custos
        .create_record(&system(), &other, record("app_logs", None))
        .await
        .unwrap();
    expected.insert(
        globex_messages.id.clone(),
        (
            "messages".into(),
            globex_messages.archive_at,
            globex_messages.expire_at,
        ),
    );

    // One sweep a day for eleven years (the longest retention is ten).
    let mut archived_on = BTreeMap::new();
    let mut purged_on = BTreeMap::new();
    let mut held_days = 0;
    let release_day = plus_days(start, 200);
    let mut released = false;
    for _ in 0..(11 * 366) {
        env.clock.advance(1.day());
        let today = env.custos.now();
        if !released && today >= release_day {
            env.custos
                .release_hold(&owner, &other, &hold.id)
                .await
                .unwrap();
            released = true;
        }
        for action in env.sweep().await {
            assert!(action.due <= today, "acted before due: {action:?}");
            match action.action {
                ActionKind::Archive => archived_on.insert(action.record, today),
                ActionKind::Purge => purged_on.insert(action.record, today),
                ActionKind::Held => {
                    assert_eq!(action.record, globex_logs.id);
                    held_days += 1;
                    None
                }
            };
        }
    }

    for (id, (category, archive_at, expire_at)) in &expected {
        let purged = purged_on
            .get(id)
            .unwrap_or_else(|| panic!("{category} never purged"));
        // Daily sweeps at midnight: a record is acted on the first sweep at or after its due
        // time, i.e. within a day of it and never before.
        assert!(
            *purged >= *expire_at && *purged < plus_days(*expire_at, 1),
            "{category}: purged {purged}, expired {expire_at}"
        );
        match archive_at {
            Some(a) if a < expire_at => {
                let archived = archived_on
                    .get(id)
                    .unwrap_or_else(|| panic!("{category} never archived"));
                assert!(*archived >= *a && *archived < plus_days(*a, 1));
            }
            _ => assert!(!archived_on.contains_key(id), "{category} archived"),
        }
    }
    // app_logs keep 90 days; held from then until the hold's release on day 200.
    assert!(held_days >= 100, "held {held_days} days");
    let logs_purged = purged_on[&globex_logs.id];
    assert!(logs_purged >= release_day && logs_purged < plus_days(release_day, 2));

    // Nothing left but deletion-log rows; each purge audited.
    let acme = env.store.org(&org).await.unwrap().unwrap().0;
    let rows = env
        .store
        .list_records(&acme, &Default::default(), None, 1000)
        .await
        .unwrap();
    assert!(rows.is_empty(), "{} records left", rows.len());
    let log = env
        .custos
        .deletion_log(&env.owner(&org).await, &org, None, 1000)
        .await
        .unwrap();
    assert_eq!(log.len(), env.custos.policy().categories.len());
    assert!(log.iter().all(|e| e.reason == "expired"));
}

/// Soft-deleted data is restorable on day 29 and gone after day 30.
#[tokio::test]
async fn soft_deleted_records_restorable_until_the_window_closes() {
    let env = env();
    let org = env.org("acme").await;
    let member = env.member(&org, &["member"], &[], false).await;
    let kept = env
        .custos
        .create_record(&member, &org, record("messages", Some("bob")))
        .await
        .unwrap();
    let lost = env
        .custos
        .create_record(&member, &org, record("messages", Some("bob")))
        .await
        .unwrap();
    env.custos
        .soft_delete(&member, &org, &kept.id)
        .await
        .unwrap();
    env.custos
        .soft_delete(&member, &org, &lost.id)
        .await
        .unwrap();
    for _ in 0..29 {
        env.clock.advance(1.day());
        assert!(env.sweep().await.is_empty());
    }
    env.custos.restore(&member, &org, &kept.id).await.unwrap();
    env.clock.advance(1.day());
    let actions = env.sweep().await;
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(
        (actions[0].action, actions[0].record.as_str()),
        (ActionKind::Purge, lost.id.as_str())
    );
    let err = env
        .custos
        .restore(&member, &org, &lost.id)
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::NotFound(_)), "{err:?}");
    let view = env
        .custos
        .get_record(&member, &org, &kept.id)
        .await
        .unwrap();
    assert_eq!(view.state, "active");
    let log = env
        .custos
        .deletion_log(&env.owner(&org).await, &org, None, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].reason, "soft_delete_window_closed");
}

/// Archived content leaves the hot store and normal reads refuse it; an archived file's
/// blob moves too, and the purge leaves no object behind.
#[tokio::test]
async fn archive_moves_content_and_purge_leaves_no_objects() {
    let env = env();
    let org = env.org("acme").await;
    let member = env.member(&org, &["member"], &[], false).await;
    let msg = env
        .custos
        .create_record(&member, &org, record("messages", None))
        .await
        .unwrap();
    env.upload(&member, &org, vec![7u8; 200_000]).await;
    env.clock.advance(91.days());
    let actions = env.sweep().await;
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(actions.iter().all(|a| a.action == ActionKind::Archive));
    let err = env
        .custos
        .get_record(&member, &org, &msg.id)
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Conflict(_)), "{err:?}");
    let scope = env.store.org(&org).await.unwrap().unwrap().0;
    let row = env.store.record(&scope, &msg.id).await.unwrap().unwrap();
    assert!(row.sealed.is_none(), "content still in the hot store");
    let objects = env.dir.path().join("data/objects");
    let names: Vec<String> = files_under(&objects)
        .into_iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().all(|n| n.contains("/archive/")), "{names:?}");

    env.clock.advance(2.years());
    let actions = env.sweep().await;
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(actions.iter().all(|a| a.action == ActionKind::Purge));
    assert!(files_under(&objects).is_empty(), "objects left after purge");
}

/// A dry run changes nothing and forecasts with `as_of`; a real sweep refuses to run ahead.
#[tokio::test]
async fn dry_run_forecasts_without_changing_anything() {
    let env = env();
    let org = env.org("acme").await;
    let created = env
        .custos
        .create_record(&system(), &org, record("app_logs", None))
        .await
        .unwrap();
    let audit_before = env.audit_size().await;
    assert!(env.dry_run(None).await.is_empty());
    let later = plus_days(env.custos.now(), 91);
    let forecast = env.dry_run(Some(later)).await;
    assert_eq!(forecast.len(), 1);
    assert_eq!(forecast[0].action, ActionKind::Purge);
    assert_eq!(forecast[0].due, created.expire_at);
    assert_eq!(env.audit_size().await, audit_before);
    let err = env
        .custos
        .sweep(
            &SweepOptions {
                as_of: Some(later),
                ..SweepOptions::default()
            },
            &mut |_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Invalid { .. }), "{err:?}");
    assert!(env.sweep().await.is_empty());
}

/// After a purge, neither a marker in the content nor any piece of the record's ciphertext
/// is in any file under the data dir (secure_delete zeroes freed pages; the sweep truncates
/// the WAL, which still held older page images).
#[tokio::test]
async fn purged_content_is_in_no_file_under_the_data_dir() {
    let env = env();
    let org = env.org("acme").await;
    let marker = "PURGE-MARKER-4c1d7e0b";
    let created = env
        .custos
        .create_record(
            &system(),
            &org,
            NewRecord {
                category: "app_logs".into(),
                subject: None,
                content: json!({ "text": marker }),
                metadata: None,
            },
        )
        .await
        .unwrap();
    let scope = env.store.org(&org).await.unwrap().unwrap().0;
    let sealed = env
        .store
        .record(&scope, &created.id)
        .await
        .unwrap()
        .unwrap()
        .sealed
        .unwrap();
    let data = env.dir.path().join("data");
    let probe = &sealed[sealed.len() / 2..sealed.len() / 2 + 24];
    assert!(
        files_under(&data).iter().any(|(_, b)| contains(b, probe)),
        "the probe must be on disk before the purge for this test to mean anything"
    );
    env.clock.advance(91.days());
    assert_eq!(env.sweep().await.len(), 1);
    for (path, bytes) in files_under(&data) {
        assert!(
            !contains(&bytes, marker.as_bytes()),
            "marker in {}",
            path.display()
        );
        assert!(!contains(&bytes, probe), "ciphertext in {}", path.display());
    }
}

/// Changing an org's retention override recomputes the due times of the records it already
/// has (in the sweep, page by page): shortening purges them earlier, lengthening keeps them.
#[tokio::test]
async fn retention_override_change_recomputes_existing_records() {
    let env = env();
    let org = env.org("acme").await;
    let owner = env.member(&org, &["owner"], &[], true).await;
    let mut messages = Vec::new();
    for _ in 0..3 {
        let batch: Vec<NewRecord> = (0..1100).map(|_| record("messages", None)).collect();
        messages.extend(
            env.custos
                .create_records(&system(), &org, batch)
                .await
                .unwrap(),
        );
    }
    let logs = env
        .custos
        .create_record(&system(), &org, record("app_logs", None))
        .await
        .unwrap();
    env.custos
        .set_retention(&owner, &org, "messages", "30d")
        .await
        .unwrap();
    // The first pass recomputes (3,300 records, several pages) before claiming work.
    env.clock.advance(1.day());
    let first = env
        .custos
        .sweep(&SweepOptions::default(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(first.recomputed, 3300);
    let scope = env.store.org(&org).await.unwrap().unwrap().0;
    let row = env
        .store
        .record(&scope, &messages[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.expire_at, plus_days(row.created_at, 30));
    // Day 30: all 3,300 messages purged; the app log (90 days) stays.
    for day in 2..30 {
        env.clock.advance(1.day());
        let early = env.sweep().await;
        assert!(
            early.is_empty(),
            "day {day}: {:?}",
            &early[..early.len().min(2)]
        );
    }
    env.clock.advance(1.day());
    let purged = env.sweep().await;
    assert_eq!(purged.len(), 3300);
    assert!(purged
        .iter()
        .all(|a| a.action == ActionKind::Purge && a.record != logs.id));

    // Lengthening: a new message under a 400-day override outlives the default 365.
    env.custos
        .set_retention(&owner, &org, "messages", "400d")
        .await
        .unwrap();
    let late = env
        .custos
        .create_record(&system(), &org, record("messages", None))
        .await
        .unwrap();
    assert_eq!(late.expire_at, plus_days(env.custos.now(), 400));
    env.clock.advance(366.days());
    let actions = env.sweep().await;
    assert!(!actions
        .iter()
        .any(|a| a.record == late.id && a.action == ActionKind::Purge));
}

/// A hard delete hides the record at once, cannot be restored, and the next sweep purges it;
/// "delete all" does the same for a whole category, for owners and admins only.
/// A record the sweeper set aside because a hold covered it goes at the first sweep after
/// the hold is released, not after its recheck lease (an hour) runs out.
#[tokio::test]
async fn a_released_hold_lets_its_records_go_at_the_next_sweep() {
    let env = env();
    let org = env.org("acme").await;
    let owner = env.member(&org, &["owner"], &[], false).await;
    let created = env
        .custos
        .create_record(&system(), &org, record("app_logs", Some("dave")))
        .await
        .unwrap();
    let hold = env
        .custos
        .create_hold(
            &owner,
            &org,
            NewHold {
                reason: "litigation 2026-18".into(),
                subject: Some("dave".into()),
                category: None,
            },
        )
        .await
        .unwrap();
    env.clock.advance(91.days());
    let actions = env.sweep().await;
    assert!(
        actions
            .iter()
            .any(|a| a.action == ActionKind::Held && a.record == created.id),
        "{actions:?}"
    );
    env.custos
        .release_hold(&owner, &org, &hold.id)
        .await
        .unwrap();
    env.clock.advance(1.minute());
    let actions = env.sweep().await;
    assert!(
        actions
            .iter()
            .any(|a| a.action == ActionKind::Purge && a.record == created.id),
        "purged a minute after the release: {actions:?}"
    );
}

#[tokio::test]
async fn hard_delete_and_delete_all_purge_on_the_next_sweep() {
    let env = env();
    let org = env.org("acme").await;
    let member = env.member(&org, &["member"], &[], false).await;
    let owner = env.member(&org, &["owner"], &[], true).await;
    let one = env
        .custos
        .create_record(&member, &org, record("messages", Some("carol")))
        .await
        .unwrap();
    let kept = env
        .custos
        .create_record(&member, &org, record("messages", Some("carol")))
        .await
        .unwrap();
    let uploads: Vec<NewRecord> = (0..5).map(|_| record("uploads", None)).collect();
    env.custos
        .create_records(&member, &org, uploads)
        .await
        .unwrap();

    // Hard deletes are for owners and admins.
    let err = env
        .custos
        .hard_delete(&member, &org, &one.id)
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Forbidden(_)), "{err:?}");
    env.custos.hard_delete(&owner, &org, &one.id).await.unwrap();
    let err = env
        .custos
        .get_record(&member, &org, &one.id)
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::NotFound(_)), "{err:?}");
    let err = env
        .custos
        .restore(&member, &org, &one.id)
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::NotFound(_)), "{err:?}");

    let err = env
        .custos
        .delete_category(&member, &org, "uploads")
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Forbidden(_)), "{err:?}");
    assert_eq!(
        env.custos
            .delete_category(&owner, &org, "uploads")
            .await
            .unwrap(),
        5
    );
    let actions = env.sweep().await;
    assert_eq!(actions.len(), 6, "{actions:?}");
    assert!(actions
        .iter()
        .all(|a| a.action == ActionKind::Purge && a.record != kept.id));
    let log = env
        .custos
        .deletion_log(&env.owner(&org).await, &org, None, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 6);
    assert!(log.iter().all(|e| e.reason == "hard_delete"));
    assert_eq!(
        env.custos
            .get_record(&member, &org, &kept.id)
            .await
            .unwrap()
            .state,
        "active"
    );
}

/// Reads a whole file download into memory.
async fn download(env: &Env, caller: &Caller, org: &str, id: &str) -> Result<Vec<u8>, CoreError> {
    use futures::StreamExt;
    let mut file = env.custos.download_file(caller, org, id).await?;
    let mut out = Vec::new();
    while let Some(chunk) = file.body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Archived content is readable only inside the window an owner's or admin's restore request
/// opens (48 hours by the built-in policy), and each request is audited.
#[tokio::test]
async fn archived_content_is_readable_only_inside_a_restore_window() {
    let env = env();
    let org = env.org("acme").await;
    let member = env.member(&org, &["member"], &[], false).await;
    let owner = env.member(&org, &["owner"], &[], false).await;
    let msg = env
        .custos
        .create_record(&member, &org, record("messages", None))
        .await
        .unwrap();
    let body = vec![42u8; 300_000];
    let file = env.upload(&member, &org, body.clone()).await;
    // Not archived yet: nothing to restore.
    let err = env
        .custos
        .request_archive_restore(&owner, &org, &msg.id)
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Conflict(_)), "{err:?}");

    env.clock.advance(91.days());
    assert_eq!(env.sweep().await.len(), 2);
    let err = env
        .custos
        .get_record(&member, &org, &msg.id)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("archive-restore"), "{err}");
    assert!(matches!(
        download(&env, &member, &org, &file).await,
        Err(CoreError::Conflict(_))
    ));

    // A plain member may not ask; an owner may, and the request is audited.
    let err = env
        .custos
        .request_archive_restore(&member, &org, &msg.id)
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Forbidden(_)), "{err:?}");
    let before = env.audit_size().await;
    let opened_at = env.clock.now();
    let restore = env
        .custos
        .request_archive_restore(&owner, &org, &msg.id)
        .await
        .unwrap();
    assert_eq!(restore.readable_until, opened_at + 48.hours());
    env.custos
        .request_archive_restore(&owner, &org, &file)
        .await
        .unwrap();
    let events = env
        .store
        .audit_query(
            None,
            &custos_store::AuditFilter {
                action: Some("record.archive_restore".into()),
                ..Default::default()
            },
            before,
            10,
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 2);

    // Inside the window the normal read routes answer, from the archive.
    let view = env.custos.get_record(&member, &org, &msg.id).await.unwrap();
    assert_eq!(view.content, json!({ "text": "a messages record" }));
    assert_eq!(view.state, "archived");
    assert_eq!(download(&env, &member, &org, &file).await.unwrap(), body);
    env.clock.advance(47.hours());
    assert!(env.custos.get_record(&member, &org, &msg.id).await.is_ok());

    // After it, archived again until the next request.
    env.clock.advance(1.hours());
    let err = env
        .custos
        .get_record(&member, &org, &msg.id)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("window closed"), "{err}");
    assert!(download(&env, &member, &org, &file).await.is_err());
}

/// Terminating an org revokes its members at once, makes it read-only, purges every record
/// (a hold still stops its part and is reported against `account_termination_within`), then
/// destroys the org's keys; another org is untouched and the audit trail stays.
#[tokio::test]
async fn termination_purges_everything_then_destroys_the_org_keys() {
    let env = env();
    let org = env.org("leaving").await;
    let other = env.org("staying").await;
    // Writes every category used here (security logs need an admin with MFA); not an owner.
    let member = env
        .member(&org, &["member", "service", "admin"], &[], true)
        .await;
    let created = env
        .custos
        .add_member(
            &env.owner(&org).await,
            &org,
            custos_core::NewMember {
                name: "owner".into(),
                roles: vec!["owner".into()],
                groups: vec![],
                mfa: false,
                identity: None,
            },
        )
        .await
        .unwrap();
    let owner = Caller::new(env.custos.authenticate(&created.api_key).await.unwrap());
    // Termination reaches every category, `accounts` needs a second factor: the API key alone
    // is refused, a TOTP session is not.
    let err = env.custos.terminate_org(&owner, &org).await.unwrap_err();
    assert!(matches!(err, CoreError::MfaRequired(_)), "{err:?}");
    let session = mfa_session(&env.custos, &owner, &org).await;
    let owner = Caller::new(env.custos.authenticate(&session).await.unwrap());
    let other_member = env.member(&other, &["member"], &[], false).await;
    let kept = env
        .custos
        .create_record(&other_member, &other, record("messages", None))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for category in ["messages", "messages", "messages"] {
        ids.push(
            env.custos
                .create_record(&member, &org, record(category, None))
                .await
                .unwrap()
                .id,
        );
    }
    ids.push(env.upload(&member, &org, vec![1u8; 5000]).await);
    env.clock.advance(91.days());
    env.sweep().await; // the messages and the file move to the archive
    ids.push(
        env.custos
            .create_record(&member, &org, record("messages", None))
            .await
            .unwrap()
            .id,
    );
    let hold = env
        .custos
        .create_hold(
            &member,
            &org,
            NewHold {
                reason: "case 7".into(),
                subject: None,
                category: Some("security_logs".into()),
            },
        )
        .await
        .unwrap();
    let held = env
        .custos
        .create_record(&member, &org, record("security_logs", None))
        .await
        .unwrap()
        .id;

    // Only an owner (or an operator) terminates.
    let err = env.custos.terminate_org(&member, &org).await.unwrap_err();
    assert!(matches!(err, CoreError::Forbidden(_)), "{err:?}");
    let requested_at = env.clock.now();
    let view = env.custos.terminate_org(&owner, &org).await.unwrap();
    assert_eq!(view.status, "terminating");
    assert_eq!(view.terminating_since, Some(requested_at));
    // Asking again changes nothing.
    let before = env.audit_size().await;
    let again = env.custos.terminate_org(&admin(), &org).await.unwrap();
    assert_eq!(again.terminating_since, Some(requested_at));
    assert_eq!(env.audit_size().await, before);

    // Members are revoked at once. The operator may still read the org's evidence and manage
    // its holds, without a grant nobody could approve now; it writes nothing (no grant).
    assert!(env.custos.authenticate(&created.api_key).await.is_err());
    let err = env
        .custos
        .create_record(&admin(), &org, record("messages", None))
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::GrantRequired(_)), "{err:?}");

    // One sweep purges everything a hold does not cover.
    let actions = env.sweep().await;
    let purged: Vec<&str> = actions
        .iter()
        .filter(|a| a.action == ActionKind::Purge)
        .map(|a| a.record.as_str())
        .collect();
    assert_eq!(purged.len(), ids.len(), "{actions:?}");
    assert!(ids.iter().all(|id| purged.contains(&id.as_str())));
    assert!(actions
        .iter()
        .any(|a| a.action == ActionKind::Held && a.record == held));
    let log = env
        .custos
        .deletion_log(&admin(), &org, None, 100)
        .await
        .unwrap();
    assert_eq!(log.len(), ids.len());
    assert!(log.iter().all(|e| e.reason == "account_termination"));
    assert_eq!(
        env.custos.get_org(&admin(), &org).await.unwrap().status,
        "terminating"
    );

    // Past the deadline, the held record is reported, marked as held.
    env.clock.advance(91.days());
    let overdue = env.custos.overdue(&admin(), Some(&org)).await.unwrap();
    assert_eq!(overdue.len(), 1, "{overdue:?}");
    assert_eq!(overdue[0].record.as_deref(), Some(held.as_str()));
    assert_eq!(overdue[0].kind, custos_core::SlaKind::AccountTermination);
    assert!(overdue[0].held);

    // Released, it goes at the next look, and the termination completes.
    env.custos
        .release_hold(&admin(), &org, &hold.id)
        .await
        .unwrap();
    env.clock.advance(2.hours());
    let mut actions = Vec::new();
    let summary = env
        .custos
        .sweep(&SweepOptions::default(), &mut |a| actions.push(a.clone()))
        .await
        .unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].record, held);
    assert_eq!(summary.terminated, 1);
    let view = env.custos.get_org(&admin(), &org).await.unwrap();
    assert_eq!(view.status, "terminated");
    assert!(
        env.vault.subject_ref(&org, "anyone").await.is_err(),
        "org key survived"
    );
    let org_objects = env.dir.path().join("data/objects/orgs").join(&org);
    assert!(
        !org_objects.exists() || files_under(&org_objects).is_empty(),
        "objects left behind"
    );
    // The audit trail stays; the other org is untouched.
    let trail = env
        .store
        .audit_query(
            Some(&env.store.org(&org).await.unwrap().unwrap().0),
            &custos_store::AuditFilter::default(),
            0,
            1000,
        )
        .await
        .unwrap();
    assert!(trail.len() > ids.len());
    let other_scope = env.store.org(&other).await.unwrap().unwrap().0;
    assert!(env
        .store
        .record(&other_scope, &kept.id)
        .await
        .unwrap()
        .is_some());
    assert!(env.vault.subject_ref(&other, "anyone").await.is_ok());
    // A later sweep has nothing more to do.
    assert!(env.sweep().await.is_empty());
}
