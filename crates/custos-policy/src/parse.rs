//! Parsing and validation of `custos.toml`.
//!
//! The file is parsed into toml_edit's span-carrying document and then walked by hand, rather
//! than deserialized with serde: serde stops at the first error, and a policy author fixing a
//! file wants every problem at once, each pointing at the key or value that is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml_edit::{ImDocument, Item, TableLike, Value};

use crate::diagnostic::{Diagnostic, Diagnostics, LineIndex};
use crate::duration::{Duration, DurationUnit};
use crate::model::{
    Access, AccessReviews, Backups, Bounds, Category, Classification, Deletion, ErasureAction, Llm,
    Network, Notifications, Operators, PiiAction, PiiRule, Policy, Provider, ProviderKind,
    RegionStores, Role, Service, Support, UnknownKeyword, KNOWN_PII_ENTITIES,
};

#[path = "parse_network.rs"]
mod network;
#[path = "parse_notify.rs"]
mod notify;
#[path = "parse_operators.rs"]
mod operators;

type Span = Range<usize>;

/// How many duplicate table headers we step over before giving up on a file.
const MAX_RECOVERIES: usize = 64;

const ROOT_KEYS: &[&str] = &[
    "service",
    "deletion",
    "categories",
    "backups",
    "regions",
    "llm",
    "network",
    "access",
    "support",
    "operators",
    "webhooks",
    "smtp",
    "alerts",
    "incidents",
];
const SUPPORT_KEYS: &[&str] = &["request_expiry", "max_duration"];
const ACCESS_TABLE_KEYS: &[&str] = &["inactive_member_after"];
const REGION_KEYS: &[&str] = &["database", "objects"];
const SERVICE_KEYS: &[&str] = &["name", "regions", "default_region", "public_url"];
const DELETION_KEYS: &[&str] = &[
    "soft_delete_window",
    "hard_delete_within",
    "expired_within",
    "account_termination_within",
    "erasure_request_within",
    "erasure_extension_max",
    "archive_restore_window",
];
const CATEGORY_KEYS: &[&str] = &[
    "retention",
    "org_configurable",
    "archive_after",
    "classification",
    "access",
    "pii",
    "on_subject_erasure",
    "store_content",
    "editable",
];
const BOUNDS_KEYS: &[&str] = &["min", "max"];
const ACCESS_KEYS: &[&str] = &["roles", "groups", "require_mfa"];
const PII_KEYS: &[&str] = &["detect", "action", "alert"];
const BACKUP_KEYS: &[&str] = &["retention", "rpo", "rto"];
/// Seconds the gateway waits for an upstream provider when the policy names no timeout.
const DEFAULT_LLM_TIMEOUT_SECONDS: u64 = 120;
const LLM_KEYS: &[&str] = &[
    "zero_retention",
    "providers",
    "pii",
    "timeout_seconds",
    "category",
];
const PROVIDER_KEYS: &[&str] = &[
    "name",
    "kind",
    "base_url",
    "regions",
    "api_key_env",
    "models",
];

/// The category whose records are the audit trail; it can never be made editable.
pub(crate) const AUDIT_CATEGORY: &str = "audit";

/// Defaults for keys a file leaves out. They are the seeds' promises, the same values the
/// built-in policy spells out, so a short file never silently weakens a promise.
pub(crate) mod defaults {
    use super::*;

    pub(crate) const SERVICE_NAME: &str = "Custos";
    pub(crate) const REGION: &str = "us-east";

    pub(crate) fn deletion() -> Deletion {
        Deletion {
            soft_delete_window: Duration::from_parts(30, DurationUnit::Days),
            hard_delete_within: Duration::from_parts(30, DurationUnit::Days),
            expired_within: Duration::from_parts(7, DurationUnit::Days),
            account_termination_within: Duration::from_parts(90, DurationUnit::Days),
            erasure_request_within: Duration::from_parts(30, DurationUnit::Days),
            erasure_extension_max: Duration::from_parts(2, DurationUnit::Months),
            archive_restore_window: Duration::from_parts(48, DurationUnit::Hours),
        }
    }

    pub(crate) fn backups() -> Backups {
        Backups {
            retention: Duration::from_parts(30, DurationUnit::Days),
            rpo: Duration::from_parts(1, DurationUnit::Hours),
            rto: Duration::from_parts(4, DurationUnit::Hours),
        }
    }
}

/// Parses and validates a policy, collecting every problem.
pub(crate) fn parse(source: &str, file: &str) -> Result<Policy, Diagnostics> {
    let mut cx = Cx {
        file,
        index: LineIndex::new(source),
        diags: Vec::new(),
    };
    let Some((doc, sentinels)) = parse_document(source, &mut cx) else {
        return Err(cx.finish());
    };
    let policy = check_root(&mut cx, doc.as_table(), &sentinels);
    if cx.diags.is_empty() {
        Ok(policy)
    } else {
        Err(cx.finish())
    }
}

/// Collects diagnostics; offsets are kept so the report can be sorted into file order.
struct Cx<'a> {
    file: &'a str,
    index: LineIndex<'a>,
    diags: Vec<(usize, Diagnostic)>,
}

