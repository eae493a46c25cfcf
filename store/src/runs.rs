//! `job_execution_logs`: recording a run's start and finish (both idempotent), the run lists,
//! one run's output, recent failures and bulk import (retention is in [`crate::retention`]).

use crate::alerts::{self, AlertKind};
use crate::model::{
    Finish, FinishEffects, Page, RecentFailure, Run, RunCursor, RunFilter, RunFinish, RunListItem, RunPage,
    RunPoint, RunStart, RunSummary,
};
use crate::output::{CappedOutput, cap_output, cap_output_parts};
use crate::row::run_summary_columns;
use crate::search::{Condition, SCAN_BUDGET};
use crate::time::{Ts, ts};
use crate::{Error, Result, Store, after_bulk_load, begin_write, with_pool};
use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use jtp_crds::{RunStatus, Trigger};

/// A second start of the same slot or Kubernetes Job inserts nothing.
const INSERT_START: &str = "INSERT INTO job_execution_logs \
     (job_id, run_time, scheduled_for, status, trigger, k8s_job_name, runner, requester, attempt, parameters) \
     VALUES ($1, $2, $3, 'RUNNING', $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING id";

const FIND_START: &str = "SELECT id FROM job_execution_logs \
     WHERE (job_id = $1 AND trigger = $2 AND scheduled_for = $3 AND attempt = $5) OR k8s_job_name = $4 \
     ORDER BY id LIMIT 1";

/// Only a RUNNING row is finished, so a second finish changes nothing.
/// A run still RUNNING, or closed as interrupted by a runner that took it for left behind (`$8` is
/// [`crate::INTERRUPTED_MESSAGE`]): the real end, when it comes, is what the run did.
const FINISH_RUN: &str = "UPDATE job_execution_logs SET status = $2, exit_code = $3, log_output = $4, \
     output_bytes = $5, output_truncated = $6, finished_at = $7 \
     WHERE id = $1 AND (status = 'RUNNING' OR (status = 'FAILURE' AND exit_code IS NULL AND log_output = $8)) \
     RETURNING job_id, run_time";

/// The job's last run moves forward only: a late finish of an older run does not hide a newer one.
/// An attempt that will be retried (`$5` false) does not count towards the failures in a row.
const UPDATE_LAST_RUN: &str = "UPDATE scheduled_jobs SET last_run = $2, last_status = $3, \
     consecutive_failures = CASE WHEN $3 = 'SUCCESS' THEN 0 WHEN $5 THEN consecutive_failures + 1 \
     ELSE consecutive_failures END, \
     paused_at_failures = CASE WHEN $3 = 'SUCCESS' THEN NULL ELSE paused_at_failures END, \
     updated_at = $4 WHERE id = $1 AND (last_run IS NULL OR last_run <= $2)";

/// Standalone: the next attempt of a failed run, kept with the job for the runner to claim.
const SET_RETRY: &str = "UPDATE scheduled_jobs SET retry_at = $2, retry_slot = $3, retry_trigger = $4, \
     retry_attempt = $5 WHERE id = $1 AND deleted_at IS NULL";

/// What the pause rule reads, in the finish's transaction.
const PAUSE_FACTS: &str = "SELECT spec, consecutive_failures, paused_at_failures FROM scheduled_jobs \
     WHERE id = $1 AND deleted_at IS NULL";

/// The automatic pause, as a suspend from the portal would do it, with the note why. A pending Run
/// Now keeps its next_run.
const PAUSE_JOB: &str = "UPDATE scheduled_jobs SET spec = $2, is_active = FALSE, next_run = run_now_requested_at, \
     pause_note = $3, paused_at_failures = $4, updated_at = $5 WHERE id = $1";

const RUN_STATUS: &str = "SELECT status FROM job_execution_logs WHERE id = $1";

const LIST_RUNS: &str = concat!(
    "SELECT ",
    run_summary_columns!(),
    " FROM job_execution_logs l WHERE l.job_id = $1 ORDER BY l.run_time DESC, l.id DESC LIMIT $2 OFFSET $3"
);
const COUNT_RUNS: &str = "SELECT COUNT(*) FROM job_execution_logs WHERE job_id = $1";

const GET_RUN: &str = concat!(
    "SELECT ",
    run_summary_columns!(),
    ", l.log_output FROM job_execution_logs l WHERE l.id = $1"
);

