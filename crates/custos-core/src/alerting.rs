//! Alert rules run over the committed audit log: one instance at a time (the holder of a
//! lease in the main store) tails the log from a stored cursor, feeds each event to the rules
//! ([`crate::alert_rules`]) and keeps the security events among them
//! ([`crate::security_events`]), and commits each step's firings, their deliveries (outbox
//! messages), `alert.fire` events and the deployment's security events with the new cursor. Counting never happens in
//! a request's transaction; several `serve` processes on one database count together because
//! only the lease holder counts, and the next holder continues from the cursor.

use std::sync::Arc;
use std::time::Duration;

use custos_audit::{AuditAction, AuditEvent, Details};
use custos_policy::{AlertRule, Destination};
use custos_store::{AlertFiring, AlertStep, OutboxMessage, Store};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::alert_rules::{Firing, RuleState};
use crate::{CoreError, Custos};

/// How long a lease lasts without renewal: an instance that dies is replaced after this.
const LEASE: SignedDuration = SignedDuration::from_secs(15);
/// How often the log is read for new events while it is quiet.
const POLL: Duration = Duration::from_millis(250);
/// How often open incidents' clocks are checked.
const CLOCK_CHECK: SignedDuration = SignedDuration::from_secs(5);
/// Events read per step.
const STEP_EVENTS: u32 = 500;

/// The evaluator of one instance: its lease holder id and, while it holds the lease, the
/// rules' counts.
pub struct AlertEvaluator {
    holder: String,
    state: Option<RuleState>,
    /// When incident clocks and request reminders were last checked.
    clocks_checked: Option<Timestamp>,
    /// Requests this process already queued the reminder of.
    reminded: std::collections::HashSet<String>,
}

impl AlertEvaluator {
    /// An evaluator with a fresh holder id (one per process).
    pub fn new() -> AlertEvaluator {
        AlertEvaluator {
            holder: format!("instance-{}", uuid::Uuid::new_v4().simple()),
            state: None,
            clocks_checked: None,
            reminded: Default::default(),
        }
    }
}

impl Default for AlertEvaluator {
    fn default() -> Self {
        Self::new()
    }
}

