-- The scheduler looks for checks whose worker was lost on every tick; an
-- index of just those keeps it from reading the whole table. No claim or
-- state write changes `catching_up`, so their updates stay as cheap.
CREATE INDEX IF NOT EXISTS checks_catching_up_idx ON checks (next_run_at) WHERE catching_up;
