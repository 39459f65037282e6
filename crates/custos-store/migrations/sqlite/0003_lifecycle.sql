-- Migration 3: sweeper leases and the deletion log.
ALTER TABLE records ADD COLUMN lease_until INTEGER;
CREATE TABLE deletion_log (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    record_id TEXT NOT NULL,
    category TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    purged_at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (org_id, record_id)
);
