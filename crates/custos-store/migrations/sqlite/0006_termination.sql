-- Migration 6: org termination, archive restore windows, and the audit event of each purge.
ALTER TABLE orgs ADD COLUMN terminate_requested_at INTEGER;
ALTER TABLE orgs ADD COLUMN terminated_at INTEGER;
ALTER TABLE records ADD COLUMN readable_until INTEGER;
-- Rebuilt WITHOUT ROWID with the new column: its small rows live in the primary-key b-tree
-- itself, so each purge writes one b-tree here instead of a table and its key index.
CREATE TABLE deletion_log_v6 (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    record_id TEXT NOT NULL,
    category TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    purged_at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    audit_idx INTEGER,
    PRIMARY KEY (org_id, record_id)
) WITHOUT ROWID;
INSERT INTO deletion_log_v6 (org_id, record_id, category, created_at, due_at, purged_at, reason)
    SELECT org_id, record_id, category, created_at, due_at, purged_at, reason FROM deletion_log;
DROP TABLE deletion_log;
ALTER TABLE deletion_log_v6 RENAME TO deletion_log;