const RECENT_FAILURES: &str = concat!(
    "SELECT ",
    run_summary_columns!(),
    ", j.name AS job_name, j.namespace AS job_namespace \
     FROM job_execution_logs l JOIN scheduled_jobs j ON l.job_id = j.id \
     WHERE l.status IN ('FAILURE', 'ERROR') ORDER BY l.run_time DESC, l.id DESC LIMIT $1"
);

/// The runs view up to its filters (see [`Store::list_all_runs`]).
const LIST_ALL_RUNS: &str = concat!(
    "SELECT ",
    run_summary_columns!(),
    ", j.name AS job_name, j.namespace AS job_namespace, j.timezone AS job_timezone, \
     (j.deleted_at IS NOT NULL) AS job_deleted \
     FROM job_execution_logs l JOIN scheduled_jobs j ON l.job_id = j.id WHERE 1 = 1"
);

/// A budgeted search's reading: each filtered run's id and whether its output contains the text
/// (`LIKE` on SQLite, `ILIKE` on PostgreSQL, then the pattern). Every run has its job (a foreign
/// key), so the `LEFT JOIN` finds the same runs; the planner then leaves the job out unless a
/// filter reads it (half of the reading at a million runs on PostgreSQL).
const READ_FOR_SEARCH: &str = "SELECT l.id, (l.log_output";
const READ_FOR_SEARCH_FROM: &str = " ESCAPE '\\') AS hit FROM job_execution_logs l LEFT JOIN scheduled_jobs j ON l.job_id = j.id WHERE 1 = 1";

/// The most runs [`Store::run_history`] reads per job.
pub const MAX_HISTORY: i64 = 100;

/// After an import, each touched job's last run is its newest finished run.
const REFRESH_LAST_RUN: &str = "UPDATE scheduled_jobs SET \
     last_run = (SELECT l.run_time FROM job_execution_logs l WHERE l.job_id = scheduled_jobs.id \
                 AND l.status <> 'RUNNING' ORDER BY l.run_time DESC, l.id DESC LIMIT 1), \
     last_status = (SELECT l.status FROM job_execution_logs l WHERE l.job_id = scheduled_jobs.id \
                 AND l.status <> 'RUNNING' ORDER BY l.run_time DESC, l.id DESC LIMIT 1), \
     last_success_at = (SELECT MAX(l.finished_at) FROM job_execution_logs l WHERE l.job_id = scheduled_jobs.id \
                 AND l.status = 'SUCCESS'), \
     last_failure_at = (SELECT MAX(l.finished_at) FROM job_execution_logs l WHERE l.job_id = scheduled_jobs.id \
                 AND l.status IN ('FAILURE', 'ERROR')) \
     WHERE id IN (SELECT DISTINCT job_id FROM job_execution_logs WHERE id >= $1)";

/// Rows per INSERT of an import: 12 parameters each (24,000 in all) stays under both backends' limits.
const IMPORT_BATCH: usize = 2_000;

/// A finished run from elsewhere (the original system, a benchmark), imported as it is.
#[derive(Clone, Debug)]
pub struct ImportedRun {
    pub job_id: i64,
    pub run_time: DateTime<Utc>,
    pub scheduled_for: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub trigger: Trigger,
    pub output: String,
    pub k8s_job_name: Option<String>,
    pub runner: Option<String>,
}

impl Store {
    /// Records that attempt `attempt` of a run's slot started (`spec.retries`; 1 for the first)
    /// and returns its id. Recording the same (job, trigger, scheduled_for, attempt), or the same
    /// Kubernetes Job name, again returns the first row's id.
    pub async fn record_attempt_start(&self, start: &RunStart, attempt: u32) -> Result<i64> {
        let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
        let id = with_pool!(self, pool => {
            let inserted: Option<i64> = sqlx::query_scalar(INSERT_START)
                .bind(start.job_id)
                .bind(Ts(start.started_at))
                .bind(Ts(start.scheduled_for))
                .bind(start.trigger.as_str())
                .bind(&start.k8s_job_name)
                .bind(&start.runner)
                .bind(&start.requester)
                .bind(attempt)
                .bind(crate::row::parameters_json(&start.parameters))
                .fetch_optional(pool)
                .await?;
            match inserted {
                Some(id) => Ok(Some(id)),
                None => sqlx::query_scalar(FIND_START)
                    .bind(start.job_id)
                    .bind(start.trigger.as_str())
                    .bind(Ts(start.scheduled_for))
                    .bind(&start.k8s_job_name)
                    .bind(attempt)
                    .fetch_optional(pool)
                    .await,
            }
        })?;
        id.ok_or_else(|| Error::Conflict {
            message: "the run's start could not be recorded".into(),
            source: None,
        })
    }

