//! Every kind of problem in a policy file is reported at the offending key or value.

use custos_policy::{Diagnostic, Diagnostics, LoadError, Policy};

const HEAD: &str = r#"[service]
name = "Acme"
regions = ["us-east", "eu-central"]
default_region = "us-east"
"#;

/// Parses `HEAD` followed by `rest`; `rest` therefore starts on line 5.
fn check(rest: &str) -> Diagnostics {
    let src = format!("{HEAD}{rest}");
    match Policy::parse(&src, "custos.toml") {
        Ok(_) => panic!("expected problems in:\n{src}"),
        Err(d) => d,
    }
}

/// `line:col: message` of every diagnostic, for exact comparison.
fn located(d: &Diagnostics) -> Vec<String> {
    d.iter()
        .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
        .collect()
}

fn only(d: &Diagnostics) -> &Diagnostic {
    assert_eq!(d.len(), 1, "expected exactly one problem, got:\n{d}");
    &d.0[0]
}

#[test]
fn a_valid_minimal_file_parses() {
    let p = Policy::parse(
        &format!("{HEAD}\n[categories.messages]\nretention = \"365d\"\n"),
        "custos.toml",
    )
    .unwrap();
    assert_eq!(p.service.regions, ["us-east", "eu-central"]);
    assert_eq!(
        p.category("messages").unwrap().retention.to_string(),
        "365d"
    );
}

