CREATE TABLE subject_requests (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    subject_ref TEXT NOT NULL,
    subject_sealed BYTEA,
    filed_by TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    extended_at BIGINT,
    extension_reason TEXT,
    status_reason TEXT,
    completed_at BIGINT,
    progress TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX subject_requests_by_due ON subject_requests (org_id, due_at, id);
CREATE INDEX subject_requests_by_status ON subject_requests (status, due_at);
CREATE TABLE certificates (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX certificates_by_request ON certificates (org_id, request_id, issued_at);
CREATE TABLE erasure_aggregates (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    category TEXT NOT NULL,
    period TEXT NOT NULL,
    records BIGINT NOT NULL,
    PRIMARY KEY (org_id, category, period)
);
