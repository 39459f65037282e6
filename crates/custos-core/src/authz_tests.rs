//! Tests of the authorization table: complete and in order, unique routes and actions, and
//! the README renders it.

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
