-- The first schema: orgs, members, records, retention overrides, holds and the audit log.
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    region TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE members (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    roles TEXT NOT NULL,
    groups_json TEXT NOT NULL,
    mfa BOOLEAN NOT NULL,
    key_hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE TABLE records (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    id TEXT NOT NULL,
    category TEXT NOT NULL,
    subject_ref TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    archive_at BIGINT,
    expire_at BIGINT NOT NULL,
    deleted_at BIGINT,
    next_due_at BIGINT,
    key_ref TEXT NOT NULL,
    sealed BYTEA,
    blob_size BIGINT,
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
    created_at BIGINT NOT NULL,
    released_at BIGINT,
    PRIMARY KEY (org_id, id)
);
CREATE TABLE audit_head (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    size BIGINT NOT NULL
);
INSERT INTO audit_head (one, size) VALUES (TRUE, 0);
CREATE TABLE audit_log (
    idx BIGINT PRIMARY KEY,
    org_id TEXT,
    time BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL,
    leaf BYTEA NOT NULL
);
CREATE INDEX audit_by_org ON audit_log (org_id, idx);
