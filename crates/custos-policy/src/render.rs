//! Writing a policy back out: as effective TOML, and as a public Markdown disclosure.

use std::fmt::Write as _;

use crate::model::{
    Access, Category, Classification, ErasureAction, Notifications, PiiAction, PiiRule, Policy,
};

/// A TOML basic string, escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when it can be, quoted otherwise.
fn key(s: &str) -> String {
    let bare = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        s.to_string()
    } else {
        quote(s)
    }
}

fn string_list<S: AsRef<str>>(items: &[S]) -> String {
    let inner: Vec<String> = items.iter().map(|s| quote(s.as_ref())).collect();
    format!("[{}]", inner.join(", "))
}

fn access_inline(a: &Access) -> String {
    let roles: Vec<&str> = a.roles.iter().map(|r| r.as_str()).collect();
    format!(
        "{{ roles = {}, groups = {}, require_mfa = {} }}",
        string_list(&roles),
        string_list(&a.groups),
        a.require_mfa
    )
}

fn pii_inline(p: &PiiRule) -> String {
    format!(
        "{{ detect = {}, action = {}{} }}",
        string_list(&p.detect),
        quote(p.action.as_str()),
        if p.alert { ", alert = true" } else { "" }
    )
}

/// The effective policy as TOML, every default spelled out, in a fixed order.
pub(crate) fn to_toml(p: &Policy) -> String {
    let mut o = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        o,
        "# Effective Custos policy: every default filled in. Durations are calendar-aware:\n\
         # m minutes, h hours, d days, w weeks, mo months, y years.\n"
    );
    let _ = writeln!(o, "[service]");
    let _ = writeln!(o, "name = {}", quote(&p.service.name));
    let _ = writeln!(o, "regions = {}", string_list(&p.service.regions));
    let _ = writeln!(o, "default_region = {}", quote(&p.service.default_region));
    if let Some(url) = &p.service.public_url {
        let _ = writeln!(o, "public_url = {}", quote(url));
    }

    let d = &p.deletion;
    let _ = writeln!(o, "\n[deletion]");
    let _ = writeln!(o, "soft_delete_window = \"{}\"", d.soft_delete_window);
    let _ = writeln!(o, "hard_delete_within = \"{}\"", d.hard_delete_within);
    let _ = writeln!(o, "expired_within = \"{}\"", d.expired_within);
    let _ = writeln!(
        o,
        "account_termination_within = \"{}\"",
        d.account_termination_within
    );
    let _ = writeln!(
        o,
        "erasure_request_within = \"{}\"",
        d.erasure_request_within
    );
    let _ = writeln!(o, "erasure_extension_max = \"{}\"", d.erasure_extension_max);
    let _ = writeln!(
        o,
        "archive_restore_window = \"{}\"",
        d.archive_restore_window
    );

    for (name, c) in &p.categories {
        let _ = writeln!(o, "\n[categories.{}]", key(name));
        let _ = writeln!(o, "retention = \"{}\"", c.retention);
        if let Some(b) = &c.org_configurable {
            let _ = writeln!(
                o,
                "org_configurable = {{ min = \"{}\", max = \"{}\" }}",
                b.min, b.max
            );
        }
        if let Some(a) = &c.archive_after {
            let _ = writeln!(o, "archive_after = \"{a}\"");
        }
        let _ = writeln!(o, "classification = \"{}\"", c.classification);
        let _ = writeln!(o, "access = {}", access_inline(&c.access));
        if let Some(pii) = &c.pii {
            let _ = writeln!(o, "pii = {}", pii_inline(pii));
        }
        let _ = writeln!(o, "on_subject_erasure = \"{}\"", c.on_subject_erasure);
        let _ = writeln!(o, "store_content = {}", c.store_content);
        let _ = writeln!(o, "editable = {}", c.editable);
    }

    let b = &p.backups;
    let _ = writeln!(o, "\n[backups]");
    let _ = writeln!(o, "retention = \"{}\"", b.retention);
    let _ = writeln!(o, "rpo = \"{}\"", b.rpo);
    let _ = writeln!(o, "rto = \"{}\"", b.rto);

    for (name, stores) in &p.regions {
        let _ = writeln!(o, "\n[regions.{name}]");
        let _ = writeln!(o, "database = {}", quote(&stores.database));
        let _ = writeln!(o, "objects = {}", quote(&stores.objects));
    }

    let _ = writeln!(o, "\n[llm]");
    let _ = writeln!(o, "zero_retention = {}", p.llm.zero_retention);
    if p.llm.providers.is_empty() {
        let _ = writeln!(o, "providers = []");
    } else {
        let _ = writeln!(o, "providers = [");
        for pr in &p.llm.providers {
            let mut extra = String::new();
            if let Some(var) = &pr.api_key_env {
                extra.push_str(&format!(", api_key_env = {}", quote(var)));
            }
            if !pr.models.is_empty() {
                extra.push_str(&format!(", models = {}", string_list(&pr.models)));
            }
            let _ = writeln!(
                o,
                "  {{ name = {}, kind = {}, base_url = {}, regions = {}{extra} }},",
                quote(&pr.name),
                quote(pr.kind.as_str()),
                quote(&pr.base_url),
                string_list(&pr.regions)
            );
        }
        let _ = writeln!(o, "]");
    }
    if let Some(pii) = &p.llm.pii {
        let _ = writeln!(o, "pii = {}", pii_inline(pii));
    }
    let _ = writeln!(o, "timeout_seconds = {}", p.llm.timeout_seconds);
    if let Some(c) = &p.llm.category {
        let _ = writeln!(o, "category = {}", quote(c));
    }

    // Always shown, empty or not: it says which internal addresses run-time URLs may reach.
    let n = &p.network;
    let _ = writeln!(o, "\n[network]");
    let ranges: Vec<String> = n.allow.iter().map(ToString::to_string).collect();
    let _ = writeln!(o, "allow = {}", string_list(&ranges));
    if let Some(ca) = &n.ca_file {
        let _ = writeln!(o, "ca_file = {}", quote(&ca.display().to_string()));
    }
    if let Some(after) = &p.access.inactive_member_after {
        let _ = writeln!(o, "\n[access]");
        let _ = writeln!(o, "inactive_member_after = {}", quote(&after.to_string()));
    }
    // Always shown: it says how long operators' support access may wait and last.
    let _ = writeln!(o, "\n[support]");
    let _ = writeln!(
        o,
        "request_expiry = {}",
        quote(&p.support.request_expiry.to_string())
    );
    let _ = writeln!(
        o,
        "max_duration = {}",
        quote(&p.support.max_duration.to_string())
    );
    // Always shown: how long operators' sessions last, and how they sign in.
    let ops = &p.operators;
    let _ = writeln!(o, "\n[operators]");
    let _ = writeln!(
        o,
        "session_timeout = {}",
        quote(&ops.session_timeout.to_string())
    );
    let _ = writeln!(
        o,
        "session_max_lifetime = {}",
        quote(&ops.session_max_lifetime.to_string())
    );
    if let Some(idp) = &ops.identity_provider {
        let _ = writeln!(o, "\n[operators.identity_provider]");
        let _ = writeln!(o, "issuer = {}", quote(&idp.issuer));
        let _ = writeln!(o, "client_id = {}", quote(&idp.client_id));
        if let Some(env) = &idp.client_secret_env {
            let _ = writeln!(o, "client_secret_env = {}", quote(env));
        }
    }
    render_notifications(&mut o, &p.notifications);
    o
}

