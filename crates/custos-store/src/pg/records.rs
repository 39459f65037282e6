//! [`crate::RecordStore`] on PostgreSQL.

use super::*;

#[async_trait::async_trait]
impl crate::RecordStore for PgStore {
    async fn insert_records(
        &self,
        scope: &OrgScope,
        records: &[RecordRow],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_record_rows(&mut tx, scope.org_id(), records).await?;
        commit_with(tx, audit).await?;
        Ok(())
    }

    async fn insert_record_stream(
        &self,
        scope: &OrgScope,
        mut chunks: crate::RecordChunks,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        // One statement per chunk as it arrives, so the server inserts while the caller
        // seals the next one; the audit append (and its lock on the log head) comes last,
        // as in `insert_records`. Returning early drops the transaction: rolled back.
        let mut tx = self.pool.begin().await?;
        let mut received = 0;
        while let Some(rows) = chunks.next().await {
            insert_record_rows(&mut tx, scope.org_id(), &rows).await?;
            received += rows.len();
        }
        chunks.check_complete(received)?;
        commit_with(tx, audit).await?;
        Ok(())
    }

    async fn record(&self, scope: &OrgScope, id: &str) -> Result<Option<RecordRow>, StoreError> {
        sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE org_id = $1 AND id = $2"
        ))
        .bind(scope.org_id())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(record_from_row)
        .transpose()
    }

    async fn list_records(
        &self,
        scope: &OrgScope,
        filter: &RecordFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RecordRow>, StoreError> {
        let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
        sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE org_id = $1
               AND ($2::text IS NULL OR subject_ref = $2)
               AND ($3::text IS NULL OR category = $3)
               AND (cardinality($4::text[]) = 0 OR state = ANY($4))
               AND ($5::text IS NULL OR id > $5)
             ORDER BY id LIMIT $6"
        ))
        .bind(scope.org_id())
        .bind(&filter.subject_ref)
        .bind(&filter.category)
        .bind(states)
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(record_from_row)
        .collect()
    }

    async fn category_usage(
        &self,
        scope: &OrgScope,
        until: jiff::Timestamp,
    ) -> Result<Vec<CategoryUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT category, state, COUNT(*)::BIGINT,
                    COALESCE(SUM(COALESCE(octet_length(sealed), 0) + COALESCE(blob_size, 0)), 0)::BIGINT,
                    COUNT(*) FILTER (WHERE state = 'active' AND archive_at IS NOT NULL
                                       AND archive_at <= $2)::BIGINT,
                    COUNT(*) FILTER (WHERE next_due_at <= $2 AND NOT (state = 'active'
                                       AND archive_at IS NOT NULL AND archive_at <= $2))::BIGINT
             FROM records WHERE org_id = $1
             GROUP BY category, state ORDER BY category, state",
        )
        .bind(scope.org_id())
        .bind(to_micros(until))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CategoryUsage {
                    category: r.try_get(0)?,
                    state: RecordState::parse(&r.try_get::<String, _>(1)?)?,
                    records: r.try_get::<i64, _>(2)?.max(0) as u64,
                    bytes: r.try_get::<i64, _>(3)?.max(0) as u64,
                    archive_due: r.try_get::<i64, _>(4)?.max(0) as u64,
                    purge_due: r.try_get::<i64, _>(5)?.max(0) as u64,
                })
            })
            .collect()
    }

    async fn transition_record(
        &self,
        scope: &OrgScope,
        change: &StateChange,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE records SET state = $4, deleted_at = $5, next_due_at = $6, lease_until = NULL
             WHERE org_id = $1 AND id = $2 AND state = $3",
        )
        .bind(scope.org_id())
        .bind(&change.id)
        .bind(change.from.as_str())
        .bind(change.to.as_str())
        .bind(change.deleted_at.map(to_micros))
        .bind(change.next_due_at.map(to_micros))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn insert_records_with_tokens(
        &self,
        scope: &OrgScope,
        records: &[RecordRow],
        tokens: &crate::TokenBatch,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Returning early drops the transaction: rolled back, nothing appended.
        if !crate::pg::tokens::write(&mut tx, scope.org_id(), tokens).await? {
            return Ok(false);
        }
        insert_record_rows(&mut tx, scope.org_id(), records).await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn resolve_pii_tokens(
        &self,
        scope: &OrgScope,
        lookups: &[String],
        entities: &[String],
    ) -> Result<crate::TokenResolution, StoreError> {
        crate::pg::tokens::resolve(&self.pool, scope.org_id(), lookups, entities).await
    }

    async fn pii_tokens(
        &self,
        scope: &OrgScope,
        tokens: &[String],
    ) -> Result<Vec<crate::PiiToken>, StoreError> {
        crate::pg::tokens::fetch(&self.pool, scope.org_id(), tokens).await
    }
}
