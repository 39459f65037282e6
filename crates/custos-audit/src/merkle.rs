//! The RFC 6962 / RFC 9162 Merkle tree: hashing, an O(log n) incremental frontier, and the
//! addressing of stored subtree hashes.
//!
//! # Storage model
//!
//! A tree of `n` leaves is cut into *complete* subtrees: the node at `(level, index)` covers
//! leaves `[index << level, (index + 1) << level)` and exists once all of them are appended.
//! Its hash never changes after that, so it can be written once to an insert-only table. Every
//! subtree the RFC 9162 algorithms need (a proof element, the root of any earlier size) is
//! either such a complete node or an *incomplete right edge* whose hash is folded from at most
//! `log2 n` complete nodes (the binary decomposition of its size). So a proof at size 10^8
//! needs at most ~2 × 27 node reads, made in one batch: see [`NodePlan`].
//!
//! Appending goes through a [`Frontier`], which keeps only the complete nodes of the binary
//! decomposition of the current size (at most 64 hashes) and reports every node that became
//! complete, for the caller to persist with the leaves in the same transaction.

use std::fmt;

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// The domain-separation prefix of a leaf hash (RFC 6962 §2.1), so a leaf can never be
/// mistaken for an interior node.
pub const LEAF_PREFIX: u8 = 0x00;

/// The domain-separation prefix of an interior node hash (RFC 6962 §2.1).
pub const NODE_PREFIX: u8 = 0x01;

/// `SHA-256(0x00 || bytes)`: the hash of one leaf, over the exact stored bytes.
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(bytes);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = NODE_PREFIX;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    Sha256::digest(buf).into()
}

/// The root of the empty tree, `SHA-256("")` (RFC 6962 §2.1).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The address of a complete subtree: `level` 0 is a leaf, level `l` covers `2^l` leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0 = leaf hash).
    pub level: u8,
    /// Position among the nodes of this level, counted from the left.
    pub index: u64,
}

impl NodeId {
    /// A node address; `level` must be below 64 for the covered range to be addressable.
    pub const fn new(level: u8, index: u64) -> Self {
        NodeId { level, index }
    }

    /// The leaf hash of entry `index`.
    pub const fn leaf(index: u64) -> Self {
        NodeId { level: 0, index }
    }

    /// The first leaf index this node covers (saturating, so a bogus id cannot panic).
    pub fn start(&self) -> u64 {
        checked_shl(self.index, self.level).unwrap_or(u64::MAX)
    }

    /// One past the last leaf index this node covers (saturating).
    pub fn end(&self) -> u64 {
        self.index
            .checked_add(1)
            .and_then(|i| checked_shl(i, self.level))
            .unwrap_or(u64::MAX)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node(level {}, index {})", self.level, self.index)
    }
}

fn checked_shl(v: u64, by: u8) -> Option<u64> {
    if by >= 64 {
        return if v == 0 { Some(0) } else { None };
    }
    let r = v << by;
    (r >> by == v).then_some(r)
}

/// The largest power of two strictly below `n`, the RFC 6962 split point (`n >= 2`).
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The complete nodes whose right fold is the hash of subtree `[start, end)`, left to right.
///
/// `[start, end)` must be a subtree in the RFC 6962 sense (as produced by splitting `[0, n)`
/// recursively at the largest power of two below the size): then the nodes are the binary
/// decomposition of its size, largest first. An empty range yields no nodes.
pub fn subtree_nodes(start: u64, end: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut pos = start;
    let mut remaining = end.saturating_sub(start);
    while remaining > 0 {
        let level = 63 - remaining.leading_zeros() as u8;
        // Alignment holds for RFC subtrees; for anything else this still terminates.
        out.push(NodeId::new(level, pos >> level));
        let width = 1u64 << level;
        pos += width;
        remaining -= width;
    }
    out
}

/// Folds the hashes of [`subtree_nodes`] (left to right) into the subtree's hash.
fn fold_right(hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc)))
}

/// Why a frontier could not be built or extended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrontierError {
    /// The number of hashes does not match the binary decomposition of the size.
    #[error("a frontier of size {size} needs {expected} hashes, got {got}")]
    WrongHashCount {
        /// The tree size given.
        size: u64,
        /// The number of complete nodes in its decomposition.
        expected: usize,
        /// The number of hashes given.
        got: usize,
    },
    /// The tree is at the largest addressable size.
    #[error("the tree is full")]
    Full,
}

