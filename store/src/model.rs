//! The rows the store reads and the inputs it writes, typed with the API crate's enums.

use chrono::{DateTime, Utc};
use jtp_crds::policy::PendingRetry;
use jtp_crds::{Expectation, Overdue, ParameterValues, RunStatus, ScheduledJobSpec, Trigger};

/// The namespace of jobs that have none (standalone mode).
pub const DEFAULT_NAMESPACE: &str = "default";

/// One row of `scheduled_jobs`.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: i64,
    /// The ScheduledJob's UID in Kubernetes mode.
    pub uid: Option<String>,
    pub name: String,
    pub namespace: String,
    pub description: Option<String>,
    /// `interval`, `hourly`, `daily`, `weekly`, `monthly`, `cron` or `manual`.
    pub schedule_type: String,
    pub interval_value: Option<i64>,
    pub interval_unit: Option<String>,
    pub minute: Option<i32>,
    /// `HH:MM` in the job's zone.
    pub at_time: Option<String>,
    /// Comma-separated lowercase weekday names.
    pub weekdays: Option<String>,
    pub day_of_month: Option<i32>,
    pub cron_expr: Option<String>,
    pub timezone: String,
    /// A readable summary of what runs.
    pub script: String,
    /// The whole spec: the source of truth in standalone mode.
    pub spec: ScheduledJobSpec,
    /// `!spec.suspend`.
    pub is_active: bool,
    pub next_run: Option<DateTime<Utc>>,
    /// When the last finished run started.
    pub last_run: Option<DateTime<Utc>>,
    pub last_status: Option<RunStatus>,
    pub consecutive_failures: i32,
    /// A pending Run Now.
    pub run_now_requested_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Standalone: `file:<path>` for a job loaded from the jobs folder; `None` otherwise.
    pub source: Option<String>,
    /// `spec.expectSuccessWithin` in seconds.
    pub expect_success_within_seconds: Option<i64>,
    /// Since when the job has been expected to succeed (when `expectSuccessWithin` was set).
    pub expect_since: Option<DateTime<Utc>>,
    /// When its newest successful run finished.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Standalone: the next attempt of a failed run, when it may start ([`Job::pending_retry`]).
    pub retry_at: Option<DateTime<Utc>>,
    pub retry_slot: Option<DateTime<Utc>>,
    pub retry_trigger: Option<Trigger>,
    pub retry_attempt: Option<i32>,
    /// Why the job was paused automatically; cleared when it is resumed.
    pub pause_note: Option<String>,
    /// The failures in a row at the last automatic pause; cleared by a success.
    pub paused_at_failures: Option<i32>,
}

impl Job {
    /// The dead-man's switch of this job, when it has one and is not deleted.
    pub fn expectation(&self) -> Option<Expectation> {
        let within = self.expect_success_within_seconds?;
        (self.deleted_at.is_none()).then_some(Expectation {
            within: chrono::Duration::seconds(within),
            since: self.expect_since.unwrap_or(self.created_at),
            last_success: self.last_success_at,
        })
    }

    /// Whether the job is overdue at `now` ([`Expectation::check`]).
    pub fn overdue(&self, now: DateTime<Utc>) -> Option<Overdue> {
        self.expectation().and_then(|e| e.check(now))
    }

    /// The next attempt of a failed run that is waiting (standalone).
    pub fn pending_retry(&self) -> Option<PendingRetry> {
        Some(PendingRetry {
            at: self.retry_at?,
            scheduled_time: self.retry_slot?,
            trigger: self.retry_trigger?,
            attempt: u32::try_from(self.retry_attempt?).ok()?,
        })
    }
}

/// What a write of a job says; the denormalized columns are filled from `spec`.
#[derive(Clone, Copy, Debug)]
pub struct JobInput<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    /// Kubernetes mode: the resource's UID (the key of [`crate::Store::upsert_job`]).
    pub uid: Option<&'a str>,
    pub spec: &'a ScheduledJobSpec,
    /// The next slot from the schedule engine; stored as NULL when the spec is suspended.
    pub next_run: Option<DateTime<Utc>>,
}

/// Filters and page of the jobs list.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    /// Case-insensitive substring of the name (`%` and `_` match themselves).
    pub name_contains: Option<String>,
    pub namespace: Option<String>,
    pub last_status: Option<RunStatus>,
    /// `Some(true)`: only active jobs; `Some(false)`: only suspended ones.
    pub active: Option<bool>,
    /// The order of the list (default: next run, soonest first).
    pub order: JobOrder,
    pub limit: i64,
    pub offset: i64,
}

/// What the jobs list is sorted by. Every order ends in the row id, so pages never overlap or skip
/// a job however many share a value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JobSort {
    /// The next run's instant, jobs without one last, then name.
    #[default]
    NextRun,
    /// The name, then namespace.
    Name,
    /// When the last run started, jobs that never ran last, then name.
    LastRun,
    /// The last run's status (ERROR, FAILURE, SUCCESS: problems first), jobs that never ran last,
    /// then name.
    Status,
}

