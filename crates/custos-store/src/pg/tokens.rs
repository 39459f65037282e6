//! Org-wide PII tokens on PostgreSQL (see [`crate::tokens`]).

use std::collections::HashSet;

use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::model::{from_micros, to_micros, StoreError};
use crate::tokens::{PiiToken, TokenBatch, TokenResolution};

/// Names the token-minting advisory locks among other advisory locks (first key of the pair).
const TOKEN_LOCK_SPACE: i32 = 0x0C05_7051;

/// See [`Store::resolve_pii_tokens`](crate::Store::resolve_pii_tokens).
pub(crate) async fn resolve(
    pool: &PgPool,
    org: &str,
    lookups: &[String],
    entities: &[String],
) -> Result<TokenResolution, StoreError> {
    let found = if lookups.is_empty() {
        Vec::new()
    } else {
        sqlx::query("SELECT lookup, token FROM pii_tokens WHERE org_id = $1 AND lookup = ANY($2)")
            .bind(org)
            .bind(lookups)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<_>, StoreError>>()?
    };
    let last_seq = if entities.is_empty() {
        Vec::new()
    } else {
        sqlx::query(
            "SELECT e, COALESCE((SELECT MAX(seq) FROM pii_tokens
                                 WHERE org_id = $1 AND entity = e), 0)
             FROM UNNEST($2::text[]) AS e",
        )
        .bind(org)
        .bind(entities)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)? as u64)))
        .collect::<Result<Vec<_>, StoreError>>()?
    };
    Ok(TokenResolution { found, last_seq })
}

/// See [`Store::pii_tokens`](crate::Store::pii_tokens).
pub(crate) async fn fetch(
    pool: &PgPool,
    org: &str,
    tokens: &[String],
) -> Result<Vec<PiiToken>, StoreError> {
    let mut seen = HashSet::new();
    let wanted: Vec<&str> = tokens
        .iter()
        .map(String::as_str)
        .filter(|t| seen.insert(*t))
        .collect();
    sqlx::query(
        "SELECT token, entity, seq, lookup, sealed_value, subject_ref, created_at
         FROM pii_tokens WHERE org_id = $1 AND token = ANY($2)",
    )
    .bind(org)
    .bind(&wanted)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(PiiToken {
            token: r.try_get(0)?,
            entity: r.try_get(1)?,
            seq: r.try_get::<i64, _>(2)? as u64,
            lookup: r.try_get(3)?,
            sealed_value: r.try_get(4)?,
            subject_ref: r.try_get(5)?,
            created_at: from_micros(r.try_get(6)?)?,
        })
    })
    .collect()
}

/// The token half of a batch insert, inside the caller's transaction. False when the org's
/// tokens moved since the batch was resolved (a used token is gone, or a minted value or
/// pseudonym exists now); the caller then drops the transaction, writing nothing.
pub(crate) async fn write(
    tx: &mut Transaction<'_, Postgres>,
    org: &str,
    batch: &TokenBatch,
) -> Result<bool, StoreError> {
    if batch.is_empty() {
        return Ok(true);
    }
    // One minter per org at a time, until commit. Without it, two batches that each mint
    // several tokens of one kind would wait on each other's uncommitted unique-index entries
    // in opposite orders and deadlock; with it, every check below sees only committed rows.
    // Lock order is this lock, then the audit head row (taken by every writer), so no cycle.
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(TOKEN_LOCK_SPACE)
        .bind(org)
        .execute(&mut **tx)
        .await?;
    if !batch.existing.is_empty() {
        let wanted: HashSet<&str> = batch.existing.iter().map(String::as_str).collect();
        let wanted: Vec<&str> = wanted.into_iter().collect();
        // FOR SHARE: a used token cannot be deleted (erasure) before these records commit.
        let present = sqlx::query(
            "SELECT lookup FROM pii_tokens WHERE org_id = $1 AND lookup = ANY($2) FOR SHARE",
        )
        .bind(org)
        .bind(&wanted)
        .fetch_all(&mut **tx)
        .await?
        .len();
        if present != wanted.len() {
            return Ok(false);
        }
    }
    if !batch.minted.is_empty() {
        let m = &batch.minted;
        let inserted = sqlx::query(
            "INSERT INTO pii_tokens
                 (org_id, lookup, token, entity, seq, sealed_value, subject_ref, created_at)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bigint[],
                                      $6::bytea[], $7::text[], $8::bigint[])
             ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(m.iter().map(|t| t.lookup.clone()).collect::<Vec<_>>())
        .bind(m.iter().map(|t| t.token.clone()).collect::<Vec<_>>())
        .bind(m.iter().map(|t| t.entity.clone()).collect::<Vec<_>>())
        .bind(m.iter().map(|t| t.seq as i64).collect::<Vec<_>>())
        .bind(m.iter().map(|t| t.sealed_value.clone()).collect::<Vec<_>>())
        .bind(m.iter().map(|t| t.subject_ref.clone()).collect::<Vec<_>>())
        .bind(
            m.iter()
                .map(|t| to_micros(t.created_at))
                .collect::<Vec<_>>(),
        )
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted != m.len() as u64 {
            return Ok(false);
        }
    }
    Ok(true)
}
