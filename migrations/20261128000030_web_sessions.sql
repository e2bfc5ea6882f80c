-- Dashboard sign-in: one row per signed-in browser, made by signing in
-- with an API key. The cookie carries a random token; only its SHA-256
-- hash is stored. Each session has its own CSRF token, which every form
-- must send back. Revoking the key ends its sessions (they join on it).
CREATE TABLE IF NOT EXISTS web_sessions (
    token_hash  bytea       PRIMARY KEY,
    api_key_id  uuid        NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    csrf_token  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS web_sessions_expires_idx ON web_sessions (expires_at);
