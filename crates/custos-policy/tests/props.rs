//! Properties: durations round-trip, the effective policy round-trips, parsing never panics.

use std::collections::BTreeMap;

use custos_policy::{
    Access, Bounds, Category, Classification, Duration, DurationUnit, ErasureAction, PiiAction,
    PiiRule, Policy, Role, KNOWN_PII_ENTITIES,
};
use proptest::prelude::*;

fn unit() -> impl Strategy<Value = DurationUnit> {
    prop::sample::select(DurationUnit::ALL.to_vec())
}

fn duration() -> impl Strategy<Value = Duration> {
    unit().prop_flat_map(|u| (1..=u.max_count()).prop_map(move |n| Duration::new(n, u).unwrap()))
}

/// A valid category: archive and bounds in the retention's own unit, so their order is certain.
fn category(name: String) -> impl Strategy<Value = Category> {
    (
        unit(),
        2u32..5000,
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(Classification::ALL.to_vec()),
        prop::sample::subsequence(Role::ALL.to_vec(), 1..=Role::ALL.len()),
        prop::collection::vec("[a-z]{1,8}", 0..3),
        any::<bool>(),
        prop::option::of((
            prop::sample::subsequence(KNOWN_PII_ENTITIES.to_vec(), 1..5),
            prop::sample::select(PiiAction::ALL.to_vec()),
        )),
        prop::sample::select(ErasureAction::ALL.to_vec()),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(
            move |(
                u,
                n,
                archive,
                bounded,
                classification,
                roles,
                groups,
                mfa,
                pii,
                erasure,
                (store, editable),
            )| {
                let n = n.min(u.max_count() - 1);
                let dur = |k: u32| Duration::new(k, u).unwrap();
                let mut groups = groups;
                groups.sort();
                groups.dedup();
                Category {
                    name: name.clone(),
                    retention: dur(n),
                    org_configurable: bounded.then(|| Bounds {
                        min: dur(1.max(n / 2)),
                        max: dur(n + 1),
                    }),
                    archive_after: archive.then(|| dur(1.max(n / 3))).filter(|a| a.count() < n),
                    classification,
                    access: Access {
                        roles,
                        groups,
                        require_mfa: mfa,
                    },
                    pii: pii.map(|(detect, action)| PiiRule {
                        detect: detect.into_iter().map(String::from).collect(),
                        action,
                        alert: mfa,
                    }),
                    on_subject_erasure: erasure,
                    store_content: store,
                    editable: editable && name != "audit",
                }
            },
        )
}

fn policy() -> impl Strategy<Value = Policy> {
    let names = prop::collection::btree_set("[a-z][a-z0-9_]{0,12}", 1..6);
    (
        names.prop_flat_map(|names| names.into_iter().map(category).collect::<Vec<_>>()),
        "[ -~]{1,30}",
        duration(),
        any::<bool>(),
    )
        .prop_map(|(cats, name, soft, zero)| {
            let mut p = Policy::builtin();
            p.service.name = name;
            p.deletion.soft_delete_window = soft;
            p.llm.zero_retention = zero;
            p.categories = cats
                .into_iter()
                .map(|c| (c.name.clone(), c))
                .collect::<BTreeMap<_, _>>();
            // The LLM category must name one of the generated categories.
            p.llm.category = p.categories.keys().next().cloned();
            p
        })
        .prop_filter("service name must not be blank", |p| {
            !p.service.name.trim().is_empty()
        })
}

proptest! {
    #[test]
    fn duration_display_parses_back(d in duration()) {
        let text = d.to_string();
        prop_assert_eq!(text.parse::<Duration>(), Ok(d));
    }

    #[test]
    fn duration_parse_never_panics(s in "\\PC{0,24}") {
        let _ = s.parse::<Duration>();
    }

    #[test]
    fn parsed_durations_display_canonically(n in 1u32..100_000, u in unit()) {
        let text = format!("{n}{}", u.suffix());
        match text.parse::<Duration>() {
            Ok(d) => prop_assert_eq!(d.to_string(), text),
            Err(_) => prop_assert!(n > u.max_count()),
        }
    }

    #[test]
    fn adding_a_duration_never_goes_backwards(d in duration(), secs in -100_000_000_000i64..100_000_000_000) {
        let t = jiff::Timestamp::from_second(secs).unwrap();
        prop_assert!(d.add_to(t) > t || d.add_to(t) == jiff::Timestamp::MAX);
    }

    #[test]
    fn effective_policy_round_trips(p in policy()) {
        let text = p.to_toml();
        let again = Policy::parse(&text, "effective.toml");
        prop_assert!(again.is_ok(), "{}\n{}", text, again.unwrap_err());
        prop_assert_eq!(again.unwrap(), p);
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(s in "\\PC{0,200}") {
        let _ = Policy::parse(&s, "fuzz.toml");
    }

    #[test]
    fn parse_never_panics_on_damaged_policies(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, "[\\[\\]\"'=.,{}\n a-z0-9]{0,3}"), 1..6)
    ) {
        let mut text = Policy::BUILTIN_TOML.to_string();
        for (at, op, insert) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            match op {
                0 => text.insert_str(i, &insert),
                1 => {
                    let end = (i + insert.len() + 1).min(text.len());
                    let end = (end..=text.len()).find(|e| text.is_char_boundary(*e)).unwrap_or(text.len());
                    text.replace_range(i..end, "");
                }
                _ => text.replace_range(i..i, "\n[categories.messages]\n"),
            }
        }
        if let Err(d) = Policy::parse(&text, "damaged.toml") {
            let lines = text.lines().count().max(1) + 1;
            for diag in d.iter() {
                prop_assert!(diag.line >= 1 && diag.line <= lines, "{}", diag);
                prop_assert!(diag.col >= 1);
            }
        }
    }
}
