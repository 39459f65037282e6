//! [`crate::OperatorStore`] on PostgreSQL.

use super::*;
use crate::operators::{
    first_operator_sql, operator_session_query, OperatorRow, OperatorSession, OPERATOR_COLUMNS,
};

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

    async fn operator_by_identity(
        &self,
        person: &PersonIdentity,
    ) -> Result<Option<OperatorRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators WHERE identity_iss = $1 AND identity_sub = $2"
        ))
        .bind(&person.iss)
        .bind(&person.sub)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(operator_from_row).transpose()
    }

    async fn start_operator_session(
        &self,
        s: &OperatorSession,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO operator_sessions
                 (token_hash, operator_id, expires_at, created_at, last_used_at, idle_seconds)
             VALUES ($1, $2, $3, $4, NULL, $5)",
        )
        .bind(&s.token_hash[..])
        .bind(&s.operator_id)
        .bind(to_micros(s.expires_at))
        .bind(to_micros(s.created_at))
        .bind(s.idle_seconds)
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await
    }

    async fn operator_session(
        &self,
        token_hash: &[u8; 32],
        now: jiff::Timestamp,
    ) -> Result<Option<(OperatorRow, OperatorSession)>, StoreError> {
        let row = sqlx::query(&operator_session_query(|n| format!("${n}")))
            .bind(&token_hash[..])
            .bind(to_micros(now))
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let operator = operator_from_row(&r)?;
        let session = OperatorSession {
            token_hash: *token_hash,
            operator_id: operator.id.clone(),
            expires_at: from_micros(r.try_get(6)?)?,
            created_at: from_micros(r.try_get(7)?)?,
            last_used_at: r
                .try_get::<Option<i64>, _>(8)?
                .map(from_micros)
                .transpose()?,
            idle_seconds: r.try_get(9)?,
        };
        Ok(Some((operator, session)))
    }

    async fn note_operator_session_use(
        &self,
        token_hash: &[u8; 32],
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE operator_sessions SET last_used_at = GREATEST(COALESCE(last_used_at, $2), $2)
             WHERE token_hash = $1",
        )
        .bind(&token_hash[..])
        .bind(to_micros(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn end_operator_session(
        &self,
        token_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM operator_sessions WHERE token_hash = $1")
            .bind(&token_hash[..])
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }
}
