-- Personal access tokens: a signed-in person's token for remote use, with the member's roles
-- and never a second factor. Stored by hash; ended by revocation, expiry, or the member's
-- removal or disabling.
CREATE TABLE personal_tokens (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX personal_tokens_by_member ON personal_tokens (org_id, member_id);
