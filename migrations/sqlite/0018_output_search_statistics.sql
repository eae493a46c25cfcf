-- Search across outputs (#18 item 5): PostgreSQL's 0018 gives the planner finer statistics of
-- the outputs, from which its store chooses how to read a search. SQLite's store counts a text's
-- hits in its index instead (at most FEW_HITS). This migration keeps the two backends' numbers in step.
SELECT 1;
