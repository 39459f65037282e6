//! Custos persistence.
//!
//! What it is for: one [`Store`] trait with two implementations that pass the same test suite —
//! [`SqliteStore`] (the embedded default: WAL, migrations embedded in the binary) and
//! [`PgStore`] (the scale-out backend) — plus [`RegionalStore`], which routes each org to the
//! stores of its home region (residency), and [`Objects`], the blob store over the
//! `object_store` crate (local filesystem by default).
//!
//! Two rules are enforced here rather than left to callers:
//! - Tenant isolation: every record, member, hold and override operation takes an
//!   [`OrgScope`], which only this crate can construct (from an org that exists), and every
//!   query binds its org id. There is no method that reads records without one.
//! - Audit in the same transaction: every mutating method takes the audit events that describe
//!   it and appends them to the audit log in the same database transaction. If the append
//!   fails, the change is rolled back.
//!
//! What it is not: a place that sees plaintext. Content arrives sealed by `custos-crypto`;
//! subjects arrive as keyed references. Keys live in the key store, never here.

mod audit_pg;
mod audit_sqlite;
mod audit_tree;
mod members;
mod members_pg;
mod members_sqlite;
pub mod migrations;
mod model;
mod objects;
mod org_rows;
mod org_rows_pg;
mod pg;
mod regional;
mod requests;
mod requests_pg;
mod requests_sqlite;
mod schema;
mod sqlite;
mod stream;
mod tokens;
mod tokens_pg;
mod tokens_sqlite;

pub use audit_tree::{AuditIndex, AuditRow, StoredCheckpoint, STORED_MIN_LEVEL};
pub use members::{EnrollmentCode, MemberStore, Session, TotpFactor};
pub use model::*;
pub use objects::{
    ObjectLocation, ObjectWriter, Objects, S3Options, ARCHIVE_STORAGE_CLASS_ENV,
    DEFAULT_ARCHIVE_STORAGE_CLASS,
};
pub use org_rows::{Cell, OrgRows, TableRows};
pub use pg::PgStore;
pub use regional::{RegionStores, RegionalStore, HOME_RECHECK};
pub use requests::{
    ErasureAggregate, RecordRewrite, RequestCursor, RequestFilter, RequestKind, RequestStatus,
    RequestStore, StoredCertificate, SubjectRecordCount, SubjectRequest,
};
pub use sqlite::SqliteStore;
pub use stream::{record_stream, RecordChunks, RecordSender};
pub use tokens::{PiiToken, TokenBatch, TokenResolution};

use custos_audit::AuditEvent;

