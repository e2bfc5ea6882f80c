-- Retries before a run counts as failed (0 to 5).
ALTER TABLE checks ADD COLUMN IF NOT EXISTS retries integer NOT NULL DEFAULT 0
    CHECK (retries BETWEEN 0 AND 5);
