-- Privacy-center links used: a link's `jti` is accepted once per org. A row can go once the
-- link has expired (a replay is refused by its `exp` then).
CREATE TABLE privacy_link_uses (
    org_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, jti)
);
