//! [`crate::OrgStore`] on SQLite.

use super::*;

#[async_trait::async_trait]
impl crate::OrgStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn create_org(&self, org: &Org, audit: &[AuditEvent]) -> Result<OrgScope, StoreError> {
        let org = org.clone();
        self.mutate(audit, move |tx| {
            tx.execute(
                "INSERT INTO orgs (id, name, region, created_at, seq)
                 VALUES (?1, ?2, ?3, ?4, (SELECT COALESCE(MAX(seq), 0) + 1 FROM orgs))",
                params![org.id, org.name, org.region, to_micros(org.created_at)],
            )?;
            Ok(OrgScope::new(org.id))
        })
        .await
    }

    async fn org(&self, id: &str) -> Result<Option<(OrgScope, Org)>, StoreError> {
        let id = id.to_string();
        self.read_point(move |c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = ?1"))?;
            let mut rows = stmt.query([&id])?;
            match rows.next()? {
                Some(r) => {
                    let org = org_from_row(r)?;
                    Ok(Some((OrgScope::new(org.id.clone()), org)))
                }
                None => Ok(None),
            }
        })
        .await
    }

    async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {ORG_COLUMNS} FROM orgs ORDER BY created_at, id"
            ))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(org_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn set_org_suspended(
        &self,
        scope: &OrgScope,
        at: Option<jiff::Timestamp>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let org = scope.org_id().to_string();
        let sql = if at.is_some() {
            "UPDATE orgs SET suspended_at = ?2 WHERE id = ?1 AND suspended_at IS NULL"
        } else {
            "UPDATE orgs SET suspended_at = ?2 WHERE id = ?1 AND suspended_at IS NOT NULL"
        };
        self.mutate_if(audit, move |tx| {
            Ok(tx.execute(sql, params![org, at.map(to_micros)])? == 1)
        })
        .await
    }

    async fn request_termination(
        &self,
        scope: &OrgScope,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let org = scope.org_id().to_string();
        self.mutate_if(audit, move |tx| {
            let started = tx.execute(
                "UPDATE orgs SET terminate_requested_at = ?2
                 WHERE id = ?1 AND terminate_requested_at IS NULL",
                params![org, to_micros(at)],
            )? == 1;
            if started {
                tx.execute("DELETE FROM members WHERE org_id = ?1", [&org])?;
                tx.execute(
                    &format!(
                        "UPDATE records SET next_due_at = ?2, lease_until = NULL WHERE {IN_ORG}"
                    ),
                    params![org, to_micros(at)],
                )?;
            }
            Ok(started)
        })
        .await
    }

    async fn finish_termination(
        &self,
        scope: &OrgScope,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let org = scope.org_id().to_string();
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let requested: Option<i64> = tx.query_row(
                "SELECT terminate_requested_at FROM orgs WHERE id = ?1 AND terminated_at IS NULL",
                [&org],
                |r| r.get(0),
            ).optional()?.flatten();
            let Some(requested) = requested else {
                return Ok(false);
            };
            // A record written while the termination started (a member's request already
            // past authentication) is made due like the rest, and purged next pass.
            tx.execute(
                &format!(
                    "UPDATE records SET next_due_at = ?2
                     WHERE {IN_ORG} AND (next_due_at IS NULL OR next_due_at > ?2)"
                ),
                params![org, requested],
            )?;
            let left: bool = tx.query_row(
                &format!("SELECT EXISTS (SELECT 1 FROM records WHERE {IN_ORG})"),
                [&org],
                |r| r.get(0),
            )?;
            if left {
                // Committed: the stragglers stay due, for the next pass.
                tx.commit()?;
                return Ok(false);
            }
            for table in TERMINATED_ORG_TABLES {
                tx.execute(&format!("DELETE FROM {table} WHERE org_id = ?1"), [&org])?;
            }
            tx.execute(
                "UPDATE orgs SET terminated_at = ?2 WHERE id = ?1",
                params![org, to_micros(at)],
            )?;
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn set_retention_override(
        &self,
        scope: &OrgScope,
        category: &str,
        retention: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, cat, ret) = (
            scope.org_id().to_string(),
            category.to_string(),
            retention.to_string(),
        );
        self.mutate(audit, move |tx| {
            tx.execute(
                "INSERT INTO retention_overrides (org_id, category, retention) VALUES (?1, ?2, ?3)
                 ON CONFLICT (org_id, category) DO UPDATE SET retention = excluded.retention",
                params![org, cat, ret],
            )?;
            // Start over: records already done used the previous override.
            tx.execute(
                "INSERT INTO due_recompute (org_id, category, after_id) VALUES (?1, ?2, '')
                 ON CONFLICT (org_id, category) DO UPDATE SET after_id = ''",
                params![org, cat],
            )?;
            Ok(())
        })
        .await
    }

    async fn retention_overrides(
        &self,
        scope: &OrgScope,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let org = scope.org_id().to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT category, retention FROM retention_overrides WHERE org_id = ?1
                 ORDER BY category",
            )?;
            let rows = stmt.query_map([&org], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn create_hold(
        &self,
        scope: &OrgScope,
        hold: &Hold,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, h) = (scope.org_id().to_string(), hold.clone());
        self.mutate(audit, move |tx| {
            tx.execute(
                "INSERT INTO holds (org_id, id, reason, subject_ref, category, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    org,
                    h.id,
                    h.reason,
                    h.subject_ref,
                    h.category,
                    to_micros(h.created_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn release_hold(
        &self,
        scope: &OrgScope,
        id: &str,
        released_at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(
                "UPDATE holds SET released_at = ?3
                 WHERE org_id = ?1 AND id = ?2 AND released_at IS NULL",
                params![org, id, to_micros(released_at)],
            )?;
            if n == 0 {
                return Ok(false);
            }
            // Records the sweeper set aside while held are due again at once, not after
            // their recheck lease (a held record is only ever deferred, never in process).
            tx.execute(
                &format!(
                    "UPDATE records SET lease_until = NULL
                     WHERE {IN_ORG} AND lease_until IS NOT NULL
                       AND EXISTS (SELECT 1 FROM holds h WHERE h.org_id = ?1 AND h.id = ?2
                           AND (h.subject_ref IS NULL OR h.subject_ref = records.subject_ref)
                           AND (h.category IS NULL OR h.category = records.category))"
                ),
                params![org, id],
            )?;
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn holds(&self, scope: &OrgScope) -> Result<Vec<Hold>, StoreError> {
        let org = scope.org_id().to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, reason, subject_ref, category, created_at FROM holds
                 WHERE org_id = ?1 AND released_at IS NULL ORDER BY created_at, id",
            )?;
            let mut rows = stmt.query([&org])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(Hold {
                    id: r.get(0)?,
                    reason: r.get(1)?,
                    subject_ref: r.get(2)?,
                    category: r.get(3)?,
                    created_at: from_micros(r.get(4)?)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn set_org_region(
        &self,
        scope: &OrgScope,
        region: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, region) = (scope.org_id().to_string(), region.to_string());
        self.mutate(audit, move |tx| {
            tx.execute(
                "UPDATE orgs SET region = ?2 WHERE id = ?1",
                params![org, region],
            )?;
            Ok(())
        })
        .await
    }

    async fn export_org(&self, scope: &OrgScope) -> Result<crate::OrgRows, StoreError> {
        let scope = scope.clone();
        // One read transaction: a consistent copy even while the org is written to.
        self.read(move |c| {
            c.execute_batch("BEGIN")?;
            let out = crate::sqlite::org_rows::sqlite_export(c, &scope);
            c.execute_batch("COMMIT")?;
            out
        })
        .await
    }

    async fn import_org(
        &self,
        rows: &crate::OrgRows,
        region: &str,
        audit: &[AuditEvent],
    ) -> Result<OrgScope, StoreError> {
        let (rows, region) = (rows.clone(), region.to_string());
        self.mutate(audit, move |tx| {
            crate::sqlite::org_rows::sqlite_import(tx, &rows, &region)
        })
        .await
    }

    async fn drop_org(
        &self,
        scope: &OrgScope,
        expect: Option<&crate::OrgRows>,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (scope, expect) = (scope.clone(), expect.cloned());
        // One write transaction: nothing can be written between the check and the delete.
        self.mutate(audit, move |tx| {
            if let Some(expect) = &expect {
                if crate::sqlite::org_rows::sqlite_export(tx, &scope)? != *expect {
                    return Err(StoreError::Conflict(
                        "the org changed while it was being moved".into(),
                    ));
                }
            }
            crate::sqlite::org_rows::sqlite_delete(tx, scope.org_id())
        })
        .await
    }

    async fn claim_org_move(
        &self,
        org_id: &str,
        holder: &str,
        now: jiff::Timestamp,
        lease_until: jiff::Timestamp,
    ) -> Result<bool, StoreError> {
        let (org, holder) = (org_id.to_string(), holder.to_string());
        self.mutate_if(&[], move |tx| {
            Ok(tx.execute(
                "INSERT INTO org_moves (org_id, holder, lease_until) VALUES (?1, ?2, ?4)
                 ON CONFLICT (org_id) DO UPDATE
                 SET holder = excluded.holder, lease_until = excluded.lease_until
                 WHERE org_moves.lease_until <= ?3 OR org_moves.holder = excluded.holder",
                params![org, holder, to_micros(now), to_micros(lease_until)],
            )? == 1)
        })
        .await
    }

    async fn org_move_claimed(
        &self,
        org_id: &str,
        now: jiff::Timestamp,
    ) -> Result<bool, StoreError> {
        let org = org_id.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT EXISTS (SELECT 1 FROM org_moves WHERE org_id = ?1 AND lease_until > ?2)",
                params![org, to_micros(now)],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn release_org_move(&self, org_id: &str, holder: &str) -> Result<(), StoreError> {
        let (org, holder) = (org_id.to_string(), holder.to_string());
        self.mutate(&[], move |tx| {
            tx.execute(
                "DELETE FROM org_moves WHERE org_id = ?1 AND holder = ?2",
                [&org, &holder],
            )?;
            Ok(())
        })
        .await
    }
}
