-- Search across outputs: a trigram index over job_execution_logs.log_output (FTS5, external
-- content, so the text is stored once). Trigram queries are substring queries, case-insensitive
-- for ASCII; a search needs at least 3 characters. Triggers keep the index in step with the rows:
-- a run's output is written when it finishes (an UPDATE), and retention deletes rows.
CREATE VIRTUAL TABLE run_output_search USING fts5(
    log_output,
    content = 'job_execution_logs',
    content_rowid = 'id',
    tokenize = 'trigram'
);

CREATE TRIGGER run_output_search_insert AFTER INSERT ON job_execution_logs
WHEN new.log_output <> '' BEGIN
    INSERT INTO run_output_search (rowid, log_output) VALUES (new.id, new.log_output);
END;

CREATE TRIGGER run_output_search_update AFTER UPDATE OF log_output ON job_execution_logs BEGIN
    INSERT INTO run_output_search (run_output_search, rowid, log_output)
        SELECT 'delete', old.id, old.log_output WHERE old.log_output <> '';
    INSERT INTO run_output_search (rowid, log_output)
        SELECT new.id, new.log_output WHERE new.log_output <> '';
END;

CREATE TRIGGER run_output_search_delete AFTER DELETE ON job_execution_logs
WHEN old.log_output <> '' BEGIN
    INSERT INTO run_output_search (run_output_search, rowid, log_output) VALUES ('delete', old.id, old.log_output);
END;

-- Outputs recorded before this migration.
INSERT INTO run_output_search (rowid, log_output)
    SELECT id, log_output FROM job_execution_logs WHERE log_output <> '';