/// The right frontier of a tree: the complete subtrees that make up its current size.
///
/// This is all the state appending needs: O(log n) hashes. Restore it at startup from the node
/// store with [`frontier_at`] (or [`Frontier::from_hashes`] over [`root_plan`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Hashes of `subtree_nodes(0, size)`, largest (leftmost) first.
    hashes: Vec<Hash>,
}

impl fmt::Debug for Frontier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frontier")
            .field("size", &self.size)
            .field("root", &hex::encode(self.root()))
            .finish()
    }
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Frontier::default()
    }

    /// A frontier from the hashes of [`subtree_nodes`]`(0, size)`, in that order.
    pub fn from_hashes(size: u64, hashes: Vec<Hash>) -> Result<Self, FrontierError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(FrontierError::WrongHashCount {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Frontier { size, hashes })
    }

    /// The number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier's nodes with their addresses, largest first.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, Hash)> + '_ {
        subtree_nodes(0, self.size)
            .into_iter()
            .zip(self.hashes.iter().copied())
    }

    /// The Merkle tree hash of all leaves appended so far.
    pub fn root(&self) -> Hash {
        fold_right(&self.hashes).unwrap_or_else(empty_root)
    }

    /// Appends one leaf hash; `on_new_node` sees every node that became complete (the leaf
    /// itself at level 0 first, then each parent up the carry chain).
    pub fn push_with(
        &mut self,
        leaf_hash: Hash,
        mut on_new_node: impl FnMut(NodeId, &Hash),
    ) -> Result<(), FrontierError> {
        let s = self.size;
        let new_size = s.checked_add(1).ok_or(FrontierError::Full)?;
        let mut h = leaf_hash;
        on_new_node(NodeId::leaf(s), &h);
        let mut level = 0u8;
        // Each set low bit of the old size is a complete sibling on the left: merge with it.
        while (s >> level) & 1 == 1 {
            let Some(left) = self.hashes.pop() else {
                break; // unreachable while the invariant holds; never panic
            };
            h = node_hash(&left, &h);
            level += 1;
            on_new_node(NodeId::new(level, s >> level), &h);
        }
        self.hashes.push(h);
        self.size = new_size;
        Ok(())
    }

    /// Appends one leaf hash, discarding the new nodes (for verification, which stores nothing).
    pub fn push(&mut self, leaf_hash: Hash) -> Result<(), FrontierError> {
        self.push_with(leaf_hash, |_, _| {})
    }

    /// Appends a batch of leaf hashes and returns every new complete node, to persist.
    ///
    /// A batch of `N` leaves yields fewer than `2N` nodes.
    pub fn append_batch(
        &mut self,
        leaf_hashes: impl IntoIterator<Item = Hash>,
    ) -> Result<Vec<(NodeId, Hash)>, FrontierError> {
        let iter = leaf_hashes.into_iter();
        let mut out = Vec::with_capacity(iter.size_hint().0 * 2);
        for h in iter {
            self.push_with(h, |id, h| out.push((id, *h)))?;
        }
        Ok(out)
    }
}

/// Persistence of complete subtree hashes, addressed by [`NodeId`].
///
/// Implementations are expected to be insert-only: a complete node never changes, so a `put`
/// that would change an existing hash is a sign of tampering or a bug and should fail. Both
/// methods are batched so a SQL implementation can use one statement per call. A SQL store may
/// serve level 0 from the audit rows' `leaf_hash` column and keep only levels >= 1 in its node
/// table (`n - 1` rows for `n` leaves instead of `2n - 1`).
pub trait NodeStore {
    /// What went wrong in the backing store.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The hashes of `ids`, in the same order; `None` where a node is not stored.
    fn get_nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, Self::Error>;

    /// Stores new complete nodes (as returned by [`Frontier::append_batch`]).
    fn put_nodes(&mut self, nodes: &[(NodeId, Hash)]) -> Result<(), Self::Error>;
}

/// Why a tree computation over a [`NodeStore`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError<E: std::error::Error + 'static> {
    /// The store itself failed.
    #[error("node store: {0}")]
    Store(#[source] E),
    /// The store lacks a node that a tree of the requested size must have.
    #[error("{0} is not in the node store")]
    MissingNode(NodeId),
    /// The store returned a different number of hashes than requested.
    #[error("node store returned {got} hashes for {expected} ids")]
    WrongCount {
        /// Number of ids requested.
        expected: usize,
        /// Number of results returned.
        got: usize,
    },
    /// The requested index or sizes are out of range.
    #[error(transparent)]
    Range(#[from] crate::proof::RangeError),
}

/// Which stored nodes a computation needs, and how to combine them: the sans-I/O half of proof
/// generation, so async stores can fetch [`NodePlan::node_ids`] in one query themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    ids: Vec<NodeId>,
    /// Per output hash: how many consecutive ids fold into it.
    parts: Vec<usize>,
}

