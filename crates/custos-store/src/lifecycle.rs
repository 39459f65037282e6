//! [`LifecycleStore`]: the lifecycle of records: due work claimed by sweepers, archive and
//! purge, the deletion log, and recomputed due times.

use custos_audit::AuditEvent;

use crate::*;

/// The lifecycle of records: due work claimed by sweepers, archive and purge, the deletion log,
/// and recomputed due times.
#[async_trait::async_trait]
pub trait LifecycleStore {
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
}
