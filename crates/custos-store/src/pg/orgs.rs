//! [`crate::OrgStore`] on PostgreSQL.

use super::*;

#[async_trait::async_trait]
impl crate::OrgStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn create_org(&self, org: &Org, audit: &[AuditEvent]) -> Result<OrgScope, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO orgs (id, name, region, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&org.id)
            .bind(&org.name)
            .bind(&org.region)
            .bind(to_micros(org.created_at))
            .execute(&mut *tx)
            .await?;
        commit_with(tx, audit).await?;
        Ok(OrgScope::new(org.id.clone()))
    }

    async fn org(&self, id: &str) -> Result<Option<(OrgScope, Org)>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let org = org_from_row(&r)?;
            Ok((OrgScope::new(org.id.clone()), org))
        })
        .transpose()
    }

    async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(org_from_row)
        .collect()
    }

    async fn set_org_suspended(
        &self,
        scope: &OrgScope,
        at: Option<jiff::Timestamp>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let sql = if at.is_some() {
            "UPDATE orgs SET suspended_at = $2 WHERE id = $1 AND suspended_at IS NULL"
        } else {
            "UPDATE orgs SET suspended_at = $2 WHERE id = $1 AND suspended_at IS NOT NULL"
        };
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(sql)
            .bind(scope.org_id())
            .bind(at.map(to_micros))
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !changed {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn request_termination(
        &self,
        scope: &OrgScope,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let started = sqlx::query(
            "UPDATE orgs SET terminate_requested_at = $2
             WHERE id = $1 AND terminate_requested_at IS NULL",
        )
        .bind(scope.org_id())
        .bind(to_micros(at))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !started {
            return Ok(false);
        }
        sqlx::query("DELETE FROM members WHERE org_id = $1")
            .bind(scope.org_id())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE records SET next_due_at = $2, lease_until = NULL WHERE org_id = $1")
            .bind(scope.org_id())
            .bind(to_micros(at))
            .execute(&mut *tx)
            .await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn finish_termination(
        &self,
        scope: &OrgScope,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The org row lock orders this against a concurrent finisher on another instance.
        let requested: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT terminate_requested_at FROM orgs
             WHERE id = $1 AND terminated_at IS NULL FOR UPDATE",
        )
        .bind(scope.org_id())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(Some(requested)) = requested else {
            return Ok(false);
        };
        // A record written while the termination started is made due like the rest.
        sqlx::query(
            "UPDATE records SET next_due_at = $2
             WHERE org_id = $1 AND (next_due_at IS NULL OR next_due_at > $2)",
        )
        .bind(scope.org_id())
        .bind(requested)
        .execute(&mut *tx)
        .await?;
        let left: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM records WHERE org_id = $1)")
                .bind(scope.org_id())
                .fetch_one(&mut *tx)
                .await?;
        if left {
            tx.commit().await?;
            return Ok(false);
        }
        for table in TERMINATED_ORG_TABLES {
            sqlx::query(&format!("DELETE FROM {table} WHERE org_id = $1"))
                .bind(scope.org_id())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE orgs SET terminated_at = $2 WHERE id = $1")
            .bind(scope.org_id())
            .bind(to_micros(at))
            .execute(&mut *tx)
            .await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn set_retention_override(
        &self,
        scope: &OrgScope,
        category: &str,
        retention: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO retention_overrides (org_id, category, retention) VALUES ($1, $2, $3)
             ON CONFLICT (org_id, category) DO UPDATE SET retention = EXCLUDED.retention",
        )
        .bind(scope.org_id())
        .bind(category)
        .bind(retention)
        .execute(&mut *tx)
        .await?;
        // Start over: records already done used the previous override.
        sqlx::query(
            "INSERT INTO due_recompute (org_id, category, after_id) VALUES ($1, $2, '')
             ON CONFLICT (org_id, category) DO UPDATE SET after_id = ''",
        )
        .bind(scope.org_id())
        .bind(category)
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await?;
        Ok(())
    }

    async fn retention_overrides(
        &self,
        scope: &OrgScope,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT category, retention FROM retention_overrides WHERE org_id = $1
             ORDER BY category",
        )
        .bind(scope.org_id())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn create_hold(
        &self,
        scope: &OrgScope,
        hold: &Hold,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO holds (org_id, id, reason, subject_ref, category, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(scope.org_id())
        .bind(&hold.id)
        .bind(&hold.reason)
        .bind(&hold.subject_ref)
        .bind(&hold.category)
        .bind(to_micros(hold.created_at))
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await?;
        Ok(())
    }

    async fn release_hold(
        &self,
        scope: &OrgScope,
        id: &str,
        released_at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE holds SET released_at = $3
             WHERE org_id = $1 AND id = $2 AND released_at IS NULL",
        )
        .bind(scope.org_id())
        .bind(id)
        .bind(to_micros(released_at))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        // Records the sweeper set aside while held are due again at once, not after their
        // recheck lease (a held record is only ever deferred, never in process).
        sqlx::query(
            "UPDATE records r SET lease_until = NULL
             FROM holds h
             WHERE r.org_id = $1 AND r.lease_until IS NOT NULL AND h.org_id = $1 AND h.id = $2
               AND (h.subject_ref IS NULL OR h.subject_ref = r.subject_ref)
               AND (h.category IS NULL OR h.category = r.category)",
        )
        .bind(scope.org_id())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn holds(&self, scope: &OrgScope) -> Result<Vec<Hold>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, reason, subject_ref, category, created_at FROM holds
             WHERE org_id = $1 AND released_at IS NULL ORDER BY created_at, id",
        )
        .bind(scope.org_id())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Hold {
                    id: r.try_get(0)?,
                    reason: r.try_get(1)?,
                    subject_ref: r.try_get(2)?,
                    category: r.try_get(3)?,
                    created_at: from_micros(r.try_get(4)?)?,
                })
            })
            .collect()
    }

    async fn set_org_region(
        &self,
        scope: &OrgScope,
        region: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE orgs SET region = $2 WHERE id = $1")
            .bind(scope.org_id())
            .bind(region)
            .execute(&mut *tx)
            .await?;
        commit_with(tx, audit).await
    }

    async fn export_org(&self, scope: &OrgScope) -> Result<crate::OrgRows, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = crate::pg::org_rows::pg_export(&mut tx, scope).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn import_org(
        &self,
        rows: &crate::OrgRows,
        region: &str,
        audit: &[AuditEvent],
    ) -> Result<OrgScope, StoreError> {
        let mut tx = self.pool.begin().await?;
        let scope = crate::pg::org_rows::pg_import(&mut tx, rows, region).await?;
        commit_with(tx, audit).await?;
        Ok(scope)
    }

    async fn drop_org(
        &self,
        scope: &OrgScope,
        expect: Option<&crate::OrgRows>,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        match expect {
            Some(rows) => crate::pg::org_rows::pg_delete_if_unchanged(&mut tx, rows).await?,
            None => crate::pg::org_rows::pg_delete(&mut tx, scope.org_id()).await?,
        }
        commit_with(tx, audit).await
    }

    async fn claim_org_move(
        &self,
        org_id: &str,
        holder: &str,
        now: jiff::Timestamp,
        lease_until: jiff::Timestamp,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "INSERT INTO org_moves (org_id, holder, lease_until) VALUES ($1, $2, $4)
             ON CONFLICT (org_id) DO UPDATE
             SET holder = excluded.holder, lease_until = excluded.lease_until
             WHERE org_moves.lease_until <= $3 OR org_moves.holder = excluded.holder",
        )
        .bind(org_id)
        .bind(holder)
        .bind(to_micros(now))
        .bind(to_micros(lease_until))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn org_move_claimed(
        &self,
        org_id: &str,
        now: jiff::Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM org_moves WHERE org_id = $1 AND lease_until > $2)",
        )
        .bind(org_id)
        .bind(to_micros(now))
        .fetch_one(&self.pool)
        .await?)
    }

    async fn release_org_move(&self, org_id: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM org_moves WHERE org_id = $1 AND holder = $2")
            .bind(org_id)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
