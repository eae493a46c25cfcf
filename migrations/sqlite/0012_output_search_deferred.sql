-- Search across outputs, cheaper to record (#18 item 5). Until now the trigger on a run's finish
-- put its output into the trigram index in the same transaction: FTS5 writes (and later merges) a
-- segment per transaction, which made recording a run with a 2 KiB output 2-2.5x slower. Now the
-- finish only notes the run in run_output_pending; the store moves noted runs into the index in
-- batches in the background (Store::index_pending_outputs), one segment per batch. A search reads
-- the noted runs' outputs directly (LIKE), so a run is found the moment it finished.
-- Invariant: a run whose output is not empty is in exactly one of run_output_search and
-- run_output_pending. Imports (one INSERT per run in one transaction) still index directly.
CREATE TABLE run_output_pending (
    id INTEGER PRIMARY KEY -- a job_execution_logs id whose output is not in run_output_search yet
);

DROP TRIGGER run_output_search_update;
CREATE TRIGGER run_output_search_update AFTER UPDATE OF log_output ON job_execution_logs BEGIN
    INSERT INTO run_output_search (run_output_search, rowid, log_output)
        SELECT 'delete', old.id, old.log_output
        WHERE old.log_output <> '' AND NOT EXISTS (SELECT 1 FROM run_output_pending WHERE id = old.id);
    DELETE FROM run_output_pending WHERE id = old.id;
    INSERT INTO run_output_pending (id) SELECT new.id WHERE new.log_output <> '';
END;

DROP TRIGGER run_output_search_delete;
CREATE TRIGGER run_output_search_delete AFTER DELETE ON job_execution_logs BEGIN
    INSERT INTO run_output_search (run_output_search, rowid, log_output)
        SELECT 'delete', old.id, old.log_output
        WHERE old.log_output <> '' AND NOT EXISTS (SELECT 1 FROM run_output_pending WHERE id = old.id);
    DELETE FROM run_output_pending WHERE id = old.id;
END;
