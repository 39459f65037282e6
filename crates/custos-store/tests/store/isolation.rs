//! Tenant isolation as a property: whatever orgs A and B do, a scope never reads, lists or
//! changes the other org's records.

use std::collections::BTreeMap;

use custos_store::{OrgScope, RecordFilter, RecordRow, RecordState, StateChange, Store};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::support::*;

const CATEGORIES: [&str; 3] = ["messages", "files", "analytics"];
// The same subject references in both orgs: a subject filter must not leak across them.
const SUBJECTS: [&str; 3] = ["subj:1", "subj:2", "subj:3"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

#[derive(Debug, Clone)]
enum Op {
    Insert {
        side: Side,
        category: usize,
        subject: Option<usize>,
        count: usize,
    },
    Get {
        via: Side,
        pick: Option<Index>,
    },
    List {
        via: Side,
        category: Option<usize>,
        subject: Option<usize>,
        state: Option<RecordState>,
        page: u32,
    },
    Transition {
        via: Side,
        pick: Option<Index>,
        from: RecordState,
        to: RecordState,
    },
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::A), Just(Side::B)]
}

fn state() -> impl Strategy<Value = RecordState> {
    prop_oneof![
        Just(RecordState::Active),
        Just(RecordState::Archived),
        Just(RecordState::SoftDeleted),
    ]
}

/// `pick` chooses a known record; `None` (rarely) an id that exists nowhere.
fn pick() -> impl Strategy<Value = Option<Index>> {
    prop::option::weighted(0.9, any::<Index>())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (side(), 0..CATEGORIES.len(), prop::option::of(0..SUBJECTS.len()), 1..4usize)
            .prop_map(|(side, category, subject, count)| Op::Insert { side, category, subject, count }),
        3 => (side(), pick()).prop_map(|(via, pick)| Op::Get { via, pick }),
        2 => (
            side(),
            prop::option::of(0..CATEGORIES.len()),
            prop::option::of(0..SUBJECTS.len()),
            prop::option::of(state()),
            1..5u32,
        )
            .prop_map(|(via, category, subject, state, page)| Op::List {
                via,
                category,
                subject,
                state,
                page,
            }),
        3 => (side(), pick(), state(), state())
            .prop_map(|(via, pick, from, to)| Op::Transition { via, pick, from, to }),
    ]
}

/// What the store must hold: every record of this case, with its owner.
struct Model {
    a: OrgScope,
    b: OrgScope,
    records: BTreeMap<String, (Side, RecordRow)>,
}

