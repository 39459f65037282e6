//! The audit log's Merkle tree and checkpoints on PostgreSQL (see [`crate::audit_tree`]).
//!
//! Appends run inside the caller's transaction after it took the `audit_head` row lock, so the
//! frontier read here is the committed tree: no other instance can append in between.

use custos_audit::{leaf_hash, ConsistencyProof, Frontier, Hash, InclusionProof, NodeId};
use sqlx::{PgConnection, PgPool, Row};

use crate::audit_tree::{
    extend, fetch_plan, frontier_from, frontier_ids, hash_from, tree_error, AuditIndex, AuditRow,
    FetchedNodes, StoredCheckpoint,
};
use crate::model::{from_micros, to_micros, StoreError};

/// Reads what `ids` need: stored nodes in one query, leaf hashes one query per range.
async fn fetch(conn: &mut PgConnection, ids: &[NodeId]) -> Result<FetchedNodes, StoreError> {
    let plan = fetch_plan(ids);
    let mut stored = Vec::with_capacity(plan.stored.len());
    if !plan.stored.is_empty() {
        let levels: Vec<i16> = plan.stored.iter().map(|id| id.level as i16).collect();
        let idxs: Vec<i64> = plan.stored.iter().map(|id| id.index as i64).collect();
        let rows = sqlx::query(
            "SELECT n.level, n.idx, n.hash FROM audit_nodes n
             JOIN UNNEST($1::smallint[], $2::bigint[]) AS u(level, idx)
               ON n.level = u.level AND n.idx = u.idx",
        )
        .bind(levels)
        .bind(idxs)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            let level: i16 = r.try_get(0)?;
            let idx: i64 = r.try_get(1)?;
            let h: Vec<u8> = r.try_get(2)?;
            stored.push((
                NodeId::new(level as u8, idx as u64),
                hash_from(&h, "audit node")?,
            ));
        }
    }
    let mut leaves = Vec::with_capacity(plan.leaf_ranges.len());
    for &(start, end) in &plan.leaf_ranges {
        let rows = sqlx::query(
            "SELECT idx, leaf_hash FROM audit_log WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        )
        .bind(start as i64)
        .bind(end as i64)
        .fetch_all(&mut *conn)
        .await?;
        let mut hs = Vec::with_capacity(rows.len());
        for r in rows {
            let idx: i64 = r.try_get(0)?;
            let h: Option<Vec<u8>> = r.try_get(1)?;
            match h {
                Some(h) if idx as u64 == start + hs.len() as u64 => {
                    hs.push(hash_from(&h, "leaf hash")?)
                }
                _ => break,
            }
        }
        leaves.push((start, hs));
    }
    Ok(FetchedNodes::new(stored, leaves))
}

/// Extends the tree from `start` (the size before this append, under the `audit_head` lock)
/// by `leaves`; returns their leaf hashes for the rows, after storing the new nodes.
pub(crate) async fn extend_tree(
    conn: &mut PgConnection,
    start: u64,
    leaves: &[&[u8]],
) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut frontier = frontier_from(&fetch(conn, &frontier_ids(start)).await?, start)?;
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    let nodes = extend(&mut frontier, &hashes)?;
    insert_nodes(conn, &nodes).await?;
    Ok(hashes.iter().map(|h| h.to_vec()).collect())
}

async fn insert_nodes(conn: &mut PgConnection, nodes: &[(NodeId, Hash)]) -> Result<(), StoreError> {
    if nodes.is_empty() {
        return Ok(());
    }
    // Plain INSERT: a complete node never changes; a conflict means tampering, and fails.
    sqlx::query(
        "INSERT INTO audit_nodes (level, idx, hash)
         SELECT * FROM UNNEST($1::smallint[], $2::bigint[], $3::bytea[])",
    )
    .bind(
        nodes
            .iter()
            .map(|(id, _)| id.level as i16)
            .collect::<Vec<_>>(),
    )
    .bind(
        nodes
            .iter()
            .map(|(id, _)| id.index as i64)
            .collect::<Vec<_>>(),
    )
    .bind(nodes.iter().map(|(_, h)| h.to_vec()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Builds the stored nodes for rows written before migration 2 (once, after migrating): when
/// the log has a full lowest stored subtree but its node is missing.
pub(crate) async fn rebuild_if_needed(pool: &PgPool) -> Result<(), StoreError> {
    let first = NodeId::new(crate::STORED_MIN_LEVEL, 0);
    let mut tx = pool.begin().await?;
    // Blocks appenders on every instance while the nodes are built.
    let size: i64 = sqlx::query_scalar("SELECT size FROM audit_head FOR UPDATE")
        .fetch_one(&mut *tx)
        .await?;
    let has_first: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM audit_nodes WHERE level = $1 AND idx = 0)",
    )
    .bind(first.level as i16)
    .fetch_one(&mut *tx)
    .await?;
    if (size as u64) < first.end() || has_first {
        return Ok(());
    }
    sqlx::query("DELETE FROM audit_nodes")
        .execute(&mut *tx)
        .await?;
    let mut frontier = Frontier::new();
    let mut from = 0i64;
    loop {
        let rows = sqlx::query(
            "SELECT idx, leaf_hash FROM audit_log WHERE idx >= $1 ORDER BY idx LIMIT 50000",
        )
        .bind(from)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else { break };
        from = last.try_get::<i64, _>(0)? + 1;
        let mut hashes = Vec::with_capacity(rows.len());
        for r in &rows {
            let h: Vec<u8> = r.try_get(1)?;
            hashes.push(hash_from(&h, "leaf hash")?);
        }
        let nodes = extend(&mut frontier, &hashes)?;
        insert_nodes(&mut tx, &nodes).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn log_size(conn: &mut PgConnection) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT size FROM audit_head")
        .fetch_one(&mut *conn)
        .await?;
    Ok(n as u64)
}

async fn check_size(conn: &mut PgConnection, size: u64) -> Result<(), StoreError> {
    let n = log_size(conn).await?;
    if size > n {
        return Err(StoreError::Config(format!(
            "tree size {size} exceeds the audit log size {n}"
        )));
    }
    Ok(())
}

/// Rows with leaf hashes and indexed columns from `from`, in index order.
pub(crate) async fn rows(
    pool: &PgPool,
    from: u64,
    limit: u32,
) -> Result<Vec<AuditRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT idx, leaf, leaf_hash, org_id, time, actor, action, target, outcome
         FROM audit_log WHERE idx >= $1 ORDER BY idx LIMIT $2",
    )
    .bind(from as i64)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let h: Option<Vec<u8>> = r.try_get(2)?;
            Ok(AuditRow {
                index: r.try_get::<i64, _>(0)? as u64,
                leaf: r.try_get(1)?,
                leaf_hash: h.map(|h| hash_from(&h, "leaf hash")).transpose()?,
                columns: AuditIndex {
                    org: r.try_get(3)?,
                    time: r.try_get(4)?,
                    actor: r.try_get(5)?,
                    action: r.try_get(6)?,
                    target: r.try_get(7)?,
                    outcome: r.try_get(8)?,
                },
            })
        })
        .collect()
}

