-- The jobs page's filters (name, namespace, last status, active) and its order in one index, so the page and
-- its count are read from the index alone and never parse whole rows with their specs. deleted_at leads,
-- so live jobs are one range of it (SQLite reads a partial index's column from the table).
CREATE INDEX scheduled_jobs_list ON scheduled_jobs
    (deleted_at, (next_run IS NULL), next_run, name, id, namespace, last_status, is_active);
DROP INDEX scheduled_jobs_page;
