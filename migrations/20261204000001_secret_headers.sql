-- Names of more request headers whose values are write-only (issue 17).
ALTER TABLE checks ADD COLUMN IF NOT EXISTS secret_headers text[] NOT NULL DEFAULT '{}';
