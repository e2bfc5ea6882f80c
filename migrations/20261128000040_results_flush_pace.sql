-- When results last went to ClickHouse: workers share it, so ClickHouse
-- gets at most one insert per `CLICKHOUSE_FLUSH_MS` however many workers
-- there are (each insert writes a part in the raw table and in every
-- rollup; fewer, larger inserts cost far less to write and merge).
ALTER TABLE run_results_sent
    ADD COLUMN IF NOT EXISTS flushed_at timestamptz NOT NULL DEFAULT 'epoch';
-- When the sent mark last moved: rows at or below it are re-sent only once
-- it is a few seconds old, so that an insert a dead flusher had handed to
-- ClickHouse has landed before they are looked up there.
ALTER TABLE run_results_sent
    ADD COLUMN IF NOT EXISTS marked_at timestamptz NOT NULL DEFAULT 'epoch';
