//! Whole-log verification: recompute the tree from the stored leaves and check it against every
//! stored checkpoint, naming the first index that cannot be trusted.
//!
//! # What each stored audit row must carry
//!
//! | column | why |
//! | --- | --- |
//! | `index` (u64, unique, dense from 0) | gaps, duplicates and reordering are seen without any hashing |
//! | `leaf` (the exact canonical bytes) | the only input of the leaf hash; re-encoding a decoded event could differ |
//! | `leaf_hash` (32 bytes, written at append) | a row whose bytes were edited in place is named exactly, even between two checkpoints |
//!
//! Plus every signed checkpoint note ever issued (not only the latest): each one anchors a
//! prefix. Rows are fed in ascending `index` order (`ORDER BY index`).
//!
//! Anything else a store keeps beside the leaf (indexed columns to filter on) is not covered
//! by the tree: the store's verifier must compare it with the event decoded from the leaf
//! (Custos's `verify_audit_log` does, column by column).
//!
//! # How the first bad index is named
//!
//! Checks run in log order and the first failure wins, so everything below
//! [`TamperError::first_bad_index`] has passed every check that covers it:
//!
//! - an edited entry `k` whose stored `leaf_hash` was left alone: `k` ([`TamperKind::LeafHashMismatch`]);
//! - a deleted entry `k`: `k`, seen as the gap before the next stored index ([`TamperKind::MissingEntry`]);
//! - an inserted row reusing an index, or rows out of index order: that index;
//! - two swapped entries: the lower index (its stored hash no longer matches its bytes);
//! - anything that leaves the rows self-consistent (bytes and `leaf_hash` both rewritten, a
//!   truncation followed by new appends, renumbering): the signed checkpoints are then the only
//!   trustworthy evidence, and a root is one hash, so the tamper can only be placed between the
//!   last checkpoint that still verifies and the first that does not
//!   ([`TamperKind::CheckpointMismatch`]; `first_bad_index` is that last verified size). Signing
//!   a checkpoint at every append batch makes this as precise as the batch.
//! - a log shorter than a checkpoint: its length, the first index that was signed but is gone
//!   ([`TamperKind::Truncated`]).

use std::fmt;

use crate::checkpoint::Checkpoint;
use crate::merkle::{leaf_hash, Frontier, Hash};

/// One stored audit row, as read back for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry<B> {
    /// The row's stored index.
    pub index: u64,
    /// The exact bytes that were hashed as the leaf.
    pub leaf: B,
    /// The leaf hash stored beside the bytes at append time, if the store keeps one.
    pub leaf_hash: Option<Hash>,
}

/// A tree size and root to check against; usually from a verified [`Checkpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of leaves.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
}

impl From<&Checkpoint> for TreeHead {
    fn from(c: &Checkpoint) -> Self {
        TreeHead {
            size: c.size,
            root: c.root,
        }
    }
}

/// What kind of tampering was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperKind {
    /// The entry's bytes no longer hash to its stored leaf hash.
    LeafHashMismatch,
    /// The entry is absent: the next stored row has index `found`.
    MissingEntry {
        /// The index of the row that came instead.
        found: u64,
    },
    /// A second row has the same index as the one before it.
    DuplicateEntry,
    /// A row's index is lower than an index already seen.
    OutOfOrder {
        /// The index expected at this position.
        expected: u64,
    },
    /// The recomputed root at a signed size differs from the signed root: something in
    /// `[first_bad_index, checkpoint_size)` was changed.
    CheckpointMismatch {
        /// The size of the checkpoint that failed.
        checkpoint_size: u64,
    },
    /// The log has fewer entries than a checkpoint signed.
    Truncated {
        /// The size of the checkpoint that covers missing entries.
        checkpoint_size: u64,
    },
}

impl fmt::Display for TamperKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TamperKind::LeafHashMismatch => {
                f.write_str("entry does not match its stored leaf hash")
            }
            TamperKind::MissingEntry { found } => {
                write!(f, "entry missing (next stored index is {found})")
            }
            TamperKind::DuplicateEntry => f.write_str("index stored twice"),
            TamperKind::OutOfOrder { expected } => {
                write!(f, "index out of order (expected {expected})")
            }
            TamperKind::CheckpointMismatch { checkpoint_size } => write!(
                f,
                "recomputed root differs from the signed checkpoint at size {checkpoint_size}"
            ),
            TamperKind::Truncated { checkpoint_size } => write!(
                f,
                "log is shorter than the signed checkpoint at size {checkpoint_size}"
            ),
        }
    }
}

/// The log fails verification; entries below `first_bad_index` are intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("audit log tampered at index {first_bad_index}: {kind}")]
pub struct TamperError {
    /// The first index that cannot be trusted.
    pub first_bad_index: u64,
    /// What was found.
    pub kind: TamperKind,
}

