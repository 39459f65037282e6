//! The audit log's Merkle tree and checkpoints on SQLite (see [`crate::audit_tree`]).

use custos_audit::{leaf_hash, ConsistencyProof, Frontier, Hash, InclusionProof, NodeId};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::audit_tree::{
    extend, fetch_plan, frontier_from, frontier_ids, hash_from, tree_error, AuditIndex, AuditRow,
    FetchedNodes, StoredCheckpoint,
};
use crate::model::{from_micros, to_micros, AuditColumns, StoreError};

pub(crate) fn log_size(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_log", [], |r| {
        r.get(0)
    })?;
    Ok(n as u64)
}

/// Reads what `ids` need: stored nodes by id, leaf hashes by range.
fn fetch(conn: &Connection, ids: &[NodeId]) -> Result<FetchedNodes, StoreError> {
    let plan = fetch_plan(ids);
    let mut stored = Vec::with_capacity(plan.stored.len());
    if !plan.stored.is_empty() {
        let mut stmt =
            conn.prepare_cached("SELECT hash FROM audit_nodes WHERE level = ?1 AND idx = ?2")?;
        for id in &plan.stored {
            let h: Option<Vec<u8>> = stmt
                .query_row(params![id.level, id.index as i64], |r| r.get(0))
                .optional()?;
            if let Some(h) = h {
                stored.push((*id, hash_from(&h, "audit node")?));
            }
        }
    }
    let mut leaves = Vec::with_capacity(plan.leaf_ranges.len());
    for &(start, end) in &plan.leaf_ranges {
        leaves.push((start, leaf_hashes(conn, start, end)?));
    }
    Ok(FetchedNodes::new(stored, leaves))
}

/// Leaf hashes of `[start, end)`, stopping at the first gap or missing hash.
fn leaf_hashes(conn: &Connection, start: u64, end: u64) -> Result<Vec<Hash>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT idx, leaf_hash FROM audit_log WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
    )?;
    let mut rows = stmt.query(params![start as i64, end as i64])?;
    let mut out = Vec::with_capacity((end - start) as usize);
    while let Some(r) = rows.next()? {
        let idx: i64 = r.get(0)?;
        let h: Option<Vec<u8>> = r.get(1)?;
        match h {
            Some(h) if idx as u64 == start + out.len() as u64 => {
                out.push(hash_from(&h, "leaf hash")?)
            }
            _ => break,
        }
    }
    Ok(out)
}

