//! [`MemberStore`] on PostgreSQL.

use custos_audit::AuditEvent;
use sqlx::Row;

use crate::members::{MemberStore, Session, TotpFactor};
use crate::model::{from_micros, to_micros};
use crate::pg::{commit_with, member_from_row};
use crate::{Member, OrgScope, PgStore, StoreError};

const MEMBER_COLUMNS: &str = "id, name, roles, groups_json, mfa, created_at";

fn json(values: &[String]) -> String {
    serde_json::to_string(values).expect("strings serialize")
}

/// Deletes a member's rows from `tables` (its factor, its sessions) inside `tx`.
async fn forget(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tables: &[&str],
    scope: &OrgScope,
    member: &str,
) -> Result<(), StoreError> {
    for table in tables {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE org_id = $1 AND member_id = $2"
        ))
        .bind(scope.org_id())
        .bind(member)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MemberStore for PgStore {
    async fn members(&self, scope: &OrgScope) -> Result<Vec<Member>, StoreError> {
        sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = $1 ORDER BY created_at, id"
        ))
        .bind(scope.org_id())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(member_from_row)
        .collect()
    }

    async fn member(&self, scope: &OrgScope, id: &str) -> Result<Option<Member>, StoreError> {
        sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = $1 AND id = $2"
        ))
        .bind(scope.org_id())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(member_from_row)
        .transpose()
    }

    async fn update_member(
        &self,
        scope: &OrgScope,
        member: &Member,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE members SET name = $3, roles = $4, groups_json = $5, mfa = $6
             WHERE org_id = $1 AND id = $2",
        )
        .bind(scope.org_id())
        .bind(&member.id)
        .bind(&member.name)
        .bind(json(&member.roles))
        .bind(json(&member.groups))
        .bind(member.mfa)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn remove_member(
        &self,
        scope: &OrgScope,
        id: &str,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM members WHERE org_id = $1 AND id = $2")
            .bind(scope.org_id())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        forget(&mut tx, &["member_factors", "sessions"], scope, id).await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn set_member_key(
        &self,
        scope: &OrgScope,
        id: &str,
        key_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("UPDATE members SET key_hash = $3 WHERE org_id = $1 AND id = $2")
            .bind(scope.org_id())
            .bind(id)
            .bind(&key_hash[..])
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        forget(&mut tx, &["sessions"], scope, id).await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn org_settings(&self, scope: &OrgScope) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT settings FROM org_settings WHERE org_id = $1")
                .bind(scope.org_id())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_org_settings(
        &self,
        scope: &OrgScope,
        settings: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO org_settings (org_id, settings) VALUES ($1, $2)
             ON CONFLICT (org_id) DO UPDATE SET settings = excluded.settings",
        )
        .bind(scope.org_id())
        .bind(settings)
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await
    }

    async fn set_totp(
        &self,
        scope: &OrgScope,
        member_id: &str,
        sealed: &[u8],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM members WHERE org_id = $1 AND id = $2 FOR UPDATE")
                .bind(scope.org_id())
                .bind(member_id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO member_factors (org_id, member_id, totp_sealed, last_step)
             VALUES ($1, $2, $3, NULL)
             ON CONFLICT (org_id, member_id)
             DO UPDATE SET totp_sealed = excluded.totp_sealed, last_step = NULL",
        )
        .bind(scope.org_id())
        .bind(member_id)
        .bind(sealed)
        .execute(&mut *tx)
        .await?;
        forget(&mut tx, &["sessions"], scope, member_id).await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn totp(
        &self,
        scope: &OrgScope,
        member_id: &str,
    ) -> Result<Option<TotpFactor>, StoreError> {
        let row = sqlx::query(
            "SELECT totp_sealed, last_step FROM member_factors
             WHERE org_id = $1 AND member_id = $2",
        )
        .bind(scope.org_id())
        .bind(member_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(TotpFactor {
                sealed: r.try_get(0)?,
                last_step: r.try_get(1)?,
            })
        })
        .transpose()
    }

    async fn open_session(
        &self,
        scope: &OrgScope,
        session: &Session,
        step: i64,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE member_factors SET last_step = $3
             WHERE org_id = $1 AND member_id = $2 AND (last_step IS NULL OR last_step < $3)",
        )
        .bind(scope.org_id())
        .bind(&session.member_id)
        .bind(step)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO sessions (token_hash, org_id, member_id, method, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.token_hash[..])
        .bind(scope.org_id())
        .bind(&session.member_id)
        .bind(&session.method)
        .bind(to_micros(session.expires_at))
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn session(
        &self,
        token_hash: &[u8; 32],
        now: jiff::Timestamp,
    ) -> Result<Option<(OrgScope, Member, Session)>, StoreError> {
        let row = sqlx::query(
            "SELECT m.id, m.name, m.roles, m.groups_json, m.mfa, m.created_at,
                    s.org_id, s.method, s.expires_at
             FROM sessions s JOIN members m ON m.org_id = s.org_id AND m.id = s.member_id
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(&token_hash[..])
        .bind(to_micros(now))
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let member = member_from_row(&r)?;
        let session = Session {
            token_hash: *token_hash,
            member_id: member.id.clone(),
            method: r.try_get(7)?,
            expires_at: from_micros(r.try_get(8)?)?,
        };
        Ok(Some((OrgScope::new(r.try_get(6)?), member, session)))
    }
}
