//! [`crate::AuditStore`] on PostgreSQL.

use super::*;

/// An `idx, leaf` row as an entry.
fn entry_from_row(r: &PgRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        index: r.try_get::<i64, _>(0)? as u64,
        leaf: r.try_get(1)?,
    })
}

#[async_trait::async_trait]
impl crate::AuditStore for PgStore {
    async fn append_audit(&self, audit: &[AuditEvent]) -> Result<(), StoreError> {
        commit_with(self.pool.begin().await?, audit).await
    }

    async fn audit_query(
        &self,
        scope: Option<&OrgScope>,
        filter: &AuditFilter,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, leaf FROM audit_log
             WHERE idx >= $1 AND ($2::text IS NULL OR org_id = $2)
               AND ($3::text IS NULL OR actor = $3) AND ($4::text IS NULL OR action = $4)
               AND ($5::text IS NULL OR target = $5) AND ($6::bigint IS NULL OR time >= $6)
               AND ($7::bigint IS NULL OR time < $7)
             ORDER BY idx LIMIT $8",
        )
        .bind(from as i64)
        .bind(scope.map(|s| s.org_id()))
        .bind(filter.actor.as_deref())
        .bind(filter.action.as_deref())
        .bind(filter.target.as_deref())
        .bind(filter.since.map(to_micros))
        .bind(filter.until.map(to_micros))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn audit_by_actions(
        &self,
        from: u64,
        end: u64,
        actions: &[String],
        actors: &[String],
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, leaf FROM audit_log
             WHERE idx >= $1 AND idx < $2 AND action = ANY($3)
               AND (cardinality($4::text[]) = 0 OR actor = ANY($4))
             ORDER BY idx LIMIT $5",
        )
        .bind(from as i64)
        .bind(end as i64)
        .bind(actions)
        .bind(actors)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn audit_entries(
        &self,
        scope: Option<&OrgScope>,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, leaf FROM audit_log
             WHERE ($1::text IS NULL OR org_id = $1) AND idx >= $2 ORDER BY idx LIMIT $3",
        )
        .bind(scope.map(|s| s.org_id()))
        .bind(from as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn audit_size(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT size FROM audit_head")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn audit_rows(&self, from: u64, limit: u32) -> Result<Vec<crate::AuditRow>, StoreError> {
        crate::pg::audit_log::rows(&self.pool, from, limit).await
    }

    async fn audit_root(&self, size: u64) -> Result<custos_audit::Hash, StoreError> {
        crate::pg::audit_log::root(&self.pool, size).await
    }

    async fn audit_inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<custos_audit::InclusionProof, StoreError> {
        crate::pg::audit_log::inclusion(&self.pool, index, size).await
    }

    async fn audit_consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<custos_audit::ConsistencyProof, StoreError> {
        crate::pg::audit_log::consistency(&self.pool, old_size, new_size).await
    }

    async fn add_audit_checkpoint(
        &self,
        checkpoint: &crate::StoredCheckpoint,
    ) -> Result<crate::StoredCheckpoint, StoreError> {
        crate::pg::audit_log::add_checkpoint(&self.pool, checkpoint).await
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<crate::StoredCheckpoint>, StoreError> {
        crate::pg::audit_log::latest_checkpoint(&self.pool).await
    }

    async fn audit_checkpoints(
        &self,
        from_size: u64,
        limit: u32,
    ) -> Result<Vec<crate::StoredCheckpoint>, StoreError> {
        crate::pg::audit_log::checkpoints(&self.pool, from_size, limit).await
    }
}
