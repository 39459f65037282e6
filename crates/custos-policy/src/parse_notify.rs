//! The notification tables: `[webhooks.<name>]`, `[smtp]`, `[[alerts]]` and `[incidents]`.

use std::collections::{BTreeMap, BTreeSet};

use toml_edit::TableLike;

use super::{
    bool_field, describe_type, duration_field, fields, keyword, keyword_field, missing,
    string_array, string_field, suggest, table_entries, table_field, Cx, Field, Span,
};
use crate::model::{
    ActorKind, AlertMatch, AlertOutcome, AlertPer, AlertRule, Destination, IncidentClocks,
    Severity, Smtp, Webhook, DEFAULT_SMTP_PORT, MAX_ALERT_WINDOW_SECONDS,
};

const WEBHOOK_KEYS: &[&str] = &["url", "secret_env"];
const SMTP_KEYS: &[&str] = &[
    "host",
    "port",
    "from",
    "username_env",
    "password_env",
    "starttls",
];
const ALERT_KEYS: &[&str] = &[
    "name",
    "match",
    "threshold",
    "window",
    "per",
    "severity",
    "deliver",
    "incident",
];
const MATCH_KEYS: &[&str] = &["outcome", "action", "category", "actor_kind"];
const INCIDENT_KEYS: &[&str] = &["contain", "assess", "notify"];
/// Most events a rule may wait for: windows are held in memory per key.
const MAX_THRESHOLD: i64 = 10_000;

/// Checks `[webhooks]`: each `[webhooks.<name>]` has an http(s) `url` and the name of the
/// environment variable that holds its secret.
pub(super) fn check_webhooks(
    cx: &mut Cx<'_>,
    table: &dyn TableLike,
    at: &Span,
) -> BTreeMap<String, Webhook> {
    let mut out = BTreeMap::new();
    for (name, item) in table.iter() {
        let key = table
            .get_key_value(name)
            .and_then(|(k, _)| k.span())
            .unwrap_or_else(|| at.clone());
        if !is_channel_name(name) {
            cx.error(
                &key,
                format!("webhook name {name:?} is not a plain name"),
                "use lowercase letters, digits, `_` and `-` (it is what `deliver` lists), and \
                 not `org`, which names the org's own channels"
                    .to_string(),
            );
        }
        let Some(t) = item.as_table_like() else {
            cx.error(
                &item.span().unwrap_or_else(|| key.clone()),
                format!(
                    "webhook `{name}` must be a table, found {}",
                    describe_type(item)
                ),
                format!("write it as [webhooks.{name}] with `url` and `secret_env`"),
            );
            continue;
        };
        let within = format!("[webhooks.{name}]");
        let f = fields(cx, t, WEBHOOK_KEYS, &key, &within, &BTreeSet::new());
        let url = match f.get("url") {
            Some(field) => string_field(cx, field).and_then(|(url, span)| {
                if url.starts_with("https://") || url.starts_with("http://") {
                    Some(url)
                } else {
                    cx.error(
                        &span,
                        format!("{within} url {url:?} is not an http(s) URL"),
                        "e.g. url = \"https://hooks.example.com/custos\"".to_string(),
                    );
                    None
                }
            }),
            None => {
                missing(
                    cx,
                    &key,
                    "url",
                    &within,
                    "\"https://hooks.example.com/custos\"",
                );
                None
            }
        };
        let secret_env = match f.get("secret_env") {
            Some(field) => env_name(cx, field),
            None => {
                missing(cx, &key, "secret_env", &within, "\"OPS_WEBHOOK_SECRET\"");
                None
            }
        };
        if let (Some(url), Some(secret_env)) = (url, secret_env) {
            out.insert(name.to_string(), Webhook { url, secret_env });
        }
    }
    out
}

