//! Reads (both modes) and standalone writes through the store, and the views the pages and the API
//! show: every instant already rendered in the job's zone, with UTC beside it.

use crate::error::{AppError, Result};
use crate::timefmt::{self, ShownTime};
use crate::{AppState, Mode};
use chrono::{DateTime, Utc};
use jtp_crds::policy::{Timing, after_edit, next_run_after_edit};
use jtp_crds::{CompiledSchedule, JobId, RunStatus, ScheduledJobSpec, Trigger};
use jtp_store::{Job, JobFilter, JobInput, RunSummary};
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
    pub last_run: Option<ShownTime>,
    pub last_status: Option<RunStatus>,
    /// Not suspended.
    pub active: bool,
    pub run_now_requested: Option<ShownTime>,
    /// Standalone: the jobs-folder file the job comes from (`jobs.yaml`); a portal edit lasts
    /// until that job's document in the file changes.
    pub source_file: Option<String>,
    pub spec: ScheduledJobSpec,
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
    /// The view of a stored job.
    pub fn from_job(job: Job) -> Self {
        let described = describe(&job);
        Self::with_description(job, described)
    }

    pub(crate) fn cached(state: &AppState, job: Job) -> Self {
        let described = state.inner.descriptions.describe(&job);
        Self::with_description(job, described)
    }

    fn with_description(job: Job, (schedule, manual): (String, bool)) -> Self {
        let tz = timefmt::zone(&job.timezone);
        let next_run_dst = job.next_run.and_then(|t| {
            let id = JobId {
                namespace: &job.namespace,
                name: &job.name,
            };
            let slot = CompiledSchedule::new(id, &job.spec)
                .ok()?
                .next_slot(t - chrono::Duration::milliseconds(1))?;
            (slot.at == t).then(|| slot.dst_note()).flatten()
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
            last_run: job.last_run.map(|t| timefmt::show(t, tz)),
            last_status: job.last_status,
            active: job.is_active,
            run_now_requested: job.run_now_requested_at.map(|t| timefmt::show(t, tz)),
            source_file: job
                .source
                .as_deref()
                .and_then(|s| s.strip_prefix("file:"))
                .map(str::to_owned),
            spec: job.spec,
        }
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
    pub exit_code: Option<i32>,
    /// Size of the output as produced.
    pub output_bytes: i64,
    /// Bytes the cap cut from the middle (0: the output is whole).
    pub output_truncated_bytes: i64,
    pub kubernetes_job: Option<String>,
}

impl RunView {
    pub fn from_summary(run: RunSummary, time_zone: &str, now: DateTime<Utc>) -> Self {
        let tz = timefmt::zone(time_zone);
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
            started: timefmt::show(run.run_time, tz),
            scheduled_for: timefmt::show(run.scheduled_for, tz),
            finished: run.finished_at.map(|t| timefmt::show(t, tz)),
            duration,
            trigger: run.trigger,
            exit_code: run.exit_code,
            output_bytes: run.output_bytes,
            output_truncated_bytes: run.output_truncated,
            kubernetes_job: run.k8s_job_name,
        }
    }
}

/// One run with its output and its job.
#[derive(Clone, Debug)]
pub struct RunDetail {
    pub job: Job,
    pub run: RunView,
    pub output: String,
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
    #[serde(default)]
    pub page: Option<u32>,
    #[serde(default)]
    pub per_page: Option<u32>,
}

impl JobQuery {
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

    /// Checks every filter, so a typo is a 422 rather than a silently wider list.
    pub fn check(&self) -> Result<()> {
        self.last_status()?;
        self.active()?;
        Ok(())
    }
}

/// The `state` filter's value for jobs that are not suspended.
pub const STATE_ACTIVE: &str = "active";
/// The `state` filter's value for suspended jobs.
pub const STATE_SUSPENDED: &str = "suspended";

/// The store's error, with "not found" as the portal's 404 and duplicates as 409.
pub(crate) fn store_err(e: jtp_store::Error) -> AppError {
    match e {
        jtp_store::Error::NotFound { what } => AppError::NotFound(format!("{what} not found")),
        jtp_store::Error::AlreadyExists { what } => AppError::Conflict(format!("{what} already exists")),
        other => AppError::Store(other),
    }
}

