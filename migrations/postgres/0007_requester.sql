-- Who asked for a manual run: the portal's user, a `kubectl annotate` user's own
-- jobtrigger.io/run-now-requester annotation, or "local" on an open standalone portal.
-- NULL for scheduled runs and for manual runs whose requester was not given.
ALTER TABLE job_execution_logs ADD COLUMN requester TEXT;
-- Standalone: the requester of the pending Run Now, moved to its run when a runner claims it.
ALTER TABLE scheduled_jobs ADD COLUMN run_now_requester TEXT;
