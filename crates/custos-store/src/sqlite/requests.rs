//! [`RequestStore`] on SQLite.

use std::collections::BTreeMap;

use custos_audit::AuditEvent;
use rusqlite::{params, params_from_iter, types::Value as Sql, OptionalExtension};

use crate::model::{from_micros, to_micros};
use crate::requests::REQUEST_COLUMNS;
use crate::requests::{
    period_of, ErasureAggregate, PrivacySession, RecordRewrite, RequestCursor, RequestFilter,
    RequestKind, RequestStatus, RequestStore, StoredCertificate, SubjectRecordCount,
    SubjectRequest,
};
use crate::sqlite::IN_ORG;
use crate::{OrgScope, RecordState, SqliteStore, StoreError};

fn request_from_row(r: &rusqlite::Row<'_>) -> Result<SubjectRequest, StoreError> {
    let time = |i: usize| -> Result<Option<jiff::Timestamp>, StoreError> {
        r.get::<_, Option<i64>>(i)?.map(from_micros).transpose()
    };
    Ok(SubjectRequest {
        id: r.get(0)?,
        kind: RequestKind::parse(&r.get::<_, String>(1)?)?,
        status: RequestStatus::parse(&r.get::<_, String>(2)?)?,
        subject_ref: r.get(3)?,
        subject_sealed: r.get(4)?,
        filed_by: r.get(5)?,
        received_at: from_micros(r.get(6)?)?,
        due_at: from_micros(r.get(7)?)?,
        extended_at: time(8)?,
        extension_reason: r.get(9)?,
        status_reason: r.get(10)?,
        completed_at: time(11)?,
        progress: r.get(12)?,
        version: r.get(13)?,
    })
}

fn certificate_from_row(r: &rusqlite::Row<'_>) -> Result<StoredCertificate, StoreError> {
    Ok(StoredCertificate {
        id: r.get(0)?,
        request_id: r.get(1)?,
        issued_at: from_micros(r.get(2)?)?,
        body: r.get(3)?,
    })
}

fn insert_certificate(
    tx: &rusqlite::Transaction<'_>,
    org: &str,
    c: &StoredCertificate,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO certificates (org_id, id, request_id, issued_at, body)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        params![org, c.id, c.request_id, to_micros(c.issued_at), c.body],
    )?;
    Ok(())
}

