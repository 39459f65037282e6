-- The deployment's operators: people of the deployment's identity provider, by `iss` + `sub`
-- (never by e-mail). Deployment-wide, in the main database only.
CREATE TABLE operators (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    identity_iss TEXT NOT NULL,
    identity_sub TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (identity_iss, identity_sub)
);
