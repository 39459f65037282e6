//! Custos's audit log: what an audit event is, the exact bytes that represent it, and the
//! RFC 6962 Merkle tree, signed checkpoints and proofs built over those bytes.
//!
//! This crate does no I/O. Storage of events and tree nodes lives in `custos-store`; this crate
//! defines what is stored and how it is hashed, so an auditor's own tool can recompute every
//! hash. An event never carries record content, PII values or key material: its fields are
//! identifiers and outcomes only.
//!
//! - [`event`]: the event and its canonical encoding (the leaf bytes), with its typed
//!   [`target`] and per-action [`details`].
//! - [`merkle`]: leaf and node hashing, the O(log n) append [`Frontier`], the [`NodeStore`]
//!   trait for persisted complete subtrees, and [`NodePlan`]s that say which nodes a root or a
//!   proof needs (for async stores that fetch themselves).
//! - [`proof`]: inclusion and consistency proofs, generation and standalone verification.
//! - [`note`] and [`checkpoint`]: C2SP signed notes and tlog-checkpoints, Ed25519.
//! - [`verify`]: recompute the whole log and check it against every checkpoint, naming the
//!   first bad index; its module doc lists what each stored audit row must carry.
//!
//! It is not a key store: signing goes through [`NoteSigner`], implemented where keys live.
//!
//! ```
//! use custos_audit::*;
//!
//! // Append: one transaction stores the rows (index, leaf, leaf_hash) and the new nodes.
//! let mut store = MemoryNodeStore::new();
//! let mut frontier = Frontier::new(); // after a restart: frontier_at(&store, size)
//! let leaves: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i]).collect();
//! let nodes = frontier.append_batch(leaves.iter().map(|l| leaf_hash(l))).unwrap();
//! store.put_nodes(&nodes).unwrap();
//! let head = Checkpoint { origin: "example/log".into(), size: frontier.size(),
//!                         root: frontier.root(), time: None };
//!
//! // Serve and check a proof: O(log n) node reads in one batch.
//! let proof = inclusion_proof(&store, 3, head.size).unwrap();
//! proof.verify(&head.root).unwrap();
//!
//! // Audit the whole log against every checkpoint.
//! let rows = leaves.iter().enumerate().map(|(i, l)| StoredEntry {
//!     index: i as u64, leaf: l, leaf_hash: Some(leaf_hash(l)) });
//! assert_eq!(verify_log(rows, &[head]).unwrap().size, 5);
//! ```

#![warn(missing_docs)]

pub mod action;
pub mod checkpoint;
pub mod details;
pub mod event;
pub mod glimpse;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod target;
pub mod verify;

pub use action::AuditAction;
pub use checkpoint::{Checkpoint, CheckpointError};
pub use details::{allowed_fields, Details, GRANT_FIELD};
pub use event::{Actor, AuditEvent, DecodeError, Outcome, EVENT_ENCODING_VERSION};
pub use glimpse::{glimpse, Glimpse};
pub use merkle::{
    empty_root, frontier_at, leaf_hash, node_hash, root_at, root_plan, Frontier, FrontierError,
    Hash, MemoryNodeStore, MemoryStoreError, NodeId, NodePlan, NodeStore, TreeError,
};
#[cfg(feature = "ed25519-signer")]
pub use note::Ed25519NoteSigner;
pub use note::{sign_note, verifier_key, verify_note, NoteError, NoteSigner, VerifierKey};
pub use proof::{
    consistency_plan, consistency_proof, inclusion_plan, inclusion_proof, verify_consistency,
    verify_inclusion, ConsistencyProof, InclusionProof, RangeError, VerifyError,
};
pub use target::{Target, TargetError};
pub use verify::{
    verify_log, LogVerifier, StoredEntry, TamperError, TamperKind, TreeHead, VerifyReport,
};
