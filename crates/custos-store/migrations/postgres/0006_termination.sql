-- Migration 6: org termination, archive restore windows, and the audit event of each purge.
ALTER TABLE orgs ADD COLUMN terminate_requested_at BIGINT;
ALTER TABLE orgs ADD COLUMN terminated_at BIGINT;
ALTER TABLE records ADD COLUMN readable_until BIGINT;
ALTER TABLE deletion_log ADD COLUMN audit_idx BIGINT;
