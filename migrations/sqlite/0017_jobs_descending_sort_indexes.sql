-- The jobs page's descending orders (#17 performance). Jobs without a value stay last in both directions,
-- so a descending order is `(x IS NULL), x DESC, name DESC, id DESC`: its first key ascends and the rest
-- descend, which the ascending indexes of 0003 and 0015 cannot give in either scan direction, and every
-- page sorted all jobs in a temporary B-tree. These hold the same columns in that order. (By name the
-- descending order is the ascending index read backwards.)
CREATE INDEX scheduled_jobs_list_desc ON scheduled_jobs
    (deleted_at, (next_run IS NULL), next_run DESC, name DESC, id DESC, namespace, last_status, is_active);
CREATE INDEX scheduled_jobs_by_last_run_desc ON scheduled_jobs
    (deleted_at, (last_run IS NULL), last_run DESC, name DESC, id DESC, namespace, last_status, is_active);
CREATE INDEX scheduled_jobs_by_status_desc ON scheduled_jobs
    (deleted_at, (last_status IS NULL), last_status DESC, name DESC, id DESC, namespace, is_active);
