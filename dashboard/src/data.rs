//! Reads (both modes) and standalone writes through the store, and the views the pages and the API
//! show: every instant already rendered in the job's zone, with UTC beside it.

use crate::error::{AppError, Result};
use crate::timefmt::{self, DisplayZone, Precision, ShownTime};
use crate::{AppState, Mode};
use chrono::{DateTime, Utc};
use jtp_crds::policy::{Timing, after_edit, next_run_after_edit};
use jtp_crds::{CompiledSchedule, JobId, Retention, RunStatus, ScheduledJobSpec, Trigger};
use jtp_store::{
    Job, JobFilter, JobInput, JobOrder, JobSort, RunCursor, RunFilter, RunListItem, RunPoint, RunSummary,
};
use serde::{Deserialize, Serialize};

/// A job as the jobs page and `GET /api/v1/jobs` show it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    #[serde(skip)]
    pub id: i64,
    pub namespace: String,
    pub name: String,
    /// `namespace/name`.
    #[serde(skip)]
    pub key: String,
    pub description: Option<String>,
    /// The schedule in words, with the zone.
    pub schedule: String,
    pub time_zone: String,
    pub next_run: Option<ShownTime>,
    /// What a DST change does to the next run ("second pass of the repeated 01:30"), if anything.
    pub next_run_dst: Option<String>,
    /// Why there is no next run (manual, suspended).
    #[serde(skip)]
    pub no_next_run: String,
    /// Interval jobs: where the job's own phase puts its runs ("runs at :10:14.529, :25:14.529,
    /// … — this job's own offset").
    #[serde(skip)]
    pub phase_note: Option<String>,
    pub last_run: Option<ShownTime>,
    pub last_status: Option<RunStatus>,
    /// Not suspended.
    pub active: bool,
    pub run_now_requested: Option<ShownTime>,
    /// Standalone: the jobs-folder file the job comes from (`jobs.yaml`); a portal edit lasts
    /// until that job's document in the file changes.
    pub source_file: Option<String>,
    /// Finished runs in a row that did not succeed.
    pub consecutive_failures: i32,
    /// Why the job was paused automatically (`pauseAfterConsecutiveFailures`), while it stays
    /// suspended.
    pub paused_because: Option<String>,
    /// The next attempt of a failed run, waiting for its backoff (standalone).
    pub retry_at: Option<ShownTime>,
    /// The recent runs at a glance (filled by [`attach_health`]).
    pub health: Option<Health>,
    /// Which of its runs are kept, and whether the job or the global policy says so.
    pub retention: RetentionView,
    /// Set while the job has not succeeded within its `spec.expectSuccessWithin`.
    pub overdue: Option<OverdueView>,
    pub spec: ScheduledJobSpec,
    /// When the row last changed (keys [`HealthCache`]).
    #[serde(skip)]
    pub updated_at: DateTime<Utc>,
}

/// A job overdue by its dead-man's switch.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OverdueView {
    /// When a success was due.
    pub deadline: ShownTime,
    /// "no success within 1d2h: the last one finished at …, so one was due by …"
    pub message: String,
}

/// The retention that applies to a job.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionView {
    /// `maxAge` and `keepLast` as they apply (both absent: every run is kept).
    #[serde(flatten)]
    pub policy: Retention,
    /// `job` (its `spec.retention`) or `global` (the operator's or runner's flags).
    pub source: &'static str,
    /// In words: "runs of the last 90 days, and at least the last 20 runs".
    pub summary: String,
}

impl RetentionView {
    /// Whose retention it is, in words: "this job's retention" or "the global retention".
    pub fn whose(&self) -> &'static str {
        if self.source == "job" {
            "this job's retention"
        } else {
            "the global retention"
        }
    }

    fn of(job: &Job, global: &Retention) -> Self {
        let (policy, source) = match (&job.spec.retention, job.deleted_at) {
            (Some(own), None) => (own.clone(), "job"),
            _ => (global.clone(), "global"),
        };
        Self {
            summary: policy.to_string(),
            policy,
            source,
        }
    }
}

/// How many recent runs the health columns read per job.
pub const HEALTH_RUNS: i64 = 20;

/// A job's recent runs at a glance: success rate, last success and a bar per run.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Finished runs among the last [`HEALTH_RUNS`].
    pub finished: usize,
    pub succeeded: usize,
    /// Percent of the finished runs that succeeded; `None` before the first finish.
    pub success_rate: Option<u32>,
    /// The newest success among them.
    pub last_success: Option<ShownTime>,
    /// Finished runs in a row that did not succeed (the job's own count, over all its runs).
    pub failing_streak: i32,
    /// "17 of 20 recent runs succeeded".
    #[serde(skip)]
    pub summary: String,
    /// Oldest first, for the SVG (one bar per run, height by duration, colour by status).
    #[serde(skip)]
    pub bars: Vec<Bar>,
}

/// One bar of the health chart, in SVG user units.
#[derive(Clone, Debug)]
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub height: u32,
    pub status: &'static str,
    /// "#12 SUCCESS, 1.5 s, 2026-11-30 09:00:01 HKT"
    pub title: String,
}

/// Width of the health chart: one 5-unit bar and a 1-unit gap per run.
pub const HEALTH_WIDTH: u32 = 6 * HEALTH_RUNS as u32;
/// Height of the health chart.
pub const HEALTH_HEIGHT: u32 = 22;