/// The root of the first `size` entries, from stored nodes.
pub(crate) async fn root(pool: &PgPool, size: u64) -> Result<Hash, StoreError> {
    let mut conn = pool.acquire().await?;
    check_size(&mut conn, size).await?;
    let fetched = fetch(&mut conn, custos_audit::root_plan(size).node_ids()).await?;
    custos_audit::root_at(&fetched, size).map_err(tree_error)
}

/// Inclusion proof of `index` in the tree of `size`, from stored nodes.
pub(crate) async fn inclusion(
    pool: &PgPool,
    index: u64,
    size: u64,
) -> Result<InclusionProof, StoreError> {
    let plan =
        custos_audit::inclusion_plan(index, size).map_err(|e| StoreError::Config(e.to_string()))?;
    let mut conn = pool.acquire().await?;
    check_size(&mut conn, size).await?;
    let mut ids = plan.node_ids().to_vec();
    ids.push(NodeId::leaf(index));
    let fetched = fetch(&mut conn, &ids).await?;
    custos_audit::inclusion_proof(&fetched, index, size).map_err(tree_error)
}

/// Consistency proof from `old` to `new`, from stored nodes.
pub(crate) async fn consistency(
    pool: &PgPool,
    old: u64,
    new: u64,
) -> Result<ConsistencyProof, StoreError> {
    let plan =
        custos_audit::consistency_plan(old, new).map_err(|e| StoreError::Config(e.to_string()))?;
    let mut conn = pool.acquire().await?;
    check_size(&mut conn, new).await?;
    let fetched = fetch(&mut conn, plan.node_ids()).await?;
    custos_audit::consistency_proof(&fetched, old, new).map_err(tree_error)
}

fn checkpoint_from(r: &sqlx::postgres::PgRow) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: r.try_get::<i64, _>(0)? as u64,
        note: r.try_get(1)?,
        time: from_micros(r.try_get(2)?)?,
    })
}

/// Stores a checkpoint unless one of that size exists; returns the stored one.
pub(crate) async fn add_checkpoint(
    pool: &PgPool,
    cp: &StoredCheckpoint,
) -> Result<StoredCheckpoint, StoreError> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (size, note, time) VALUES ($1, $2, $3)
         ON CONFLICT (size) DO NOTHING",
    )
    .bind(cp.size as i64)
    .bind(&cp.note)
    .bind(to_micros(cp.time))
    .execute(pool)
    .await?;
    let row = sqlx::query("SELECT size, note, time FROM audit_checkpoints WHERE size = $1")
        .bind(cp.size as i64)
        .fetch_one(pool)
        .await?;
    checkpoint_from(&row)
}

/// The checkpoint with the largest size.
pub(crate) async fn latest_checkpoint(
    pool: &PgPool,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let row =
        sqlx::query("SELECT size, note, time FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(pool)
            .await?;
    row.as_ref().map(checkpoint_from).transpose()
}

/// Checkpoints with size >= `from_size`, smallest first.
pub(crate) async fn checkpoints(
    pool: &PgPool,
    from_size: u64,
    limit: u32,
) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let rows = sqlx::query(
        "SELECT size, note, time FROM audit_checkpoints WHERE size >= $1 ORDER BY size LIMIT $2",
    )
    .bind(from_size as i64)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    rows.iter().map(checkpoint_from).collect()
}
