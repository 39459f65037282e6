-- Sign-in for people through an identity provider (OpenID Connect).
--
-- A session now says whether it proved a second factor (a TOTP session always did; a session
-- from a sign-in did when the provider's `amr` says so, or after a TOTP step-up), when it was
-- opened, and how long it may stay unused (NULL: no idle limit, the TOTP sessions' rule).
ALTER TABLE sessions ADD COLUMN second_factor INTEGER NOT NULL DEFAULT 1;
ALTER TABLE sessions ADD COLUMN created_at INTEGER;
ALTER TABLE sessions ADD COLUMN idle_seconds INTEGER;

-- Sign-ins under way: the browser went to the provider and has not come back yet. Keyed by
-- the SHA-256 of the `state` parameter, bound to the SHA-256 of the browser's pre-login
-- cookie, used once (deleted when the browser comes back) and dropped when expired.
-- Deployment-wide, in the main database only.
CREATE TABLE sign_ins (
    state_hash BLOB PRIMARY KEY,
    browser_hash BLOB NOT NULL,
    org_id TEXT,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sign_ins_by_expiry ON sign_ins (expires_at);
