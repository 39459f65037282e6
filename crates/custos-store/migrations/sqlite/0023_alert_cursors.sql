-- The alert evaluator follows every audit log: the main one (its cursor stays in
-- alert_evaluator) and each region's own (one row per region here, created at its first
-- step). Kept in the main database with the lease that guards them.
CREATE TABLE alert_cursors (
    log TEXT PRIMARY KEY,
    cursor INTEGER NOT NULL
);
