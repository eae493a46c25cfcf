//! Retention: deleting the runs that a job's policy (`spec.retention`, else the global one) no
//! longer keeps, job by job in small batches, so that a writer recording a run never waits behind
//! a long delete. Runs of deleted jobs follow the global policy. RUNNING rows are never deleted.

use crate::time::Ts;
use crate::{Result, Store, with_pool};
use chrono::{DateTime, TimeZone, Utc};
use jtp_crds::Retention;
use std::time::Duration;

/// How a pass deletes: rows per DELETE and the pause after each DELETE that removed rows.
///
/// The pause is at least [`PruneOptions::pause`] and at least as long as the DELETE took, so a
/// pass keeps the database busy half the time at most, however slow a delete turns out (a big
/// output's TOAST rows, a cold cache, a busy disk): a writer recording a run always finds it idle
/// soon after.
#[derive(Clone, Copy, Debug)]
pub struct PruneOptions {
    /// Rows one DELETE removes at most (one short transaction each).
    pub batch: i64,
    /// The shortest time left to other writers between two deletes.
    pub pause: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            batch: 500,
            pause: Duration::from_millis(20),
        }
    }
}

/// What one pass deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Jobs whose runs were looked at (those with a policy that limits something).
    pub jobs: u64,
    /// Runs deleted.
    pub deleted: u64,
    /// Dispatched incidents older than [`crate::ALERTS_KEPT`] deleted, with their deliveries.
    pub incidents: u64,
}

/// Jobs per read of the jobs list during a pass.
const JOBS_PAGE: i64 = 1_000;

const JOBS_TO_PRUNE: &str = "SELECT id, deleted_at IS NOT NULL AS deleted, retention_set, \
     retention_max_age_seconds, retention_keep_last FROM scheduled_jobs WHERE id > $1 ORDER BY id LIMIT $2";

/// The newest finished run that `keepLast` still keeps: older ones may go.
const KEEP_BOUNDARY: &str = "SELECT run_time, id FROM job_execution_logs \
     WHERE job_id = $1 AND status <> 'RUNNING' ORDER BY run_time DESC, id DESC LIMIT 1 OFFSET $2";

/// One batch of a job's runs that started before `$2` and sort below the boundary (`$3`, `$4`),
/// oldest first (the job's index, read backwards).
const DELETE_BATCH: &str = "DELETE FROM job_execution_logs WHERE id IN (\
     SELECT id FROM job_execution_logs WHERE job_id = $1 AND status <> 'RUNNING' AND run_time < $2 \
     AND (run_time < $3 OR (run_time = $3 AND id < $4)) ORDER BY run_time, id LIMIT $5)";

/// Later than any run: stands for "no limit" in [`DELETE_BATCH`] (a fixed year, since SQLite
/// compares instants as text and chrono's largest instant would not sort last).
fn no_limit() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A job's policy as the pass applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Limits {
    cutoff: Option<DateTime<Utc>>,
    keep_last: Option<i64>,
}

impl Limits {
    fn of(policy: &Retention, now: DateTime<Utc>) -> Self {
        Self {
            cutoff: policy.cutoff(now),
            keep_last: policy.keep_last.map(i64::from),
        }
    }
}

type JobRow = (i64, bool, bool, Option<i64>, Option<i64>);

impl Store {
    /// One pass of retention over every job, deleted ones included: each job's finished runs
    /// beyond its policy go, `options.batch` rows per DELETE. A job with `spec.retention`
    /// follows it; every other job, and every deleted job, follows `global`. The pass also
    /// deletes dispatched incidents older than [`crate::ALERTS_KEPT`]. Returns what went.
    pub async fn prune_runs(
        &self,
        global: &Retention,
        now: DateTime<Utc>,
        options: &PruneOptions,
    ) -> Result<PruneReport> {
        let global = Limits::of(global, now);
        let mut report = PruneReport::default();
        let mut after = 0_i64;
        loop {
            let jobs: Vec<JobRow> = with_pool!(self, pool => {
                sqlx::query_as(JOBS_TO_PRUNE).bind(after).bind(JOBS_PAGE).fetch_all(pool).await
            })?;
            let Some(last) = jobs.last() else { break };
            after = last.0;
            for (job_id, deleted, own, max_age, keep_last) in jobs {
                let limits = if own && !deleted {
                    Limits {
                        cutoff: max_age.map(|s| now - chrono::Duration::seconds(s)),
                        keep_last,
                    }
                } else {
                    global
                };
                if limits.cutoff.is_none() && limits.keep_last.is_none() {
                    continue;
                }
                report.jobs += 1;
                report.deleted += self.prune_job(job_id, limits, options).await?;
            }
        }
        report.incidents = self.prune_alerts(now - crate::ALERTS_KEPT).await?;
        Ok(report)
    }

    async fn prune_job(&self, job_id: i64, limits: Limits, options: &PruneOptions) -> Result<u64> {
        let boundary: Option<(DateTime<Utc>, i64)> = match limits.keep_last {
            Some(keep) => {
                let found = with_pool!(self, pool => {
                    sqlx::query_as(KEEP_BOUNDARY).bind(job_id).bind(keep - 1).fetch_optional(pool).await
                })?;
                match found {
                    Some(boundary) => Some(boundary),
                    // Fewer finished runs than keepLast: all are kept.
                    None => return Ok(0),
                }
            }
            None => None,
        };
        let (below_time, below_id) = boundary.unwrap_or((no_limit(), i64::MAX));
        let cutoff = limits.cutoff.unwrap_or_else(no_limit);
        let batch = options.batch.max(1);
        let mut deleted = 0;
        loop {
            let started = std::time::Instant::now();
            let went = with_pool!(self, pool => {
                sqlx::query(DELETE_BATCH)
                    .bind(job_id)
                    .bind(Ts(cutoff))
                    .bind(Ts(below_time))
                    .bind(below_id)
                    .bind(batch)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            deleted += went;
            if went > 0 {
                tokio::time::sleep(options.pause.max(started.elapsed())).await;
            }
            if went < u64::try_from(batch).unwrap_or(u64::MAX) {
                return Ok(deleted);
            }
        }
    }

    /// Runs [`Store::prune_runs`] now and then every `every` until the task is dropped; a pass
    /// that fails is logged and tried again at the next turn.
    pub async fn prune_forever(&self, global: Retention, every: Duration, options: PruneOptions) {
        loop {
            self.prune_once_logged(&global, &options).await;
            tokio::time::sleep(every).await;
        }
    }

    /// One pass with its outcome logged (the operator calls this after each wait).
    pub async fn prune_once_logged(&self, global: &Retention, options: &PruneOptions) {
        let started = std::time::Instant::now();
        match self.prune_runs(global, Utc::now(), options).await {
            Ok(report) if report.deleted > 0 || report.incidents > 0 => tracing::info!(
                deleted = report.deleted,
                jobs = report.jobs,
                incidents = report.incidents,
                took_ms = started.elapsed().as_millis() as u64,
                "retention: deleted runs"
            ),
            Ok(_) => tracing::debug!("retention: nothing to delete"),
            Err(e) => tracing::warn!(error = %e, "retention pass failed; will try again"),
        }
    }
}
