-- Set when a run's lease expired and its slot was re-queued (its worker
-- died): the check's slots missed meanwhile are then caught up one after
-- another instead of skipped, until it is back on schedule.
ALTER TABLE checks ADD COLUMN IF NOT EXISTS catching_up boolean NOT NULL DEFAULT false;
