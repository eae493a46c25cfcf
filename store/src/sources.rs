//! Standalone additions: where a job came from (the jobs folder keeps its jobs in step), moving
//! past a slot without running it, and counting a job's runs in flight.

use crate::time::{Ts, ts};
use crate::{Result, Store, with_pool};
use chrono::{DateTime, Utc};

/// A job loaded from a file of the jobs folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcedJob {
    pub id: i64,
    pub namespace: String,
    pub name: String,
    pub source: Option<String>,
    /// What the file last said of the job (the spec as JSON), when the folder wrote it.
    pub source_spec: Option<String>,
    pub deleted_at: Option<DateTime<Utc>>,
}

const SET_SOURCE: &str = "UPDATE scheduled_jobs SET source = $2, source_spec = $3 WHERE id = $1";
const SOURCED: &str = "SELECT id, namespace, name, source, source_spec, deleted_at FROM scheduled_jobs \
     WHERE source IS NOT NULL AND deleted_at IS NULL ORDER BY id";
/// The newest row of a name, deleted or not: the row a job defined again comes back to.
const LATEST_OF_NAME: &str = "SELECT id, namespace, name, source, source_spec, deleted_at FROM scheduled_jobs \
     WHERE namespace = $1 AND name = $2 ORDER BY deleted_at IS NULL DESC, id DESC LIMIT 1";
const UNDELETE: &str = "UPDATE scheduled_jobs SET deleted_at = NULL, updated_at = $2 \
     WHERE id = $1 AND deleted_at IS NOT NULL";

/// Like a claim, a compare-and-set on next_run; it also drops a pending Run Now it skipped.
const SKIP_SLOT: &str = "UPDATE scheduled_jobs SET next_run = $3, run_now_requested_at = NULL, updated_at = $4 \
     WHERE id = $1 AND next_run = $2 AND deleted_at IS NULL";

const RUNNING_RUNS: &str =
    "SELECT id FROM job_execution_logs WHERE job_id = $1 AND status = 'RUNNING' ORDER BY id";

type SourcedRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
);

impl From<SourcedRow> for SourcedJob {
    fn from((id, namespace, name, source, source_spec, deleted_at): SourcedRow) -> Self {
        Self {
            id,
            namespace,
            name,
            source,
            source_spec,
            deleted_at,
        }
    }
}

impl Store {
    /// Records where a job came from (`file:<path>`) and what that file said of it (`source_spec`),
    /// or that it came from nowhere in particular.
    pub async fn set_job_source(
        &self,
        job_id: i64,
        source: Option<&str>,
        source_spec: Option<&str>,
    ) -> Result<()> {
        with_pool!(self, pool => sqlx::query(SET_SOURCE).bind(job_id).bind(source).bind(source_spec).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Live jobs that were loaded from files.
    pub async fn jobs_with_source(&self) -> Result<Vec<SourcedJob>> {
        let rows: Vec<SourcedRow> = with_pool!(self, pool => sqlx::query_as(SOURCED).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(SourcedJob::from).collect())
    }

    /// The row of `namespace/name`: the live one, or else the newest deleted one (whose runs a job
    /// defined again gets back).
    pub async fn latest_job_of_name(&self, namespace: &str, name: &str) -> Result<Option<SourcedJob>> {
        let row: Option<SourcedRow> = with_pool!(self, pool => {
            sqlx::query_as(LATEST_OF_NAME).bind(namespace).bind(name).fetch_optional(pool).await
        })?;
        Ok(row.map(SourcedJob::from))
    }

    /// Brings a soft-deleted job back (with its runs); the caller then writes its spec.
    pub async fn undelete_job(&self, job_id: i64) -> Result<()> {
        with_pool!(self, pool => sqlx::query(UNDELETE).bind(job_id).bind(Ts(Utc::now())).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Moves a job past the slot `expected_next_run` without running it (a skipped or suspended
    /// slot). Returns false when another runner moved it first.
    pub async fn skip_slot(
        &self,
        job_id: i64,
        expected_next_run: DateTime<Utc>,
        new_next_run: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let moved = with_pool!(self, pool => {
            sqlx::query(SKIP_SLOT)
                .bind(job_id)
                .bind(Ts(expected_next_run))
                .bind(ts(new_next_run))
                .bind(Ts(Utc::now()))
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(moved == 1)
    }

    /// The ids of a job's runs in flight (on any runner), oldest first.
    pub async fn running_runs(&self, job_id: i64) -> Result<Vec<i64>> {
        Ok(with_pool!(self, pool => sqlx::query_scalar(RUNNING_RUNS).bind(job_id).fetch_all(pool).await)?)
    }
}
