-- A finished run's write (its state, and the lease released) changes no
-- indexed column, so Postgres makes it a heap-only (HOT) update: no new
-- entry in any index, and no dead one left for the claim's scan of the due
-- index to step over. That needs the lease out of every index, and room on
-- the row's page for its new version.
--
-- Expired leases are found by a scan of the table instead, which the
-- scheduler runs about once a second (`LEASE_SWEEP`), not every poll.
DROP INDEX IF EXISTS check_schedules_lease_idx;
ALTER TABLE check_schedules SET (fillfactor = 70);

-- A batch of results is one wide row, stored out of line and compressed:
-- lz4 compresses it at a fraction of pglz's cost. A Postgres built without
-- lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE run_result_batches
        ALTER COLUMN ids SET COMPRESSION lz4,
        ALTER COLUMN check_ids SET COMPRESSION lz4,
        ALTER COLUMN run_at SET COMPRESSION lz4,
        ALTER COLUMN scheduled_at_ms SET COMPRESSION lz4,
        ALTER COLUMN status SET COMPRESSION lz4,
        ALTER COLUMN failure_reason SET COMPRESSION lz4,
        ALTER COLUMN latency_ms SET COMPRESSION lz4,
        ALTER COLUMN status_code SET COMPRESSION lz4,
        ALTER COLUMN error SET COMPRESSION lz4,
        ALTER COLUMN worker SET COMPRESSION lz4,
        ALTER COLUMN attempts SET COMPRESSION lz4,
        ALTER COLUMN details SET COMPRESSION lz4,
        ALTER COLUMN location SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available: results batches stay compressed with pglz';
END
$$;
