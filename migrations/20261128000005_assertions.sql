-- What a response must satisfy, and how slow is too slow.
ALTER TABLE checks ADD COLUMN IF NOT EXISTS assertions jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS degraded_ms integer;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS max_response_ms integer;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS alert_on_degraded boolean NOT NULL DEFAULT false;
-- Certificates: verify them (or only record them), and warn this many days
-- before one expires (0: never).
ALTER TABLE checks ADD COLUMN IF NOT EXISTS tls_verify boolean NOT NULL DEFAULT true;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS tls_expiry_days integer NOT NULL DEFAULT 14;
