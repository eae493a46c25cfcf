-- Search across outputs (#18 item 5): the store reads every hit of a text through the trigram
-- index only when the planner expects few (at most FEW_HITS, 5,000); for a text it expects in more
-- runs it reads at most SCAN_BUDGET filtered runs newest first, as SQLite does. The estimate comes
-- from the column's histogram: at the default statistics target (100 outputs) it cannot tell a
-- text in 0.1 % of the runs from one in 1 % (1,000 from 10,000 at a million runs), so a text
-- with 10,000 hits could be read hit by hit. A thousand outputs resolve 0.1 %. ANALYZE then samples
-- 300,000 runs instead of 30,000 (about 4 s at a million runs, on a loaded machine).
ALTER TABLE job_execution_logs ALTER COLUMN log_output SET STATISTICS 1000;