impl Health {
    /// From the newest-first `points` of one job.
    pub fn from_points(points: &[&RunPoint], tz: chrono_tz::Tz, now: DateTime<Utc>) -> Self {
        let finished = points.iter().filter(|p| p.status.is_finished()).count();
        let succeeded = points.iter().filter(|p| p.status == RunStatus::Success).count();
        let success_rate = (finished > 0).then(|| u32::try_from(succeeded * 100 / finished).unwrap_or(100));
        let last_success = points
            .iter()
            .find(|p| p.status == RunStatus::Success)
            .map(|p| timefmt::show_at(p.run_time, tz, Precision::Seconds, now));
        let took = |p: &RunPoint| {
            (p.finished_at.unwrap_or(now) - p.run_time)
                .num_milliseconds()
                .max(0)
        };
        let longest = points.iter().map(|p| took(p)).max().unwrap_or(0).max(1);
        let slots = usize::try_from(HEALTH_RUNS).unwrap_or(20);
        let bars = points
            .iter()
            .rev()
            .enumerate()
            .map(|(i, p)| {
                let ms = took(p);
                // At least 3 units, so a quick run is still seen; the longest fills the height.
                let height =
                    u32::try_from(3 + ms * i64::from(HEALTH_HEIGHT - 3) / longest).unwrap_or(HEALTH_HEIGHT);
                let offset = u32::try_from(slots.saturating_sub(points.len()) + i).unwrap_or(0);
                Bar {
                    x: offset * 6,
                    y: HEALTH_HEIGHT - height,
                    height,
                    status: p.status.as_str(),
                    title: format!(
                        "#{} {}, {}, {}",
                        p.id,
                        p.status.as_str(),
                        timefmt::duration(p.run_time, p.finished_at.unwrap_or(now)),
                        timefmt::wall(p.run_time, tz, Precision::Seconds)
                    ),
                }
            })
            .collect();
        let summary = match finished {
            0 => "no finished run yet".to_owned(),
            n => format!("{succeeded} of {n} recent runs succeeded"),
        };
        Self {
            finished,
            succeeded,
            success_rate,
            last_success,
            failing_streak: 0,
            summary,
            bars,
        }
    }
}

/// Fills the health of these jobs. Their recent runs come from [`HealthCache`] where a job has not
/// changed since they were read, and from one query for the rest.
pub(crate) async fn attach_health(state: &AppState, jobs: &mut [JobView], zone: DisplayZone) -> Result<()> {
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let running = state.store().running_jobs(&ids).await?;
    let cache = &state.inner.health;
    let mut points = cache.lookup(jobs, &running);
    let missing: Vec<i64> = jobs
        .iter()
        .map(|j| j.id)
        .filter(|id| !points.contains_key(id))
        .collect();
    if !missing.is_empty() {
        let read = state.store().run_history(&missing, HEALTH_RUNS).await?;
        let mut by_job: std::collections::HashMap<i64, Vec<RunPoint>> =
            missing.iter().map(|id| (*id, Vec::new())).collect();
        for point in read {
            by_job.entry(point.job_id).or_default().push(point);
        }
        cache.store(jobs, &by_job);
        points.extend(by_job);
    }
    let now = Utc::now();
    for job in jobs {
        let mine: Vec<&RunPoint> = points.get(&job.id).into_iter().flatten().collect();
        let mut health = Health::from_points(&mine, zone.for_job(&job.time_zone), now);
        health.failing_streak = job.consecutive_failures;
        job.health = Some(health);
    }
    Ok(())
}

/// Each job's recent runs as last read, with the job's `updated_at` then. Every recorded finish
/// that moves a job's last run updates its row, so while `updated_at` is the same and no run of
/// the job is in flight (nor was when they were read), the runs read then are still its newest
/// ones. One entry per job, so it holds at most as many entries as there are jobs shown.
#[derive(Default)]
pub(crate) struct HealthCache {
    entries: std::sync::Mutex<std::collections::HashMap<i64, CachedHealth>>,
}

/// A job's `updated_at` and its recent runs as read then.
type CachedHealth = (DateTime<Utc>, Vec<RunPoint>);

/// Entries kept before the cache starts over (jobs deleted meanwhile leave theirs).
const HEALTH_CACHE_MAX: usize = 50_000;

impl HealthCache {
    fn lookup(&self, jobs: &[JobView], running: &[i64]) -> std::collections::HashMap<i64, Vec<RunPoint>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter()
            .filter(|job| !running.contains(&job.id))
            .filter_map(|job| {
                let (updated_at, points) = entries.get(&job.id)?;
                let fresh = *updated_at == job.updated_at && points.iter().all(|p| p.status.is_finished());
                fresh.then(|| (job.id, points.clone()))
            })
            .collect()
    }

    fn store(&self, jobs: &[JobView], read: &std::collections::HashMap<i64, Vec<RunPoint>>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= HEALTH_CACHE_MAX {
            entries.clear();
        }
        for job in jobs {
            if let Some(points) = read.get(&job.id) {
                entries.insert(job.id, (job.updated_at, points.clone()));
            }
        }
    }
}

/// Schedules in words, by job id and last update: describing a cron expression costs more than
/// the rest of a row, and the jobs page shows fifty rows per view.
#[derive(Default)]
pub(crate) struct DescriptionCache {
    entries: std::sync::Mutex<std::collections::HashMap<DescriptionKey, (String, bool)>>,
}

/// Job id and the time of its last update.
type DescriptionKey = (i64, DateTime<Utc>);

/// Entries kept before the cache starts over.
const DESCRIPTION_CACHE_MAX: usize = 50_000;