/// A sort key and its direction. Jobs without a value (no next run, never ran) stay last in both
/// directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobOrder {
    pub by: JobSort,
    pub descending: bool,
}

impl JobOrder {
    /// The SQL `ORDER BY` of this order (`c_name` is the name column, collated byte-wise on
    /// PostgreSQL so both backends and the portal's merge agree).
    pub(crate) fn sql(self, name: &str) -> String {
        let d = if self.descending { " DESC" } else { "" };
        match self.by {
            JobSort::NextRun => format!(" ORDER BY (next_run IS NULL), next_run{d}, {name}{d}, id{d}"),
            JobSort::Name => format!(" ORDER BY {name}{d}, namespace{d}, id{d}"),
            JobSort::LastRun => format!(" ORDER BY (last_run IS NULL), last_run{d}, {name}{d}, id{d}"),
            JobSort::Status => format!(" ORDER BY (last_status IS NULL), last_status{d}, {name}{d}, id{d}"),
        }
    }

    /// The same order for jobs in memory (a list merged from several namespaces).
    pub fn compare(self, a: &crate::Job, b: &crate::Job) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        fn last<T: Ord>(a: &Option<T>, b: &Option<T>, descending: bool) -> Ordering {
            match (a, b) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(x), Some(y)) if descending => y.cmp(x),
                (Some(x), Some(y)) => x.cmp(y),
            }
        }
        let dir = |o: Ordering| if self.descending { o.reverse() } else { o };
        let rest = || dir(a.name.as_bytes().cmp(b.name.as_bytes())).then_with(|| dir(a.id.cmp(&b.id)));
        match self.by {
            JobSort::NextRun => last(&a.next_run, &b.next_run, self.descending).then_with(rest),
            JobSort::Name => dir(a.name.as_bytes().cmp(b.name.as_bytes()))
                .then_with(|| dir(a.namespace.as_bytes().cmp(b.namespace.as_bytes())))
                .then_with(|| dir(a.id.cmp(&b.id))),
            JobSort::LastRun => last(&a.last_run, &b.last_run, self.descending).then_with(rest),
            JobSort::Status => last(
                &a.last_status.map(|s| s.as_str()),
                &b.last_status.map(|s| s.as_str()),
                self.descending,
            )
            .then_with(rest),
        }
    }
}

/// One page of a list and how many rows match in all.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// A run as listed: everything but the full output.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    pub id: i64,
    pub job_id: i64,
    /// When it started.
    pub run_time: DateTime<Utc>,
    /// The slot it ran for (the Run Now instant for manual runs).
    pub scheduled_for: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub trigger: Trigger,
    /// 1 for a slot's first run, 2 for its first retry (`spec.retries`), and so on.
    pub attempt: i32,
    pub k8s_job_name: Option<String>,
    pub runner: Option<String>,
    /// Who asked for a manual run (see [`RunStart::requester`]).
    pub requester: Option<String>,
    /// The values of the job's parameters the run got (`spec.parameters`); empty when it has none.
    pub parameters: ParameterValues,
    /// Output size before the cap.
    pub output_bytes: i64,
    /// Bytes the cap cut.
    pub output_truncated: i64,
    /// The first [`crate::PREVIEW_CHARS`] characters of the stored output.
    pub preview: String,
}

/// Where a page of the runs view starts: runs strictly older (or newer) than this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunCursor {
    pub run_time: DateTime<Utc>,
    pub id: i64,
}

/// Filters and page of the runs across jobs ([`crate::Store::list_all_runs`]), newest first.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub trigger: Option<Trigger>,
    /// One job by id (a job's panel).
    pub job_id: Option<i64>,
    /// Every job of this exact name, deleted ones included.
    pub job_name: Option<String>,
    pub namespace: Option<String>,
    /// Only jobs in these namespaces (`None`: every namespace).
    pub namespaces: Option<Vec<String>>,
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Started before.
    pub until: Option<DateTime<Utc>>,
    /// Only runs whose output contains this text (case-insensitive, taken literally; at least
    /// [`crate::MIN_SEARCH_CHARS`] characters). [`crate::Store::search_snippets`] shows where.
    pub text: Option<String>,
    /// The page after this cursor (older runs).
    pub before: Option<RunCursor>,
    /// The page before this cursor (newer runs); ignored when `before` is set.
    pub after: Option<RunCursor>,
    pub limit: i64,
}

/// Where a searched text appears in a run's output ([`crate::Store::search_snippets`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSnippet {
    /// The output around the first match.
    pub text: String,
    /// The output goes on before `text`.
    pub cut_before: bool,
    /// The match's offset in `text`, in characters (`None`: not located; `text` is the start).
    pub match_at: Option<usize>,
}

