-- A check's description: free text shown on its page and the form (issue 17).
ALTER TABLE checks ADD COLUMN IF NOT EXISTS description text NOT NULL DEFAULT '';