impl DescriptionCache {
    fn describe(&self, job: &Job) -> (String, bool) {
        let key = (job.id, job.updated_at);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = entries.get(&key) {
            return found.clone();
        }
        let described = describe(job);
        if entries.len() >= DESCRIPTION_CACHE_MAX {
            entries.clear();
        }
        entries.insert(key, described.clone());
        described
    }
}

/// The schedule in words and whether it is manual.
fn describe(job: &Job) -> (String, bool) {
    let id = JobId {
        namespace: &job.namespace,
        name: &job.name,
    };
    match CompiledSchedule::new(id, &job.spec) {
        Ok(c) => (c.describe(), c.is_manual()),
        Err(e) => (format!("invalid schedule: {e}"), false),
    }
}

impl JobView {
    /// The view of a stored job, its instants in its own zone; `global` is the retention of
    /// jobs without their own.
    pub fn from_job(job: Job, global: &Retention) -> Self {
        let described = describe(&job);
        Self::with_description(job, described, DisplayZone::Job, global)
    }

    pub(crate) fn cached(state: &AppState, job: Job, zone: DisplayZone) -> Self {
        let described = state.inner.descriptions.describe(&job);
        Self::with_description(job, described, zone, &state.config().retention)
    }

    fn with_description(
        job: Job,
        (schedule, manual): (String, bool),
        zone: DisplayZone,
        global: &Retention,
    ) -> Self {
        let retention = RetentionView::of(&job, global);
        let tz = zone.for_job(&job.timezone);
        let overdue = job.overdue(Utc::now()).map(|o| OverdueView {
            deadline: timefmt::show(o.deadline, tz),
            message: o.to_string(),
        });
        let retry_at = job.pending_retry().map(|r| timefmt::show(r.at, tz));
        let next_run_dst = job.next_run.and_then(|t| {
            let id = JobId {
                namespace: &job.namespace,
                name: &job.name,
            };
            CompiledSchedule::new(id, &job.spec).ok()?.dst_note_at(t)
        });
        let no_next_run = if !job.is_active {
            "suspended"
        } else if manual {
            "manual only"
        } else {
            "not planned yet"
        };
        Self {
            id: job.id,
            key: format!("{}/{}", job.namespace, job.name),
            namespace: job.namespace,
            name: job.name,
            description: job.description.filter(|d| !d.is_empty()),
            schedule,
            time_zone: job.timezone,
            next_run: job.next_run.map(|t| timefmt::show(t, tz)),
            next_run_dst,
            no_next_run: no_next_run.to_owned(),
            phase_note: job
                .next_run
                .zip(job.spec.schedule.interval.as_ref())
                .map(|(next, interval)| phase_note(next, interval, tz)),
            last_run: job.last_run.map(|t| timefmt::show_precise(t, tz)),
            last_status: job.last_status,
            active: job.is_active,
            run_now_requested: job.run_now_requested_at.map(|t| timefmt::show_precise(t, tz)),
            source_file: job
                .source
                .as_deref()
                .and_then(|s| s.strip_prefix("file:"))
                .map(str::to_owned),
            consecutive_failures: job.consecutive_failures,
            retry_at,
            paused_because: job.pause_note.filter(|_| !job.is_active),
            health: None,
            retention,
            overdue,
            spec: job.spec,
            updated_at: job.updated_at,
        }
    }
}

/// Where an interval job's slots fall, in words: within the hour for intervals that divide it,
/// else from the next slot on.
fn phase_note(next: DateTime<Utc>, interval: &jtp_crds::IntervalSchedule, tz: chrono_tz::Tz) -> String {
    use chrono::Timelike;
    let unit = match interval.unit {
        jtp_crds::IntervalUnit::Seconds => 1,
        jtp_crds::IntervalUnit::Minutes => 60,
        jtp_crds::IntervalUnit::Hours => 3_600,
        jtp_crds::IntervalUnit::Days => 86_400,
    };
    let every = i64::try_from(interval.every)
        .unwrap_or(i64::MAX)
        .saturating_mul(unit);
    let local = next.with_timezone(&tz);
    let ms = local.timestamp_subsec_millis();
    if (60..3_600).contains(&every) && 3_600 % every == 0 {
        let within = i64::from(local.minute() * 60 + local.second());
        let mut offsets: Vec<i64> = (0..3_600 / every).map(|k| (within + k * every) % 3_600).collect();
        offsets.sort_unstable();
        let shown: Vec<String> = offsets
            .iter()
            .take(4)
            .map(|o| format!(":{:02}:{:02}.{ms:03}", o / 60, o % 60))
            .collect();
        let more = if offsets.len() > 4 { ", …" } else { "" };
        format!(
            "runs at {}{more} past each hour: this job's own offset, so jobs on one interval do not all start at once",
            shown.join(", ")
        )
    } else {
        format!(
            "runs from {} on, every {} {}: this job's own offset, so jobs on one interval do not all start at once",
            local.format("%H:%M:%S%.3f"),
            interval.every,
            interval.unit.as_str()
        )
    }
}

/// A run as listed in a job's panel.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub id: i64,
    #[serde(skip)]
    pub job_id: i64,
    pub status: RunStatus,
    #[serde(skip)]
    pub status_label: String,
    pub started: ShownTime,
    pub scheduled_for: ShownTime,
    pub finished: Option<ShownTime>,
    /// "12 s", or "running for 12 s".
    pub duration: String,
    pub trigger: Trigger,
    /// Who asked for a manual run, when known.
    pub requester: Option<String>,
    /// The values of the job's parameters the run got (`spec.parameters`); `{}` for none.
    pub parameters: jtp_crds::ParameterValues,
    /// 1 for a slot's first run, 2 for its first retry (`spec.retries`), and so on.
    pub attempt: i32,
    pub exit_code: Option<i32>,
    /// Size of the output as produced.
    pub output_bytes: i64,
    /// Bytes the cap cut from the middle (0: the output is whole).
    pub output_truncated_bytes: i64,
    pub kubernetes_job: Option<String>,
}

