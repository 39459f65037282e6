//! The audit log's Merkle tree in SQL, shared by both backends: which subtree hashes are
//! stored, and how the others are derived.
//!
//! # Storage layout
//!
//! - `audit_log.leaf_hash`: every leaf hash (`SHA-256(0x00 || leaf)`), written with the row.
//! - `audit_nodes (level, idx, hash)`: the complete subtrees at level >= [`STORED_MIN_LEVEL`]
//!   only, written in the same transaction as the leaves that complete them.
//!
//! A node below that level covers at most `2^STORED_MIN_LEVEL` (16) consecutive leaves, so it
//! is recomputed from one range read of `leaf_hash` rows (≤ 15 node hashes). An append of a
//! batch of `N` events therefore writes about `N / 8` small node rows instead of `N`, and a
//! proof or a root costs at most ~2·log2(n) point reads of stored nodes plus one or two
//! leaf-hash range reads of ≤ 16 rows each. (Level 8 was measured too: 16× fewer node rows,
//! but each proof then reads 256 wide audit rows, ~25 pages, which dominated proof latency on
//! a cold page cache; the node rows level 4 adds cost ~1% of an append.)
//!
//! The append frontier is read from the stored nodes *inside the appending transaction*, never
//! cached in memory, so several processes (or PostgreSQL instances) appending to one database
//! always extend the tree that is actually committed.
//!
//! Backends provide two reads (stored nodes by id, leaf hashes by index range); everything
//! else here is plain computation over their results.

use std::collections::HashMap;

use custos_audit::merkle::subtree_nodes;
use custos_audit::{node_hash, Frontier, Hash, NodeId, NodeStore};

use crate::model::StoreError;

/// The lowest tree level kept in `audit_nodes`; lower levels are recomputed from leaf hashes.
pub const STORED_MIN_LEVEL: u8 = 4;

/// One stored audit row as verification reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Position in the log.
    pub index: u64,
    /// The canonical event bytes (the Merkle leaf).
    pub leaf: Vec<u8>,
    /// The leaf hash written at append time (`None` only if the column was cleared).
    pub leaf_hash: Option<Hash>,
    /// The indexed columns stored beside the leaf (what queries filter on).
    pub columns: AuditIndex,
}

/// The indexed columns of an `audit_log` row, exactly as the store derives them from the
/// event at append time. Queries filter on these, so verification compares each one with
/// the event decoded from the (hashed) leaf: they are a cache of the leaf, never a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditIndex {
    /// `org_id`: the event's org.
    pub org: Option<String>,
    /// `time`: the event time in microseconds since the Unix epoch.
    pub time: i64,
    /// `actor`: `admin`, `system`, `anonymous` or `member:<id>`.
    pub actor: String,
    /// `action`: e.g. `record.create`.
    pub action: String,
    /// `target`: e.g. `record:<id>`.
    pub target: Option<String>,
    /// `outcome`: `success`, `denied` or `failed`.
    pub outcome: String,
}

impl AuditIndex {
    /// The columns the store writes for `event`.
    pub fn of(event: &custos_audit::AuditEvent) -> Self {
        use custos_audit::Outcome;
        let actor = event.actor.name();
        let outcome = match event.outcome {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        };
        AuditIndex {
            org: event.org.clone(),
            time: crate::model::to_micros(event.time),
            actor,
            action: event.action.as_str().to_string(),
            target: event.target.as_ref().map(ToString::to_string),
            outcome: outcome.to_string(),
        }
    }

    /// The SQL name of the first column (in table order) where `self` and `other` differ.
    /// Only the name: values may be personal (a member id) and must not reach messages.
    pub fn first_difference(&self, other: &AuditIndex) -> Option<&'static str> {
        [
            ("org_id", self.org == other.org),
            ("time", self.time == other.time),
            ("actor", self.actor == other.actor),
            ("action", self.action == other.action),
            ("target", self.target == other.target),
            ("outcome", self.outcome == other.outcome),
        ]
        .into_iter()
        .find_map(|(name, same)| (!same).then_some(name))
    }
}

impl crate::model::AuditFilter {
    /// Whether an event with these columns passes the filter: the same conditions the SQL
    /// applies to the stored columns, for re-checking against the decoded leaf.
    pub fn matches(&self, event: &AuditIndex) -> bool {
        let text = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == got)
        };
        text(&self.actor, Some(&event.actor))
            && text(&self.action, Some(&event.action))
            && text(&self.target, event.target.as_deref())
            && self
                .since
                .is_none_or(|t| event.time >= crate::model::to_micros(t))
            && self
                .until
                .is_none_or(|t| event.time < crate::model::to_micros(t))
    }
}

/// A signed tree head as stored: its size, the C2SP note text, and when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size the checkpoint signs.
    pub size: u64,
    /// The signed note (tlog-checkpoint body, blank line, signature lines).
    pub note: String,
    /// When it was created.
    pub time: jiff::Timestamp,
}

