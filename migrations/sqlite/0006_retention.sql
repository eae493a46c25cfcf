-- A job's own retention (spec.retention), copied from the spec so the pruner reads no JSON.
-- retention_set = 1: the spec has one, and a NULL limit there means no limit of that kind;
-- retention_set = 0: the job follows the global policy (as do the runs of every deleted job).
ALTER TABLE scheduled_jobs ADD COLUMN retention_set INTEGER NOT NULL DEFAULT 0 CHECK (retention_set IN (0, 1));
ALTER TABLE scheduled_jobs ADD COLUMN retention_max_age_seconds INTEGER;
ALTER TABLE scheduled_jobs ADD COLUMN retention_keep_last INTEGER;