impl RunView {
    /// The view of a run, its instants in `tz`, a run in flight timed up to `now`.
    pub fn from_summary(run: RunSummary, tz: chrono_tz::Tz, now: DateTime<Utc>) -> Self {
        let show = |t| timefmt::show_at(t, tz, Precision::Seconds, now);
        let duration = match run.finished_at {
            Some(end) => timefmt::duration(run.run_time, end),
            None => format!("running for {}", timefmt::duration(run.run_time, now)),
        };
        let status_label = if run.status == RunStatus::Running {
            "RUNNING…".to_owned()
        } else {
            run.status.as_str().to_owned()
        };
        Self {
            id: run.id,
            job_id: run.job_id,
            status: run.status,
            status_label,
            started: show(run.run_time),
            scheduled_for: show(run.scheduled_for),
            finished: run.finished_at.map(show),
            duration,
            trigger: run.trigger,
            requester: run.requester,
            parameters: run.parameters,
            attempt: run.attempt,
            exit_code: run.exit_code,
            output_bytes: run.output_bytes,
            output_truncated_bytes: run.output_truncated,
            kubernetes_job: run.k8s_job_name,
        }
    }
}

/// Who asked for a manual run, as a run's Trigger cell shows it: a ServiceAccount
/// (`system:serviceaccount:NS:NAME`) as `NS/NAME`, marked as one; anyone else by their name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requester<'a> {
    /// The ServiceAccount's namespace; `None` for a user.
    pub namespace: Option<&'a str>,
    /// The ServiceAccount's name, or the user's whole name.
    pub name: &'a str,
}

impl RunView {
    /// Who asked, short enough for a narrow column (the cell's title keeps the whole name).
    pub fn requester_shown(&self) -> Option<Requester<'_>> {
        self.requester.as_deref().map(Requester::of)
    }
}

impl<'a> Requester<'a> {
    /// The parts of a recorded requester.
    pub fn of(who: &'a str) -> Self {
        let account = who
            .strip_prefix(crate::backend::SERVICE_ACCOUNT_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .filter(|(namespace, name)| !namespace.is_empty() && !name.is_empty() && !name.contains(':'));
        match account {
            Some((namespace, name)) => Self {
                namespace: Some(namespace),
                name,
            },
            None => Self {
                namespace: None,
                name: who,
            },
        }
    }
}

/// A run of the runs view, with its job (which may be deleted).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    pub namespace: String,
    pub job: String,
    pub time_zone: String,
    /// The job was deleted; its runs stay.
    pub job_deleted: bool,
    /// Where the searched text (`q`) appears in the output; only when searching.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<SnippetView>,
    #[serde(flatten)]
    pub run: RunView,
}

/// A piece of a run's output around a search match: the text before it, the match and the text
/// after, without colour codes, each escaped where shown.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SnippetView {
    pub before: String,
    pub matched: String,
    pub after: String,
    /// The output goes on before `before`.
    pub cut_before: bool,
}

impl SnippetView {
    fn new(snippet: jtp_store::RunSnippet, text: &str) -> Self {
        let chars: Vec<char> = snippet.text.chars().collect();
        let (start, len) = match snippet.match_at {
            Some(at) => (at.min(chars.len()), text.chars().count()),
            None => (0, 0),
        };
        let end = (start + len).min(chars.len());
        let text = |part: &[char]| crate::ansi::strip(&part.iter().collect::<String>());
        Self {
            before: text(&chars[..start]),
            matched: text(&chars[start..end]),
            after: text(&chars[end..]),
            cut_before: snippet.cut_before,
        }
    }
}

impl RunRow {
    fn from_item(item: RunListItem, zone: DisplayZone, now: DateTime<Utc>) -> Self {
        let tz = zone.for_job(&item.job_timezone);
        Self {
            run: RunView::from_summary(item.run, tz, now),
            namespace: item.job_namespace,
            job: item.job_name,
            time_zone: item.job_timezone,
            job_deleted: item.job_deleted,
            snippet: None,
        }
    }
}

/// One run with its output and its job (deleted or not).
#[derive(Clone, Debug)]
pub struct RunDetail {
    pub job: Job,
    pub run: RunView,
    pub output: String,
}

/// A cursor as links carry it: `MICROS_ID` (the run's start in microseconds since the epoch and
/// its id).
pub fn encode_cursor(cursor: RunCursor) -> String {
    format!("{}_{}", cursor.run_time.timestamp_micros(), cursor.id)
}

/// Reads a cursor of [`encode_cursor`]; `field` names the parameter in the error.
pub fn parse_cursor(field: &str, text: &str) -> Result<RunCursor> {
    let bad = || {
        AppError::Invalid(vec![jtp_crds::FieldError::new(
            field,
            format!(
                "\"{text}\" is not a page cursor: use the value of a Newer/Older link (or the API's olderCursor/newerCursor)"
            ),
        )])
    };
    let (micros, id) = text.split_once('_').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let id: i64 = id.parse().map_err(|_| bad())?;
    let run_time = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok(RunCursor { run_time, id })
}

