//! The policy's alert rules evaluated over audit events, as a plain state machine: events go
//! in in log order, firings come out. No I/O; the tailing, the lease and the deliveries are
//! `alerting`'s.
//!
//! A rule counts the events that match it per key (`per`) in a sliding window; it fires on
//! the event that brings the count within the window to its threshold, and then not again
//! for that key until the window after the firing has passed (an alert is delivered once per
//! window per key).

use std::collections::{HashMap, VecDeque};

use custos_audit::{Actor, AuditEvent, Outcome, Target};
use custos_policy::{ActorKind, AlertOutcome, AlertPer, AlertRule};
use jiff::{SignedDuration, Timestamp};

/// One firing of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Firing {
    /// The rule's position in the policy's `[[alerts]]`.
    pub rule: usize,
    /// The key it counted per (`org:<id>`, `actor:<name>`, `deployment`).
    pub key: String,
    /// The org of the events counted, when they have one and the key is per org or actor.
    pub org: Option<String>,
    /// The actor, when the rule counts per actor.
    pub actor: Option<String>,
    /// The firing event's action.
    pub action: &'static str,
    /// The firing event's category, if it concerns one.
    pub category: Option<String>,
    /// Events counted in the window (the threshold).
    pub count: u32,
    /// The first counted event's time.
    pub first: Timestamp,
    /// The firing event's time.
    pub last: Timestamp,
    /// The firing event's audit index.
    pub index: u64,
    /// No second firing for this rule and key before this.
    pub window_end: Timestamp,
}

/// The rules and what they have counted so far.
pub(crate) struct RuleState {
    rules: Vec<AlertRule>,
    /// Per rule and key: the times of the last `threshold` matching events.
    windows: HashMap<(usize, String), VecDeque<Timestamp>>,
    /// Per rule name and key: until when a firing holds back the next one.
    quiet_until: HashMap<(String, String), Timestamp>,
    observed: u64,
}

