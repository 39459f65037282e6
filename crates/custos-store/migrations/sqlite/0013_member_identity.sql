ALTER TABLE members ADD COLUMN identity_iss TEXT;
ALTER TABLE members ADD COLUMN identity_sub TEXT;
CREATE UNIQUE INDEX members_by_identity ON members (org_id, identity_iss, identity_sub);