/// What a backend must read to know the hashes of some nodes.
#[derive(Debug, Default)]
pub(crate) struct Fetch {
    /// Nodes to read from `audit_nodes`.
    pub stored: Vec<NodeId>,
    /// Disjoint, sorted leaf index ranges `[start, end)` whose `leaf_hash` to read.
    pub leaf_ranges: Vec<(u64, u64)>,
}

/// Splits `ids` into stored-node reads and leaf-hash range reads.
pub(crate) fn fetch_plan(ids: &[NodeId]) -> Fetch {
    let mut stored = Vec::new();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for id in ids {
        if id.level >= STORED_MIN_LEVEL {
            stored.push(*id);
        } else {
            ranges.push((id.start(), id.end()));
        }
    }
    stored.sort();
    stored.dedup();
    ranges.sort();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    Fetch {
        stored,
        leaf_ranges: merged,
    }
}

/// Nodes resolved from one [`Fetch`]: a [`NodeStore`] that answers only what was fetched.
#[derive(Debug, Default)]
pub(crate) struct FetchedNodes {
    stored: HashMap<NodeId, Hash>,
    /// `(start, leaf hashes from start)`, sorted by start.
    leaves: Vec<(u64, Vec<Hash>)>,
}

impl FetchedNodes {
    /// Results of a fetch: the stored nodes found, and per leaf range the hashes read (dense
    /// from the range's start; a short read means the rest is missing).
    pub fn new(stored: Vec<(NodeId, Hash)>, leaves: Vec<(u64, Vec<Hash>)>) -> Self {
        let mut leaves = leaves;
        leaves.sort_by_key(|(s, _)| *s);
        FetchedNodes {
            stored: stored.into_iter().collect(),
            leaves,
        }
    }

    fn leaf_slice(&self, start: u64, end: u64) -> Option<&[Hash]> {
        let i = self.leaves.partition_point(|(s, _)| *s <= start);
        let (s, hs) = self.leaves.get(i.checked_sub(1)?)?;
        let from = usize::try_from(start - s).ok()?;
        let to = usize::try_from(end - s).ok()?;
        hs.get(from..to)
    }

    fn get(&self, id: &NodeId) -> Option<Hash> {
        if id.level >= STORED_MIN_LEVEL {
            return self.stored.get(id).copied();
        }
        let leaves = self.leaf_slice(id.start(), id.end())?;
        Some(complete_subtree_root(leaves))
    }
}

/// The hash of a complete subtree (power-of-two many leaf hashes), bottom-up in place.
fn complete_subtree_root(leaves: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = leaves.to_vec();
    while level.len() > 1 {
        let next: Vec<Hash> = level
            .chunks(2)
            .map(|p| match p {
                [l, r] => node_hash(l, r),
                [x] => *x, // unreachable for complete subtrees
                _ => unreachable!("chunks(2)"),
            })
            .collect();
        level = next;
    }
    level
        .first()
        .copied()
        .unwrap_or_else(custos_audit::empty_root)
}

/// Fetched nodes never fail; a node that was not fetched (or is missing) is `None`.
#[derive(Debug, thiserror::Error)]
#[error("unreachable")]
pub(crate) struct Never;

impl NodeStore for FetchedNodes {
    type Error = Never;

    fn get_nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, Never> {
        Ok(ids.iter().map(|id| self.get(id)).collect())
    }

    fn put_nodes(&mut self, _nodes: &[(NodeId, Hash)]) -> Result<(), Never> {
        Ok(())
    }
}

/// Maps a tree computation failure to a store error: a missing node is corruption.
pub(crate) fn tree_error(e: custos_audit::TreeError<Never>) -> StoreError {
    match e {
        custos_audit::TreeError::Range(r) => StoreError::Config(r.to_string()),
        other => StoreError::Corrupt(format!("audit tree: {other}")),
    }
}

/// The node ids whose hashes make up the append frontier at `size`.
pub(crate) fn frontier_ids(size: u64) -> Vec<NodeId> {
    subtree_nodes(0, size)
}

/// The frontier at `size` from fetched nodes.
pub(crate) fn frontier_from(fetched: &FetchedNodes, size: u64) -> Result<Frontier, StoreError> {
    custos_audit::frontier_at(fetched, size).map_err(tree_error)
}

/// Appends leaf hashes to `frontier`; returns the nodes to store (level >= [`STORED_MIN_LEVEL`]).
pub(crate) fn extend(
    frontier: &mut Frontier,
    leaf_hashes: &[Hash],
) -> Result<Vec<(NodeId, Hash)>, StoreError> {
    let mut out = Vec::with_capacity(leaf_hashes.len() / 8 + 8);
    for h in leaf_hashes {
        frontier
            .push_with(*h, |id, h| {
                if id.level >= STORED_MIN_LEVEL {
                    out.push((id, *h));
                }
            })
            .map_err(|e| StoreError::database("audit tree", e))?;
    }
    Ok(out)
}

