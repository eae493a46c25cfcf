-- Search across outputs: a trigram GIN index over job_execution_logs.log_output, which serves
-- `log_output ILIKE '%text%'` (substring, case-insensitive). pg_trgm is a trusted extension: the
-- database's owner may create it. A search needs at least 3 characters (one trigram).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX job_execution_logs_output_trgm ON job_execution_logs USING gin (log_output gin_trgm_ops);