#[test]
fn unknown_key_points_at_the_key() {
    let d = check("\n[categories.messages]\nretention = \"365d\"\n  retension = \"30d\"\n");
    let e = only(&d);
    assert_eq!(
        (e.line, e.col, e.message.as_str()),
        (8, 3, "unknown key `retension` in category `messages`")
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `retention`?"));
}

#[test]
fn unknown_top_level_key_lists_the_allowed_keys() {
    let d = check("\n[categories.messages]\nretention = \"1d\"\n\n[storage]\nx = 1\n");
    let e = only(&d);
    assert_eq!(
        (e.line, e.col, e.message.as_str()),
        (9, 2, "unknown key `storage` in the policy")
    );
    assert_eq!(
        e.hint.as_deref(),
        Some(
            "allowed keys here: service, deletion, categories, backups, regions, llm, network, \
             access, support, operators, webhooks, smtp, alerts, incidents"
        )
    );
}

#[test]
fn unknown_key_inside_an_inline_table() {
    let d = check("\n[categories.messages]\nretention = \"1d\"\naccess = { roles = [\"owner\"], mfa = true }\n");
    assert_eq!(located(&d), ["8:31: unknown key `mfa` in `access`"]);
}

#[test]
fn bad_duration_points_at_the_value() {
    let d = check("\n[categories.messages]\nretention = \"30 days\"\n");
    let e = only(&d);
    assert_eq!(
        (e.line, e.col, e.message.as_str()),
        (
            7,
            13,
            "invalid duration \"30 days\" for `retention`: unknown unit `days`"
        )
    );
    assert!(e.hint.as_deref().unwrap().starts_with("use `d`"), "{e}");
}

#[test]
fn duration_syntax_errors() {
    let d = check(
        "\n[deletion]\nsoft_delete_window = \"0d\"\nhard_delete_within = \"-5d\"\nexpired_within = 7\n\
         erasure_request_within = \"1.5mo\"\naccount_termination_within = \"3M\"\n\
         \n[categories.messages]\nretention = \"1d\"\n",
    );
    assert_eq!(
        located(&d),
        [
            "7:22: invalid duration \"0d\" for `soft_delete_window`: duration must be greater than zero",
            "8:22: invalid duration \"-5d\" for `hard_delete_within`: durations cannot be negative",
            "9:18: `expired_within` must be a duration string, found an integer",
            "10:26: invalid duration \"1.5mo\" for `erasure_request_within`: the number must be a whole number",
            "11:30: invalid duration \"3M\" for `account_termination_within`: unknown unit `M`",
        ]
    );
    assert_eq!(
        d.0[2].hint.as_deref(),
        Some("durations are strings with a unit, e.g. \"7d\"")
    );
}

#[test]
fn archive_after_must_come_before_retention() {
    let d = check("\n[categories.messages]\nretention = \"90d\"\narchive_after = \"3mo\"\n");
    let e = only(&d);
    assert_eq!(
        (e.line, e.col, e.message.as_str()),
        (
            8,
            17,
            "archive_after (3mo) must be shorter than retention (90d)"
        )
    );
    assert!(e.hint.is_some());
}

#[test]
fn archive_after_equal_to_retention_is_rejected() {
    // At the validation reference (a non-leap year) twelve months are 365 days.
    let d = check("\n[categories.messages]\nretention = \"12mo\"\narchive_after = \"365d\"\n");
    assert_eq!(
        located(&d),
        ["8:17: archive_after (365d) must be shorter than retention (12mo)"]
    );
}

#[test]
fn inverted_override_bounds() {
    let d = check(
        "\n[categories.messages]\nretention = \"30d\"\norg_configurable = { min = \"7y\", max = \"1d\" }\n",
    );
    let e = only(&d);
    assert_eq!(
        (e.line, e.col, e.message.as_str()),
        (
            8,
            28,
            "org_configurable.min (7y) is longer than org_configurable.max (1d)"
        )
    );
    assert!(e.hint.as_deref().unwrap().contains("swap them"));
}

#[test]
fn retention_outside_its_own_bounds() {
    let d = check(
        "\n[categories.messages]\nretention = \"10y\"\norg_configurable = { min = \"1d\", max = \"7y\" }\n",
    );
    assert_eq!(
        located(&d),
        ["7:13: retention (10y) is outside this category's org_configurable bounds (1d to 7y)"]
    );
}

#[test]
fn incomplete_bounds() {
    let d = check(
        "\n[categories.messages]\nretention = \"30d\"\norg_configurable = { max = \"1y\" }\n",
    );
    assert_eq!(located(&d), ["8:20: `org_configurable` is missing `min`"]);
}

#[test]
fn unknown_pii_entity() {
    let d = check(
        "\n[categories.messages]\nretention = \"30d\"\npii = { detect = [\"email\", \"ssn\", \"PHONE\"], action = \"redact\" }\n",
    );
    assert_eq!(
        located(&d),
        [
            "8:28: unknown PII entity \"ssn\"",
            "8:35: unknown PII entity \"PHONE\"",
        ]
    );
    assert_eq!(d.0[0].hint.as_deref(), Some("did you mean \"us_ssn\"?"));
    assert_eq!(
        d.0[1].hint.as_deref(),
        Some("entity names are lowercase: \"phone\"")
    );
}

#[test]
fn unknown_regions() {
    let src = r#"[service]
name = "Acme"
regions = ["us-east", "eu-central"]
default_region = "eu-west"

[categories.messages]
retention = "30d"

[llm]
providers = [
  { name = "anthropic", kind = "anthropic", base_url = "https://api.anthropic.com", regions = ["us-east", "ap-south"] },
]
"#;
    let d = Policy::parse(src, "custos.toml").unwrap_err();
    assert_eq!(
        located(&d),
        [
            "4:18: default_region \"eu-west\" is not one of service.regions",
            "11:107: provider region \"ap-south\" is not one of service.regions",
        ]
    );
    assert_eq!(
        d.0[0].hint.as_deref(),
        Some("service.regions is [\"us-east\", \"eu-central\"]; add the region there or use one of those")
    );
}

#[test]
fn duplicate_category() {
    let d = check(
        "\n[categories.messages]\nretention = \"30d\"\n\n[categories.files]\nretention = \"30d\"\n\n[categories.messages]\nretention = \"60d\"\n",
    );
    let e = only(&d);
    assert_eq!(
        (e.line, e.col, e.message.as_str()),
        (
            12,
            13,
            "duplicate category `messages` (first defined on line 6)"
        )
    );
    assert_eq!(
        e.hint.as_deref(),
        Some("each category is defined once; merge the two [categories.messages] tables")
    );
}

#[test]
fn checking_continues_after_a_duplicate_category() {
    let d = check(
        "\n[categories.messages]\nretention = \"30d\"\n\n[categories.messages]\nretention = \"60d\"\n\n[backups]\nrpo = \"1x\"\n",
    );
    assert_eq!(
        located(&d),
        [
            "9:13: duplicate category `messages` (first defined on line 6)",
            "13:7: invalid duration \"1x\" for `rpo`: unknown unit `x`",
        ]
    );
}

#[test]
fn unknown_keywords() {
    let d = check(
        "\n[categories.messages]\nretention = \"30d\"\nclassification = \"secret\"\naccess = { roles = [\"owner\", \"root\"] }\n\
         on_subject_erasure = \"forget\"\npii = { detect = [\"email\"], action = \"scrub\" }\n",
    );
    assert_eq!(
        located(&d),
        [
            "8:18: unknown classification \"secret\"",
            "9:30: unknown role \"root\"",
            "10:22: unknown erasure action \"forget\"",
            "11:38: unknown PII action \"scrub\"",
        ]
    );
    assert_eq!(
        d.0[0].hint.as_deref(),
        Some("expected one of: public, internal, confidential, restricted")
    );
}

#[test]
fn the_audit_category_is_never_editable() {
    let d = check("\n[categories.audit]\nretention = \"7y\"\neditable = true\n");
    assert_eq!(
        located(&d),
        ["8:12: the `audit` category can never be editable"]
    );
}

#[test]
fn missing_retention_points_at_the_category() {
    let d = check("\n[categories.messages]\nclassification = \"internal\"\n");
    assert_eq!(
        located(&d),
        ["6:13: category `messages` has no `retention`"]
    );
}

#[test]
fn a_policy_needs_categories() {
    let d = check("");
    assert_eq!(located(&d), ["1:1: the policy defines no categories"]);
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let src = r#"[service]
name = "Acme"
regions = ["us-east", "eu-central"]
default_region = "eu-west"

[deletion]
soft_delete_window = "30 days"
hard_delete_within = "0d"

[categories.messages]
retension = "365d"
retention = "365d"
archive_after = "400d"
org_configurable = { min = "7y", max = "1d" }
pii = { detect = ["email", "ssn"], action = "scrub" }

[categories.logs]
retention = 90

[categories.messages]
retention = "1d"

[llm]
providers = [
  { name = "anthropic", kind = "anthropic", base_url = "https://api.anthropic.com", regions = ["us-west"] },
]
"#;
    let d = Policy::parse(src, "bad.toml").unwrap_err();
    assert_eq!(
        located(&d),
        [
            "4:18: default_region \"eu-west\" is not one of service.regions",
            "7:22: invalid duration \"30 days\" for `soft_delete_window`: unknown unit `days`",
            "8:22: invalid duration \"0d\" for `hard_delete_within`: duration must be greater than zero",
            "11:1: unknown key `retension` in category `messages`",
            "13:17: archive_after (400d) must be shorter than retention (365d)",
            "14:28: org_configurable.min (7y) is longer than org_configurable.max (1d)",
            "15:28: unknown PII entity \"ssn\"",
            "15:45: unknown PII action \"scrub\"",
            "18:13: `retention` must be a duration string, found an integer",
            "20:13: duplicate category `messages` (first defined on line 10)",
            "25:96: provider region \"us-west\" is not one of service.regions",
        ]
    );
    assert!(d.iter().all(|d| d.hint.is_some() && d.file == "bad.toml"));
}

#[test]
fn provider_problems() {
    let d = check(
        r#"
[categories.messages]
retention = "1d"

[llm]
providers = [
  { name = "a", kind = "gemini", base_url = "api.example.com", regions = ["us-east"] },
  { name = "a", kind = "openai", base_url = "https://x", regions = [] },
  { kind = "openai" },
]
"#,
    );
    assert_eq!(
        located(&d),
        [
            "11:24: unknown provider kind \"gemini\"",
            "11:45: base_url \"api.example.com\" is not an http(s) URL",
            "12:12: duplicate provider name \"a\"",
            "12:68: `regions` is empty, so no org could use this provider",
            "13:3: a provider is missing `name`",
            "13:3: a provider is missing `base_url`",
            "13:3: a provider is missing `regions`",
        ]
    );
}

#[test]
fn syntax_errors_stop_the_check() {
    let d = check("\n[categories.messages\nretention = \"1d\"\n");
    let e = only(&d);
    assert_eq!((e.line, e.col), (6, 21));
    assert!(e.message.starts_with("invalid TOML: "), "{e}");
    assert!(e.hint.is_some());
}

#[test]
fn diagnostics_display_as_file_line_col_with_hints() {
    let d =
        check("\n[categories.messages]\nretention = \"1d\"\nclassification = \"confidental\"\n");
    assert_eq!(
        d.to_string(),
        "custos.toml:8:18: unknown classification \"confidental\"\n  hint: did you mean \"confidential\"? expected one of: public, internal, confidential, restricted"
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    let d =
        check("\n[categories.messages]\nretention = \"1d\" # données\nclassification = \"é\"\n");
    assert_eq!(located(&d), ["8:18: unknown classification \"é\""]);
    let d = check("\n[categories.messages]\nretention = \"1d\"\n\"é\" = 1\n");
    assert_eq!(located(&d), ["8:1: unknown key `é` in category `messages`"]);
}

#[test]
fn load_names_the_path() {
    let dir = std::env::temp_dir().join(format!("custos-policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.toml");
    let err = Policy::load(&missing).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }));
    assert!(err.to_string().contains("missing.toml"), "{err}");

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        format!("{HEAD}\n[categories.x]\nretention = \"0d\"\n"),
    )
    .unwrap();
    let err = Policy::load(&bad).unwrap_err();
    let LoadError::Invalid(d) = &err else {
        panic!("{err}")
    };
    assert_eq!(d.0[0].file, bad.display().to_string());
    assert!(err
        .to_string()
        .starts_with(&format!("{}:7:13: invalid duration", bad.display())));

    let good = dir.join("good.toml");
    std::fs::write(&good, Policy::BUILTIN_TOML).unwrap();
    assert_eq!(Policy::load(&good).unwrap(), Policy::builtin());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pathological_input_is_an_error_not_a_crash() {
    for src in [
        format!("a = {}", "[".repeat(100_000)),
        format!("a = {}", "{ b = ".repeat(10_000)),
        "[categories.x]\n".repeat(200),
        "\u{feff}[service]\nname = \"x\"\n".to_string(),
        "[[categories]]\nretention = \"1d\"\n".to_string(),
        "categories = 5\nservice = []\nllm = \"x\"\n".to_string(),
    ] {
        let lines = src.lines().count().max(1);
        let d = match Policy::parse(&src, "p.toml") {
            Ok(_) => panic!("expected problems, got a policy, from {:?}", preview(&src)),
            Err(d) => d,
        };
        assert!(
            !d.is_empty(),
            "an error without diagnostics for {:?}",
            preview(&src)
        );
        for e in &d {
            // Each problem is located inside the input and says what is wrong.
            assert_eq!(e.file, "p.toml");
            assert!(
                (1..=lines + 1).contains(&e.line) && e.col >= 1,
                "{e} is outside the {lines} lines of {:?}",
                preview(&src)
            );
            assert!(
                !e.message.trim().is_empty(),
                "empty message for {:?}",
                preview(&src)
            );
        }
    }
}

