//! [`Stores`] (the router) over a SQLite main store and a region store of each backend: every org's
//! rows and audit events land in its home region's store only; lookups by id, key hash and the
//! cross-org sweeps find orgs in any region; a move copies every row of every table (nothing
//! lost, nothing left behind, between backends too) and the org's objects.

use std::sync::Arc;

use custos_audit::{Actor, AuditAction, AuditEvent};
use custos_store::{
    Hold, Member, ObjectLocation, Objects, Org, OrgScope, RecordRow, RecordState, RegionStores,
    SqliteStore, Store, Stores,
};
use jiff::Timestamp;

use crate::support::Harness;

fn now() -> Timestamp {
    Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap()
}

fn event(org: &str, action: AuditAction) -> AuditEvent {
    AuditEvent::new(now(), Actor::System, action)
        .org(org)
        .target(custos_audit::Target::Org(org.to_string()))
}

fn record(id: &str) -> RecordRow {
    let created = now();
    RecordRow {
        id: id.to_string(),
        category: "messages".into(),
        subject_ref: Some("ref-1".into()),
        state: RecordState::Active,
        created_at: created,
        archive_at: None,
        expire_at: created + jiff::SignedDuration::from_hours(24),
        deleted_at: None,
        next_due_at: Some(created - jiff::SignedDuration::from_hours(1)),
        key_ref: "org".into(),
        sealed: Some(format!("sealed:{id}").into_bytes()),
        blob_size: None,
        pii: serde_json::json!({}),
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    main: Arc<dyn Store>,
    eu: Arc<dyn Store>,
    main_objects: Objects,
    eu_objects: Objects,
    regional: Stores,
}

/// A SQLite main store and `eu` (the harness's store) as the eu-central region's.
fn stores(eu: Arc<dyn Store>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let objects = |name: &str| {
        Objects::open(&ObjectLocation::File(dir.path().join(name).join("objects"))).unwrap()
    };
    let main: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("main").join("custos.db")).unwrap());
    let (main_objects, eu_objects) = (objects("main"), objects("eu"));
    let regional = Stores::new(
        main.clone(),
        main_objects.clone(),
        vec![RegionStores {
            name: "eu-central".into(),
            store: eu.clone(),
            objects: eu_objects.clone(),
        }],
    );
    Setup {
        _dir: dir,
        main,
        eu,
        main_objects,
        eu_objects,
        regional,
    }
}

/// An org in `region` with a member, two records, a hold, an override and settings, created
/// through the router and written to the store it hands back.
async fn populated_org(stores: &Stores, region: &str) -> (OrgScope, [u8; 32]) {
    let org = Org {
        id: uuid::Uuid::new_v4().to_string(),
        name: format!("org in {region}"),
        region: region.into(),
        created_at: now(),
        terminating_since: None,
        terminated_at: None,
        suspended_at: None,
    };
    let scope = stores
        .create_org(&org, &[event(&org.id, AuditAction::OrgCreate)])
        .await
        .unwrap();
    let store = stores.for_org(&scope).await.unwrap();
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let member = Member {
        id: uuid::Uuid::new_v4().to_string(),
        name: "owner".into(),
        roles: vec!["owner".into()],
        groups: vec![],
        mfa: false,
        created_at: now(),
        identity: None,
        last_used_at: None,
        key_last_used_at: None,
        disabled_at: None,
    };
    store
        .add_member(
            &scope,
            &member,
            &key,
            &[event(&org.id, AuditAction::MemberCreate)],
        )
        .await
        .unwrap();
    let records = [
        record(&uuid::Uuid::now_v7().to_string()),
        record(&uuid::Uuid::now_v7().to_string()),
    ];
    store
        .insert_records(
            &scope,
            &records,
            &[event(&org.id, AuditAction::RecordCreate)],
        )
        .await
        .unwrap();
    let hold = Hold {
        id: uuid::Uuid::new_v4().to_string(),
        reason: "litigation".into(),
        subject_ref: None,
        category: Some("messages".into()),
        created_at: now(),
    };
    store
        .create_hold(&scope, &hold, &[event(&org.id, AuditAction::HoldCreate)])
        .await
        .unwrap();
    store
        .set_retention_override(
            &scope,
            "messages",
            "60d",
            &[event(&org.id, AuditAction::RetentionSet)],
        )
        .await
        .unwrap();
    store
        .set_org_settings(
            &scope,
            r#"{"session_timeout":"2h"}"#,
            &[event(&org.id, AuditAction::SettingsUpdate)],
        )
        .await
        .unwrap();
    (scope, key)
}

