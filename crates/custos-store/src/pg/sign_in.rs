//! [`crate::SignInStore`] on PostgreSQL.

use super::*;
use crate::sign_in::{hash_column, PendingSignIn, SIGN_IN_COLUMNS};

#[async_trait::async_trait]
impl crate::SignInStore for PgStore {
    async fn put_sign_in(&self, s: &PendingSignIn, now: jiff::Timestamp) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM sign_ins WHERE expires_at <= $1")
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "INSERT INTO sign_ins ({SIGN_IN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&s.state_hash[..])
        .bind(&s.browser_hash[..])
        .bind(&s.org_id)
        .bind(&s.nonce)
        .bind(&s.pkce_verifier)
        .bind(&s.return_to)
        .bind(to_micros(s.expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn take_sign_in(
        &self,
        state_hash: &[u8; 32],
    ) -> Result<Option<PendingSignIn>, StoreError> {
        let row = sqlx::query(&format!(
            "DELETE FROM sign_ins WHERE state_hash = $1 RETURNING {SIGN_IN_COLUMNS}"
        ))
        .bind(&state_hash[..])
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(PendingSignIn {
            state_hash: hash_column(r.try_get(0)?, "state_hash")?,
            browser_hash: hash_column(r.try_get(1)?, "browser_hash")?,
            org_id: r.try_get(2)?,
            nonce: r.try_get(3)?,
            pkce_verifier: r.try_get(4)?,
            return_to: r.try_get(5)?,
            expires_at: from_micros(r.try_get(6)?)?,
        }))
    }
}
