-- The runtime registry (PostgreSQL): accounts managed with the admin API and scoped API keys.
-- Every change takes the next number of wxgate_registry_seq in the same transaction and stamps
-- the changed row with it, so an instance that has seen number N reads only rows with a larger
-- one. Deleted rows stay as tombstones (secrets emptied) for the instances still to see it.
CREATE TABLE wxgate_registry_seq (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO wxgate_registry_seq (id, seq) VALUES (1, 0);
CREATE TABLE wxgate_accounts (
    name TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    -- the account's keys without its secrets, as JSON
    settings TEXT NOT NULL,
    -- field -> value sealed with admin.master_key (src/vault.rs), as JSON
    secrets TEXT NOT NULL,
    deleted BOOLEAN NOT NULL,
    seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX wxgate_accounts_by_seq ON wxgate_accounts (seq);
CREATE TABLE wxgate_api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- hex SHA-256 of the key; the key itself is never stored
    digest TEXT NOT NULL,
    accounts TEXT NOT NULL,
    scopes TEXT NOT NULL,
    deleted BOOLEAN NOT NULL,
    seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX wxgate_api_keys_by_seq ON wxgate_api_keys (seq);
