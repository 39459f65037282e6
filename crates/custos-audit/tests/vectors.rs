//! Known-answer tests against the classic Certificate Transparency vectors, and property tests
//! that proofs verify when honest and fail when any part is altered.
//!
//! The expected values were computed independently of this crate, with a 20-line Python script
//! over `hashlib.sha256` implementing the recursive RFC 6962 §2.1 definitions of MTH, PATH and
//! SUBPROOF; they agree with the values in certificate-transparency's merkle_tree_test.

use custos_audit::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, root_at, verify_consistency,
    verify_inclusion, Frontier, Hash, MemoryNodeStore, NodeStore, VerifyError,
};
use proptest::prelude::*;

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// MTH of the first `i` leaves, for `i` in 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn h(hex_str: &str) -> Hash {
    hex::decode(hex_str).unwrap().try_into().unwrap()
}

fn vector_store() -> MemoryNodeStore {
    let mut f = Frontier::new();
    let mut store = MemoryNodeStore::new();
    let leaves = LEAVES.iter().map(|l| leaf_hash(&hex::decode(l).unwrap()));
    store.put_nodes(&f.append_batch(leaves).unwrap()).unwrap();
    store
}

#[test]
fn roots_of_every_prefix_match_ct_vectors() {
    assert_eq!(empty_root(), h(ROOTS[0]));
    let mut f = Frontier::new();
    for (i, leaf) in LEAVES.iter().enumerate() {
        f.push(leaf_hash(&hex::decode(leaf).unwrap())).unwrap();
        assert_eq!(f.root(), h(ROOTS[i + 1]), "frontier root at size {}", i + 1);
    }
    let store = vector_store();
    for (size, root) in ROOTS.iter().enumerate() {
        assert_eq!(
            root_at(&store, size as u64).unwrap(),
            h(root),
            "stored root at {size}"
        );
    }
}

#[test]
fn inclusion_proofs_match_ct_vectors() {
    let store = vector_store();
    let cases: [(u64, u64, &[&str]); 4] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (index, size, want) in cases {
        let p = inclusion_proof(&store, index, size).unwrap();
        let want: Vec<Hash> = want.iter().map(|x| h(x)).collect();
        assert_eq!(p.hashes, want, "path({index}, {size})");
        p.verify(&h(ROOTS[size as usize])).unwrap();
    }
}

