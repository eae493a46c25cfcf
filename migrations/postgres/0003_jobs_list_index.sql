-- The jobs page's filters (name, namespace, last status, active) and its order in one index, so the page and
-- its count are index-only scans that never read whole rows with their specs.
CREATE INDEX scheduled_jobs_list ON scheduled_jobs ((next_run IS NULL), next_run, name, id)
    INCLUDE (namespace, last_status, is_active)
    WHERE deleted_at IS NULL;
DROP INDEX scheduled_jobs_page;