/// Checks `[smtp]`: a host and sender, an optional port, credentials by environment variable
/// (both or neither), and STARTTLS on unless turned off.
pub(super) fn check_smtp(cx: &mut Cx<'_>, table: &dyn TableLike, at: &Span) -> Option<Smtp> {
    let f = fields(cx, table, SMTP_KEYS, at, "[smtp]", &BTreeSet::new());
    let host = match f.get("host") {
        Some(field) => string_field(cx, field).and_then(|(host, span)| {
            if host.is_empty() || host.contains(['/', ':', ' ']) {
                cx.error(
                    &span,
                    format!("[smtp] host {host:?} is not a host name"),
                    "name the host only, e.g. host = \"smtp.example.com\"; the port is `port`"
                        .to_string(),
                );
                return None;
            }
            Some(host)
        }),
        None => {
            missing(cx, at, "host", "[smtp]", "\"smtp.example.com\"");
            None
        }
    };
    let port = match f.get("port") {
        None => Some(DEFAULT_SMTP_PORT),
        Some(field) => match field.item.as_integer().map(u16::try_from) {
            Some(Ok(port)) if port > 0 => Some(port),
            _ => {
                cx.error(
                    &field.value_span(),
                    "[smtp] `port` must be a port number from 1 to 65535",
                    "e.g. port = 587".to_string(),
                );
                None
            }
        },
    };
    let from = match f.get("from") {
        Some(field) => string_field(cx, field).and_then(|(from, span)| {
            if is_email(&from) {
                Some(from)
            } else {
                cx.error(
                    &span,
                    format!("[smtp] from {from:?} is not an e-mail address"),
                    "e.g. from = \"custos@example.com\"".to_string(),
                );
                None
            }
        }),
        None => {
            missing(cx, at, "from", "[smtp]", "\"custos@example.com\"");
            None
        }
    };
    let username_env = f.get("username_env").and_then(|field| env_name(cx, field));
    let password_env = f.get("password_env").and_then(|field| env_name(cx, field));
    if f.contains_key("username_env") != f.contains_key("password_env") {
        let (given, absent) = if f.contains_key("username_env") {
            ("username_env", "password_env")
        } else {
            ("password_env", "username_env")
        };
        cx.error(
            &f[given].key,
            format!("[smtp] has `{given}` but no `{absent}`"),
            "give both, or neither for a server that takes no login".to_string(),
        );
    }
    let starttls = f
        .get("starttls")
        .and_then(|field| bool_field(cx, field))
        .unwrap_or(true);
    Some(Smtp {
        host: host?,
        port: port?,
        from: from?,
        username_env,
        password_env,
        starttls,
    })
}

/// Checks `[incidents]`: the three clocks, each a duration, in order.
pub(super) fn check_incidents(cx: &mut Cx<'_>, table: &dyn TableLike, at: &Span) -> IncidentClocks {
    let f = fields(
        cx,
        table,
        INCIDENT_KEYS,
        at,
        "[incidents]",
        &BTreeSet::new(),
    );
    let default = IncidentClocks::default();
    let mut clock = |name: &str, fallback| {
        f.get(name)
            .and_then(|field| duration_field(cx, field))
            .unwrap_or(fallback)
    };
    let clocks = IncidentClocks {
        contain: clock("contain", default.contain),
        assess: clock("assess", default.assess),
        notify: clock("notify", default.notify),
    };
    for (earlier, later, a, b) in [
        ("contain", "assess", clocks.contain, clocks.assess),
        ("assess", "notify", clocks.assess, clocks.notify),
    ] {
        if a.cmp_for_validation(&b).is_gt() {
            let span = f
                .get(earlier)
                .or_else(|| f.get(later))
                .map(|f| f.value_span())
                .unwrap_or_else(|| at.clone());
            cx.error(
                &span,
                format!("[incidents] `{earlier}` ({a}) is later than `{later}` ({b})"),
                "the clocks run from detection, in the order contain, assess, notify".to_string(),
            );
        }
    }
    clocks
}

/// What a rule's `deliver` may name, besides `org` and `email:` addresses.
pub(super) struct Channels<'a> {
    /// The policy's webhook names.
    pub webhooks: &'a BTreeMap<String, Webhook>,
    /// Whether `[smtp]` is configured (e-mail destinations need it).
    pub smtp: bool,
    /// The policy's category names (for `match.category`).
    pub categories: &'a BTreeSet<String>,
}

/// Checks `[[alerts]]` (or `alerts = [{..}]`): every rule complete and unique by name.
pub(super) fn check_alerts(
    cx: &mut Cx<'_>,
    field: &Field<'_>,
    channels: &Channels<'_>,
) -> Vec<AlertRule> {
    let hint = "write each rule as an [[alerts]] table";
    let entries = table_entries(cx, field, hint, Some(hint));
    let mut names = BTreeSet::new();
    let mut rules = Vec::new();
    for (table, span) in entries {
        if let Some(rule) = check_alert(cx, table, &span, channels) {
            if names.insert(rule.name.clone()) {
                rules.push(rule);
            } else {
                cx.error(
                    &span,
                    format!("duplicate alert rule name {:?}", rule.name),
                    "rule names must be unique; deliveries name the rule".to_string(),
                );
            }
        }
    }
    rules
}