impl Custos {
    /// Evaluates the alert rules for as long as the process runs (`serve`).
    pub async fn run_alerts(self: Arc<Self>) {
        let mut evaluator = AlertEvaluator::new();
        loop {
            match self.evaluate_alerts(&mut evaluator).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    evaluator.state = None;
                    tracing::error!(error = %e, "alert evaluation failed; retrying");
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// One step: takes or renews the lease and, if held, evaluates the events after each
    /// log's cursor (the main log, then each region's own; up to a batch each) and commits
    /// the results. Returns how many events it evaluated (0 when every log is quiet or
    /// another instance holds the lease).
    pub async fn evaluate_alerts(&self, evaluator: &mut AlertEvaluator) -> Result<u64, CoreError> {
        let main = self.store.main();
        let now = self.now();
        let Some(main_cursor) = main
            .take_alert_lease(&evaluator.holder, now, now + LEASE)
            .await?
        else {
            evaluator.state = None;
            return Ok(0);
        };
        let logs = self.audit_logs(main_cursor).await?;
        if evaluator.state.is_none() {
            evaluator.state = Some(self.warm_rule_state(&logs, now).await?);
        }
        if evaluator
            .clocks_checked
            .is_none_or(|at| now.duration_since(at) >= CLOCK_CHECK)
        {
            self.check_incident_clocks().await?;
            self.check_request_reminders(&mut evaluator.reminded)
                .await?;
            evaluator.clocks_checked = Some(now);
        }
        let mut evaluated = 0;
        for log in &logs {
            match self.evaluate_log(evaluator, log).await? {
                Some(n) => evaluated += n,
                None => return Ok(0),
            }
        }
        Ok(evaluated)
    }

    /// Every audit log with the evaluator's cursor in it: the main one, then each region's
    /// own.
    async fn audit_logs(&self, main_cursor: u64) -> Result<Vec<FollowedLog>, CoreError> {
        let main = self.store.main();
        let mut logs = vec![FollowedLog {
            name: None,
            store: main.clone(),
            cursor: main_cursor,
        }];
        for region in self.store.regions() {
            logs.push(FollowedLog {
                name: Some(region.name.clone()),
                store: region.store.clone(),
                cursor: main.alert_cursor(&region.name).await?,
            });
        }
        Ok(logs)
    }

    /// Evaluates one batch of `log` after its cursor and commits it; the number of events,
    /// or `None` when the lease was lost or an org of the batch is moving (the evaluator
    /// starts over).
    async fn evaluate_log(
        &self,
        evaluator: &mut AlertEvaluator,
        log: &FollowedLog,
    ) -> Result<Option<u64>, CoreError> {
        let state = evaluator.state.as_mut().expect("warmed before evaluating");
        let entries = log
            .store
            .audit_entries(None, log.cursor, STEP_EVENTS)
            .await?;
        let Some(last) = entries.last().map(|e| e.index) else {
            return Ok(Some(0));
        };
        let mut fired = Vec::new();
        let mut events = Vec::with_capacity(entries.len());
        for entry in &entries {
            // One entry that cannot be read must not stop alerting for every later event:
            // it is reported (and `custos audit verify` names it) and passed over.
            let event = match decode(entry.index, &entry.leaf) {
                Ok(event) => event,
                Err(e) => {
                    tracing::error!(index = entry.index, error = %e, "audit entry cannot be evaluated; passed over");
                    continue;
                }
            };
            fired.extend(state.observe(entry.index, &event, true));
            events.push((entry.index, event));
        }
        let mut step = self.alert_step(state.rules(), last + 1, &fired).await?;
        step.log = log.name.clone();
        // Org security events are written now (idempotent by id); the deployment's commit
        // with the step.
        let (security_events, notices) = match self.project_security_events(&events).await {
            Ok(projected) => projected,
            // An org of this step is moving: nothing is committed and the rule counts of the
            // step are dropped (the next step warms them again from the log), so the same
            // events are evaluated once, after the move.
            Err(CoreError::MoveInProgress(why)) => {
                tracing::debug!(%why, "alert evaluation waits for a move");
                evaluator.state = None;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        step.security_events = security_events;
        step.messages.extend(notices);
        step.messages
            .extend(self.project_request_notices(&events).await?);
        if !self
            .store
            .main()
            .commit_alert_step(&evaluator.holder, log.cursor, &step)
            .await?
        {
            // Another instance took over (this one paused past its lease): start over.
            evaluator.state = None;
            return Ok(None);
        }
        for f in &fired {
            let rule = &state.rules()[f.rule];
            tracing::warn!(
                rule = %rule.name,
                severity = rule.severity.as_str(),
                count = f.count,
                "alert fired"
            );
        }
        Ok(Some(entries.len() as u64))
    }

    /// Rule counts for a new lease holder: the firings still holding keys quiet, and each
    /// log's events of the longest window before its cursor, counted without firing (they
    /// were evaluated by the previous holder).
    async fn warm_rule_state(
        &self,
        logs: &[FollowedLog],
        now: Timestamp,
    ) -> Result<RuleState, CoreError> {
        let main = self.store.main();
        let mut state = RuleState::new(self.policy.notifications.alerts.clone());
        for f in main.recent_firings(now - state.longest_window()).await? {
            state.quiet(&f.rule, &f.key, f.window_end);
        }
        let since = now - state.longest_window();
        for log in logs {
            let mut from = first_index_since(&log.store, since, log.cursor).await?;
            while from < log.cursor {
                let limit = STEP_EVENTS.min((log.cursor - from) as u32);
                let entries = log.store.audit_entries(None, from, limit).await?;
                let Some(last) = entries.last().map(|e| e.index) else {
                    break;
                };
                for entry in &entries {
                    if let Ok(event) = decode(entry.index, &entry.leaf) {
                        state.observe(entry.index, &event, false);
                    }
                }
                from = last + 1;
            }
        }
        Ok(state)
    }

    /// The firings of one step as rows, messages and audit events.
    async fn alert_step(
        &self,
        rules: &[AlertRule],
        cursor: u64,
        fired: &[Firing],
    ) -> Result<AlertStep, CoreError> {
        let mut step = AlertStep {
            cursor,
            ..AlertStep::default()
        };
        let now = self.now();
        for f in fired {
            let rule = &rules[f.rule];
            step.firings.push(AlertFiring {
                rule: rule.name.clone(),
                key: f.key.clone(),
                fired_at: f.last,
                window_end: f.window_end,
                audit_idx: f.index,
            });
            let body = alert_body(rule, f);
            let mut channels = policy_channels(rule);
            if let (true, Some(org)) = (rule.deliver.contains(&Destination::Org), &f.org) {
                channels.extend(self.org_channels(org).await?.outbox_channels());
            }
            for channel in channels {
                step.messages.push(OutboxMessage {
                    id: message_id(),
                    org_id: f.org.clone(),
                    channel,
                    event_type: ALERT_FIRED.into(),
                    body: body.clone(),
                    created_at: now,
                });
            }
            if rule.incident {
                let (incident, first) = self.rule_incident(rule, f);
                step.audit.push(
                    AuditEvent::new(
                        now,
                        custos_audit::Actor::System,
                        AuditAction::IncidentCreate,
                    )
                    .target(custos_audit::Target::Incident(incident.id.clone()))
                    .details(
                        Details::new()
                            .rule(rule.name.clone())
                            .severity(rule.severity.as_str()),
                    ),
                );
                step.incidents.push((incident, first));
            }
            let mut event =
                AuditEvent::new(now, custos_audit::Actor::System, AuditAction::AlertFire).details(
                    Details::new()
                        .rule(rule.name.clone())
                        .events(u64::from(f.count))
                        .severity(rule.severity.as_str()),
                );
            event.org = f.org.clone();
            step.audit.push(event);
        }
        Ok(step)
    }
}

impl Custos {
    /// The incident a firing of a rule marked `incident` opens: detected at the firing event,
    /// scoped to its org, its actor (a rule counting per actor) and the window it counted.
    fn rule_incident(
        &self,
        rule: &AlertRule,
        f: &Firing,
    ) -> (custos_store::IncidentRow, custos_store::IncidentStep) {
        let scope = crate::incidents::IncidentScope {
            orgs: f.org.iter().cloned().collect(),
            actors: f.actor.iter().cloned().collect(),
            from: Some(f.first),
            to: None,
            categories: Vec::new(),
        };
        let title = format!("Alert rule {} ({})", rule.name, rule.severity.as_str());
        self.new_incident_row(&title, f.last, &format!("rule:{}", rule.name), &scope)
    }
}

/// The event type of a fired alert's deliveries.
pub(crate) const ALERT_FIRED: &str = "alert.fired";

/// A new outbox message id (`msg_` and a time-ordered UUID), the `webhook-id` of every attempt.
pub(crate) fn message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// The policy channels a firing goes to (`webhook:<name>`, `email:<address>`); `org` is
/// resolved from the org's settings.
fn policy_channels(rule: &AlertRule) -> Vec<String> {
    rule.deliver
        .iter()
        .filter_map(|d| match d {
            Destination::Webhook(name) => Some(format!("webhook:{name}")),
            Destination::Email(address) => Some(format!("email:{address}")),
            Destination::Org => None,
        })
        .collect()
}

/// A fired alert as delivered: ids, counts and times, never personal data.
fn alert_body(rule: &AlertRule, f: &Firing) -> Vec<u8> {
    let body = json!({
        "type": ALERT_FIRED,
        "timestamp": f.last.to_string(),
        "data": {
            "rule": rule.name,
            "severity": rule.severity.as_str(),
            "org": f.org,
            "actor": f.actor,
            "count": f.count,
            "window": rule.window.to_string(),
            "action": f.action,
            "category": f.category,
            "first": f.first.to_string(),
            "last": f.last.to_string(),
        }
    });
    serde_json::to_vec(&body).expect("JSON values serialize")
}

/// One audit log the evaluator follows.
pub(crate) struct FollowedLog {
    /// `None`: the main log; else the region whose own log it is.
    name: Option<String>,
    /// The store holding it.
    store: Arc<dyn Store>,
    /// The first index not yet evaluated.
    cursor: u64,
}

/// The first index of `log` below `end` whose event is at or after `since` (a binary search:
/// times rise with the index, up to small skews between instances that do not matter for
/// warming counts or windows).
pub(crate) async fn first_index_since(
    log: &Arc<dyn Store>,
    since: Timestamp,
    end: u64,
) -> Result<u64, CoreError> {
    let (mut low, mut high) = (0, end);
    while low < high {
        let mid = low + (high - low) / 2;
        let entries = log.audit_entries(None, mid, 1).await?;
        let Some(entry) = entries.first() else {
            high = mid;
            continue;
        };
        match decode(entry.index, &entry.leaf) {
            Ok(event) if event.time >= since => high = mid,
            // Earlier, or unreadable (passed over like everywhere else here).
            _ => low = mid + 1,
        }
    }
    Ok(low)
}

fn decode(index: u64, leaf: &[u8]) -> Result<AuditEvent, CoreError> {
    AuditEvent::from_canonical_bytes(leaf)
        .map_err(|e| CoreError::internal_from(format!("audit entry {index}"), e))
}
