//! The evaluator and an incident's affected subjects follow every audit log: an org in a
//! region with stores of its own has its events in that region's log, and they still fire
//! rules, become security events and count as affected.

mod common;

use std::sync::Arc;

use custos_core::alerting::AlertEvaluator;
use custos_core::incidents::{IncidentScope, NewIncident};
use custos_core::security_events::SecurityEventKind;
use custos_core::{Caller, NewMember, NewOrg, NewRecord, Principal};
use custos_store::prelude::*;
use custos_store::{ObjectLocation, Objects, RegionStores, SqliteStore};

#[tokio::test]
async fn events_in_a_regions_own_log_are_evaluated_and_counted() {
    let env = common::env();
    let eu_dir = env.dir.path().join("eu");
    let eu_store = Arc::new(SqliteStore::open(&eu_dir.join("custos.db")).unwrap());
    let custos = env.reopen(|c| {
        c.with_regions(vec![RegionStores {
            name: "eu-central".into(),
            store: eu_store.clone(),
            objects: Objects::open(&ObjectLocation::File(eu_dir.join("objects"))).unwrap(),
        }])
    });
    let admin = common::admin();
    let created = custos
        .create_org(
            &admin,
            NewOrg {
                name: "Euro".into(),
                region: Some("eu-central".into()),
                owner: Some(custos_core::NewOwner { name: "O".into() }),
            },
        )
        .await
        .unwrap();
    let org = created.org.id.clone();
    let owner = Caller::new(
        custos
            .authenticate(&created.owner.unwrap().api_key)
            .await
            .unwrap(),
    );
    let reader = custos
        .add_member(
            &owner,
            &org,
            NewMember {
                name: "r".into(),
                roles: vec!["member".into()],
                groups: vec![],
                mfa: false,
                identity: None,
            },
        )
        .await
        .unwrap();
    let reader = Caller::new(custos.authenticate(&reader.api_key).await.unwrap());
    let record = custos
        .create_record(
            &owner,
            &org,
            NewRecord {
                category: "messages".into(),
                subject: Some("s1".into()),
                content: serde_json::json!("hello"),
                metadata: None,
            },
        )
        .await
        .unwrap();
    custos.get_record(&reader, &org, &record.id).await.unwrap();
    for _ in 0..5 {
        assert!(custos.list_members(&reader, &org).await.is_err());
    }
    // The org's events are in the region's log, not the main one.
    assert!(eu_store.audit_size().await.unwrap() > 5);

    let mut evaluator = AlertEvaluator::new();
    while custos.evaluate_alerts(&mut evaluator).await.unwrap() > 0 {}
    let fired = env
        .store
        .audit_entries(None, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| String::from_utf8_lossy(&e.leaf).contains("\"alert.fire\""))
        .count();
    assert_eq!(
        fired, 1,
        "the built-in denied-burst fired for the region's org"
    );
    let page = custos.security_events(&owner, &org, None, None).await;
    // The owner has no second factor here: the category asks for one.
    assert!(page.is_err());
    let auditor = custos
        .add_member(
            &owner,
            &org,
            NewMember {
                name: "a".into(),
                roles: vec!["auditor".into()],
                groups: vec![],
                mfa: false,
                identity: None,
            },
        )
        .await
        .unwrap();
    let auditor = Caller::new(custos.authenticate(&auditor.api_key).await.unwrap());
    let token = common::mfa_session(&custos, &auditor, &org).await;
    let auditor = Caller::new(custos.authenticate(&token).await.unwrap());
    let page = custos
        .security_events(&auditor, &org, None, None)
        .await
        .unwrap();
    assert_eq!(
        page.items
            .iter()
            .filter(|e| e.kind == SecurityEventKind::AccessDenied)
            .count(),
        5
    );

    let member = match &reader.principal {
        Principal::Member { member, .. } => format!("member:{}", member.id),
        other => panic!("{other:?}"),
    };
    let incident = custos
        .create_incident(
            &admin,
            NewIncident {
                title: "Reader in the EU".into(),
                detected_at: None,
                scope: IncidentScope {
                    actors: vec![member],
                    ..IncidentScope::default()
                },
            },
        )
        .await
        .unwrap();
    let affected = custos
        .incident_affected(&admin, &incident.id)
        .await
        .unwrap();
    assert_eq!(affected.orgs.len(), 1);
    assert_eq!(affected.orgs[0].org, org);
    assert_eq!(affected.orgs[0].subjects.len(), 1);
    assert_eq!(affected.orgs[0].subjects[0].categories["messages"], 1);
}
