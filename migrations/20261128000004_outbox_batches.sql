-- The results outbox holds one row per written batch of runs (the
-- results as parallel arrays) instead of one row per run: a batch of
-- hundreds of results costs Postgres one tuple to insert, index and delete.
-- `run_results_sent.upto` now marks batches (their seq).
CREATE TABLE IF NOT EXISTS run_result_batches (
    seq             bigserial PRIMARY KEY,
    ids             uuid[]        NOT NULL,
    check_ids       uuid[]        NOT NULL,
    run_at          timestamptz[] NOT NULL,
    scheduled_at_ms bigint[]      NOT NULL,
    status          text[]        NOT NULL,
    failure_reason  text[]        NOT NULL,
    latency_ms      integer[]     NOT NULL,
    status_code     integer[]     NOT NULL,
    error           text[]        NOT NULL,
    worker          text[]        NOT NULL,
    attempts        integer[]     NOT NULL
);
-- Results still waiting move over as one batch, which counts as maybe sent
-- if any of them did.
INSERT INTO run_result_batches (ids, check_ids, run_at, scheduled_at_ms, status,
    failure_reason, latency_ms, status_code, error, worker, attempts)
SELECT array_agg(id ORDER BY seq), array_agg(check_id ORDER BY seq),
    array_agg(run_at ORDER BY seq), array_agg(scheduled_at_ms ORDER BY seq),
    array_agg(status ORDER BY seq), array_agg(failure_reason ORDER BY seq),
    array_agg(latency_ms ORDER BY seq), array_agg(status_code ORDER BY seq),
    array_agg(error ORDER BY seq), array_agg(worker ORDER BY seq),
    array_agg(attempts ORDER BY seq)
FROM run_results HAVING count(*) > 0;
UPDATE run_results_sent SET upto = CASE
    WHEN EXISTS (SELECT 1 FROM run_results WHERE seq <= run_results_sent.upto)
    THEN COALESCE((SELECT max(seq) FROM run_result_batches), 0) ELSE 0 END;
DROP TABLE run_results;
