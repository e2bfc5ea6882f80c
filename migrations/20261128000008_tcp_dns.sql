-- TCP and DNS checks: what they probe.
ALTER TABLE checks ADD COLUMN IF NOT EXISTS check_type text NOT NULL DEFAULT 'http';
ALTER TABLE checks ADD COLUMN IF NOT EXISTS host text;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS port integer;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS tls boolean NOT NULL DEFAULT false;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS send text;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS expect text;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS record_type text;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS resolver text;
