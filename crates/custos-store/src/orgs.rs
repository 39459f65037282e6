//! [`OrgStore`]: orgs and what belongs to an org as a whole: retention overrides, legal holds,
//! termination, and the copy of every row a move between regions takes.

use custos_audit::AuditEvent;

use crate::*;

/// Orgs and what belongs to an org as a whole: retention overrides, legal holds, termination,
/// and the copy of every row a move between regions takes.
#[async_trait::async_trait]
pub trait OrgStore {
    /// `"sqlite"` or `"postgres"`, for `/healthz` and logs.
    fn backend(&self) -> &'static str;

    /// Creates an org.
    async fn create_org(&self, org: &Org, audit: &[AuditEvent]) -> Result<OrgScope, StoreError>;

    /// Looks an org up; the returned scope is the only way to act inside it.
    async fn org(&self, id: &str) -> Result<Option<(OrgScope, Org)>, StoreError>;

    /// All orgs, oldest first.
    async fn orgs(&self) -> Result<Vec<Org>, StoreError>;

    /// Suspends the org at `at` (`Some`) or resumes it (`None`), only if it is not already in
    /// that state (false, and nothing appended, if it is).
    async fn set_org_suspended(
        &self,
        scope: &OrgScope,
        at: Option<jiff::Timestamp>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;

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

    /// Whether someone's claim on moving org `org_id` runs at `now` (a read: it writes nothing,
    /// so asking leaves no trace of the org in the main store).
    async fn org_move_claimed(
        &self,
        org_id: &str,
        now: jiff::Timestamp,
    ) -> Result<bool, StoreError>;

    /// Ends `holder`'s claim on moving org `org_id` (nothing if it holds none).
    async fn release_org_move(&self, org_id: &str, holder: &str) -> Result<(), StoreError>;
}
