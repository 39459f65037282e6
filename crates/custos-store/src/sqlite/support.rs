//! [`crate::SupportStore`] on SQLite.

use super::*;
use crate::support::{
    categories_from_json, categories_json, transition_sql, SupportRequestRow, SupportTransition,
    SUPPORT_COLUMNS,
};

fn support_from_row(r: &rusqlite::Row<'_>) -> Result<SupportRequestRow, StoreError> {
    Ok(SupportRequestRow {
        id: r.get(0)?,
        requested_by: r.get(1)?,
        justification: r.get(2)?,
        ticket: r.get(3)?,
        reason: r.get(4)?,
        scope: r.get(5)?,
        categories: categories_from_json(r.get(6)?)?,
        duration: r.get(7)?,
        created_at: from_micros(r.get(8)?)?,
        expires_at: from_micros(r.get(9)?)?,
        status: r.get(10)?,
        decided_by: r.get(11)?,
        decided_at: opt_time(r.get(12)?)?,
        active_until: opt_time(r.get(13)?)?,
        revoked_by: r.get(14)?,
        revoked_at: opt_time(r.get(15)?)?,
    })
}

#[async_trait::async_trait]
impl crate::SupportStore for SqliteStore {
    async fn add_support_request(
        &self,
        scope: &OrgScope,
        request: &SupportRequestRow,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, r) = (scope.org_id().to_string(), request.clone());
        self.mutate(audit, move |tx| {
            tx.execute(
                "INSERT INTO support_requests (org_id, id, requested_by, justification, ticket,
                     reason, scope, categories_json, duration, created_at, expires_at, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    org,
                    r.id,
                    r.requested_by,
                    r.justification,
                    r.ticket,
                    r.reason,
                    r.scope,
                    categories_json(&r.categories),
                    r.duration,
                    to_micros(r.created_at),
                    to_micros(r.expires_at),
                    r.status,
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn support_requests(
        &self,
        scope: &OrgScope,
    ) -> Result<Vec<SupportRequestRow>, StoreError> {
        let org = scope.org_id().to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {SUPPORT_COLUMNS} FROM support_requests WHERE org_id = ?1
                 ORDER BY created_at DESC, id DESC"
            ))?;
            let mut rows = stmt.query([&org])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(support_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn support_request(
        &self,
        scope: &OrgScope,
        id: &str,
    ) -> Result<Option<SupportRequestRow>, StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {SUPPORT_COLUMNS} FROM support_requests WHERE org_id = ?1 AND id = ?2"
            ))?;
            let mut rows = stmt.query(params![org, id])?;
            rows.next()?.map(support_from_row).transpose()
        })
        .await
    }

    async fn transition_support_request(
        &self,
        scope: &OrgScope,
        id: &str,
        change: &SupportTransition,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, id, c) = (scope.org_id().to_string(), id.to_string(), change.clone());
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let sql = transition_sql(&c.to, |n| format!("?{n}"));
            let mut args = vec![
                Value::Text(org),
                Value::Text(id),
                Value::Text(c.from),
                Value::Text(c.to.clone()),
                Value::Text(c.by),
                Value::Integer(to_micros(c.at)),
            ];
            if c.to != "revoked" {
                args.push(
                    c.active_until
                        .map_or(Value::Null, |t| Value::Integer(to_micros(t))),
                );
            }
            let n = tx.execute(&sql, rusqlite::params_from_iter(args))?;
            if n == 0 {
                return Ok(false);
            }
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}