/// The result of a clean verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of entries verified.
    pub size: u64,
    /// The recomputed root over all of them.
    pub root: Hash,
    /// How many checkpoints matched.
    pub checkpoints_verified: usize,
    /// The largest checkpointed size: entries at or after it are not yet covered by a signature.
    pub anchored_size: u64,
}

/// Streaming verifier: feed rows in index order with [`LogVerifier::push`], then
/// [`LogVerifier::finish`]. Holds O(log n) state, so any log size fits in memory.
#[derive(Debug, Clone)]
pub struct LogVerifier {
    frontier: Frontier,
    heads: Vec<TreeHead>,
    next_head: usize,
    verified_size: u64,
    failed: Option<TamperError>,
}

impl LogVerifier {
    /// A verifier that checks the given tree heads (in any order) as it passes their sizes.
    pub fn new(heads: impl IntoIterator<Item = TreeHead>) -> Self {
        let mut heads: Vec<TreeHead> = heads.into_iter().collect();
        heads.sort_by_key(|h| h.size);
        LogVerifier {
            frontier: Frontier::new(),
            heads,
            next_head: 0,
            verified_size: 0,
            failed: None,
        }
    }

    /// A verifier for parsed (already signature-checked) checkpoints.
    pub fn for_checkpoints(checkpoints: &[Checkpoint]) -> Self {
        Self::new(checkpoints.iter().map(TreeHead::from))
    }

    /// Number of entries accepted so far.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    fn fail(&mut self, first_bad_index: u64, kind: TamperKind) -> Result<(), TamperError> {
        let e = TamperError {
            first_bad_index,
            kind,
        };
        self.failed = Some(e);
        Err(e)
    }

    /// Checks every head whose size is the current size.
    fn check_heads(&mut self) -> Result<(), TamperError> {
        let size = self.frontier.size();
        while let Some(head) = self.heads.get(self.next_head) {
            if head.size != size {
                break;
            }
            if head.root != self.frontier.root() {
                return self.fail(
                    self.verified_size,
                    TamperKind::CheckpointMismatch {
                        checkpoint_size: size,
                    },
                );
            }
            self.verified_size = size;
            self.next_head += 1;
        }
        Ok(())
    }

    /// Feeds the next stored row; an error is final and repeats on later calls.
    pub fn push(
        &mut self,
        index: u64,
        leaf: &[u8],
        stored_leaf_hash: Option<&Hash>,
    ) -> Result<(), TamperError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        self.check_heads()?;
        let expected = self.frontier.size();
        if index != expected {
            let kind = if index > expected {
                TamperKind::MissingEntry { found: index }
            } else if index + 1 == expected {
                TamperKind::DuplicateEntry
            } else {
                TamperKind::OutOfOrder { expected }
            };
            return self.fail(expected.min(index), kind);
        }
        let h = leaf_hash(leaf);
        if stored_leaf_hash.is_some_and(|s| *s != h) {
            return self.fail(index, TamperKind::LeafHashMismatch);
        }
        if self.frontier.push(h).is_err() {
            // 2^64 entries cannot be stored; treat as an impossible index rather than panic.
            return self.fail(index, TamperKind::OutOfOrder { expected });
        }
        self.check_heads()
    }

    /// Ends the stream: any checkpoint larger than the log means entries were removed.
    pub fn finish(mut self) -> Result<VerifyReport, TamperError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        self.check_heads()?;
        if let Some(head) = self.heads.get(self.next_head) {
            let size = self.frontier.size();
            return Err(TamperError {
                first_bad_index: size,
                kind: TamperKind::Truncated {
                    checkpoint_size: head.size,
                },
            });
        }
        Ok(VerifyReport {
            size: self.frontier.size(),
            root: self.frontier.root(),
            checkpoints_verified: self.next_head,
            anchored_size: self.verified_size,
        })
    }
}

