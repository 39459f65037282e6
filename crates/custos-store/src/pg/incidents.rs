//! [`crate::IncidentStore`] on PostgreSQL.

use super::*;
use crate::incidents::{
    warned_list, warned_text, IncidentNotice, IncidentRow, IncidentStep, INCIDENT_COLUMNS,
    NOTICE_COLUMNS,
};
use crate::OutboxMessage;

fn incident_from_row(r: &PgRow) -> Result<IncidentRow, StoreError> {
    Ok(IncidentRow {
        id: r.try_get(0)?,
        title: r.try_get(1)?,
        status: r.try_get(2)?,
        detected_at: from_micros(r.try_get(3)?)?,
        created_at: from_micros(r.try_get(4)?)?,
        opened_by: r.try_get(5)?,
        scope: r.try_get(6)?,
        contain_due: from_micros(r.try_get(7)?)?,
        assess_due: from_micros(r.try_get(8)?)?,
        notify_due: from_micros(r.try_get(9)?)?,
        warned: warned_list(&r.try_get::<String, _>(10)?),
    })
}

/// Inserts an incident row (its first step is the caller's).
pub(crate) async fn insert_incident(
    tx: &mut Transaction<'_, Postgres>,
    i: &IncidentRow,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO incidents ({INCIDENT_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&i.id)
    .bind(&i.title)
    .bind(&i.status)
    .bind(to_micros(i.detected_at))
    .bind(to_micros(i.created_at))
    .bind(&i.opened_by)
    .bind(&i.scope)
    .bind(to_micros(i.contain_due))
    .bind(to_micros(i.assess_due))
    .bind(to_micros(i.notify_due))
    .bind(warned_text(&i.warned))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn insert_step(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
    seq: i64,
    step: &IncidentStep,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO incident_steps (incident_id, seq, status, at, actor, note) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(seq as i32)
    .bind(&step.status)
    .bind(to_micros(step.at))
    .bind(&step.actor)
    .bind(&step.note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl crate::IncidentStore for PgStore {
    async fn create_incident(
        &self,
        i: &IncidentRow,
        first: &IncidentStep,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_incident(&mut tx, i).await?;
        insert_step(&mut tx, &i.id, 0, first).await?;
        commit_with(tx, audit).await
    }

    async fn incidents(
        &self,
        open_only: bool,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<IncidentRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE (NOT $1 OR status <> 'closed') \
             AND ($2::TEXT IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(open_only)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(incident_from_row).collect()
    }

    async fn incident(
        &self,
        id: &str,
    ) -> Result<Option<(IncidentRow, Vec<IncidentStep>)>, StoreError> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let steps = sqlx::query(
            "SELECT seq, status, at, actor, note FROM incident_steps WHERE incident_id = $1 \
             ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(IncidentStep {
                seq: r.try_get::<i32, _>(0)?.max(0) as u32,
                status: r.try_get(1)?,
                at: from_micros(r.try_get(2)?)?,
                actor: r.try_get(3)?,
                note: r.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some((incident_from_row(&row)?, steps)))
    }

    async fn advance_incident(
        &self,
        id: &str,
        from: &str,
        step: &IncidentStep,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM incidents WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if status.as_deref() != Some(from) {
            return Ok(false);
        }
        let seq: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq) + 1, 0)::BIGINT FROM incident_steps WHERE incident_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        insert_step(&mut tx, id, seq, step).await?;
        sqlx::query("UPDATE incidents SET status = $2 WHERE id = $1")
            .bind(id)
            .bind(&step.status)
            .execute(&mut *tx)
            .await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn warn_incident(
        &self,
        id: &str,
        warning: &str,
        messages: &[OutboxMessage],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let warned: Option<String> =
            sqlx::query_scalar("SELECT warned FROM incidents WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(warned) = warned else {
            return Ok(false);
        };
        let mut list = warned_list(&warned);
        if list.iter().any(|w| w == warning) {
            return Ok(false);
        }
        list.push(warning.to_string());
        sqlx::query("UPDATE incidents SET warned = $2 WHERE id = $1")
            .bind(id)
            .bind(warned_text(&list))
            .execute(&mut *tx)
            .await?;
        super::notify::insert_messages(&mut tx, messages).await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn record_incident_notice(
        &self,
        notice: &IncidentNotice,
        messages: &[OutboxMessage],
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let n = notice;
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO incident_notices ({NOTICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (incident_id, org_id) DO NOTHING"
        ))
        .bind(&n.incident_id)
        .bind(&n.org_id)
        .bind(n.subjects as i64)
        .bind(n.records as i64)
        .bind(n.messages as i64)
        .bind(to_micros(n.notified_at))
        .bind(&n.actor)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        super::notify::insert_messages(&mut tx, messages).await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn incident_notices(&self, id: &str) -> Result<Vec<IncidentNotice>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {NOTICE_COLUMNS} FROM incident_notices WHERE incident_id = $1 \
             ORDER BY notified_at, org_id"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(IncidentNotice {
                    incident_id: r.try_get(0)?,
                    org_id: r.try_get(1)?,
                    subjects: r.try_get::<i64, _>(2)?.max(0) as u64,
                    records: r.try_get::<i64, _>(3)?.max(0) as u64,
                    messages: r.try_get::<i64, _>(4)?.max(0) as u64,
                    notified_at: from_micros(r.try_get(5)?)?,
                    actor: r.try_get(6)?,
                })
            })
            .collect()
    }
}
