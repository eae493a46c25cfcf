SELECT log_output
FROM job_execution_logs
WHERE id = $1;
