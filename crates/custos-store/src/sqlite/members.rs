//! [`MemberStore`] on SQLite.

use custos_audit::AuditEvent;
use rusqlite::{params, OptionalExtension};

use crate::members::{
    EnrollmentCode, MemberStore, PersonalToken, Session, TotpFactor, MEMBER_COLUMNS,
};
use crate::model::{from_micros, to_micros};
use crate::sqlite::member_from_row;
use crate::{Member, OrgScope, PersonIdentity, SqliteStore, StoreError};

fn json(values: &[String]) -> String {
    serde_json::to_string(values).expect("strings serialize")
}

/// Whether the org has the member (inside `tx`).
fn member_exists(tx: &rusqlite::Transaction<'_>, org: &str, id: &str) -> Result<bool, StoreError> {
    let found: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM members WHERE org_id = ?1 AND id = ?2",
            [org, id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(found.is_some())
}

/// A [`PersonalToken`] from the row's columns starting at `at`.
fn personal_token_from_row(r: &rusqlite::Row<'_>, at: usize) -> Result<PersonalToken, StoreError> {
    let hash: Vec<u8> = r.get(at + 3)?;
    Ok(PersonalToken {
        id: r.get(at)?,
        member_id: r.get(at + 1)?,
        name: r.get(at + 2)?,
        token_hash: hash.try_into().map_err(|_| {
            StoreError::Corrupt("personal_tokens.token_hash is not 32 bytes".into())
        })?,
        created_at: from_micros(r.get(at + 4)?)?,
        expires_at: from_micros(r.get(at + 5)?)?,
        last_used_at: r
            .get::<_, Option<i64>>(at + 6)?
            .map(from_micros)
            .transpose()?,
    })
}

/// Inserts `s` as a session of `org` inside `tx`.
fn insert_session(
    tx: &rusqlite::Transaction<'_>,
    org: &str,
    s: &Session,
) -> Result<(), StoreError> {
    tx.execute(
        &crate::members::insert_session_sql(|n| format!("?{n}")),
        params![
            &s.token_hash[..],
            org,
            s.member_id,
            s.method,
            to_micros(s.expires_at),
            s.second_factor,
            s.created_at.map(to_micros),
            s.idle_seconds
        ],
    )?;
    Ok(())
}

/// Deletes a member's rows from `tables` (its factor, its sessions) inside `tx`.
fn forget(
    tx: &rusqlite::Transaction<'_>,
    tables: &[&str],
    org: &str,
    member: &str,
) -> Result<(), StoreError> {
    for table in tables {
        tx.execute(
            &format!("DELETE FROM {table} WHERE org_id = ?1 AND member_id = ?2"),
            [org, member],
        )?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MemberStore for SqliteStore {
    async fn member_by_identity(
        &self,
        scope: &OrgScope,
        identity: &PersonIdentity,
    ) -> Result<Option<Member>, StoreError> {
        let (org, iss, sub) = (
            scope.org_id().to_string(),
            identity.iss.clone(),
            identity.sub.clone(),
        );
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {MEMBER_COLUMNS} FROM members
                 WHERE org_id = ?1 AND identity_iss = ?2 AND identity_sub = ?3"
            ))?;
            let mut rows = stmt.query(params![org, iss, sub])?;
            rows.next()?.map(member_from_row).transpose()
        })
        .await
    }

    async fn add_member(
        &self,
        scope: &OrgScope,
        member: &Member,
        key_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, m, hash) = (scope.org_id().to_string(), member.clone(), *key_hash);
        self.mutate(audit, move |tx| {
            tx.execute(
                "INSERT INTO members (org_id, id, name, roles, groups_json, mfa, key_hash, created_at,
                                      identity_iss, identity_sub)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    org,
                    m.id,
                    m.name,
                    serde_json::to_string(&m.roles).expect("strings serialize"),
                    serde_json::to_string(&m.groups).expect("strings serialize"),
                    m.mfa,
                    &hash[..],
                    to_micros(m.created_at),
                    m.identity.as_ref().map(|i| i.iss.clone()),
                    m.identity.as_ref().map(|i| i.sub.clone()),
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn member_by_key_hash(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<(OrgScope, Member)>, StoreError> {
        let hash = *key_hash;
        self.read_point(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {}, org_id FROM members WHERE key_hash = ?1",
                crate::members::MEMBER_COLUMNS
            ))?;
            let mut rows = stmt.query([&hash[..]])?;
            match rows.next()? {
                Some(r) => Ok(Some((
                    OrgScope::new(r.get(crate::members::MEMBER_COLUMN_COUNT)?),
                    member_from_row(r)?,
                ))),
                None => Ok(None),
            }
        })
        .await
    }

    async fn members(&self, scope: &OrgScope) -> Result<Vec<Member>, StoreError> {
        let org = scope.org_id().to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = ?1 ORDER BY created_at, id"
            ))?;
            let mut rows = stmt.query([&org])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(member_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn member(&self, scope: &OrgScope, id: &str) -> Result<Option<Member>, StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = ?1 AND id = ?2"
            ))?;
            let mut rows = stmt.query([&org, &id])?;
            rows.next()?.map(member_from_row).transpose()
        })
        .await
    }

    async fn update_member(
        &self,
        scope: &OrgScope,
        member: &Member,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, m) = (scope.org_id().to_string(), member.clone());
        self.mutate_if(audit, move |tx| {
            Ok(tx.execute(
                "UPDATE members SET name = ?3, roles = ?4, groups_json = ?5, mfa = ?6,
                                    identity_iss = ?7, identity_sub = ?8
                 WHERE org_id = ?1 AND id = ?2",
                params![
                    org,
                    m.id,
                    m.name,
                    json(&m.roles),
                    json(&m.groups),
                    m.mfa,
                    m.identity.as_ref().map(|i| i.iss.clone()),
                    m.identity.as_ref().map(|i| i.sub.clone()),
                ],
            )? == 1)
        })
        .await
    }

    async fn note_member_use(
        &self,
        scope: &OrgScope,
        id: &str,
        at: jiff::Timestamp,
        key: bool,
    ) -> Result<(), StoreError> {
        let (org, id, at) = (scope.org_id().to_string(), id.to_string(), to_micros(at));
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE members SET last_used_at = max(coalesce(last_used_at, ?3), ?3),
                    key_last_used_at = CASE WHEN ?4
                        THEN max(coalesce(key_last_used_at, ?3), ?3) ELSE key_last_used_at END
                 WHERE org_id = ?1 AND id = ?2",
            )?
            .execute(params![org, id, at, key])?;
            Ok(())
        })
        .await
    }

    async fn note_session_use(
        &self,
        scope: &OrgScope,
        token_hash: &[u8; 32],
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let (org, hash, at) = (scope.org_id().to_string(), *token_hash, to_micros(at));
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE sessions SET last_used_at = max(coalesce(last_used_at, ?3), ?3)
                 WHERE org_id = ?1 AND token_hash = ?2",
            )?
            .execute(params![org, &hash[..], at])?;
            Ok(())
        })
        .await
    }

    async fn set_member_disabled(
        &self,
        scope: &OrgScope,
        id: &str,
        at: Option<jiff::Timestamp>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, id, at) = (
            scope.org_id().to_string(),
            id.to_string(),
            at.map(to_micros),
        );
        self.mutate_if(audit, move |tx| {
            // Only a change counts: disabling twice (two sweeps) audits once.
            let changed = tx.execute(
                "UPDATE members SET disabled_at = ?3
                 WHERE org_id = ?1 AND id = ?2 AND (disabled_at IS NULL) = (?3 IS NOT NULL)",
                params![org, id, at],
            )? == 1;
            if changed && at.is_some() {
                forget(tx, &["sessions", "personal_tokens"], &org, &id)?;
            }
            Ok(changed)
        })
        .await
    }

    async fn remove_member(
        &self,
        scope: &OrgScope,
        id: &str,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        self.mutate_if(audit, move |tx| {
            let removed = tx.execute(
                "DELETE FROM members WHERE org_id = ?1 AND id = ?2",
                [&org, &id],
            )? == 1;
            if removed {
                forget(
                    tx,
                    &[
                        "member_factors",
                        "sessions",
                        "enrollment_codes",
                        "personal_tokens",
                    ],
                    &org,
                    &id,
                )?;
            }
            Ok(removed)
        })
        .await
    }

    async fn set_member_key(
        &self,
        scope: &OrgScope,
        id: &str,
        key_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, id, hash) = (scope.org_id().to_string(), id.to_string(), *key_hash);
        self.mutate_if(audit, move |tx| {
            let changed = tx.execute(
                "UPDATE members SET key_hash = ?3 WHERE org_id = ?1 AND id = ?2",
                params![org, id, &hash[..]],
            )? == 1;
            if changed {
                forget(tx, &["sessions"], &org, &id)?;
            }
            Ok(changed)
        })
        .await
    }

    async fn org_settings(&self, scope: &OrgScope) -> Result<Option<String>, StoreError> {
        let org = scope.org_id().to_string();
        self.read_point(move |c| {
            Ok(
                c.prepare_cached("SELECT settings FROM org_settings WHERE org_id = ?1")?
                    .query_row([&org], |r| r.get(0))
                    .optional()?,
            )
        })
        .await
    }

    async fn set_org_settings(
        &self,
        scope: &OrgScope,
        settings: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, settings) = (scope.org_id().to_string(), settings.to_string());
        self.mutate(audit, move |tx| {
            tx.execute(
                "INSERT INTO org_settings (org_id, settings) VALUES (?1, ?2)
                 ON CONFLICT (org_id) DO UPDATE SET settings = excluded.settings",
                [&org, &settings],
            )?;
            Ok(())
        })
        .await
    }

    async fn set_totp(
        &self,
        scope: &OrgScope,
        member_id: &str,
        sealed: &[u8],
        code: Option<&[u8; 32]>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, id, sealed, code) = (
            scope.org_id().to_string(),
            member_id.to_string(),
            sealed.to_vec(),
            code.copied(),
        );
        self.mutate_if(audit, move |tx| {
            if !member_exists(tx, &org, &id)? {
                return Ok(false);
            }
            if let Some(code) = code {
                let used = tx.execute(
                    "DELETE FROM enrollment_codes
                     WHERE org_id = ?1 AND member_id = ?2 AND code_hash = ?3",
                    params![org, id, &code[..]],
                )?;
                if used != 1 {
                    return Err(StoreError::Conflict(
                        "the enrollment code was already used".into(),
                    ));
                }
            }
            tx.execute(
                "INSERT INTO member_factors (org_id, member_id, totp_sealed, last_step, failures)
                 VALUES (?1, ?2, ?3, NULL, 0)
                 ON CONFLICT (org_id, member_id)
                 DO UPDATE SET totp_sealed = excluded.totp_sealed, last_step = NULL,
                     failures = 0, last_failure_at = NULL",
                params![org, id, sealed],
            )?;
            tx.execute(
                &format!(
                    "DELETE FROM sessions WHERE org_id = ?1 AND member_id = ?2
                     AND method IN {}",
                    crate::members::TOTP_SESSION_METHODS
                ),
                params![org, id],
            )?;
            Ok(true)
        })
        .await
    }

    async fn reserve_totp_attempt(
        &self,
        scope: &OrgScope,
        member_id: &str,
        seen: u32,
        now: jiff::Timestamp,
    ) -> Result<bool, StoreError> {
        let (org, id) = (scope.org_id().to_string(), member_id.to_string());
        // No audit event: this counts an attempt; the core audits its outcome.
        self.mutate_if(&[], move |tx| {
            Ok(tx.execute(
                "UPDATE member_factors SET failures = failures + 1, last_failure_at = ?4
                 WHERE org_id = ?1 AND member_id = ?2 AND failures = ?3",
                params![org, id, i64::from(seen), to_micros(now)],
            )? == 1)
        })
        .await
    }

    async fn clear_totp_failures(
        &self,
        scope: &OrgScope,
        member_id: &str,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, id) = (scope.org_id().to_string(), member_id.to_string());
        self.mutate_if(audit, move |tx| {
            Ok(tx.execute(
                "UPDATE member_factors SET failures = 0, last_failure_at = NULL
                 WHERE org_id = ?1 AND member_id = ?2",
                [&org, &id],
            )? == 1)
        })
        .await
    }

    async fn enrolled_members(&self, scope: &OrgScope) -> Result<Vec<String>, StoreError> {
        let org = scope.org_id().to_string();
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT member_id FROM member_factors WHERE org_id = ?1")?;
            let ids = stmt.query_map([&org], |r| r.get(0))?;
            Ok(ids.collect::<Result<Vec<String>, _>>()?)
        })
        .await
    }

    async fn set_enrollment_code(
        &self,
        scope: &OrgScope,
        member_id: &str,
        code: &EnrollmentCode,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, id, code) = (
            scope.org_id().to_string(),
            member_id.to_string(),
            code.clone(),
        );
        self.mutate_if(audit, move |tx| {
            if !member_exists(tx, &org, &id)? {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO enrollment_codes (org_id, member_id, code_hash, expires_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (org_id, member_id)
                 DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at",
                params![org, id, &code.code_hash[..], to_micros(code.expires_at)],
            )?;
            Ok(true)
        })
        .await
    }

    async fn enrollment_code(
        &self,
        scope: &OrgScope,
        member_id: &str,
    ) -> Result<Option<EnrollmentCode>, StoreError> {
        let (org, id) = (scope.org_id().to_string(), member_id.to_string());
        self.read(move |c| {
            let row: Option<(Vec<u8>, i64)> = c
                .prepare_cached(
                    "SELECT code_hash, expires_at FROM enrollment_codes
                     WHERE org_id = ?1 AND member_id = ?2",
                )?
                .query_row([&org, &id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            row.map(|(hash, expires)| {
                Ok(EnrollmentCode {
                    code_hash: hash.try_into().map_err(|_| {
                        StoreError::Corrupt("an enrollment code hash is not 32 bytes".into())
                    })?,
                    expires_at: from_micros(expires)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn totp(
        &self,
        scope: &OrgScope,
        member_id: &str,
    ) -> Result<Option<TotpFactor>, StoreError> {
        let (org, id) = (scope.org_id().to_string(), member_id.to_string());
        self.read(move |c| {
            let row: Option<(Vec<u8>, Option<i64>, i64, Option<i64>)> = c
                .prepare_cached(
                    "SELECT totp_sealed, last_step, failures, last_failure_at FROM member_factors
                     WHERE org_id = ?1 AND member_id = ?2",
                )?
                .query_row([&org, &id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            row.map(|(sealed, last_step, failures, last_failure_at)| {
                Ok(TotpFactor {
                    sealed,
                    last_step,
                    failures: u32::try_from(failures).unwrap_or(u32::MAX),
                    last_failure_at: last_failure_at.map(from_micros).transpose()?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn open_session(
        &self,
        scope: &OrgScope,
        session: &Session,
        step: i64,
        replaces: Option<&[u8; 32]>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, s, replaces) = (
            scope.org_id().to_string(),
            session.clone(),
            replaces.copied(),
        );
        self.mutate_if(audit, move |tx| {
            let used = tx.execute(
                "UPDATE member_factors SET last_step = ?3, failures = 0, last_failure_at = NULL
                 WHERE org_id = ?1 AND member_id = ?2 AND (last_step IS NULL OR last_step < ?3)",
                params![org, s.member_id, step],
            )? == 1;
            if used {
                if let Some(old) = replaces {
                    tx.execute(
                        "DELETE FROM sessions WHERE org_id = ?1 AND token_hash = ?2",
                        params![org, &old[..]],
                    )?;
                }
                insert_session(tx, &org, &s)?;
            }
            Ok(used)
        })
        .await
    }

    async fn start_session(
        &self,
        scope: &OrgScope,
        session: &Session,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, s) = (scope.org_id().to_string(), session.clone());
        self.mutate_if(audit, move |tx| {
            insert_session(tx, &org, &s)?;
            Ok(true)
        })
        .await
        .map(|_| ())
    }

    async fn end_session(
        &self,
        scope: &OrgScope,
        token_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, hash) = (scope.org_id().to_string(), *token_hash);
        self.mutate_if(audit, move |tx| {
            Ok(tx.execute(
                "DELETE FROM sessions WHERE org_id = ?1 AND token_hash = ?2",
                params![org, &hash[..]],
            )? == 1)
        })
        .await
    }

    async fn add_personal_token(
        &self,
        scope: &OrgScope,
        token: &PersonalToken,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, t) = (scope.org_id().to_string(), token.clone());
        self.mutate_if(audit, move |tx| {
            if !member_exists(tx, &org, &t.member_id)? {
                return Err(StoreError::Conflict(format!("no member {}", t.member_id)));
            }
            tx.execute(
                "INSERT INTO personal_tokens
                     (id, org_id, member_id, name, token_hash, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    t.id,
                    org,
                    t.member_id,
                    t.name,
                    &t.token_hash[..],
                    to_micros(t.created_at),
                    to_micros(t.expires_at)
                ],
            )?;
            Ok(true)
        })
        .await
        .map(|_| ())
    }

    async fn personal_tokens(
        &self,
        scope: &OrgScope,
        member_id: &str,
    ) -> Result<Vec<PersonalToken>, StoreError> {
        let (org, member) = (scope.org_id().to_string(), member_id.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {} FROM personal_tokens t WHERE t.org_id = ?1 AND t.member_id = ?2
                 ORDER BY t.created_at, t.id",
                crate::members::PERSONAL_TOKEN_COLUMNS
            ))?;
            let mut rows = stmt.query(params![org, member])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(personal_token_from_row(r, 0)?);
            }
            Ok(out)
        })
        .await
    }

    async fn revoke_personal_token(
        &self,
        scope: &OrgScope,
        member_id: &str,
        id: &str,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, member, id) = (
            scope.org_id().to_string(),
            member_id.to_string(),
            id.to_string(),
        );
        self.mutate_if(audit, move |tx| {
            Ok(tx.execute(
                "DELETE FROM personal_tokens WHERE org_id = ?1 AND member_id = ?2 AND id = ?3",
                params![org, member, id],
            )? == 1)
        })
        .await
    }

    async fn personal_token(
        &self,
        token_hash: &[u8; 32],
        now: jiff::Timestamp,
    ) -> Result<Option<(OrgScope, Member, PersonalToken)>, StoreError> {
        let hash = *token_hash;
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached(&crate::members::personal_token_query(|n| format!("?{n}")))?;
            let mut rows = stmt.query(params![&hash[..], to_micros(now)])?;
            let Some(r) = rows.next()? else {
                return Ok(None);
            };
            let member = member_from_row(r)?;
            let at = crate::members::MEMBER_COLUMN_COUNT;
            let token = personal_token_from_row(r, at)?;
            Ok(Some((OrgScope::new(r.get(at + 7)?), member, token)))
        })
        .await
    }

    async fn note_personal_token_use(
        &self,
        scope: &OrgScope,
        token_hash: &[u8; 32],
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let (org, hash, at) = (scope.org_id().to_string(), *token_hash, to_micros(at));
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE personal_tokens SET last_used_at = max(coalesce(last_used_at, ?3), ?3)
                 WHERE org_id = ?1 AND token_hash = ?2",
            )?
            .execute(params![org, &hash[..], at])?;
            Ok(())
        })
        .await
    }

    async fn session(
        &self,
        token_hash: &[u8; 32],
        now: jiff::Timestamp,
    ) -> Result<Option<(OrgScope, Member, Session)>, StoreError> {
        let hash = *token_hash;
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&crate::members::session_query(|n| format!("?{n}")))?;
            let mut rows = stmt.query(params![&hash[..], to_micros(now)])?;
            let Some(r) = rows.next()? else {
                return Ok(None);
            };
            let member = member_from_row(r)?;
            let at = crate::members::MEMBER_COLUMN_COUNT;
            let session = Session {
                token_hash: hash,
                member_id: member.id.clone(),
                method: r.get(at + 1)?,
                expires_at: from_micros(r.get(at + 2)?)?,
                last_used_at: r
                    .get::<_, Option<i64>>(at + 3)?
                    .map(from_micros)
                    .transpose()?,
                second_factor: r.get(at + 4)?,
                created_at: r
                    .get::<_, Option<i64>>(at + 5)?
                    .map(from_micros)
                    .transpose()?,
                idle_seconds: r.get(at + 6)?,
            };
            Ok(Some((OrgScope::new(r.get(at)?), member, session)))
        })
        .await
    }
}
