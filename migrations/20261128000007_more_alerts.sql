-- Degraded streaks and their alerts, and certificate expiry alerts (one per
-- certificate, by fingerprint).
ALTER TABLE checks ADD COLUMN IF NOT EXISTS consecutive_degraded integer NOT NULL DEFAULT 0;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS degraded_open boolean NOT NULL DEFAULT false;
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('failure', 'recovery', 'degraded', 'tls_expiry'));
CREATE TABLE IF NOT EXISTS tls_expiry_alerted (
    check_id    uuid        NOT NULL,
    fingerprint text        NOT NULL,
    alerted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (check_id, fingerprint)
);
