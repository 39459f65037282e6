-- An incident's notifications: one row per affected org once it was told (its channels got
-- the incident notice and its webhooks one notice per affected subject, by reference).
-- Deployment-wide, in the main database; the primary key makes notifying an org idempotent.
CREATE TABLE incident_notices (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    org_id TEXT NOT NULL,
    subjects INTEGER NOT NULL,
    records INTEGER NOT NULL,
    messages INTEGER NOT NULL,
    notified_at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (incident_id, org_id)
);

-- A data subject's contact (an e-mail address), sealed under the subject's own key, so that
-- erasing the subject makes it unreadable; the row itself goes with the subject's tokens.
CREATE TABLE subject_contacts (
    org_id TEXT NOT NULL,
    subject_ref TEXT NOT NULL,
    sealed BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, subject_ref)
);
