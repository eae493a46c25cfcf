-- Search across outputs (#18 item 5): SQLite's 0012 defers indexing a finished run's output to
-- batches. PostgreSQL needs no change: its GIN index already collects new entries in a pending
-- list (fastupdate) and merges them in bulk, and its planner picks between the trigram index and
-- reading runs newest first. This migration keeps the two backends' numbers in step.
SELECT 1;