/// The start of a long input, for failure messages.
fn preview(src: &str) -> String {
    src.chars().take(40).collect()
}

#[test]
fn wrong_types_for_sections() {
    let d = Policy::parse(
        "service = []\ncategories = 5\n[llm]\nproviders = \"anthropic\"\n",
        "p.toml",
    )
    .unwrap_err();
    assert_eq!(
        located(&d),
        [
            "1:11: `service` must be a table, found an array",
            "2:14: `categories` must be a table, found an integer",
            "4:13: `providers` must be an array of tables, found a string",
        ]
    );
}

#[test]
fn sub_tables_and_arrays_of_tables_are_accepted() {
    let src = r#"
[categories.messages]
retention = "30d"

[categories.messages.access]
roles = ["owner", "auditor"]
groups = ["legal", "finance"]
require_mfa = true

[categories.messages.pii]
detect = ["email"]

[[llm.providers]]
name = "anthropic"
kind = "anthropic"
base_url = "https://api.anthropic.com"
regions = ["us-east"]
"#;
    let p = Policy::parse(src, "p.toml").unwrap();
    let m = p.category("messages").unwrap();
    assert_eq!(m.access.groups, ["legal", "finance"]);
    assert!(m.access.require_mfa);
    assert_eq!(
        m.pii.as_ref().unwrap().action,
        custos_policy::PiiAction::Redact
    );
    assert_eq!(p.llm.providers[0].regions, ["us-east"]);
    assert_eq!(Policy::parse(&p.to_toml(), "again.toml").unwrap(), p);
}

