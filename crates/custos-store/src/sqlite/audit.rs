//! [`crate::AuditStore`] on SQLite.

use super::*;

impl SqliteStore {
    /// The entries an `SELECT idx, leaf ...` query with `args` finds.
    async fn entries_where(
        &self,
        sql: String,
        args: Vec<Value>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(AuditEntry {
                    index: r.get::<_, i64>(0)? as u64,
                    leaf: r.get(1)?,
                });
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait::async_trait]
impl crate::AuditStore for SqliteStore {
    async fn append_audit(&self, audit: &[AuditEvent]) -> Result<(), StoreError> {
        self.mutate(audit, |_| Ok(())).await
    }

    async fn audit_query(
        &self,
        scope: Option<&OrgScope>,
        filter: &AuditFilter,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut sql = String::from("SELECT idx, leaf FROM audit_log WHERE idx >= ?");
        let mut args: Vec<Value> = vec![Value::Integer(from as i64)];
        let mut text = |column: &str, v: &Option<String>, sql: &mut String| {
            if let Some(v) = v {
                sql.push_str(&format!(" AND {column} = ?"));
                args.push(Value::Text(v.clone()));
            }
        };
        text("org_id", &scope.map(|s| s.org_id().to_string()), &mut sql);
        text("actor", &filter.actor, &mut sql);
        text("action", &filter.action, &mut sql);
        text("target", &filter.target, &mut sql);
        if let Some(t) = filter.since {
            sql.push_str(" AND time >= ?");
            args.push(Value::Integer(to_micros(t)));
        }
        if let Some(t) = filter.until {
            sql.push_str(" AND time < ?");
            args.push(Value::Integer(to_micros(t)));
        }
        sql.push_str(" ORDER BY idx LIMIT ?");
        args.push(Value::Integer(limit as i64));
        self.entries_where(sql, args).await
    }

    async fn audit_by_actions(
        &self,
        from: u64,
        end: u64,
        actions: &[String],
        actors: &[String],
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let marks = |n: usize| vec!["?"; n].join(", ");
        let mut sql = format!(
            "SELECT idx, leaf FROM audit_log WHERE idx >= ? AND idx < ? AND action IN ({})",
            marks(actions.len())
        );
        if !actors.is_empty() {
            sql.push_str(&format!(" AND actor IN ({})", marks(actors.len())));
        }
        sql.push_str(" ORDER BY idx LIMIT ?");
        let mut args: Vec<Value> = vec![Value::Integer(from as i64), Value::Integer(end as i64)];
        args.extend(actions.iter().map(|a| Value::Text(a.clone())));
        args.extend(actors.iter().map(|a| Value::Text(a.clone())));
        args.push(Value::Integer(limit as i64));
        self.entries_where(sql, args).await
    }

    async fn audit_entries(
        &self,
        scope: Option<&OrgScope>,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let org = scope.map(|s| s.org_id().to_string());
        self.read(move |c| {
            let mut out = Vec::new();
            let mut push = |r: &rusqlite::Row<'_>| -> Result<(), StoreError> {
                out.push(AuditEntry {
                    index: r.get::<_, i64>(0)? as u64,
                    leaf: r.get(1)?,
                });
                Ok(())
            };
            match &org {
                Some(org) => {
                    let mut stmt = c.prepare_cached(
                        "SELECT idx, leaf FROM audit_log WHERE org_id = ?1 AND idx >= ?2
                         ORDER BY idx LIMIT ?3",
                    )?;
                    let mut rows = stmt.query(params![org, from as i64, limit])?;
                    while let Some(r) = rows.next()? {
                        push(r)?;
                    }
                }
                None => {
                    let mut stmt = c.prepare_cached(
                        "SELECT idx, leaf FROM audit_log WHERE idx >= ?1 ORDER BY idx LIMIT ?2",
                    )?;
                    let mut rows = stmt.query(params![from as i64, limit])?;
                    while let Some(r) = rows.next()? {
                        push(r)?;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn audit_size(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 =
                c.query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_log", [], |r| {
                    r.get(0)
                })?;
            Ok(n as u64)
        })
        .await
    }

    async fn audit_rows(&self, from: u64, limit: u32) -> Result<Vec<crate::AuditRow>, StoreError> {
        self.read(move |c| crate::sqlite::audit_log::rows(c, from, limit))
            .await
    }

    async fn audit_root(&self, size: u64) -> Result<custos_audit::Hash, StoreError> {
        self.read(move |c| crate::sqlite::audit_log::root(c, size))
            .await
    }

    async fn audit_inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<custos_audit::InclusionProof, StoreError> {
        self.read(move |c| crate::sqlite::audit_log::inclusion(c, index, size))
            .await
    }

    async fn audit_consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<custos_audit::ConsistencyProof, StoreError> {
        self.read(move |c| crate::sqlite::audit_log::consistency(c, old_size, new_size))
            .await
    }

    async fn add_audit_checkpoint(
        &self,
        checkpoint: &crate::StoredCheckpoint,
    ) -> Result<crate::StoredCheckpoint, StoreError> {
        let cp = checkpoint.clone();
        self.write(move |c| crate::sqlite::audit_log::add_checkpoint(c, &cp))
            .await
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<crate::StoredCheckpoint>, StoreError> {
        self.read(crate::sqlite::audit_log::latest_checkpoint).await
    }

    async fn audit_checkpoints(
        &self,
        from_size: u64,
        limit: u32,
    ) -> Result<Vec<crate::StoredCheckpoint>, StoreError> {
        self.read(move |c| crate::sqlite::audit_log::checkpoints(c, from_size, limit))
            .await
    }
}