/// `[incidents]` (always: it says how long each step may take), then the channels and rules.
fn render_notifications(o: &mut String, n: &Notifications) {
    let c = &n.incidents;
    let _ = writeln!(o, "\n[incidents]");
    let _ = writeln!(o, "contain = {}", quote(&c.contain.to_string()));
    let _ = writeln!(o, "assess = {}", quote(&c.assess.to_string()));
    let _ = writeln!(o, "notify = {}", quote(&c.notify.to_string()));
    for (name, hook) in &n.webhooks {
        let _ = writeln!(o, "\n[webhooks.{}]", key(name));
        let _ = writeln!(o, "url = {}", quote(&hook.url));
        let _ = writeln!(o, "secret_env = {}", quote(&hook.secret_env));
    }
    if let Some(smtp) = &n.smtp {
        let _ = writeln!(o, "\n[smtp]");
        let _ = writeln!(o, "host = {}", quote(&smtp.host));
        let _ = writeln!(o, "port = {}", smtp.port);
        let _ = writeln!(o, "from = {}", quote(&smtp.from));
        if let Some(env) = &smtp.username_env {
            let _ = writeln!(o, "username_env = {}", quote(env));
        }
        if let Some(env) = &smtp.password_env {
            let _ = writeln!(o, "password_env = {}", quote(env));
        }
        let _ = writeln!(o, "starttls = {}", smtp.starttls);
    }
    for rule in &n.alerts {
        let m = &rule.matcher;
        let mut matcher = Vec::new();
        if let Some(outcome) = m.outcome {
            matcher.push(format!("outcome = {}", quote(outcome.as_str())));
        }
        if !m.action.is_empty() {
            matcher.push(format!("action = {}", string_list(&m.action)));
        }
        if !m.category.is_empty() {
            matcher.push(format!("category = {}", string_list(&m.category)));
        }
        if !m.actor_kind.is_empty() {
            let kinds: Vec<&str> = m.actor_kind.iter().map(|k| k.as_str()).collect();
            matcher.push(format!("actor_kind = {}", string_list(&kinds)));
        }
        let deliver: Vec<String> = rule.deliver.iter().map(ToString::to_string).collect();
        let _ = writeln!(o, "\n[[alerts]]");
        let _ = writeln!(o, "name = {}", quote(&rule.name));
        let _ = writeln!(o, "match = {{ {} }}", matcher.join(", "));
        let _ = writeln!(o, "threshold = {}", rule.threshold);
        let _ = writeln!(o, "window = {}", quote(&rule.window.to_string()));
        let _ = writeln!(o, "per = {}", quote(rule.per.as_str()));
        let _ = writeln!(o, "severity = {}", quote(rule.severity.as_str()));
        let _ = writeln!(o, "deliver = {}", string_list(&deliver));
        let _ = writeln!(o, "incident = {}", rule.incident);
    }
}

