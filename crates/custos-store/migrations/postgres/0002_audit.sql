ALTER TABLE audit_log ADD COLUMN leaf_hash BYTEA;
UPDATE audit_log SET leaf_hash = sha256('\x00'::bytea || leaf);
CREATE TABLE audit_nodes (
    level SMALLINT NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE audit_checkpoints (
    size BIGINT PRIMARY KEY,
    note TEXT NOT NULL,
    time BIGINT NOT NULL
);