/// One page of jobs, limited to `namespaces` (`None`: all).
pub(crate) async fn list_jobs(
    state: &AppState,
    query: &JobQuery,
    namespaces: Option<&[String]>,
    page: u32,
    per_page: u32,
) -> Result<(Vec<JobView>, i64)> {
    let limit = i64::from(per_page.clamp(1, 500));
    let offset = i64::from(page.max(1) - 1) * limit;
    let filter = |namespace: Option<String>, limit: i64, offset: i64| JobFilter {
        name_contains: Some(query.name.trim().to_owned()).filter(|s| !s.is_empty()),
        namespace,
        last_status: query.last_status().ok().flatten(),
        active: query.active().ok().flatten(),
        limit,
        offset,
    };
    let wanted = Some(query.namespace.trim().to_owned()).filter(|s| !s.is_empty());
    let store = state.store();
    match (namespaces, wanted) {
        (None, wanted) => {
            let page = store
                .list_jobs(&filter(wanted, limit, offset))
                .await
                .map_err(store_err)?;
            Ok((
                page.items
                    .into_iter()
                    .map(|j| JobView::cached(state, j))
                    .collect(),
                page.total,
            ))
        }
        (Some(allowed), Some(wanted)) => {
            if !allowed.contains(&wanted) {
                return Ok((Vec::new(), 0));
            }
            let page = store
                .list_jobs(&filter(Some(wanted), limit, offset))
                .await
                .map_err(store_err)?;
            Ok((
                page.items
                    .into_iter()
                    .map(|j| JobView::cached(state, j))
                    .collect(),
                page.total,
            ))
        }
        (Some(allowed), None) => {
            // The user may list only some namespaces: one query per namespace, merged in the
            // jobs page's order (next run, NULLs last, then name).
            let mut all = Vec::new();
            let mut total = 0;
            for ns in allowed {
                let page = store
                    .list_jobs(&filter(Some(ns.clone()), offset + limit, 0))
                    .await
                    .map_err(store_err)?;
                total += page.total;
                all.extend(page.items);
            }
            all.sort_by(|a, b| {
                (a.next_run.is_none(), a.next_run, &a.name, a.id).cmp(&(
                    b.next_run.is_none(),
                    b.next_run,
                    &b.name,
                    b.id,
                ))
            });
            let items = all
                .into_iter()
                .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                .take(usize::try_from(limit).unwrap_or(0))
                .map(|j| JobView::cached(state, j))
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
        Err(e) => Err(store_err(e)),
    }
}

/// The job's runs, newest first.
pub(crate) async fn list_runs(state: &AppState, job: &Job, limit: u32) -> Result<Vec<RunView>> {
    let now = Utc::now();
    let page = state
        .store()
        .list_runs(job.id, i64::from(limit.clamp(1, 1000)), 0)
        .await
        .map_err(store_err)?;
    Ok(page
        .items
        .into_iter()
        .map(|r| RunView::from_summary(r, &job.timezone, now))
        .collect())
}

/// Run `id` with its output and job, if any.
pub(crate) async fn get_run(state: &AppState, id: i64) -> Result<Option<RunDetail>> {
    let run = match state.store().get_run(id).await {
        Ok(run) => run,
        Err(jtp_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(store_err(e)),
    };
    let job = state
        .store()
        .get_job(run.summary.job_id)
        .await
        .map_err(store_err)?;
    let view = RunView::from_summary(run.summary, &job.timezone, Utc::now());
    Ok(Some(RunDetail {
        job,
        run: view,
        output: run.log_output,
    }))
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
    state.store().create_job(&input).await.map_err(store_err)?;
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
    let job = get_job(state, namespace, name)
        .await?
        .ok_or_else(|| crate::backend::job_not_found(namespace, name))?;
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
    state
        .store()
        .update_job(job.id, &input)
        .await
        .map_err(store_err)?;
    Ok(())
}

/// Standalone: the row soft-deleted; its runs stay.
pub(crate) async fn delete_job(state: &AppState, namespace: &str, name: &str) -> Result<()> {
    let job = get_job(state, namespace, name)
        .await?
        .ok_or_else(|| crate::backend::job_not_found(namespace, name))?;
    state.store().delete_job(job.id).await.map_err(store_err)
}

/// Standalone: the job made due now.
pub(crate) async fn request_run_now(
    state: &AppState,
    namespace: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let job = get_job(state, namespace, name)
        .await?
        .ok_or_else(|| crate::backend::job_not_found(namespace, name))?;
    state
        .store()
        .request_run_now(job.id, now)
        .await
        .map_err(store_err)?;
    Ok(())
}

impl AppState {
    /// Namespaces that hold jobs the portal may show (Kubernetes mode: the cluster's namespaces,
    /// listed with the portal's identity; standalone: the one namespace).
    pub(crate) async fn store_namespaces(&self) -> Result<Vec<String>> {
        match &self.inner.mode {
            Mode::Standalone { .. } => Ok(vec![self.config().standalone_namespace.clone()]),
            Mode::Kubernetes { client } => {
                let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
                let list = api.list_metadata(&kube::api::ListParams::default()).await?;
                Ok(list.items.into_iter().filter_map(|ns| ns.metadata.name).collect())
            }
        }
    }
}