#[test]
fn unknown_key_in_an_array_of_tables_entry() {
    let src = "[categories.m]\nretention = \"1d\"\n[[llm.providers]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"https://x\"\nregions = [\"us-east\"]\nmodel = \"gpt\"\n";
    let d = Policy::parse(src, "p.toml").unwrap_err();
    assert_eq!(located(&d), ["8:1: unknown key `model` in a provider"]);
}

const MESSAGES: &str = "\n[categories.messages]\nretention = \"365d\"\n";

#[test]
fn regions_with_their_own_stores_parse_and_render_back() {
    let src = format!(
        "{HEAD}{MESSAGES}
[regions.us-east]
database = \"sqlite:/srv/us/custos.db\"
objects = \"file:/srv/us/objects\"

[regions.eu-central]
database = \"postgres://db-eu.internal/custos\"
objects = \"s3://custos-eu/data\"
"
    );
    let p = Policy::parse(&src, "custos.toml").unwrap();
    assert_eq!(p.regions.len(), 2);
    assert_eq!(p.regions["eu-central"].objects, "s3://custos-eu/data");
    let again = Policy::parse(&p.to_toml(), "shown.toml").unwrap();
    assert_eq!(
        again, p,
        "policy show prints what parses back to the same policy"
    );
}

#[test]
fn a_region_left_without_stores_beside_one_with_them_is_a_warning() {
    // Valid (that region's orgs use the main stores), but pointed out.
    let src = format!(
        "{HEAD}{MESSAGES}\n[regions.eu-central]\ndatabase = \"postgres://db-eu/custos\"\nobjects = \"s3://eu/data\"\n"
    );
    let p = Policy::parse(&src, "custos.toml").unwrap();
    let warnings = p.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("region `us-east` has no stores while eu-central has its own"),
        "{warnings:?}"
    );
    assert!(warnings[0].contains("[regions.us-east]"));
    // Without any region table there is nothing to point out.
    let plain = Policy::parse(&format!("{HEAD}{MESSAGES}"), "custos.toml").unwrap();
    assert!(plain.warnings().is_empty());
}

