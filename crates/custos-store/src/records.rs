//! [`RecordStore`]: records and files: sealed rows in, listed, read and changed in their org,
//! with the PII tokens minted for them.

use custos_audit::AuditEvent;

use crate::*;

/// Records and files: sealed rows in, listed, read and changed in their org, with the PII
/// tokens minted for them.
#[async_trait::async_trait]
pub trait RecordStore {
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

    /// The org's records per category and state, with what is due by `until` (one pass
    /// over the org's records; the console's overview).
    async fn category_usage(
        &self,
        scope: &OrgScope,
        until: jiff::Timestamp,
    ) -> Result<Vec<CategoryUsage>, StoreError>;

    /// Moves a record from `from` to `to` state (compare-and-set), setting `deleted_at` and
    /// `next_due_at`. Returns false (and appends nothing) if it was not in `from`.
    async fn transition_record(
        &self,
        scope: &OrgScope,
        change: &StateChange,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;

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
}
