-- Per-job alerting metrics (issue #18, item 6): when the job's newest failed run (FAILURE or
-- ERROR, any attempt) finished, kept beside last_success_at so that the scheduler's metrics read
-- it from the job's row after a restart instead of scanning runs.
ALTER TABLE scheduled_jobs ADD COLUMN last_failure_at TEXT;
UPDATE scheduled_jobs SET last_failure_at = (
    SELECT MAX(l.finished_at) FROM job_execution_logs l
    WHERE l.job_id = scheduled_jobs.id AND l.status IN ('FAILURE', 'ERROR'));
