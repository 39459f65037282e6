ALTER TABLE member_factors ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE member_factors ADD COLUMN last_failure_at BIGINT;
CREATE TABLE enrollment_codes (
    org_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    code_hash BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, member_id)
);