fn check_alert(
    cx: &mut Cx<'_>,
    table: &dyn TableLike,
    at: &Span,
    channels: &Channels<'_>,
) -> Option<AlertRule> {
    let f = fields(cx, table, ALERT_KEYS, at, "[[alerts]]", &BTreeSet::new());
    let name = match f.get("name") {
        Some(field) => string_field(cx, field).and_then(|(name, span)| {
            if is_channel_name(&name) {
                Some(name)
            } else {
                cx.error(
                    &span,
                    format!("alert rule name {name:?} is not a plain name"),
                    "use lowercase letters, digits, `_` and `-`, e.g. \"denied-burst\"".to_string(),
                );
                None
            }
        }),
        None => {
            missing(cx, at, "name", "[[alerts]]", "\"denied-burst\"");
            None
        }
    };
    let matcher = match f.get("match") {
        Some(field) => table_field(cx, field)
            .map(|t| check_match(cx, t, &field.key, channels.categories))
            .unwrap_or_default(),
        None => AlertMatch::default(),
    };
    let threshold = match f.get("threshold") {
        Some(field) => match field.item.as_integer() {
            Some(n) if (1..=MAX_THRESHOLD).contains(&n) => Some(n as u32),
            _ => {
                cx.error(
                    &field.value_span(),
                    format!("`threshold` must be a whole number from 1 to {MAX_THRESHOLD}"),
                    "the rule fires on this many matching events within `window`, e.g. 5"
                        .to_string(),
                );
                None
            }
        },
        None => {
            missing(cx, at, "threshold", "[[alerts]]", "5");
            None
        }
    };
    let window = match f.get("window") {
        Some(field) => duration_field(cx, field).and_then(|window| match window.exact_seconds() {
            Some(s) if s <= MAX_ALERT_WINDOW_SECONDS => Some(window),
            _ => {
                cx.error(
                    &field.value_span(),
                    format!("alert window {window} is longer than 7 days or not exact"),
                    "use minutes, hours, days or weeks up to \"7d\", e.g. window = \"1m\""
                        .to_string(),
                );
                None
            }
        }),
        None => {
            missing(cx, at, "window", "[[alerts]]", "\"1m\"");
            None
        }
    };
    let per = f
        .get("per")
        .map(|field| keyword_field(cx, field, AlertPer::ALL))
        .unwrap_or(Some(AlertPer::Org));
    let severity = f
        .get("severity")
        .map(|field| keyword_field(cx, field, Severity::ALL))
        .unwrap_or(Some(Severity::Medium));
    let deliver = match f.get("deliver") {
        Some(field) => check_deliver(cx, field, channels),
        None => {
            missing(cx, at, "deliver", "[[alerts]]", "[\"ops\"]");
            None
        }
    };
    let incident = f
        .get("incident")
        .and_then(|field| bool_field(cx, field))
        .unwrap_or(false);
    Some(AlertRule {
        name: name?,
        matcher,
        threshold: threshold?,
        window: window?,
        per: per?,
        severity: severity?,
        deliver: deliver?,
        incident,
    })
}

fn check_match(
    cx: &mut Cx<'_>,
    table: &dyn TableLike,
    at: &Span,
    categories: &BTreeSet<String>,
) -> AlertMatch {
    let f = fields(
        cx,
        table,
        MATCH_KEYS,
        at,
        "an alert's `match`",
        &BTreeSet::new(),
    );
    let outcome = f
        .get("outcome")
        .and_then(|field| keyword_field(cx, field, AlertOutcome::ALL));
    let mut action = Vec::new();
    for (name, span) in f
        .get("action")
        .and_then(|field| list(cx, field))
        .unwrap_or_default()
    {
        if known_action(&name) {
            action.push(name);
        } else {
            let all: Vec<&str> = custos_audit::AuditAction::ALL
                .iter()
                .map(|a| a.as_str())
                .collect();
            let hint = match suggest(&name, &all) {
                Some(s) => format!("did you mean {s:?}? a family is written \"auth.*\""),
                None => "name an audit action (`custos audit` lists them), or a family such \
                         as \"auth.*\""
                    .to_string(),
            };
            cx.error(&span, format!("{name:?} is not an audit action"), hint);
        }
    }
    let mut category = Vec::new();
    for (name, span) in f
        .get("category")
        .and_then(|field| list(cx, field))
        .unwrap_or_default()
    {
        if categories.contains(&name) {
            category.push(name);
        } else {
            let all: Vec<&str> = categories.iter().map(String::as_str).collect();
            let hint = match suggest(&name, &all) {
                Some(s) => format!("did you mean {s:?}?"),
                None => format!("categories of this policy: {}", all.join(", ")),
            };
            cx.error(
                &span,
                format!("{name:?} is not a category of this policy"),
                hint,
            );
        }
    }
    let mut actor_kind = Vec::new();
    for (name, span) in f
        .get("actor_kind")
        .and_then(|field| list(cx, field))
        .unwrap_or_default()
    {
        actor_kind.extend(keyword(cx, &name, &span, ActorKind::ALL));
    }
    AlertMatch {
        outcome,
        action,
        category,
        actor_kind,
    }
}

