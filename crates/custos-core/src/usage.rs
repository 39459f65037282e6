//! The org's records and storage per category and tier, and what is due to be archived or
//! purged within the next week: the console's overview, and `GET /v1/orgs/{org}/usage`.
//!
//! Counts only: nothing here reads a record's content. Counting is one pass over the org's
//! records (1.5 to 2.2 µs a record on SQLite), so each instance keeps an org's figures, says
//! when they were counted, and counts again in the background once they are older than
//! [`USAGE_MAX_AGE`]; an index covering the pass would make every write pay for a page that
//! is read now and then.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use utoipa::ToSchema;

use crate::authz::Operation;
use crate::{Caller, CoreError, Custos};

/// How far ahead "due" looks.
pub const DUE_WINDOW_DAYS: i64 = 7;

/// How long an org's counted figures are shown before they are counted again.
pub const USAGE_MAX_AGE: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// Each org's latest figures, by org id, and the orgs being counted now.
#[derive(Debug, Default, Clone)]
pub(crate) struct UsageCache(Arc<Mutex<CacheState>>);

#[derive(Debug, Default)]
struct CacheState {
    views: HashMap<String, UsageView>,
    counting: HashSet<String>,
}

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
    /// When the figures were counted (a minute or so before they are shown, at most).
    #[schema(value_type = String, format = DateTime)]
    pub counted_at: jiff::Timestamp,
    /// The end of the window `archive_due` and `purge_due` count to (a week from now).
    #[schema(value_type = String, format = DateTime)]
    pub due_until: jiff::Timestamp,
    /// Per category and state, categories in name order.
    pub categories: Vec<CategoryUsageView>,
}

impl Custos {
    /// The org's records and storage per category and state, and what is due within a week.
    ///
    /// Figures younger than [`USAGE_MAX_AGE`] are shown as they are. Older ones are shown
    /// too, while one task counts them again in the background, so a page never waits for the
    /// count; only an org not counted yet by this instance waits for its first.
    pub async fn usage(&self, caller: &Caller, org: &str) -> Result<UsageView, CoreError> {
        let scope = self
            .authorize(caller, Operation::UsageRead, org)
            .await?
            .scope;
        let now = self.now();
        let (cached, refresh) = self.usage_cache.take_or_refresh(scope.org_id(), now);
        if let Some(usage) = cached {
            if refresh && tokio::runtime::Handle::try_current().is_ok() {
                let (stores, cache) = (self.store.clone(), self.usage_cache.clone());
                tokio::spawn(async move {
                    let counted = count(&stores, &scope, now).await;
                    cache.finish(scope.org_id(), counted.ok());
                });
            }
            return Ok(usage);
        }
        let counted = count(&self.store, &scope, now).await;
        self.usage_cache
            .finish(scope.org_id(), counted.as_ref().ok().cloned());
        counted
    }
}

/// Counts the org's records per category and state at `now`.
async fn count(
    stores: &custos_store::Stores,
    scope: &custos_store::OrgScope,
    now: jiff::Timestamp,
) -> Result<UsageView, CoreError> {
    let due_until = now + jiff::SignedDuration::from_hours(24 * DUE_WINDOW_DAYS);
    let rows = stores
        .for_org(scope)
        .await?
        .category_usage(scope, due_until)
        .await?;
    Ok(UsageView {
        counted_at: now,
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

impl UsageCache {
    /// The org's latest figures, if any, and whether the caller should count them again
    /// (they are older than [`USAGE_MAX_AGE`] and nobody is counting them yet; the caller
    /// then owes a [`UsageCache::finish`]).
    fn take_or_refresh(&self, org: &str, now: jiff::Timestamp) -> (Option<UsageView>, bool) {
        let mut state = self.0.lock().expect("usage cache lock");
        let Some(view) = state.views.get(org).cloned() else {
            return (None, false);
        };
        let fresh = view.counted_at <= now && now < view.counted_at + USAGE_MAX_AGE;
        let refresh = !fresh && state.counting.insert(org.to_string());
        (Some(view), refresh)
    }

    /// Keeps newly counted figures (if the count worked) and ends the org's count.
    fn finish(&self, org: &str, counted: Option<UsageView>) {
        let mut state = self.0.lock().expect("usage cache lock");
        state.counting.remove(org);
        if let Some(view) = counted {
            state.views.insert(org.to_string(), view);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(at: i64) -> UsageView {
        UsageView {
            counted_at: jiff::Timestamp::from_second(at).unwrap(),
            due_until: jiff::Timestamp::from_second(at).unwrap(),
            categories: Vec::new(),
        }
    }

    #[test]
    fn stale_figures_are_shown_while_one_count_runs() {
        let cache = UsageCache::default();
        let at = |s| jiff::Timestamp::from_second(s).unwrap();
        assert!(cache.take_or_refresh("o", at(0)).0.is_none());
        cache.finish("o", Some(view(0)));
        let (shown, refresh) = cache.take_or_refresh("o", at(59));
        assert!(shown.is_some() && !refresh, "fresh for a minute");
        let (shown, refresh) = cache.take_or_refresh("o", at(61));
        assert!(
            shown.is_some() && refresh,
            "stale: shown, and counted again"
        );
        let (_, again) = cache.take_or_refresh("o", at(62));
        assert!(!again, "one count at a time");
        cache.finish("o", None);
        assert!(
            cache.take_or_refresh("o", at(63)).1,
            "a failed count is tried again"
        );
        cache.finish("o", Some(view(63)));
        assert_eq!(
            cache.take_or_refresh("o", at(64)).0.unwrap().counted_at,
            at(63)
        );
    }
}