impl Cx<'_> {
    fn error(&mut self, span: &Span, message: impl Into<String>, hint: impl Into<Option<String>>) {
        let (line, col) = self.index.span_position(span);
        self.diags.push((
            span.start,
            Diagnostic {
                file: self.file.to_string(),
                line,
                col,
                message: message.into(),
                hint: hint.into(),
            },
        ));
    }

    fn finish(mut self) -> Diagnostics {
        // Stable sort: problems found at the same spot keep the order they were found in.
        self.diags.sort_by_key(|(offset, _)| *offset);
        self.diags.dedup_by(|a, b| a.1 == b.1);
        Diagnostics(self.diags.into_iter().map(|(_, d)| d).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// TOML syntax, with recovery from duplicate table headers
// ---------------------------------------------------------------------------------------------

/// Parses the TOML. A duplicated `[table]` header (the usual way a category gets defined twice)
/// is reported, renamed to a hidden sentinel table of the same length, and parsing continues,
/// so the rest of the file still gets checked. Any other syntax error ends the check.
fn parse_document(source: &str, cx: &mut Cx<'_>) -> Option<(ImDocument<String>, BTreeSet<String>)> {
    let mut text = source.to_string();
    let mut sentinels = BTreeSet::new();
    for _ in 0..=MAX_RECOVERIES {
        let err = match ImDocument::parse(text.clone()) {
            Ok(doc) => return Some((doc, sentinels)),
            Err(err) => err,
        };
        let start = err.span().map_or(0, |s| s.start);
        if err.message().contains("duplicate key") {
            if let Some(header) = header_at(&text, start) {
                report_duplicate_header(cx, &text, &header);
                let name = (1..)
                    .map(|n| format!("_custos_duplicate_{n}"))
                    .find(|n| !text.contains(n.as_str()) && !sentinels.contains(n))
                    .unwrap_or_default();
                let short = (1..)
                    .map(|n| format!("_d{n}"))
                    .find(|n| !text.contains(n.as_str()) && !sentinels.contains(n))
                    .unwrap_or_default();
                let width = header.end - header.start;
                let chosen = [name, short]
                    .into_iter()
                    .find(|n| n.len() + 2 <= width && !n.is_empty());
                if let Some(chosen) = chosen {
                    let replacement = format!("[{chosen}]{}", " ".repeat(width - chosen.len() - 2));
                    text.replace_range(header.start..header.end, &replacement);
                    sentinels.insert(chosen);
                    continue;
                }
                return None;
            }
        }
        report_syntax_error(cx, &err, start);
        return None;
    }
    None
}

fn report_syntax_error(cx: &mut Cx<'_>, err: &toml_edit::TomlError, start: usize) {
    let message = err
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    cx.error(
        &(start..start),
        format!("invalid TOML: {message}"),
        "fix this syntax error first; the rest of the file is checked once it parses".to_string(),
    );
}

/// A `[a.b.c]` header found in the source text.
struct Header {
    /// Byte range from `[` to `]` inclusive.
    start: usize,
    end: usize,
    /// Byte offset of the last key in the header (what the message points at).
    last_key: usize,
    /// The dotted path, unquoted.
    path: Vec<String>,
}

/// Reads a standard table header starting at `start`, if there is one.
fn header_at(text: &str, start: usize) -> Option<Header> {
    let rest = text.get(start..)?;
    if !rest.starts_with('[') || rest.starts_with("[[") {
        return None;
    }
    // Find the closing bracket, skipping brackets and dots inside quoted keys.
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut last_dot = None;
    let mut close = None;
    for (i, c) in rest.char_indices().skip(1) {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '.' => last_dot = Some(i),
                ']' => {
                    close = Some(i);
                    break;
                }
                '\n' => return None,
                _ => {}
            },
        }
    }
    let close = close?;
    let inner = rest.get(1..close)?;
    let path = toml_edit::Key::parse(inner)
        .ok()?
        .iter()
        .map(|k| k.get().to_string())
        .collect();
    let key_from = last_dot.map_or(1, |d| d + 1);
    let skipped = rest
        .get(key_from..close)?
        .chars()
        .take_while(|c| c.is_whitespace())
        .map(char::len_utf8)
        .sum::<usize>();
    Some(Header {
        start,
        end: start + close + 1,
        last_key: start + key_from + skipped,
        path,
    })
}

/// Where the same header was first written, as a 1-based line number.
fn first_definition_line(text: &str, header: &Header) -> Option<usize> {
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if offset >= header.start {
            return None;
        }
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        if let Some(h) = header_at(text, offset + indent) {
            if h.path == header.path {
                return Some(n + 1);
            }
        }
        offset += line.len();
    }
    None
}

fn report_duplicate_header(cx: &mut Cx<'_>, text: &str, header: &Header) {
    let first = first_definition_line(text, header)
        .map_or_else(String::new, |l| format!(" (first defined on line {l})"));
    let dotted = header.path.join(".");
    match header.path.as_slice() {
        [root, name] if root == "categories" => cx.error(
            &(header.last_key..header.last_key),
            format!("duplicate category `{name}`{first}"),
            format!("each category is defined once; merge the two [categories.{name}] tables"),
        ),
        _ => cx.error(
            &(header.last_key..header.last_key),
            format!("duplicate table `[{dotted}]`{first}"),
            format!("a table is defined once; merge the two [{dotted}] tables"),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Generic field access
// ---------------------------------------------------------------------------------------------

/// A key found in a table, with the spans we report problems at.
#[derive(Clone)]
struct Field<'d> {
    name: &'static str,
    key: Span,
    item: &'d Item,
}

impl Field<'_> {
    /// The value's span, or the key's when the value has none (implicit and dotted tables).
    fn value_span(&self) -> Span {
        self.item.span().unwrap_or_else(|| self.key.clone())
    }
}

fn value_span(value: &Value, fallback: &Span) -> Span {
    value.span().unwrap_or_else(|| fallback.clone())
}

/// Splits a table into its allowed keys, reporting every other key as unknown.
fn fields<'d>(
    cx: &mut Cx<'_>,
    table: &'d dyn TableLike,
    allowed: &[&'static str],
    fallback: &Span,
    what: &str,
    skip: &BTreeSet<String>,
) -> BTreeMap<&'static str, Field<'d>> {
    let mut out = BTreeMap::new();
    for (name, item) in table.iter() {
        if skip.contains(name) {
            continue;
        }
        let key = table
            .get_key_value(name)
            .and_then(|(k, _)| k.span())
            .unwrap_or_else(|| fallback.clone());
        match allowed.iter().find(|a| **a == name) {
            Some(known) => {
                out.insert(
                    *known,
                    Field {
                        name: known,
                        key,
                        item,
                    },
                );
            }
            None => {
                let hint = match suggest(name, allowed) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("allowed keys here: {}", allowed.join(", ")),
                };
                cx.error(&key, format!("unknown key `{name}` in {what}"), hint);
            }
        }
    }
    out
}

