//! [`crate::NotifyStore`] on PostgreSQL.

use super::*;
use crate::notify::{
    AlertFiring, AlertStep, OutboxEntry, OutboxMessage, OutboxStatus, StoredSecurityEvent,
    FIRING_COLUMNS, OUTBOX_COLUMNS, SECURITY_EVENT_COLUMNS,
};

fn security_event_from_row(r: &PgRow) -> Result<StoredSecurityEvent, StoreError> {
    Ok(StoredSecurityEvent {
        audit_idx: r.try_get::<i64, _>(0)? as u64,
        time: from_micros(r.try_get(1)?)?,
        kind: r.try_get(2)?,
        body: r.try_get(3)?,
        expire_at: from_micros(r.try_get(4)?)?,
    })
}

fn entry_from_row(r: &PgRow) -> Result<OutboxEntry, StoreError> {
    let attempts: i32 = r.try_get(7)?;
    Ok(OutboxEntry {
        message: OutboxMessage {
            id: r.try_get(0)?,
            org_id: r.try_get(1)?,
            channel: r.try_get(2)?,
            event_type: r.try_get(3)?,
            body: r.try_get(4)?,
            created_at: from_micros(r.try_get(5)?)?,
        },
        status: OutboxStatus::parse(&r.try_get::<String, _>(6)?)?,
        attempts: attempts.max(0) as u32,
        next_attempt_at: from_micros(r.try_get(8)?)?,
        last_error: r.try_get(9)?,
        finished_at: r
            .try_get::<Option<i64>, _>(10)?
            .map(from_micros)
            .transpose()?,
    })
}

fn firing_from_row(r: &PgRow) -> Result<AlertFiring, StoreError> {
    Ok(AlertFiring {
        rule: r.try_get(0)?,
        key: r.try_get(1)?,
        fired_at: from_micros(r.try_get(2)?)?,
        window_end: from_micros(r.try_get(3)?)?,
        audit_idx: r.try_get::<i64, _>(4)? as u64,
    })
}

/// Messages inserted per statement.
const INSERT_CHUNK: usize = 5000;

