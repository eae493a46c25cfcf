-- The jobs page's descending orders (#17 performance). Jobs without a value stay last in both directions,
-- so a descending order is `(x IS NULL), x DESC, name DESC, id DESC`: its first key ascends and the rest
-- descend, which the ascending indexes of 0003 and 0015 cannot give in either scan direction, and a page
-- sorted every job. These hold the same keys in that order (names byte-wise, as the orders read them).
-- (By name the descending order is the ascending index read backwards.)
CREATE INDEX scheduled_jobs_list_desc ON scheduled_jobs ((next_run IS NULL), next_run DESC, (name COLLATE "C") DESC, id DESC)
    INCLUDE (namespace, last_status, is_active)
    WHERE deleted_at IS NULL;
CREATE INDEX scheduled_jobs_by_last_run_desc ON scheduled_jobs ((last_run IS NULL), last_run DESC, (name COLLATE "C") DESC, id DESC)
    INCLUDE (namespace, last_status, is_active)
    WHERE deleted_at IS NULL;
CREATE INDEX scheduled_jobs_by_status_desc ON scheduled_jobs ((last_status IS NULL), last_status DESC, (name COLLATE "C") DESC, id DESC)
    INCLUDE (namespace, is_active)
    WHERE deleted_at IS NULL;
