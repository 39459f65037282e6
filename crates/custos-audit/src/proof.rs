//! Inclusion and consistency proofs (RFC 9162 §2.1.3 and §2.1.4): generation over a
//! [`NodeStore`], and standalone verification that takes only hashes and sizes, so an auditor's
//! code can mirror it line by line.

use serde::{Deserialize, Serialize};

use crate::merkle::{empty_root, node_hash, split_point, Hash, NodePlan, NodeStore, TreeError};

/// Why proof generation was asked for something that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RangeError {
    /// The leaf index is not below the tree size.
    #[error("index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The old size exceeds the new size.
    #[error("old size {old_size} is larger than new size {new_size}")]
    SizesOutOfOrder {
        /// The earlier tree size.
        old_size: u64,
        /// The later tree size.
        new_size: u64,
    },
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The index or sizes are impossible (index past the end, old size past new size).
    #[error(transparent)]
    Range(#[from] RangeError),
    /// The proof has the wrong number of hashes for its index and sizes.
    #[error("proof has the wrong number of hashes")]
    WrongLength,
    /// The hashes do not lead to the expected root.
    #[error("proof does not lead to the expected root")]
    RootMismatch,
    /// A consistency proof does not reproduce the old root.
    #[error("consistency proof does not reproduce the old root")]
    OldRootMismatch,
    /// A consistency proof does not reproduce the new root.
    #[error("consistency proof does not reproduce the new root")]
    NewRootMismatch,
}

/// The subtrees `[start, end)` whose hashes form the inclusion proof of `index` in a tree of
/// `size` (RFC 9162 §2.1.3.1 `PATH`), in proof order (nearest the leaf first).
pub fn inclusion_subtrees(index: u64, size: u64) -> Result<Vec<(u64, u64)>, RangeError> {
    if index >= size {
        return Err(RangeError::IndexOutOfRange { index, size });
    }
    let (mut lo, mut hi, mut m) = (0u64, size, index);
    let mut out = Vec::new();
    // PATH(m, D[lo:hi]) = PATH(sub) : sibling, so siblings collected top-down are reversed.
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if m < k {
            out.push((lo + k, hi));
            hi = lo + k;
        } else {
            out.push((lo, lo + k));
            m -= k;
            lo += k;
        }
    }
    out.reverse();
    Ok(out)
}

