SELECT j.name, l.run_time, l.log_output
FROM job_execution_logs l
JOIN scheduled_jobs j ON l.job_id = j.id
WHERE l.status = 'FAILURE'
ORDER BY l.run_time DESC
LIMIT 5;
