//! [`crate::NotifyStore`] on SQLite.

use super::*;
use crate::notify::{
    AlertFiring, AlertStep, OutboxEntry, OutboxMessage, OutboxStatus, StoredSecurityEvent,
    FIRING_COLUMNS, OUTBOX_COLUMNS, SECURITY_EVENT_COLUMNS,
};

fn security_event_from_row(r: &rusqlite::Row<'_>) -> Result<StoredSecurityEvent, StoreError> {
    Ok(StoredSecurityEvent {
        audit_idx: r.get::<_, i64>(0)? as u64,
        time: from_micros(r.get(1)?)?,
        kind: r.get(2)?,
        body: r.get(3)?,
        expire_at: from_micros(r.get(4)?)?,
    })
}

fn entry_from_row(r: &rusqlite::Row<'_>) -> Result<OutboxEntry, StoreError> {
    let attempts: i64 = r.get(7)?;
    Ok(OutboxEntry {
        message: OutboxMessage {
            id: r.get(0)?,
            org_id: r.get(1)?,
            channel: r.get(2)?,
            event_type: r.get(3)?,
            body: r.get(4)?,
            created_at: from_micros(r.get(5)?)?,
        },
        status: OutboxStatus::parse(&r.get::<_, String>(6)?)?,
        attempts: attempts.clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_at: from_micros(r.get(8)?)?,
        last_error: r.get(9)?,
        finished_at: opt_time(r.get(10)?)?,
    })
}

fn firing_from_row(r: &rusqlite::Row<'_>) -> Result<AlertFiring, StoreError> {
    Ok(AlertFiring {
        rule: r.get(0)?,
        key: r.get(1)?,
        fired_at: from_micros(r.get(2)?)?,
        window_end: from_micros(r.get(3)?)?,
        audit_idx: r.get::<_, i64>(4)? as u64,
    })
}

/// Inserts messages not queued yet; how many were new.
pub(crate) fn insert_messages(
    tx: &Transaction<'_>,
    messages: &[OutboxMessage],
) -> Result<u64, StoreError> {
    let mut new = 0;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO outbox (id, org_id, channel, event_type, body, created_at, status, \
         attempts, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?6) \
         ON CONFLICT (id) DO NOTHING",
    )?;
    for m in messages {
        new += stmt.execute(params![
            m.id,
            m.org_id,
            m.channel,
            m.event_type,
            m.body,
            to_micros(m.created_at)
        ])? as u64;
    }
    Ok(new)
}

fn collect<T>(
    mut rows: rusqlite::Rows<'_>,
    decode: fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(decode(r)?);
    }
    Ok(out)
}

