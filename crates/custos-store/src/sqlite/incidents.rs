//! [`crate::IncidentStore`] on SQLite.

use super::*;
use crate::incidents::{
    warned_list, warned_text, IncidentNotice, IncidentRow, IncidentStep, INCIDENT_COLUMNS,
    NOTICE_COLUMNS,
};
use crate::OutboxMessage;

fn incident_from_row(r: &rusqlite::Row<'_>) -> Result<IncidentRow, StoreError> {
    Ok(IncidentRow {
        id: r.get(0)?,
        title: r.get(1)?,
        status: r.get(2)?,
        detected_at: from_micros(r.get(3)?)?,
        created_at: from_micros(r.get(4)?)?,
        opened_by: r.get(5)?,
        scope: r.get(6)?,
        contain_due: from_micros(r.get(7)?)?,
        assess_due: from_micros(r.get(8)?)?,
        notify_due: from_micros(r.get(9)?)?,
        warned: warned_list(&r.get::<_, String>(10)?),
    })
}

/// Inserts an incident row (its first step is the caller's).
pub(crate) fn insert_incident(tx: &Transaction<'_>, i: &IncidentRow) -> Result<(), StoreError> {
    tx.execute(
        &format!(
            "INSERT INTO incidents ({INCIDENT_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            i.id,
            i.title,
            i.status,
            to_micros(i.detected_at),
            to_micros(i.created_at),
            i.opened_by,
            i.scope,
            to_micros(i.contain_due),
            to_micros(i.assess_due),
            to_micros(i.notify_due),
            warned_text(&i.warned)
        ],
    )?;
    Ok(())
}

pub(crate) fn insert_step(
    tx: &Transaction<'_>,
    id: &str,
    seq: i64,
    step: &IncidentStep,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO incident_steps (incident_id, seq, status, at, actor, note) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id,
            seq,
            step.status,
            to_micros(step.at),
            step.actor,
            step.note
        ],
    )?;
    Ok(())
}

#[async_trait::async_trait]
impl crate::IncidentStore for SqliteStore {
    async fn create_incident(
        &self,
        incident: &IncidentRow,
        first: &IncidentStep,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (i, first) = (incident.clone(), first.clone());
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            insert_incident(&tx, &i)?;
            insert_step(&tx, &i.id, 0, &first)?;
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn incidents(
        &self,
        open_only: bool,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<IncidentRow>, StoreError> {
        let before = before.map(str::to_string);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE (NOT ?1 OR status <> 'closed') \
                 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
            ))?;
            let mut rows = stmt.query(params![open_only, before, i64::from(limit)])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(incident_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn incident(
        &self,
        id: &str,
    ) -> Result<Option<(IncidentRow, Vec<IncidentStep>)>, StoreError> {
        let id = id.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"
            ))?;
            let mut rows = stmt.query(params![id])?;
            let Some(r) = rows.next()? else {
                return Ok(None);
            };
            let incident = incident_from_row(r)?;
            let mut stmt = c.prepare_cached(
                "SELECT seq, status, at, actor, note FROM incident_steps \
                 WHERE incident_id = ?1 ORDER BY seq",
            )?;
            let mut rows = stmt.query(params![id])?;
            let mut steps = Vec::new();
            while let Some(r) = rows.next()? {
                steps.push(IncidentStep {
                    seq: r.get::<_, i64>(0)?.max(0) as u32,
                    status: r.get(1)?,
                    at: from_micros(r.get(2)?)?,
                    actor: r.get(3)?,
                    note: r.get(4)?,
                });
            }
            Ok(Some((incident, steps)))
        })
        .await
    }

    async fn advance_incident(
        &self,
        id: &str,
        from: &str,
        step: &IncidentStep,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (id, from, step) = (id.to_string(), from.to_string(), step.clone());
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let status: Option<String> = tx
                .query_row(
                    "SELECT status FROM incidents WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()?;
            if status.as_deref() != Some(from.as_str()) {
                return Ok(false);
            }
            let seq: i64 = tx.query_row(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM incident_steps WHERE incident_id = ?1",
                params![id],
                |r| r.get(0),
            )?;
            insert_step(&tx, &id, seq, &step)?;
            tx.execute(
                "UPDATE incidents SET status = ?2 WHERE id = ?1",
                params![id, step.status],
            )?;
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn warn_incident(
        &self,
        id: &str,
        warning: &str,
        messages: &[OutboxMessage],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (id, warning, messages) = (id.to_string(), warning.to_string(), messages.to_vec());
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let warned: Option<String> = tx
                .query_row(
                    "SELECT warned FROM incidents WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(warned) = warned else {
                return Ok(false);
            };
            let mut list = warned_list(&warned);
            if list.contains(&warning) {
                return Ok(false);
            }
            list.push(warning);
            tx.execute(
                "UPDATE incidents SET warned = ?2 WHERE id = ?1",
                params![id, warned_text(&list)],
            )?;
            super::notify::insert_messages(&tx, &messages)?;
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn record_incident_notice(
        &self,
        notice: &IncidentNotice,
        messages: &[OutboxMessage],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (n, messages) = (notice.clone(), messages.to_vec());
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let inserted = tx.execute(
                &format!(
                    "INSERT INTO incident_notices ({NOTICE_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (incident_id, org_id) DO NOTHING"
                ),
                params![
                    n.incident_id,
                    n.org_id,
                    n.subjects as i64,
                    n.records as i64,
                    n.messages as i64,
                    to_micros(n.notified_at),
                    n.actor
                ],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            super::notify::insert_messages(&tx, &messages)?;
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn incident_notices(&self, id: &str) -> Result<Vec<IncidentNotice>, StoreError> {
        let id = id.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {NOTICE_COLUMNS} FROM incident_notices WHERE incident_id = ?1 \
                 ORDER BY notified_at, org_id"
            ))?;
            let mut rows = stmt.query(params![id])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(IncidentNotice {
                    incident_id: r.get(0)?,
                    org_id: r.get(1)?,
                    subjects: r.get::<_, i64>(2)?.max(0) as u64,
                    records: r.get::<_, i64>(3)?.max(0) as u64,
                    messages: r.get::<_, i64>(4)?.max(0) as u64,
                    notified_at: from_micros(r.get(5)?)?,
                    actor: r.get(6)?,
                });
            }
            Ok(out)
        })
        .await
    }
}
