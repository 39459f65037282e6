//! [`crate::SignInStore`] on SQLite.

use super::*;
use crate::sign_in::{hash_column, PendingSignIn, SIGN_IN_COLUMNS};

#[async_trait::async_trait]
impl crate::SignInStore for SqliteStore {
    async fn put_sign_in(
        &self,
        sign_in: &PendingSignIn,
        now: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let s = sign_in.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM sign_ins WHERE expires_at <= ?1",
                params![to_micros(now)],
            )?;
            tx.execute(
                &format!(
                    "INSERT INTO sign_ins ({SIGN_IN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    &s.state_hash[..],
                    &s.browser_hash[..],
                    s.org_id,
                    s.nonce,
                    s.pkce_verifier,
                    s.return_to,
                    to_micros(s.expires_at)
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn take_sign_in(
        &self,
        state_hash: &[u8; 32],
    ) -> Result<Option<PendingSignIn>, StoreError> {
        let hash = *state_hash;
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "DELETE FROM sign_ins WHERE state_hash = ?1 RETURNING {SIGN_IN_COLUMNS}"
            ))?;
            let mut rows = stmt.query(params![&hash[..]])?;
            let Some(r) = rows.next()? else {
                return Ok(None);
            };
            Ok(Some(PendingSignIn {
                state_hash: hash_column(r.get(0)?, "state_hash")?,
                browser_hash: hash_column(r.get(1)?, "browser_hash")?,
                org_id: r.get(2)?,
                nonce: r.get(3)?,
                pkce_verifier: r.get(4)?,
                return_to: r.get(5)?,
                expires_at: from_micros(r.get(6)?)?,
            }))
        })
        .await
    }
}
