-- Locations: where a check runs from, how its slots are spread over them,
-- how many must fail to open an incident, and whether the public status
-- page shows it.
ALTER TABLE checks ADD COLUMN IF NOT EXISTS locations text[] NOT NULL DEFAULT ARRAY['default'];
ALTER TABLE checks ADD COLUMN IF NOT EXISTS location_strategy text NOT NULL DEFAULT 'all';
ALTER TABLE checks ADD COLUMN IF NOT EXISTS alert_locations text NOT NULL DEFAULT 'any';
ALTER TABLE checks ADD COLUMN IF NOT EXISTS public boolean NOT NULL DEFAULT false;
-- Each result names the location it ran in.
ALTER TABLE run_result_batches ADD COLUMN IF NOT EXISTS location text[];
