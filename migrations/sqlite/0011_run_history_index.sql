-- The health columns read each job's newest runs for their status and end: with both in the
-- index, those reads never touch the rows (which carry the output). It serves a job's runs in
-- order as the index it replaces did.
CREATE INDEX job_execution_logs_history ON job_execution_logs
    (job_id, run_time DESC, id DESC, status, finished_at);
DROP INDEX job_execution_logs_job;
