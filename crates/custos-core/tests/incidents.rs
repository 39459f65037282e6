//! Incidents on a real SQLite store with a manual clock: the affected subjects computed from
//! the audit log (only the scoped actors' reads within the window, per org and category, by
//! the same references `subject_reference` gives), the clocks' alerts queued once each, and
//! a status that only moves forward.

mod common;

use std::collections::BTreeMap;

use custos_core::alerting::AlertEvaluator;
use custos_core::incidents::{IncidentScope, IncidentStatus, IncidentStatusChange, NewIncident};
use custos_core::{Caller, CoreError, NewRecord, Principal};
use custos_policy::Policy;
use custos_store::prelude::*;
use jiff::ToSpan;

const SUBJECTS: usize = 60;
const RECORDS: usize = 150;

fn policy() -> Policy {
    Policy::parse(
        &format!(
            "{}\n[webhooks.ops]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_env = \"OPS\"\n",
            Policy::BUILTIN_TOML
        ),
        "custos.toml",
    )
    .unwrap()
}

fn member_name(caller: &Caller) -> String {
    match &caller.principal {
        Principal::Member { member, .. } => format!("member:{}", member.id),
        other => panic!("{other:?}"),
    }
}

/// `RECORDS` records of `SUBJECTS` subjects in `org`: record j is subject j % SUBJECTS's,
/// `messages` when j is even, `documents` when odd. Their ids in order.
async fn records(env: &common::Env, org: &str) -> Vec<String> {
    let owner = env.owner(org).await;
    let batch: Vec<NewRecord> = (0..RECORDS)
        .map(|j| NewRecord {
            category: if j % 2 == 0 { "messages" } else { "documents" }.into(),
            subject: Some(format!("subject-{}", j % SUBJECTS)),
            content: serde_json::json!({ "n": j }),
            metadata: None,
        })
        .collect();
    env.custos
        .create_records(&owner, org, batch)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

async fn read_all(env: &common::Env, who: &Caller, org: &str, ids: &[String]) {
    for id in ids {
        env.custos.get_record(who, org, id).await.unwrap();
    }
}

#[tokio::test]
async fn affected_subjects_come_from_the_audit_log_and_clocks_alert_once() {
    let env = common::env_with_policy(policy());
    let admin = common::admin();
    let (a, b) = (env.org("A").await, env.org("B").await);
    let (ids_a, ids_b) = (records(&env, &a).await, records(&env, &b).await);
    let reader_a = env.member(&a, &["member"], &[], false).await;
    let reader_b = env.member(&b, &["member"], &[], false).await;
    let bystander = env.member(&a, &["member"], &[], false).await;

    // Before the window: not counted.
    read_all(&env, &reader_a, &a, &ids_a[..5]).await;
    env.clock.advance(2.minutes());
    let from = custos_core::Clock::now(&*env.clock);
    read_all(&env, &reader_a, &a, &ids_a).await;
    read_all(&env, &reader_b, &b, &ids_b).await;
    // Another actor's reads are not the incident's.
    read_all(&env, &bystander, &a, &ids_a[..10]).await;

    let incident = env
        .custos
        .create_incident(
            &admin,
            NewIncident {
                title: "Stolen member key".into(),
                detected_at: None,
                scope: IncidentScope {
                    actors: vec![member_name(&reader_a), member_name(&reader_b)],
                    from: Some(from),
                    ..IncidentScope::default()
                },
            },
        )
        .await
        .unwrap();
    assert_eq!(incident.status, IncidentStatus::Detected);
    assert!(!incident.overdue);

    let affected = env
        .custos
        .incident_affected(&admin, &incident.id)
        .await
        .unwrap();
    assert_eq!(affected.orgs.len(), 2);
    let mut total = 0;
    for (org, found) in [(&a, &affected.orgs), (&b, &affected.orgs)] {
        let found = found.iter().find(|o| &o.org == org).unwrap();
        let owner = env.owner(org).await;
        let mut expected: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for j in 0..RECORDS {
            let subject = format!("subject-{}", j % SUBJECTS);
            let reference = env
                .custos
                .subject_reference(&owner, org, &subject)
                .await
                .unwrap()
                .subject_ref;
            let category = if j % 2 == 0 { "messages" } else { "documents" };
            *expected
                .entry(reference)
                .or_default()
                .entry(category.into())
                .or_default() += 1;
        }
        let got: BTreeMap<String, BTreeMap<String, u64>> = found
            .subjects
            .iter()
            .map(|s| (s.subject_ref.clone(), s.categories.clone()))
            .collect();
        assert_eq!(got.len(), SUBJECTS);
        assert_eq!(got, expected);
        total += got.values().flat_map(|c| c.values()).sum::<u64>();
    }
    assert_eq!(total, 2 * RECORDS as u64);
    // Scoped to one org and one category.
    let narrow = env
        .custos
        .create_incident(
            &admin,
            NewIncident {
                title: "Narrow".into(),
                detected_at: None,
                scope: IncidentScope {
                    orgs: vec![b.clone()],
                    categories: vec!["documents".into()],
                    from: Some(from),
                    ..IncidentScope::default()
                },
            },
        )
        .await
        .unwrap();
    let narrow = env
        .custos
        .incident_affected(&admin, &narrow.id)
        .await
        .unwrap();
    assert_eq!(narrow.orgs.len(), 1);
    assert!(narrow.orgs[0]
        .subjects
        .iter()
        .all(|s| s.categories.keys().all(|c| c == "documents")));

    // The contain clock (1h): an alert when 15 minutes are left, another when it runs out,
    // each once.
    let mut evaluator = AlertEvaluator::new();
    let clock_alerts = |env: &common::Env| {
        let store = env.store.clone();
        async move {
            store
                .outbox_entries(None, None, 1000)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.message.event_type == "incident.clock")
                .map(|e| serde_json::from_slice::<serde_json::Value>(&e.message.body).unwrap())
                .collect::<Vec<_>>()
        }
    };
    env.custos.evaluate_alerts(&mut evaluator).await.unwrap();
    assert!(clock_alerts(&env).await.is_empty());
    env.clock.advance(46.minutes());
    env.custos.evaluate_alerts(&mut evaluator).await.unwrap();
    env.clock.advance(10.seconds());
    env.custos.evaluate_alerts(&mut evaluator).await.unwrap();
    let alerts = clock_alerts(&env).await;
    let soon: Vec<_> = alerts
        .iter()
        .filter(|b| b["data"]["incident"] == incident.id.as_str())
        .collect();
    assert_eq!(soon.len(), 1, "{alerts:?}");
    assert_eq!(
        (&soon[0]["data"]["clock"], &soon[0]["data"]["state"]),
        (&serde_json::json!("contain"), &serde_json::json!("soon"))
    );
    env.clock.advance(15.minutes());
    env.custos.evaluate_alerts(&mut evaluator).await.unwrap();
    let view = env.custos.incident(&admin, &incident.id).await.unwrap();
    assert!(view.overdue);
    assert!(view.clocks[0].overdue && view.clocks[0].met_at.is_none());
    assert!(!view.clocks[1].overdue, "assess has 6 hours");
    let states: Vec<String> = clock_alerts(&env)
        .await
        .iter()
        .filter(|b| b["data"]["incident"] == incident.id.as_str())
        .map(|b| {
            format!(
                "{}:{}",
                b["data"]["clock"].as_str().unwrap(),
                b["data"]["state"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(states.contains(&"contain:overdue".to_string()));

    // Forward only; each step with who and when.
    let contained = env
        .custos
        .set_incident_status(
            &admin,
            &incident.id,
            IncidentStatusChange {
                status: IncidentStatus::Contained,
                note: Some("revoked the key".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(contained.timeline.len(), 2);
    assert_eq!(contained.timeline[1].actor, "admin");
    assert!(contained.clocks[0].overdue, "contained late");
    let back = env
        .custos
        .set_incident_status(
            &admin,
            &incident.id,
            IncidentStatusChange {
                status: IncidentStatus::Detected,
                note: None,
            },
        )
        .await;
    assert!(matches!(back, Err(CoreError::Conflict(_))), "{back:?}");
    let leaky = env
        .custos
        .set_incident_status(
            &admin,
            &incident.id,
            IncidentStatusChange {
                status: IncidentStatus::Assessed,
                note: Some("called alice@example.com".into()),
            },
        )
        .await;
    assert!(matches!(leaky, Err(CoreError::Invalid { .. })), "{leaky:?}");
    // Members do not see incidents.
    assert!(env
        .custos
        .incidents(&reader_a, false, None, 10)
        .await
        .is_err());
    let page = env.custos.incidents(&admin, true, None, 10).await.unwrap();
    assert_eq!(page.items.len(), 2);
}
