-- A check's version, bumped by every change: the API's ETag, so a PATCH
-- sent with If-Match never overwrites a change it has not seen.
ALTER TABLE checks ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1;
-- Keyset paging of GET /checks (created_at, id).
CREATE INDEX IF NOT EXISTS checks_page_idx ON checks (created_at, id)
    WHERE deleted_at IS NULL;
