-- checks_page_idx (created_at, id) serves everything checks_created_idx
-- did; one index fewer to update on each claim and state write.
DROP INDEX IF EXISTS checks_created_idx;
