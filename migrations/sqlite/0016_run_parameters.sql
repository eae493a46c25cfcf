-- Run Now with parameters (#17 item 5): the values a run got (spec.parameters, passed to its script
-- as environment variables), as a JSON object of strings; NULL for runs of jobs without parameters.
ALTER TABLE job_execution_logs ADD COLUMN parameters TEXT;
-- Standalone: the values of the pending Run Now, moved to its run when a runner claims it.
ALTER TABLE scheduled_jobs ADD COLUMN run_now_parameters TEXT;
