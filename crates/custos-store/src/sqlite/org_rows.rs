//! An org's rows on SQLite: export, import and delete, for moves between regions (the rows'
//! shape is [`crate::OrgRows`]).

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, Transaction};

use crate::org_rows::{is_store_table, OrgKey};
use crate::{Cell, OrgRows, OrgScope, StoreError, TableRows};

/// The org's tables on this SQLite database, `orgs` first, with how each is keyed and its
/// columns (store-internal org keys left out).
fn sqlite_tables(conn: &Connection) -> Result<Vec<(String, OrgKey, Vec<String>)>, StoreError> {
    let mut names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    names.retain(|n| !is_store_table(n));
    names.sort_by_key(|n| n != "orgs");
    let mut out = Vec::new();
    for name in names {
        let columns: Vec<String> = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{name}') ORDER BY cid"
            ))?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let key = if name == "orgs" {
            OrgKey::OrgsRow
        } else if columns.iter().any(|c| c == "org_id") {
            OrgKey::OrgId
        } else if columns.iter().any(|c| c == "org_seq") {
            OrgKey::OrgSeq
        } else {
            return Err(StoreError::Corrupt(format!(
                "table {name} has no org column: cannot tell which of its rows move with an org"
            )));
        };
        // The org keys are each store's own business (SQLite numbers orgs, PostgreSQL does
        // not): rows travel without them, and the target adds its own.
        let kept = columns
            .into_iter()
            .filter(|c| {
                !matches!(
                    (&key, c.as_str()),
                    (OrgKey::OrgsRow, "seq") | (_, "org_seq") | (OrgKey::OrgId, "org_id")
                )
            })
            .collect();
        out.push((name, key, kept));
    }
    Ok(out)
}

fn where_org(key: &OrgKey) -> &'static str {
    match key {
        OrgKey::OrgsRow => "id = ?1",
        OrgKey::OrgId => "org_id = ?1",
        OrgKey::OrgSeq => crate::sqlite::IN_ORG,
    }
}

fn cell(value: Value) -> Cell {
    match value {
        Value::Null => Cell::Null,
        Value::Integer(i) => Cell::Integer(i),
        Value::Real(f) => Cell::Real(f),
        Value::Text(t) => Cell::Text(t),
        Value::Blob(b) => Cell::Blob(b),
    }
}

fn value(cell: &Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Integer(i) => Value::Integer(*i),
        Cell::Real(f) => Value::Real(*f),
        Cell::Text(t) => Value::Text(t.clone()),
        Cell::Blob(b) => Value::Blob(b.clone()),
    }
}

/// Reads every row of the org.
pub(crate) fn sqlite_export(conn: &Connection, scope: &OrgScope) -> Result<OrgRows, StoreError> {
    let org_id = scope.org_id();
    let mut tables = Vec::new();
    for (name, key, columns) in sqlite_tables(conn)? {
        let sql = format!(
            "SELECT {} FROM {name} WHERE {}",
            columns.join(", "),
            where_org(&key)
        );
        let mut stmt = conn.prepare(&sql)?;
        let width = columns.len();
        let rows = stmt
            .query_map([org_id], |r| {
                (0..width)
                    .map(|i| r.get::<_, Value>(i).map(cell))
                    .collect::<Result<Vec<_>, _>>()
            })?
            .collect::<Result<Vec<_>, _>>()?;
        tables.push(TableRows {
            table: name,
            columns,
            rows,
        });
    }
    Ok(OrgRows {
        org_id: org_id.to_string(),
        tables,
    })
}

/// Deletes every row of the org (inside the caller's transaction; foreign keys are checked
/// at its commit).
pub(crate) fn sqlite_delete(tx: &Transaction<'_>, org_id: &str) -> Result<(), StoreError> {
    tx.execute_batch("PRAGMA defer_foreign_keys = ON")?;
    let tables = sqlite_tables(tx)?;
    // Rows that name the org's number go before the org row that defines it.
    for (name, key, _) in tables.iter().rev() {
        tx.execute(
            &format!("DELETE FROM {name} WHERE {}", where_org(key)),
            [org_id],
        )?;
    }
    Ok(())
}

/// Writes `rows` as the org's rows with `region` as its home, replacing any it had here
/// (inside the caller's transaction).
pub(crate) fn sqlite_import(
    tx: &Transaction<'_>,
    rows: &OrgRows,
    region: &str,
) -> Result<OrgScope, StoreError> {
    sqlite_delete(tx, &rows.org_id)?;
    let here = sqlite_tables(tx)?;
    for table in &rows.tables {
        let Some((_, key, columns)) = here.iter().find(|(n, _, _)| *n == table.table) else {
            return Err(StoreError::Config(format!(
                "the target store has no table {}: run the same Custos version on both",
                table.table
            )));
        };
        if let Some(missing) = table.columns.iter().find(|c| !columns.contains(c)) {
            return Err(StoreError::Config(format!(
                "the target store's table {} has no column {missing}: run the same Custos \
                 version on both",
                table.table
            )));
        }
        let mut cols = table.columns.clone();
        let mut marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let org_param = cols.len() + 1;
        match key {
            OrgKey::OrgsRow => {
                cols.push("seq".into());
                marks.push("(SELECT COALESCE(MAX(seq), 0) + 1 FROM orgs)".into());
            }
            OrgKey::OrgSeq => {
                cols.push("org_seq".into());
                marks.push(format!("(SELECT seq FROM orgs WHERE id = ?{org_param})"));
            }
            OrgKey::OrgId => {
                cols.push("org_id".into());
                marks.push(format!("?{org_param}"));
            }
        }
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.table,
            cols.join(", "),
            marks.join(", ")
        );
        let mut stmt = tx.prepare(&sql)?;
        let region_at = table.columns.iter().position(|c| c == "region");
        for row in &table.rows {
            let mut values: Vec<Value> = row.iter().map(value).collect();
            if let (OrgKey::OrgsRow, Some(i)) = (key, region_at) {
                values[i] = Value::Text(region.to_string());
            }
            if matches!(key, OrgKey::OrgSeq | OrgKey::OrgId) {
                values.push(Value::Text(rows.org_id.clone()));
            }
            stmt.execute(params_from_iter(values))?;
        }
    }
    Ok(OrgScope::new(rows.org_id.clone()))
}
