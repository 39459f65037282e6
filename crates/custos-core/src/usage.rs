//! The org's records and storage per category and tier, and what is due to be archived or
//! purged within the next week: the console's overview, and `GET /v1/orgs/{org}/usage`.
//!
//! Counts only: nothing here reads a record's content.

use serde::Serialize;
use utoipa::ToSchema;

use crate::authz::Operation;
use crate::{Caller, CoreError, Custos};

/// How far ahead "due" looks.
pub const DUE_WINDOW_DAYS: i64 = 7;

/// One category's records in one state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CategoryUsageView {
    /// The category.
    pub category: String,
    /// `active` (the hot tier), `archived` (the archive tier), `soft_deleted`,
    /// `purge_requested` or `erasure_requested`.
    pub state: String,
    /// How many records.
    pub records: u64,
    /// Bytes held: sealed content plus file blobs.
    pub bytes: u64,
    /// Active records due to move to the archive tier within the window.
    pub archive_due: u64,
    /// Records due to be purged within the window.
    pub purge_due: u64,
}

/// The org's usage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageView {
    /// The end of the window `archive_due` and `purge_due` count to (a week from now).
    #[schema(value_type = String, format = DateTime)]
    pub due_until: jiff::Timestamp,
    /// Per category and state, categories in name order.
    pub categories: Vec<CategoryUsageView>,
}

impl Custos {
    /// The org's records and storage per category and state, and what is due within a week.
    pub async fn usage(&self, caller: &Caller, org: &str) -> Result<UsageView, CoreError> {
        let scope = self
            .authorize(caller, Operation::UsageRead, org)
            .await?
            .scope;
        let due_until = self.now() + jiff::SignedDuration::from_hours(24 * DUE_WINDOW_DAYS);
        let rows = self
            .store
            .for_org(&scope)
            .await?
            .category_usage(&scope, due_until)
            .await?;
        Ok(UsageView {
            due_until,
            categories: rows
                .into_iter()
                .map(|r| CategoryUsageView {
                    category: r.category,
                    state: r.state.as_str().to_string(),
                    records: r.records,
                    bytes: r.bytes,
                    archive_due: r.archive_due,
                    purge_due: r.purge_due,
                })
                .collect(),
        })
    }
}
