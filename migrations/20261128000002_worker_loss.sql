-- The longest a run can take: every attempt timing out, plus the pauses
-- between retries (200 ms, doubling). The one definition of the run
-- budget: every lease is this plus the scheduler's margin, and the worker's
-- `Job::run_budget_ms` is tested equal to it.
CREATE OR REPLACE FUNCTION pulse_run_budget_ms(timeout_ms integer, retries integer)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT timeout_ms::bigint * (LEAST(GREATEST(retries, 0), 5) + 1)
         + 200 * ((1::bigint << LEAST(GREATEST(retries, 0), 5)) - 1)
$$;
