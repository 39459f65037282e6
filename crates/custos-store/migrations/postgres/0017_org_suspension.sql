-- Suspension: an operator's hold on an org (non-payment, abuse): its members are refused
-- everything but reading the org (403 org_suspended) until it is resumed; NULL: not suspended.
ALTER TABLE orgs ADD COLUMN suspended_at BIGINT;
