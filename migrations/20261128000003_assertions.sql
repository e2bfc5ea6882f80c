-- What a response must satisfy, and how slow is too slow.
ALTER TABLE checks ADD COLUMN IF NOT EXISTS assertions jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS degraded_ms integer;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS max_response_ms integer;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS alert_on_degraded boolean NOT NULL DEFAULT false;
