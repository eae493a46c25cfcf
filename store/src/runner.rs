//! Standalone runner support: what is due, when to wake up, claiming a slot so that only one of
//! several runners on one database runs it, Run Now, and closing runs a crash left open.

use crate::model::{Claim, Finish, FinishEffects, Job, RetryClaim, RunFinish, SlotClaim};
use crate::row::{job_columns, parameters, parameters_json};
use crate::time::{Ts, ts};
use crate::{Error, Result, Store, begin_write, with_pool};
use chrono::{DateTime, Utc};
use jtp_crds::{ParameterValues, RunStatus, Trigger};

/// The output recorded for a run that was still RUNNING when its runner stopped.
pub const INTERRUPTED_MESSAGE: &str = "interrupted: the runner stopped before the run finished";

/// The status given to such a run: FAILURE, because it may well have started (a run is claimed
/// just before its process is spawned) and did not succeed; ERROR is kept for runs known never to
/// have started. It counts towards consecutive_failures like any failure.
pub const INTERRUPTED_STATUS: RunStatus = RunStatus::Failure;

/// A query over the live jobs by one of their times, on each backend. SQLite names the index: a
/// standalone database is never `ANALYZE`d, and without statistics SQLite's planner takes the jobs
/// list's indexes that start with `deleted_at` (migrations 0003, 0015, 0017) and reads every live
/// job, then sorts — 60–150 ms a query at 100,000 jobs, four of them per runner pass, against
/// 0.1–12 ms on the time's own index. PostgreSQL has its statistics and keeps its own plan.
struct ByTime {
    postgres: &'static str,
    sqlite: &'static str,
}

macro_rules! by_time {
    ($select:expr, $index:literal, $rest:literal) => {
        ByTime {
            postgres: concat!($select, " FROM scheduled_jobs ", $rest),
            sqlite: concat!($select, " FROM scheduled_jobs INDEXED BY ", $index, " ", $rest),
        }
    };
}

const DUE_JOBS: ByTime = by_time!(
    concat!("SELECT ", job_columns!()),
    "scheduled_jobs_due",
    "WHERE deleted_at IS NULL AND next_run IS NOT NULL AND next_run <= $1 ORDER BY next_run, id LIMIT $2"
);

const NEXT_WAKEUP: ByTime = by_time!(
    "SELECT MIN(next_run)",
    "scheduled_jobs_due",
    "WHERE deleted_at IS NULL AND next_run IS NOT NULL"
);

const NEXT_RETRY: ByTime = by_time!(
    "SELECT MIN(retry_at)",
    "scheduled_jobs_retry",
    "WHERE deleted_at IS NULL AND retry_at IS NOT NULL"
);

const DUE_RETRIES: ByTime = by_time!(
    concat!("SELECT ", job_columns!()),
    "scheduled_jobs_retry",
    "WHERE deleted_at IS NULL AND retry_at IS NOT NULL AND retry_at <= $1 ORDER BY retry_at, id LIMIT $2"
);

/// The compare-and-set of a retry: only the claimer that still sees this retry takes it.
const TAKE_RETRY: &str = "UPDATE scheduled_jobs SET retry_at = NULL, retry_slot = NULL, retry_trigger = NULL, \
     retry_attempt = NULL, updated_at = $6 WHERE id = $1 AND retry_at = $2 AND retry_slot = $3 \
     AND retry_trigger = $4 AND retry_attempt = $5 AND deleted_at IS NULL";

const DROP_RETRY: &str = "UPDATE scheduled_jobs SET retry_at = NULL, retry_slot = NULL, retry_trigger = NULL, \
     retry_attempt = NULL WHERE id = $1";

/// A further attempt runs with the parameter values of the attempt before it.
const INSERT_CLAIMED_ATTEMPT: &str = "INSERT INTO job_execution_logs \
     (job_id, run_time, scheduled_for, status, trigger, runner, attempt, parameters) \
     VALUES ($1, $2, $3, 'RUNNING', $4, $5, $6, \
     (SELECT p.parameters FROM job_execution_logs p WHERE p.job_id = $1 AND p.trigger = $4 \
      AND p.scheduled_for = $3 AND p.attempt = $6 - 1)) \
     ON CONFLICT DO NOTHING RETURNING id, parameters";

