-- Security operations: the durable outbox everything that notifies goes through, and the
-- state of the alert evaluator that tails the audit log. Deployment-wide, in the main
-- database only.
--
-- One outbox row is one message to one channel. Its id is the Standard Webhooks `webhook-id`
-- (the same on every attempt, so receivers drop repeats). A row is claimed by one instance
-- at a time until `claimed_until`; a failed attempt sets `next_attempt_at` (exponential
-- backoff) and releases the claim; after the retry period the row is marked failed.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    org_id TEXT,
    channel TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until INTEGER,
    last_error TEXT,
    finished_at INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_by_org ON outbox (org_id, created_at);

-- The alert evaluator: one instance at a time holds the lease and evaluates the rules over
-- the audit log from `cursor` (the first index not yet evaluated).
CREATE TABLE alert_evaluator (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    cursor INTEGER NOT NULL,
    holder TEXT,
    lease_until INTEGER NOT NULL
);
INSERT INTO alert_evaluator (one, cursor, holder, lease_until) VALUES (1, 0, NULL, 0);

-- Each time a rule fired for a key: no second firing for the same rule and key before
-- `window_end` (an alert is delivered once per window per key).
CREATE TABLE alert_firings (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    fired_at INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    audit_idx INTEGER NOT NULL,
    PRIMARY KEY (rule, key, fired_at)
);
CREATE INDEX alert_firings_by_end ON alert_firings (window_end);

-- Security events without an org (bad keys, failed operator sign-ins, the deployment's own
-- failures), derived from the audit log by the evaluator and kept under the retention of the
-- policy's `security_logs` category. An org's security events are records of that category
-- in the org's own store. The body is JSON with ids, codes and counts, never content.
CREATE TABLE security_events (
    audit_idx INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    expire_at INTEGER NOT NULL
);
CREATE INDEX security_events_by_expiry ON security_events (expire_at);