#[async_trait::async_trait]
impl crate::NotifyStore for SqliteStore {
    async fn enqueue(
        &self,
        messages: &[OutboxMessage],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let messages = messages.to_vec();
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            if insert_messages(&tx, &messages)? == 0 {
                return Ok(false);
            }
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn claim_messages(
        &self,
        now: jiff::Timestamp,
        claimed_until: jiff::Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        // SQLite serializes writers: the select and the update cannot interleave with
        // another claim.
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "UPDATE outbox SET claimed_until = ?2, attempts = attempts + 1 WHERE id IN (\
                 SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1 \
                 AND (claimed_until IS NULL OR claimed_until <= ?1) \
                 ORDER BY next_attempt_at, id LIMIT ?3) RETURNING {OUTBOX_COLUMNS}"
            ))?;
            let rows = stmt.query(params![
                to_micros(now),
                to_micros(claimed_until),
                i64::from(limit)
            ])?;
            collect(rows, entry_from_row)
        })
        .await
    }

    async fn mark_delivered(&self, id: &str, now: jiff::Timestamp) -> Result<(), StoreError> {
        let id = id.to_string();
        self.write(move |conn| {
            conn.execute(
                "UPDATE outbox SET status = 'delivered', finished_at = ?2, claimed_until = NULL, \
                 channel = CASE WHEN channel LIKE 'subject-email:%' THEN 'subject-email' ELSE channel END, \
                 last_error = NULL WHERE id = ?1",
                params![id, to_micros(now)],
            )?;
            Ok(())
        })
        .await
    }

    async fn retry_later(
        &self,
        id: &str,
        next_attempt_at: jiff::Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        let (id, error) = (id.to_string(), error.to_string());
        self.write(move |conn| {
            conn.execute(
                "UPDATE outbox SET next_attempt_at = ?2, claimed_until = NULL, last_error = ?3 \
                 WHERE id = ?1 AND status = 'pending'",
                params![id, to_micros(next_attempt_at), error],
            )?;
            Ok(())
        })
        .await
    }

    async fn mark_failed(
        &self,
        id: &str,
        now: jiff::Timestamp,
        error: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (id, error) = (id.to_string(), error.to_string());
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE outbox SET status = 'failed', finished_at = ?2, claimed_until = NULL, \
                 channel = CASE WHEN channel LIKE 'subject-email:%' THEN 'subject-email' ELSE channel END, \
                 last_error = ?3 WHERE id = ?1 AND status = 'pending'",
                params![id, to_micros(now), error],
            )?;
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn outbox_entries(
        &self,
        org: Option<&str>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let (org, before) = (org.map(str::to_string), before.map(str::to_string));
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE (?1 IS NULL OR org_id = ?1) \
                 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query(params![org, before, i64::from(limit)])?;
            collect(rows, entry_from_row)
        })
        .await
    }

    async fn take_alert_lease(
        &self,
        holder: &str,
        now: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        let holder = holder.to_string();
        self.write(move |conn| {
            Ok(conn
                .query_row(
                    "UPDATE alert_evaluator SET holder = ?1, lease_until = ?3 WHERE one = 1 \
                     AND (holder = ?1 OR holder IS NULL OR lease_until <= ?2) RETURNING cursor",
                    params![holder, to_micros(now), to_micros(until)],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .map(|c| c as u64))
        })
        .await
    }

    async fn alert_cursor(&self, log: &str) -> Result<u64, StoreError> {
        let log = log.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT cursor FROM alert_cursors WHERE log = ?1",
                params![log],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .unwrap_or(0) as u64)
        })
        .await
    }

    async fn commit_alert_step(
        &self,
        holder: &str,
        from: u64,
        step: &AlertStep,
    ) -> Result<bool, StoreError> {
        let holder = holder.to_string();
        let step = step.clone();
        let columns: Vec<AuditColumns> = step.audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let held: Option<(i64, Option<String>)> = tx
                .query_row(
                    "SELECT cursor, holder FROM alert_evaluator WHERE one = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((main_cursor, Some(current))) = held else {
                return Ok(false);
            };
            let cursor = match &step.log {
                None => main_cursor,
                Some(log) => tx
                    .query_row(
                        "SELECT cursor FROM alert_cursors WHERE log = ?1",
                        params![log],
                        |r| r.get::<_, i64>(0),
                    )
                    .optional()?
                    .unwrap_or(0),
            };
            if current != holder || cursor != from as i64 {
                return Ok(false);
            }
            {
                let mut stmt = tx.prepare_cached(&format!(
                    "INSERT INTO alert_firings ({FIRING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT DO NOTHING"
                ))?;
                for f in &step.firings {
                    stmt.execute(params![
                        f.rule,
                        f.key,
                        to_micros(f.fired_at),
                        to_micros(f.window_end),
                        f.audit_idx as i64
                    ])?;
                }
            }
            insert_messages(&tx, &step.messages)?;
            {
                let mut stmt = tx.prepare_cached(&format!(
                    "INSERT INTO security_events ({SECURITY_EVENT_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING"
                ))?;
                for e in &step.security_events {
                    stmt.execute(params![
                        e.audit_idx as i64,
                        to_micros(e.time),
                        e.kind,
                        e.body,
                        to_micros(e.expire_at)
                    ])?;
                }
            }
            for (incident, first) in &step.incidents {
                super::incidents::insert_incident(&tx, incident)?;
                super::incidents::insert_step(&tx, &incident.id, 0, first)?;
            }
            match &step.log {
                None => tx.execute(
                    "UPDATE alert_evaluator SET cursor = ?1 WHERE one = 1",
                    params![step.cursor as i64],
                )?,
                Some(log) => tx.execute(
                    "INSERT INTO alert_cursors (log, cursor) VALUES (?1, ?2) \
                     ON CONFLICT (log) DO UPDATE SET cursor = excluded.cursor",
                    params![log, step.cursor as i64],
                )?,
            };
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn recent_firings(&self, after: jiff::Timestamp) -> Result<Vec<AlertFiring>, StoreError> {
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM alert_firings WHERE window_end <= ?1",
                params![to_micros(after)],
            )?;
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {FIRING_COLUMNS} FROM alert_firings WHERE window_end > ?1 \
                 ORDER BY fired_at"
            ))?;
            let rows = stmt.query(params![to_micros(after)])?;
            collect(rows, firing_from_row)
        })
        .await
    }

    async fn deployment_security_events(
        &self,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredSecurityEvent>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {SECURITY_EVENT_COLUMNS} FROM security_events \
                 WHERE (?1 IS NULL OR audit_idx < ?1) ORDER BY audit_idx DESC LIMIT ?2"
            ))?;
            let rows = stmt.query(params![before.map(|b| b as i64), i64::from(limit)])?;
            collect(rows, security_event_from_row)
        })
        .await
    }

    async fn purge_outbox(
        &self,
        finished_before: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        self.delete_audited(
            "DELETE FROM outbox WHERE status <> 'pending' AND finished_at <= ?1",
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
            "DELETE FROM security_events WHERE expire_at <= ?1",
            now,
            audit,
        )
        .await
    }
}