#[test]
fn region_tables_name_known_regions_and_both_stores_by_scheme() {
    let d = check(&format!(
        "{MESSAGES}
[regions.us-east]
database = \"mysql://db/custos\"
objects = \"file:/srv/us\"

[regions.eu-central]
objects = \"s3://eu/data\"

[regions.mars]
database = \"sqlite:/m.db\"
objects = \"file:/m\"
"
    ));
    let messages: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages.contains(&"`database` must start with sqlite: or postgres:// or postgresql://"),
        "{d}"
    );
    assert!(
        messages.contains(&"[regions.eu-central] is missing `database`"),
        "{d}"
    );
    assert!(
        messages.contains(&"[regions.mars] names a region that is not in service.regions"),
        "{d}"
    );
}

#[test]
fn network_ranges_are_checked_where_they_are_written() {
    let d = check(concat!(
        "\n[categories.messages]\nretention = \"1d\"\n\n[network]\n",
        "allow = [\"127.0.0.0/8\", \"10.0.0.1\", \"not-a-range\", \"10.1.2.3/16\", \"::/0\"]\n",
        "ca_file = \"\"\nproxy = true\n",
    ));
    assert_eq!(
        located(&d),
        [
            "10:25: \"10.0.0.1\" in `allow` is not a CIDR range",
            "10:37: \"not-a-range\" in `allow` is not a CIDR range",
            "10:52: \"10.1.2.3/16\" in `allow` has bits set after the prefix",
            "10:67: \"::/0\" in `allow` lists every address",
            "11:11: `ca_file` must name a file",
            "12:1: unknown key `proxy` in [network]",
        ]
    );
    let hints: Vec<_> = d
        .iter()
        .map(|e| e.hint.clone().unwrap_or_default())
        .collect();
    assert!(hints[0].contains("\"10.0.0.1/32\""), "{hints:?}");
    assert!(hints[2].contains("\"10.1.0.0/16\""), "{hints:?}");
    let text = d.to_string();
    assert!(text.contains("custos.toml:10:25: "), "{text}");
}

#[test]
fn network_defaults_to_no_exceptions_and_reads_ranges() {
    let p = Policy::parse(
        &format!("{HEAD}\n[categories.messages]\nretention = \"1d\"\n"),
        "custos.toml",
    )
    .unwrap();
    assert!(p.network.allow.is_empty() && p.network.ca_file.is_none());
    let p = Policy::parse(
        &format!(
            "{HEAD}\n[categories.messages]\nretention = \"1d\"\n\n[network]\n\
             allow = [\"127.0.0.0/8\", \"fd00::/8\"]\nca_file = \"/etc/custos/ca.pem\"\n"
        ),
        "custos.toml",
    )
    .unwrap();
    let ranges: Vec<String> = p.network.allow.iter().map(|n| n.to_string()).collect();
    assert_eq!(ranges, ["127.0.0.0/8", "fd00::/8"]);
    assert_eq!(
        p.network.ca_file.as_deref(),
        Some(std::path::Path::new("/etc/custos/ca.pem"))
    );
    // `policy show` prints both, and what it prints parses back to the same policy.
    let shown = p.to_toml();
    assert!(
        shown.contains("[network]\nallow = [\"127.0.0.0/8\", \"fd00::/8\"]\nca_file = \"/etc/custos/ca.pem\"\n"),
        "{shown}"
    );
    assert_eq!(Policy::parse(&shown, "effective.toml").unwrap(), p);
}

