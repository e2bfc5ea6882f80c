-- When results last went to ClickHouse: workers share it, so ClickHouse
-- gets at most one insert per `CLICKHOUSE_FLUSH_MS` however many workers
-- there are (each insert writes a part in the raw table and in every
-- rollup; fewer, larger inserts cost far less to write and merge).
ALTER TABLE run_results_sent
    ADD COLUMN IF NOT EXISTS flushed_at timestamptz NOT NULL DEFAULT 'epoch';
