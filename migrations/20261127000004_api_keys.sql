-- API keys: `pulse_<lookup id>_<secret>`; only a SHA-256 hash of the whole
-- key is stored.
CREATE TABLE IF NOT EXISTS api_keys (
    id           uuid PRIMARY KEY,
    name         text        NOT NULL,
    lookup       text        NOT NULL UNIQUE,
    key_hash     bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_name_idx ON api_keys (name);
