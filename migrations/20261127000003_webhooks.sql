-- Per-check webhook signing key (whsec_...), and a record of every webhook
-- delivery attempt.
ALTER TABLE checks ADD COLUMN IF NOT EXISTS webhook_secret text;

CREATE TABLE IF NOT EXISTS webhook_attempts (
    id            bigserial PRIMARY KEY,
    alert_id      uuid        NOT NULL REFERENCES alerts (id),
    attempt       integer     NOT NULL,
    attempted_at  timestamptz NOT NULL DEFAULT now(),
    response_code integer,
    error         text,
    duration_ms   integer     NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_alert_idx ON webhook_attempts (alert_id, attempt);
