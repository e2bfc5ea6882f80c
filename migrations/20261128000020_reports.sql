-- Reports: per-check SLOs, SLO burn alerts, and incidents kept from the
-- alerts that open and close them.
ALTER TABLE checks ADD COLUMN IF NOT EXISTS slo jsonb;
ALTER TABLE checks ADD COLUMN IF NOT EXISTS slo_alerts boolean NOT NULL DEFAULT false;

ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('failure', 'recovery', 'degraded', 'tls_expiry', 'slo_burn', 'slo_recovered'));

-- An SLO breach in progress: one `slo_burn` alert opened it, one
-- `slo_recovered` alert closes it (and deletes the row).
CREATE TABLE IF NOT EXISTS slo_breaches (
    check_id  uuid        PRIMARY KEY REFERENCES checks (id),
    rule      text        NOT NULL,
    alert_id  uuid        NOT NULL REFERENCES alerts (id),
    opened_at timestamptz NOT NULL DEFAULT now()
);

-- Incidents: a `failure` alert opens one, the next `recovery` alert of the
-- check closes it. `locations` is the failure alert's `payload->'locations'`
-- (a list of {"location", "error"}) when it has one.
CREATE TABLE IF NOT EXISTS incidents (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    check_id          uuid        NOT NULL REFERENCES checks (id),
    opened_at         timestamptz NOT NULL,
    resolved_at       timestamptz,
    first_error       text,
    locations         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    opened_alert_id   uuid        NOT NULL REFERENCES alerts (id),
    resolved_alert_id uuid        REFERENCES alerts (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_open_idx ON incidents (check_id)
    WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS incidents_check_idx ON incidents (check_id, opened_at DESC, id);
CREATE INDEX IF NOT EXISTS incidents_opened_idx ON incidents (opened_at DESC, id);

-- What one alert does to the incidents: the trigger and the backfill below
-- both apply it, so the rule is written once.
CREATE OR REPLACE FUNCTION pulse_incident_apply(a alerts) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF a.kind = 'failure' THEN
        INSERT INTO incidents (check_id, opened_at, first_error, locations, opened_alert_id)
        VALUES (a.check_id, a.created_at, a.error,
                CASE WHEN jsonb_typeof(a.payload -> 'locations') = 'array'
                     THEN a.payload -> 'locations' ELSE '[]'::jsonb END,
                a.id)
        ON CONFLICT (check_id) WHERE resolved_at IS NULL DO NOTHING;
    ELSIF a.kind = 'recovery' THEN
        UPDATE incidents SET resolved_at = a.created_at, resolved_alert_id = a.id
        WHERE check_id = a.check_id AND resolved_at IS NULL;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION pulse_incident_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pulse_incident_apply(NEW);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS alerts_incidents ON alerts;
CREATE TRIGGER alerts_incidents AFTER INSERT ON alerts
    FOR EACH ROW EXECUTE FUNCTION pulse_incident_trigger();

-- Incidents from the alerts recorded before this migration, oldest first.
DO $$
DECLARE a alerts;
BEGIN
    FOR a IN SELECT * FROM alerts WHERE kind IN ('failure', 'recovery')
             ORDER BY created_at, id LOOP
        PERFORM pulse_incident_apply(a);
    END LOOP;
END $$;
