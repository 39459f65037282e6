//! The policy's notification model: deployment channels (`[webhooks.<name>]`, `[smtp]`),
//! alert rules (`[[alerts]]`) and incident clocks (`[incidents]`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::UnknownKeyword;
use crate::duration::{Duration, DurationUnit};

/// The longest alert window: windows are kept in memory per key, so they stay short.
pub const MAX_ALERT_WINDOW_SECONDS: i64 = 7 * 86_400;

/// Everything the policy says about telling people: its channels, rules and incident clocks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Notifications {
    /// Deployment-level webhooks by name (`[webhooks.<name>]`).
    pub webhooks: BTreeMap<String, Webhook>,
    /// The mail server e-mail is sent through (`[smtp]`); `None`: no e-mail.
    pub smtp: Option<Smtp>,
    /// Alert rules in file order (`[[alerts]]`).
    pub alerts: Vec<AlertRule>,
    /// How long each step of an incident may take (`[incidents]`).
    pub incidents: IncidentClocks,
}

/// `[webhooks.<name>]`: a deployment-level webhook endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Webhook {
    /// Where deliveries are POSTed, taken as written (the operator writes the policy).
    pub url: String,
    /// The environment variable holding the Standard Webhooks secret (`whsec_<base64>`; two,
    /// separated by a space, while rotating). Never the secret itself.
    pub secret_env: String,
}

/// `[smtp]`: the mail server e-mail notifications are sent through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Smtp {
    /// The server's host name.
    pub host: String,
    /// Its port (default 587, the submission port).
    pub port: u16,
    /// The sender address.
    pub from: String,
    /// The environment variable holding the user name, if the server wants one.
    pub username_env: Option<String>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// Whether the connection must be upgraded with STARTTLS (default true; `false` only for a
    /// relay on a trusted network).
    pub starttls: bool,
}

/// The default SMTP submission port.
pub const DEFAULT_SMTP_PORT: u16 = 587;

/// One `[[alerts]]` rule: how many matching audit events within a window fire it, and where
/// the alert goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AlertRule {
    /// Unique name; deliveries carry it as `rule`.
    pub name: String,
    /// Which events count.
    #[serde(rename = "match")]
    pub matcher: AlertMatch,
    /// The rule fires on this many matching events within `window`.
    pub threshold: u32,
    /// The sliding window (minutes to weeks, at most 7 days).
    pub window: Duration,
    /// What events are counted together.
    pub per: AlertPer,
    /// How serious a firing is.
    pub severity: Severity,
    /// Where a firing is delivered.
    pub deliver: Vec<Destination>,
    /// Whether a firing opens an incident.
    pub incident: bool,
}

impl AlertRule {
    /// The window in seconds (validated to be exact when parsed).
    pub fn window_seconds(&self) -> i64 {
        self.window
            .exact_seconds()
            .unwrap_or(MAX_ALERT_WINDOW_SECONDS)
    }
}

/// The conditions an audit event must meet to count for a rule; every given one must hold,
/// and a list holds when any of its entries does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AlertMatch {
    /// `success`, `denied` or `failed`.
    pub outcome: Option<AlertOutcome>,
    /// Action names (`auth.failed`), or a family ending in `.*` (`auth.*`).
    pub action: Vec<String>,
    /// Data category names the event concerns.
    pub category: Vec<String>,
    /// Kinds of actor: `admin`, `member`, `operator`, `system`, `anonymous`.
    pub actor_kind: Vec<ActorKind>,
}

impl AlertMatch {
    /// Whether an action name is one `action` lists (every action when it lists none).
    pub fn action_matches(&self, action: &str) -> bool {
        self.action.is_empty()
            || self.action.iter().any(|a| match a.strip_suffix(".*") {
                Some(family) => action
                    .strip_prefix(family)
                    .is_some_and(|rest| rest.starts_with('.')),
                None => a == action,
            })
    }
}

/// Where a fired alert is delivered.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub enum Destination {
    /// A `[webhooks.<name>]` of the policy, by name.
    Webhook(String),
    /// An e-mail address (`email:<address>`), sent through `[smtp]`.
    Email(String),
    /// The channels of the org the alert concerns (`org`).
    Org,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Webhook(name) => f.write_str(name),
            Destination::Email(address) => write!(f, "email:{address}"),
            Destination::Org => f.write_str("org"),
        }
    }
}

impl From<Destination> for String {
    fn from(d: Destination) -> String {
        d.to_string()
    }
}

/// `[incidents]`: how long after detection each step of an incident is due.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IncidentClocks {
    /// Identify and contain (seed 004: < 1 hour).
    pub contain: Duration,
    /// Evaluate scope and impact (< 6 hours).
    pub assess: Duration,
    /// Inform affected users and authorities (< 72 hours; GDPR article 33).
    pub notify: Duration,
}

impl Default for IncidentClocks {
    fn default() -> Self {
        IncidentClocks {
            contain: Duration::from_parts(1, DurationUnit::Hours),
            assess: Duration::from_parts(6, DurationUnit::Hours),
            notify: Duration::from_parts(72, DurationUnit::Hours),
        }
    }
}

keyword_enum! {
    /// The outcome an alert rule matches.
    AlertOutcome, "outcome" {
        /// The action took effect.
        Success = "success",
        /// Authorization refused it.
        Denied = "denied",
        /// It was attempted and failed.
        Failed = "failed",
    }
}

keyword_enum! {
    /// The kind of actor an alert rule matches.
    ActorKind, "actor kind" {
        /// The bootstrap admin token.
        Admin = "admin",
        /// An org member or service account.
        Member = "member",
        /// A signed-in operator.
        Operator = "operator",
        /// Custos itself.
        System = "system",
        /// A caller that could not be authenticated.
        Anonymous = "anonymous",
        /// A data subject in the org's privacy center.
        Subject = "subject",
    }
}

keyword_enum! {
    /// What an alert rule counts events per.
    AlertPer, "alert key" {
        /// Each org separately (deployment events without an org count together).
        Org = "org",
        /// Each actor separately.
        Actor = "actor",
        /// All events of the deployment together.
        Deployment = "deployment",
    }
}

keyword_enum! {
    /// How serious a fired alert is.
    Severity, "severity" {
        /// Worth a look.
        Low = "low",
        /// Needs attention today.
        Medium = "medium",
        /// Needs attention now.
        High = "high",
        /// Wake someone up.
        Critical = "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_families_match_whole_segments() {
        let m = AlertMatch {
            action: vec!["auth.*".into(), "pii.blocked".into()],
            ..AlertMatch::default()
        };
        assert!(m.action_matches("auth.failed"));
        assert!(m.action_matches("auth.sign_in"));
        assert!(m.action_matches("pii.blocked"));
        assert!(!m.action_matches("authz.denied"));
        assert!(!m.action_matches("auth"));
        assert!(AlertMatch::default().action_matches("anything"));
    }
}