#[test]
fn access_reviews_take_a_duration_and_nothing_else() {
    let ok = Policy::parse(
        &format!("{HEAD}\n[categories.messages]\nretention = \"1d\"\n\n[access]\ninactive_member_after = \"90d\"\n"),
        "custos.toml",
    )
    .unwrap();
    assert_eq!(
        ok.access.inactive_member_after.map(|d| d.to_string()),
        Some("90d".into())
    );
    let d = check("\n[categories.messages]\nretention = \"1d\"\n\n[access]\ninactive_member_after = \"soon\"\n");
    assert!(only(&d).message.contains("soon"), "{d}");
    let d =
        check("\n[categories.messages]\nretention = \"1d\"\n\n[access]\nreview_every = \"90d\"\n");
    assert_eq!(only(&d).message, "unknown key `review_every` in [access]");
}

#[test]
fn support_access_takes_two_durations_with_defaults() {
    let base = format!("{HEAD}\n[categories.messages]\nretention = \"1d\"\n");
    let default = Policy::parse(&base, "custos.toml").unwrap();
    assert_eq!(
        (
            default.support.request_expiry.to_string(),
            default.support.max_duration.to_string()
        ),
        ("12h".to_string(), "8h".to_string())
    );
    let set = Policy::parse(
        &format!("{base}\n[support]\nmax_duration = \"2h\"\n"),
        "custos.toml",
    )
    .unwrap();
    assert_eq!(set.support.max_duration.to_string(), "2h");
    assert_eq!(set.support.request_expiry.to_string(), "12h");
    let d = check("\n[categories.messages]\nretention = \"1d\"\n\n[support]\nmax_duration = 8\n");
    assert!(only(&d).message.contains("duration"), "{d}");
    let d = check("\n[categories.messages]\nretention = \"1d\"\n\n[support]\nforever = true\n");
    assert_eq!(only(&d).message, "unknown key `forever` in [support]");
}

#[test]
fn operators_take_an_identity_provider_and_session_lifetimes() {
    let base = format!("{HEAD}\n[categories.messages]\nretention = \"1d\"\n");
    let default = Policy::parse(&base, "custos.toml").unwrap();
    assert_eq!(default.operators.identity_provider, None);
    let text = format!(
        "{base}\n[operators]\nsession_timeout = \"30m\"\n\n[operators.identity_provider]\n\
         issuer = \"https://login.example.com\"\nclient_id = \"custos\"\n\
         client_secret_env = \"CUSTOS_OPERATOR_SECRET\"\n"
    );
    let p = Policy::parse(&text, "custos.toml").unwrap();
    let idp = p.operators.identity_provider.clone().unwrap();
    assert_eq!(
        (
            idp.issuer.as_str(),
            idp.client_id.as_str(),
            idp.client_secret_env.as_deref()
        ),
        (
            "https://login.example.com",
            "custos",
            Some("CUSTOS_OPERATOR_SECRET")
        )
    );
    assert_eq!(p.operators.session_timeout.to_string(), "30m");
    assert_eq!(p.operators.session_max_lifetime.to_string(), "12h");
    // `policy show` prints it back the same.
    let shown = p.to_toml();
    assert_eq!(Policy::parse(&shown, "effective.toml").unwrap(), p);

    let d = check("\n[categories.messages]\nretention = \"1d\"\n\n[operators.identity_provider]\nissuer = \"https://x\"\n");
    assert_eq!(
        only(&d).message,
        "[operators.identity_provider] is missing `client_id`"
    );
    let d = check(
        "\n[categories.messages]\nretention = \"1d\"\n\n[operators]\nsession_timeout = \"2d\"\n",
    );
    assert!(
        only(&d)
            .message
            .contains("longer than `session_max_lifetime`"),
        "{d}"
    );
}

#[test]
fn public_url_is_an_absolute_address_kept_without_its_trailing_slash() {
    let with = |url: &str| {
        HEAD.replacen(
            "[service]\n",
            &format!("[service]\npublic_url = {url:?}\n"),
            1,
        ) + "\n[categories.messages]\nretention = \"1d\"\n"
    };
    let p = Policy::parse(&with("https://custos.example.com/"), "custos.toml").unwrap();
    assert_eq!(
        p.service.public_url.as_deref(),
        Some("https://custos.example.com")
    );
    assert_eq!(Policy::parse(&p.to_toml(), "effective.toml").unwrap(), p);
    for (bad, why) in [
        (
            "custos.example.com",
            "is not an http:// or https:// address",
        ),
        ("https://", "has no host"),
        ("https://x.example/?a=1", "has a query or a fragment"),
        ("https://me@x.example", "carries user info"),
    ] {
        let d = Policy::parse(&with(bad), "custos.toml").unwrap_err();
        assert_eq!(only(&d).message, format!("public_url {bad:?} {why}"), "{d}");
    }
}

