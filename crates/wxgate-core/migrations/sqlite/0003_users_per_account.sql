-- User records belong to one account (SQLite). Rows written before this migration keep
-- account = '' and are adopted at start (src/gateway.rs: adopt_legacy_users) by the one
-- configured account, or by database.legacy_users_account.
CREATE TABLE wxgate_users_by_account (
    account TEXT NOT NULL,
    openid TEXT NOT NULL,
    unionid TEXT,
    nickname TEXT,
    headimgurl TEXT,
    subscribed BOOLEAN CHECK (subscribed IN (0, 1)),
    subscribe_scene TEXT,
    subscribed_at INTEGER,
    unsubscribed_at INTEGER,
    follow_event_at INTEGER,
    last_login_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account, openid)
);
INSERT INTO wxgate_users_by_account (account, openid, unionid, nickname, headimgurl, subscribed,
        subscribe_scene, subscribed_at, unsubscribed_at, follow_event_at, last_login_at,
        created_at, updated_at)
    SELECT '', openid, unionid, nickname, headimgurl, subscribed, subscribe_scene, subscribed_at,
        unsubscribed_at, follow_event_at, last_login_at, created_at, updated_at
    FROM wxgate_users;
DROP TABLE wxgate_users;
ALTER TABLE wxgate_users_by_account RENAME TO wxgate_users;