    /// Records how run `run_id` ended; the output is capped ([`crate::StoreOptions::output_cap`]).
    /// In the same transaction the job's last_run, last_status and consecutive_failures follow,
    /// and `effects` says whether the attempt gets a retry or pauses its job ([`FinishEffects`];
    /// the default is neither). A run that already finished is left as it is (`AlreadyFinished`),
    /// except one closed as interrupted ([`crate::INTERRUPTED_MESSAGE`]) while it was in fact
    /// still running: its real end replaces that.
    pub async fn record_attempt_finish(
        &self,
        run_id: i64,
        finish: &RunFinish<'_>,
        effects: FinishEffects,
    ) -> Result<Finish> {
        let output = cap_output(finish.output, self.output_cap);
        self.record_capped_finish(run_id, finish, output, effects).await
    }

    /// [`Store::record_attempt_finish`] for output already cut while it was captured (see
    /// [`crate::cap_output_parts`]): `finish.output` is the kept head, `tail` the kept tail and
    /// `omitted` the bytes dropped between them.
    pub async fn record_finish_parts(
        &self,
        run_id: i64,
        finish: &RunFinish<'_>,
        tail: &[u8],
        omitted: u64,
        effects: FinishEffects,
    ) -> Result<Finish> {
        let output = cap_output_parts(finish.output, tail, omitted, self.output_cap);
        self.record_capped_finish(run_id, finish, output, effects).await
    }

