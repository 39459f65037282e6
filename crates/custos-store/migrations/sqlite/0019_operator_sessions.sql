-- Sessions of operators signed in through the deployment's identity provider (always with a
-- second factor). Deployment-wide, in the main database only; an operator's sessions end
-- after `idle_seconds` unused (since the last noted use, or the opening) and at
-- `expires_at` however they are used.
CREATE TABLE operator_sessions (
    token_hash BLOB PRIMARY KEY,
    operator_id TEXT NOT NULL REFERENCES operators (id),
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    idle_seconds INTEGER NOT NULL
);
CREATE INDEX operator_sessions_by_operator ON operator_sessions (operator_id);
