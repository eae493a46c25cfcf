-- The jobs page's other orders (name, last run, last status; #17 item 8), each with the filter columns, so a
-- sorted page is read from an index in order instead of sorting every job.
CREATE INDEX scheduled_jobs_by_name ON scheduled_jobs
    (deleted_at, name, namespace, id, last_status, is_active);
CREATE INDEX scheduled_jobs_by_last_run ON scheduled_jobs
    (deleted_at, (last_run IS NULL), last_run, name, id, namespace, last_status, is_active);
CREATE INDEX scheduled_jobs_by_status ON scheduled_jobs
    (deleted_at, (last_status IS NULL), last_status, name, id, namespace, is_active);
