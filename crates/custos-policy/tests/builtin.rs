//! The built-in policy keeps the seeds' promises, and everything built from a policy agrees with it.

use custos_policy::{
    Classification, Duration, ErasureAction, OverrideError, PiiAction, Policy, ProviderKind, Role,
};
use jiff::Timestamp;

fn d(s: &str) -> Duration {
    s.parse().unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn retention(p: &Policy, category: &str) -> String {
    p.category(category)
        .unwrap_or_else(|| panic!("no category {category}"))
        .retention
        .to_string()
}

#[test]
fn builtin_encodes_the_seed_promises() {
    let p = Policy::builtin();
    // Seed 000: retention table, deletion windows, backups.
    assert_eq!(retention(&p, "app_logs"), "90d");
    assert_eq!(retention(&p, "security_logs"), "12mo");
    assert_eq!(retention(&p, "audit"), "7y");
    assert_eq!(p.deletion.soft_delete_window, d("30d"));
    assert_eq!(p.deletion.hard_delete_within, d("30d"));
    assert_eq!(p.deletion.expired_within, d("7d"));
    assert_eq!(p.deletion.account_termination_within, d("90d"));
    assert_eq!(p.deletion.erasure_request_within, d("30d"));
    assert_eq!(p.deletion.archive_restore_window, d("48h"));
    assert_eq!(p.backups.retention, d("30d"));
    assert_eq!(p.backups.rpo, d("1h"));
    assert_eq!(p.backups.rto, d("4h"));
    // Seed 000: messages and files are customer-configurable and archived.
    for c in ["messages", "files"] {
        let c = p.category(c).unwrap();
        assert!(c.org_configurable.is_some());
        assert!(c.archive_after.is_some());
    }
    // Seed 003: uploads deleted after a month; pass-through is possible.
    let uploads = p.category("uploads").unwrap();
    assert_eq!(uploads.retention, d("30d"));
    assert!(uploads.store_content);
    assert!(p.category("import_logs").unwrap().pii.is_some());
    // Seed 004: interactions 90 days and anonymized, analytics 2 years and aggregated.
    assert_eq!(retention(&p, "interactions"), "90d");
    assert_eq!(
        p.category("interactions").unwrap().on_subject_erasure,
        ErasureAction::Anonymize
    );
    assert_eq!(retention(&p, "analytics"), "2y");
    assert_eq!(
        p.category("analytics").unwrap().on_subject_erasure,
        ErasureAction::Aggregate
    );
    assert!(p.category("documents").is_some());
    // The audit trail is never editable and needs MFA.
    let audit = p.category("audit").unwrap();
    assert!(!audit.editable);
    assert!(audit.access.require_mfa);
    assert!(audit.access.roles.contains(&Role::Auditor));
    assert_eq!(audit.classification, Classification::Restricted);
    // Only the audit trail is non-editable.
    assert!(p
        .categories
        .values()
        .all(|c| c.editable == (c.name != "audit")));
    // Seeds 000/002/004: LLM zero retention, PII handled before prompts leave.
    assert!(p.llm.zero_retention);
    let kinds: Vec<ProviderKind> = p.llm.providers.iter().map(|p| p.kind).collect();
    assert!(kinds.contains(&ProviderKind::Anthropic) && kinds.contains(&ProviderKind::OpenAi));
    assert_eq!(p.llm.pii.as_ref().unwrap().action, PiiAction::Tokenize);
    assert_eq!(p.service.default_region, "us-east");
}

#[test]
fn every_builtin_category_cites_a_seed() {
    // Each [categories.X] header is preceded by a comment naming the seed it encodes.
    let lines: Vec<&str> = Policy::BUILTIN_TOML.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("[categories.") {
            let comment: String = lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.starts_with('#'))
                .copied()
                .collect();
            assert!(
                ["000", "001", "002", "003", "004"]
                    .iter()
                    .any(|s| comment.contains(s)),
                "{line} has no seed citation"
            );
        }
    }
}

#[test]
fn omitted_sections_default_to_the_seed_promises() {
    let p = Policy::parse("[categories.messages]\nretention = \"30d\"\n", "t.toml").unwrap();
    let builtin = Policy::builtin();
    assert_eq!(p.deletion, builtin.deletion);
    assert_eq!(p.backups, builtin.backups);
    assert!(p.llm.zero_retention);
    let m = p.category("messages").unwrap();
    assert_eq!(m.classification, Classification::Internal);
    assert_eq!(m.access.roles, [Role::Owner, Role::Admin, Role::Member]);
    assert!(m.access.groups.is_empty() && !m.access.require_mfa);
    assert_eq!(m.on_subject_erasure, ErasureAction::Delete);
    assert!(m.store_content && m.editable);
    assert_eq!(p.service.default_region, p.service.regions[0]);
}

