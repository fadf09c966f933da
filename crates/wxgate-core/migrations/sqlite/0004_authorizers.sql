-- The accounts that authorized a third-party platform ([[components]]), one row per platform
-- and authorizer appid (SQLite). Status and profile changes are stamped with the registry
-- counter (instances follow them like accounts). The refresh token is sealed with
-- admin.master_key and has a version of its own: replacing it (WeChat may hand back a new one
-- with each token) is not a registry change.
CREATE TABLE wxgate_authorizers (
    component TEXT NOT NULL,
    appid TEXT NOT NULL,
    -- authorized | revoked | refresh_token_invalid
    status TEXT NOT NULL,
    nick_name TEXT NOT NULL DEFAULT '',
    principal_name TEXT NOT NULL DEFAULT '',
    -- WeChat's func_info list, as JSON
    func_info TEXT NOT NULL DEFAULT '[]',
    -- sealed with admin.master_key (src/vault.rs); '' once revoked
    refresh_token TEXT NOT NULL,
    refresh_version INTEGER NOT NULL,
    -- CreateTime of the event that set the status: an older event changes nothing
    event_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    authorized_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (component, appid)
);
CREATE INDEX wxgate_authorizers_by_seq ON wxgate_authorizers (seq);
-- The newest component_verify_ticket of each platform, sealed with admin.master_key: the store
-- keeps it too (read on every token fetch), this copy survives a flushed store.
CREATE TABLE wxgate_component_tickets (
    component TEXT PRIMARY KEY NOT NULL,
    ticket TEXT NOT NULL,
    -- the push's CreateTime (WeChat's clock): a ticket replaces only an older one
    create_time INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
