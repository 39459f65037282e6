//! [`crate::OperatorStore`] on SQLite.

use super::*;
use crate::operators::{
    first_operator_sql, operator_session_query, OperatorRow, OperatorSession, OPERATOR_COLUMNS,
};

fn operator_from_row(r: &rusqlite::Row<'_>) -> Result<OperatorRow, StoreError> {
    Ok(OperatorRow {
        id: r.get(0)?,
        name: r.get(1)?,
        identity: PersonIdentity {
            iss: r.get(2)?,
            sub: r.get(3)?,
        },
        created_at: from_micros(r.get(4)?)?,
        created_by: r.get(5)?,
    })
}

#[async_trait::async_trait]
impl crate::OperatorStore for SqliteStore {
    async fn add_first_operator(
        &self,
        operator: &OperatorRow,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let o = operator.clone();
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        // SQLite serializes writers, so the emptiness check and the insert cannot interleave.
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(
                &first_operator_sql(|n| format!("?{n}")),
                params![
                    o.id,
                    o.name,
                    o.identity.iss,
                    o.identity.sub,
                    to_micros(o.created_at),
                    o.created_by
                ],
            )?;
            if n == 0 {
                return Ok(false);
            }
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn operators(&self) -> Result<Vec<OperatorRow>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY created_at, id"
            ))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(operator_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn has_operators(&self) -> Result<bool, StoreError> {
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT EXISTS (SELECT 1 FROM operators)")?
                .query_row([], |r| r.get::<_, bool>(0))?)
        })
        .await
    }

    async fn operator_by_identity(
        &self,
        person: &PersonIdentity,
    ) -> Result<Option<OperatorRow>, StoreError> {
        let (iss, sub) = (person.iss.clone(), person.sub.clone());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {OPERATOR_COLUMNS} FROM operators WHERE identity_iss = ?1 AND identity_sub = ?2"
            ))?;
            let mut rows = stmt.query(params![iss, sub])?;
            rows.next()?.map(operator_from_row).transpose()
        })
        .await
    }

    async fn start_operator_session(
        &self,
        session: &OperatorSession,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let s = session.clone();
        self.mutate_if(audit, move |tx| {
            tx.execute(
                "INSERT INTO operator_sessions
                     (token_hash, operator_id, expires_at, created_at, last_used_at, idle_seconds)
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5)",
                params![
                    &s.token_hash[..],
                    s.operator_id,
                    to_micros(s.expires_at),
                    to_micros(s.created_at),
                    s.idle_seconds
                ],
            )?;
            Ok(true)
        })
        .await
        .map(|_| ())
    }

    async fn operator_session(
        &self,
        token_hash: &[u8; 32],
        now: jiff::Timestamp,
    ) -> Result<Option<(OperatorRow, OperatorSession)>, StoreError> {
        let hash = *token_hash;
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&operator_session_query(|n| format!("?{n}")))?;
            let mut rows = stmt.query(params![&hash[..], to_micros(now)])?;
            let Some(r) = rows.next()? else {
                return Ok(None);
            };
            let operator = operator_from_row(r)?;
            let session = OperatorSession {
                token_hash: hash,
                operator_id: operator.id.clone(),
                expires_at: from_micros(r.get(6)?)?,
                created_at: from_micros(r.get(7)?)?,
                last_used_at: r.get::<_, Option<i64>>(8)?.map(from_micros).transpose()?,
                idle_seconds: r.get(9)?,
            };
            Ok(Some((operator, session)))
        })
        .await
    }

    async fn note_operator_session_use(
        &self,
        token_hash: &[u8; 32],
        at: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let (hash, at) = (*token_hash, to_micros(at));
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE operator_sessions SET last_used_at = max(coalesce(last_used_at, ?2), ?2)
                 WHERE token_hash = ?1",
            )?
            .execute(params![&hash[..], at])?;
            Ok(())
        })
        .await
    }

    async fn end_operator_session(
        &self,
        token_hash: &[u8; 32],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let hash = *token_hash;
        self.mutate_if(audit, move |tx| {
            Ok(tx.execute(
                "DELETE FROM operator_sessions WHERE token_hash = ?1",
                params![&hash[..]],
            )? == 1)
        })
        .await
    }
}