impl Model {
    fn scope(&self, side: Side) -> &OrgScope {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    fn pick(&self, pick: &Option<Index>) -> String {
        match pick {
            Some(i) if !self.records.is_empty() => self
                .records
                .keys()
                .nth(i.index(self.records.len()))
                .unwrap()
                .clone(),
            _ => v7_id(),
        }
    }

    /// The expected listing through `via`, in id order.
    fn list(&self, via: Side, filter: &RecordFilter) -> Vec<RecordRow> {
        self.records
            .values()
            .filter(|(owner, r)| {
                *owner == via
                    && filter
                        .subject_ref
                        .as_ref()
                        .is_none_or(|s| r.subject_ref.as_ref() == Some(s))
                    && filter.category.as_ref().is_none_or(|c| &r.category == c)
                    && (filter.states.is_empty() || filter.states.contains(&r.state))
            })
            .map(|(_, r)| r.clone())
            .collect()
    }
}

async fn list_paged(
    store: &dyn Store,
    scope: &OrgScope,
    filter: &RecordFilter,
    page: u32,
) -> Vec<RecordRow> {
    let mut out: Vec<RecordRow> = Vec::new();
    loop {
        let after = out.last().map(|r| r.id.clone());
        let got = store
            .list_records(scope, filter, after.as_deref(), page)
            .await
            .unwrap();
        let done = got.len() < page as usize;
        out.extend(got);
        if done {
            return out;
        }
    }
}

async fn run_case(store: &dyn Store, ops: Vec<Op>) -> Result<(), TestCaseError> {
    // Fresh orgs per case; earlier cases' orgs and records stay in the store as bystanders.
    let mut model = Model {
        a: store.create_org(&org("A"), &[]).await.unwrap(),
        b: store.create_org(&org("B"), &[]).await.unwrap(),
        records: BTreeMap::new(),
    };
    for op in ops {
        match op {
            Op::Insert {
                side,
                category,
                subject,
                count,
            } => {
                let rows: Vec<RecordRow> = v7_ids(count)
                    .iter()
                    .map(|id| {
                        record(
                            id,
                            CATEGORIES[category],
                            subject.map(|s| SUBJECTS[s]),
                            RecordState::Active,
                        )
                    })
                    .collect();
                let scope = model.scope(side).clone();
                let audit = [event(Some(&scope), "record.create", "records")];
                store.insert_records(&scope, &rows, &audit).await.unwrap();
                for r in rows {
                    model.records.insert(r.id.clone(), (side, r));
                }
            }
            Op::Get { via, pick } => {
                let id = model.pick(&pick);
                let got = store.record(model.scope(via), &id).await.unwrap();
                let expected = model
                    .records
                    .get(&id)
                    .filter(|(owner, _)| *owner == via)
                    .map(|(_, r)| r.clone());
                prop_assert_eq!(got, expected, "get {} via {:?}", id, via);
            }
            Op::List {
                via,
                category,
                subject,
                state,
                page,
            } => {
                let filter = RecordFilter {
                    subject_ref: subject.map(|s| SUBJECTS[s].to_string()),
                    category: category.map(|c| CATEGORIES[c].to_string()),
                    states: state.into_iter().collect(),
                };
                let got = list_paged(store, model.scope(via), &filter, page).await;
                prop_assert_eq!(got, model.list(via, &filter), "list via {:?}", via);
            }
            Op::Transition {
                via,
                pick,
                from,
                to,
            } => {
                let id = model.pick(&pick);
                let change = StateChange {
                    id: id.clone(),
                    from,
                    to,
                    deleted_at: (to == RecordState::SoftDeleted).then(now_us),
                    next_due_at: Some(now_us()),
                };
                let expected = model
                    .records
                    .get(&id)
                    .is_some_and(|(owner, r)| *owner == via && r.state == from);
                let size = store.audit_size().await.unwrap();
                let scope = model.scope(via).clone();
                let audit = [event(
                    Some(&scope),
                    "record.delete",
                    &format!("record:{id}"),
                )];
                let changed = store
                    .transition_record(&scope, &change, &audit)
                    .await
                    .unwrap();
                prop_assert_eq!(changed, expected, "transition {} via {:?}", id, via);
                prop_assert_eq!(
                    store.audit_size().await.unwrap(),
                    size + u64::from(expected)
                );
                if changed {
                    let row = &mut model.records.get_mut(&id).unwrap().1;
                    row.state = to;
                    row.deleted_at = change.deleted_at;
                    row.next_due_at = change.next_due_at;
                }
                // Read back through the owner: changed exactly as modelled, or not at all.
                if let Some((owner, row)) = model.records.get(&id) {
                    let stored = store.record(model.scope(*owner), &id).await.unwrap();
                    prop_assert_eq!(stored, Some(row.clone()));
                }
            }
        }
    }
    // In the end each org lists exactly its own records.
    for via in [Side::A, Side::B] {
        let got = list_paged(store, model.scope(via), &RecordFilter::default(), 7).await;
        prop_assert_eq!(got, model.list(via, &RecordFilter::default()));
    }
    Ok(())
}

pub async fn tenant_isolation(h: Harness) {
    let store = h.store.clone();
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let result = tokio::task::block_in_place(|| {
        runner.run(&prop::collection::vec(op(), 1..30), |ops| {
            handle.block_on(run_case(&*store, ops))
        })
    });
    if let Err(e) = result {
        panic!("tenant isolation ({}): {e}", h.store.backend());
    }
}