    async fn record_capped_finish(
        &self,
        run_id: i64,
        finish: &RunFinish<'_>,
        output: CappedOutput,
        effects: FinishEffects,
    ) -> Result<Finish> {
        if !finish.status.is_finished() {
            return Err(Error::invalid("a finished run needs SUCCESS, FAILURE or ERROR"));
        }
        let (original, truncated) = (
            clamp_i64(output.original_bytes),
            clamp_i64(output.truncated_bytes),
        );
        let finished = with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            let row: Option<(i64, DateTime<Utc>)> = sqlx::query_as(FINISH_RUN)
                .bind(run_id)
                .bind(finish.status.as_str())
                .bind(finish.exit_code)
                .bind(&output.text)
                .bind(original)
                .bind(truncated)
                .bind(Ts(finish.finished_at))
                .bind(crate::INTERRUPTED_MESSAGE)
                .fetch_optional(&mut *tx)
                .await?;
            match row {
                Some((job_id, run_time)) => {
                    let (failures_before, last_success): (i32, Option<DateTime<Utc>>) =
                        sqlx::query_as(alerts::BEFORE_FINISH).bind(job_id).fetch_one(&mut *tx).await?;
                    let moved = sqlx::query(UPDATE_LAST_RUN)
                        .bind(job_id)
                        .bind(Ts(run_time))
                        .bind(finish.status.as_str())
                        .bind(Ts(finish.finished_at))
                        .bind(effects.retry.is_none())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                    let success = finish.status == RunStatus::Success;
                    let last = if success { alerts::SET_LAST_SUCCESS } else { alerts::SET_LAST_FAILURE };
                    sqlx::query(last)
                        .bind(job_id)
                        .bind(Ts(finish.finished_at))
                        .execute(&mut *tx)
                        .await?;
                    // The incident this finish opens or closes, in the same transaction: it is
                    // written exactly when the job's state changes, once.
                    // An attempt that gets a further one is not an incident: alerts follow the slot's outcome.
                    let incident = match (moved && effects.retry.is_none(), success) {
                        (true, false) if failures_before == 0 => Some((AlertKind::Failure, 1, "")),
                        (true, true) if failures_before > 0 => {
                            Some((AlertKind::Recovery, i64::from(failures_before), ""))
                        }
                        (true, true) => {
                            let overdue: i64 = sqlx::query_scalar(alerts::OVERDUE_SINCE)
                                .bind(job_id)
                                .bind(ts(last_success))
                                .fetch_one(&mut *tx)
                                .await?;
                            (overdue > 0).then_some((AlertKind::Recovery, 0, "succeeded again after being overdue"))
                        }
                        _ => None,
                    };
                    if let Some((kind, failures, detail)) = incident {
                        sqlx::query(alerts::INSERT_EVENT)
                            .bind(job_id)
                            .bind(kind.as_str())
                            .bind(run_id.to_string())
                            .bind(run_id)
                            .bind(finish.status.as_str())
                            .bind(failures)
                            .bind(detail)
                            .bind(Ts(finish.finished_at))
                            .execute(&mut *tx)
                            .await?;
                    }
                    if effects.standalone {
                        match effects.retry {
                            Some(retry) => {
                                sqlx::query(SET_RETRY)
                                    .bind(job_id)
                                    .bind(Ts(retry.at))
                                    .bind(Ts(retry.scheduled_time))
                                    .bind(retry.trigger.as_str())
                                    .bind(i32::try_from(retry.attempt).unwrap_or(i32::MAX))
                                    .execute(&mut *tx)
                                    .await?;
                            }
                            None => {
                                let facts: Option<(String, i32, Option<i32>)> = sqlx::query_as(PAUSE_FACTS)
                                    .bind(job_id)
                                    .fetch_optional(&mut *tx)
                                    .await?;
                                if let Some((spec, failures, paused_at)) = facts
                                    && let Ok(mut spec) = serde_json::from_str::<jtp_crds::ScheduledJobSpec>(&spec)
                                {
                                    let count = |n: i32| u32::try_from(n).unwrap_or(0);
                                    let pause = jtp_crds::policy::pause_due(
                                        &spec,
                                        count(failures),
                                        paused_at.map(count),
                                        finish.finished_at,
                                    );
                                    if let Some(pause) = pause {
                                        spec.suspend = true;
                                        let json = serde_json::to_string(&spec)
                                            .map_err(|e| Error::invalid(format!("spec cannot be stored: {e}")))?;
                                        sqlx::query(PAUSE_JOB)
                                            .bind(job_id)
                                            .bind(json)
                                            .bind(&pause.message)
                                            .bind(failures)
                                            .bind(Ts(finish.finished_at))
                                            .execute(&mut *tx)
                                            .await?;
                                        tracing::warn!(job_id, failures, "{}", pause.message);
                                    }
                                }
                            }
                        }
                    }
                    tx.commit().await?;
                    Ok::<_, Error>(Finish::Recorded)
                }
                None => {
                    let status: Option<String> = sqlx::query_scalar(RUN_STATUS).bind(run_id).fetch_optional(&mut *tx).await?;
                    tx.rollback().await?;
                    status.map(|_| Finish::AlreadyFinished).ok_or_else(|| Error::not_found(format!("run {run_id}")))
                }
            }
        })?;
        if matches!(finished, Finish::Recorded) {
            self.wake_indexer();
        }
        Ok(finished)
    }

    /// One job's runs, newest first, without their full output (a preview instead).
    pub async fn list_runs(&self, job_id: i64, limit: i64, offset: i64) -> Result<Page<RunSummary>> {
        let (items, total) = with_pool!(self, pool => {
            let items = sqlx::query_as::<_, RunSummary>(LIST_RUNS)
                .bind(job_id)
                .bind(limit.max(0))
                .bind(offset.max(0))
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(COUNT_RUNS).bind(job_id).fetch_one(pool).await?;
            Ok::<_, sqlx::Error>((items, total))
        })?;
        Ok(Page { items, total })
    }

    /// Which of these Kubernetes Job names have a finished run recorded (the operator asks
    /// before it reads a finished Job's logs again, and before it prunes one).
    pub async fn finished_k8s_jobs(&self, names: &[String]) -> Result<Vec<String>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let found = with_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(
                "SELECT k8s_job_name FROM job_execution_logs WHERE status <> 'RUNNING' AND k8s_job_name IN (",
            );
            let mut list = query.separated(", ");
            for name in names {
                list.push_bind(name.as_str());
            }
            query.push(")");
            query.build_query_scalar::<String>().fetch_all(pool).await
        })?;
        Ok(found)
    }

    /// One run with its whole stored output.
    pub async fn get_run(&self, run_id: i64) -> Result<Run> {
        let run = with_pool!(self, pool => sqlx::query_as(GET_RUN).bind(run_id).fetch_optional(pool).await)?;
        run.ok_or_else(|| Error::not_found(format!("run {run_id}")))
    }

    /// The newest FAILURE and ERROR runs across all jobs, with their job's name.
    pub async fn recent_failures(&self, limit: i64) -> Result<Vec<RecentFailure>> {
        Ok(with_pool!(self, pool => sqlx::query_as(RECENT_FAILURES).bind(limit).fetch_all(pool).await)?)
    }

    /// Runs across jobs (deleted jobs' included), newest first, `filter.limit` (1–1000) at a time,
    /// paged by cursor: a run that starts meanwhile does not shift the pages already seen.
    pub async fn list_all_runs(&self, filter: &RunFilter) -> Result<RunPage> {
        let limit = filter.limit.clamp(1, 1000);
        let search = match filter.text.as_deref() {
            Some(text) => Some(self.search_condition(text).await?),
            None => None,
        };
        // A text most outputs contain is tested run by run (SQLite's `LIKE` plan; PostgreSQL's
        // `ILIKE` one when the planner expects more than `FEW_HITS` hits): a page then reads at
        // most [`SCAN_BUDGET`] runs that pass the other filters, so a filter few of the text's
        // runs pass cannot make it read every run; where it stops is the next page's cursor.
        let budget = search.as_ref().is_some_and(Condition::reads_each_output);
        // Newer pages are read oldest first from the cursor, then turned around.
        let forward = filter.before.is_some() || filter.after.is_none();
        let (cursor, op, order) = match (filter.before, filter.after) {
            (Some(c), _) => (Some(c), " < ", " ORDER BY l.run_time DESC, l.id DESC"),
            (None, Some(c)) => (Some(c), " > ", " ORDER BY l.run_time ASC, l.id ASC"),
            (None, None) => (None, "", " ORDER BY l.run_time DESC, l.id DESC"),
        };
        // The filters but the text, and the cursor: for the page, and for the runs a budgeted
        // search reads.
        macro_rules! push_filters {
            ($query:expr) => {{
                let query = $query;
                if let Some(status) = filter.status {
                    query.push(" AND l.status = ").push_bind(status.as_str());
                }
                if let Some(trigger) = filter.trigger {
                    query.push(" AND l.trigger = ").push_bind(trigger.as_str());
                }
                if let Some(job_id) = filter.job_id {
                    query.push(" AND l.job_id = ").push_bind(job_id);
                }
                if let Some(name) = &filter.job_name {
                    query.push(" AND j.name = ").push_bind(name.clone());
                }
                if let Some(namespace) = &filter.namespace {
                    query
                        .push(" AND j.namespace = ")
                        .push_bind(namespace.clone());
                }
                if let Some(namespaces) = &filter.namespaces {
                    if namespaces.is_empty() {
                        query.push(" AND 1 = 0");
                    } else {
                        query.push(" AND j.namespace IN (");
                        let mut list = query.separated(", ");
                        for ns in namespaces {
                            list.push_bind(ns.clone());
                        }
                        query.push(")");
                    }
                }
                if let Some(since) = filter.since {
                    query.push(" AND l.run_time >= ").push_bind(Ts(since));
                }
                if let Some(until) = filter.until {
                    query.push(" AND l.run_time < ").push_bind(Ts(until));
                }
                if let Some(c) = cursor {
                    query
                        .push(" AND (l.run_time")
                        .push(op)
                        .push_bind(Ts(c.run_time))
                        .push(" OR (l.run_time = ")
                        .push_bind(Ts(c.run_time))
                        .push(" AND l.id")
                        .push(op)
                        .push_bind(c.id)
                        .push("))");
                }
            }};
        }
        // The budgeted reading: stream the filtered runs newest first with whether each output
        // contains the text, stop at the page's hits or at the budget; the page is then those
        // hits by id, and a budget read to its end ends the page at its last run.
        let mut search = search;
        let mut cut_id = None;
        if let (true, Some((op, pattern))) = (budget, search.as_ref().and_then(Condition::each_test)) {
            let (hits, read, last) = with_pool!(self, pool => {
                let mut reading = sqlx::QueryBuilder::new(READ_FOR_SEARCH);
                reading
                    .push(op)
                    .push_bind(pattern.to_owned())
                    .push(READ_FOR_SEARCH_FROM);
                push_filters!(&mut reading);
                reading.push(order).push(" LIMIT ").push_bind(SCAN_BUDGET);
                let mut stream = reading
                    .build_query_as::<(i64, bool)>()
                    .persistent(false)
                    .fetch(pool);
                let (mut hits, mut read, mut last) = (Vec::new(), 0_i64, None);
                while let Some((id, hit)) = stream.try_next().await? {
                    read += 1;
                    last = Some(id);
                    if hit {
                        hits.push(id);
                        if hits.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
                            break;
                        }
                    }
                }
                (hits, read, last)
            });
            if read == SCAN_BUDGET && hits.len() <= usize::try_from(limit).unwrap_or(usize::MAX) {
                cut_id = last;
            }
            search = Some(Condition::hits(self.backend_kind(), &hits)?);
        }
        let (mut rows, cut): (Vec<RunListItem>, Option<RunListItem>) = with_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(LIST_ALL_RUNS);
            push_filters!(&mut query);
            if let Some(condition) = &search {
                for (sql, value) in condition.parts() {
                    query.push(sql);
                    if let Some(value) = value {
                        query.push_bind(value);
                    }
                }
            }
            query.push(order).push(" LIMIT ").push_bind(limit + 1);
            // A search is planned for its own values (here its hits' ids, a few or thousands),
            // never from a cached generic plan, which PostgreSQL would plan for a list of unknown
            // length.
            let rows = query
                .build_query_as::<RunListItem>()
                .persistent(search.is_none())
                .fetch_all(pool)
                .await?;
            let cut = match cut_id {
                Some(id) => {
                    let mut last = sqlx::QueryBuilder::new(LIST_ALL_RUNS);
                    last.push(" AND l.id = ").push_bind(id);
                    last.build_query_as::<RunListItem>().fetch_optional(pool).await?
                }
                None => None,
            };
            (rows, cut)
        });
        let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        if !forward {
            rows.reverse();
        }
        let cursor = |item: &RunListItem| RunCursor {
            run_time: item.run.run_time,
            id: item.run.id,
        };
        let searched_to = cut.as_ref().map(cursor);
        let (older, newer) = match (forward, searched_to) {
            // Cut short: the next page in this direction starts after the last run read; the
            // other direction starts at this page's edge, or where this page started.
            (true, Some(to)) => (Some(to), rows.first().map(cursor).or(filter.before)),
            (false, Some(to)) => (rows.last().map(cursor).or(filter.after), Some(to)),
            (true, None) => (
                rows.last().filter(|_| more).map(cursor),
                rows.first().filter(|_| filter.before.is_some()).map(cursor),
            ),
            (false, None) => (rows.last().map(cursor), rows.first().filter(|_| more).map(cursor)),
        };
        Ok(RunPage {
            items: rows,
            older,
            newer,
            searched_to,
        })
    }

    /// The newest `per_job` runs (at most [`MAX_HISTORY`]) of each of these jobs, newest first per
    /// job, with their instants to the millisecond: one indexed read per job (from the covering
    /// index of migration 0011, without touching the rows), in one query that answers one row per
    /// job with its points packed as text. Rows are what a page pays for: each row the driver hands
    /// over costs more than the database's whole read of it, and the jobs page asks for 50 jobs
    /// of 20 runs each.
    pub async fn run_history(&self, job_ids: &[i64], per_job: i64) -> Result<Vec<RunPoint>> {
        if job_ids.is_empty() {
            return Ok(Vec::new());
        }
        let per_job = per_job.clamp(1, MAX_HISTORY);
        let (point, aggregate) = match self.backend_kind() {
            crate::BackendKind::Postgres => (POSTGRES_POINT, "string_agg"),
            crate::BackendKind::Sqlite => (SQLITE_POINT, "group_concat"),
        };
        let rows: Vec<(i64, String)> = with_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new("");
            for (i, id) in job_ids.iter().enumerate() {
                if i > 0 {
                    query.push(" UNION ALL ");
                }
                query
                    .push(format_args!(
                        "SELECT job_id, {aggregate}(p, ',') AS points FROM (SELECT job_id, {point} AS p \
                         FROM job_execution_logs WHERE job_id = "
                    ))
                    .push_bind(*id)
                    .push(" ORDER BY run_time DESC, id DESC LIMIT ")
                    .push_bind(per_job)
                    .push(format_args!(") h{i} GROUP BY job_id"));
            }
            query.build_query_as().fetch_all(pool).await
        })?;
        let mut points = Vec::with_capacity(rows.len() * usize::try_from(per_job).unwrap_or(0));
        for (job_id, packed) in rows {
            for text in packed.split(',') {
                points.push(unpack_point(job_id, text)?);
            }
        }
        // The aggregates keep no promised order: newest first per job, as the reads were.
        points.sort_by(|a, b| (a.job_id, b.run_time, b.id).cmp(&(b.job_id, a.run_time, a.id)));
        Ok(points)
    }

    /// Which of these jobs have a run in flight (read from the index of runs by status).
    pub async fn running_jobs(&self, job_ids: &[i64]) -> Result<Vec<i64>> {
        if job_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = with_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(
                "SELECT DISTINCT job_id FROM job_execution_logs WHERE status = 'RUNNING' AND job_id IN (",
            );
            let mut list = query.separated(", ");
            for id in job_ids {
                list.push_bind(*id);
            }
            query.push(")");
            query.build_query_scalar::<i64>().fetch_all(pool).await
        })?;
        Ok(ids)
    }

    /// Inserts finished runs in batches in one transaction (outputs capped like any other),
    /// skipping rows whose slot or Kubernetes Job name is already recorded, then sets each
    /// touched job's last run. Returns how many rows were inserted.
    pub async fn import_runs(&self, runs: &[ImportedRun]) -> Result<u64> {
        let capped: Vec<_> = runs
            .iter()
            .map(|r| cap_output(r.output.as_bytes(), self.output_cap))
            .collect();
        let inserted = with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            let first_id: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM job_execution_logs").fetch_one(&mut *tx).await?;
            let mut inserted = 0;
            for (batch, outputs) in runs.chunks(IMPORT_BATCH).zip(capped.chunks(IMPORT_BATCH)) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO job_execution_logs (job_id, run_time, scheduled_for, finished_at, status, \
                     exit_code, trigger, log_output, output_bytes, output_truncated, k8s_job_name, runner) ",
                );
                insert.push_values(batch.iter().zip(outputs), |mut row, (run, out)| {
                    row.push_bind(run.job_id)
                        .push_bind(Ts(run.run_time))
                        .push_bind(Ts(run.scheduled_for))
                        .push_bind(ts(run.finished_at))
                        .push_bind(run.status.as_str())
                        .push_bind(run.exit_code)
                        .push_bind(run.trigger.as_str())
                        .push_bind(out.text.clone())
                        .push_bind(clamp_i64(out.original_bytes))
                        .push_bind(clamp_i64(out.truncated_bytes))
                        .push_bind(run.k8s_job_name.clone())
                        .push_bind(run.runner.clone());
                });
                insert.push(" ON CONFLICT DO NOTHING");
                inserted += insert.build().execute(&mut *tx).await?.rows_affected();
            }
            sqlx::query(REFRESH_LAST_RUN).bind(first_id).execute(&mut *tx).await?;
            tx.commit().await?;
            after_bulk_load(pool).await?;
            Ok::<_, Error>(inserted)
        })?;
        Ok(inserted)
    }
}

