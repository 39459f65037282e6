//! [`OrgRows`] on PostgreSQL: the same generic copy as on SQLite (tables found by their org
//! column), with each value decoded and bound by its column's declared type.

use sqlx::{PgConnection, Postgres, Row, Transaction};

use crate::org_rows::{is_store_table, OrgKey};
use crate::{Cell, OrgRows, OrgScope, StoreError, TableRows};

/// The org's tables in the current schema, `orgs` first: name, key, columns with their types.
async fn pg_tables(
    conn: &mut PgConnection,
) -> Result<Vec<(String, OrgKey, Vec<(String, String)>)>, StoreError> {
    let mut names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
         ORDER BY table_name",
    )
    .fetch_all(&mut *conn)
    .await?;
    names.retain(|n| !is_store_table(n));
    names.sort_by_key(|n| n != "orgs");
    let mut out = Vec::new();
    for name in names {
        let columns: Vec<(String, String)> = sqlx::query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
        let key = if name == "orgs" {
            OrgKey::OrgsRow
        } else if columns.iter().any(|(c, _)| c == "org_id") {
            OrgKey::OrgId
        } else {
            return Err(StoreError::Corrupt(format!(
                "table {name} has no org column: cannot tell which of its rows move with an org"
            )));
        };
        // As on SQLite: rows travel without their org key.
        let columns = columns
            .into_iter()
            .filter(|(c, _)| !(matches!(key, OrgKey::OrgId) && c == "org_id"))
            .collect();
        out.push((name, key, columns));
    }
    Ok(out)
}

fn where_org(key: &OrgKey) -> &'static str {
    match key {
        OrgKey::OrgsRow => "id = $1",
        // PostgreSQL tables name the org by id only (no store-internal number).
        OrgKey::OrgId | OrgKey::OrgSeq => "org_id = $1",
    }
}

fn unsupported(table: &str, column: &str, kind: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "{table}.{column}: column type {kind} cannot be copied between stores"
    ))
}

/// Reads every row of the org, in one snapshot.
pub(crate) async fn pg_export(
    tx: &mut Transaction<'_, Postgres>,
    scope: &OrgScope,
) -> Result<OrgRows, StoreError> {
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut **tx)
        .await?;
    pg_read(tx, scope).await
}

/// Deletes every row of the org if they are still exactly `expect` (a move's copy): the org's
/// tables are locked against writers first, so nothing written after the copy is lost with
/// the delete. [`StoreError::Conflict`] (nothing deleted) when the rows changed.
pub(crate) async fn pg_delete_if_unchanged(
    tx: &mut Transaction<'_, Postgres>,
    expect: &OrgRows,
) -> Result<(), StoreError> {
    let names: Vec<String> = pg_tables(tx).await?.into_iter().map(|t| t.0).collect();
    // EXCLUSIVE lets readers on but waits for, then holds off, every writer of these tables
    // until the move's transaction ends.
    sqlx::query(&format!(
        "LOCK TABLE {} IN EXCLUSIVE MODE",
        names.join(", ")
    ))
    .execute(&mut **tx)
    .await?;
    let now = pg_read(tx, &OrgScope::new(expect.org_id.clone())).await?;
    if now != *expect {
        return Err(StoreError::Conflict(
            "the org changed while it was being moved".into(),
        ));
    }
    pg_delete(tx, &expect.org_id).await
}

/// Reads every row of the org inside the caller's transaction.
async fn pg_read(
    tx: &mut Transaction<'_, Postgres>,
    scope: &OrgScope,
) -> Result<OrgRows, StoreError> {
    let mut tables = Vec::new();
    for (name, key, columns) in pg_tables(tx).await? {
        let list: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
        let sql = format!(
            "SELECT {} FROM {name} WHERE {}",
            list.join(", "),
            where_org(&key)
        );
        let rows = sqlx::query(&sql)
            .bind(scope.org_id())
            .fetch_all(&mut **tx)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cells = Vec::with_capacity(columns.len());
            for (i, (column, kind)) in columns.iter().enumerate() {
                let cell = match kind.as_str() {
                    "bigint" => row.try_get::<Option<i64>, _>(i)?.map(Cell::Integer),
                    "integer" => row
                        .try_get::<Option<i32>, _>(i)?
                        .map(|v| Cell::Integer(v.into())),
                    "smallint" => row
                        .try_get::<Option<i16>, _>(i)?
                        .map(|v| Cell::Integer(v.into())),
                    "boolean" => row
                        .try_get::<Option<bool>, _>(i)?
                        .map(|v| Cell::Integer(v.into())),
                    "double precision" => row.try_get::<Option<f64>, _>(i)?.map(Cell::Real),
                    "text" | "character varying" => {
                        row.try_get::<Option<String>, _>(i)?.map(Cell::Text)
                    }
                    "bytea" => row.try_get::<Option<Vec<u8>>, _>(i)?.map(Cell::Blob),
                    other => return Err(unsupported(&name, column, other)),
                };
                cells.push(cell.unwrap_or(Cell::Null));
            }
            out.push(cells);
        }
        tables.push(TableRows {
            table: name,
            columns: list.into_iter().map(str::to_string).collect(),
            rows: out,
        });
    }
    Ok(OrgRows {
        org_id: scope.org_id().to_string(),
        tables,
    })
}