#[test]
fn to_toml_matches_the_golden_file() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/builtin-effective.toml"
    );
    let actual = Policy::builtin().to_toml();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        actual, expected,
        "effective policy changed; rerun with UPDATE_GOLDEN=1 and review the diff"
    );
}

#[test]
fn to_toml_parses_back_to_the_same_policy() {
    let p = Policy::builtin();
    let again = Policy::parse(&p.to_toml(), "effective.toml").unwrap();
    assert_eq!(again, p);
    // And it is a fixed point.
    assert_eq!(again.to_toml(), p.to_toml());
}

#[test]
fn to_toml_is_plain_toml() {
    // Any TOML reader can consume the effective policy.
    let v: toml::Table = toml::from_str(&Policy::builtin().to_toml()).unwrap();
    assert_eq!(v["categories"]["audit"]["retention"].as_str(), Some("7y"));
}

#[test]
fn to_toml_escapes_strings() {
    let mut p = Policy::builtin();
    p.service.name = "Acme \"Data\" \\ Co\n".to_string();
    let again = Policy::parse(&p.to_toml(), "x").unwrap();
    assert_eq!(again.service.name, p.service.name);
}

#[test]
fn due_times_follow_the_calendar() {
    let p = Policy::builtin();
    let messages = p.category("messages").unwrap();
    let due = messages.due_times(ts("2025-01-31T12:00:00Z"), None);
    assert_eq!(due.expire_at, ts("2026-01-31T12:00:00Z"));
    assert_eq!(due.archive_at, Some(ts("2025-05-01T12:00:00Z")));

    let security = p.category("security_logs").unwrap();
    let due = security.due_times(ts("2024-02-29T00:00:00Z"), None);
    assert_eq!(due.expire_at, ts("2025-02-28T00:00:00Z"));
    assert_eq!(due.archive_at, None);
}

#[test]
fn an_override_shorter_than_archive_after_drops_archival() {
    let p = Policy::builtin();
    let messages = p.category("messages").unwrap();
    let due = messages.due_times(ts("2025-01-01T00:00:00Z"), Some(d("30d")));
    assert_eq!(due.expire_at, ts("2025-01-31T00:00:00Z"));
    assert_eq!(due.archive_at, None);
}

#[test]
fn overrides_are_checked_against_the_bounds() {
    let p = Policy::builtin();
    assert_eq!(p.check_override("messages", d("30d")), Ok(()));
    assert_eq!(p.check_override("messages", d("1d")), Ok(()));
    assert_eq!(p.check_override("messages", d("84mo")), Ok(()));
    let err = p.check_override("messages", d("2h")).unwrap_err();
    assert!(matches!(err, OverrideError::BelowMin { .. }));
    assert_eq!(
        err.to_string(),
        "retention 2h for `messages` is below the minimum 1d (allowed: 1d to 7y)"
    );
    let err = p.check_override("messages", d("8y")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "retention 8y for `messages` is above the maximum 7y (allowed: 1d to 7y)"
    );
    let err = p.check_override("audit", d("1y")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the retention of `audit` is fixed by the policy at 7y and cannot be changed per org"
    );
    let err = p.check_override("nope", d("1y")).unwrap_err();
    assert_eq!(err.to_string(), "unknown category `nope`");
}

#[test]
fn disclosure_states_the_promises() {
    let text = Policy::builtin().render_disclosure();
    for needle in [
        "# How Example SaaS handles your data",
        "| App logs | 90 days |",
        "| Security logs | 12 months |",
        "| Audit | 7 years |",
        "| Uploads | 30 days |",
        "| LLM usage | 90 days (metadata only; content is not stored) |",
        "restored for 30 days",
        "deleted within 7 days",
        "removed within 90 days",
        "completed within 30 days",
        "Backups are kept for 30 days",
        "Recovery point objective: 1 hour. Recovery time objective: 4 hours.",
        "Zero retention",
        "us-east (default), us-west, eu-central, ap-southeast",
        "email, phone, credit card, US SSN, IBAN, person: replaced by tokens",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn disclosure_escapes_markdown_in_names() {
    let mut p = Policy::builtin();
    p.service.name = "A|B <script>".to_string();
    let text = p.render_disclosure();
    assert!(text.contains("A\\|B \\<script\\>"));
    assert!(!text.contains("<script>"));
}

#[test]
fn serde_uses_the_policy_spelling() {
    let p = Policy::builtin();
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["categories"]["security_logs"]["retention"], "12mo");
    assert_eq!(json["categories"]["audit"]["classification"], "restricted");
    assert_eq!(json["llm"]["providers"][1]["kind"], "openai");
    let r: Role = serde_json::from_str("\"auditor\"").unwrap();
    assert_eq!(r, Role::Auditor);
    assert!(serde_json::from_str::<Role>("\"root\"").is_err());
    let dur: Duration = serde_json::from_str("\"12w\"").unwrap();
    assert_eq!(dur, d("12w"));
    assert!(serde_json::from_str::<Duration>("\"12\"").is_err());
}
