//! Tests of the authorization table: complete and in order, unique routes and actions, the
//! README renders it, and the operator's column holds for every grant scope and category.

use super::*;

#[test]
fn table_is_in_operation_order_and_complete() {
    assert_eq!(TABLE.len(), Operation::ALL.len());
    for (i, op) in Operation::ALL.iter().enumerate() {
        assert_eq!(TABLE[i].op, *op, "row {i} of TABLE");
        assert_eq!(*op as usize, i);
    }
}

#[test]
fn routes_and_actions_are_unique() {
    let mut routes = std::collections::HashSet::new();
    let mut actions = std::collections::HashSet::new();
    for r in TABLE {
        assert!(actions.insert(r.action), "duplicate action {}", r.action);
        if let Some(route) = r.route {
            assert!(routes.insert(route), "duplicate route {route:?}");
        }
        if let Some(page) = r.console {
            assert!(page.1.starts_with("/console/"), "{page:?}");
            assert!(routes.insert(page), "duplicate console route {page:?}");
        }
    }
}

#[test]
fn readme_renders_the_table() {
    let readme = include_str!("../../../README.md");
    assert!(
        readme.contains(&table_markdown()),
        "README.md must contain the authorization table exactly as \
         `custos_core::authz::table_markdown()` renders it:\n{}",
        table_markdown()
    );
}

/// The operator, against every row, scope and category of the built-in policy: without a
/// grant it gets exactly the rows marked `Always` (or the first owner of an ownerless org);
/// `Never` rows refuse it under every scope (the bootstrap token and a signed-in operator alike); a grant's scope must reach the row's; and no
/// grant, whatever its scope, lets it edit a record of an `editable = false` category.
#[test]
fn the_operator_gets_exactly_its_column_under_every_grant_and_category() {
    let policy = custos_policy::Policy::builtin();
    let categories: Vec<&Category> = policy.categories.values().collect();
    assert!(
        categories.iter().any(|c| !c.editable),
        "an append-only category to try"
    );
    let grants = std::iter::once(None).chain(GrantScope::ALL.into_iter().map(Some));
    for scope in grants {
        for has_owner in [false, true] {
            let facts = Facts {
                has_owner,
                grant: scope.map(|scope| ActiveGrant {
                    id: "g".into(),
                    scope,
                    categories: None,
                }),
                ..Facts::default()
            };
            // The bootstrap token and a signed-in operator hold the same column.
            let signed_in = Principal::Operator {
                id: "op".into(),
                expires: jiff::Timestamp::MAX,
            };
            for (rule, principal) in TABLE
                .iter()
                .flat_map(|r| [(r, &Principal::Admin), (r, &signed_in)])
            {
                for category in &categories {
                    let answer = decide(rule, principal, &facts, &[category]);
                    let expected = match rule.operator {
                        OperatorRule::Always => true,
                        OperatorRule::Never => false,
                        OperatorRule::OwnerlessOrg => !has_owner,
                        OperatorRule::Grant(needed) => {
                            scope.is_some_and(|s| s >= needed)
                                && !(rule.category != CategoryRule::No
                                    && rule.edits
                                    && !category.editable)
                        }
                    };
                    assert_eq!(
                        answer.is_ok(),
                        expected,
                        "{} under {scope:?} on {} (owner: {has_owner}): {answer:?}",
                        rule.action,
                        category.name
                    );
                    if let (Err(e), OperatorRule::Grant(needed)) = (&answer, rule.operator) {
                        let short = scope.is_none_or(|s| s < needed);
                        assert_eq!(e.code() == "grant_required", short, "{}", rule.action);
                    }
                }
            }
        }
    }
}

/// A grant limited to some categories reaches no other category, for any row.
#[test]
fn a_grant_reaches_only_its_categories() {
    let policy = custos_policy::Policy::builtin();
    let facts = Facts {
        has_owner: true,
        grant: Some(ActiveGrant {
            id: "g".into(),
            scope: GrantScope::ReadWrite,
            categories: Some(vec!["messages".into()]),
        }),
        ..Facts::default()
    };
    for rule in TABLE.iter().filter(|r| r.category != CategoryRule::No) {
        for category in policy.categories.values() {
            let answer = decide(rule, &Principal::Admin, &facts, &[category]);
            if category.name != "messages" && matches!(rule.operator, OperatorRule::Grant(_)) {
                assert!(answer.is_err(), "{} on {}", rule.action, category.name);
            }
        }
    }
}

/// A data subject in the privacy center gets exactly the rows marked for subjects, in a
/// live org only; those rows are open to nobody else and live under `/privacy/`.
#[test]
fn the_subject_gets_exactly_the_privacy_rows() {
    let subject = Principal::Subject(crate::privacy_links::LinkedSubject {
        org: "o".into(),
        subject: Some("s".into()),
        subject_ref: "r".into(),
    });
    let policy = custos_policy::Policy::builtin();
    let categories: Vec<&Category> = policy.categories.values().collect();
    let mut rows = 0;
    for rule in TABLE {
        let answer = decide(rule, &subject, &Facts::default(), &categories);
        assert_eq!(answer.is_ok(), rule.subject, "{:?}: {answer:?}", rule.op);
        if !rule.subject {
            continue;
        }
        rows += 1;
        assert!(rule.roles.is_empty(), "{:?}", rule.op);
        assert_eq!(rule.operator, OperatorRule::Never, "{:?}", rule.op);
        assert!(
            rule.route
                .is_some_and(|(_, p)| p.starts_with("/privacy/{org}")),
            "{:?}",
            rule.op
        );
        for facts in [
            Facts {
                terminating: true,
                ..Facts::default()
            },
            Facts {
                suspended: true,
                ..Facts::default()
            },
        ] {
            assert!(
                decide(rule, &subject, &facts, &[]).is_err(),
                "{:?}",
                rule.op
            );
        }
    }
    assert_eq!(rows, 4);
}
