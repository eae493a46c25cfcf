-- The runs view across jobs: newest first, paged by (run_time, id) cursors.
CREATE INDEX job_execution_logs_recent ON job_execution_logs (run_time DESC, id DESC);
