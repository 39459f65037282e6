ALTER TABLE audit_log ADD COLUMN leaf_hash BLOB;
CREATE TABLE audit_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE audit_checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL,
    time INTEGER NOT NULL
);
