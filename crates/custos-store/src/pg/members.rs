//! [`MemberStore`] on PostgreSQL.

use custos_audit::AuditEvent;
use sqlx::Row;

use crate::members::{
    EnrollmentCode, MemberStore, PersonalToken, Session, TotpFactor, MEMBER_COLUMNS,
};
use crate::model::{from_micros, to_micros};
use crate::pg::{commit_with, member_from_row};
use crate::{Member, OrgScope, PersonIdentity, PgStore, StoreError};

fn json(values: &[String]) -> String {
    serde_json::to_string(values).expect("strings serialize")
}

/// Locks the member's row for the rest of `tx`; false if the org has no such member.
async fn lock_member(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    scope: &OrgScope,
    member: &str,
) -> Result<bool, StoreError> {
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM members WHERE org_id = $1 AND id = $2 FOR UPDATE")
            .bind(scope.org_id())
            .bind(member)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(found.is_some())
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
    async fn member_by_identity(
        &self,
        scope: &OrgScope,
        identity: &PersonIdentity,
    ) -> Result<Option<Member>, StoreError> {
        sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members
             WHERE org_id = $1 AND identity_iss = $2 AND identity_sub = $3"
        ))
        .bind(scope.org_id())
        .bind(&identity.iss)
        .bind(&identity.sub)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| member_from_row(&r))
        .transpose()
    }

    async fn add_member(
        &self,
        scope: &OrgScope,
        member: &Member,
        key_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO members (org_id, id, name, roles, groups_json, mfa, key_hash, created_at,
                                  identity_iss, identity_sub)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(scope.org_id())
        .bind(&member.id)
        .bind(&member.name)
        .bind(serde_json::to_string(&member.roles).expect("strings serialize"))
        .bind(serde_json::to_string(&member.groups).expect("strings serialize"))
        .bind(member.mfa)
        .bind(&key_hash[..])
        .bind(to_micros(member.created_at))
        .bind(member.identity.as_ref().map(|i| i.iss.clone()))
        .bind(member.identity.as_ref().map(|i| i.sub.clone()))
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await?;
        Ok(())
    }

    async fn member_by_key_hash(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<(OrgScope, Member)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {}, org_id FROM members WHERE key_hash = $1",
            crate::members::MEMBER_COLUMNS
        ))
        .bind(&key_hash[..])
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                OrgScope::new(r.try_get(crate::members::MEMBER_COLUMN_COUNT)?),
                member_from_row(&r)?,
            ))
        })
        .transpose()
    }

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
            "UPDATE members SET name = $3, roles = $4, groups_json = $5, mfa = $6,
                                identity_iss = $7, identity_sub = $8
             WHERE org_id = $1 AND id = $2",
        )
        .bind(scope.org_id())
        .bind(&member.id)
        .bind(&member.name)
        .bind(json(&member.roles))
        .bind(json(&member.groups))
        .bind(member.mfa)
        .bind(member.identity.as_ref().map(|i| i.iss.clone()))
        .bind(member.identity.as_ref().map(|i| i.sub.clone()))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn note_member_use(
        &self,
        scope: &OrgScope,
        id: &str,
        at: jiff::Timestamp,
        key: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE members SET last_used_at = GREATEST(COALESCE(last_used_at, $3), $3),
                key_last_used_at = CASE WHEN $4
                    THEN GREATEST(COALESCE(key_last_used_at, $3), $3) ELSE key_last_used_at END
             WHERE org_id = $1 AND id = $2",
        )
        .bind(scope.org_id())
        .bind(id)
        .bind(to_micros(at))
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn note_session_use(
        &self,
        scope: &OrgScope,
        token_hash: &[u8; 32],
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET last_used_at = GREATEST(COALESCE(last_used_at, $3), $3)
             WHERE org_id = $1 AND token_hash = $2",
        )
        .bind(scope.org_id())
        .bind(&token_hash[..])
        .bind(to_micros(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_member_disabled(
        &self,
        scope: &OrgScope,
        id: &str,
        at: Option<jiff::Timestamp>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Only a change counts: disabling twice (two sweeps, two instances) audits once.
        let n = sqlx::query(
            "UPDATE members SET disabled_at = $3
             WHERE org_id = $1 AND id = $2 AND (disabled_at IS NULL) = ($3::BIGINT IS NOT NULL)",
        )
        .bind(scope.org_id())
        .bind(id)
        .bind(at.map(to_micros))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        if at.is_some() {
            forget(&mut tx, &["sessions", "personal_tokens"], scope, id).await?;
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
        forget(
            &mut tx,
            &[
                "member_factors",
                "sessions",
                "enrollment_codes",
                "personal_tokens",
            ],
            scope,
            id,
        )
        .await?;
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
        code: Option<&[u8; 32]>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !lock_member(&mut tx, scope, member_id).await? {
            return Ok(false);
        }
        if let Some(code) = code {
            let used = sqlx::query(
                "DELETE FROM enrollment_codes
                 WHERE org_id = $1 AND member_id = $2 AND code_hash = $3",
            )
            .bind(scope.org_id())
            .bind(member_id)
            .bind(&code[..])
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if used != 1 {
                return Err(StoreError::Conflict(
                    "the enrollment code was already used".into(),
                ));
            }
        }
        sqlx::query(
            "INSERT INTO member_factors (org_id, member_id, totp_sealed, last_step, failures)
             VALUES ($1, $2, $3, NULL, 0)
             ON CONFLICT (org_id, member_id)
             DO UPDATE SET totp_sealed = excluded.totp_sealed, last_step = NULL,
                 failures = 0, last_failure_at = NULL",
        )
        .bind(scope.org_id())
        .bind(member_id)
        .bind(sealed)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "DELETE FROM sessions WHERE org_id = $1 AND member_id = $2 AND method IN {}",
            crate::members::TOTP_SESSION_METHODS
        ))
        .bind(scope.org_id())
        .bind(member_id)
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn reserve_totp_attempt(
        &self,
        scope: &OrgScope,
        member_id: &str,
        seen: u32,
        now: jiff::Timestamp,
    ) -> Result<bool, StoreError> {
        // No audit event: this counts an attempt; the core audits its outcome.
        let n = sqlx::query(
            "UPDATE member_factors SET failures = failures + 1, last_failure_at = $4
             WHERE org_id = $1 AND member_id = $2 AND failures = $3",
        )
        .bind(scope.org_id())
        .bind(member_id)
        .bind(i64::from(seen))
        .bind(to_micros(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn clear_totp_failures(
        &self,
        scope: &OrgScope,
        member_id: &str,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE member_factors SET failures = 0, last_failure_at = NULL
             WHERE org_id = $1 AND member_id = $2",
        )
        .bind(scope.org_id())
        .bind(member_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn enrolled_members(&self, scope: &OrgScope) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT member_id FROM member_factors WHERE org_id = $1")
                .bind(scope.org_id())
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn set_enrollment_code(
        &self,
        scope: &OrgScope,
        member_id: &str,
        code: &EnrollmentCode,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !lock_member(&mut tx, scope, member_id).await? {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO enrollment_codes (org_id, member_id, code_hash, expires_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (org_id, member_id)
             DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at",
        )
        .bind(scope.org_id())
        .bind(member_id)
        .bind(&code.code_hash[..])
        .bind(to_micros(code.expires_at))
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn enrollment_code(
        &self,
        scope: &OrgScope,
        member_id: &str,
    ) -> Result<Option<EnrollmentCode>, StoreError> {
        let row = sqlx::query(
            "SELECT code_hash, expires_at FROM enrollment_codes
             WHERE org_id = $1 AND member_id = $2",
        )
        .bind(scope.org_id())
        .bind(member_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let hash: Vec<u8> = r.try_get(0)?;
            Ok(EnrollmentCode {
                code_hash: hash.try_into().map_err(|_| {
                    StoreError::Corrupt("an enrollment code hash is not 32 bytes".into())
                })?,
                expires_at: from_micros(r.try_get(1)?)?,
            })
        })
        .transpose()
    }

    async fn totp(
        &self,
        scope: &OrgScope,
        member_id: &str,
    ) -> Result<Option<TotpFactor>, StoreError> {
        let row = sqlx::query(
            "SELECT totp_sealed, last_step, failures, last_failure_at FROM member_factors
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
                failures: u32::try_from(r.try_get::<i64, _>(2)?).unwrap_or(u32::MAX),
                last_failure_at: r
                    .try_get::<Option<i64>, _>(3)?
                    .map(from_micros)
                    .transpose()?,
            })
        })
        .transpose()
    }

    async fn open_session(
        &self,
        scope: &OrgScope,
        session: &Session,
        step: i64,
        replaces: Option<&[u8; 32]>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE member_factors SET last_step = $3, failures = 0, last_failure_at = NULL
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
        if let Some(old) = replaces {
            sqlx::query("DELETE FROM sessions WHERE org_id = $1 AND token_hash = $2")
                .bind(scope.org_id())
                .bind(&old[..])
                .execute(&mut *tx)
                .await?;
        }
        insert_session(&mut tx, scope, session).await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn start_session(
        &self,
        scope: &OrgScope,
        session: &Session,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_session(&mut tx, scope, session).await?;
        commit_with(tx, audit).await
    }

    async fn end_session(
        &self,
        scope: &OrgScope,
        token_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM sessions WHERE org_id = $1 AND token_hash = $2")
            .bind(scope.org_id())
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

    async fn add_personal_token(
        &self,
        scope: &OrgScope,
        t: &PersonalToken,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if !lock_member(&mut tx, scope, &t.member_id).await? {
            return Err(StoreError::Conflict(format!("no member {}", t.member_id)));
        }
        sqlx::query(
            "INSERT INTO personal_tokens
                 (id, org_id, member_id, name, token_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.id)
        .bind(scope.org_id())
        .bind(&t.member_id)
        .bind(&t.name)
        .bind(&t.token_hash[..])
        .bind(to_micros(t.created_at))
        .bind(to_micros(t.expires_at))
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await
    }

    async fn personal_tokens(
        &self,
        scope: &OrgScope,
        member_id: &str,
    ) -> Result<Vec<PersonalToken>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM personal_tokens t WHERE t.org_id = $1 AND t.member_id = $2
             ORDER BY t.created_at, t.id",
            crate::members::PERSONAL_TOKEN_COLUMNS
        ))
        .bind(scope.org_id())
        .bind(member_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| personal_token_from_row(r, 0)).collect()
    }

    async fn revoke_personal_token(
        &self,
        scope: &OrgScope,
        member_id: &str,
        id: &str,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "DELETE FROM personal_tokens WHERE org_id = $1 AND member_id = $2 AND id = $3",
        )
        .bind(scope.org_id())
        .bind(member_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn personal_token(
        &self,
        token_hash: &[u8; 32],
        now: jiff::Timestamp,
    ) -> Result<Option<(OrgScope, Member, PersonalToken)>, StoreError> {
        let row = sqlx::query(&crate::members::personal_token_query(|n| format!("${n}")))
            .bind(&token_hash[..])
            .bind(to_micros(now))
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let member = member_from_row(&r)?;
        let at = crate::members::MEMBER_COLUMN_COUNT;
        let token = personal_token_from_row(&r, at)?;
        Ok(Some((OrgScope::new(r.try_get(at + 7)?), member, token)))
    }

    async fn note_personal_token_use(
        &self,
        scope: &OrgScope,
        token_hash: &[u8; 32],
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE personal_tokens SET last_used_at = GREATEST(COALESCE(last_used_at, $3), $3)
             WHERE org_id = $1 AND token_hash = $2",
        )
        .bind(scope.org_id())
        .bind(&token_hash[..])
        .bind(to_micros(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session(
        &self,
        token_hash: &[u8; 32],
        now: jiff::Timestamp,
    ) -> Result<Option<(OrgScope, Member, Session)>, StoreError> {
        let sql = crate::members::session_query(|n| format!("${n}"));
        let row = sqlx::query(&sql)
            .bind(&token_hash[..])
            .bind(to_micros(now))
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let member = member_from_row(&r)?;
        let at = crate::members::MEMBER_COLUMN_COUNT;
        let session = Session {
            token_hash: *token_hash,
            member_id: member.id.clone(),
            method: r.try_get(at + 1)?,
            expires_at: from_micros(r.try_get(at + 2)?)?,
            last_used_at: r
                .try_get::<Option<i64>, _>(at + 3)?
                .map(from_micros)
                .transpose()?,
            second_factor: r.try_get(at + 4)?,
            created_at: r
                .try_get::<Option<i64>, _>(at + 5)?
                .map(from_micros)
                .transpose()?,
            idle_seconds: r.try_get(at + 6)?,
        };
        Ok(Some((OrgScope::new(r.try_get(at)?), member, session)))
    }
}

/// Inserts `s` as a session of the org of `scope` inside `tx`.
async fn insert_session(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    scope: &OrgScope,
    s: &Session,
) -> Result<(), StoreError> {
    sqlx::query(&crate::members::insert_session_sql(|n| format!("${n}")))
        .bind(&s.token_hash[..])
        .bind(scope.org_id())
        .bind(&s.member_id)
        .bind(&s.method)
        .bind(to_micros(s.expires_at))
        .bind(s.second_factor)
        .bind(s.created_at.map(to_micros))
        .bind(s.idle_seconds)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A [`PersonalToken`] from the row's columns starting at `at`.
fn personal_token_from_row(
    r: &sqlx::postgres::PgRow,
    at: usize,
) -> Result<PersonalToken, StoreError> {
    let hash: Vec<u8> = r.try_get(at + 3)?;
    Ok(PersonalToken {
        id: r.try_get(at)?,
        member_id: r.try_get(at + 1)?,
        name: r.try_get(at + 2)?,
        token_hash: hash.try_into().map_err(|_| {
            StoreError::Corrupt("personal_tokens.token_hash is not 32 bytes".into())
        })?,
        created_at: from_micros(r.try_get(at + 4)?)?,
        expires_at: from_micros(r.try_get(at + 5)?)?,
        last_used_at: r
            .try_get::<Option<i64>, _>(at + 6)?
            .map(from_micros)
            .transpose()?,
    })
}