impl NodePlan {
    /// A plan whose outputs are the hashes of the given RFC 6962 subtrees, in order.
    pub(crate) fn for_subtrees(ranges: &[(u64, u64)]) -> Self {
        let mut ids = Vec::new();
        let mut parts = Vec::with_capacity(ranges.len());
        for &(start, end) in ranges {
            let nodes = subtree_nodes(start, end);
            parts.push(nodes.len());
            ids.extend(nodes);
        }
        NodePlan { ids, parts }
    }

    /// The complete nodes to fetch, no duplicates.
    pub fn node_ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// Combines the fetched hashes (same order as [`NodePlan::node_ids`]) into the outputs.
    pub fn assemble<E: std::error::Error + 'static>(
        &self,
        fetched: &[Option<Hash>],
    ) -> Result<Vec<Hash>, TreeError<E>> {
        if fetched.len() != self.ids.len() {
            return Err(TreeError::WrongCount {
                expected: self.ids.len(),
                got: fetched.len(),
            });
        }
        let mut hashes = Vec::with_capacity(fetched.len());
        for (id, h) in self.ids.iter().zip(fetched) {
            hashes.push(h.ok_or(TreeError::MissingNode(*id))?);
        }
        let mut out = Vec::with_capacity(self.parts.len());
        let mut at = 0;
        for &n in &self.parts {
            out.push(fold_right(&hashes[at..at + n]).unwrap_or_else(empty_root));
            at += n;
        }
        Ok(out)
    }

    /// Fetches the plan's nodes from `store` in one batch and assembles the outputs.
    pub fn run<S: NodeStore + ?Sized>(&self, store: &S) -> Result<Vec<Hash>, TreeError<S::Error>> {
        if self.ids.is_empty() {
            return self.assemble(&[]);
        }
        let fetched = store.get_nodes(&self.ids).map_err(TreeError::Store)?;
        self.assemble(&fetched)
    }
}

/// The plan for the root of the tree of `size` leaves (one output).
pub fn root_plan(size: u64) -> NodePlan {
    NodePlan::for_subtrees(&[(0, size)])
}

/// The root hash of the tree's first `size` leaves, from at most `log2 size` stored nodes.
pub fn root_at<S: NodeStore + ?Sized>(store: &S, size: u64) -> Result<Hash, TreeError<S::Error>> {
    let out = root_plan(size).run(store)?;
    Ok(out.first().copied().unwrap_or_else(empty_root))
}

/// The frontier at `size`, to resume appending after a restart.
pub fn frontier_at<S: NodeStore + ?Sized>(
    store: &S,
    size: u64,
) -> Result<Frontier, TreeError<S::Error>> {
    let ids = subtree_nodes(0, size);
    let mut hashes = Vec::with_capacity(ids.len());
    if !ids.is_empty() {
        let fetched = store.get_nodes(&ids).map_err(TreeError::Store)?;
        if fetched.len() != ids.len() {
            return Err(TreeError::WrongCount {
                expected: ids.len(),
                got: fetched.len(),
            });
        }
        for (id, h) in ids.iter().zip(fetched) {
            hashes.push(h.ok_or(TreeError::MissingNode(*id))?);
        }
    }
    Ok(Frontier { size, hashes })
}

/// Why the in-memory store refused a write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryStoreError {
    /// A node already stored with a different hash: complete nodes never change.
    #[error("{0} is already stored with a different hash")]
    Conflict(NodeId),
    /// A node written before its left neighbour on the same level.
    #[error("{0} written out of order")]
    Gap(NodeId),
}

/// An in-memory [`NodeStore`] for tests and benchmarks: one dense vector per level.
///
/// It accepts nodes per level in index order, which is how a [`Frontier`] emits them.
#[derive(Debug, Clone, Default)]
pub struct MemoryNodeStore {
    levels: Vec<Vec<Hash>>,
}

impl MemoryNodeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of stored nodes over all levels.
    pub fn len(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces a stored hash, bypassing the insert-only rule: for tamper tests only.
    pub fn overwrite_for_test(&mut self, id: NodeId, hash: Hash) -> bool {
        match self
            .levels
            .get_mut(id.level as usize)
            .and_then(|l| usize::try_from(id.index).ok().and_then(|i| l.get_mut(i)))
        {
            Some(slot) => {
                *slot = hash;
                true
            }
            None => false,
        }
    }
}