#[async_trait::async_trait]
impl RequestStore for SqliteStore {
    async fn create_request(
        &self,
        scope: &OrgScope,
        request: &SubjectRequest,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, q) = (scope.org_id().to_string(), request.clone());
        self.mutate(audit, move |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO subject_requests (org_id, {REQUEST_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
                ),
                params![
                    org,
                    q.id,
                    q.kind.as_str(),
                    q.status.as_str(),
                    q.subject_ref,
                    q.subject_sealed,
                    q.filed_by,
                    to_micros(q.received_at),
                    to_micros(q.due_at),
                    q.extended_at.map(to_micros),
                    q.extension_reason,
                    q.status_reason,
                    q.completed_at.map(to_micros),
                    q.progress,
                    q.version,
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn subject_request(
        &self,
        scope: &OrgScope,
        id: &str,
    ) -> Result<Option<SubjectRequest>, StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        self.read(move |c| {
            c.query_row(
                &format!(
                    "SELECT {REQUEST_COLUMNS} FROM subject_requests WHERE org_id = ?1 AND id = ?2"
                ),
                [&org, &id],
                |r| Ok(request_from_row(r)),
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn list_requests(
        &self,
        scope: &OrgScope,
        filter: &RequestFilter,
        after: Option<&RequestCursor>,
        limit: u32,
    ) -> Result<Vec<SubjectRequest>, StoreError> {
        let mut sql = format!("SELECT {REQUEST_COLUMNS} FROM subject_requests WHERE org_id = ?");
        let mut args: Vec<Sql> = vec![Sql::Text(scope.org_id().to_string())];
        if let Some(kind) = filter.kind {
            sql.push_str(" AND kind = ?");
            args.push(Sql::Text(kind.as_str().into()));
        }
        if !filter.statuses.is_empty() {
            let marks = vec!["?"; filter.statuses.len()].join(", ");
            sql.push_str(&format!(" AND status IN ({marks})"));
            args.extend(filter.statuses.iter().map(|s| Sql::Text(s.as_str().into())));
        }
        if let Some(r) = &filter.subject_ref {
            sql.push_str(" AND subject_ref = ?");
            args.push(Sql::Text(r.clone()));
        }
        if let Some(c) = after {
            sql.push_str(" AND (due_at > ? OR (due_at = ? AND id > ?))");
            let due = to_micros(c.due_at);
            args.extend([
                Sql::Integer(due),
                Sql::Integer(due),
                Sql::Text(c.id.clone()),
            ]);
        }
        sql.push_str(" ORDER BY due_at, id LIMIT ?");
        args.push(Sql::Integer(i64::from(limit)));
        self.read(move |c| {
            let mut stmt = c.prepare(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(request_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn update_request(
        &self,
        scope: &OrgScope,
        request: &SubjectRequest,
        certificate: Option<&StoredCertificate>,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, q, cert) = (
            scope.org_id().to_string(),
            request.clone(),
            certificate.cloned(),
        );
        self.mutate_if(audit, move |tx| {
            let n = tx.execute(
                "UPDATE subject_requests SET status = ?3, subject_sealed = ?4, due_at = ?5,
                        extended_at = ?6, extension_reason = ?7, status_reason = ?8,
                        completed_at = ?9, progress = ?10, version = ?11
                 WHERE org_id = ?1 AND id = ?2 AND version = ?11 - 1",
                params![
                    org,
                    q.id,
                    q.status.as_str(),
                    q.subject_sealed,
                    to_micros(q.due_at),
                    q.extended_at.map(to_micros),
                    q.extension_reason,
                    q.status_reason,
                    q.completed_at.map(to_micros),
                    q.progress,
                    q.version,
                ],
            )?;
            if n == 1 {
                if let Some(c) = &cert {
                    insert_certificate(tx, &org, c)?;
                }
            }
            Ok(n == 1)
        })
        .await
    }

    async fn requests_by_status(
        &self,
        statuses: &[RequestStatus],
        due_from: Option<jiff::Timestamp>,
        due_by: jiff::Timestamp,
        limit: u32,
    ) -> Result<Vec<(OrgScope, SubjectRequest)>, StoreError> {
        let marks = vec!["?"; statuses.len().max(1)].join(", ");
        let sql = format!(
            "SELECT {REQUEST_COLUMNS}, org_id FROM subject_requests
             WHERE status IN ({marks}) AND due_at >= ? AND due_at <= ? ORDER BY due_at, id LIMIT ?"
        );
        let mut args: Vec<Sql> = statuses
            .iter()
            .map(|s| Sql::Text(s.as_str().into()))
            .collect();
        if args.is_empty() {
            args.push(Sql::Null);
        }
        args.extend([
            Sql::Integer(due_from.map_or(i64::MIN, to_micros)),
            Sql::Integer(to_micros(due_by)),
            Sql::Integer(limit.into()),
        ]);
        self.read(move |c| {
            let mut stmt = c.prepare(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let org: String = r.get(14)?;
                out.push((OrgScope::new(org), request_from_row(r)?));
            }
            Ok(out)
        })
        .await
    }

    async fn certificates(
        &self,
        scope: &OrgScope,
        request_id: &str,
    ) -> Result<Vec<StoredCertificate>, StoreError> {
        let (org, id) = (scope.org_id().to_string(), request_id.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, request_id, issued_at, body FROM certificates
                 WHERE org_id = ?1 AND request_id = ?2 ORDER BY issued_at, id",
            )?;
            let mut rows = stmt.query([&org, &id])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(certificate_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn rewrite_records(
        &self,
        scope: &OrgScope,
        rewrites: &[RecordRewrite],
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let (org, rewrites) = (scope.org_id().to_string(), rewrites.to_vec());
        self.mutate(audit, move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "UPDATE records SET key_ref = ?4, sealed = COALESCE(?5, sealed), pii = ?6,
                        subject_ref = NULL
                 WHERE {IN_ORG} AND id = ?2 AND key_ref = ?3"
            ))?;
            let mut n = 0u64;
            for w in &rewrites {
                n += stmt.execute(params![
                    org,
                    w.id,
                    w.from_key_ref,
                    w.key_ref,
                    w.sealed,
                    w.pii.to_string()
                ])? as u64;
            }
            Ok(n)
        })
        .await
    }

    async fn aggregate_records(
        &self,
        scope: &OrgScope,
        targets: &[(String, RecordState)],
        at: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let (org, targets) = (scope.org_id().to_string(), targets.to_vec());
        self.mutate(audit, move |tx| {
            let mut find = tx.prepare_cached(&format!(
                "SELECT category, created_at FROM records WHERE {IN_ORG} AND id = ?2 AND state = ?3"
            ))?;
            let mut mark = tx.prepare_cached(&format!(
                "UPDATE records SET state = 'erasure_requested', deleted_at = ?3, next_due_at = ?3,
                        lease_until = NULL, subject_ref = NULL
                 WHERE {IN_ORG} AND id = ?2"
            ))?;
            let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
            for (id, state) in &targets {
                let found: Option<(String, i64)> = find
                    .query_row(params![org, id, state.as_str()], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?;
                let Some((category, created)) = found else {
                    continue;
                };
                mark.execute(params![org, id, to_micros(at)])?;
                *counts
                    .entry((category, period_of(from_micros(created)?)))
                    .or_default() += 1;
            }
            let mut add = tx.prepare_cached(
                "INSERT INTO erasure_aggregates (org_id, category, period, records)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (org_id, category, period)
                 DO UPDATE SET records = records + excluded.records",
            )?;
            let mut total = 0u64;
            for ((category, period), n) in counts {
                add.execute(params![org, category, period, n])?;
                total += n as u64;
            }
            Ok(total)
        })
        .await
    }

    async fn erasure_aggregates(
        &self,
        scope: &OrgScope,
    ) -> Result<Vec<ErasureAggregate>, StoreError> {
        let org = scope.org_id().to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT category, period, records FROM erasure_aggregates
                 WHERE org_id = ?1 ORDER BY category, period",
            )?;
            let mut rows = stmt.query([&org])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(ErasureAggregate {
                    category: r.get(0)?,
                    period: r.get(1)?,
                    records: r.get::<_, i64>(2)? as u64,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn subject_record_counts(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
    ) -> Result<Vec<SubjectRecordCount>, StoreError> {
        let (org, subject_ref) = (scope.org_id().to_string(), subject_ref.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT category, state, blob_size IS NOT NULL, COUNT(*) FROM records
                 WHERE {IN_ORG} AND subject_ref = ?2 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            ))?;
            let mut rows = stmt.query([&org, &subject_ref])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(SubjectRecordCount {
                    category: r.get(0)?,
                    state: RecordState::parse(&r.get::<_, String>(1)?)?,
                    files: r.get(2)?,
                    records: r.get::<_, i64>(3)? as u64,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn destroy_subject_tokens(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let (org, subject_ref) = (scope.org_id().to_string(), subject_ref.to_string());
        self.mutate(audit, move |tx| {
            tx.execute(
                "DELETE FROM subject_contacts WHERE org_id = ?1 AND subject_ref = ?2",
                [&org, &subject_ref],
            )?;
            tx.execute(
                "UPDATE privacy_sessions SET subject_sealed = X'' \
                 WHERE org_id = ?1 AND subject_ref = ?2",
                [&org, &subject_ref],
            )?;
            Ok(tx.execute(
                "DELETE FROM pii_tokens WHERE org_id = ?1 AND subject_ref = ?2",
                [&org, &subject_ref],
            )? as u64)
        })
        .await
    }

    async fn use_privacy_link(
        &self,
        scope: &OrgScope,
        jti: &str,
        expires_at: jiff::Timestamp,
        session: &PrivacySession,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, jti, s) = (scope.org_id().to_string(), jti.to_string(), session.clone());
        self.mutate_if(audit, move |tx| {
            let first = tx.execute(
                "INSERT INTO privacy_link_uses (org_id, jti, expires_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (org_id, jti) DO NOTHING",
                params![org, jti, to_micros(expires_at)],
            )? == 1;
            if first {
                tx.execute(
                    "INSERT INTO privacy_sessions (token_hash, org_id, subject_ref, \
                     subject_sealed, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        s.token_hash.to_vec(),
                        org,
                        s.subject_ref,
                        s.subject_sealed,
                        to_micros(s.created_at),
                        to_micros(s.expires_at)
                    ],
                )?;
            }
            Ok(first)
        })
        .await
    }

    async fn purge_privacy_link_uses(
        &self,
        before: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        let columns: Vec<crate::sqlite::AuditColumns> =
            audit.iter().map(crate::sqlite::AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let at = to_micros(before);
            let n = tx.execute(
                "DELETE FROM privacy_link_uses WHERE expires_at <= ?1",
                params![at],
            )? + tx.execute(
                "DELETE FROM privacy_sessions WHERE expires_at <= ?1",
                params![at],
            )?;
            if n > 0 {
                crate::sqlite::append_audit(&tx, &columns)?;
                tx.commit()?;
            }
            Ok(n as u64)
        })
        .await
    }

    async fn privacy_session(
        &self,
        scope: &OrgScope,
        token_hash: &[u8; 32],
        now: jiff::Timestamp,
    ) -> Result<Option<PrivacySession>, StoreError> {
        let (org, hash) = (scope.org_id().to_string(), token_hash.to_vec());
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT subject_ref, subject_sealed, created_at, expires_at \
                     FROM privacy_sessions WHERE token_hash = ?1 AND org_id = ?2 \
                     AND expires_at > ?3",
                    params![hash, org, to_micros(now)],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, Vec<u8>>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    },
                )
                .optional()?;
            row.map(|(subject_ref, subject_sealed, created, expires)| {
                Ok(PrivacySession {
                    token_hash: hash.clone().try_into().expect("32 bytes asked for"),
                    subject_ref,
                    subject_sealed,
                    created_at: from_micros(created)?,
                    expires_at: from_micros(expires)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn subject_contact(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (org, subject_ref) = (scope.org_id().to_string(), subject_ref.to_string());
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT sealed FROM subject_contacts WHERE org_id = ?1 AND subject_ref = ?2",
                [&org, &subject_ref],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn set_subject_contact(
        &self,
        scope: &OrgScope,
        subject_ref: &str,
        sealed: Option<Vec<u8>>,
        now: jiff::Timestamp,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let (org, subject_ref) = (scope.org_id().to_string(), subject_ref.to_string());
        self.mutate(audit, move |tx| {
            match sealed {
                Some(sealed) => tx.execute(
                    "INSERT INTO subject_contacts (org_id, subject_ref, sealed, updated_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (org_id, subject_ref) \
                     DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                    params![org, subject_ref, sealed, to_micros(now)],
                )?,
                None => tx.execute(
                    "DELETE FROM subject_contacts WHERE org_id = ?1 AND subject_ref = ?2",
                    [&org, &subject_ref],
                )?,
            };
            Ok(())
        })
        .await
    }
}