/// Appends events after the last stored index, with their leaf hashes and the tree nodes they
/// complete, inside the caller's transaction.
pub(crate) fn append(tx: &Transaction<'_>, events: &[AuditColumns]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let start = log_size(tx)?;
    let mut frontier = frontier_from(&fetch(tx, &frontier_ids(start))?, start)?;
    let hashes: Vec<Hash> = events.iter().map(|e| leaf_hash(&e.leaf)).collect();
    let nodes = extend(&mut frontier, &hashes)?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO audit_log (idx, org_id, time, actor, action, target, outcome, leaf, leaf_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (i, (e, h)) in events.iter().zip(&hashes).enumerate() {
        stmt.execute(params![
            (start + i as u64) as i64,
            e.org,
            e.time,
            e.actor,
            e.action,
            e.target,
            e.outcome,
            e.leaf,
            &h[..]
        ])?;
    }
    insert_nodes(tx, &nodes)
}

fn insert_nodes(conn: &Connection, nodes: &[(NodeId, Hash)]) -> Result<(), StoreError> {
    // Plain INSERT: a complete node never changes, so a conflict means the stored tree was
    // tampered with (e.g. rows truncated without their nodes) and the append must fail.
    let mut stmt =
        conn.prepare_cached("INSERT INTO audit_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")?;
    for (id, h) in nodes {
        stmt.execute(params![id.level, id.index as i64, &h[..]])?;
    }
    Ok(())
}

/// Rebuilds leaf hashes and nodes for rows written before migration 2 (their `leaf_hash` is
/// NULL). Runs once, at open, before any append.
pub(crate) fn backfill_if_needed(conn: &mut Connection) -> Result<(), StoreError> {
    let needed: Option<bool> = conn
        .query_row(
            "SELECT leaf_hash IS NULL FROM audit_log ORDER BY idx LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if needed != Some(true) {
        return Ok(());
    }
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM audit_nodes", [])?;
    let mut frontier = Frontier::new();
    let mut from = 0i64;
    loop {
        let page: Vec<(i64, Vec<u8>)> = {
            let mut stmt = tx.prepare(
                "SELECT idx, leaf FROM audit_log WHERE idx >= ?1 ORDER BY idx LIMIT 10000",
            )?;
            let rows = stmt.query_map([from], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let Some(last) = page.last() else { break };
        from = last.0 + 1;
        let hashes: Vec<Hash> = page.iter().map(|(_, l)| leaf_hash(l)).collect();
        {
            let mut up = tx.prepare_cached("UPDATE audit_log SET leaf_hash = ?2 WHERE idx = ?1")?;
            for ((idx, _), h) in page.iter().zip(&hashes) {
                up.execute(params![idx, &h[..]])?;
            }
        }
        let nodes = extend(&mut frontier, &hashes)?;
        insert_nodes(&tx, &nodes)?;
    }
    tx.commit()?;
    Ok(())
}

/// Rows with leaf hashes and indexed columns from `from`, in index order.
pub(crate) fn rows(conn: &Connection, from: u64, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT idx, leaf, leaf_hash, org_id, time, actor, action, target, outcome
         FROM audit_log WHERE idx >= ?1 ORDER BY idx LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![from as i64, limit])?;
    let mut out = Vec::with_capacity(limit.min(100_000) as usize);
    while let Some(r) = rows.next()? {
        let h: Option<Vec<u8>> = r.get(2)?;
        out.push(AuditRow {
            index: r.get::<_, i64>(0)? as u64,
            leaf: r.get(1)?,
            leaf_hash: h.map(|h| hash_from(&h, "leaf hash")).transpose()?,
            columns: AuditIndex {
                org: r.get(3)?,
                time: r.get(4)?,
                actor: r.get(5)?,
                action: r.get(6)?,
                target: r.get(7)?,
                outcome: r.get(8)?,
            },
        });
    }
    Ok(out)
}

fn check_size(conn: &Connection, size: u64) -> Result<(), StoreError> {
    let n = log_size(conn)?;
    if size > n {
        return Err(StoreError::Config(format!(
            "tree size {size} exceeds the audit log size {n}"
        )));
    }
    Ok(())
}

/// The root of the first `size` entries, from stored nodes.
pub(crate) fn root(conn: &Connection, size: u64) -> Result<Hash, StoreError> {
    check_size(conn, size)?;
    let fetched = fetch(conn, custos_audit::root_plan(size).node_ids())?;
    custos_audit::root_at(&fetched, size).map_err(tree_error)
}

/// Inclusion proof of `index` in the tree of `size`, from stored nodes.
pub(crate) fn inclusion(
    conn: &Connection,
    index: u64,
    size: u64,
) -> Result<InclusionProof, StoreError> {
    check_size(conn, size)?;
    let plan =
        custos_audit::inclusion_plan(index, size).map_err(|e| StoreError::Config(e.to_string()))?;
    let mut ids = plan.node_ids().to_vec();
    ids.push(NodeId::leaf(index));
    let fetched = fetch(conn, &ids)?;
    custos_audit::inclusion_proof(&fetched, index, size).map_err(tree_error)
}

/// Consistency proof from `old` to `new`, from stored nodes.
pub(crate) fn consistency(
    conn: &Connection,
    old: u64,
    new: u64,
) -> Result<ConsistencyProof, StoreError> {
    check_size(conn, new)?;
    let plan =
        custos_audit::consistency_plan(old, new).map_err(|e| StoreError::Config(e.to_string()))?;
    let fetched = fetch(conn, plan.node_ids())?;
    custos_audit::consistency_proof(&fetched, old, new).map_err(tree_error)
}

fn checkpoint_from(r: &rusqlite::Row<'_>) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: r.get::<_, i64>(0)? as u64,
        note: r.get(1)?,
        time: from_micros(r.get(2)?)?,
    })
}

/// Stores a checkpoint unless one of that size exists; returns the stored one.
pub(crate) fn add_checkpoint(
    conn: &Connection,
    cp: &StoredCheckpoint,
) -> Result<StoredCheckpoint, StoreError> {
    conn.execute(
        "INSERT INTO audit_checkpoints (size, note, time) VALUES (?1, ?2, ?3)
         ON CONFLICT (size) DO NOTHING",
        params![cp.size as i64, cp.note, to_micros(cp.time)],
    )?;
    let mut stmt =
        conn.prepare_cached("SELECT size, note, time FROM audit_checkpoints WHERE size = ?1")?;
    let mut rows = stmt.query([cp.size as i64])?;
    match rows.next()? {
        Some(r) => checkpoint_from(r),
        None => Err(StoreError::database(
            "checkpoint vanished after insert",
            rusqlite::Error::QueryReturnedNoRows,
        )),
    }
}

/// The checkpoint with the largest size.
pub(crate) fn latest_checkpoint(conn: &Connection) -> Result<Option<StoredCheckpoint>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT size, note, time FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
    )?;
    let mut rows = stmt.query([])?;
    rows.next()?.map(checkpoint_from).transpose()
}

/// Checkpoints with size >= `from_size`, smallest first.
pub(crate) fn checkpoints(
    conn: &Connection,
    from_size: u64,
    limit: u32,
) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT size, note, time FROM audit_checkpoints WHERE size >= ?1 ORDER BY size LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![from_size as i64, limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(checkpoint_from(r)?);
    }
    Ok(out)
}
