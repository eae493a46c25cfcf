SELECT name, schedule_type, next_run
FROM scheduled_jobs
WHERE is_active AND next_run IS NOT NULL AND deleted_at IS NULL
ORDER BY next_run ASC;
