//! [`crate::LifecycleStore`] on PostgreSQL.

use super::*;

#[async_trait::async_trait]
impl crate::LifecycleStore for PgStore {
    async fn claim_due(
        &self,
        now: jiff::Timestamp,
        lease_until: jiff::Timestamp,
        limit: u32,
    ) -> Result<Vec<DueRecord>, StoreError> {
        // SKIP LOCKED: concurrent sweepers on other instances each take different rows
        // instead of queueing behind one another's claims.
        let rows = sqlx::query(&format!(
            "WITH due AS (
                 SELECT org_id, id FROM records
                 WHERE next_due_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
                 ORDER BY next_due_at LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             UPDATE records r SET lease_until = $2 FROM due
             WHERE r.org_id = due.org_id AND r.id = due.id
             RETURNING {}, r.org_id",
            RECORD_COLUMNS
                .split(", ")
                .map(|c| match c {
                    // Not returned: see `Store::claim_due`.
                    "sealed" => "NULL::bytea".to_string(),
                    c => format!("r.{c}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(to_micros(now))
        .bind(to_micros(lease_until))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut due: Vec<DueRecord> = rows.iter().map(due_from_row).collect::<Result<_, _>>()?;
        due.sort_by_key(|d| d.row.next_due_at);
        Ok(due)
    }

    async fn peek_due(
        &self,
        as_of: jiff::Timestamp,
        after: Option<&DueCursor>,
        limit: u32,
    ) -> Result<Vec<DueRecord>, StoreError> {
        let (due, org, id) = match after {
            Some(a) => (to_micros(a.due_at), a.org.clone(), a.id.clone()),
            None => (i64::MIN, String::new(), String::new()),
        };
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS}, org_id FROM records
             WHERE next_due_at <= $1 AND (next_due_at, org_id, id) > ($2, $3, $4)
             ORDER BY next_due_at, org_id, id LIMIT $5"
        ))
        .bind(to_micros(as_of))
        .bind(due)
        .bind(org)
        .bind(id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(due_from_row).collect()
    }

    async fn request_purges(
        &self,
        scope: &OrgScope,
        targets: &[(String, RecordState)],
        cause: PurgeCause,
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE records r SET state = $5, deleted_at = $4, next_due_at = $4,
                    lease_until = NULL
             FROM UNNEST($2::text[], $3::text[]) AS t(id, state)
             WHERE r.org_id = $1 AND r.id = t.id AND r.state = t.state",
        )
        .bind(scope.org_id())
        .bind(targets.iter().map(|t| t.0.clone()).collect::<Vec<_>>())
        .bind(targets.iter().map(|t| t.1.as_str()).collect::<Vec<_>>())
        .bind(to_micros(at))
        .bind(cause.state().as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        commit_with(tx, audit).await?;
        Ok(n)
    }

    async fn defer_record(
        &self,
        scope: &OrgScope,
        id: &str,
        until: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE records SET lease_until = $3 WHERE org_id = $1 AND id = $2")
            .bind(scope.org_id())
            .bind(id)
            .bind(to_micros(until))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn archive_record(
        &self,
        scope: &OrgScope,
        id: &str,
        from: RecordState,
        next_due_at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE records SET state = 'archived', sealed = NULL, next_due_at = $4,
                    lease_until = NULL
             WHERE org_id = $1 AND id = $2 AND state = $3",
        )
        .bind(scope.org_id())
        .bind(id)
        .bind(from.as_str())
        .bind(to_micros(next_due_at))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn purge_records(
        &self,
        scope: &OrgScope,
        purges: &[Purge],
        event: &AuditEvent,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<&str> = purges.iter().map(|p| p.entry.record_id.as_str()).collect();
        let states: Vec<&str> = purges.iter().map(|p| p.from.as_str()).collect();
        let deleted: std::collections::HashSet<String> = sqlx::query_scalar(
            "DELETE FROM records r USING UNNEST($2::text[], $3::text[]) AS d(id, state)
             WHERE r.org_id = $1 AND r.id = d.id AND r.state = d.state
             RETURNING r.id",
        )
        .bind(scope.org_id())
        .bind(&ids)
        .bind(&states)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        if deleted.len() < purges.len() {
            // Rolled back on drop: the event describes the whole batch, so the caller
            // retries the records still purgeable under a new one.
            return Ok(Some(
                ids.iter()
                    .filter(|id| deleted.contains(**id))
                    .map(|id| id.to_string())
                    .collect(),
            ));
        }
        let audit_idx = append_audit(&mut tx, std::slice::from_ref(event)).await? as i64;
        let e = |f: fn(&DeletionEntry) -> i64| -> Vec<i64> {
            purges.iter().map(|p| f(&p.entry)).collect()
        };
        let text = |f: fn(&DeletionEntry) -> &str| -> Vec<&str> {
            purges.iter().map(|p| f(&p.entry)).collect()
        };
        sqlx::query(
            "INSERT INTO deletion_log
                 (org_id, record_id, category, created_at, due_at, purged_at, reason, audit_idx)
             SELECT $1, *, $8 FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::bigint[],
                                          $6::bigint[], $7::text[])",
        )
        .bind(scope.org_id())
        .bind(text(|x| &x.record_id))
        .bind(text(|x| &x.category))
        .bind(e(|x| to_micros(x.created_at)))
        .bind(e(|x| to_micros(x.due_at)))
        .bind(e(|x| to_micros(x.purged_at)))
        .bind(text(|x| &x.reason))
        .bind(audit_idx)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(None)
    }

    async fn open_archive_window(
        &self,
        scope: &OrgScope,
        id: &str,
        until: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE records SET readable_until = $3
             WHERE org_id = $1 AND id = $2 AND state = 'archived'",
        )
        .bind(scope.org_id())
        .bind(id)
        .bind(to_micros(until))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn archive_window(
        &self,
        scope: &OrgScope,
        id: &str,
    ) -> Result<Option<jiff::Timestamp>, StoreError> {
        let until: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT readable_until FROM records
             WHERE org_id = $1 AND id = $2 AND state = 'archived'",
        )
        .bind(scope.org_id())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        until.flatten().map(from_micros).transpose()
    }

    async fn forget_deleted(&self) -> Result<(), StoreError> {
        // PostgreSQL reclaims dead tuples with (auto)vacuum; the content is ciphertext under
        // keys the key store erases, so nothing is forced here.
        Ok(())
    }

    async fn deletion_log(
        &self,
        scope: &OrgScope,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeletionEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT record_id, category, created_at, due_at, purged_at, reason, audit_idx
             FROM deletion_log WHERE org_id = $1 AND record_id > $2
             ORDER BY record_id LIMIT $3",
        )
        .bind(scope.org_id())
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeletionEntry {
                    record_id: r.try_get(0)?,
                    category: r.try_get(1)?,
                    created_at: from_micros(r.try_get(2)?)?,
                    due_at: from_micros(r.try_get(3)?)?,
                    purged_at: from_micros(r.try_get(4)?)?,
                    reason: r.try_get(5)?,
                    audit_index: r.try_get::<Option<i64>, _>(6)?.map(|i| i as u64),
                })
            })
            .collect()
    }

    async fn pending_recomputes(&self) -> Result<Vec<PendingRecompute>, StoreError> {
        let rows = sqlx::query(
            "SELECT org_id, category, after_id FROM due_recompute ORDER BY org_id, category",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingRecompute {
                    scope: OrgScope::new(r.try_get(0)?),
                    category: r.try_get(1)?,
                    after: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn apply_recompute(
        &self,
        scope: &OrgScope,
        category: &str,
        updates: &[DueUpdate],
        next_after: Option<&str>,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE records r SET archive_at = u.archive_at, expire_at = u.expire_at,
                    next_due_at = u.next_due_at
             FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
                  AS u(id, state, archive_at, expire_at, next_due_at)
             WHERE r.org_id = $1 AND r.id = u.id AND r.state = u.state",
        )
        .bind(scope.org_id())
        .bind(updates.iter().map(|u| u.id.clone()).collect::<Vec<_>>())
        .bind(updates.iter().map(|u| u.state.as_str()).collect::<Vec<_>>())
        .bind(
            updates
                .iter()
                .map(|u| u.archive_at.map(to_micros))
                .collect::<Vec<_>>(),
        )
        .bind(
            updates
                .iter()
                .map(|u| to_micros(u.expire_at))
                .collect::<Vec<_>>(),
        )
        .bind(
            updates
                .iter()
                .map(|u| to_micros(u.next_due_at))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
        match next_after {
            Some(after) => {
                sqlx::query(
                    "UPDATE due_recompute SET after_id = $3 WHERE org_id = $1 AND category = $2",
                )
                .bind(scope.org_id())
                .bind(category)
                .bind(after)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM due_recompute WHERE org_id = $1 AND category = $2")
                    .bind(scope.org_id())
                    .bind(category)
                    .execute(&mut *tx)
                    .await?;
                append_audit(&mut tx, audit).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