/// Deletes every row of the org (inside the caller's transaction; `orgs` last, since every
/// other table refers to it).
pub(crate) async fn pg_delete(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
) -> Result<(), StoreError> {
    let tables = pg_tables(tx).await?;
    for (name, key, _) in tables.iter().rev() {
        sqlx::query(&format!("DELETE FROM {name} WHERE {}", where_org(key)))
            .bind(org_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Writes `rows` as the org's rows with `region` as its home, replacing any it had here
/// (inside the caller's transaction).
pub(crate) async fn pg_import(
    tx: &mut Transaction<'_, Postgres>,
    rows: &OrgRows,
    region: &str,
) -> Result<OrgScope, StoreError> {
    pg_delete(tx, &rows.org_id).await?;
    let here = pg_tables(tx).await?;
    for table in &rows.tables {
        let Some((_, key, columns)) = here.iter().find(|(n, _, _)| *n == table.table) else {
            return Err(StoreError::Config(format!(
                "the target store has no table {}: run the same Custos version on both",
                table.table
            )));
        };
        let mut kinds = Vec::with_capacity(table.columns.len());
        for c in &table.columns {
            let Some((_, kind)) = columns.iter().find(|(name, _)| name == c) else {
                return Err(StoreError::Config(format!(
                    "the target store's table {} has no column {c}: run the same Custos \
                     version on both",
                    table.table
                )));
            };
            kinds.push(kind.as_str());
        }
        let mut names = table.columns.clone();
        let mut marks: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let keyed = matches!(key, OrgKey::OrgId);
        if keyed {
            names.push("org_id".into());
            marks.push(format!("${}", marks.len() + 1));
        }
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.table,
            names.join(", "),
            marks.join(", ")
        );
        let region_at = (table.table == "orgs")
            .then(|| table.columns.iter().position(|c| c == "region"))
            .flatten();
        for row in &table.rows {
            let mut query = sqlx::query(&sql);
            for (i, (cell, kind)) in row.iter().zip(&kinds).enumerate() {
                let column = &table.columns[i];
                let cell = match region_at {
                    Some(at) if at == i => Cell::Text(region.to_string()),
                    _ => cell.clone(),
                };
                let mismatch = || {
                    StoreError::Corrupt(format!(
                        "{}.{column}: a {cell:?} value does not fit a {kind} column",
                        table.table
                    ))
                };
                query = match (*kind, &cell) {
                    ("bigint", Cell::Integer(v)) => query.bind(Some(*v)),
                    ("bigint", Cell::Null) => query.bind(None::<i64>),
                    ("integer", Cell::Integer(v)) => {
                        query.bind(Some(i32::try_from(*v).map_err(|_| mismatch())?))
                    }
                    ("integer", Cell::Null) => query.bind(None::<i32>),
                    ("smallint", Cell::Integer(v)) => {
                        query.bind(Some(i16::try_from(*v).map_err(|_| mismatch())?))
                    }
                    ("smallint", Cell::Null) => query.bind(None::<i16>),
                    ("boolean", Cell::Integer(v)) => query.bind(Some(*v != 0)),
                    ("boolean", Cell::Null) => query.bind(None::<bool>),
                    ("double precision", Cell::Real(v)) => query.bind(Some(*v)),
                    ("double precision", Cell::Null) => query.bind(None::<f64>),
                    ("text" | "character varying", Cell::Text(v)) => query.bind(Some(v.clone())),
                    ("text" | "character varying", Cell::Null) => query.bind(None::<String>),
                    ("bytea", Cell::Blob(v)) => query.bind(Some(v.clone())),
                    ("bytea", Cell::Null) => query.bind(None::<Vec<u8>>),
                    _ => return Err(mismatch()),
                };
            }
            if keyed {
                query = query.bind(rows.org_id.clone());
            }
            query.execute(&mut **tx).await?;
        }
    }
    Ok(OrgScope::new(rows.org_id.clone()))
}
