-- Migration 5: due-time recomputations queued by retention override changes.
CREATE TABLE due_recompute (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    category TEXT NOT NULL,
    after_id TEXT NOT NULL,
    PRIMARY KEY (org_id, category)
);
