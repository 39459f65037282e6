-- Access reviews: when each member (any credential), its API key and each session was last
-- used (written at most once a minute), and when a member was disabled (inactive, or by an
-- owner; NULL: enabled).
ALTER TABLE members ADD COLUMN last_used_at INTEGER;
ALTER TABLE members ADD COLUMN key_last_used_at INTEGER;
ALTER TABLE members ADD COLUMN disabled_at INTEGER;
ALTER TABLE sessions ADD COLUMN last_used_at INTEGER;
