-- User records belong to one account (PostgreSQL). Rows written before this migration keep
-- account = '' and are adopted at start (src/gateway.rs: adopt_legacy_users) by the one
-- configured account, or by database.legacy_users_account.
ALTER TABLE wxgate_users ADD COLUMN account TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE wxgate_users DROP CONSTRAINT wxgate_users_pkey;
ALTER TABLE wxgate_users ADD PRIMARY KEY (account, openid);