impl RuleState {
    /// No events counted yet.
    pub fn new(rules: Vec<AlertRule>) -> RuleState {
        RuleState {
            rules,
            windows: HashMap::new(),
            quiet_until: HashMap::new(),
            observed: 0,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[AlertRule] {
        &self.rules
    }

    /// The longest window of any rule (how far back a new evaluator re-reads the log).
    pub fn longest_window(&self) -> SignedDuration {
        let seconds = self
            .rules
            .iter()
            .map(AlertRule::window_seconds)
            .max()
            .unwrap_or(0);
        SignedDuration::from_secs(seconds)
    }

    /// Holds back firings of `rule` for `key` until `until` (a firing already committed).
    pub fn quiet(&mut self, rule: &str, key: &str, until: Timestamp) {
        let slot = self
            .quiet_until
            .entry((rule.to_string(), key.to_string()))
            .or_insert(until);
        *slot = (*slot).max(until);
    }

    /// Counts one event (the log's entry `index`); returns the rules it fired. With
    /// `may_fire` false the event is only counted (an event already evaluated before, read
    /// again to fill the windows).
    pub fn observe(&mut self, index: u64, event: &AuditEvent, may_fire: bool) -> Vec<Firing> {
        let mut fired = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if !matches(rule, event) {
                continue;
            }
            let key = key_of(rule.per, event);
            let window = SignedDuration::from_secs(rule.window_seconds());
            let threshold = rule.threshold as usize;
            let times = self.windows.entry((i, key.clone())).or_default();
            times.push_back(event.time);
            while times.len() > threshold {
                times.pop_front();
            }
            // Events of other instances may land slightly out of time order: the window is
            // measured back from the newest time seen for the key.
            let newest = times.iter().max().copied().unwrap_or(event.time);
            let counted = times.iter().filter(|t| **t > newest - window).count();
            if counted < threshold || !may_fire {
                continue;
            }
            let quiet = self.quiet_until.get(&(rule.name.clone(), key.clone()));
            if quiet.is_some_and(|until| event.time < *until) {
                continue;
            }
            let first = times.iter().min().copied().unwrap_or(event.time);
            let window_end = event.time + window;
            self.quiet_until
                .insert((rule.name.clone(), key.clone()), window_end);
            fired.push(Firing {
                rule: i,
                org: match rule.per {
                    AlertPer::Deployment => None,
                    AlertPer::Org | AlertPer::Actor => event.org.clone(),
                },
                actor: (rule.per == AlertPer::Actor).then(|| event.actor.name()),
                action: event.action.as_str(),
                category: categories_of(event).next().map(str::to_string),
                key,
                count: counted as u32,
                first,
                last: event.time,
                index,
                window_end,
            });
        }
        self.observed += 1;
        if self.observed.is_multiple_of(4096) {
            self.forget_before(event.time);
        }
        fired
    }

    /// Drops counts and quiet periods that can no longer matter at `now` (memory stays
    /// proportional to the keys active within the longest window).
    fn forget_before(&mut self, now: Timestamp) {
        let rules = &self.rules;
        self.windows.retain(|(i, _), times| {
            let window = SignedDuration::from_secs(rules[*i].window_seconds());
            times.back().is_some_and(|t| *t > now - window)
        });
        self.quiet_until.retain(|_, until| *until > now);
    }
}

/// Whether `event` counts for `rule`.
fn matches(rule: &AlertRule, event: &AuditEvent) -> bool {
    let m = &rule.matcher;
    if let Some(outcome) = m.outcome {
        let wanted = match outcome {
            AlertOutcome::Success => Outcome::Success,
            AlertOutcome::Denied => Outcome::Denied,
            AlertOutcome::Failed => Outcome::Failed,
        };
        if event.outcome != wanted {
            return false;
        }
    }
    if !m.action_matches(event.action.as_str()) {
        return false;
    }
    if !m.category.is_empty() && !categories_of(event).any(|c| m.category.iter().any(|n| n == c)) {
        return false;
    }
    m.actor_kind.is_empty() || m.actor_kind.contains(&kind_of(&event.actor))
}

/// The categories an event concerns: its detail's category or categories, or a category
/// target.
fn categories_of(event: &AuditEvent) -> impl Iterator<Item = &str> {
    let target = match &event.target {
        Some(Target::Category(name)) => Some(name.as_str()),
        _ => None,
    };
    event
        .details
        .category
        .as_deref()
        .into_iter()
        .chain(
            event
                .details
                .categories
                .iter()
                .flatten()
                .map(String::as_str),
        )
        .chain(target)
}

fn kind_of(actor: &Actor) -> ActorKind {
    match actor {
        Actor::Admin => ActorKind::Admin,
        Actor::Member(_) => ActorKind::Member,
        Actor::Operator(_) => ActorKind::Operator,
        Actor::System => ActorKind::System,
        Actor::Anonymous => ActorKind::Anonymous,
        Actor::Subject(_) => ActorKind::Subject,
    }
}

/// What a rule counts `event` under. Events without an org count together under
/// `deployment` when a rule counts per org.
pub(crate) fn key_of(per: AlertPer, event: &AuditEvent) -> String {
    match (per, &event.org) {
        (AlertPer::Org, Some(org)) => format!("org:{org}"),
        (AlertPer::Org, None) | (AlertPer::Deployment, _) => "deployment".to_string(),
        (AlertPer::Actor, _) => format!("actor:{}", event.actor.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_audit::AuditAction;
    use proptest::prelude::*;

    fn rule(threshold: u32, window: &str, per: AlertPer) -> AlertRule {
        let toml = format!(
            "[categories.messages]\nretention = \"1d\"\n[[alerts]]\nname = \"r\"\n\
             match = {{ outcome = \"denied\" }}\nthreshold = {threshold}\nwindow = \
             \"{window}\"\nper = \"{}\"\ndeliver = [\"org\"]\n",
            per.as_str()
        );
        custos_policy::Policy::parse(&toml, "t.toml")
            .unwrap()
            .notifications
            .alerts
            .remove(0)
    }

    fn denied(at: i64, member: &str, org: &str) -> AuditEvent {
        let mut e = AuditEvent::new(
            Timestamp::from_second(1_800_000_000 + at).unwrap(),
            Actor::Member(member.into()),
            AuditAction::RecordRead,
        )
        .outcome(Outcome::Denied);
        e.org = Some(org.into());
        e
    }

    #[test]
    fn five_in_a_minute_fires_once_on_the_fifth() {
        let mut state = RuleState::new(vec![rule(5, "1m", AlertPer::Org)]);
        let fired: Vec<(u64, Firing)> = (0..6)
            .flat_map(|i| {
                state
                    .observe(i, &denied(i as i64 * 5, "m1", "o1"), true)
                    .into_iter()
                    .map(move |f| (i, f))
            })
            .collect();
        assert_eq!(fired.len(), 1, "{fired:?}");
        let (at, f) = &fired[0];
        assert_eq!((*at, f.count, f.key.as_str()), (4, 5, "org:o1"));
        assert_eq!(f.org.as_deref(), Some("o1"));
        assert_eq!(f.actor, None);
        // A success does not count; another org counts apart.
        let mut ok = denied(31, "m1", "o1");
        ok.outcome = Outcome::Success;
        assert!(state.observe(6, &ok, true).is_empty());
        // After the quiet window, a new burst fires again.
        let again: usize = (0..5)
            .map(|i| {
                state
                    .observe(10 + i, &denied(100 + i as i64, "m1", "o1"), true)
                    .len()
            })
            .sum();
        assert_eq!(again, 1);
    }

    #[test]
    fn events_spread_wider_than_the_window_never_fire() {
        let mut state = RuleState::new(vec![rule(3, "1m", AlertPer::Actor)]);
        for i in 0..20 {
            assert!(state
                .observe(i, &denied(i as i64 * 31, "m1", "o1"), true)
                .is_empty());
        }
    }

    #[test]
    fn counting_without_firing_fills_the_window_only() {
        let mut state = RuleState::new(vec![rule(3, "1m", AlertPer::Actor)]);
        assert!(state.observe(0, &denied(0, "m1", "o1"), false).is_empty());
        assert!(state.observe(1, &denied(1, "m1", "o1"), false).is_empty());
        let fired = state.observe(2, &denied(2, "m1", "o1"), true);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].actor.as_deref(), Some("member:m1"));
        // A firing committed earlier (another instance's) holds the key quiet.
        let mut state = RuleState::new(vec![rule(1, "1m", AlertPer::Actor)]);
        state.quiet("r", "actor:member:m1", denied(30, "m1", "o1").time);
        assert!(state.observe(0, &denied(10, "m1", "o1"), true).is_empty());
        assert_eq!(state.observe(1, &denied(30, "m1", "o1"), true).len(), 1);
    }

    proptest! {
        /// Whatever the order of actors and gaps: every firing has `threshold` events within
        /// one window, and two firings of one key are at least a window apart.
        #[test]
        fn firings_are_justified_and_spaced(
            events in prop::collection::vec((0u8..3, 0i64..40), 1..300),
            threshold in 1u32..6,
        ) {
            let mut state = RuleState::new(vec![rule(threshold, "1m", AlertPer::Actor)]);
            let mut at = 0;
            let mut last_fire: HashMap<String, Timestamp> = HashMap::new();
            let mut seen: HashMap<String, Vec<Timestamp>> = HashMap::new();
            for (i, (who, gap)) in events.into_iter().enumerate() {
                at += gap;
                let e = denied(at, &format!("m{who}"), "o1");
                seen.entry(format!("actor:member:m{who}")).or_default().push(e.time);
                for f in state.observe(i as u64, &e, true) {
                    let times = &seen[&f.key];
                    let within = times.iter().filter(|t| **t > e.time - SignedDuration::from_secs(60)).count();
                    prop_assert!(within >= threshold as usize);
                    if let Some(prev) = last_fire.insert(f.key.clone(), e.time) {
                        prop_assert!(e.time.duration_since(prev) >= SignedDuration::from_secs(60));
                    }
                }
            }
        }
    }
}
