-- Each run's details (phases, assertion outcomes, the excerpt of a failed
-- response, the certificate) as JSON, beside the other columns of a batch.
ALTER TABLE run_result_batches ADD COLUMN IF NOT EXISTS details text[];
