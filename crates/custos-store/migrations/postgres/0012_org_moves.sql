CREATE TABLE org_moves (
    org_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);
