-- A check's schedule, run lease and alert streak per location it runs in:
-- a slot runs once in each location it is due in, leased and fenced per
-- (check, location). The check row keeps the definition and the incident
-- state the quorum decides; a run writes only its schedule row.
CREATE TABLE IF NOT EXISTS check_schedules (
    check_id             uuid        NOT NULL REFERENCES checks (id),
    location             text        NOT NULL,
    -- Runs here now: the check is enabled, not deleted, and lists this
    -- location. A row is kept when the location is dropped (its history
    -- and a lease in flight stay consistent).
    active               boolean     NOT NULL DEFAULT true,
    -- The time between this location's slots: the interval, times the
    -- number of locations for `round_robin`.
    period_seconds       integer     NOT NULL CHECK (period_seconds >= 1),
    next_run_at          timestamptz NOT NULL,
    lease_token          uuid,
    lease_slot           timestamptz,
    lease_expires_at     timestamptz,
    catching_up          boolean     NOT NULL DEFAULT false,
    last_status          text        NOT NULL DEFAULT 'unknown',
    last_run_at          timestamptz,
    last_latency_ms      integer,
    last_status_code     integer,
    last_error           text,
    consecutive_fails    integer     NOT NULL DEFAULT 0,
    consecutive_degraded integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (check_id, location)
);

CREATE INDEX IF NOT EXISTS check_schedules_due_idx ON check_schedules (next_run_at)
    WHERE active;
CREATE INDEX IF NOT EXISTS check_schedules_lease_idx ON check_schedules (lease_expires_at)
    WHERE lease_token IS NOT NULL;
CREATE INDEX IF NOT EXISTS check_schedules_catching_up_idx ON check_schedules (next_run_at)
    WHERE catching_up;

-- Existing checks run in `default`, as before, with their schedule, lease
-- and streak.
INSERT INTO check_schedules (check_id, location, active, period_seconds, next_run_at,
    lease_token, lease_slot, lease_expires_at, catching_up, last_status, last_run_at,
    last_latency_ms, last_status_code, last_error, consecutive_fails, consecutive_degraded)
SELECT id, 'default', enabled AND deleted_at IS NULL, interval_seconds, next_run_at,
    lease_token, lease_slot, lease_expires_at, catching_up, last_status, last_run_at,
    last_latency_ms, last_status_code, last_error, consecutive_fails, consecutive_degraded
FROM checks
ON CONFLICT DO NOTHING;

-- The check row's schedule columns are no longer written.
DROP INDEX IF EXISTS checks_due_idx;
DROP INDEX IF EXISTS checks_lease_idx;
DROP INDEX IF EXISTS checks_catching_up_idx;

-- Brings a check's schedule rows in line with its definition, in the
-- caller's transaction: a row per listed location (new ones due at once,
-- or one interval apart in turn for `round_robin`), `active` and the period
-- from the check. With `rephase`, the slots of every listed location are
-- laid out again from now (the locations, their strategy or the interval
-- changed); otherwise a shorter period pulls the next slot in to at most
-- one period from now.
CREATE OR REPLACE FUNCTION pulse_sync_schedules(p_check uuid, p_rephase boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c checks%ROWTYPE;
    n integer;
BEGIN
    SELECT * INTO c FROM checks WHERE id = p_check;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    n := cardinality(c.locations);
    INSERT INTO check_schedules AS s (check_id, location, active, period_seconds, next_run_at)
    SELECT c.id, l.location, c.enabled AND c.deleted_at IS NULL,
        CASE WHEN c.location_strategy = 'round_robin' THEN c.interval_seconds * n
             ELSE c.interval_seconds END,
        now() + make_interval(secs => CASE WHEN c.location_strategy = 'round_robin'
             THEN c.interval_seconds * (l.i - 1) ELSE 0 END)
    FROM unnest(c.locations) WITH ORDINALITY AS l(location, i)
    ON CONFLICT (check_id, location) DO UPDATE SET
        active = excluded.active,
        period_seconds = excluded.period_seconds,
        next_run_at = CASE WHEN p_rephase OR NOT s.active THEN excluded.next_run_at
            ELSE LEAST(s.next_run_at, now() + make_interval(secs => excluded.period_seconds))
            END;
    UPDATE check_schedules SET active = false
    WHERE check_id = c.id AND active AND NOT (location = ANY (c.locations));
END
$$;