/// Reads a 32-byte hash column.
pub(crate) fn hash_from(bytes: &[u8], what: &str) -> Result<Hash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is not 32 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_audit::{leaf_hash, MemoryNodeStore};

    /// The filter re-check agrees with the SQL: exact text, `since` inclusive and `until`
    /// exclusive at microsecond precision, and a filter on `target` never matches no target.
    #[test]
    fn filter_matches_columns_like_the_sql() {
        use crate::model::AuditFilter;
        use custos_audit::{Actor, AuditEvent};
        let t: jiff::Timestamp = "2026-01-02T03:04:05.000001Z".parse().unwrap();
        let event = AuditEvent::new(
            t,
            Actor::Member("m1".into()),
            custos_audit::AuditAction::RecordCreate,
        )
        .org("o1");
        let cols = AuditIndex::of(&event);
        let with = |f: AuditFilter| f.matches(&cols);
        assert!(with(AuditFilter::default()));
        assert!(with(AuditFilter {
            actor: Some("member:m1".into()),
            action: Some("record.create".into()),
            since: Some(t),
            until: Some(t + jiff::SignedDuration::from_micros(1)),
            ..AuditFilter::default()
        }));
        assert!(!with(AuditFilter {
            until: Some(t),
            ..AuditFilter::default()
        }));
        assert!(!with(AuditFilter {
            since: Some(t + jiff::SignedDuration::from_micros(1)),
            ..AuditFilter::default()
        }));
        assert!(!with(AuditFilter {
            target: Some("record:r1".into()),
            ..AuditFilter::default()
        }));
        assert!(!with(AuditFilter {
            actor: Some("member:m2".into()),
            ..AuditFilter::default()
        }));
    }

    /// The first differing column is named in table order; equal columns name none.
    #[test]
    fn first_difference_names_the_first_column_in_table_order() {
        use custos_audit::{Actor, AuditEvent, Outcome};
        let t: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let event = AuditEvent::new(t, Actor::System, custos_audit::AuditAction::KeyRotate)
            .target(custos_audit::Target::Key("k1".into()));
        let stored = AuditIndex::of(&event);
        assert_eq!(stored.first_difference(&stored.clone()), None);
        let moved = AuditIndex::of(&event.clone().org("o2").outcome(Outcome::Failed));
        assert_eq!(stored.first_difference(&moved), Some("org_id"));
        let failed = AuditIndex::of(&event.outcome(Outcome::Failed));
        assert_eq!(stored.first_difference(&failed), Some("outcome"));
    }

    /// Resolving through the tiered layout gives the same hashes as storing every node.
    #[test]
    fn tiered_nodes_match_full_store() {
        let n = 3 * 256 + 77;
        let leaves: Vec<Hash> = (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut full = MemoryNodeStore::new();
        let mut f = Frontier::new();
        full.put_nodes(&f.append_batch(leaves.iter().copied()).unwrap())
            .unwrap();
        let mut g = Frontier::new();
        let stored = extend(&mut g, &leaves).unwrap();
        assert!(stored.iter().all(|(id, _)| id.level >= STORED_MIN_LEVEL));
        assert_eq!(f, g);
        let ids: Vec<NodeId> = (0..STORED_MIN_LEVEL + 3)
            .flat_map(|l| (0..(n as u64 >> l)).map(move |i| NodeId::new(l, i)))
            .collect();
        let plan = fetch_plan(&ids);
        let fetched = FetchedNodes::new(
            stored
                .into_iter()
                .filter(|(id, _)| plan.stored.contains(id))
                .collect(),
            plan.leaf_ranges
                .iter()
                .map(|&(s, e)| (s, leaves[s as usize..e as usize].to_vec()))
                .collect(),
        );
        assert_eq!(
            fetched.get_nodes(&ids).unwrap(),
            full.get_nodes(&ids).unwrap()
        );
        for size in [0, 1, 255, 256, 257, 700, n as u64] {
            let fr = frontier_from(&fetched_for(&leaves, size), size).unwrap();
            assert_eq!(fr.root(), custos_audit::root_at(&full, size).unwrap());
        }
    }

    fn fetched_for(leaves: &[Hash], size: u64) -> FetchedNodes {
        let mut f = Frontier::new();
        let stored = extend(&mut f, &leaves[..size as usize]).unwrap();
        let plan = fetch_plan(&frontier_ids(size));
        FetchedNodes::new(
            stored,
            plan.leaf_ranges
                .iter()
                .map(|&(s, e)| (s, leaves[s as usize..e as usize].to_vec()))
                .collect(),
        )
    }
}
