-- The first schema: orgs, members, records, retention overrides, holds and the audit log.
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    region TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE members (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    roles TEXT NOT NULL,
    groups_json TEXT NOT NULL,
    mfa INTEGER NOT NULL,
    key_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id)
);
-- A rowid table on purpose: ~1 KB rows would spill into overflow pages in a WITHOUT ROWID
-- table (whose rows must fit a quarter page), tripling the file and the write cost.
CREATE TABLE records (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    id TEXT NOT NULL,
    category TEXT NOT NULL,
    subject_ref TEXT,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    archive_at INTEGER,
    expire_at INTEGER NOT NULL,
    deleted_at INTEGER,
    next_due_at INTEGER,
    key_ref TEXT NOT NULL,
    sealed BLOB,
    blob_size INTEGER,
    pii TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX records_by_subject ON records (org_id, subject_ref, id) WHERE subject_ref IS NOT NULL;
CREATE INDEX records_by_category ON records (org_id, category, id);
CREATE INDEX records_by_due ON records (next_due_at) WHERE next_due_at IS NOT NULL;
CREATE TABLE retention_overrides (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    category TEXT NOT NULL,
    retention TEXT NOT NULL,
    PRIMARY KEY (org_id, category)
);
CREATE TABLE holds (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    id TEXT NOT NULL,
    reason TEXT NOT NULL,
    subject_ref TEXT,
    category TEXT,
    created_at INTEGER NOT NULL,
    released_at INTEGER,
    PRIMARY KEY (org_id, id)
);
CREATE TABLE audit_log (
    idx INTEGER PRIMARY KEY,
    org_id TEXT,
    time INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL,
    leaf BLOB NOT NULL
);
CREATE INDEX audit_by_org ON audit_log (org_id, idx);