/// Verifies stored rows (in index order) against signature-checked checkpoints.
pub fn verify_log<I, B>(entries: I, checkpoints: &[Checkpoint]) -> Result<VerifyReport, TamperError>
where
    I: IntoIterator<Item = StoredEntry<B>>,
    B: AsRef<[u8]>,
{
    let mut v = LogVerifier::for_checkpoints(checkpoints);
    for e in entries {
        v.push(e.index, e.leaf.as_ref(), e.leaf_hash.as_ref())?;
    }
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u64) -> Vec<u8> {
        format!(r#"{{"action":"record.create","n":{i}}}"#).into_bytes()
    }

    fn rows(n: u64) -> Vec<StoredEntry<Vec<u8>>> {
        (0..n)
            .map(|i| StoredEntry {
                index: i,
                leaf: leaf(i),
                leaf_hash: Some(leaf_hash(&leaf(i))),
            })
            .collect()
    }

    /// Checkpoints every `every` entries over the untampered rows.
    fn checkpoints(n: u64, every: u64) -> Vec<Checkpoint> {
        let mut f = Frontier::new();
        let mut out = Vec::new();
        for i in 0..n {
            f.push(leaf_hash(&leaf(i))).unwrap();
            if (i + 1) % every == 0 || i + 1 == n {
                out.push(Checkpoint {
                    origin: "test".into(),
                    size: i + 1,
                    root: f.root(),
                    time: None,
                });
            }
        }
        out
    }

    fn bad(first_bad_index: u64, kind: TamperKind) -> Result<VerifyReport, TamperError> {
        Err(TamperError {
            first_bad_index,
            kind,
        })
    }

    #[test]
    fn clean_log_verifies() {
        let cps = checkpoints(100, 10);
        let r = verify_log(rows(100), &cps).unwrap();
        assert_eq!(r.size, 100);
        assert_eq!(r.checkpoints_verified, 10);
        assert_eq!(r.anchored_size, 100);
        // Rows appended after the last checkpoint verify but are not anchored.
        let r = verify_log(rows(105), &cps).unwrap();
        assert_eq!((r.size, r.anchored_size), (105, 100));
    }

    #[test]
    fn flipped_byte_names_its_index() {
        let mut rs = rows(100);
        rs[42].leaf[3] ^= 1;
        assert_eq!(
            verify_log(rs, &checkpoints(100, 10)),
            bad(42, TamperKind::LeafHashMismatch)
        );
    }

    #[test]
    fn flipped_byte_with_rewritten_hash_is_placed_after_last_good_checkpoint() {
        let mut rs = rows(100);
        rs[42].leaf[3] ^= 1;
        rs[42].leaf_hash = Some(leaf_hash(&rs[42].leaf));
        assert_eq!(
            verify_log(rs, &checkpoints(100, 10)),
            bad(
                40,
                TamperKind::CheckpointMismatch {
                    checkpoint_size: 50
                }
            )
        );
    }

    #[test]
    fn deleted_entry_names_its_index() {
        let mut rs = rows(100);
        rs.remove(17);
        assert_eq!(
            verify_log(rs, &checkpoints(100, 10)),
            bad(17, TamperKind::MissingEntry { found: 18 })
        );
    }

    #[test]
    fn swapped_entries_name_the_lower_index() {
        let mut rs = rows(100);
        let (a, b) = (rs[30].leaf.clone(), rs[61].leaf.clone());
        rs[30].leaf = b;
        rs[61].leaf = a;
        assert_eq!(
            verify_log(rs, &checkpoints(100, 10)),
            bad(30, TamperKind::LeafHashMismatch)
        );
    }

    #[test]
    fn inserted_and_reordered_rows() {
        let mut rs = rows(100);
        rs.insert(
            25,
            StoredEntry {
                index: 24,
                leaf: b"forged".to_vec(),
                leaf_hash: None,
            },
        );
        assert_eq!(
            verify_log(rs, &checkpoints(100, 10)),
            bad(24, TamperKind::DuplicateEntry)
        );
        let mut rs = rows(100);
        rs.swap(10, 20);
        assert_eq!(
            verify_log(rs, &checkpoints(100, 10)),
            bad(10, TamperKind::MissingEntry { found: 20 })
        );
    }

    #[test]
    fn truncation_and_reappend() {
        let cps = checkpoints(100, 10);
        // Truncated only.
        assert_eq!(
            verify_log(rows(73), &cps),
            bad(
                73,
                TamperKind::Truncated {
                    checkpoint_size: 80
                }
            )
        );
        // Truncated at 70 and re-appended with self-consistent rows.
        let mut rs = rows(70);
        for i in 70..100 {
            let l = format!("forged {i}").into_bytes();
            rs.push(StoredEntry {
                index: i,
                leaf_hash: Some(leaf_hash(&l)),
                leaf: l,
            });
        }
        assert_eq!(
            verify_log(rs, &cps),
            bad(
                70,
                TamperKind::CheckpointMismatch {
                    checkpoint_size: 80
                }
            )
        );
    }

    #[test]
    fn empty_log_and_empty_checkpoint() {
        let empty = Checkpoint {
            origin: "t".into(),
            size: 0,
            root: crate::merkle::empty_root(),
            time: None,
        };
        let r = verify_log(
            Vec::<StoredEntry<Vec<u8>>>::new(),
            std::slice::from_ref(&empty),
        )
        .unwrap();
        assert_eq!(r.checkpoints_verified, 1);
        let wrong = Checkpoint {
            root: [0; 32],
            ..empty
        };
        assert_eq!(
            verify_log(rows(3), &[wrong]),
            bad(0, TamperKind::CheckpointMismatch { checkpoint_size: 0 })
        );
    }
}
