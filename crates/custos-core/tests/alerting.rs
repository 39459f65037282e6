//! Alert evaluation and delivery on a real SQLite store with a manual clock: one lease holder
//! at a time, a second evaluator that takes over from the cursor without firing again, and a
//! message given up (and audited) once its retry period has passed.

mod common;

use custos_audit::{Actor, AuditAction, AuditEvent, Outcome};
use custos_core::alerting::AlertEvaluator;
use custos_core::outbox::Channels;
use custos_policy::Policy;
use custos_store::prelude::*;
use custos_store::OutboxStatus;
use jiff::ToSpan;

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn policy() -> Policy {
    Policy::parse(
        &format!(
            "[categories.messages]\nretention = \"1d\"\n\n[webhooks.ops]\n\
             url = \"http://127.0.0.1:{}/hook\"\nsecret_env = \"OPS\"\n\n[[alerts]]\n\
             name = \"refusals\"\nmatch = {{ outcome = \"denied\" }}\nthreshold = 3\n\
             window = \"1m\"\nper = \"org\"\ndeliver = [\"ops\"]\nincident = true\n",
            closed_port()
        ),
        "custos.toml",
    )
    .unwrap()
}

async fn deny(env: &common::Env, org: &str) {
    let mut e = AuditEvent::new(
        custos_core::Clock::now(&*env.clock),
        Actor::Member("m1".into()),
        AuditAction::MemberList,
    )
    .outcome(Outcome::Denied);
    e.org = Some(org.into());
    env.store.append_audit(&[e]).await.unwrap();
}

async fn fired(env: &common::Env) -> usize {
    env.store
        .audit_entries(None, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| {
            AuditEvent::from_canonical_bytes(&e.leaf).unwrap().action == AuditAction::AlertFire
        })
        .count()
}

#[tokio::test]
async fn one_evaluator_counts_and_the_next_continues_without_firing_twice() {
    let env = common::env_with_policy(policy());
    let (mut a, mut b) = (AlertEvaluator::new(), AlertEvaluator::new());
    for _ in 0..3 {
        deny(&env, "org-1").await;
        env.clock.advance(1.second());
    }
    assert!(env.custos.evaluate_alerts(&mut a).await.unwrap() > 0);
    assert_eq!(
        env.custos.evaluate_alerts(&mut b).await.unwrap(),
        0,
        "a holds the lease"
    );
    assert_eq!(fired(&env).await, 1);
    let queued = env.store.outbox_entries(None, None, 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].message.channel, "webhook:ops");
    assert_eq!(queued[0].message.org_id.as_deref(), Some("org-1"));
    // The rule is marked `incident`: its firing opened one, scoped to the org.
    let opened = env.store.incidents(false, None, 10).await.unwrap();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].opened_by, "rule:refusals");
    assert!(opened[0].scope.contains("org-1"), "{}", opened[0].scope);

    // `a` stops renewing; `b` takes over once the lease has run out. Two more refusals in
    // the same minute fire nothing (the rule fired for this org within its window), also
    // though `b` counts the earlier three again.
    env.clock.advance(16.seconds());
    deny(&env, "org-1").await;
    deny(&env, "org-1").await;
    while env.custos.evaluate_alerts(&mut b).await.unwrap() > 0 {}
    assert_eq!(fired(&env).await, 1);
    // A minute after the firing, a new burst fires again.
    env.clock.advance(1.minute());
    for _ in 0..3 {
        deny(&env, "org-1").await;
    }
    while env.custos.evaluate_alerts(&mut b).await.unwrap() > 0 {}
    assert_eq!(fired(&env).await, 2);
}

#[tokio::test]
async fn a_message_is_retried_then_given_up_and_audited() {
    let env = common::env_with_policy(policy());
    let channels = Channels::from_policy(env.custos.policy(), |_| {
        Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into())
    })
    .unwrap();
    let custos = env.reopen(|c| c.with_channels(channels));
    // `reopen` uses the built-in policy: evaluate with the env's own services.
    for _ in 0..3 {
        deny(&env, "org-1").await;
    }
    let mut evaluator = AlertEvaluator::new();
    env.custos.evaluate_alerts(&mut evaluator).await.unwrap();

    assert_eq!(custos.deliver_due().await.unwrap(), 1);
    let entry = &env.store.outbox_entries(None, None, 1).await.unwrap()[0];
    assert_eq!((entry.status, entry.attempts), (OutboxStatus::Pending, 1));
    assert!(entry
        .last_error
        .as_deref()
        .unwrap()
        .contains("could not be reached"));
    assert_eq!(
        custos.deliver_due().await.unwrap(),
        0,
        "not due before its backoff"
    );
    env.clock.advance(2.seconds());
    assert_eq!(custos.deliver_due().await.unwrap(), 1);

    env.clock.advance(25.hours());
    assert_eq!(custos.deliver_due().await.unwrap(), 1);
    let entry = &env.store.outbox_entries(None, None, 1).await.unwrap()[0];
    assert_eq!((entry.status, entry.attempts), (OutboxStatus::Failed, 3));
    let failed: Vec<AuditEvent> = env
        .store
        .audit_entries(None, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| AuditEvent::from_canonical_bytes(&e.leaf).unwrap())
        .filter(|e| e.action == AuditAction::NotificationFail)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].outcome, Outcome::Failed);
    assert_eq!(
        failed[0].details.message.as_deref(),
        Some(entry.message.id.as_str())
    );
    assert_eq!(custos.deliver_due().await.unwrap(), 0, "given up for good");
    // Shown to operators with its state, and to nobody else.
    let shown = custos
        .notifications(&common::admin(), Some("org-1"), None, 10)
        .await
        .unwrap();
    assert_eq!(shown.items.len(), 1);
    let n = &shown.items[0];
    assert_eq!(
        (n.status.as_str(), n.attempts, n.channel.as_str()),
        ("failed", 3, "webhook:ops")
    );
    assert!(n
        .last_error
        .as_deref()
        .unwrap()
        .contains("could not be reached"));
    let org = env.org("Acme").await;
    let owner = env.owner(&org).await;
    assert!(custos.notifications(&owner, None, None, 10).await.is_err());
}
