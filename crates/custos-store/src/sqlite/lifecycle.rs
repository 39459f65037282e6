//! [`crate::LifecycleStore`] on SQLite.

use super::*;

#[async_trait::async_trait]
impl crate::LifecycleStore for SqliteStore {
    async fn claim_due(
        &self,
        now: jiff::Timestamp,
        lease_until: jiff::Timestamp,
        limit: u32,
    ) -> Result<Vec<DueRecord>, StoreError> {
        self.write(move |conn| {
            // One statement claims the batch: SQLite's single writer makes it atomic against
            // other processes' sweepers, and there is no per-row round trip.
            let mut stmt = conn.prepare_cached(&format!(
                "UPDATE records SET lease_until = ?3
                 WHERE rowid IN (
                     SELECT rowid FROM records
                     WHERE next_due_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)
                     ORDER BY next_due_at LIMIT ?2)
                 RETURNING {CLAIM_COLUMNS}, {ORG_OF_ROW}"
            ))?;
            let mut rows = stmt.query(params![to_micros(now), limit, to_micros(lease_until)])?;
            let mut due = Vec::new();
            while let Some(r) = rows.next()? {
                due.push(due_from_row(r)?);
            }
            due.sort_by_key(|d| d.row.next_due_at);
            Ok(due)
        })
        .await
    }

    async fn peek_due(
        &self,
        as_of: jiff::Timestamp,
        after: Option<&DueCursor>,
        limit: u32,
    ) -> Result<Vec<DueRecord>, StoreError> {
        let after = after.cloned();
        self.read(move |c| {
            let (due, org, id) = match &after {
                Some(a) => (to_micros(a.due_at), a.org.clone(), a.id.clone()),
                None => (i64::MIN, String::new(), String::new()),
            };
            let mut stmt = c.prepare_cached(&format!(
                "SELECT * FROM (
                     SELECT {RECORD_COLUMNS}, {ORG_OF_ROW} AS org_id FROM records
                     WHERE next_due_at <= ?1)
                 WHERE (next_due_at, org_id, id) > (?2, ?3, ?4)
                 ORDER BY next_due_at, org_id, id LIMIT ?5"
            ))?;
            let mut rows = stmt.query(params![to_micros(as_of), due, org, id, limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(due_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn request_purges(
        &self,
        scope: &OrgScope,
        targets: &[(String, RecordState)],
        cause: PurgeCause,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let (org, targets) = (scope.org_id().to_string(), targets.to_vec());
        let to = cause.state().as_str();
        self.mutate(audit, move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "UPDATE records SET state = ?5, deleted_at = ?4, next_due_at = ?4,
                        lease_until = NULL
                 WHERE {IN_ORG} AND id = ?2 AND state = ?3"
            ))?;
            let mut n = 0u64;
            for (id, state) in &targets {
                n += stmt.execute(params![org, id, state.as_str(), to_micros(at), to])? as u64;
            }
            Ok(n)
        })
        .await
    }

    async fn defer_record(
        &self,
        scope: &OrgScope,
        id: &str,
        until: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        self.write(move |c| {
            c.execute(
                &format!("UPDATE records SET lease_until = ?3 WHERE {IN_ORG} AND id = ?2"),
                params![org, id, to_micros(until)],
            )?;
            Ok(())
        })
        .await
    }

    async fn archive_record(
        &self,
        scope: &OrgScope,
        id: &str,
        from: RecordState,
        next_due_at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        self.mutate_if(audit, move |tx| {
            Ok(tx.execute(
                &format!(
                    "UPDATE records SET state = 'archived', sealed = NULL, next_due_at = ?4,
                            lease_until = NULL
                     WHERE {IN_ORG} AND id = ?2 AND state = ?3"
                ),
                params![org, id, from.as_str(), to_micros(next_due_at)],
            )? == 1)
        })
        .await
    }

    async fn purge_records(
        &self,
        scope: &OrgScope,
        purges: &[Purge],
        event: &AuditEvent,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let org = scope.org_id().to_string();
        let purges = purges.to_vec();
        let event = AuditColumns::of(event);
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let mut kept = Vec::new();
            let audit_idx = crate::sqlite::audit_log::log_size(&tx)? as i64;
            {
                let mut delete = tx.prepare_cached(&format!(
                    "DELETE FROM records WHERE {IN_ORG} AND id = ?2 AND state = ?3"
                ))?;
                let mut log = tx.prepare_cached(
                    "INSERT INTO deletion_log
                         (org_id, record_id, category, created_at, due_at, purged_at, reason,
                          audit_idx)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for p in &purges {
                    let e = &p.entry;
                    if delete.execute(params![org, e.record_id, p.from.as_str()])? == 1 {
                        kept.push(e.record_id.clone());
                        log.execute(params![
                            org,
                            e.record_id,
                            e.category,
                            to_micros(e.created_at),
                            to_micros(e.due_at),
                            to_micros(e.purged_at),
                            e.reason,
                            audit_idx
                        ])?;
                    }
                }
            }
            if kept.len() < purges.len() {
                // Dropping the transaction rolls it back: the event describes every record
                // of the batch, so a partial batch is retried with a new event.
                return Ok(Some(kept));
            }
            append_audit(&tx, std::slice::from_ref(&event))?;
            tx.commit()?;
            Ok(None)
        })
        .await
    }

    async fn open_archive_window(
        &self,
        scope: &OrgScope,
        id: &str,
        until: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        self.mutate_if(audit, move |tx| {
            Ok(tx.execute(
                &format!(
                    "UPDATE records SET readable_until = ?3
                     WHERE {IN_ORG} AND id = ?2 AND state = 'archived'"
                ),
                params![org, id, to_micros(until)],
            )? == 1)
        })
        .await
    }

    async fn archive_window(
        &self,
        scope: &OrgScope,
        id: &str,
    ) -> Result<Option<jiff::Timestamp>, StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        self.read(move |c| {
            let until: Option<i64> = c
                .prepare_cached(&format!(
                    "SELECT readable_until FROM records
                     WHERE {IN_ORG} AND id = ?2 AND state = 'archived'"
                ))?
                .query_row(params![org, id], |r| r.get(0))
                .optional()?
                .flatten();
            opt_time(until)
        })
        .await
    }

    async fn forget_deleted(&self) -> Result<(), StoreError> {
        self.write(|c| {
            // (busy, frames in WAL, frames checkpointed); busy means a reader or the
            // checkpointer thread held part of the WAL. Retry briefly; if it stays busy, the
            // next sweep truncates (the pages themselves were already zeroed).
            // Short sleeps: the usual blocker is the checkpointer thread's own pass, which
            // ends within milliseconds.
            for _ in 0..500 {
                let busy: i64 = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
                if busy == 0 {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            tracing::warn!(
                "WAL truncation stayed blocked by readers; retrying after the next purge"
            );
            Ok(())
        })
        .await
    }

    async fn deletion_log(
        &self,
        scope: &OrgScope,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeletionEntry>, StoreError> {
        let org = scope.org_id().to_string();
        let after = after.unwrap_or("").to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT record_id, category, created_at, due_at, purged_at, reason, audit_idx
                 FROM deletion_log WHERE org_id = ?1 AND record_id > ?2
                 ORDER BY record_id LIMIT ?3",
            )?;
            let mut rows = stmt.query(params![org, after, limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(DeletionEntry {
                    record_id: r.get(0)?,
                    category: r.get(1)?,
                    created_at: from_micros(r.get(2)?)?,
                    due_at: from_micros(r.get(3)?)?,
                    purged_at: from_micros(r.get(4)?)?,
                    reason: r.get(5)?,
                    audit_index: r.get::<_, Option<i64>>(6)?.map(|i| i as u64),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn pending_recomputes(&self) -> Result<Vec<PendingRecompute>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT org_id, category, after_id FROM due_recompute ORDER BY org_id, category",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(PendingRecompute {
                    scope: OrgScope::new(r.get(0)?),
                    category: r.get(1)?,
                    after: r.get(2)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn apply_recompute(
        &self,
        scope: &OrgScope,
        category: &str,
        updates: &[DueUpdate],
        next_after: Option<&str>,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, cat) = (scope.org_id().to_string(), category.to_string());
        let (updates, next_after) = (updates.to_vec(), next_after.map(str::to_string));
        let audit = if next_after.is_none() { audit } else { &[] };
        self.mutate(audit, move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "UPDATE records SET archive_at = ?4, expire_at = ?5, next_due_at = ?6
                 WHERE {IN_ORG} AND id = ?2 AND state = ?3"
            ))?;
            for u in &updates {
                stmt.execute(params![
                    org,
                    u.id,
                    u.state.as_str(),
                    u.archive_at.map(to_micros),
                    to_micros(u.expire_at),
                    to_micros(u.next_due_at)
                ])?;
            }
            match &next_after {
                Some(after) => tx.execute(
                    "UPDATE due_recompute SET after_id = ?3 WHERE org_id = ?1 AND category = ?2",
                    params![org, cat, after],
                )?,
                None => tx.execute(
                    "DELETE FROM due_recompute WHERE org_id = ?1 AND category = ?2",
                    params![org, cat],
                )?,
            };
            Ok(())
        })
        .await
    }
}