/// Inserts messages not queued yet; how many were new. One statement per chunk of
/// [`INSERT_CHUNK`] (an incident's notices can be a message per affected subject).
pub(crate) async fn insert_messages(
    tx: &mut Transaction<'_, Postgres>,
    messages: &[OutboxMessage],
) -> Result<u64, StoreError> {
    let mut new = 0;
    for chunk in messages.chunks(INSERT_CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|m| m.id.as_str()).collect();
        let orgs: Vec<Option<&str>> = chunk.iter().map(|m| m.org_id.as_deref()).collect();
        let channels: Vec<&str> = chunk.iter().map(|m| m.channel.as_str()).collect();
        let types: Vec<&str> = chunk.iter().map(|m| m.event_type.as_str()).collect();
        let bodies: Vec<&[u8]> = chunk.iter().map(|m| m.body.as_slice()).collect();
        let created: Vec<i64> = chunk.iter().map(|m| to_micros(m.created_at)).collect();
        new += sqlx::query(
            "INSERT INTO outbox (id, org_id, channel, event_type, body, created_at, status, \
             attempts, next_attempt_at) \
             SELECT id, org_id, channel, event_type, body, created_at, 'pending', 0, created_at \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], \
             $6::bigint[]) AS m (id, org_id, channel, event_type, body, created_at) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&ids)
        .bind(&orgs)
        .bind(&channels)
        .bind(&types)
        .bind(&bodies)
        .bind(&created)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    Ok(new)
}

#[async_trait::async_trait]
impl crate::NotifyStore for PgStore {
    async fn enqueue(
        &self,
        messages: &[OutboxMessage],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        if insert_messages(&mut tx, messages).await? == 0 {
            return Ok(false);
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn claim_messages(
        &self,
        now: jiff::Timestamp,
        claimed_until: jiff::Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        // SKIP LOCKED: instances claiming at once each take different rows.
        let rows = sqlx::query(&format!(
            "UPDATE outbox SET claimed_until = $2, attempts = attempts + 1 WHERE id IN (\
             SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND (claimed_until IS NULL OR claimed_until <= $1) \
             ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING {OUTBOX_COLUMNS}"
        ))
        .bind(to_micros(now))
        .bind(to_micros(claimed_until))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn mark_delivered(&self, id: &str, now: jiff::Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET status = 'delivered', finished_at = $2, claimed_until = NULL, \
                 channel = CASE WHEN channel LIKE 'subject-email:%' THEN 'subject-email' ELSE channel END, \
             last_error = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(to_micros(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn retry_later(
        &self,
        id: &str,
        next_attempt_at: jiff::Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = $2, claimed_until = NULL, last_error = $3 \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(to_micros(next_attempt_at))
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mark_failed(
        &self,
        id: &str,
        now: jiff::Timestamp,
        error: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE outbox SET status = 'failed', finished_at = $2, claimed_until = NULL, \
                 channel = CASE WHEN channel LIKE 'subject-email:%' THEN 'subject-email' ELSE channel END, \
             last_error = $3 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(to_micros(now))
        .bind(error)
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await
    }

    async fn outbox_entries(
        &self,
        org: Option<&str>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE ($1::TEXT IS NULL OR org_id = $1) \
             AND ($2::TEXT IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(org)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn take_alert_lease(
        &self,
        holder: &str,
        now: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        let cursor: Option<i64> = sqlx::query_scalar(
            "UPDATE alert_evaluator SET holder = $1, lease_until = $3 WHERE one \
             AND (holder = $1 OR holder IS NULL OR lease_until <= $2) RETURNING cursor",
        )
        .bind(holder)
        .bind(to_micros(now))
        .bind(to_micros(until))
        .fetch_optional(&self.pool)
        .await?;
        Ok(cursor.map(|c| c as u64))
    }

    async fn alert_cursor(&self, log: &str) -> Result<u64, StoreError> {
        let cursor: Option<i64> =
            sqlx::query_scalar("SELECT cursor FROM alert_cursors WHERE log = $1")
                .bind(log)
                .fetch_optional(&self.pool)
                .await?;
        Ok(cursor.unwrap_or(0) as u64)
    }

    async fn commit_alert_step(
        &self,
        holder: &str,
        from: u64,
        step: &AlertStep,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let held: Option<(i64, Option<String>)> =
            sqlx::query_as("SELECT cursor, holder FROM alert_evaluator WHERE one FOR UPDATE")
                .fetch_optional(&mut *tx)
                .await?;
        let Some((main_cursor, Some(current))) = held else {
            return Ok(false);
        };
        let cursor = match &step.log {
            None => main_cursor,
            Some(log) => sqlx::query_scalar::<_, i64>(
                "SELECT cursor FROM alert_cursors WHERE log = $1 FOR UPDATE",
            )
            .bind(log)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0),
        };
        if current != holder || cursor != from as i64 {
            return Ok(false);
        }
        for f in &step.firings {
            sqlx::query(&format!(
                "INSERT INTO alert_firings ({FIRING_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT DO NOTHING"
            ))
            .bind(&f.rule)
            .bind(&f.key)
            .bind(to_micros(f.fired_at))
            .bind(to_micros(f.window_end))
            .bind(f.audit_idx as i64)
            .execute(&mut *tx)
            .await?;
        }
        insert_messages(&mut tx, &step.messages).await?;
        for e in &step.security_events {
            sqlx::query(&format!(
                "INSERT INTO security_events ({SECURITY_EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT DO NOTHING"
            ))
            .bind(e.audit_idx as i64)
            .bind(to_micros(e.time))
            .bind(&e.kind)
            .bind(&e.body)
            .bind(to_micros(e.expire_at))
            .execute(&mut *tx)
            .await?;
        }
        for (incident, first) in &step.incidents {
            super::incidents::insert_incident(&mut tx, incident).await?;
            super::incidents::insert_step(&mut tx, &incident.id, 0, first).await?;
        }
        match &step.log {
            None => {
                sqlx::query("UPDATE alert_evaluator SET cursor = $1 WHERE one")
                    .bind(step.cursor as i64)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(log) => {
                sqlx::query(
                    "INSERT INTO alert_cursors (log, cursor) VALUES ($1, $2) \
                     ON CONFLICT (log) DO UPDATE SET cursor = excluded.cursor",
                )
                .bind(log)
                .bind(step.cursor as i64)
                .execute(&mut *tx)
                .await?;
            }
        }
        commit_with(tx, &step.audit).await?;
        Ok(true)
    }

    async fn recent_firings(&self, after: jiff::Timestamp) -> Result<Vec<AlertFiring>, StoreError> {
        sqlx::query("DELETE FROM alert_firings WHERE window_end <= $1")
            .bind(to_micros(after))
            .execute(&self.pool)
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT {FIRING_COLUMNS} FROM alert_firings WHERE window_end > $1 \
             ORDER BY fired_at"
        ))
        .bind(to_micros(after))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(firing_from_row).collect()
    }

    async fn deployment_security_events(
        &self,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredSecurityEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SECURITY_EVENT_COLUMNS} FROM security_events \
             WHERE ($1::BIGINT IS NULL OR audit_idx < $1) ORDER BY audit_idx DESC LIMIT $2"
        ))
        .bind(before.map(|b| b as i64))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(security_event_from_row).collect()
    }

    async fn purge_outbox(
        &self,
        finished_before: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        self.delete_audited(
            "DELETE FROM outbox WHERE status <> 'pending' AND finished_at <= $1",
            finished_before,
            audit,
        )
        .await
    }

    async fn purge_security_events(
        &self,
        now: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        self.delete_audited(
            "DELETE FROM security_events WHERE expire_at <= $1",
            now,
            audit,
        )
        .await
    }
}
