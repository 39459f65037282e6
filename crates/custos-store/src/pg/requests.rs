//! [`RequestStore`] on PostgreSQL.

use std::collections::BTreeMap;

use custos_audit::AuditEvent;
use sqlx::postgres::PgRow;
use sqlx::{QueryBuilder, Row};

use crate::model::{from_micros, to_micros};
use crate::pg::commit_with;
use crate::requests::REQUEST_COLUMNS;
use crate::requests::{
    period_of, ErasureAggregate, PrivacySession, RecordRewrite, RequestCursor, RequestFilter,
    RequestKind, RequestStatus, RequestStore, StoredCertificate, SubjectRecordCount,
    SubjectRequest,
};
use crate::{OrgScope, PgStore, RecordState, StoreError};

fn request_from_row(r: &PgRow) -> Result<SubjectRequest, StoreError> {
    let time = |name: &str| -> Result<Option<jiff::Timestamp>, StoreError> {
        r.try_get::<Option<i64>, _>(name)?
            .map(from_micros)
            .transpose()
    };
    Ok(SubjectRequest {
        id: r.try_get("id")?,
        kind: RequestKind::parse(r.try_get("kind")?)?,
        status: RequestStatus::parse(r.try_get("status")?)?,
        subject_ref: r.try_get("subject_ref")?,
        subject_sealed: r.try_get("subject_sealed")?,
        filed_by: r.try_get("filed_by")?,
        received_at: from_micros(r.try_get("received_at")?)?,
        due_at: from_micros(r.try_get("due_at")?)?,
        extended_at: time("extended_at")?,
        extension_reason: r.try_get("extension_reason")?,
        status_reason: r.try_get("status_reason")?,
        completed_at: time("completed_at")?,
        progress: r.try_get("progress")?,
        version: r.try_get("version")?,
    })
}

#[async_trait::async_trait]
impl RequestStore for PgStore {
    async fn create_request(
        &self,
        scope: &OrgScope,
        q: &SubjectRequest,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO subject_requests (org_id, {REQUEST_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .bind(scope.org_id())
        .bind(&q.id)
        .bind(q.kind.as_str())
        .bind(q.status.as_str())
        .bind(&q.subject_ref)
        .bind(&q.subject_sealed)
        .bind(&q.filed_by)
        .bind(to_micros(q.received_at))
        .bind(to_micros(q.due_at))
        .bind(q.extended_at.map(to_micros))
        .bind(&q.extension_reason)
        .bind(&q.status_reason)
        .bind(q.completed_at.map(to_micros))
        .bind(&q.progress)
        .bind(q.version)
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await
    }

    async fn subject_request(
        &self,
        scope: &OrgScope,
        id: &str,
    ) -> Result<Option<SubjectRequest>, StoreError> {
        sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM subject_requests WHERE org_id = $1 AND id = $2"
        ))
        .bind(scope.org_id())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(request_from_row)
        .transpose()
    }

    async fn list_requests(
        &self,
        scope: &OrgScope,
        filter: &RequestFilter,
        after: Option<&RequestCursor>,
        limit: u32,
    ) -> Result<Vec<SubjectRequest>, StoreError> {
        let mut q = QueryBuilder::new(format!(
            "SELECT {REQUEST_COLUMNS} FROM subject_requests WHERE org_id = "
        ));
        q.push_bind(scope.org_id());
        if let Some(kind) = filter.kind {
            q.push(" AND kind = ").push_bind(kind.as_str());
        }
        if !filter.statuses.is_empty() {
            let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
            q.push(" AND status = ANY(").push_bind(statuses).push(")");
        }
        if let Some(r) = &filter.subject_ref {
            q.push(" AND subject_ref = ").push_bind(r.clone());
        }
        if let Some(c) = after {
            let due = to_micros(c.due_at);
            q.push(" AND (due_at > ")
                .push_bind(due)
                .push(" OR (due_at = ")
                .push_bind(due)
                .push(" AND id > ")
                .push_bind(c.id.clone())
                .push("))");
        }
        q.push(" ORDER BY due_at, id LIMIT ")
            .push_bind(i64::from(limit));
        q.build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(request_from_row)
            .collect()
    }

