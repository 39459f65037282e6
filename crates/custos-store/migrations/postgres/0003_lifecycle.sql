-- Migration 3: sweeper leases and the deletion log.
ALTER TABLE records ADD COLUMN lease_until BIGINT;
CREATE TABLE deletion_log (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    record_id TEXT NOT NULL,
    category TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    purged_at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (org_id, record_id)
);
