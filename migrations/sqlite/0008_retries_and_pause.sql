-- Retries (spec.retries) and the automatic pause (spec.pauseAfterConsecutiveFailures).
-- Each attempt of a slot is its own run, numbered from 1; the slot's runs are unique per attempt.
-- SQLite cannot change a table's UNIQUE constraint, so job_execution_logs is rebuilt with the
-- same rows, ids and id sequence (ids are never reused), and its indexes made again.
CREATE TABLE job_execution_logs_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id           INTEGER NOT NULL REFERENCES scheduled_jobs (id),
    run_time         TEXT NOT NULL,
    scheduled_for    TEXT NOT NULL,
    finished_at      TEXT,
    status           TEXT NOT NULL CHECK (status IN ('RUNNING', 'SUCCESS', 'FAILURE', 'ERROR')),
    exit_code        INTEGER,
    log_output       TEXT NOT NULL DEFAULT '',
    output_bytes     INTEGER NOT NULL DEFAULT 0,
    output_truncated INTEGER NOT NULL DEFAULT 0,
    trigger          TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    k8s_job_name     TEXT UNIQUE,
    runner           TEXT,
    requester        TEXT,
    attempt          INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    CONSTRAINT job_execution_logs_slot UNIQUE (job_id, trigger, scheduled_for, attempt)
);
INSERT INTO job_execution_logs_new (id, job_id, run_time, scheduled_for, finished_at, status, exit_code,
    log_output, output_bytes, output_truncated, trigger, k8s_job_name, runner, requester)
SELECT id, job_id, run_time, scheduled_for, finished_at, status, exit_code, log_output, output_bytes,
    output_truncated, trigger, k8s_job_name, runner, requester FROM job_execution_logs;
DELETE FROM sqlite_sequence WHERE name = 'job_execution_logs_new';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'job_execution_logs_new', seq FROM sqlite_sequence WHERE name = 'job_execution_logs';
DROP TABLE job_execution_logs;
ALTER TABLE job_execution_logs_new RENAME TO job_execution_logs;
CREATE INDEX job_execution_logs_job ON job_execution_logs (job_id, run_time DESC, id DESC);
CREATE INDEX job_execution_logs_status ON job_execution_logs (status, run_time DESC);
CREATE INDEX job_execution_logs_recent ON job_execution_logs (run_time DESC, id DESC);

-- The next attempt of a failed run, written with that run's finish (so a restart neither loses
-- nor repeats it): when it may start, for which slot and trigger, and its number.
ALTER TABLE scheduled_jobs ADD COLUMN retry_at TEXT;
ALTER TABLE scheduled_jobs ADD COLUMN retry_slot TEXT;
ALTER TABLE scheduled_jobs ADD COLUMN retry_trigger TEXT CHECK (retry_trigger IN ('schedule', 'manual'));
ALTER TABLE scheduled_jobs ADD COLUMN retry_attempt INTEGER;
-- Why the job was paused automatically (cleared when it is resumed), and the failures in a row
-- at that pause (cleared by a success), so a resumed job gets as many again.
ALTER TABLE scheduled_jobs ADD COLUMN pause_note TEXT;
ALTER TABLE scheduled_jobs ADD COLUMN paused_at_failures INTEGER;

-- What is due to be retried, and when to wake up for it.
CREATE INDEX scheduled_jobs_retry ON scheduled_jobs (retry_at)
    WHERE deleted_at IS NULL AND retry_at IS NOT NULL;
