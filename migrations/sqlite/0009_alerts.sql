-- The dead-man's switch and alerting (issue #18, items 1 and 2).
--
-- spec.expectSuccessWithin copied out of the spec (seconds), since when the job has been expected
-- to succeed (set when the expectation appears, kept through edits, cleared when it goes), and
-- when its newest successful run finished: a job is overdue once
-- max(last_success_at, expect_since) + expect_success_within_seconds has passed.
ALTER TABLE scheduled_jobs ADD COLUMN expect_success_within_seconds INTEGER;
ALTER TABLE scheduled_jobs ADD COLUMN expect_since TEXT;
ALTER TABLE scheduled_jobs ADD COLUMN last_success_at TEXT;
UPDATE scheduled_jobs SET last_success_at = (
    SELECT MAX(l.finished_at) FROM job_execution_logs l
    WHERE l.job_id = scheduled_jobs.id AND l.status = 'SUCCESS');

-- One row per incident, written where the fact is recorded (the finish of a run, a skipped slot,
-- the scheduler's overdue check) and keyed so that writing it again changes nothing: the first
-- failed run of a failing streak, the run that recovered, the first skipped slot of a streak, the
-- overdue deadline.
CREATE TABLE alert_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id        INTEGER NOT NULL REFERENCES scheduled_jobs (id),
    kind          TEXT NOT NULL CHECK (kind IN ('failure', 'recovery', 'skipped', 'overdue')),
    incident_key  TEXT NOT NULL,
    run_id        INTEGER,                  -- the run it is about (no foreign key: retention may delete it)
    run_status    TEXT CHECK (run_status IN ('SUCCESS', 'FAILURE', 'ERROR')),
    failures      INTEGER NOT NULL DEFAULT 0, -- failed runs in a row (recovery: before the success)
    detail        TEXT NOT NULL DEFAULT '', -- in words: the skipped slot and why, the deadline
    occurred_at   TEXT NOT NULL,
    dispatched_at TEXT,                     -- its deliveries were created
    CONSTRAINT alert_events_incident UNIQUE (job_id, kind, incident_key)
);
CREATE INDEX alert_events_undispatched ON alert_events (id) WHERE dispatched_at IS NULL;
CREATE INDEX alert_events_job ON alert_events (job_id, id DESC);

-- One row per (event, receiver): where it goes and how far it got. The URL is never stored.
CREATE TABLE alert_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        INTEGER NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    receiver        TEXT NOT NULL,
    format          TEXT NOT NULL CHECK (format IN ('json', 'slack')),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,                   -- pending: not before (also the lease of a send in flight)
    updated_at      TEXT NOT NULL,
    CONSTRAINT alert_deliveries_once UNIQUE (event_id, receiver)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE state = 'pending';

-- Every attempt to deliver, as it ended.
CREATE TABLE alert_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES alert_deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    http_status INTEGER,                    -- NULL: no answer (refused, timed out)
    error       TEXT,                       -- what went wrong, without the URL
    CONSTRAINT alert_attempts_once UNIQUE (delivery_id, attempt)
);