/// One run of [`Store::run_history`] as SQLite packs it: `id status start_ms end_ms` (`-` while
/// running), the instants in milliseconds since the epoch.
const SQLITE_POINT: &str = "id || ' ' || status || ' ' || \
     CAST(round((julianday(run_time) - 2440587.5) * 86400000) AS INTEGER) || ' ' || \
     ifnull(CAST(round((julianday(finished_at) - 2440587.5) * 86400000) AS INTEGER), '-')";

/// [`SQLITE_POINT`] for PostgreSQL.
const POSTGRES_POINT: &str = "id || ' ' || status || ' ' || \
     (EXTRACT(EPOCH FROM run_time) * 1000)::bigint || ' ' || \
     COALESCE(((EXTRACT(EPOCH FROM finished_at) * 1000)::bigint)::text, '-')";

fn unpack_point(job_id: i64, text: &str) -> Result<RunPoint> {
    let corrupt = || Error::Corrupt {
        message: format!("run history point {text:?} of job {job_id}"),
    };
    let instant = |ms: &str| {
        ms.parse::<i64>()
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .ok_or_else(corrupt)
    };
    let mut fields = text.split(' ');
    let (Some(id), Some(status), Some(start), Some(end), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(corrupt());
    };
    Ok(RunPoint {
        job_id,
        id: id.parse().map_err(|_| corrupt())?,
        status: RunStatus::parse(status).ok_or_else(corrupt)?,
        run_time: instant(start)?,
        finished_at: match end {
            "-" => None,
            ms => Some(instant(ms)?),
        },
    })
}

fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