/// The filters of the runs view, as the query string carries them (all text, so a bad value is
/// an error naming the parameter rather than a bare 400).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct RunQuery {
    /// `SUCCESS`, `FAILURE`, `ERROR`, `RUNNING`, or empty for any.
    #[serde(default)]
    pub status: String,
    /// `schedule`, `manual`, or empty for either.
    #[serde(default)]
    pub trigger: String,
    /// A job's exact name (deleted jobs' runs included).
    #[serde(default)]
    pub job: String,
    #[serde(default)]
    pub namespace: String,
    /// Started at or after: RFC3339, or a date/time in the display zone (`2026-11-30`, `2026-11-30T09:00`).
    #[serde(default)]
    pub since: String,
    /// Started before (same forms as `since`).
    #[serde(default)]
    pub until: String,
    /// A cursor: the page of older runs after it.
    #[serde(default)]
    pub before: String,
    /// A cursor: the page of newer runs before it.
    #[serde(default)]
    pub after: String,
    #[serde(default)]
    pub limit: String,
    /// Text the output contains (case-insensitive, literal; 3 to 200 characters).
    #[serde(default)]
    pub q: String,
}

/// The trigger filter's values.
pub const TRIGGERS: [&str; 2] = ["schedule", "manual"];

impl RunQuery {
    /// The store's filter, or every problem with the parameters at once.
    pub fn to_filter(&self, zone: chrono_tz::Tz, default_limit: u32) -> Result<RunFilter> {
        let mut errors = Vec::new();
        let mut filter = RunFilter {
            limit: i64::from(default_limit),
            ..RunFilter::default()
        };
        match self.status.trim() {
            "" | "any" => {}
            s => match RunStatus::parse(&s.to_ascii_uppercase()) {
                Some(status) => filter.status = Some(status),
                None => errors.push(jtp_crds::FieldError::new(
                    "status",
                    format!("\"{s}\" is not a run status: use SUCCESS, FAILURE, ERROR or RUNNING"),
                )),
            },
        }
        match self.trigger.trim() {
            "" | "any" => {}
            t => match Trigger::parse(&t.to_ascii_lowercase()) {
                Some(trigger) => filter.trigger = Some(trigger),
                None => errors.push(jtp_crds::FieldError::new(
                    "trigger",
                    format!("\"{t}\" is not a trigger: use schedule or manual"),
                )),
            },
        }
        filter.job_name = Some(self.job.trim().to_owned()).filter(|s| !s.is_empty());
        filter.namespace = Some(self.namespace.trim().to_owned()).filter(|s| !s.is_empty());
        for (field, text, slot) in [
            ("since", &self.since, &mut filter.since),
            ("until", &self.until, &mut filter.until),
        ] {
            match parse_instant(field, text.trim(), zone) {
                Ok(at) => *slot = at,
                Err(e) => errors.push(e),
            }
        }
        for (field, text, slot) in [
            ("before", &self.before, &mut filter.before),
            ("after", &self.after, &mut filter.after),
        ] {
            if !text.trim().is_empty() {
                match parse_cursor(field, text.trim()) {
                    Ok(c) => *slot = Some(c),
                    Err(AppError::Invalid(mut e)) => errors.append(&mut e),
                    Err(e) => return Err(e),
                }
            }
        }
        let q = self.q.trim();
        if !q.is_empty() {
            let chars = q.chars().count();
            if (jtp_store::MIN_SEARCH_CHARS..=jtp_store::MAX_SEARCH_CHARS).contains(&chars)
                && !q.contains('\0')
            {
                filter.text = Some(q.to_owned());
            } else {
                errors.push(jtp_crds::FieldError::new(
                    "q",
                    format!(
                        "search for {} to {} characters of the output",
                        jtp_store::MIN_SEARCH_CHARS,
                        jtp_store::MAX_SEARCH_CHARS
                    ),
                ));
            }
        }
        if !self.limit.trim().is_empty() {
            match self.limit.trim().parse::<i64>() {
                Ok(n) if (1..=500).contains(&n) => filter.limit = n,
                _ => errors.push(jtp_crds::FieldError::new(
                    "limit",
                    format!(
                        "\"{}\" is not a page size: use a whole number from 1 to 500",
                        self.limit
                    ),
                )),
            }
        }
        if errors.is_empty() {
            Ok(filter)
        } else {
            Err(AppError::Invalid(errors))
        }
    }
}

/// An instant of a `since`/`until` filter: RFC3339, or a wall date/time in `zone`.
fn parse_instant(
    field: &str,
    text: &str,
    zone: chrono_tz::Tz,
) -> Result<Option<DateTime<Utc>>, jtp_crds::FieldError> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    let wall = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M"))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        });
    wall.and_then(|w| zone.from_local_datetime(&w).earliest())
        .map(|at| Some(at.with_timezone(&Utc)))
        .ok_or_else(|| {
            jtp_crds::FieldError::new(
                field,
                format!(
                    "\"{text}\" is not a time: write 2026-11-30, 2026-11-30T09:00 (in {}) or RFC3339",
                    zone.name()
                ),
            )
        })
}

/// One page of the runs view: the rows and the cursors of its neighbours.
pub struct RunsPage {
    pub rows: Vec<RunRow>,
    pub older: Option<String>,
    pub newer: Option<String>,
    /// The search stopped after reading [`jtp_store::SCAN_BUDGET`] runs before it filled the
    /// page; the cursor in the direction read searches on.
    pub searched_part: bool,
}

