//! [`AuditStore`]: the audit log: events appended (with a mutation, or alone), read back, and
//! the Merkle tree, proofs and checkpoints over them.

use custos_audit::AuditEvent;

use crate::*;

/// The audit log: events appended (with a mutation, or alone), read back, and the Merkle tree,
/// proofs and checkpoints over them.
#[async_trait::async_trait]
pub trait AuditStore {
    /// Appends events that accompany no other change (denied access, reads, key operations).
    async fn append_audit(&self, audit: &[AuditEvent]) -> Result<(), StoreError>;

    /// Stored audit entries with `index >= from`, in order, at most `limit`; only the org's own
    /// when a scope is given.
    async fn audit_entries(
        &self,
        scope: Option<&OrgScope>,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// Number of entries in the audit log.
    /// Audit entries matching `filter` with `index >= from`, in order, at most `limit`; only
    /// the org's own when a scope is given.
    async fn audit_query(
        &self,
        scope: Option<&OrgScope>,
        filter: &AuditFilter,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// Entries with `from <= index < end` whose action is one of `actions` and, unless
    /// `actors` is empty, whose actor is one of `actors`, in order, at most `limit`: one
    /// pass over a stretch of the log for many actions and actors at once (an incident's
    /// affected subjects).
    async fn audit_by_actions(
        &self,
        from: u64,
        end: u64,
        actions: &[String],
        actors: &[String],
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// How many entries the audit log holds (the index the next append gets).
    async fn audit_size(&self) -> Result<u64, StoreError>;

    /// Stored audit rows with their leaf hashes and indexed columns, `index >= from`, in
    /// order, at most `limit` (for whole-log verification and export).
    async fn audit_rows(&self, from: u64, limit: u32) -> Result<Vec<AuditRow>, StoreError>;

    /// The Merkle root of the first `size` entries, from the stored tree nodes.
    async fn audit_root(&self, size: u64) -> Result<custos_audit::Hash, StoreError>;

    /// The inclusion proof of entry `index` in the tree of the first `size` entries.
    async fn audit_inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<custos_audit::InclusionProof, StoreError>;

    /// The consistency proof from the tree of `old_size` entries to that of `new_size`.
    async fn audit_consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<custos_audit::ConsistencyProof, StoreError>;

    /// Stores a signed checkpoint unless one of the same size exists; returns the stored one
    /// (so concurrent creators agree on one note per size).
    async fn add_audit_checkpoint(
        &self,
        checkpoint: &StoredCheckpoint,
    ) -> Result<StoredCheckpoint, StoreError>;

    /// The stored checkpoint with the largest size.
    async fn latest_audit_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Stored checkpoints with size >= `from_size`, smallest first, at most `limit`.
    async fn audit_checkpoints(
        &self,
        from_size: u64,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError>;
}
