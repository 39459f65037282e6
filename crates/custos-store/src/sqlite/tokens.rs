//! Org-wide PII tokens on SQLite (see [`crate::tokens`]).

use std::collections::HashSet;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::model::{from_micros, to_micros, StoreError};
use crate::tokens::{PiiToken, TokenBatch, TokenResolution};

/// See [`Store::resolve_pii_tokens`](crate::Store::resolve_pii_tokens).
pub(crate) fn resolve(
    conn: &Connection,
    org: &str,
    lookups: &[String],
    entities: &[String],
) -> Result<TokenResolution, StoreError> {
    let mut out = TokenResolution::default();
    let mut by_lookup =
        conn.prepare_cached("SELECT token FROM pii_tokens WHERE org_id = ?1 AND lookup = ?2")?;
    for lookup in lookups {
        if let Some(token) = by_lookup
            .query_row(params![org, lookup], |r| r.get::<_, String>(0))
            .optional()?
        {
            out.found.push((lookup.clone(), token));
        }
    }
    let mut last = conn.prepare_cached(
        "SELECT COALESCE(MAX(seq), 0) FROM pii_tokens WHERE org_id = ?1 AND entity = ?2",
    )?;
    for entity in entities {
        let n: i64 = last.query_row(params![org, entity], |r| r.get(0))?;
        out.last_seq.push((entity.clone(), n as u64));
    }
    Ok(out)
}

/// See [`Store::pii_tokens`](crate::Store::pii_tokens).
pub(crate) fn fetch(
    conn: &Connection,
    org: &str,
    tokens: &[String],
) -> Result<Vec<PiiToken>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT token, entity, seq, lookup, sealed_value, subject_ref, created_at
         FROM pii_tokens WHERE org_id = ?1 AND token = ?2",
    )?;
    let mut out = Vec::with_capacity(tokens.len());
    let mut seen = HashSet::new();
    for token in tokens.iter().filter(|t| seen.insert(t.as_str())) {
        let mut rows = stmt.query(params![org, token])?;
        if let Some(r) = rows.next()? {
            let seq: i64 = r.get(2)?;
            out.push(PiiToken {
                token: r.get(0)?,
                entity: r.get(1)?,
                seq: seq as u64,
                lookup: r.get(3)?,
                sealed_value: r.get(4)?,
                subject_ref: r.get(5)?,
                created_at: from_micros(r.get(6)?)?,
            });
        }
    }
    Ok(out)
}

/// The token half of a batch insert, inside the caller's transaction. False when the org's
/// tokens moved since the batch was resolved (a used token is gone, or a minted value or
/// pseudonym exists now); the caller then drops the transaction, writing nothing. SQLite has
/// one writer, so nothing can change between these checks and the commit.
pub(crate) fn write(
    tx: &Transaction<'_>,
    org: &str,
    batch: &TokenBatch,
) -> Result<bool, StoreError> {
    let mut exists =
        tx.prepare_cached("SELECT 1 FROM pii_tokens WHERE org_id = ?1 AND lookup = ?2")?;
    for lookup in &batch.existing {
        if !exists.exists(params![org, lookup])? {
            return Ok(false);
        }
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO pii_tokens
             (org_id, lookup, token, entity, seq, sealed_value, subject_ref, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT DO NOTHING",
    )?;
    for t in &batch.minted {
        let n = insert.execute(params![
            org,
            t.lookup,
            t.token,
            t.entity,
            t.seq as i64,
            t.sealed_value,
            t.subject_ref,
            to_micros(t.created_at)
        ])?;
        if n == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}