/// The subtrees whose hashes form the consistency proof from `old_size` to `new_size`
/// (RFC 9162 §2.1.4.1 `PROOF` / `SUBPROOF`), in proof order. Empty when either size is 0 or
/// they are equal.
pub fn consistency_subtrees(old_size: u64, new_size: u64) -> Result<Vec<(u64, u64)>, RangeError> {
    if old_size > new_size {
        return Err(RangeError::SizesOutOfOrder { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    let (mut lo, mut hi, mut m, mut b) = (0u64, new_size, old_size, true);
    let mut out = Vec::new();
    loop {
        let n = hi - lo;
        if m == n {
            if !b {
                out.push((lo, hi));
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            out.push((lo + k, hi));
            hi = lo + k;
        } else {
            out.push((lo, lo + k));
            m -= k;
            lo += k;
            b = false;
        }
    }
    out.reverse();
    Ok(out)
}

/// The stored nodes needed for the inclusion proof of `index` at `size` (O(log size) nodes).
pub fn inclusion_plan(index: u64, size: u64) -> Result<NodePlan, RangeError> {
    Ok(NodePlan::for_subtrees(&inclusion_subtrees(index, size)?))
}

/// The stored nodes needed for the consistency proof from `old_size` to `new_size`.
pub fn consistency_plan(old_size: u64, new_size: u64) -> Result<NodePlan, RangeError> {
    Ok(NodePlan::for_subtrees(&consistency_subtrees(
        old_size, new_size,
    )?))
}

/// Proof that one leaf is in a tree of a given size; JSON `{"index","tree_size","leaf_hash","hashes"}`
/// with hashes in standard base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The leaf's index (0-based).
    pub index: u64,
    /// The size of the tree the proof is for.
    pub tree_size: u64,
    /// The leaf hash, `SHA-256(0x00 || leaf bytes)`.
    #[serde(with = "b64")]
    pub leaf_hash: Hash,
    /// The audit path, nearest the leaf first.
    #[serde(with = "b64_vec")]
    pub hashes: Vec<Hash>,
}

impl InclusionProof {
    /// Checks the proof against the root of a tree of `tree_size` leaves.
    pub fn verify(&self, root: &Hash) -> Result<(), VerifyError> {
        verify_inclusion(
            &self.leaf_hash,
            self.index,
            self.tree_size,
            &self.hashes,
            root,
        )
    }
}

/// Proof that a tree of `new_size` extends the tree of `old_size`; JSON
/// `{"old_size","new_size","hashes"}` with hashes in standard base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The earlier tree size.
    pub old_size: u64,
    /// The later tree size.
    pub new_size: u64,
    /// The proof hashes, in RFC 9162 order.
    #[serde(with = "b64_vec")]
    pub hashes: Vec<Hash>,
}

impl ConsistencyProof {
    /// Checks the proof against the two roots.
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> Result<(), VerifyError> {
        verify_consistency(
            self.old_size,
            self.new_size,
            old_root,
            new_root,
            &self.hashes,
        )
    }
}

/// Generates the inclusion proof of `index` at `tree_size` from stored nodes (one batch read).
pub fn inclusion_proof<S: NodeStore + ?Sized>(
    store: &S,
    index: u64,
    tree_size: u64,
) -> Result<InclusionProof, TreeError<S::Error>> {
    let mut plan_ranges = vec![(index, index.saturating_add(1))];
    plan_ranges.extend(inclusion_subtrees(index, tree_size)?);
    // The leaf hash rides along in the same batch as the path.
    let mut hashes = NodePlan::for_subtrees(&plan_ranges).run(store)?;
    let leaf_hash = hashes.remove(0);
    Ok(InclusionProof {
        index,
        tree_size,
        leaf_hash,
        hashes,
    })
}

/// Generates the consistency proof from `old_size` to `new_size` from stored nodes.
pub fn consistency_proof<S: NodeStore + ?Sized>(
    store: &S,
    old_size: u64,
    new_size: u64,
) -> Result<ConsistencyProof, TreeError<S::Error>> {
    let hashes = consistency_plan(old_size, new_size)?.run(store)?;
    Ok(ConsistencyProof {
        old_size,
        new_size,
        hashes,
    })
}

/// The root that an inclusion proof leads to (RFC 9162 §2.1.3.2, steps 1–5 without the final
/// comparison).
pub fn root_from_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
) -> Result<Hash, VerifyError> {
    if index >= tree_size {
        return Err(RangeError::IndexOutOfRange {
            index,
            size: tree_size,
        }
        .into());
    }
    let (mut fnode, mut snode) = (index, tree_size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            return Err(VerifyError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(VerifyError::WrongLength);
    }
    Ok(r)
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if root_from_inclusion(leaf_hash, index, tree_size, proof)? == *root {
        Ok(())
    } else {
        Err(VerifyError::RootMismatch)
    }
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2), with the edge cases made explicit: equal
/// sizes need an empty proof and equal roots; an old size of 0 needs an empty proof and the
/// empty-tree root.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if old_size > new_size {
        return Err(RangeError::SizesOutOfOrder { old_size, new_size }.into());
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(VerifyError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(VerifyError::RootMismatch)
        };
    }
    if old_size == 0 {
        if !proof.is_empty() {
            return Err(VerifyError::WrongLength);
        }
        return if *old_root == empty_root() {
            Ok(())
        } else {
            Err(VerifyError::OldRootMismatch)
        };
    }
    // Step 1.
    if proof.is_empty() {
        return Err(VerifyError::WrongLength);
    }
    // Step 2: a power-of-two old tree is itself a node of the new tree, so its root starts the
    // path.
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(old_root);
    }
    path.extend(proof.iter());
    // Steps 3–4.
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let mut fr = *path[0];
    let mut sr = *path[0];
    // Step 6.
    for c in &path[1..] {
        if snode == 0 {
            return Err(VerifyError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(VerifyError::WrongLength);
    }
    if fr != *old_root {
        return Err(VerifyError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(VerifyError::NewRootMismatch);
    }
    Ok(())
}

/// Serde for one hash as standard base64.
pub(crate) mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::merkle::Hash;

    pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = String::deserialize(d)?;
        decode(&s).map_err(serde::de::Error::custom)
    }

    /// Decodes a standard-base64 SHA-256 hash, refusing any other length.
    pub fn decode(s: &str) -> Result<Hash, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| format!("invalid base64 hash: {e}"))?;
        bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("hash must be 32 bytes, got {}", b.len()))
    }
}

