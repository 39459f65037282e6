CREATE TABLE org_settings (
    org_id TEXT PRIMARY KEY REFERENCES orgs(id),
    settings TEXT NOT NULL
);
CREATE TABLE member_factors (
    org_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    totp_sealed BYTEA NOT NULL,
    last_step BIGINT,
    PRIMARY KEY (org_id, member_id)
);
CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY,
    org_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    method TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_member ON sessions (org_id, member_id);
