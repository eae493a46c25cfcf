-- The jobs page's other orders (name, last run, last status; #17 item 8), each with the filter columns, so a
-- sorted page is an index scan in order instead of a sort of every job. Names sort byte-wise ("C"), as on SQLite.
CREATE INDEX scheduled_jobs_by_name ON scheduled_jobs ((name COLLATE "C"), namespace, id)
    INCLUDE (last_status, is_active)
    WHERE deleted_at IS NULL;
CREATE INDEX scheduled_jobs_by_last_run ON scheduled_jobs ((last_run IS NULL), last_run, (name COLLATE "C"), id)
    INCLUDE (namespace, last_status, is_active)
    WHERE deleted_at IS NULL;
CREATE INDEX scheduled_jobs_by_status ON scheduled_jobs ((last_status IS NULL), last_status, (name COLLATE "C"), id)
    INCLUDE (namespace, is_active)
    WHERE deleted_at IS NULL;