impl NodeStore for MemoryNodeStore {
    type Error = MemoryStoreError;

    fn get_nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, Self::Error> {
        Ok(ids
            .iter()
            .map(|id| {
                let level = self.levels.get(id.level as usize)?;
                level.get(usize::try_from(id.index).ok()?).copied()
            })
            .collect())
    }

    fn put_nodes(&mut self, nodes: &[(NodeId, Hash)]) -> Result<(), Self::Error> {
        for (id, hash) in nodes {
            let lvl = id.level as usize;
            if self.levels.len() <= lvl {
                self.levels.resize_with(lvl + 1, Vec::new);
            }
            let level = &mut self.levels[lvl];
            let Ok(i) = usize::try_from(id.index) else {
                return Err(MemoryStoreError::Gap(*id));
            };
            match i.cmp(&level.len()) {
                std::cmp::Ordering::Less if level[i] == *hash => {}
                std::cmp::Ordering::Less => return Err(MemoryStoreError::Conflict(*id)),
                std::cmp::Ordering::Equal => level.push(*hash),
                std::cmp::Ordering::Greater => return Err(MemoryStoreError::Gap(*id)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 6962 §2.1 definition, recursively, as the reference for everything else here.
    pub(crate) fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn frontier_root_matches_definition_for_every_prefix() {
        let ls = leaves(70);
        let mut f = Frontier::new();
        assert_eq!(f.root(), empty_root());
        for (i, h) in ls.iter().enumerate() {
            f.push(*h).unwrap();
            assert_eq!(f.root(), mth(&ls[..=i]), "size {}", i + 1);
        }
    }

    #[test]
    fn stored_nodes_are_the_complete_subtrees() {
        let ls = leaves(37);
        let mut f = Frontier::new();
        let nodes = f.append_batch(ls.iter().copied()).unwrap();
        // 37 leaves: 37 + 18 + 9 + 4 + 2 + 1 complete nodes.
        assert_eq!(nodes.len(), 37 + 18 + 9 + 4 + 2 + 1);
        for (id, h) in &nodes {
            let (s, e) = (id.start() as usize, id.end() as usize);
            assert_eq!(*h, mth(&ls[s..e]), "{id}");
        }
        let mut store = MemoryNodeStore::new();
        store.put_nodes(&nodes).unwrap();
        for size in 0..=37u64 {
            assert_eq!(root_at(&store, size).unwrap(), mth(&ls[..size as usize]));
            let g = frontier_at(&store, size).unwrap();
            assert_eq!(g.root(), mth(&ls[..size as usize]));
        }
        // Resuming from a restored frontier yields the same nodes as never stopping.
        let mut g = frontier_at(&store, 20).unwrap();
        let tail = g.append_batch(ls[20..].iter().copied()).unwrap();
        store.put_nodes(&tail).unwrap();
        assert_eq!(g, f);
    }

    #[test]
    fn memory_store_is_insert_only() {
        let mut store = MemoryNodeStore::new();
        store.put_nodes(&[(NodeId::leaf(0), [1; 32])]).unwrap();
        store.put_nodes(&[(NodeId::leaf(0), [1; 32])]).unwrap();
        assert_eq!(
            store.put_nodes(&[(NodeId::leaf(0), [2; 32])]),
            Err(MemoryStoreError::Conflict(NodeId::leaf(0)))
        );
        assert_eq!(
            store.put_nodes(&[(NodeId::leaf(5), [2; 32])]),
            Err(MemoryStoreError::Gap(NodeId::leaf(5)))
        );
    }

    #[test]
    fn missing_nodes_are_reported_not_panicked() {
        let store = MemoryNodeStore::new();
        assert!(matches!(
            root_at(&store, 3),
            Err(TreeError::MissingNode(NodeId { level: 1, index: 0 }))
        ));
        assert_eq!(root_at(&store, 0).unwrap(), empty_root());
    }

    #[test]
    fn node_id_ranges_saturate() {
        assert_eq!(NodeId::new(3, 2).start(), 16);
        assert_eq!(NodeId::new(3, 2).end(), 24);
        assert_eq!(NodeId::new(63, 5).start(), u64::MAX);
        assert_eq!(NodeId::new(200, 1).end(), u64::MAX);
    }
}