/// Markdown text is plain user data here; keep it from breaking the table or adding markup.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Words readers expect in capitals.
const ACRONYMS: &[&str] = &[
    "llm", "api", "ip", "pii", "dsr", "us", "ssn", "iban", "url", "sso",
];

/// Snake case as readers see it: `llm_usage` → "LLM usage", `us_ssn` → "US SSN".
fn words(name: &str) -> String {
    name.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            if ACRONYMS.contains(&w) {
                w.to_ascii_uppercase()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A category name as a table row label: `security_logs` → "Security logs".
fn title(name: &str) -> String {
    let spaced = words(name);
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn pii_sentence(p: &PiiRule) -> String {
    let verb = match p.action {
        PiiAction::Redact => "redacted",
        PiiAction::Mask => "masked",
        PiiAction::Block => "refused (the data is not accepted)",
        PiiAction::Tokenize => "replaced by tokens",
        PiiAction::Encrypt => "encrypted",
        PiiAction::Hash => "replaced by one-way hashes",
        PiiAction::None => "detected and logged",
    };
    let names: Vec<String> = p.detect.iter().map(|e| words(e)).collect();
    let alert = if p.alert {
        "; each finding raises a security alert"
    } else {
        ""
    };
    format!("{}: {verb}{alert}", md(&names.join(", ")))
}

fn erasure_phrase(a: ErasureAction) -> &'static str {
    match a {
        ErasureAction::Delete => "deleted",
        ErasureAction::Anonymize => "anonymized",
        ErasureAction::Aggregate => "aggregated, with no personal link",
    }
}

fn access_phrase(c: &Category) -> String {
    let roles: Vec<&str> = c.access.roles.iter().map(|r| r.as_str()).collect();
    let mut s = roles.join(", ");
    if !c.access.groups.is_empty() {
        let _ = write!(s, " in groups {}", md(&c.access.groups.join(", ")));
    }
    if c.access.require_mfa {
        s.push_str("; MFA required");
    }
    s
}

fn classification_phrase(c: Classification) -> &'static str {
    match c {
        Classification::Public => "public",
        Classification::Internal => "internal",
        Classification::Confidential => "confidential",
        Classification::Restricted => "restricted",
    }
}

/// A public data-handling disclosure in Markdown, generated from the policy itself.
pub(crate) fn disclosure(p: &Policy) -> String {
    let mut o = String::new();
    let name = md(&p.service.name);
    let d = &p.deletion;
    let _ = writeln!(o, "# How {name} handles your data\n");
    let _ = writeln!(
        o,
        "This page is generated from the data policy that {name} enforces with Custos. Every \
         period below is applied automatically, and every deletion is recorded in a tamper-evident \
         audit log.\n"
    );

    let _ = writeln!(o, "## Where your data is stored\n");
    let regions: Vec<String> = p
        .service
        .regions
        .iter()
        .map(|r| {
            if *r == p.service.default_region {
                format!("{} (default)", md(r))
            } else {
                md(r)
            }
        })
        .collect();
    let _ = writeln!(o, "- Regions: {}.", regions.join(", "));
    let _ = writeln!(
        o,
        "- Each organization's data is stored in the region it chooses and does not leave it.\n\
         - All data is encrypted at rest, under keys specific to the organization and, where \
         applicable, to the person the data is about.\n"
    );

    let _ = writeln!(o, "## How long we keep it\n");
    let _ = writeln!(
        o,
        "| Data | Kept for | Archived after | Customer-configurable | Classification | Access | \
         PII handling | When a person asks to be erased |"
    );
    let _ = writeln!(o, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for c in p.categories.values() {
        let kept = if c.store_content {
            c.retention.describe()
        } else {
            format!(
                "{} (metadata only; content is not stored)",
                c.retention.describe()
            )
        };
        let archived = c
            .archive_after
            .map_or_else(|| "not archived".to_string(), |a| a.describe());
        let configurable = c.org_configurable.map_or_else(
            || "no".to_string(),
            |b| format!("{} to {}", b.min.describe(), b.max.describe()),
        );
        let pii = c
            .pii
            .as_ref()
            .map_or_else(|| "none".to_string(), pii_sentence);
        let erasure = if c.editable {
            erasure_phrase(c.on_subject_erasure).to_string()
        } else {
            format!(
                "{} (append-only; never edited)",
                erasure_phrase(c.on_subject_erasure)
            )
        };
        let _ = writeln!(
            o,
            "| {} | {kept} | {archived} | {configurable} | {} | {} | {pii} | {erasure} |",
            md(&title(&c.name)),
            classification_phrase(c.classification),
            access_phrase(c),
        );
    }
    let _ = writeln!(
        o,
        "\nArchived data is moved to a cold storage tier and retrieved only on an authorized \
         request.\n"
    );

    let _ = writeln!(o, "## Deletion\n");
    let _ = writeln!(
        o,
        "- Deleted items can be restored for {}; after that they are permanently removed.",
        d.soft_delete_window.describe()
    );
    let _ = writeln!(
        o,
        "- A request for permanent deletion is completed within {}.",
        d.hard_delete_within.describe()
    );
    let _ = writeln!(
        o,
        "- Data that has reached the end of its retention period is deleted within {}.",
        d.expired_within.describe()
    );
    let _ = writeln!(
        o,
        "- Archived data is read back only on an authorized, logged request, and stays readable \
         for {} after it.",
        d.archive_restore_window.describe()
    );
    let _ = writeln!(
        o,
        "- When an account is terminated, all of its data is removed within {}.",
        d.account_termination_within.describe()
    );
    let _ = writeln!(
        o,
        "- Requests to erase a person's data (GDPR, CCPA) are completed within {}, and a signed \
         certificate of deletion is available on request. When a request is complex, the deadline \
         may be extended once, by at most {}, and the person is told why.",
        d.erasure_request_within.describe(),
        d.erasure_extension_max.describe()
    );
    let _ = writeln!(
        o,
        "- Erasing a person's data destroys the encryption key that protects it, so copies in \
         backups and archives become unreadable at the same time; other backup copies expire with \
         the backups, as below.\n"
    );

    let b = &p.backups;
    let _ = writeln!(o, "## Backups\n");
    let _ = writeln!(
        o,
        "- Backups are kept for {} on a rolling basis, for disaster recovery only.",
        b.retention.describe()
    );
    let _ = writeln!(
        o,
        "- Recovery point objective: {}. Recovery time objective: {}.\n",
        b.rpo.describe(),
        b.rto.describe()
    );

    let _ = writeln!(o, "## AI and language models\n");
    if p.llm.providers.is_empty() {
        let _ = writeln!(o, "- No data is sent to external language model providers.");
    } else {
        for pr in &p.llm.providers {
            let _ = writeln!(
                o,
                "- {} ({}), used for organizations in: {}.",
                md(&pr.name),
                md(&pr.base_url),
                md(&pr.regions.join(", "))
            );
        }
        let _ = writeln!(
            o,
            "- Organizations in other regions are never routed to a provider outside their region, \
             unless the organization explicitly allows the transfer."
        );
    }
    if p.llm.zero_retention {
        let _ = writeln!(
            o,
            "- Zero retention: prompts and responses are not stored by {name}, and providers are \
             used only under zero-retention terms."
        );
    } else {
        let _ = writeln!(
            o,
            "- Prompts and responses may be retained, by {name} under the periods above and by \
             providers under their own terms."
        );
    }
    if let Some(pii) = &p.llm.pii {
        let _ = writeln!(
            o,
            "- Before a prompt leaves {name}, personal data is handled as follows: {}.",
            pii_sentence(pii)
        );
    }
    o
}