/// A page of runs across jobs, limited to `namespaces` (`None`: all).
pub(crate) async fn list_all_runs(
    state: &AppState,
    mut filter: RunFilter,
    namespaces: Option<Vec<String>>,
    zone: DisplayZone,
) -> Result<RunsPage> {
    filter.namespaces = namespaces;
    let page = state.store().list_all_runs(&filter).await?;
    let now = Utc::now();
    let mut rows: Vec<RunRow> = page
        .items
        .into_iter()
        .map(|item| RunRow::from_item(item, zone, now))
        .collect();
    if let Some(text) = &filter.text {
        let ids: Vec<i64> = rows.iter().map(|r| r.run.id).collect();
        let mut snippets = state.store().search_snippets(&ids, text).await?;
        for row in &mut rows {
            row.snippet = snippets.remove(&row.run.id).map(|s| SnippetView::new(s, text));
        }
    }
    Ok(RunsPage {
        rows,
        older: page.older.map(encode_cursor),
        newer: page.newer.map(encode_cursor),
        searched_part: page.searched_to.is_some(),
    })
}

/// The filters of the jobs list, as the query string carries them.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct JobQuery {
    #[serde(default)]
    pub name: String,
    /// `SUCCESS`, `FAILURE`, `ERROR` (the last run's status), or empty for any.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub namespace: String,
    /// `active`, `suspended`, or empty for either.
    #[serde(default)]
    pub state: String,
    /// Text, so that `?page=abc` is an error naming the parameter.
    #[serde(default)]
    pub page: Option<String>,
    #[serde(default)]
    pub per_page: Option<String>,
    /// The column the list is sorted by: `next` (default), `name`, `last` or `status`.
    #[serde(default)]
    pub sort: String,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    pub dir: String,
}

/// The `sort` values of the jobs list, with the store's key.
pub const SORTS: [(&str, JobSort); 4] = [
    ("next", JobSort::NextRun),
    ("name", JobSort::Name),
    ("last", JobSort::LastRun),
    ("status", JobSort::Status),
];

impl JobQuery {
    /// The order asked for (`sort`, `dir`); an unknown value is an error naming the parameter.
    pub fn order(&self) -> Result<JobOrder> {
        let mut errors = Vec::new();
        let by = match self.sort.trim() {
            "" => JobSort::NextRun,
            s => match SORTS.iter().find(|(name, _)| *name == s) {
                Some((_, by)) => *by,
                None => {
                    errors.push(jtp_crds::FieldError::new(
                        "sort",
                        format!("\"{s}\" is not a column to sort by: use next, name, last or status"),
                    ));
                    JobSort::NextRun
                }
            },
        };
        let descending = match self.dir.trim() {
            "" | "asc" => false,
            "desc" => true,
            d => {
                errors.push(jtp_crds::FieldError::new(
                    "dir",
                    format!("\"{d}\" is not a sort direction: use asc or desc"),
                ));
                false
            }
        };
        if errors.is_empty() {
            Ok(JobOrder { by, descending })
        } else {
            Err(AppError::Invalid(errors))
        }
    }

    pub fn last_status(&self) -> Result<Option<RunStatus>> {
        match self.status.as_str() {
            "" | "any" => Ok(None),
            s => match RunStatus::parse(&s.to_ascii_uppercase()) {
                Some(status) if status != RunStatus::Running => Ok(Some(status)),
                _ => Err(AppError::Invalid(vec![jtp_crds::FieldError::new(
                    "status",
                    format!("\"{s}\" is not a status filter: use SUCCESS, FAILURE or ERROR"),
                )])),
            },
        }
    }

    /// `Some(true)` for active jobs only, `Some(false)` for suspended ones, `None` for both.
    pub fn active(&self) -> Result<Option<bool>> {
        match self.state.to_ascii_lowercase().as_str() {
            "" | "any" => Ok(None),
            STATE_ACTIVE => Ok(Some(true)),
            STATE_SUSPENDED => Ok(Some(false)),
            _ => Err(AppError::Invalid(vec![jtp_crds::FieldError::new(
                "state",
                format!(
                    "\"{}\" is not a state filter: use {STATE_ACTIVE} or {STATE_SUSPENDED}",
                    self.state
                ),
            )])),
        }
    }

    /// The page asked for (1 when none); not a whole number from 1 is an error.
    pub fn page(&self) -> Result<u32> {
        number("page", self.page.as_deref(), u32::MAX).map(|p| p.unwrap_or(1))
    }

    /// The page size asked for (`default` when none), at most 500.
    pub fn per_page(&self, default: u32) -> Result<u32> {
        number("per_page", self.per_page.as_deref(), 500).map(|p| p.unwrap_or(default).clamp(1, 500))
    }

    /// Checks every filter and the paging, and reports every problem at once, so a typo is a 422
    /// rather than a silently wider list.
    pub fn check(&self) -> Result<()> {
        let mut errors = Vec::new();
        let checks = [
            self.last_status().map(|_| ()),
            self.active().map(|_| ()),
            self.page().map(|_| ()),
            self.per_page(1).map(|_| ()),
            self.order().map(|_| ()),
        ];
        for check in checks {
            match check {
                Ok(()) => {}
                Err(AppError::Invalid(mut e)) => errors.append(&mut e),
                Err(e) => return Err(e),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(AppError::Invalid(errors))
        }
    }
}

/// An optional whole number from 1 to `max` named `field`.
fn number(field: &str, text: Option<&str>, max: u32) -> Result<Option<u32>> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    text.parse::<u32>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .map(Some)
        .ok_or_else(|| {
            let range = if max == u32::MAX {
                "from 1 on".to_owned()
            } else {
                format!("from 1 to {max}")
            };
            AppError::Invalid(vec![jtp_crds::FieldError::new(
                field,
                format!(
                    "\"{text}\" is not a {}: use a whole number {range}",
                    field.replace('_', " ")
                ),
            )])
        })
}

