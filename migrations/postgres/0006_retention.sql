-- A job's own retention (spec.retention), copied from the spec so the pruner reads no JSON.
-- retention_set: the spec has one, and a NULL limit there means no limit of that kind;
-- otherwise the job follows the global policy (as do the runs of every deleted job).
ALTER TABLE scheduled_jobs ADD COLUMN retention_set BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE scheduled_jobs ADD COLUMN retention_max_age_seconds BIGINT;
ALTER TABLE scheduled_jobs ADD COLUMN retention_keep_last BIGINT;
