-- The results outbox, cheaper to write and to empty. Rows are keyed by a
-- sequence (each insert lands at the right edge of one btree) instead of a
-- random uuid plus a time index, and a flush no longer claims rows one by
-- one (an update of every row before its delete). Instead one worker at a
-- time flushes (a transaction-level advisory lock), and before its
-- ClickHouse insert it commits in `run_results_sent` the highest sequence
-- it may send: rows at or below that mark are looked up in ClickHouse
-- before being sent again, so none is inserted twice.
ALTER TABLE run_results ADD COLUMN seq bigserial;
CREATE TABLE IF NOT EXISTS run_results_sent (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    upto bigint  NOT NULL
);
-- Rows claimed by the old scheme may be in ClickHouse already.
INSERT INTO run_results_sent (upto)
    SELECT COALESCE(max(seq), 0) FROM run_results WHERE flushes > 0;
ALTER TABLE run_results DROP CONSTRAINT run_results_pkey, ADD PRIMARY KEY (seq);
DROP INDEX IF EXISTS run_results_created_idx;
ALTER TABLE run_results DROP COLUMN claimed_until, DROP COLUMN flushes, DROP COLUMN created_at;