/// A list of strings, or one string standing for a list of one.
fn list(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<Vec<(String, Span)>> {
    match field.item.as_str() {
        Some(one) => Some(vec![(one.to_string(), field.value_span())]),
        None => string_array(cx, field),
    }
}

fn check_deliver(
    cx: &mut Cx<'_>,
    field: &Field<'_>,
    channels: &Channels<'_>,
) -> Option<Vec<Destination>> {
    let entries = list(cx, field)?;
    if entries.is_empty() {
        cx.error(
            &field.value_span(),
            "`deliver` names no channel",
            "name a [webhooks.<name>], \"email:<address>\" or \"org\"".to_string(),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (text, span) in entries {
        if text == "org" {
            out.push(Destination::Org);
        } else if let Some(address) = text.strip_prefix("email:") {
            if !is_email(address) {
                cx.error(
                    &span,
                    format!("{address:?} is not an e-mail address"),
                    "e.g. \"email:security@example.com\"".to_string(),
                );
                ok = false;
            } else if !channels.smtp {
                cx.error(
                    &span,
                    format!("{text:?} needs an [smtp] table to send through"),
                    "add [smtp] with `host` and `from`".to_string(),
                );
                ok = false;
            } else {
                out.push(Destination::Email(address.to_string()));
            }
        } else if channels.webhooks.contains_key(&text) {
            out.push(Destination::Webhook(text));
        } else {
            let names: Vec<&str> = channels.webhooks.keys().map(String::as_str).collect();
            let hint = match suggest(&text, &names) {
                Some(s) => format!("did you mean {s:?}?"),
                None if names.is_empty() => {
                    format!("add a [webhooks.{text}] table with `url` and `secret_env`")
                }
                None => format!("webhooks of this policy: {}", names.join(", ")),
            };
            cx.error(&span, format!("`deliver` names no webhook {text:?}"), hint);
            ok = false;
        }
    }
    ok.then_some(out)
}

/// Whether `action` is an audit action's name or a family (`auth.*`) of at least one.
fn known_action(action: &str) -> bool {
    let all = custos_audit::AuditAction::ALL.iter().map(|a| a.as_str());
    match action.strip_suffix(".*") {
        Some(family) => all
            .clone()
            .any(|a| a.strip_prefix(family).is_some_and(|r| r.starts_with('.'))),
        None => all.clone().any(|a| a == action),
    }
}

/// An environment variable's name: letters, digits and `_`, not starting with a digit.
fn env_name(cx: &mut Cx<'_>, field: &Field<'_>) -> Option<String> {
    let (name, span) = string_field(cx, field)?;
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Some(name)
    } else {
        cx.error(
            &span,
            format!(
                "`{}` {name:?} is not an environment variable's name",
                field.name
            ),
            "name the variable that holds the value, e.g. \"OPS_WEBHOOK_SECRET\"; the value \
             itself never goes in the policy"
                .to_string(),
        );
        None
    }
}

/// A webhook's or rule's name: 1 to 64 of `a-z`, `0-9`, `_`, `-`; never `org`.
fn is_channel_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name != "org"
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A plausible address: one `@` with text on both sides and no spaces or angle brackets
/// (the mail server is the judge of the rest).
pub(crate) fn is_email(s: &str) -> bool {
    let mut parts = s.split('@');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None)
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                && !s.contains(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == ',')
    )
}
