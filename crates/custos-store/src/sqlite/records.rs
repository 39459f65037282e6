//! [`crate::RecordStore`] on SQLite.

use super::*;

#[async_trait::async_trait]
impl crate::RecordStore for SqliteStore {
    async fn insert_records(
        &self,
        scope: &OrgScope,
        records: &[RecordRow],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let org = scope.org_id().to_string();
        let records = records.to_vec();
        self.mutate(audit, move |tx| insert_record_rows(tx, &org, &records))
            .await
    }

    async fn insert_record_stream(
        &self,
        scope: &OrgScope,
        mut chunks: crate::RecordChunks,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let org = scope.org_id().to_string();
        // Each chunk is inserted as it arrives, so the writer works while the caller seals
        // the next one. The writer is held until the stream ends: other writes wait for the
        // batch's sealing as well as its insert, which is why the core sends a small first
        // chunk and streams only what it seals at full speed.
        self.mutate(audit, move |tx| {
            let mut received = 0;
            while let Some(rows) = chunks.blocking_next() {
                insert_record_rows(tx, &org, &rows)?;
                received += rows.len();
            }
            chunks.check_complete(received)
        })
        .await
    }

    async fn record(&self, scope: &OrgScope, id: &str) -> Result<Option<RecordRow>, StoreError> {
        let (org, id) = (scope.org_id().to_string(), id.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records WHERE {IN_ORG} AND id = ?2"
            ))?;
            let mut rows = stmt.query([&org, &id])?;
            rows.next()?.map(record_from_row).transpose()
        })
        .await
    }

    async fn list_records(
        &self,
        scope: &OrgScope,
        filter: &RecordFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RecordRow>, StoreError> {
        let (sql, args) = list_records_query(scope.org_id(), filter, after, limit);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(record_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn category_usage(
        &self,
        scope: &OrgScope,
        until: jiff::Timestamp,
    ) -> Result<Vec<CategoryUsage>, StoreError> {
        let (org, until) = (scope.org_id().to_string(), to_micros(until));
        self.read(move |c| {
            // `length()` of a blob reads its size from the row header, not its pages.
            let mut stmt = c.prepare_cached(&format!(
                "SELECT category, state, COUNT(*),
                        COALESCE(SUM(COALESCE(length(sealed), 0) + COALESCE(blob_size, 0)), 0),
                        SUM(CASE WHEN state = 'active' AND archive_at IS NOT NULL
                                      AND archive_at <= ?2 THEN 1 ELSE 0 END),
                        SUM(CASE WHEN next_due_at <= ?2 AND NOT (state = 'active'
                                      AND archive_at IS NOT NULL AND archive_at <= ?2)
                                 THEN 1 ELSE 0 END)
                 FROM records WHERE {IN_ORG}
                 GROUP BY category, state ORDER BY category, state"
            ))?;
            let mut rows = stmt.query(params![org, until])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(CategoryUsage {
                    category: r.get(0)?,
                    state: RecordState::parse(&r.get::<_, String>(1)?)?,
                    records: r.get::<_, i64>(2)?.max(0) as u64,
                    bytes: r.get::<_, i64>(3)?.max(0) as u64,
                    archive_due: r.get::<_, i64>(4)?.max(0) as u64,
                    purge_due: r.get::<_, i64>(5)?.max(0) as u64,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn transition_record(
        &self,
        scope: &OrgScope,
        change: &StateChange,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, ch) = (scope.org_id().to_string(), change.clone());
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(
                &format!(
                    "UPDATE records SET state = ?4, deleted_at = ?5, next_due_at = ?6,
                            lease_until = NULL
                     WHERE {IN_ORG} AND id = ?2 AND state = ?3"
                ),
                params![
                    org,
                    ch.id,
                    ch.from.as_str(),
                    ch.to.as_str(),
                    ch.deleted_at.map(to_micros),
                    ch.next_due_at.map(to_micros)
                ],
            )?;
            if n == 0 {
                return Ok(false);
            }
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn insert_records_with_tokens(
        &self,
        scope: &OrgScope,
        records: &[RecordRow],
        tokens: &crate::TokenBatch,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (org, records, tokens) = (scope.org_id().to_string(), records.to_vec(), tokens.clone());
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            // Returning early drops the transaction: rolled back, nothing appended.
            if !crate::sqlite::tokens::write(&tx, &org, &tokens)? {
                return Ok(false);
            }
            insert_record_rows(&tx, &org, &records)?;
            append_audit(&tx, &columns)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn resolve_pii_tokens(
        &self,
        scope: &OrgScope,
        lookups: &[String],
        entities: &[String],
    ) -> Result<crate::TokenResolution, StoreError> {
        let (org, lookups, entities) = (
            scope.org_id().to_string(),
            lookups.to_vec(),
            entities.to_vec(),
        );
        self.read(move |c| crate::sqlite::tokens::resolve(c, &org, &lookups, &entities))
            .await
    }

    async fn pii_tokens(
        &self,
        scope: &OrgScope,
        tokens: &[String],
    ) -> Result<Vec<crate::PiiToken>, StoreError> {
        let (org, tokens) = (scope.org_id().to_string(), tokens.to_vec());
        self.read(move |c| crate::sqlite::tokens::fetch(c, &org, &tokens))
            .await
    }
}
