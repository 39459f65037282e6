-- Incidents: a detection time, the policy's clocks (contain, assess, notify) as due times,
-- a status that only moves forward, each step with who and when, and a scope (orgs, actors,
-- a time window, categories) as JSON. Deployment-wide, in the main database. `warned` lists
-- the clock alerts already queued (`contain:soon`, `contain:overdue`, ...), so each goes
-- out once whichever instance sends it.
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    detected_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    opened_by TEXT NOT NULL,
    scope TEXT NOT NULL,
    contain_due INTEGER NOT NULL,
    assess_due INTEGER NOT NULL,
    notify_due INTEGER NOT NULL,
    warned TEXT NOT NULL DEFAULT ''
);
CREATE INDEX incidents_open ON incidents (status);

CREATE TABLE incident_steps (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    note TEXT,
    PRIMARY KEY (incident_id, seq)
);
