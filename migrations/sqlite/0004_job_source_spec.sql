-- What the jobs folder last said about a file's job (the spec as JSON), so a portal edit or delete
-- of that job lasts until that job's own document changes. NULL when the folder did not write it
-- (portal jobs), and after the loader deleted the job because its file stopped defining it.
ALTER TABLE scheduled_jobs ADD COLUMN source_spec TEXT;