const NOTIFY_BASE: &str = "\n[categories.messages]\nretention = \"1d\"\n";

#[test]
fn alert_rules_channels_and_incident_clocks_parse_and_render_back() {
    let text = format!(
        "{HEAD}{NOTIFY_BASE}\n[webhooks.ops]\nurl = \"https://hooks.example.com/custos\"\n\
         secret_env = \"OPS_WEBHOOK_SECRET\"\n\n[smtp]\nhost = \"smtp.example.com\"\n\
         from = \"custos@example.com\"\nusername_env = \"SMTP_USER\"\npassword_env = \"SMTP_PASS\"\n\
         \n[incidents]\ncontain = \"30m\"\n\n[[alerts]]\nname = \"denied-burst\"\n\
         match = {{ outcome = \"denied\", action = [\"auth.*\", \"pii.blocked\"], category = \
         [\"messages\"], actor_kind = [\"member\"] }}\nthreshold = 5\nwindow = \"1m\"\n\
         per = \"actor\"\nseverity = \"high\"\ndeliver = [\"ops\", \"email:sec@example.com\", \
         \"org\"]\nincident = true\n"
    );
    let p = Policy::parse(&text, "custos.toml").unwrap();
    let n = &p.notifications;
    assert_eq!(n.webhooks["ops"].secret_env, "OPS_WEBHOOK_SECRET");
    let smtp = n.smtp.clone().unwrap();
    assert_eq!((smtp.port, smtp.starttls), (587, true));
    assert_eq!(n.incidents.contain.to_string(), "30m");
    assert_eq!(n.incidents.notify.to_string(), "72h");
    let rule = &n.alerts[0];
    assert_eq!(rule.window_seconds(), 60);
    assert_eq!(
        rule.deliver,
        vec![
            custos_policy::Destination::Webhook("ops".into()),
            custos_policy::Destination::Email("sec@example.com".into()),
            custos_policy::Destination::Org,
        ]
    );
    assert!(rule.matcher.action_matches("auth.failed"));
    assert!(!rule.matcher.action_matches("record.read"));
    assert_eq!(Policy::parse(&p.to_toml(), "effective.toml").unwrap(), p);
}

#[test]
fn alert_rules_name_what_exists() {
    let rule = |body: &str| {
        check(&format!(
            "{NOTIFY_BASE}\n[webhooks.ops]\nurl = \"https://h.example.com\"\nsecret_env = \
             \"S\"\n\n[[alerts]]\nname = \"r\"\nthreshold = 5\nwindow = \"1m\"\n{body}\n"
        ))
    };
    let d = rule("deliver = [\"opz\"]");
    assert_eq!(only(&d).message, "`deliver` names no webhook \"opz\"");
    assert_eq!(only(&d).hint.as_deref(), Some("did you mean \"ops\"?"));
    let d = rule("deliver = [\"email:sec@example.com\"]");
    assert!(only(&d).message.contains("needs an [smtp] table"), "{d}");
    let d = rule("deliver = [\"ops\"]\nmatch = { action = [\"auth.faild\"] }");
    assert_eq!(only(&d).message, "\"auth.faild\" is not an audit action");
    let d = rule("deliver = [\"ops\"]\nmatch = { category = [\"mesages\"] }");
    assert_eq!(only(&d).hint.as_deref(), Some("did you mean \"messages\"?"));
    let d = rule("deliver = [\"ops\"]\nmatch = { outcome = \"refused\" }");
    assert!(only(&d).message.contains("unknown outcome"), "{d}");
    let d = rule("deliver = [\"ops\"]\nper = \"tenant\"");
    assert!(only(&d).message.contains("unknown alert key"), "{d}");
    let d = rule("deliver = []");
    assert_eq!(only(&d).message, "`deliver` names no channel");
    let d = rule("deliver = [\"ops\"]\nwindow2 = 1");
    assert_eq!(only(&d).message, "unknown key `window2` in [[alerts]]");
    let d = check(&format!(
        "{NOTIFY_BASE}\n[[alerts]]\nname = \"r\"\nthreshold = 0\nwindow = \"1mo\"\ndeliver = \
         [\"org\"]\n\n[[alerts]]\nname = \"r\"\nthreshold = 1\nwindow = \"1m\"\ndeliver = \
         [\"org\"]\n"
    ));
    let messages: Vec<&str> = d.0.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "`threshold` must be a whole number from 1 to 10000",
            "alert window 1mo is longer than 7 days or not exact",
        ],
        "{d}"
    );
    let d = check(&format!(
        "{NOTIFY_BASE}\n[[alerts]]\nname = \"r\"\nthreshold = 1\nwindow = \"1m\"\ndeliver = \
         [\"org\"]\n\n[[alerts]]\nname = \"r\"\nthreshold = 1\nwindow = \"1m\"\ndeliver = \
         [\"org\"]\n"
    ));
    assert_eq!(only(&d).message, "duplicate alert rule name \"r\"");
    let d = check(&format!("{NOTIFY_BASE}\n[[alerts]]\nname = \"r\"\n"));
    assert_eq!(
        d.0.len(),
        3,
        "threshold, window and deliver are required: {d}"
    );
}

