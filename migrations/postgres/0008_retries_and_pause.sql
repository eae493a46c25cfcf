-- Retries (spec.retries) and the automatic pause (spec.pauseAfterConsecutiveFailures).
-- Each attempt of a slot is its own run, numbered from 1; the slot's runs are unique per attempt.
ALTER TABLE job_execution_logs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1);
ALTER TABLE job_execution_logs DROP CONSTRAINT job_execution_logs_slot;
ALTER TABLE job_execution_logs ADD CONSTRAINT job_execution_logs_slot
    UNIQUE (job_id, trigger, scheduled_for, attempt);

-- The next attempt of a failed run, written with that run's finish (so a restart neither loses
-- nor repeats it): when it may start, for which slot and trigger, and its number.
ALTER TABLE scheduled_jobs ADD COLUMN retry_at TIMESTAMPTZ;
ALTER TABLE scheduled_jobs ADD COLUMN retry_slot TIMESTAMPTZ;
ALTER TABLE scheduled_jobs ADD COLUMN retry_trigger TEXT CHECK (retry_trigger IN ('schedule', 'manual'));
ALTER TABLE scheduled_jobs ADD COLUMN retry_attempt INTEGER;
-- Why the job was paused automatically (cleared when it is resumed), and the failures in a row
-- at that pause (cleared by a success), so a resumed job gets as many again.
ALTER TABLE scheduled_jobs ADD COLUMN pause_note TEXT;
ALTER TABLE scheduled_jobs ADD COLUMN paused_at_failures INTEGER;

-- What is due to be retried, and when to wake up for it.
CREATE INDEX scheduled_jobs_retry ON scheduled_jobs (retry_at)
    WHERE deleted_at IS NULL AND retry_at IS NOT NULL;