pub async fn orgs_live_in_their_region_and_are_found_from_anywhere(h: Harness) {
    let s = stores(h.store.clone());
    let (us, us_key) = populated_org(&s.regional, "us-east").await;
    let (eu, eu_key) = populated_org(&s.regional, "eu-central").await;

    // Rows and audit events: each in its home store only.
    assert!(s.main.org(us.org_id()).await.unwrap().is_some());
    assert!(s.eu.org(us.org_id()).await.unwrap().is_none());
    assert!(s.eu.org(eu.org_id()).await.unwrap().is_some());
    assert!(s.main.org(eu.org_id()).await.unwrap().is_none());
    let main_events = s.main.audit_entries(None, 0, 100).await.unwrap();
    let eu_events = s.eu.audit_entries(None, 0, 100).await.unwrap();
    assert_eq!((main_events.len(), eu_events.len()), (6, 6));
    for e in &eu_events {
        let ev = AuditEvent::from_canonical_bytes(&e.leaf).unwrap();
        assert_eq!(ev.org.as_deref(), Some(eu.org_id()));
    }
    // A deployment-wide event goes to the main log; an org's event to its region's.
    s.regional
        .append_audit(&[
            AuditEvent::new(now(), Actor::Admin, AuditAction::OrgList),
            event(eu.org_id(), AuditAction::OrgRead),
        ])
        .await
        .unwrap();
    assert_eq!(s.main.audit_size().await.unwrap(), 7);
    assert_eq!(s.eu.audit_size().await.unwrap(), 7);

    // Found from the router, whichever store holds them.
    assert_eq!(s.regional.orgs().await.unwrap().len(), 2);
    let by_key = s
        .regional
        .member_by_key_hash(&eu_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_key.0, eu);
    let by_key = s
        .regional
        .member_by_key_hash(&us_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_key.0, us);
    // The router hands back the org's own store, which is the region's.
    let home = s.regional.for_org(&eu).await.unwrap();
    assert!(Arc::ptr_eq(home, &s.eu));
    assert_eq!(
        home.list_records(&eu, &Default::default(), None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(Arc::ptr_eq(s.regional.for_org(&us).await.unwrap(), &s.main));
    let due = s.regional.peek_due(now(), None, 10).await.unwrap();
    assert_eq!(due.len(), 4, "sweeps see due records of every region");
    assert!(s
        .regional
        .region_of(&eu)
        .await
        .unwrap()
        .is_some_and(|r| r.name == "eu-central"));
    assert!(s.regional.region_of(&us).await.unwrap().is_none());
}

pub async fn a_move_copies_every_row_and_object_and_leaves_nothing_behind(h: Harness) {
    let s = stores(h.store.clone());
    let (org, key) = populated_org(&s.regional, "us-east").await;
    let blob = format!("orgs/{}/blobs/file-1", org.org_id());
    let archived = format!("orgs/{}/archive/rec.envelope", org.org_id());
    s.main_objects
        .put(&blob, b"blob bytes".to_vec())
        .await
        .unwrap();
    s.main_objects
        .put(&archived, b"archived".to_vec())
        .await
        .unwrap();
    let before = s.main.export_org(&org).await.unwrap();
    assert!(before.row_count() >= 7, "{before:?}");
    let main_log = s.main.audit_size().await.unwrap();

    s.regional
        .set_org_region(
            &org,
            "eu-central",
            &[event(org.org_id(), AuditAction::OrgMove)],
        )
        .await
        .unwrap();

    // Every row arrived, the same but for the home region.
    let after = s.eu.export_org(&org).await.unwrap();
    assert_eq!(after.tables.len(), before.tables.len());
    for (a, b) in before.tables.iter().zip(&after.tables) {
        assert_eq!(
            (a.table.as_str(), a.rows.len()),
            (b.table.as_str(), b.rows.len())
        );
        if a.table != "orgs" {
            assert_eq!(a, b);
        }
    }
    let (_, moved) = s.regional.org(org.org_id()).await.unwrap().unwrap();
    assert_eq!(moved.region, "eu-central");
    assert_eq!(
        s.regional
            .member_by_key_hash(&key)
            .await
            .unwrap()
            .unwrap()
            .0,
        org
    );
    assert_eq!(
        s.eu_objects.read_small(&blob).await.unwrap().unwrap(),
        b"blob bytes"
    );
    assert_eq!(
        s.eu_objects.read_small(&archived).await.unwrap().unwrap(),
        b"archived"
    );

    // Nothing left in the old region but its audit trail, which gained the move.
    assert_eq!(s.main.export_org(&org).await.unwrap().row_count(), 0);
    assert!(s.main.org(org.org_id()).await.unwrap().is_none());
    assert!(s
        .main_objects
        .list(&format!("orgs/{}", org.org_id()))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.main.audit_size().await.unwrap(), main_log + 1);
    let last = s.eu.audit_entries(Some(&org), 0, 100).await.unwrap();
    let last = AuditEvent::from_canonical_bytes(&last.last().unwrap().leaf).unwrap();
    assert_eq!(last.action, AuditAction::OrgMove);

    // Moving back the same way works too (a move is not one-way).
    s.regional
        .set_org_region(
            &org,
            "us-east",
            &[event(org.org_id(), AuditAction::OrgMove)],
        )
        .await
        .unwrap();
    assert_eq!(
        s.main.export_org(&org).await.unwrap().row_count(),
        before.row_count()
    );
    assert_eq!(s.eu.export_org(&org).await.unwrap().row_count(), 0);
    assert_eq!(
        s.main_objects.read_small(&blob).await.unwrap().unwrap(),
        b"blob bytes"
    );
}

pub async fn an_interrupted_move_keeps_the_org_whole_and_finishes_when_asked_again(h: Harness) {
    let s = stores(h.store.clone());
    let (org, _) = populated_org(&s.regional, "us-east").await;
    let rows = s.main.export_org(&org).await.unwrap();
    let id = org.org_id();

    // Stopped after the copy: the copy still names the old region, the source holds the org.
    s.eu.import_org(&rows, "us-east", &[]).await.unwrap();
    let fresh = Stores::new(
        s.main.clone(),
        s.main_objects.clone(),
        vec![RegionStores {
            name: "eu-central".into(),
            store: s.eu.clone(),
            objects: s.eu_objects.clone(),
        }],
    );
    assert!(
        fresh.region_of(&org).await.unwrap().is_none(),
        "still at the source"
    );
    fresh
        .set_org_region(&org, "eu-central", &[event(id, AuditAction::OrgMove)])
        .await
        .unwrap();
    assert_eq!(s.main.export_org(&org).await.unwrap().row_count(), 0);
    assert_eq!(
        s.eu.export_org(&org).await.unwrap().row_count(),
        rows.row_count()
    );
    assert_eq!(fresh.org(id).await.unwrap().unwrap().1.region, "eu-central");

    // Stopped after the source was emptied, before the region changed: the copy is the org,
    // and asking again changes the region in place.
    let (other, _) = populated_org(&s.regional, "us-east").await;
    let rows = s.main.export_org(&other).await.unwrap();
    s.eu.import_org(&rows, "us-east", &[]).await.unwrap();
    s.main.drop_org(&other, None, &[]).await.unwrap();
    let fresh = Stores::new(
        s.main.clone(),
        s.main_objects.clone(),
        vec![RegionStores {
            name: "eu-central".into(),
            store: s.eu.clone(),
            objects: s.eu_objects.clone(),
        }],
    );
    let (_, seen) = fresh.org(other.org_id()).await.unwrap().unwrap();
    assert_eq!(seen.region, "us-east", "found, half moved");
    fresh
        .set_org_region(
            &other,
            "eu-central",
            &[event(other.org_id(), AuditAction::OrgMove)],
        )
        .await
        .unwrap();
    assert_eq!(
        fresh.org(other.org_id()).await.unwrap().unwrap().1.region,
        "eu-central"
    );
    assert_eq!(
        s.eu.export_org(&other).await.unwrap().row_count(),
        rows.row_count()
    );
}

/// A third region ("ap-south", SQLite) beside `s`'s two, and a [`Stores`] over all three as
/// one more instance of the deployment would have (a cache of its own).
fn instance(s: &Setup, ap: &(Arc<dyn Store>, Objects)) -> Stores {
    Stores::new(
        s.main.clone(),
        s.main_objects.clone(),
        vec![
            RegionStores {
                name: "eu-central".into(),
                store: s.eu.clone(),
                objects: s.eu_objects.clone(),
            },
            RegionStores {
                name: "ap-south".into(),
                store: ap.0.clone(),
                objects: ap.1.clone(),
            },
        ],
    )
}

pub async fn concurrent_moves_of_one_org_leave_exactly_one_copy(h: Harness) {
    let s = stores(h.store.clone());
    let ap_dir = tempfile::tempdir().unwrap();
    let ap: (Arc<dyn Store>, Objects) = (
        Arc::new(SqliteStore::open(&ap_dir.path().join("custos.db")).unwrap()),
        Objects::open(&ObjectLocation::File(ap_dir.path().join("objects"))).unwrap(),
    );
    let (one, two) = (instance(&s, &ap), instance(&s, &ap));
    let (org, _) = populated_org(&one, "us-east").await;
    let id = org.org_id();
    let blobs = [
        format!("orgs/{id}/blobs/file-1"),
        format!("orgs/{id}/archive/rec.envelope"),
    ];
    for blob in &blobs {
        s.main_objects.put(blob, b"bytes".to_vec()).await.unwrap();
    }
    let rows = s.main.export_org(&org).await.unwrap().row_count();

    // 20 moves at once, across three regions, through two instances.
    let regions = ["us-east", "eu-central", "ap-south"];
    let moves = (0..20).map(|i| {
        let instance = if i % 2 == 0 { &one } else { &two };
        let to = regions[(i + 1) % 3];
        let org = org.clone();
        async move {
            instance
                .set_org_region(&org, to, &[event(org.org_id(), AuditAction::OrgMove)])
                .await
        }
    });
    let results = futures::future::join_all(moves).await;
    let done = results.iter().filter(|r| r.is_ok()).count();
    for r in &results {
        match r {
            Ok(()) | Err(custos_store::StoreError::MoveInProgress(_)) => {}
            Err(other) => panic!("a move failed otherwise: {other}"),
        }
    }
    assert!(done >= 1, "at least the first move is done");

    // Exactly one store holds the org, every row of it, with the objects of its region.
    let stores = [
        ("us-east", &s.main, &s.main_objects),
        ("eu-central", &s.eu, &s.eu_objects),
        ("ap-south", &ap.0, &ap.1),
    ];
    let mut holders = Vec::new();
    for (region, store, objects) in stores {
        let n = store.export_org(&org).await.unwrap().row_count();
        let keys = objects.list(&format!("orgs/{id}")).await.unwrap();
        if n > 0 {
            holders.push(region);
            assert_eq!(n, rows, "{region} holds the whole org");
            let (_, seen) = store.org(id).await.unwrap().unwrap();
            assert_eq!(seen.region, region, "the copy names the region it is in");
            assert_eq!(keys.len(), blobs.len(), "{region} has the org's objects");
        } else {
            assert!(
                keys.is_empty(),
                "{region} keeps objects of an org it lacks: {keys:?}"
            );
        }
    }
    assert_eq!(holders.len(), 1, "the org is in {holders:?}");
    assert_eq!(
        one.org(id).await.unwrap().unwrap().1.region,
        holders[0],
        "both instances find it where it is"
    );
    assert_eq!(two.org(id).await.unwrap().unwrap().1.region, holders[0]);
}

pub async fn a_move_never_drops_what_was_written_after_its_copy(h: Harness) {
    let s = stores(h.store.clone());
    let (org, _) = populated_org(
        &Stores::single(s.eu.clone(), s.eu_objects.clone()),
        "eu-central",
    )
    .await;
    let copy = s.eu.export_org(&org).await.unwrap();
    // A write lands after the copy was taken: dropping by that copy must refuse.
    s.eu.insert_records(
        &org,
        &[record(&uuid::Uuid::now_v7().to_string())],
        &[event(org.org_id(), AuditAction::RecordCreate)],
    )
    .await
    .unwrap();
    let refused = s.eu.drop_org(&org, Some(&copy), &[]).await;
    assert!(
        matches!(refused, Err(custos_store::StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(
        s.eu.export_org(&org).await.unwrap().row_count(),
        copy.row_count() + 1,
        "nothing was deleted"
    );
    // With the current rows it drops.
    let current = s.eu.export_org(&org).await.unwrap();
    s.eu.drop_org(&org, Some(&current), &[]).await.unwrap();
    assert_eq!(s.eu.export_org(&org).await.unwrap().row_count(), 0);
}

pub async fn a_move_claim_has_one_holder_and_can_be_asked_about(h: Harness) {
    use jiff::ToSpan;
    let store = &*h.store;
    let t0 = crate::support::now_us();
    assert!(!store.org_move_claimed("org-m", t0).await.unwrap());
    assert!(store
        .claim_org_move("org-m", "mover-1", t0, t0 + 30.seconds())
        .await
        .unwrap());
    assert!(store.org_move_claimed("org-m", t0).await.unwrap());
    assert!(!store.org_move_claimed("org-n", t0).await.unwrap());
    // Another holder waits for the lease to run out.
    assert!(!store
        .claim_org_move("org-m", "mover-2", t0, t0 + 30.seconds())
        .await
        .unwrap());
    assert!(!store
        .org_move_claimed("org-m", t0 + 31.seconds())
        .await
        .unwrap());
    store.release_org_move("org-m", "mover-1").await.unwrap();
    assert!(!store.org_move_claimed("org-m", t0).await.unwrap());
}
