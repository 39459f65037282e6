//! [`crate::OperatorStore`] on PostgreSQL.

use super::*;
use crate::operators::{first_operator_sql, OperatorRow, OPERATOR_COLUMNS};

fn operator_from_row(r: &PgRow) -> Result<OperatorRow, StoreError> {
    Ok(OperatorRow {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        identity: PersonIdentity {
            iss: r.try_get(2)?,
            sub: r.try_get(3)?,
        },
        created_at: from_micros(r.try_get(4)?)?,
        created_by: r.try_get(5)?,
    })
}

#[async_trait::async_trait]
impl crate::OperatorStore for PgStore {
    async fn add_first_operator(
        &self,
        o: &OperatorRow,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Two instances creating "the first" operator at once: one waits for the other's
        // commit and then sees the table is no longer empty.
        sqlx::query("LOCK TABLE operators IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(&first_operator_sql(|n| format!("${n}")))
            .bind(&o.id)
            .bind(&o.name)
            .bind(&o.identity.iss)
            .bind(&o.identity.sub)
            .bind(to_micros(o.created_at))
            .bind(&o.created_by)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn operators(&self) -> Result<Vec<OperatorRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(operator_from_row).collect()
    }

    async fn has_operators(&self) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM operators)")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