/// The `state` filter's value for jobs that are not suspended.
pub const STATE_ACTIVE: &str = "active";
/// The `state` filter's value for suspended jobs.
pub const STATE_SUSPENDED: &str = "suspended";

/// One page of jobs, limited to `namespaces` (`None`: all).
pub(crate) async fn list_jobs(
    state: &AppState,
    query: &JobQuery,
    namespaces: Option<&[String]>,
    page: u32,
    per_page: u32,
    zone: DisplayZone,
) -> Result<(Vec<JobView>, i64)> {
    let limit = i64::from(per_page.clamp(1, 500));
    let offset = i64::from(page.max(1) - 1) * limit;
    let filter = |namespace: Option<String>, limit: i64, offset: i64| JobFilter {
        name_contains: Some(query.name.trim().to_owned()).filter(|s| !s.is_empty()),
        namespace,
        last_status: query.last_status().ok().flatten(),
        active: query.active().ok().flatten(),
        order: query.order().unwrap_or_default(),
        limit,
        offset,
    };
    let order = query.order().unwrap_or_default();
    let wanted = Some(query.namespace.trim().to_owned()).filter(|s| !s.is_empty());
    let store = state.store();
    match (namespaces, wanted) {
        (None, wanted) => {
            let page = store.list_jobs(&filter(wanted, limit, offset)).await?;
            Ok((
                page.items
                    .into_iter()
                    .map(|j| JobView::cached(state, j, zone))
                    .collect(),
                page.total,
            ))
        }
        (Some(allowed), Some(wanted)) => {
            if !allowed.contains(&wanted) {
                return Ok((Vec::new(), 0));
            }
            let page = store.list_jobs(&filter(Some(wanted), limit, offset)).await?;
            Ok((
                page.items
                    .into_iter()
                    .map(|j| JobView::cached(state, j, zone))
                    .collect(),
                page.total,
            ))
        }
        (Some(allowed), None) => {
            // The user may list only some namespaces: one query per namespace, merged in the
            // list's order (the store's, in memory).
            let mut all = Vec::new();
            let mut total = 0;
            for ns in allowed {
                let page = store
                    .list_jobs(&filter(Some(ns.clone()), offset + limit, 0))
                    .await?;
                total += page.total;
                all.extend(page.items);
            }
            all.sort_by(|a, b| order.compare(a, b));
            let items = all
                .into_iter()
                .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                .take(usize::try_from(limit).unwrap_or(0))
                .map(|j| JobView::cached(state, j, zone))
                .collect();
            Ok((items, total))
        }
    }
}

