-- wxgate user records (PostgreSQL). Applied once by src/users/postgres.rs, inside the same
-- transaction that records version 1 in wxgate_schema_migrations.
-- Times are unix seconds. openid uses the "C" collation so its order is byte order, the same
-- as SQLite's and Rust's.
CREATE TABLE wxgate_users (
    openid TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    unionid TEXT,
    nickname TEXT,
    headimgurl TEXT,
    subscribed BOOLEAN,
    subscribe_scene TEXT,
    subscribed_at BIGINT,
    unsubscribed_at BIGINT,
    follow_event_at BIGINT,
    last_login_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