#[test]
fn channels_and_clocks_are_checked_where_they_are_written() {
    let d = check(&format!(
        "{NOTIFY_BASE}\n[webhooks.ops]\nurl = \"ftp://x\"\nsecret_env = \"whsec_abc=\"\n"
    ));
    let messages: Vec<&str> = d.0.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "[webhooks.ops] url \"ftp://x\" is not an http(s) URL",
            "`secret_env` \"whsec_abc=\" is not an environment variable's name",
        ],
        "{d}"
    );
    let d = check(&format!(
        "{NOTIFY_BASE}\n[webhooks.org]\nurl = \"https://x\"\nsecret_env = \"S\"\n"
    ));
    assert!(only(&d).message.contains("is not a plain name"), "{d}");
    let d = check(&format!(
        "{NOTIFY_BASE}\n[smtp]\nhost = \"smtp.example.com:25\"\nfrom = \"nobody\"\nusername_env = \"U\"\n"
    ));
    let messages: Vec<&str> = d.0.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "[smtp] host \"smtp.example.com:25\" is not a host name",
            "[smtp] from \"nobody\" is not an e-mail address",
            "[smtp] has `username_env` but no `password_env`",
        ],
        "{d}"
    );
    let d = check(&format!("{NOTIFY_BASE}\n[incidents]\ncontain = \"12h\"\n"));
    assert_eq!(
        only(&d).message,
        "[incidents] `contain` (12h) is later than `assess` (6h)"
    );
    let d = check(&format!("{NOTIFY_BASE}\n[incidents]\nclose = \"1d\"\n"));
    assert_eq!(only(&d).message, "unknown key `close` in [incidents]");
}

#[test]
fn alert_rules_are_tables() {
    let src = format!("alerts = [\"denied-burst\"]\n{HEAD}{NOTIFY_BASE}");
    let d = Policy::parse(&src, "custos.toml").unwrap_err();
    assert_eq!(only(&d).message, "each entry of `alerts` must be a table");
    let src = format!("alerts = 5\n{HEAD}{NOTIFY_BASE}");
    let d = Policy::parse(&src, "custos.toml").unwrap_err();
    assert_eq!(
        only(&d).hint.as_deref(),
        Some("write each rule as an [[alerts]] table")
    );
}

#[test]
fn pii_alert_is_a_category_key_and_must_be_true_or_false() {
    let ok = Policy::parse(
        &format!(
            "{HEAD}\n[categories.messages]\nretention = \"1d\"\n\
             pii = {{ detect = [\"email\"], action = \"redact\", alert = true }}\n"
        ),
        "custos.toml",
    )
    .unwrap();
    assert!(ok.category("messages").unwrap().pii.as_ref().unwrap().alert);
    let d = check(
        "\n[categories.messages]\nretention = \"1d\"\n\
         pii = { detect = [\"email\"], alert = \"yes\" }\n",
    );
    assert!(only(&d).message.contains("alert"), "{d}");
    let d = check(
        "\n[categories.messages]\nretention = \"1d\"\n[llm]\n\
         pii = { detect = [\"email\"], action = \"tokenize\", alert = true }\n",
    );
    let e = only(&d);
    assert_eq!(
        e.message,
        "`alert` applies to a category's `pii`, not the gateway's"
    );
    assert_eq!(e.line, 9, "{e}");
}
