-- Customer-approved support access: an operator's request, and the grant it becomes once an
-- owner or admin approves it. Statuses: pending (expires unapproved at expires_at), approved
-- (active until active_until), denied, revoked. Times are microseconds since the epoch.
CREATE TABLE support_requests (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    justification TEXT NOT NULL,
    ticket TEXT NOT NULL,
    reason TEXT NOT NULL,
    scope TEXT NOT NULL,
    categories_json TEXT,
    duration TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    decided_by TEXT,
    decided_at INTEGER,
    active_until INTEGER,
    revoked_by TEXT,
    revoked_at INTEGER,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX support_requests_by_time ON support_requests (org_id, created_at);