    async fn update_request(
        &self,
        scope: &OrgScope,
        q: &SubjectRequest,
        certificate: Option<&StoredCertificate>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE subject_requests SET status = $3, subject_sealed = $4, due_at = $5,
                    extended_at = $6, extension_reason = $7, status_reason = $8,
                    completed_at = $9, progress = $10, version = $11
             WHERE org_id = $1 AND id = $2 AND version = $11 - 1",
        )
        .bind(scope.org_id())
        .bind(&q.id)
        .bind(q.status.as_str())
        .bind(&q.subject_sealed)
        .bind(to_micros(q.due_at))
        .bind(q.extended_at.map(to_micros))
        .bind(&q.extension_reason)
        .bind(&q.status_reason)
        .bind(q.completed_at.map(to_micros))
        .bind(&q.progress)
        .bind(q.version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        if let Some(c) = certificate {
            sqlx::query(
                "INSERT INTO certificates (org_id, id, request_id, issued_at, body)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(scope.org_id())
            .bind(&c.id)
            .bind(&c.request_id)
            .bind(to_micros(c.issued_at))
            .bind(&c.body)
            .execute(&mut *tx)
            .await?;
        }
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn requests_by_status(
        &self,
        statuses: &[RequestStatus],
        due_from: Option<jiff::Timestamp>,
        due_by: jiff::Timestamp,
        limit: u32,
    ) -> Result<Vec<(OrgScope, SubjectRequest)>, StoreError> {
        let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS}, org_id FROM subject_requests
             WHERE status = ANY($1) AND due_at >= $4 AND due_at <= $2
             ORDER BY due_at, id LIMIT $3"
        ))
        .bind(statuses)
        .bind(to_micros(due_by))
        .bind(i64::from(limit))
        .bind(due_from.map_or(i64::MIN, to_micros))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((OrgScope::new(r.try_get("org_id")?), request_from_row(r)?)))
        .collect()
    }

    async fn certificates(
        &self,
        scope: &OrgScope,
        request_id: &str,
    ) -> Result<Vec<StoredCertificate>, StoreError> {
        sqlx::query(
            "SELECT id, request_id, issued_at, body FROM certificates
             WHERE org_id = $1 AND request_id = $2 ORDER BY issued_at, id",
        )
        .bind(scope.org_id())
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(StoredCertificate {
                id: r.try_get("id")?,
                request_id: r.try_get("request_id")?,
                issued_at: from_micros(r.try_get("issued_at")?)?,
                body: r.try_get("body")?,
            })
        })
        .collect()
    }

    async fn rewrite_records(
        &self,
        scope: &OrgScope,
        rewrites: &[RecordRewrite],
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for w in rewrites {
            n += sqlx::query(
                "UPDATE records SET key_ref = $4, sealed = COALESCE($5, sealed), pii = $6,
                        subject_ref = NULL
                 WHERE org_id = $1 AND id = $2 AND key_ref = $3",
            )
            .bind(scope.org_id())
            .bind(&w.id)
            .bind(&w.from_key_ref)
            .bind(&w.key_ref)
            .bind(&w.sealed)
            .bind(w.pii.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        commit_with(tx, audit).await?;
        Ok(n)
    }

    async fn aggregate_records(
        &self,
        scope: &OrgScope,
        targets: &[(String, RecordState)],
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let folded = sqlx::query(
            "UPDATE records r SET state = 'erasure_requested', deleted_at = $4, next_due_at = $4,
                    lease_until = NULL, subject_ref = NULL
             FROM UNNEST($2::text[], $3::text[]) AS t(id, state)
             WHERE r.org_id = $1 AND r.id = t.id AND r.state = t.state
             RETURNING r.category, r.created_at",
        )
        .bind(scope.org_id())
        .bind(targets.iter().map(|t| t.0.clone()).collect::<Vec<_>>())
        .bind(targets.iter().map(|t| t.1.as_str()).collect::<Vec<_>>())
        .bind(to_micros(at))
        .fetch_all(&mut *tx)
        .await?;
        let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
        for r in &folded {
            let created = from_micros(r.try_get("created_at")?)?;
            *counts
                .entry((r.try_get("category")?, period_of(created)))
                .or_default() += 1;
        }
        for ((category, period), n) in &counts {
            sqlx::query(
                "INSERT INTO erasure_aggregates (org_id, category, period, records)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (org_id, category, period)
                 DO UPDATE SET records = erasure_aggregates.records + EXCLUDED.records",
            )
            .bind(scope.org_id())
            .bind(category)
            .bind(period)
            .bind(n)
            .execute(&mut *tx)
            .await?;
        }
        commit_with(tx, audit).await?;
        Ok(folded.len() as u64)
    }

    async fn erasure_aggregates(
        &self,
        scope: &OrgScope,
    ) -> Result<Vec<ErasureAggregate>, StoreError> {
        sqlx::query(
            "SELECT category, period, records FROM erasure_aggregates
             WHERE org_id = $1 ORDER BY category, period",
        )
        .bind(scope.org_id())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ErasureAggregate {
                category: r.try_get("category")?,
                period: r.try_get("period")?,
                records: r.try_get::<i64, _>("records")? as u64,
            })
        })
        .collect()
    }

    async fn subject_record_counts(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
    ) -> Result<Vec<SubjectRecordCount>, StoreError> {
        sqlx::query(
            "SELECT category, state, blob_size IS NOT NULL AS files, COUNT(*) AS records
             FROM records WHERE org_id = $1 AND subject_ref = $2
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .bind(scope.org_id())
        .bind(subject_ref)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(SubjectRecordCount {
                category: r.try_get("category")?,
                state: RecordState::parse(r.try_get("state")?)?,
                files: r.try_get("files")?,
                records: r.try_get::<i64, _>("records")? as u64,
            })
        })
        .collect()
    }

    async fn destroy_subject_tokens(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        for delete in [
            "DELETE FROM subject_contacts WHERE org_id = $1 AND subject_ref = $2",
            "UPDATE privacy_sessions SET subject_sealed = ''::bytea \
             WHERE org_id = $1 AND subject_ref = $2",
        ] {
            sqlx::query(delete)
                .bind(scope.org_id())
                .bind(subject_ref)
                .execute(&mut *tx)
                .await?;
        }
        let n = sqlx::query("DELETE FROM pii_tokens WHERE org_id = $1 AND subject_ref = $2")
            .bind(scope.org_id())
            .bind(subject_ref)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        commit_with(tx, audit).await?;
        Ok(n)
    }

    async fn use_privacy_link(
        &self,
        scope: &OrgScope,
        jti: &str,
        expires_at: jiff::Timestamp,
        session: &PrivacySession,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO privacy_link_uses (org_id, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (org_id, jti) DO NOTHING",
        )
        .bind(scope.org_id())
        .bind(jti)
        .bind(to_micros(expires_at))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO privacy_sessions (token_hash, org_id, subject_ref, subject_sealed, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(session.token_hash.as_slice())
        .bind(scope.org_id())
        .bind(&session.subject_ref)
        .bind(&session.subject_sealed)
        .bind(to_micros(session.created_at))
        .bind(to_micros(session.expires_at))
        .execute(&mut *tx)
        .await?;
        commit_with(tx, audit).await?;
        Ok(true)
    }

    async fn purge_privacy_link_uses(
        &self,
        before: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for delete in [
            "DELETE FROM privacy_link_uses WHERE expires_at <= $1",
            "DELETE FROM privacy_sessions WHERE expires_at <= $1",
        ] {
            n += sqlx::query(delete)
                .bind(to_micros(before))
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        if n > 0 {
            commit_with(tx, audit).await?;
        }
        Ok(n)
    }

    async fn privacy_session(
        &self,
        scope: &OrgScope,
        token_hash: &[u8; 32],
        now: jiff::Timestamp,
    ) -> Result<Option<PrivacySession>, StoreError> {
        let row = sqlx::query(
            "SELECT subject_ref, subject_sealed, created_at, expires_at FROM privacy_sessions \
             WHERE token_hash = $1 AND org_id = $2 AND expires_at > $3",
        )
        .bind(token_hash.as_slice())
        .bind(scope.org_id())
        .bind(to_micros(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(PrivacySession {
                token_hash: *token_hash,
                subject_ref: r.try_get(0)?,
                subject_sealed: r.try_get(1)?,
                created_at: from_micros(r.try_get(2)?)?,
                expires_at: from_micros(r.try_get(3)?)?,
            })
        })
        .transpose()
    }

    async fn subject_contact(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query(
            "SELECT sealed FROM subject_contacts WHERE org_id = $1 AND subject_ref = $2",
        )
        .bind(scope.org_id())
        .bind(subject_ref)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn set_subject_contact(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
        sealed: Option<Vec<u8>>,
        now: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        match sealed {
            Some(sealed) => {
                sqlx::query(
                    "INSERT INTO subject_contacts (org_id, subject_ref, sealed, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, subject_ref) \
                     DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                )
                .bind(scope.org_id())
                .bind(subject_ref)
                .bind(sealed)
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM subject_contacts WHERE org_id = $1 AND subject_ref = $2")
                    .bind(scope.org_id())
                    .bind(subject_ref)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        commit_with(tx, audit).await
    }
}
