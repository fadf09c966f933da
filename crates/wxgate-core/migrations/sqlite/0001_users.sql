-- wxgate user records (SQLite). Applied once by src/users/sqlite.rs, inside the same
-- transaction that records version 1 in wxgate_schema_migrations.
-- Times are unix seconds. TEXT compares with SQLite's default BINARY collation (byte order).
CREATE TABLE wxgate_users (
    openid TEXT PRIMARY KEY NOT NULL,
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
    updated_at INTEGER NOT NULL
);
