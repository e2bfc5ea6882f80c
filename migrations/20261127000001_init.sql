-- Checks: the user's definition, the last run's summary, the schedule and
-- the run lease. Deleting a check is soft (deleted_at) so alerts keep their
-- reference and history stays.
CREATE TABLE IF NOT EXISTS checks (
    id                uuid PRIMARY KEY,
    name              text        NOT NULL,
    url               text        NOT NULL,
    method            text        NOT NULL DEFAULT 'GET',
    headers           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    body              text,
    expected_status   integer     NOT NULL DEFAULT 200,
    body_contains     text,
    interval_seconds  integer     NOT NULL CHECK (interval_seconds BETWEEN 1 AND 86400),
    timeout_ms        integer     NOT NULL DEFAULT 10000 CHECK (timeout_ms BETWEEN 1 AND 120000),
    alert_threshold   integer     NOT NULL DEFAULT 3 CHECK (alert_threshold >= 1),
    webhook_url       text,
    enabled           boolean     NOT NULL DEFAULT true,

    last_status       text        NOT NULL DEFAULT 'unknown',
    last_run_at       timestamptz,
    last_latency_ms   integer,
    last_status_code  integer,
    last_error        text,
    consecutive_fails integer     NOT NULL DEFAULT 0,
    incident_open     boolean     NOT NULL DEFAULT false,

    -- The next due slot. Advanced by the scheduler's claim from the slot that
    -- was due (never from "now"), skipping slots missed during downtime.
    next_run_at       timestamptz NOT NULL DEFAULT now(),
    -- The run lease: set by the claim, swapped by the worker that starts the
    -- run, cleared by the fenced state write. Expired leases are re-queued.
    lease_token       uuid,
    lease_slot        timestamptz,
    lease_expires_at  timestamptz,

    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz
);

CREATE INDEX IF NOT EXISTS checks_due_idx ON checks (next_run_at)
    WHERE enabled AND deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS checks_lease_idx ON checks (lease_expires_at)
    WHERE lease_token IS NOT NULL;
CREATE INDEX IF NOT EXISTS checks_created_idx ON checks (created_at)
    WHERE deleted_at IS NULL;

-- Alerts double as the webhook outbox: recorded in the same statement as the
-- state change that raised them, delivered by a separate loop.
CREATE TABLE IF NOT EXISTS alerts (
    id                 uuid PRIMARY KEY,
    check_id           uuid        NOT NULL REFERENCES checks (id),
    kind               text        NOT NULL CHECK (kind IN ('failure', 'recovery')),
    status             text        NOT NULL,
    error              text,
    consecutive_fails  integer     NOT NULL,
    payload            jsonb       NOT NULL,
    webhook_url        text,
    -- pending | delivered | failed | skipped (no webhook configured)
    delivery_state     text        NOT NULL DEFAULT 'pending',
    attempts           integer     NOT NULL DEFAULT 0,
    last_response_code integer,
    last_error         text,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS alerts_check_idx ON alerts (check_id, created_at DESC);
CREATE INDEX IF NOT EXISTS alerts_outbox_idx ON alerts (next_attempt_at)
    WHERE delivery_state = 'pending';
