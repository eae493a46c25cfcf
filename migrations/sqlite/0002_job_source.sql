-- Where a standalone job came from: 'file:<path in the jobs folder>' for jobs loaded from manifests,
-- NULL for jobs created in the portal or mirrored from Kubernetes.
ALTER TABLE scheduled_jobs ADD COLUMN source TEXT;
CREATE INDEX scheduled_jobs_source ON scheduled_jobs (source) WHERE source IS NOT NULL AND deleted_at IS NULL;
