CREATE TABLE pii_tokens (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    lookup TEXT NOT NULL,
    token TEXT NOT NULL,
    entity TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sealed_value BLOB NOT NULL,
    subject_ref TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, lookup)
);
CREATE UNIQUE INDEX pii_tokens_by_token ON pii_tokens (org_id, token);
CREATE INDEX pii_tokens_by_seq ON pii_tokens (org_id, entity, seq);
CREATE INDEX pii_tokens_by_subject ON pii_tokens (org_id, subject_ref) WHERE subject_ref IS NOT NULL;
