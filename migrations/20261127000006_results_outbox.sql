-- Results on their way to ClickHouse. A run's result is inserted here in
-- the same statement that writes its state and releases its lease, so a
-- worker that dies (or a ClickHouse that is down) loses nothing; workers
-- move rows from here to ClickHouse in large batches. A flush claims rows
-- (claimed_until), inserts them, then deletes them; a row claimed before
-- (flushes > 1) is first looked up in ClickHouse so it is never inserted
-- twice.
CREATE TABLE IF NOT EXISTS run_results (
    id              uuid PRIMARY KEY,
    check_id        uuid        NOT NULL,
    run_at          timestamptz NOT NULL,
    scheduled_at_ms bigint      NOT NULL,
    status          text        NOT NULL,
    failure_reason  text,
    latency_ms      integer     NOT NULL,
    status_code     integer     NOT NULL,
    error           text,
    worker          text        NOT NULL,
    attempts        integer     NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    claimed_until   timestamptz,
    flushes         integer     NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS run_results_created_idx ON run_results (created_at);
