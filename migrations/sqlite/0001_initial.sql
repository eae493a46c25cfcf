-- The original system's two tables, same names and meanings, for SQLite.
-- Timestamps are TEXT in one sortable UTC format, 'YYYY-MM-DD HH:MM:SS.ffffffZ', so they compare as
-- text and SQLite's date functions read them. Booleans are INTEGER 0/1 (`WHERE is_active = 1` works).
-- Jobs are soft-deleted (deleted_at) so their runs stay.

CREATE TABLE scheduled_jobs (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uid                  TEXT UNIQUE,                 -- the ScheduledJob's UID (Kubernetes mode)
    name                 TEXT NOT NULL,
    namespace            TEXT NOT NULL DEFAULT 'default',
    description          TEXT,
    schedule_type        TEXT NOT NULL CHECK (schedule_type IN
                             ('interval', 'hourly', 'daily', 'weekly', 'monthly', 'cron', 'manual')),
    interval_value       INTEGER,
    interval_unit        TEXT,
    minute               INTEGER,
    at_time              TEXT,                        -- HH:MM in the job's time zone
    weekdays             TEXT,                        -- e.g. monday,friday
    day_of_month         INTEGER,
    cron_expr            TEXT,
    timezone             TEXT NOT NULL,
    script               TEXT NOT NULL,               -- a readable summary of what runs
    spec                 TEXT NOT NULL,               -- the whole ScheduledJobSpec as JSON
    is_active            INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    next_run             TEXT,                        -- NULL: manual, suspended or deleted
    last_run             TEXT,                        -- run_time of the last finished run
    last_status          TEXT CHECK (last_status IN ('SUCCESS', 'FAILURE', 'ERROR')),
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    run_now_requested_at TEXT,                        -- a pending Run Now
    deleted_at           TEXT,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000Z'),
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000Z')
);

CREATE UNIQUE INDEX scheduled_jobs_namespace_name ON scheduled_jobs (namespace, name)
    WHERE deleted_at IS NULL;
-- The jobs page: next_run ascending with NULLs last, then name.
CREATE INDEX scheduled_jobs_page ON scheduled_jobs ((next_run IS NULL), next_run, name, id)
    WHERE deleted_at IS NULL;
-- What is queued (the original's troubleshooting query).
CREATE INDEX scheduled_jobs_queued ON scheduled_jobs (is_active, next_run)
    WHERE deleted_at IS NULL;
-- What is due, and when to wake up.
CREATE INDEX scheduled_jobs_due ON scheduled_jobs (next_run)
    WHERE deleted_at IS NULL AND next_run IS NOT NULL;

CREATE TABLE job_execution_logs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, even after retention
    job_id           INTEGER NOT NULL REFERENCES scheduled_jobs (id),
    run_time         TEXT NOT NULL,                   -- when it started
    scheduled_for    TEXT NOT NULL,                   -- the slot (or the Run Now instant)
    finished_at      TEXT,
    status           TEXT NOT NULL CHECK (status IN ('RUNNING', 'SUCCESS', 'FAILURE', 'ERROR')),
    exit_code        INTEGER,
    log_output       TEXT NOT NULL DEFAULT '',        -- stdout and stderr, capped
    output_bytes     INTEGER NOT NULL DEFAULT 0,      -- size of the output before the cap
    output_truncated INTEGER NOT NULL DEFAULT 0,      -- bytes the cap cut
    trigger          TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    k8s_job_name     TEXT UNIQUE,
    runner           TEXT,
    CONSTRAINT job_execution_logs_slot UNIQUE (job_id, trigger, scheduled_for)
);

-- One job's runs, newest first.
CREATE INDEX job_execution_logs_job ON job_execution_logs (job_id, run_time DESC, id DESC);
-- Recent failures.
CREATE INDEX job_execution_logs_status ON job_execution_logs (status, run_time DESC);