#[test]
fn consistency_proofs_match_ct_vectors() {
    let store = vector_store();
    let cases: [(u64, u64, &[&str]); 3] = [
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (old, new, want) in cases {
        let p = consistency_proof(&store, old, new).unwrap();
        let want: Vec<Hash> = want.iter().map(|x| h(x)).collect();
        assert_eq!(p.hashes, want, "proof({old}, {new})");
        p.verify(&h(ROOTS[old as usize]), &h(ROOTS[new as usize]))
            .unwrap();
    }
}

/// A tree of `n` leaves built once per case; leaves are hashes of their index.
fn tree(n: u64) -> MemoryNodeStore {
    let mut f = Frontier::new();
    let mut store = MemoryNodeStore::new();
    let nodes = f
        .append_batch((0..n).map(|i| leaf_hash(&i.to_be_bytes())))
        .unwrap();
    store.put_nodes(&nodes).unwrap();
    store
}

fn flip(mut x: Hash, bit: usize) -> Hash {
    x[(bit / 8) % 32] ^= 1 << (bit % 8);
    x
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn inclusion_verifies_and_rejects_any_alteration(
        size in 1u64..600,
        index_seed in any::<u64>(),
        bit in 0usize..256,
        pick in any::<prop::sample::Index>(),
        delta in 1u64..5,
    ) {
        let store = tree(size + 8);
        let index = index_seed % size;
        let root = root_at(&store, size).unwrap();
        let p = inclusion_proof(&store, index, size).unwrap();
        prop_assert!(verify_inclusion(&p.leaf_hash, index, size, &p.hashes, &root).is_ok());

        // Altered leaf hash or root.
        prop_assert!(verify_inclusion(&flip(p.leaf_hash, bit), index, size, &p.hashes, &root).is_err());
        prop_assert!(verify_inclusion(&p.leaf_hash, index, size, &p.hashes, &flip(root, bit)).is_err());
        // Altered proof hash.
        if !p.hashes.is_empty() {
            let mut hs = p.hashes.clone();
            let k = pick.index(hs.len());
            hs[k] = flip(hs[k], bit);
            prop_assert!(verify_inclusion(&p.leaf_hash, index, size, &hs, &root).is_err());
            // Dropped hash.
            let mut hs = p.hashes.clone();
            hs.remove(k);
            prop_assert!(verify_inclusion(&p.leaf_hash, index, size, &hs, &root).is_err());
        }
        // Extra hash.
        let mut hs = p.hashes.clone();
        hs.push(root);
        prop_assert!(verify_inclusion(&p.leaf_hash, index, size, &hs, &root).is_err());
        // Altered index.
        let other_index = (index + delta) % size;
        if other_index != index {
            prop_assert!(verify_inclusion(&p.leaf_hash, other_index, size, &p.hashes, &root).is_err());
        }
        // Altered size: a tree head binds size and root together, so the proof must fail
        // against the real root of any other size.
        for other in [size + delta, size.saturating_sub(delta)] {
            if other != size && index < other {
                let other_root = root_at(&store, other).unwrap();
                prop_assert!(verify_inclusion(&p.leaf_hash, index, other, &p.hashes, &other_root).is_err());
            }
        }
    }

    #[test]
    fn consistency_verifies_and_rejects_any_alteration(
        new_size in 1u64..600,
        old_seed in any::<u64>(),
        bit in 0usize..256,
        pick in any::<prop::sample::Index>(),
        delta in 1u64..5,
    ) {
        let store = tree(new_size + 8);
        let old_size = old_seed % (new_size + 1);
        let old_root = root_at(&store, old_size).unwrap();
        let new_root = root_at(&store, new_size).unwrap();
        let p = consistency_proof(&store, old_size, new_size).unwrap();
        prop_assert!(verify_consistency(old_size, new_size, &old_root, &new_root, &p.hashes).is_ok());

        // Altered roots. Every tree extends the empty tree, so from size 0 any new root is fine.
        if old_size > 0 {
            prop_assert!(verify_consistency(old_size, new_size, &old_root, &flip(new_root, bit), &p.hashes).is_err());
        }
        prop_assert!(verify_consistency(old_size, new_size, &flip(old_root, bit), &new_root, &p.hashes).is_err());
        if !p.hashes.is_empty() {
            let mut hs = p.hashes.clone();
            let k = pick.index(hs.len());
            hs[k] = flip(hs[k], bit);
            prop_assert!(verify_consistency(old_size, new_size, &old_root, &new_root, &hs).is_err());
            let mut hs = p.hashes.clone();
            hs.remove(k);
            prop_assert!(verify_consistency(old_size, new_size, &old_root, &new_root, &hs).is_err());
        }
        let mut hs = p.hashes.clone();
        hs.push(new_root);
        prop_assert!(verify_consistency(old_size, new_size, &old_root, &new_root, &hs).is_err());
        // Altered sizes: a tree head binds size and root together, so the proof must fail
        // against the real roots of any other sizes (unless their proof is the same list).
        for (o, n) in [
            (old_size + delta, new_size),
            (old_size, new_size + delta),
            (old_size.saturating_sub(delta), new_size),
        ] {
            if (o, n) == (old_size, new_size) || o > n {
                continue;
            }
            let same = consistency_proof(&store, o, n).unwrap().hashes == p.hashes;
            let (ro, rn) = (root_at(&store, o).unwrap(), root_at(&store, n).unwrap());
            let r = verify_consistency(o, n, &ro, &rn, &p.hashes);
            prop_assert!(same || r.is_err(), "({o},{n}) accepted a proof for ({old_size},{new_size})");
        }
    }
}

#[test]
fn verification_never_panics_on_extreme_inputs() {
    let z = [0u8; 32];
    for (i, n) in [
        (0, 0),
        (u64::MAX, u64::MAX),
        (u64::MAX - 1, u64::MAX),
        (0, u64::MAX),
    ] {
        let _ = verify_inclusion(&z, i, n, &[z; 70], &z);
        let _ = verify_inclusion(&z, i, n, &[], &z);
    }
    for (o, n) in [
        (0, 0),
        (u64::MAX, u64::MAX),
        (1, u64::MAX),
        (u64::MAX, 1),
        (u64::MAX - 1, u64::MAX),
    ] {
        let _ = verify_consistency(o, n, &z, &z, &[z; 130]);
        let _ = verify_consistency(o, n, &z, &z, &[]);
    }
    assert_eq!(
        verify_inclusion(&z, 5, 3, &[], &z),
        Err(VerifyError::Range(
            custos_audit::RangeError::IndexOutOfRange { index: 5, size: 3 }
        ))
    );
}
