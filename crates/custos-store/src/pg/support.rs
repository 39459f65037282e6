//! [`crate::SupportStore`] on PostgreSQL.

use super::*;
use crate::support::{
    categories_from_json, categories_json, transition_sql, SupportRequestRow, SupportTransition,
    SUPPORT_COLUMNS,
};

fn support_from_row(r: &PgRow) -> Result<SupportRequestRow, StoreError> {
    Ok(SupportRequestRow {
        id: r.try_get(0)?,
        requested_by: r.try_get(1)?,
        justification: r.try_get(2)?,
        ticket: r.try_get(3)?,
        reason: r.try_get(4)?,
        scope: r.try_get(5)?,
        categories: categories_from_json(r.try_get(6)?)?,
        duration: r.try_get(7)?,
        created_at: from_micros(r.try_get(8)?)?,
        expires_at: from_micros(r.try_get(9)?)?,
        status: r.try_get(10)?,
        decided_by: r.try_get(11)?,
        decided_at: opt_time(r.try_get(12)?)?,
        active_until: opt_time(r.try_get(13)?)?,
        revoked_by: r.try_get(14)?,
        revoked_at: opt_time(r.try_get(15)?)?,
    })
}

#[async_trait::async_trait]
impl crate::SupportStore for PgStore {
    async fn add_support_request(
        &self,
        scope: &OrgScope,
        r: &SupportRequestRow,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO support_requests (org_id, id, requested_by, justification, ticket,
                 reason, scope, categories_json, duration, created_at, expires_at, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(scope.org_id())
        .bind(&r.id)
        .bind(&r.requested_by)
        .bind(&r.justification)
        .bind(&r.ticket)
        .bind(&r.reason)
        .bind(&r.scope)
        .bind(categories_json(&r.categories))
        .bind(&r.duration)
        .bind(to_micros(r.created_at))
        .bind(to_micros(r.expires_at))
        .bind(&r.status)
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await
    }

    async fn support_requests(
        &self,
        scope: &OrgScope,
    ) -> Result<Vec<SupportRequestRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SUPPORT_COLUMNS} FROM support_requests WHERE org_id = $1
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(scope.org_id())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(support_from_row).collect()
    }

    async fn support_request(
        &self,
        scope: &OrgScope,
        id: &str,
    ) -> Result<Option<SupportRequestRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SUPPORT_COLUMNS} FROM support_requests WHERE org_id = $1 AND id = $2"
        ))
        .bind(scope.org_id())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(support_from_row).transpose()
    }

    async fn transition_support_request(
        &self,
        scope: &OrgScope,
        id: &str,
        change: &SupportTransition,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql = transition_sql(&change.to, |n| format!("${n}"));
        let mut query = sqlx::query(&sql)
            .bind(scope.org_id())
            .bind(id)
            .bind(&change.from)
            .bind(&change.to)
            .bind(&change.by)
            .bind(to_micros(change.at));
        if change.to != "revoked" {
            query = query.bind(change.active_until.map(to_micros));
        }
        let n = query.execute(&mut *tx).await?.rows_affected();
        if n == 0 {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }
}