/// The live job `namespace/name`, if any.
pub(crate) async fn get_job(state: &AppState, namespace: &str, name: &str) -> Result<Option<Job>> {
    match state.store().get_job_by_name(namespace, name).await {
        Ok(job) => Ok(Some(job)),
        Err(jtp_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The live job `namespace/name`, or the 404 naming it.
pub(crate) async fn require_job(state: &AppState, namespace: &str, name: &str) -> Result<Job> {
    get_job(state, namespace, name)
        .await?
        .ok_or_else(|| crate::backend::job_not_found(namespace, name))
}

/// The live job `namespace/name` as the pages and the API show it, its health included (the one
/// place a job's view is built from its row); the 404 naming it when there is none.
pub(crate) async fn job_view(
    state: &AppState,
    namespace: &str,
    name: &str,
    zone: DisplayZone,
) -> Result<JobView> {
    let job = require_job(state, namespace, name).await?;
    let mut view = JobView::cached(state, job, zone);
    attach_health(state, std::slice::from_mut(&mut view), zone).await?;
    Ok(view)
}

/// A page of the runs of job `job_id`, newest first, from a cursor.
pub(crate) async fn list_runs(
    state: &AppState,
    job_id: i64,
    limit: u32,
    before: Option<RunCursor>,
    after: Option<RunCursor>,
    zone: DisplayZone,
) -> Result<(Vec<RunView>, Option<String>, Option<String>)> {
    let filter = RunFilter {
        job_id: Some(job_id),
        before,
        after,
        limit: i64::from(limit.clamp(1, 1000)),
        ..RunFilter::default()
    };
    let page = list_all_runs(state, filter, None, zone).await?;
    Ok((
        page.rows.into_iter().map(|r| r.run).collect(),
        page.older,
        page.newer,
    ))
}

/// Parses a run id from a path: a word is a 404 naming it, not a bare 400.
pub fn run_id(text: &str) -> Result<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| AppError::NotFound(format!("no run \"{text}\": runs are numbered 1, 2, 3…")))
}

/// Run `id` with its output and job (deleted or not), if any.
pub(crate) async fn get_run(state: &AppState, id: i64, zone: DisplayZone) -> Result<Option<RunDetail>> {
    let run = match state.store().get_run(id).await {
        Ok(run) => run,
        Err(jtp_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let job = state.store().get_job(run.summary.job_id).await?;
    let view = RunView::from_summary(run.summary, zone.for_job(&job.timezone), Utc::now());
    Ok(Some(RunDetail {
        job,
        run: view,
        output: run.log_output,
    }))
}

/// Run `id` as `caller` may see it: a run of a namespace they may not read is the same 404 as a
/// run that does not exist ([`Caller::require_run`]).
pub(crate) async fn readable_run(
    state: &AppState,
    caller: &crate::auth::Caller,
    id: i64,
    zone: DisplayZone,
) -> Result<RunDetail> {
    let detail = get_run(state, id, zone)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no run #{id}")))?;
    caller.require_run(state, &detail.job.namespace, id).await?;
    Ok(detail)
}

fn next_run(
    namespace: &str,
    name: &str,
    spec: &ScheduledJobSpec,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    let compiled = jtp_crds::validate(JobId { namespace, name }, spec)?;
    Ok(compiled.next_after(now))
}

/// Standalone: a new row.
pub(crate) async fn insert_job(
    state: &AppState,
    namespace: &str,
    name: &str,
    spec: &ScheduledJobSpec,
) -> Result<()> {
    let input = JobInput {
        name,
        namespace,
        uid: None,
        spec,
        next_run: next_run(namespace, name, spec, Utc::now())?,
    };
    state.store().create_job(&input).await?;
    Ok(())
}

/// Standalone: the row rewritten; its next run recomputed from now when the edit changed when it
/// runs (the run policy's one rule for edits), else kept.
pub(crate) async fn update_job(
    state: &AppState,
    namespace: &str,
    name: &str,
    spec: &ScheduledJobSpec,
) -> Result<()> {
    let job = require_job(state, namespace, name).await?;
    let id = JobId { namespace, name };
    let schedule = jtp_crds::validate(id, spec)?;
    let old = Timing::of_spec(id, &job.spec);
    let edit = after_edit(old.as_ref(), &Timing::of(&schedule, spec));
    let input = JobInput {
        name,
        namespace,
        uid: job.uid.as_deref(),
        spec,
        next_run: next_run_after_edit(edit, job.next_run, &schedule, spec, Utc::now()),
    };
    state.store().update_job(job.id, &input).await?;
    Ok(())
}

/// Standalone: the row soft-deleted; its runs stay.
pub(crate) async fn delete_job(state: &AppState, namespace: &str, name: &str) -> Result<()> {
    let job = require_job(state, namespace, name).await?;
    Ok(state.store().delete_job(job.id).await?)
}

/// Standalone: the job made due now, asked for by `requester`, with `parameters`.
pub(crate) async fn request_run_now(
    state: &AppState,
    namespace: &str,
    name: &str,
    now: DateTime<Utc>,
    requester: &str,
    parameters: &jtp_crds::ParameterValues,
) -> Result<()> {
    let job = require_job(state, namespace, name).await?;
    state
        .store()
        .request_run_now(job.id, now, requester, parameters)
        .await?;
    Ok(())
}

impl AppState {
    /// Namespaces that hold jobs the portal may show (Kubernetes mode: the cluster's namespaces,
    /// listed with the portal's identity; standalone: the one namespace).
    pub(crate) async fn store_namespaces(&self) -> Result<Vec<String>> {
        match &self.inner.mode {
            Mode::Standalone { .. } => Ok(vec![self.config().standalone_namespace.clone()]),
            Mode::Kubernetes { client, .. } => {
                let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
                let list = api.list_metadata(&kube::api::ListParams::default()).await?;
                Ok(list.items.into_iter().filter_map(|ns| ns.metadata.name).collect())
            }
        }
    }
}

/// One incident of a job and where it went, as the job's view and
/// `GET /api/v1/jobs/{namespace}/{name}/alerts` show it. Receivers appear by name only: their URLs
/// are the scheduler's secrets and are never stored.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    /// `failure`, `recovery`, `skipped` or `overdue`.
    pub kind: &'static str,
    pub occurred: ShownTime,
    pub run_id: Option<i64>,
    /// Failed runs in a row (a recovery: how many there were).
    pub failures: i64,
    pub detail: String,
    pub deliveries: Vec<DeliveryView>,
}

/// One receiver of an incident and every attempt to reach it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub receiver: String,
    pub format: String,
    /// `pending`, `delivered` or `failed`.
    pub state: &'static str,
    pub attempts: Vec<AttemptView>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub attempt: i64,
    pub started: ShownTime,
    pub duration_ms: i64,
    pub http_status: Option<i64>,
    pub error: Option<String>,
}

/// How many incidents a job's view lists.
pub const ALERTS_SHOWN: i64 = 10;

/// Job `job_id`'s newest incidents, their instants in zone `tz`.
pub async fn job_alerts(state: &AppState, job_id: i64, tz: chrono_tz::Tz) -> Result<Vec<AlertView>> {
    let records = state.store().job_alerts(job_id, ALERTS_SHOWN).await?;
    Ok(records
        .into_iter()
        .map(|r| AlertView {
            kind: r.event.kind.as_str(),
            occurred: timefmt::show_precise(r.event.occurred_at, tz),
            run_id: r.event.run_id,
            failures: r.event.failures,
            detail: r.event.detail,
            deliveries: r
                .deliveries
                .into_iter()
                .map(|(d, attempts)| DeliveryView {
                    receiver: d.receiver,
                    format: d.format,
                    state: d.state.as_str(),
                    attempts: attempts
                        .into_iter()
                        .map(|a| AttemptView {
                            attempt: a.attempt,
                            started: timefmt::show_precise(a.started_at, tz),
                            duration_ms: a.duration_ms,
                            http_status: a.http_status,
                            error: a.error,
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::Requester;

    #[test]
    fn a_service_account_requester_reads_as_its_namespace_and_name() {
        let account = Requester::of("system:serviceaccount:team-a:runner");
        assert_eq!((account.namespace, account.name), (Some("team-a"), "runner"));
        for who in [
            "alice",
            "local",
            "oidc:alice@example.com",
            "system:serviceaccount:team-a",
            "system:serviceaccount::runner",
            "system:serviceaccount:team-a:",
            "system:serviceaccount:a:b:c",
        ] {
            assert_eq!(
                Requester::of(who),
                Requester {
                    namespace: None,
                    name: who
                },
                "{who}"
            );
        }
    }
}