/// The compare-and-set: only the claimer that still sees `expected_next_run` moves it on.
/// The row it returns still holds a pending Run Now, which this claim then consumes.
const CLAIM: &str = "UPDATE scheduled_jobs SET next_run = $3, updated_at = $4 \
     WHERE id = $1 AND next_run = $2 AND deleted_at IS NULL \
     RETURNING run_now_requested_at, run_now_requester, run_now_parameters";

const CONSUME_RUN_NOW: &str = "UPDATE scheduled_jobs SET run_now_requested_at = NULL, run_now_requester = NULL, run_now_parameters = NULL \
     WHERE id = $1";

const INSERT_CLAIMED_RUN: &str = "INSERT INTO job_execution_logs \
     (job_id, run_time, scheduled_for, status, trigger, runner, requester, parameters) \
     VALUES ($1, $2, $3, 'RUNNING', $4, $5, $6, $7) \
     ON CONFLICT DO NOTHING RETURNING id";

const RECORD_START: &str = "UPDATE job_execution_logs SET run_time = $2 WHERE id = $1 AND status = 'RUNNING'";

const REQUEST_RUN_NOW: &str = "UPDATE scheduled_jobs SET run_now_requested_at = $2, next_run = $2, updated_at = $3, \
     run_now_requester = $4, run_now_parameters = $5 \
     WHERE id = $1 AND deleted_at IS NULL";

const RUNNING_OF_RUNNER: &str = "SELECT l.id, l.trigger, l.scheduled_for, l.attempt, j.spec \
     FROM job_execution_logs l JOIN scheduled_jobs j ON j.id = l.job_id \
     WHERE l.status = 'RUNNING' AND l.runner = $1 ORDER BY l.id";

/// What a claim finds of a pending Run Now: when it was asked for, by whom, with which values
/// (JSON), all `NULL` when none is pending.
type PendingRunNow = (Option<DateTime<Utc>>, Option<String>, Option<String>);

