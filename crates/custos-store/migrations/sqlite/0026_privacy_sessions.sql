-- Privacy-center sessions: a data subject who came in through a signed link. The token is
-- kept as its SHA-256 only; the subject's identifier (needed to file its requests) sealed
-- under the org's key, so it is unreadable once the org's keys are destroyed.
CREATE TABLE privacy_sessions (
    token_hash BLOB PRIMARY KEY,
    org_id TEXT NOT NULL,
    subject_ref TEXT NOT NULL,
    subject_sealed BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX privacy_sessions_by_expiry ON privacy_sessions (expires_at);
