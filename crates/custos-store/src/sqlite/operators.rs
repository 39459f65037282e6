//! [`crate::OperatorStore`] on SQLite.

use super::*;
use crate::operators::{first_operator_sql, OperatorRow, OPERATOR_COLUMNS};

fn operator_from_row(r: &rusqlite::Row<'_>) -> Result<OperatorRow, StoreError> {
    Ok(OperatorRow {
        id: r.get(0)?,
        name: r.get(1)?,
        identity: PersonIdentity {
            iss: r.get(2)?,
            sub: r.get(3)?,
        },
        created_at: from_micros(r.get(4)?)?,
        created_by: r.get(5)?,
    })
}

#[async_trait::async_trait]
impl crate::OperatorStore for SqliteStore {
    async fn add_first_operator(
        &self,
        operator: &OperatorRow,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let o = operator.clone();
        let columns: Vec<AuditColumns> = audit.iter().map(AuditColumns::of).collect();
        // SQLite serializes writers, so the emptiness check and the insert cannot interleave.
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(
                &first_operator_sql(|n| format!("?{n}")),
                params![
                    o.id,
                    o.name,
                    o.identity.iss,
                    o.identity.sub,
                    to_micros(o.created_at),
                    o.created_by
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

    async fn operators(&self) -> Result<Vec<OperatorRow>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY created_at, id"
            ))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(operator_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn has_operators(&self) -> Result<bool, StoreError> {
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT EXISTS (SELECT 1 FROM operators)")?
                .query_row([], |r| r.get::<_, bool>(0))?)
        })
        .await
    }
}