/// Persistence of orgs, members, records, holds, overrides and the audit event stream.
#[async_trait::async_trait]
pub trait Store: MemberStore + RequestStore + Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`, for `/healthz` and logs.
    fn backend(&self) -> &'static str;

    /// Creates an org.
    async fn create_org(&self, org: &Org, audit: &[AuditEvent]) -> Result<OrgScope, StoreError>;
    /// Looks an org up; the returned scope is the only way to act inside it.
    async fn org(&self, id: &str) -> Result<Option<(OrgScope, Org)>, StoreError>;
    /// All orgs, oldest first.
    async fn orgs(&self) -> Result<Vec<Org>, StoreError>;

    /// Adds a member with the hash of its API key.
    async fn add_member(
        &self,
        scope: &OrgScope,
        member: &Member,
        key_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;
    /// Finds the member owning an API key hash, with its org's scope.
    async fn member_by_key_hash(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<(OrgScope, Member)>, StoreError>;

    /// Inserts records (all or none), with their audit events.
    async fn insert_records(
        &self,
        scope: &OrgScope,
        records: &[RecordRow],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;
    /// Inserts the records of `chunks` (all or none), with their audit events, in one
    /// transaction that commits only once every expected record has arrived; if the sender
    /// is dropped early, nothing is stored and the error is [`StoreError::Aborted`]. The
    /// default collects the chunks and calls [`Store::insert_records`]; a store whose writer
    /// can take rows while the caller prepares the next chunk overrides it.
    async fn insert_record_stream(
        &self,
        scope: &OrgScope,
        chunks: RecordChunks,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let rows = chunks.collect().await?;
        self.insert_records(scope, &rows, audit).await
    }
    /// One record of the org, in any state.
    async fn record(&self, scope: &OrgScope, id: &str) -> Result<Option<RecordRow>, StoreError>;
    /// Records of the org matching `filter`, ordered by id, after the cursor id.
    async fn list_records(
        &self,
        scope: &OrgScope,
        filter: &RecordFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RecordRow>, StoreError>;
    /// Moves a record from `from` to `to` state (compare-and-set), setting `deleted_at` and
    /// `next_due_at`. Returns false (and appends nothing) if it was not in `from`.
    async fn transition_record(
        &self,
        scope: &OrgScope,
        change: &StateChange,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;

    /// Claims up to `limit` records of any org whose `next_due_at <= now` and that no other
    /// sweeper holds, leasing them until `lease_until`, earliest due first. A crashed
    /// sweeper's lease simply runs out; the work is then claimed again. Claimed rows come
    /// without their sealed content (`sealed` is `None`): purges never need it, and an
    /// archive reads the record itself.
    async fn claim_due(
        &self,
        now: jiff::Timestamp,
        lease_until: jiff::Timestamp,
        limit: u32,
    ) -> Result<Vec<DueRecord>, StoreError>;
    /// Records of any org with `next_due_at <= as_of`, in due order after `after`, without
    /// claiming anything (dry runs and forecasts).
    async fn peek_due(
        &self,
        as_of: jiff::Timestamp,
        after: Option<&DueCursor>,
        limit: u32,
    ) -> Result<Vec<DueRecord>, StoreError>;
    /// Marks records for purge (the state `cause` names, due at `at`), each only if still in
    /// the given state; returns how many were marked.
    async fn request_purges(
        &self,
        scope: &OrgScope,
        targets: &[(String, RecordState)],
        cause: PurgeCause,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError>;
    /// Leases one record until `until` without changing it: a held record is looked at again
    /// then instead of on every pass.
    async fn defer_record(
        &self,
        scope: &OrgScope,
        id: &str,
        until: jiff::Timestamp,
    ) -> Result<(), StoreError>;
    /// Moves a record in state `from` to the archive tier (compare-and-set): state
    /// `archived`, its sealed content dropped from the hot store (the caller has copied it to
    /// the archive location first), next due at `next_due_at`, lease released. False (and
    /// nothing appended) if it was not in `from`.
    async fn archive_record(
        &self,
        scope: &OrgScope,
        id: &str,
        from: RecordState,
        next_due_at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// Purges records of one org in one transaction, all or nothing: if every row is still
    /// in its `from` state, all are deleted, each leaves its deletion-log entry pointing at
    /// `event` (one audit event for the batch), and the event is appended; returns `None`.
    /// If any changed meanwhile, nothing is done and the ids still purgeable are returned, so
    /// the caller can describe and retry exactly those.
    async fn purge_records(
        &self,
        scope: &OrgScope,
        purges: &[Purge],
        event: &AuditEvent,
    ) -> Result<Option<Vec<String>>, StoreError>;
    /// Starts an org's termination, once (false if it was already started): marks the org
    /// terminating, removes its members (their API keys stop working at once) and makes every
    /// record of the org due at `at`, so sweepers purge it through their normal claims.
    async fn request_termination(
        &self,
        scope: &OrgScope,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// Completes a termination whose records are all purged: drops what is left of the org
    /// (tokens, overrides, holds, queued recomputations) and marks it terminated; the org row
    /// and the audit trail stay. If a record is still there, it is made due again and false
    /// is returned (nothing else changes).
    async fn finish_termination(
        &self,
        scope: &OrgScope,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// Makes an archived record readable until `until` (an authorized restore request).
    /// False (nothing appended) if the record is not archived.
    async fn open_archive_window(
        &self,
        scope: &OrgScope,
        id: &str,
        until: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// Until when an archived record is readable after a restore request, if one was made.
    async fn archive_window(
        &self,
        scope: &OrgScope,
        id: &str,
    ) -> Result<Option<jiff::Timestamp>, StoreError>;
    /// Makes what purges deleted unrecoverable from the database's own files (SQLite: its
    /// pages are zeroed by `secure_delete`, and this checkpoints and truncates the WAL, which
    /// still holds older images of them). Called after a sweep that purged something.
    async fn forget_deleted(&self) -> Result<(), StoreError>;
    /// The org's deletion log, ordered by record id, after the cursor id.
    async fn deletion_log(
        &self,
        scope: &OrgScope,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeletionEntry>, StoreError>;

    /// Categories whose due times must be recomputed (their override changed), with progress.
    async fn pending_recomputes(&self) -> Result<Vec<PendingRecompute>, StoreError>;
    /// Applies one page of recomputed due times (each by compare-and-set on its state) and
    /// records progress: `next_after` is the last id done, `None` when the category is
    /// finished (the pending entry is removed and `audit` appended).
    async fn apply_recompute(
        &self,
        scope: &OrgScope,
        category: &str,
        updates: &[DueUpdate],
        next_after: Option<&str>,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// Sets (or replaces) the org's retention override for a category, and queues the
    /// recomputation of that category's existing records' due times.
    async fn set_retention_override(
        &self,
        scope: &OrgScope,
        category: &str,
        retention: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;
    /// The org's retention overrides, by category.
    async fn retention_overrides(
        &self,
        scope: &OrgScope,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Places a legal hold.
    async fn create_hold(
        &self,
        scope: &OrgScope,
        hold: &Hold,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;
    /// Releases a hold; false if there was no active hold with that id.
    async fn release_hold(
        &self,
        scope: &OrgScope,
        id: &str,
        released_at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// The org's active holds.
    async fn holds(&self, scope: &OrgScope) -> Result<Vec<Hold>, StoreError>;

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

    /// Inserts records together with the org-wide PII tokens they mint, and their audit
    /// events, in one transaction: all or none. Compare-and-set on the org's tokens: false
    /// (and nothing written or appended) when a value or pseudonym of `tokens.minted` was
    /// minted meanwhile or a token of `tokens.existing` is gone; the caller resolves again.
    async fn insert_records_with_tokens(
        &self,
        scope: &OrgScope,
        records: &[RecordRow],
        tokens: &TokenBatch,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
    /// The org's tokens for `lookups` and the highest number issued so far for each of
    /// `entities`: what minting a batch's new tokens needs, in one call.
    async fn resolve_pii_tokens(
        &self,
        scope: &OrgScope,
        lookups: &[String],
        entities: &[String],
    ) -> Result<TokenResolution, StoreError>;
    /// The org's stored tokens among `tokens` (pseudonym texts); unknown ones are left out.
    async fn pii_tokens(
        &self,
        scope: &OrgScope,
        tokens: &[String],
    ) -> Result<Vec<PiiToken>, StoreError>;

    /// The region whose own stores hold the org, when it is not this store itself (only a
    /// [`RegionalStore`] answers `Some`): its audit log and object store are the org's.
    async fn region_of(&self, _scope: &OrgScope) -> Result<Option<RegionStores>, StoreError> {
        Ok(None)
    }
    /// The regions with stores of their own behind this store (empty but for a
    /// [`RegionalStore`]): each keeps its own audit log.
    fn regions(&self) -> Vec<RegionStores> {
        Vec::new()
    }
    /// Makes `region` the org's home on this same store (both regions share it), appending
    /// `audit`.
    async fn set_org_region(
        &self,
        scope: &OrgScope,
        region: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;
    /// Every row of the org but its audit trail, for a move to another region's store.
    async fn export_org(&self, scope: &OrgScope) -> Result<OrgRows, StoreError>;
    /// Writes an org exported from another store with `region` as its home, replacing any
    /// earlier partial copy, and appends `audit`; returns its scope here.
    async fn import_org(
        &self,
        rows: &OrgRows,
        region: &str,
        audit: &[AuditEvent],
    ) -> Result<OrgScope, StoreError>;
    /// Deletes every row of the org but its audit trail (it moved to another store), and
    /// appends `audit`. With `expect` (the rows a move copied), only if the org's rows are
    /// still exactly those, checked in the deleting transaction: [`StoreError::Conflict`],
    /// nothing deleted, when something was written since the copy.
    async fn drop_org(
        &self,
        scope: &OrgScope,
        expect: Option<&OrgRows>,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;
    /// Claims the move of org `org_id` for `holder` until `lease_until`, or extends the
    /// holder's own claim: false while another holder's lease runs at `now`. Deployments ask
    /// their main store only, so every instance sees the same claim.
    async fn claim_org_move(
        &self,
        org_id: &str,
        holder: &str,
        now: jiff::Timestamp,
        lease_until: jiff::Timestamp,
    ) -> Result<bool, StoreError>;
    /// Ends `holder`'s claim on moving org `org_id` (nothing if it holds none).
    async fn release_org_move(&self, org_id: &str, holder: &str) -> Result<(), StoreError>;
}