impl Store {
    fn by_time(&self, query: &ByTime) -> &'static str {
        match self.backend_kind() {
            crate::BackendKind::Postgres => query.postgres,
            crate::BackendKind::Sqlite => query.sqlite,
        }
    }

    /// Live jobs whose next_run is at or before `now` (scheduled slots and pending Run Nows),
    /// soonest first.
    pub async fn due_jobs(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Job>> {
        Ok(
            with_pool!(self, pool => sqlx::query_as(self.by_time(&DUE_JOBS)).bind(Ts(now)).bind(limit).fetch_all(pool).await)?,
        )
    }

    /// The earliest next_run or retry of any live job, so a runner can sleep exactly until then.
    pub async fn next_wakeup(&self) -> Result<Option<DateTime<Utc>>> {
        let (next, retry): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = with_pool!(self, pool => {
            let next = sqlx::query_scalar(self.by_time(&NEXT_WAKEUP)).fetch_one(pool).await?;
            let retry = sqlx::query_scalar(self.by_time(&NEXT_RETRY)).fetch_one(pool).await?;
            Ok::<_, sqlx::Error>((next, retry))
        })?;
        Ok(match (next, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Live jobs with a further attempt of a failed run due at or before `now`, soonest first.
    pub async fn due_retries(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Job>> {
        Ok(
            with_pool!(self, pool => sqlx::query_as(self.by_time(&DUE_RETRIES)).bind(Ts(now)).bind(limit).fetch_all(pool).await)?,
        )
    }

    /// Claims further attempts in one transaction: each takes its job's retry (a compare-and-set,
    /// so of several runners one wins) and inserts the attempt's RUNNING row. One answer per
    /// claim, in order; `None` when the retry changed or that attempt was recorded before.
    pub async fn claim_retries(&self, claims: &[RetryClaim<'_>]) -> Result<Vec<Option<Claim>>> {
        with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            let mut won = Vec::with_capacity(claims.len());
            for claim in claims {
                let retry = claim.retry;
                let attempt = i32::try_from(retry.attempt).unwrap_or(i32::MAX);
                let taken = sqlx::query(TAKE_RETRY)
                    .bind(claim.job_id)
                    .bind(Ts(retry.at))
                    .bind(Ts(retry.scheduled_time))
                    .bind(retry.trigger.as_str())
                    .bind(attempt)
                    .bind(Ts(claim.now))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if taken == 0 {
                    won.push(None);
                    continue;
                }
                let inserted: Option<(i64, Option<String>)> = sqlx::query_as(INSERT_CLAIMED_ATTEMPT)
                    .bind(claim.job_id)
                    .bind(Ts(claim.now))
                    .bind(Ts(retry.scheduled_time))
                    .bind(retry.trigger.as_str())
                    .bind(claim.runner)
                    .bind(attempt)
                    .fetch_optional(&mut *tx)
                    .await?;
                if inserted.is_none() {
                    tracing::warn!(job_id = claim.job_id, attempt, "attempt already recorded; not running it again");
                }
                won.push(match inserted {
                    Some((run_id, values)) => Some(Claim {
                        run_id,
                        trigger: retry.trigger,
                        scheduled_for: retry.scheduled_time,
                        attempt: retry.attempt,
                        parameters: parameters(values)?,
                    }),
                    None => None,
                });
            }
            tx.commit().await?;
            Ok(won)
        })
    }

    /// Gives up job `job_id`'s pending retry (the run policy dropped it).
    pub async fn drop_retry(&self, job_id: i64) -> Result<()> {
        with_pool!(self, pool => sqlx::query(DROP_RETRY).bind(job_id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Claims due slots, all in one transaction (a burst of due jobs), and answers one `Option`
    /// per claim, in order. Each claim of the slot `expected_next_run` of a job atomically moves
    /// next_run to `new_next_run`, consumes a pending Run Now (the run is then `manual`, for the
    /// requested instant), and inserts the RUNNING row. Of several runners claiming the same slot,
    /// one gets `Some`; the others get `None` (next_run had already moved). `None` also when the
    /// slot was recorded before (next_run is still moved on, so it is not retried forever). Each
    /// claim is its own compare-and-set: one lost does not undo the others.
    pub async fn claim_slots(&self, claims: &[SlotClaim<'_>]) -> Result<Vec<Option<Claim>>> {
        with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            let mut won = Vec::with_capacity(claims.len());
            for claim in claims {
                let moved: Option<PendingRunNow> = sqlx::query_as(CLAIM)
                    .bind(claim.job_id)
                    .bind(Ts(claim.expected_next_run))
                    .bind(ts(claim.new_next_run))
                    .bind(Ts(claim.now))
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((run_now, requester, asked_values)) = moved else {
                    won.push(None);
                    continue;
                };
                let (trigger, scheduled_for, requester, values) = match run_now {
                    Some(requested) => {
                        sqlx::query(CONSUME_RUN_NOW).bind(claim.job_id).execute(&mut *tx).await?;
                        (Trigger::Manual, requested, requester, parameters(asked_values)?)
                    }
                    None => (Trigger::Schedule, claim.expected_next_run, None, claim.parameters.clone()),
                };
                if claim.drop_retry {
                    sqlx::query(DROP_RETRY).bind(claim.job_id).execute(&mut *tx).await?;
                }
                let run_id: Option<i64> = sqlx::query_scalar(INSERT_CLAIMED_RUN)
                    .bind(claim.job_id)
                    .bind(Ts(claim.now))
                    .bind(Ts(scheduled_for))
                    .bind(trigger.as_str())
                    .bind(claim.runner)
                    .bind(requester)
                    .bind(parameters_json(&values))
                    .fetch_optional(&mut *tx)
                    .await?;
                if run_id.is_none() {
                    tracing::warn!(job_id = claim.job_id, %scheduled_for, "slot already recorded; not running it again");
                }
                won.push(run_id.map(|run_id| Claim { run_id, trigger, scheduled_for, attempt: 1, parameters: values }));
            }
            tx.commit().await?;
            Ok(won)
        })
    }

    /// Sets the `run_time` of claimed runs to when their process was actually started (a claim
    /// writes the claim's instant), all in one transaction. A run already finished is left alone.
    pub async fn record_starts(&self, starts: &[(i64, DateTime<Utc>)]) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            for (run_id, at) in starts {
                sqlx::query(RECORD_START).bind(run_id).bind(Ts(*at)).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Run Now: the job becomes due at `at` (normally now), suspended or manual as it may be; the
    /// next claim runs it once as `manual`, recorded as asked for by `requester`, with the
    /// parameter values `parameters` (checked by the caller with
    /// [`jtp_crds::parameters::resolve`]). A second request before that replaces the first.
    pub async fn request_run_now(
        &self,
        job_id: i64,
        at: DateTime<Utc>,
        requester: &str,
        parameters: &ParameterValues,
    ) -> Result<()> {
        let updated = with_pool!(self, pool => {
            sqlx::query(REQUEST_RUN_NOW)
                .bind(job_id)
                .bind(Ts(at))
                .bind(Ts(Utc::now()))
                .bind(requester)
                .bind(parameters_json(parameters))
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if updated == 0 {
            return Err(Error::not_found(format!("job {job_id}")));
        }
        Ok(())
    }

    /// Closes the RUNNING runs of `runner` (call it at start-up, before claiming): each becomes
    /// [`INTERRUPTED_STATUS`] with [`INTERRUPTED_MESSAGE`] as output, and its job's last run
    /// follows; like any failure it gets its further attempt when `spec.retries` has one left,
    /// or pauses its job. Returns how many were closed.
    pub async fn interrupted_runs_cleanup(&self, runner: &str, now: DateTime<Utc>) -> Result<u64> {
        let rows: Vec<(i64, String, DateTime<Utc>, i32, String)> =
            with_pool!(self, pool => sqlx::query_as(RUNNING_OF_RUNNER).bind(runner).fetch_all(pool).await)?;
        let finish = RunFinish {
            status: INTERRUPTED_STATUS,
            exit_code: None,
            output: INTERRUPTED_MESSAGE.as_bytes(),
            finished_at: now,
        };
        let mut closed = 0;
        for (id, trigger, slot, attempt, spec) in rows {
            let retry = match (Trigger::parse(&trigger), serde_json::from_str(&spec)) {
                (Some(trigger), Ok(spec)) => jtp_crds::policy::after_attempt(
                    &spec,
                    trigger,
                    slot,
                    u32::try_from(attempt).unwrap_or(1),
                    INTERRUPTED_STATUS,
                    now,
                ),
                _ => None,
            };
            let effects = FinishEffects {
                retry,
                standalone: true,
            };
            if self.record_attempt_finish(id, &finish, effects).await? == Finish::Recorded {
                closed += 1;
            }
        }
        Ok(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a database without statistics (as every standalone one is) each of the runner's queries
    /// by time reads its time's index in order, neither every live job nor a sort.
    #[tokio::test]
    async fn sqlite_reads_the_runner_queries_on_their_time_index() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::connect(&format!("sqlite://{}/jtp.db", dir.path().display()))
            .await
            .expect("store");
        let crate::Backend::Sqlite(pool) = &store.backend else {
            unreachable!("a sqlite:// URL")
        };
        for (query, index) in [
            (&DUE_JOBS, "scheduled_jobs_due"),
            (&NEXT_WAKEUP, "scheduled_jobs_due"),
            (&NEXT_RETRY, "scheduled_jobs_retry"),
            (&DUE_RETRIES, "scheduled_jobs_retry"),
        ] {
            let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "EXPLAIN QUERY PLAN {}",
                query.sqlite
            )))
            .bind(Ts(Utc::now()))
            .bind(10_i64)
            .fetch_all(pool)
            .await
            .expect("plan");
            let steps: Vec<&str> = plan.iter().map(|step| step.3.as_str()).collect();
            assert_eq!(steps.len(), 1, "{}: {steps:?}", query.sqlite);
            assert!(
                steps[0].starts_with(&format!("SEARCH scheduled_jobs USING INDEX {index} (")),
                "{steps:?}"
            );
        }
        // And they answer: a due job, the wake-up at its time, no retry.
        let spec = jtp_crds::ScheduledJobSpec::daily("09:00");
        let at = Utc::now() - chrono::Duration::seconds(5);
        let job = store
            .create_job(&crate::JobInput {
                name: "due",
                namespace: "default",
                uid: None,
                spec: &spec,
                next_run: Some(at),
            })
            .await
            .expect("create");
        let due = store.due_jobs(Utc::now(), 10).await.expect("due");
        assert_eq!(due.iter().map(|j| j.id).collect::<Vec<_>>(), [job.id]);
        assert_eq!(store.next_wakeup().await.expect("wake-up"), job.next_run);
        assert!(
            store
                .due_retries(Utc::now(), 10)
                .await
                .expect("retries")
                .is_empty()
        );
    }
}