/// Serde for a list of hashes as standard base64 strings.
pub(crate) mod b64_vec {
    use base64::Engine as _;
    use serde::{ser::SerializeSeq, Deserialize, Deserializer, Serializer};

    use crate::merkle::Hash;

    pub fn serialize<S: Serializer>(hs: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(hs.len()))?;
        for h in hs {
            seq.serialize_element(&base64::engine::general_purpose::STANDARD.encode(h))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter()
            .map(|s| super::b64::decode(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, Frontier, MemoryNodeStore};

    fn build(n: u64) -> (MemoryNodeStore, Vec<Hash>) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut f = Frontier::new();
        let mut store = MemoryNodeStore::new();
        store
            .put_nodes(&f.append_batch(leaves.iter().copied()).unwrap())
            .unwrap();
        (store, leaves)
    }

    #[test]
    fn every_inclusion_and_consistency_proof_verifies_up_to_40() {
        let (store, leaves) = build(40);
        for size in 1..=40u64 {
            let root = crate::merkle::root_at(&store, size).unwrap();
            for index in 0..size {
                let p = inclusion_proof(&store, index, size).unwrap();
                assert_eq!(p.leaf_hash, leaves[index as usize]);
                p.verify(&root).unwrap();
            }
            for old in 0..=size {
                let old_root = crate::merkle::root_at(&store, old).unwrap();
                let p = consistency_proof(&store, old, size).unwrap();
                p.verify(&old_root, &root).unwrap();
            }
        }
    }

    #[test]
    fn json_form_round_trips_and_rejects_bad_hashes() {
        let (store, _) = build(5);
        let p = inclusion_proof(&store, 2, 5).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.starts_with(r#"{"index":2,"tree_size":5,"leaf_hash":""#));
        assert_eq!(serde_json::from_str::<InclusionProof>(&json).unwrap(), p);
        let short = r#"{"index":0,"tree_size":1,"leaf_hash":"AAAA","hashes":[]}"#;
        assert!(serde_json::from_str::<InclusionProof>(short).is_err());
        let c = consistency_proof(&store, 3, 5).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.starts_with(r#"{"old_size":3,"new_size":5,"hashes":[""#));
        assert_eq!(serde_json::from_str::<ConsistencyProof>(&json).unwrap(), c);
    }

    #[test]
    fn impossible_requests_are_errors() {
        let (store, _) = build(4);
        assert!(matches!(
            inclusion_proof(&store, 4, 4),
            Err(TreeError::Range(RangeError::IndexOutOfRange { .. }))
        ));
        assert!(matches!(
            consistency_proof(&store, 5, 4),
            Err(TreeError::Range(RangeError::SizesOutOfOrder { .. }))
        ));
        // Past the stored tree: missing nodes, not a panic.
        assert!(matches!(
            inclusion_proof(&store, 0, 9),
            Err(TreeError::MissingNode(_))
        ));
        assert!(root_from_inclusion(&[0; 32], u64::MAX, u64::MAX, &[]).is_err());
        assert!(
            verify_consistency(u64::MAX - 1, u64::MAX, &[0; 32], &[0; 32], &[[0; 32]]).is_err()
        );
    }
}