fn type_error(cx: &mut Cx<'_>, f: &Field<'_>, expected: &str, hint: Option<String>) {
    cx.error(
        &f.value_span(),
        format!(
            "`{}` must be {expected}, found {}",
            f.name,
            describe_type(f.item)
        ),
        hint,
    );
}

fn describe_type(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(Value::String(_)) => "a string",
        Item::Value(Value::Integer(_)) => "an integer",
        Item::Value(Value::Float(_)) => "a float",
        Item::Value(Value::Boolean(_)) => "a boolean",
        Item::Value(Value::Datetime(_)) => "a date-time",
        Item::Value(Value::Array(_)) => "an array",
        Item::Value(Value::InlineTable(_)) | Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

fn string_field(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<(String, Span)> {
    match f.item.as_str() {
        Some(s) => Some((s.to_string(), f.value_span())),
        None => {
            type_error(cx, f, "a string", None);
            None
        }
    }
}

fn bool_field(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<bool> {
    match f.item.as_bool() {
        Some(b) => Some(b),
        None => {
            type_error(cx, f, "true or false", None);
            None
        }
    }
}

fn duration_field(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<Duration> {
    let Some(s) = f.item.as_str() else {
        let hint = match f.item.as_integer() {
            Some(n) => format!("durations are strings with a unit, e.g. \"{n}d\""),
            None => "durations are strings with a unit, e.g. \"30d\", \"12mo\", \"7y\"".to_string(),
        };
        type_error(cx, f, "a duration string", Some(hint));
        return None;
    };
    match s.parse::<Duration>() {
        Ok(d) => Some(d),
        Err(e) => {
            cx.error(
                &f.value_span(),
                format!("invalid duration {s:?} for `{}`: {e}", f.name),
                e.hint(),
            );
            None
        }
    }
}

fn keyword_field<T>(cx: &mut Cx<'_>, f: &Field<'_>, all: &[T]) -> Option<T>
where
    T: Copy + std::str::FromStr<Err = UnknownKeyword> + std::fmt::Display,
{
    let (s, span) = string_field(cx, f)?;
    keyword(cx, &s, &span, all)
}

fn keyword<T>(cx: &mut Cx<'_>, s: &str, span: &Span, all: &[T]) -> Option<T>
where
    T: Copy + std::str::FromStr<Err = UnknownKeyword> + std::fmt::Display,
{
    match s.parse::<T>() {
        Ok(v) => Some(v),
        Err(e) => {
            let names: Vec<String> = all.iter().map(ToString::to_string).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let lower = s.to_ascii_lowercase();
            let hint = if refs.contains(&lower.as_str()) {
                format!("keywords are lowercase: {lower:?}")
            } else if let Some(guess) = suggest(s, &refs) {
                format!("did you mean {guess:?}? expected one of: {}", e.expected)
            } else {
                format!("expected one of: {}", e.expected)
            };
            cx.error(span, format!("unknown {} {:?}", e.kind, e.value), hint);
            None
        }
    }
}

/// An array of strings: each element with its span. Non-strings are reported and skipped.
fn string_array(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<Vec<(String, Span)>> {
    let Some(array) = f.item.as_array() else {
        type_error(cx, f, "an array of strings", None);
        return None;
    };
    let whole = f.value_span();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for v in array.iter() {
        let span = value_span(v, &whole);
        match v.as_str() {
            Some(s) if !seen.insert(s.to_string()) => cx.error(
                &span,
                format!("{s:?} is listed twice in `{}`", f.name),
                "remove the repeated entry".to_string(),
            ),
            Some(s) => out.push((s.to_string(), span)),
            None => cx.error(
                &span,
                format!("`{}` must contain only strings", f.name),
                None,
            ),
        }
    }
    Some(out)
}

/// The tables of an array-of-tables field, written either as `[[name]]` tables or as
/// `name = [{..}, {..}]`, each with its span; entries that are no table are reported with
/// `hint`, and any other value with `type_hint`.
fn table_entries<'d>(
    cx: &mut Cx<'_>,
    field: &Field<'d>,
    hint: &str,
    type_hint: Option<&str>,
) -> Vec<(&'d dyn TableLike, Span)> {
    match field.item {
        Item::ArrayOfTables(a) => a
            .iter()
            .map(|t| {
                (
                    t as &dyn TableLike,
                    t.span().unwrap_or_else(|| field.key.clone()),
                )
            })
            .collect(),
        Item::Value(Value::Array(a)) => {
            let mut out = Vec::new();
            for v in a.iter() {
                let span = value_span(v, &field.key);
                match v.as_inline_table() {
                    Some(t) => out.push((t as &dyn TableLike, span)),
                    None => cx.error(
                        &span,
                        format!("each entry of `{}` must be a table", field.name),
                        hint.to_string(),
                    ),
                }
            }
            out
        }
        _ => {
            type_error(
                cx,
                field,
                "an array of tables",
                type_hint.map(str::to_string),
            );
            Vec::new()
        }
    }
}

fn table_field<'d>(cx: &mut Cx<'_>, f: &Field<'d>) -> Option<&'d dyn TableLike> {
    match f.item.as_table_like() {
        Some(t) => Some(t),
        None => {
            type_error(cx, f, "a table", None);
            None
        }
    }
}

fn missing(cx: &mut Cx<'_>, at: &Span, key: &str, within: &str, example: &str) {
    cx.error(
        at,
        format!("{within} is missing `{key}`"),
        format!("add `{key} = {example}`"),
    );
}

/// The closest allowed word, for "did you mean" hints.
fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let by_distance = candidates
        .iter()
        .map(|c| (edit_distance(&lower, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    by_distance.or_else(|| {
        // "ssn" → "us_ssn", "email_address" → "email".
        candidates.iter().copied().find(|c| {
            lower.len() >= 3 && c.len() >= 3 && (c.contains(lower.as_str()) || lower.contains(c))
        })
    })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------------------------
// The policy sections
// ---------------------------------------------------------------------------------------------

fn check_root(cx: &mut Cx<'_>, root: &toml_edit::Table, sentinels: &BTreeSet<String>) -> Policy {
    let top = 0..0;
    let f = fields(cx, root, ROOT_KEYS, &top, "the policy", sentinels);
    let service_table = f.get("service").and_then(|f| table_field(cx, f));
    let service_span = f.get("service").map_or(top.clone(), |f| f.key.clone());
    let (service, regions) = check_service(cx, service_table, &service_span);

    let deletion = match f
        .get("deletion")
        .and_then(|f| table_field(cx, f).map(|t| (f, t)))
    {
        Some((field, t)) => check_deletion(cx, t, &field.key),
        None => defaults::deletion(),
    };

    let mut categories = BTreeMap::new();
    match f.get("categories") {
        Some(field) => {
            if let Some(t) = table_field(cx, field) {
                categories = check_categories(cx, t, &field.key);
                if t.is_empty() {
                    no_categories(cx, &field.key);
                }
            }
        }
        None => no_categories(cx, &top),
    }

    let backups = match f
        .get("backups")
        .and_then(|f| table_field(cx, f).map(|t| (f, t)))
    {
        Some((field, t)) => check_backups(cx, t, &field.key),
        None => defaults::backups(),
    };

    let region_stores = match f
        .get("regions")
        .and_then(|f| table_field(cx, f).map(|t| (f, t)))
    {
        Some((field, t)) => check_regions(cx, t, &field.key, regions.as_deref()),
        None => BTreeMap::new(),
    };

    let llm = match f
        .get("llm")
        .and_then(|f| table_field(cx, f).map(|t| (f, t)))
    {
        Some((field, t)) => {
            let names: BTreeSet<String> = categories.keys().cloned().collect();
            check_llm(cx, t, &field.key, regions.as_ref(), &names)
        }
        None => Llm {
            zero_retention: true,
            providers: Vec::new(),
            pii: None,
            timeout_seconds: DEFAULT_LLM_TIMEOUT_SECONDS,
            category: None,
        },
    };

    let network = match f
        .get("network")
        .and_then(|f| table_field(cx, f).map(|t| (f, t)))
    {
        Some((field, t)) => network::check_network(cx, t, &field.key),
        None => Network::default(),
    };

    let access = match f
        .get("access")
        .and_then(|f| table_field(cx, f).map(|t| (f, t)))
    {
        Some((field, t)) => {
            let f = fields(
                cx,
                t,
                ACCESS_TABLE_KEYS,
                &field.key,
                "[access]",
                &BTreeSet::new(),
            );
            AccessReviews {
                inactive_member_after: f
                    .get("inactive_member_after")
                    .and_then(|f| duration_field(cx, f)),
            }
        }
        None => AccessReviews::default(),
    };

    let support = match f
        .get("support")
        .and_then(|f| table_field(cx, f).map(|t| (f, t)))
    {
        Some((field, t)) => {
            let f = fields(
                cx,
                t,
                SUPPORT_KEYS,
                &field.key,
                "[support]",
                &BTreeSet::new(),
            );
            let default = Support::default();
            Support {
                request_expiry: f
                    .get("request_expiry")
                    .and_then(|f| duration_field(cx, f))
                    .unwrap_or(default.request_expiry),
                max_duration: f
                    .get("max_duration")
                    .and_then(|f| duration_field(cx, f))
                    .unwrap_or(default.max_duration),
            }
        }
        None => Support::default(),
    };

    let operators = match f
        .get("operators")
        .and_then(|f| table_field(cx, f).map(|t| (f, t)))
    {
        Some((field, t)) => operators::check_operators(cx, t, &field.key),
        None => Operators::default(),
    };

    let notifications = check_notifications(cx, &f, &categories);

    Policy {
        service,
        deletion,
        categories,
        backups,
        regions: region_stores,
        llm,
        network,
        access,
        support,
        operators,
        notifications,
    }
}

/// `[webhooks.*]`, `[smtp]`, `[[alerts]]` and `[incidents]`; rules are checked against the
/// channels and categories the policy defines.
fn check_notifications(
    cx: &mut Cx<'_>,
    f: &BTreeMap<&'static str, Field<'_>>,
    categories: &BTreeMap<String, Category>,
) -> Notifications {
    let webhooks = f
        .get("webhooks")
        .and_then(|field| table_field(cx, field).map(|t| (field, t)))
        .map(|(field, t)| notify::check_webhooks(cx, t, &field.key))
        .unwrap_or_default();
    let smtp = f
        .get("smtp")
        .and_then(|field| table_field(cx, field).map(|t| (field, t)))
        .and_then(|(field, t)| notify::check_smtp(cx, t, &field.key));
    let names: BTreeSet<String> = categories.keys().cloned().collect();
    let alerts = f
        .get("alerts")
        .map(|field| {
            let channels = notify::Channels {
                webhooks: &webhooks,
                smtp: f.contains_key("smtp"),
                categories: &names,
            };
            notify::check_alerts(cx, field, &channels)
        })
        .unwrap_or_default();
    let incidents = f
        .get("incidents")
        .and_then(|field| table_field(cx, field).map(|t| (field, t)))
        .map(|(field, t)| notify::check_incidents(cx, t, &field.key))
        .unwrap_or_default();
    Notifications {
        webhooks,
        smtp,
        alerts,
        incidents,
    }
}

/// `[regions.<name>]` tables: each names one of `service.regions` and gives both stores (a
/// region without a table uses the main ones; [`Policy::warnings`] points that out when other
/// regions have their own).
fn check_regions(
    cx: &mut Cx<'_>,
    table: &dyn TableLike,
    at: &Span,
    regions: Option<&[String]>,
) -> BTreeMap<String, RegionStores> {
    let mut out = BTreeMap::new();
    for (name, item) in table.iter() {
        let key = table
            .get_key_value(name)
            .and_then(|(k, _)| k.span())
            .unwrap_or_else(|| at.clone());
        if let Some(known) = regions {
            if !known.iter().any(|r| r == name) {
                cx.error(
                    &key,
                    format!("[regions.{name}] names a region that is not in service.regions"),
                    region_hint(known),
                );
            }
        }
        let Some(t) = item.as_table_like() else {
            cx.error(
                &item.span().unwrap_or_else(|| key.clone()),
                format!(
                    "region `{name}` must be a table, found {}",
                    describe_type(item)
                ),
                format!("write it as [regions.{name}] with `database` and `objects`"),
            );
            continue;
        };
        let within = format!("[regions.{name}]");
        let f = fields(cx, t, REGION_KEYS, &key, &within, &BTreeSet::new());
        let url = |cx: &mut Cx<'_>, field: &str, schemes: &[&str], example: &str| {
            let Some(value) = f.get(field) else {
                missing(cx, &key, field, &within, example);
                return None;
            };
            let (text, span) = string_field(cx, value)?;
            if !schemes.iter().any(|s| text.starts_with(s)) {
                cx.error(
                    &span,
                    format!("`{field}` must start with {}", schemes.join(" or ")),
                    format!("for example `{field} = {example}`"),
                );
                return None;
            }
            Some(text)
        };
        let database = url(
            cx,
            "database",
            &["sqlite:", "postgres://", "postgresql://"],
            "\"postgres://db-eu.internal/custos\"",
        );
        let objects = url(
            cx,
            "objects",
            &["file:", "s3://"],
            "\"s3://custos-eu/data\"",
        );
        if let (Some(database), Some(objects)) = (database, objects) {
            out.insert(name.to_string(), RegionStores { database, objects });
        }
    }
    out
}

fn no_categories(cx: &mut Cx<'_>, at: &Span) {
    cx.error(
        at,
        "the policy defines no categories",
        "add at least one table such as [categories.messages] with a `retention`".to_string(),
    );
}

/// Returns the service and, when `regions` checked out cleanly, the set of region names that
/// other sections may refer to (so a broken region list does not cascade into more errors).
fn check_service(
    cx: &mut Cx<'_>,
    table: Option<&dyn TableLike>,
    at: &Span,
) -> (Service, Option<Vec<String>>) {
    let Some(table) = table else {
        let region = defaults::REGION.to_string();
        return (
            Service {
                name: defaults::SERVICE_NAME.to_string(),
                regions: vec![region.clone()],
                default_region: region.clone(),
                public_url: None,
            },
            Some(vec![region]),
        );
    };
    let f = fields(cx, table, SERVICE_KEYS, at, "[service]", &BTreeSet::new());
    let before = cx.diags.len();

    let name = match f.get("name").and_then(|f| string_field(cx, f)) {
        Some((n, span)) if n.trim().is_empty() => {
            cx.error(
                &span,
                "service name is empty",
                "it is shown in the public disclosure; use the product's name".to_string(),
            );
            n
        }
        Some((n, _)) => n,
        None => defaults::SERVICE_NAME.to_string(),
    };

    let regions: Vec<(String, Span)> = match f.get("regions") {
        Some(field) => {
            let list = string_array(cx, field).unwrap_or_default();
            for (r, span) in &list {
                if !is_region_name(r) {
                    cx.error(
                        span,
                        format!("invalid region name {r:?}"),
                        "region names are lowercase letters, digits and dashes, e.g. \"eu-central\""
                            .to_string(),
                    );
                }
            }
            if field.item.as_array().is_some_and(|a| a.is_empty()) {
                cx.error(
                    &field.value_span(),
                    "`regions` is empty",
                    "list at least one region an org may live in, e.g. [\"us-east\"]".to_string(),
                );
            }
            list
        }
        None => vec![(defaults::REGION.to_string(), at.clone())],
    };
    let names: Vec<String> = regions.iter().map(|(r, _)| r.clone()).collect();
    let regions_ok = cx.diags.len() == before;

    let default_region = match f.get("default_region").and_then(|f| string_field(cx, f)) {
        Some((r, span)) => {
            if regions_ok && !names.contains(&r) {
                cx.error(
                    &span,
                    format!("default_region {r:?} is not one of service.regions"),
                    region_hint(&names),
                );
            }
            r
        }
        None => names.first().cloned().unwrap_or_default(),
    };

    let public_url = f
        .get("public_url")
        .and_then(|f| string_field(cx, f))
        .and_then(|(url, span)| match check_public_url(&url) {
            Ok(url) => Some(url),
            Err(why) => {
                cx.error(
                    &span,
                    format!("public_url {url:?} {why}"),
                    "write the address browsers use to reach Custos, e.g. \
                     \"https://custos.example.com\""
                        .to_string(),
                );
                None
            }
        });
    let service = Service {
        name,
        regions: names.clone(),
        default_region,
        public_url,
    };
    (service, regions_ok.then_some(names))
}

/// `public_url` without its trailing slashes, or why it cannot be one: an absolute `http` or
/// `https` address with a host, no user info, query or fragment (a path prefix is allowed, for
/// a deployment behind a reverse proxy).
fn check_public_url(url: &str) -> Result<String, &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("is not an http:// or https:// address")?;
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains white space");
    }
    if rest.contains(['?', '#']) {
        return Err("has a query or a fragment");
    }
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err("has no host");
    }
    if host.contains('@') {
        return Err("carries user info");
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn is_region_name(r: &str) -> bool {
    !r.is_empty()
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn region_hint(regions: &[String]) -> String {
    let quoted: Vec<String> = regions.iter().map(|r| format!("{r:?}")).collect();
    format!(
        "service.regions is [{}]; add the region there or use one of those",
        quoted.join(", ")
    )
}

fn check_deletion(cx: &mut Cx<'_>, table: &dyn TableLike, at: &Span) -> Deletion {
    let f = fields(cx, table, DELETION_KEYS, at, "[deletion]", &BTreeSet::new());
    let d = defaults::deletion();
    let mut get = |key: &str, default: Duration| {
        f.get(key)
            .and_then(|f| duration_field(cx, f))
            .unwrap_or(default)
    };
    Deletion {
        soft_delete_window: get("soft_delete_window", d.soft_delete_window),
        hard_delete_within: get("hard_delete_within", d.hard_delete_within),
        expired_within: get("expired_within", d.expired_within),
        account_termination_within: get("account_termination_within", d.account_termination_within),
        erasure_request_within: get("erasure_request_within", d.erasure_request_within),
        erasure_extension_max: get("erasure_extension_max", d.erasure_extension_max),
        archive_restore_window: get("archive_restore_window", d.archive_restore_window),
    }
}

fn check_categories(
    cx: &mut Cx<'_>,
    table: &dyn TableLike,
    at: &Span,
) -> BTreeMap<String, Category> {
    let mut out = BTreeMap::new();
    for (name, item) in table.iter() {
        let key = table
            .get_key_value(name)
            .and_then(|(k, _)| k.span())
            .unwrap_or_else(|| at.clone());
        if !is_category_name(name) {
            cx.error(
                &key,
                format!("invalid category name `{name}`"),
                "category names are lowercase letters, digits and underscores, starting with a \
                 letter (they appear in URLs and audit events)"
                    .to_string(),
            );
        }
        let Some(t) = item.as_table_like() else {
            cx.error(
                &item.span().unwrap_or_else(|| key.clone()),
                format!(
                    "category `{name}` must be a table, found {}",
                    describe_type(item)
                ),
                format!("write it as [categories.{name}] with a `retention` key"),
            );
            continue;
        };
        let category = check_category(cx, name, t, &key);
        out.insert(name.to_string(), category);
    }
    out
}

fn is_category_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.len() <= 64
}

fn check_category(cx: &mut Cx<'_>, name: &str, table: &dyn TableLike, at: &Span) -> Category {
    let what = format!("category `{name}`");
    let f = fields(cx, table, CATEGORY_KEYS, at, &what, &BTreeSet::new());

    let retention_field = f.get("retention");
    let retention = retention_field.and_then(|f| duration_field(cx, f));
    if retention_field.is_none() {
        cx.error(
            at,
            format!("{what} has no `retention`"),
            "every category says how long its data is kept, e.g. `retention = \"90d\"`".to_string(),
        );
    }

    let org_configurable = f.get("org_configurable").and_then(|field| {
        let t = table_field(cx, field)?;
        check_bounds(cx, t, field)
    });
    let archive_after = f.get("archive_after").and_then(|f| duration_field(cx, f));
    let classification = f
        .get("classification")
        .and_then(|f| keyword_field(cx, f, Classification::ALL))
        .unwrap_or_default();
    let access = f
        .get("access")
        .and_then(|field| table_field(cx, field).map(|t| check_access(cx, t, field)))
        .unwrap_or_default();
    let pii = f
        .get("pii")
        .and_then(|field| table_field(cx, field).map(|t| (field, t)))
        .and_then(|(field, t)| check_pii(cx, t, field));
    let on_subject_erasure = f
        .get("on_subject_erasure")
        .and_then(|f| keyword_field(cx, f, ErasureAction::ALL))
        .unwrap_or_default();
    let store_content = f
        .get("store_content")
        .and_then(|f| bool_field(cx, f))
        .unwrap_or(true);
    let is_audit = name == AUDIT_CATEGORY;
    let editable = match f.get("editable") {
        Some(field) => match bool_field(cx, field) {
            Some(true) if is_audit => {
                cx.error(
                    &field.value_span(),
                    "the `audit` category can never be editable",
                    "the audit trail is append-only so that it can prove what happened; remove \
                     `editable` or set it to false"
                        .to_string(),
                );
                false
            }
            Some(b) => b,
            None => !is_audit,
        },
        None => !is_audit,
    };

    // Cross-field checks, only between values that parsed.
    if let (Some(retention), Some(archive), Some(field)) =
        (retention, archive_after, f.get("archive_after"))
    {
        if archive.cmp_for_validation(&retention).is_ge() {
            cx.error(
                &field.value_span(),
                format!("archive_after ({archive}) must be shorter than retention ({retention})"),
                "data would expire before it is archived; shorten archive_after, lengthen \
                 retention, or remove archive_after"
                    .to_string(),
            );
        }
    }
    if let (Some(retention), Some(bounds), Some(field)) =
        (retention, org_configurable, retention_field)
    {
        let below = retention.cmp_for_validation(&bounds.min).is_lt();
        let above = retention.cmp_for_validation(&bounds.max).is_gt();
        if below || above {
            cx.error(
                &field.value_span(),
                format!(
                    "retention ({retention}) is outside this category's org_configurable bounds \
                     ({} to {})",
                    bounds.min, bounds.max
                ),
                "the policy's own retention must be one an org could choose; widen the bounds \
                 or change retention"
                    .to_string(),
            );
        }
    }

    Category {
        name: name.to_string(),
        retention: retention.unwrap_or(Duration::from_parts(1, DurationUnit::Days)),
        org_configurable,
        archive_after,
        classification,
        access,
        pii,
        on_subject_erasure,
        store_content,
        editable,
    }
}

/// Checks `org_configurable`; returns bounds only when they are complete and ordered.
fn check_bounds(cx: &mut Cx<'_>, table: &dyn TableLike, field: &Field<'_>) -> Option<Bounds> {
    let f = fields(
        cx,
        table,
        BOUNDS_KEYS,
        &field.key,
        "`org_configurable`",
        &BTreeSet::new(),
    );
    let min = f.get("min").and_then(|f| duration_field(cx, f));
    let max = f.get("max").and_then(|f| duration_field(cx, f));
    for key in ["min", "max"] {
        if !f.contains_key(key) {
            missing(
                cx,
                &field.value_span(),
                key,
                "`org_configurable`",
                "\"30d\"",
            );
        }
    }
    let (min, max) = (min?, max?);
    if min.cmp_for_validation(&max).is_gt() {
        let span = f.get("min").map_or(field.value_span(), Field::value_span);
        cx.error(
            &span,
            format!("org_configurable.min ({min}) is longer than org_configurable.max ({max})"),
            "the bounds are inverted: min is the shortest retention an org may choose, max the \
             longest; swap them"
                .to_string(),
        );
        return None;
    }
    Some(Bounds { min, max })
}

fn check_access(cx: &mut Cx<'_>, table: &dyn TableLike, field: &Field<'_>) -> Access {
    let f = fields(
        cx,
        table,
        ACCESS_KEYS,
        &field.key,
        "`access`",
        &BTreeSet::new(),
    );
    let mut access = Access::default();
    if let Some(rf) = f.get("roles") {
        if let Some(list) = string_array(cx, rf) {
            access.roles = list
                .iter()
                .filter_map(|(r, span)| keyword(cx, r, span, Role::ALL))
                .collect();
            if list.is_empty() && rf.item.as_array().is_some_and(|a| a.is_empty()) {
                cx.error(
                    &rf.value_span(),
                    "`roles` is empty, so nobody could access this category",
                    "list the roles that may, e.g. [\"owner\", \"admin\"]".to_string(),
                );
            }
        }
    }
    if let Some(gf) = f.get("groups") {
        if let Some(list) = string_array(cx, gf) {
            for (g, span) in &list {
                if g.trim().is_empty() {
                    cx.error(span, "empty group name", "remove it".to_string());
                }
            }
            access.groups = list.into_iter().map(|(g, _)| g).collect();
        }
    }
    if let Some(mf) = f.get("require_mfa") {
        access.require_mfa = bool_field(cx, mf).unwrap_or(false);
    }
    access
}

fn check_pii(cx: &mut Cx<'_>, table: &dyn TableLike, field: &Field<'_>) -> Option<PiiRule> {
    let what = format!("`{}`", field.name);
    let f = fields(cx, table, PII_KEYS, &field.key, &what, &BTreeSet::new());
    let mut detect = Vec::new();
    match f.get("detect") {
        Some(df) => {
            for (entity, span) in string_array(cx, df).unwrap_or_default() {
                if KNOWN_PII_ENTITIES.contains(&entity.as_str()) {
                    detect.push(entity);
                    continue;
                }
                let lower = entity.to_ascii_lowercase();
                let hint = if KNOWN_PII_ENTITIES.contains(&lower.as_str()) {
                    format!("entity names are lowercase: {lower:?}")
                } else if let Some(s) = suggest(&entity, KNOWN_PII_ENTITIES) {
                    format!("did you mean {s:?}?")
                } else {
                    format!("known entities: {}", KNOWN_PII_ENTITIES.join(", "))
                };
                cx.error(&span, format!("unknown PII entity {entity:?}"), hint);
            }
            if df.item.as_array().is_some_and(|a| a.is_empty()) {
                cx.error(
                    &df.value_span(),
                    "`detect` is empty",
                    format!(
                        "list the entities to look for, or remove {what} to turn detection off"
                    ),
                );
            }
        }
        None => missing(
            cx,
            &field.value_span(),
            "detect",
            &what,
            "[\"email\", \"phone\"]",
        ),
    }
    let action = f
        .get("action")
        .and_then(|f| keyword_field(cx, f, PiiAction::ALL))
        .unwrap_or(PiiAction::Redact);
    let alert = f
        .get("alert")
        .and_then(|f| bool_field(cx, f))
        .unwrap_or(false);
    Some(PiiRule {
        detect,
        action,
        alert,
    })
}

fn check_backups(cx: &mut Cx<'_>, table: &dyn TableLike, at: &Span) -> Backups {
    let f = fields(cx, table, BACKUP_KEYS, at, "[backups]", &BTreeSet::new());
    let d = defaults::backups();
    let retention = f.get("retention").and_then(|f| duration_field(cx, f));
    let rpo = f.get("rpo").and_then(|f| duration_field(cx, f));
    let rto = f.get("rto").and_then(|f| duration_field(cx, f));
    let backups = Backups {
        retention: retention.unwrap_or(d.retention),
        rpo: rpo.unwrap_or(d.rpo),
        rto: rto.unwrap_or(d.rto),
    };
    if let (Some(field), true) = (f.get("rpo"), rpo.is_some()) {
        if backups.rpo.cmp_for_validation(&backups.retention).is_ge() {
            cx.error(
                &field.value_span(),
                format!(
                    "rpo ({}) must be shorter than the backup retention ({})",
                    backups.rpo, backups.retention
                ),
                "backups are taken at least once per rpo, so each must still exist when the \
                 next is taken"
                    .to_string(),
            );
        }
    }
    backups
}

fn check_llm(
    cx: &mut Cx<'_>,
    table: &dyn TableLike,
    at: &Span,
    regions: Option<&Vec<String>>,
    categories: &BTreeSet<String>,
) -> Llm {
    let f = fields(cx, table, LLM_KEYS, at, "[llm]", &BTreeSet::new());
    let zero_retention = f
        .get("zero_retention")
        .and_then(|f| bool_field(cx, f))
        .unwrap_or(true);
    let mut providers = Vec::new();
    if let Some(pf) = f.get("providers") {
        // Both `providers = [{..}, {..}]` and `[[llm.providers]]` tables are accepted.
        let entries = table_entries(
            cx,
            pf,
            "write { name = \"anthropic\", kind = \"anthropic\", base_url = \
             \"https://api.anthropic.com\", regions = [\"us-east\"] }",
            None,
        );
        let mut names = BTreeSet::new();
        for (t, span) in entries {
            let (provider, name) = check_provider(cx, t, &span, regions);
            if let Some((name, span)) = name {
                if !names.insert(name.clone()) {
                    cx.error(
                        &span,
                        format!("duplicate provider name {name:?}"),
                        "provider names must be unique; they name the gateway's routes".to_string(),
                    );
                }
            }
            providers.extend(provider);
        }
    }
    let pii = f
        .get("pii")
        .and_then(|field| table_field(cx, field).map(|t| (field, t)))
        .and_then(|(field, t)| check_pii(cx, t, field));
    if let (Some(true), Some(field)) = (pii.as_ref().map(|p| p.alert), f.get("pii")) {
        cx.error(
            &field.value_span(),
            "`alert` applies to a category's `pii`, not the gateway's",
            "every gateway call is audited with the entity types it redacted (`llm.*` events); \
             remove `alert` here"
                .to_string(),
        );
    }
    let timeout_seconds = match f.get("timeout_seconds") {
        None => DEFAULT_LLM_TIMEOUT_SECONDS,
        Some(field) => match field.item.as_integer() {
            Some(n) if (1..=3600).contains(&n) => n as u64,
            _ => {
                cx.error(
                    &field.value_span(),
                    "`timeout_seconds` must be a whole number of seconds from 1 to 3600",
                    "e.g. timeout_seconds = 120".to_string(),
                );
                DEFAULT_LLM_TIMEOUT_SECONDS
            }
        },
    };
    let category = f
        .get("category")
        .and_then(|field| string_field(cx, field))
        .map(|(name, span)| {
            if !categories.contains(&name) {
                cx.error(
                    &span,
                    format!("[llm] category {name:?} is not a category of this policy"),
                    "name the category that keeps scrubbed prompts, e.g. \"llm_usage\"".to_string(),
                );
            }
            name
        });
    Llm {
        zero_retention,
        providers,
        pii,
        timeout_seconds,
        category,
    }
}

/// Returns the provider if it is valid, and its name with the name's span whenever there is
/// one, so duplicate names are caught even among otherwise broken entries.
fn check_provider(
    cx: &mut Cx<'_>,
    table: &dyn TableLike,
    at: &Span,
    regions: Option<&Vec<String>>,
) -> (Option<Provider>, Option<(String, Span)>) {
    let f = fields(cx, table, PROVIDER_KEYS, at, "a provider", &BTreeSet::new());
    let name = match f.get("name").and_then(|f| string_field(cx, f)) {
        Some((n, span)) if n.trim().is_empty() => {
            cx.error(&span, "provider name is empty", None);
            None
        }
        Some(n) => Some(n),
        None => {
            if !f.contains_key("name") {
                missing(cx, at, "name", "a provider", "\"anthropic\"");
            }
            None
        }
    };
    let kind = match f.get("kind") {
        Some(field) => keyword_field(cx, field, ProviderKind::ALL),
        None => {
            missing(cx, at, "kind", "a provider", "\"anthropic\"");
            None
        }
    };
    let base_url = match f.get("base_url").and_then(|f| string_field(cx, f)) {
        Some((u, span)) => {
            let ok = ["https://", "http://"]
                .iter()
                .any(|p| u.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
            if !ok {
                cx.error(
                    &span,
                    format!("base_url {u:?} is not an http(s) URL"),
                    "e.g. \"https://api.anthropic.com\"".to_string(),
                );
            }
            Some(u)
        }
        None => {
            if !f.contains_key("base_url") {
                missing(
                    cx,
                    at,
                    "base_url",
                    "a provider",
                    "\"https://api.anthropic.com\"",
                );
            }
            None
        }
    };
    let mut provider_regions = Vec::new();
    match f.get("regions") {
        Some(rf) => {
            let list = string_array(cx, rf).unwrap_or_default();
            if rf.item.as_array().is_some_and(|a| a.is_empty()) {
                cx.error(
                    &rf.value_span(),
                    "`regions` is empty, so no org could use this provider",
                    "list the service regions whose orgs may send data to this provider"
                        .to_string(),
                );
            }
            for (r, span) in list {
                if let Some(known) = regions {
                    if !known.contains(&r) {
                        cx.error(
                            &span,
                            format!("provider region {r:?} is not one of service.regions"),
                            region_hint(known),
                        );
                    }
                }
                provider_regions.push(r);
            }
        }
        None => missing(cx, at, "regions", "a provider", "[\"us-east\"]"),
    }
    let api_key_env = f
        .get("api_key_env")
        .and_then(|field| string_field(cx, field))
        .and_then(|(var, span)| {
            let ok = !var.is_empty()
                && var.len() <= 128
                && !var.starts_with(|c: char| c.is_ascii_digit())
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                cx.error(
                    &span,
                    format!("api_key_env {var:?} is not an environment variable name"),
                    "letters, digits and _, e.g. \"OPENAI_API_KEY\"".to_string(),
                );
            }
            ok.then_some(var)
        });
    let models = f
        .get("models")
        .and_then(|field| string_array(cx, field))
        .unwrap_or_default()
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    let provider = match (&name, kind, base_url) {
        (Some((name, _)), Some(kind), Some(base_url)) => Some(Provider {
            name: name.clone(),
            kind,
            base_url,
            regions: provider_regions,
            api_key_env,
            models,
        }),
        _ => None,
    };
    (provider, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("retension", CATEGORY_KEYS), Some("retention"));
        assert_eq!(suggest("ssn", KNOWN_PII_ENTITIES), Some("us_ssn"));
        assert_eq!(suggest("zzz", CATEGORY_KEYS), None);
    }

    #[test]
    fn header_parsing() {
        let text = "x = 1\n[ categories . \"a.b\" ]\n";
        let h = header_at(text, 6).unwrap();
        assert_eq!(h.path, vec!["categories".to_string(), "a.b".to_string()]);
        assert_eq!(&text[h.last_key..h.last_key + 1], "\"");
        assert_eq!(&text[h.start..h.end], "[ categories . \"a.b\" ]");
    }
}