/// A run of the runs view with its job, which may have been deleted.
#[derive(Clone, Debug, PartialEq)]
pub struct RunListItem {
    pub job_name: String,
    pub job_namespace: String,
    pub job_timezone: String,
    pub job_deleted: bool,
    pub run: RunSummary,
}

/// One page of the runs view, newest first, with the cursors of its neighbours.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPage {
    pub items: Vec<RunListItem>,
    /// Pass as `before` for the next (older) page; `None` on the last page.
    pub older: Option<RunCursor>,
    /// Pass as `after` for the previous (newer) page; `None` on the first page.
    pub newer: Option<RunCursor>,
    /// A search that tests outputs run by run stopped here, after [`crate::SCAN_BUDGET`] runs,
    /// before it filled the page: the page holds the hits among the runs read up to this one, and
    /// the cursor in the direction read (`older`, or `newer` when paging back) searches on.
    pub searched_to: Option<RunCursor>,
}

/// A point of a job's run history (the health columns): when, how long, how it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPoint {
    pub job_id: i64,
    pub id: i64,
    pub run_time: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
}

/// One run with its whole stored output.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub summary: RunSummary,
    pub log_output: String,
}

/// A failed run with the job it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct RecentFailure {
    pub job_name: String,
    pub job_namespace: String,
    pub run: RunSummary,
}

/// The start of a run, recorded once per (job, trigger, slot) and once per Kubernetes Job name.
#[derive(Clone, Debug)]
pub struct RunStart {
    pub job_id: i64,
    pub trigger: Trigger,
    pub scheduled_for: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub k8s_job_name: Option<String>,
    pub runner: Option<String>,
    /// Who asked for a manual run: the portal's user, a `kubectl annotate` user's own requester
    /// annotation, or `local`; `None` for scheduled runs and when nobody said.
    pub requester: Option<String>,
    /// The values of the job's parameters the run got, as [`jtp_crds::parameters::resolve`] gave
    /// them; empty for a job without parameters.
    pub parameters: ParameterValues,
}

/// The end of a run. The output is capped by the store.
#[derive(Clone, Copy, Debug)]
pub struct RunFinish<'a> {
    /// SUCCESS, FAILURE or ERROR (RUNNING is refused).
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub output: &'a [u8],
    pub finished_at: DateTime<Utc>,
}

/// What recording a finish does besides the run's row.
#[derive(Clone, Copy, Debug, Default)]
pub struct FinishEffects {
    /// This attempt gets a further one: it does not count towards the job's failures in a row.
    pub retry: Option<PendingRetry>,
    /// Standalone, where the store holds the schedule: keep `retry` on the job row (for the
    /// runner to claim) and apply `pauseAfterConsecutiveFailures`, in the finish's transaction,
    /// so a restart neither loses nor repeats either. In Kubernetes mode both live in the
    /// ScheduledJob's status.
    pub standalone: bool,
}

/// A runner's claim of a further attempt (see [`crate::Store::claim_retries`]).
#[derive(Clone, Copy, Debug)]
pub struct RetryClaim<'a> {
    pub job_id: i64,
    /// The retry the runner saw; the claim fails if it changed.
    pub retry: PendingRetry,
    pub runner: &'a str,
    pub now: DateTime<Utc>,
}

/// What recording a finish did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The run was RUNNING and is now finished; the job's last run was updated.
    Recorded,
    /// The run had already finished; nothing changed.
    AlreadyFinished,
}

/// A runner's claim of a due slot (see [`crate::Store::claim_slots`]).
#[derive(Clone, Copy, Debug)]
pub struct SlotClaim<'a> {
    pub job_id: i64,
    /// The `next_run` the runner saw; the claim fails if it changed.
    pub expected_next_run: DateTime<Utc>,
    /// What `next_run` becomes: the following slot, or None (manual or suspended job).
    pub new_next_run: Option<DateTime<Utc>>,
    pub runner: &'a str,
    /// When the run starts (`run_time`).
    pub now: DateTime<Utc>,
    /// The run policy dropped the job's pending retry (a newer scheduled run starts).
    pub drop_retry: bool,
    /// The values a scheduled run gets (the parameters' defaults); a pending Run Now brings its own.
    pub parameters: &'a ParameterValues,
}

/// A won claim: run it, then record its finish under `run_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub run_id: i64,
    pub trigger: Trigger,
    pub scheduled_for: DateTime<Utc>,
    pub attempt: u32,
    /// The values of the job's parameters the run gets (recorded with it).
    pub parameters: ParameterValues,
}

/// Counts for the operator's status and health output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Stats {
    /// Jobs not deleted.
    pub jobs: i64,
    /// Of those, not suspended.
    pub active_jobs: i64,
    /// Jobs with a next_run (scheduled or Run Now pending).
    pub queued_jobs: i64,
    /// Runs in flight.
    pub running_runs: i64,
}
