//! `scheduled_jobs`: writes keyed by UID (Kubernetes mode) or by id (standalone), reads, soft
//! delete, the jobs page and what is queued.

use crate::model::{Job, JobFilter, JobInput, JobOrder, Page, Stats};
use crate::row::job_columns;
use crate::time::{Ts, ts};
use crate::{BackendKind, Error, Result, Store, begin_write, with_pool};
use chrono::{DateTime, Utc};
use jtp_crds::ScheduledJobSpec;

/// The columns a job write fills, `$2`…`$21` in this order (`$1` is the id or UID).
#[derive(Debug)]
struct JobColumns {
    name: String,
    namespace: String,
    description: Option<String>,
    schedule_type: &'static str,
    interval_value: Option<i64>,
    interval_unit: Option<&'static str>,
    minute: Option<i32>,
    at_time: Option<String>,
    weekdays: Option<String>,
    day_of_month: Option<i32>,
    cron_expr: Option<String>,
    timezone: String,
    script: String,
    spec: String,
    is_active: bool,
    next_run: Option<Ts>,
    now: Ts,
    /// `spec.retention` is set; its limits follow (NULL: none of that kind).
    retention_set: bool,
    retention_max_age_seconds: Option<i64>,
    retention_keep_last: Option<i64>,
    /// `spec.expectSuccessWithin` in seconds (the dead-man's switch).
    expect_success_within_seconds: Option<i64>,
}

impl JobColumns {
    fn new(input: &JobInput<'_>, now: DateTime<Utc>) -> Result<Self> {
        let spec = input.spec;
        if input.name.trim().is_empty() {
            return Err(Error::invalid("a job needs a name"));
        }
        if spec.schedule.forms_set() != 1 {
            return Err(Error::invalid("set exactly one schedule form"));
        }
        let schedule = &spec.schedule;
        let at_time = [
            schedule.daily.as_ref().map(|d| &d.at),
            schedule.weekly.as_ref().map(|w| &w.at),
            schedule.monthly.as_ref().map(|m| &m.at),
        ]
        .into_iter()
        .flatten()
        .next()
        .cloned();
        let json =
            serde_json::to_string(spec).map_err(|e| Error::invalid(format!("spec cannot be stored: {e}")))?;
        Ok(Self {
            name: input.name.to_owned(),
            namespace: if input.namespace.is_empty() {
                crate::DEFAULT_NAMESPACE
            } else {
                input.namespace
            }
            .to_owned(),
            description: spec.description.clone(),
            schedule_type: schedule.kind(),
            interval_value: schedule
                .interval
                .as_ref()
                .map(|i| i64::try_from(i.every).unwrap_or(i64::MAX)),
            interval_unit: schedule.interval.as_ref().map(|i| i.unit.as_str()),
            minute: schedule
                .hourly
                .as_ref()
                .map(|h| i32::try_from(h.minute).unwrap_or(i32::MAX)),
            at_time,
            weekdays: schedule
                .weekly
                .as_ref()
                .map(|w| w.days.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(",")),
            day_of_month: schedule
                .monthly
                .as_ref()
                .map(|m| i32::try_from(m.day).unwrap_or(i32::MAX)),
            cron_expr: schedule.cron.clone(),
            timezone: spec.time_zone.clone(),
            script: script_summary(spec),
            spec: json,
            is_active: !spec.suspend,
            next_run: if spec.suspend { None } else { ts(input.next_run) },
            now: Ts(now),
            retention_set: spec.retention.is_some(),
            retention_max_age_seconds: spec
                .retention
                .as_ref()
                .and_then(|r| r.max_age())
                .map(|age| age.num_seconds()),
            retention_keep_last: spec.retention.as_ref().and_then(|r| r.keep_last).map(i64::from),
            expect_success_within_seconds: spec.expected_success_within().map(|d| d.num_seconds()),
        })
    }
}

/// A readable line for the `script` column: the inline text, `configmap:NAME/KEY`, the command
/// joined by spaces, or the file path.
pub fn script_summary(spec: &ScheduledJobSpec) -> String {
    let script = &spec.script;
    if let Some(inline) = &script.inline {
        inline.clone()
    } else if let Some(cm) = &script.config_map {
        format!("configmap:{}/{}", cm.name, cm.key)
    } else if let Some(command) = &script.command {
        command.join(" ")
    } else {
        script.file.clone().unwrap_or_default()
    }
}

/// Binds `$2`…`$22` of a job write in [`JobColumns`]' order.
macro_rules! bind_job_columns {
    ($query:expr, $c:expr) => {
        $query
            .bind(&$c.name)
            .bind(&$c.namespace)
            .bind(&$c.description)
            .bind($c.schedule_type)
            .bind($c.interval_value)
            .bind($c.interval_unit)
            .bind($c.minute)
            .bind(&$c.at_time)
            .bind(&$c.weekdays)
            .bind($c.day_of_month)
            .bind(&$c.cron_expr)
            .bind(&$c.timezone)
            .bind(&$c.script)
            .bind(&$c.spec)
            .bind($c.is_active)
            .bind($c.next_run)
            .bind($c.now)
            .bind($c.retention_set)
            .bind($c.retention_max_age_seconds)
            .bind($c.retention_keep_last)
            .bind($c.expect_success_within_seconds)
    };
}

/// Inserts a job: `$1` is the uid, `$2`…`$22` as [`bind_job_columns`] binds them. A job that
/// expects successes has been expected to since it was written.
macro_rules! insert_job {
    () => {
        "INSERT INTO scheduled_jobs (uid, name, namespace, description, schedule_type, interval_value, \
         interval_unit, minute, at_time, weekdays, day_of_month, cron_expr, timezone, script, spec, \
         is_active, next_run, created_at, updated_at, retention_set, retention_max_age_seconds, \
         retention_keep_last, expect_success_within_seconds, expect_since) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18, \
         $19, $20, $21, $22, CASE WHEN $22 IS NULL THEN NULL ELSE $18 END)"
    };
}

const CREATE_JOB: &str = concat!(insert_job!(), " RETURNING ", job_columns!());

const UPSERT_JOB: &str = concat!(
    insert_job!(),
    " ON CONFLICT (uid) DO UPDATE SET name = excluded.name, namespace = excluded.namespace, \
     description = excluded.description, schedule_type = excluded.schedule_type, \
     interval_value = excluded.interval_value, interval_unit = excluded.interval_unit, \
     minute = excluded.minute, at_time = excluded.at_time, weekdays = excluded.weekdays, \
     day_of_month = excluded.day_of_month, cron_expr = excluded.cron_expr, timezone = excluded.timezone, \
     script = excluded.script, spec = excluded.spec, is_active = excluded.is_active, \
     next_run = excluded.next_run, deleted_at = NULL, updated_at = excluded.updated_at, \
     pause_note = CASE WHEN excluded.is_active THEN NULL ELSE scheduled_jobs.pause_note END, \
     retention_set = excluded.retention_set, retention_max_age_seconds = excluded.retention_max_age_seconds, \
     retention_keep_last = excluded.retention_keep_last, \
     expect_success_within_seconds = excluded.expect_success_within_seconds, \
     expect_since = CASE WHEN excluded.expect_success_within_seconds IS NULL THEN NULL \
                    ELSE COALESCE(scheduled_jobs.expect_since, excluded.expect_since) END \
     RETURNING ",
    job_columns!()
);

/// A pending Run Now keeps its `next_run` through an edit.
const UPDATE_JOB: &str = concat!(
    "UPDATE scheduled_jobs SET name = $2, namespace = $3, description = $4, schedule_type = $5, \
     interval_value = $6, interval_unit = $7, minute = $8, at_time = $9, weekdays = $10, day_of_month = $11, \
     cron_expr = $12, timezone = $13, script = $14, spec = $15, is_active = $16, \
     next_run = COALESCE(run_now_requested_at, $17), updated_at = $18, retention_set = $19, \
     pause_note = CASE WHEN $16 THEN NULL ELSE pause_note END, \
     retention_max_age_seconds = $20, retention_keep_last = $21, expect_success_within_seconds = $22, \
     expect_since = CASE WHEN $22 IS NULL THEN NULL ELSE COALESCE(expect_since, $18) END \
     WHERE id = $1 AND deleted_at IS NULL RETURNING ",
    job_columns!()
);

/// In Kubernetes mode a name belongs to one live object: a row with the same name and another
/// UID is a deleted object the operator did not see go, so it is retired (its history stays).
const RETIRE_STALE_NAME: &str = "UPDATE scheduled_jobs SET deleted_at = $4, next_run = NULL, updated_at = $4 \
     WHERE namespace = $1 AND name = $2 AND deleted_at IS NULL AND (uid IS NULL OR uid <> $3)";

const GET_JOB: &str = concat!("SELECT ", job_columns!(), " FROM scheduled_jobs WHERE id = $1");
const GET_JOB_BY_UID: &str = concat!("SELECT ", job_columns!(), " FROM scheduled_jobs WHERE uid = $1");
const GET_JOB_BY_NAME: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM scheduled_jobs WHERE namespace = $1 AND name = $2 AND deleted_at IS NULL"
);

const DELETE_JOB: &str = "UPDATE scheduled_jobs SET deleted_at = $2, next_run = NULL, \
     run_now_requested_at = NULL, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL";
const DELETE_JOB_BY_UID: &str = "UPDATE scheduled_jobs SET deleted_at = $2, next_run = NULL, \
     run_now_requested_at = NULL, updated_at = $2 WHERE uid = $1 AND deleted_at IS NULL";

/// The jobs page's query up to its filters; only the filters in use are added, so each
/// combination gets its own plan (a count without filters is an index-only scan on PostgreSQL).
///
/// The page is picked by id first (narrow rows: an index-only scan, or a small in-memory sort),
/// then its rows are read whole: a deep OFFSET never sorts whole rows with their specs.
const LIST_JOBS: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM scheduled_jobs WHERE id IN (SELECT id FROM scheduled_jobs WHERE deleted_at IS NULL"
);
const COUNT_JOBS: &str = "SELECT COUNT(*) FROM scheduled_jobs WHERE deleted_at IS NULL";
/// Ordered by next_run with NULLs last (written as `next_run IS NULL` so one index serves both
/// backends), then name.
const JOBS_ORDER: &str = " ORDER BY (next_run IS NULL), next_run, name, id";

/// Appends the filters of a [`JobFilter`] to a query ending in a WHERE clause. Every column they
/// read is in the `scheduled_jobs_list` index, so neither the page nor its count reads whole rows.
macro_rules! push_job_filters {
    ($query:expr, $name_like:expr, $pattern:expr, $namespace:expr, $status:expr, $active:expr) => {{
        if let Some(pattern) = $pattern {
            $query
                .push($name_like)
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\'");
        }
        if let Some(namespace) = $namespace {
            $query.push(" AND namespace = ").push_bind(namespace.to_owned());
        }
        if let Some(status) = $status {
            $query.push(" AND last_status = ").push_bind(status);
        }
        if let Some(active) = $active {
            $query.push(" AND is_active = ").push_bind(active);
        }
    }};
}

/// The name filter, case-insensitive on both backends. SQLite's LIKE already ignores ASCII case,
/// which is all its `lower()` folds, so the row's name is matched as it is: no string built per row
/// (this halves the cost of a scan of every name).
const NAME_LIKE_POSTGRES: &str = " AND lower(name) LIKE ";
const NAME_LIKE_SQLITE: &str = " AND name LIKE ";

const QUEUED_JOBS: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM scheduled_jobs WHERE deleted_at IS NULL AND next_run IS NOT NULL ORDER BY next_run, id LIMIT $1"
);

const STATS: &str = "SELECT COUNT(*) AS jobs, \
     COALESCE(SUM(CASE WHEN is_active THEN 1 ELSE 0 END), 0) AS active_jobs, \
     COALESCE(SUM(CASE WHEN next_run IS NOT NULL THEN 1 ELSE 0 END), 0) AS queued_jobs, \
     (SELECT COUNT(*) FROM job_execution_logs WHERE status = 'RUNNING') AS running_runs \
     FROM scheduled_jobs WHERE deleted_at IS NULL";

/// `%` and `_` in a user's search text match themselves.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

const SET_PAUSE_NOTE: &str = "UPDATE scheduled_jobs SET pause_note = $2 WHERE id = $1";

impl Store {
    /// Kubernetes mode: the operator's note on why it paused job `id` (`None` clears it). A job
    /// write that resumes the job clears it too.
    pub async fn set_pause_note(&self, id: i64, note: Option<&str>) -> Result<()> {
        with_pool!(self, pool => sqlx::query(SET_PAUSE_NOTE).bind(id).bind(note).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Standalone: creates a job and returns its row (with its new id). A live job with the same
    /// namespace and name makes this fail with `AlreadyExists`.
    pub async fn create_job(&self, input: &JobInput<'_>) -> Result<Job> {
        let c = JobColumns::new(input, Utc::now())?;
        let created = with_pool!(self, pool => {
            bind_job_columns!(sqlx::query_as::<_, Job>(CREATE_JOB).bind(input.uid), c).fetch_one(pool).await
        });
        created.map_err(|e| Error::unique_as_exists(e, || format!("job {}/{}", c.namespace, c.name)))
    }

    /// Standalone: rewrites job `id` from `input` (its uid is left as it is). A suspended spec
    /// clears next_run; a pending Run Now keeps it.
    pub async fn update_job(&self, id: i64, input: &JobInput<'_>) -> Result<Job> {
        let c = JobColumns::new(input, Utc::now())?;
        let updated = with_pool!(self, pool => {
            bind_job_columns!(sqlx::query_as::<_, Job>(UPDATE_JOB).bind(id), c).fetch_optional(pool).await
        });
        updated
            .map_err(|e| Error::unique_as_exists(e, || format!("job {}/{}", c.namespace, c.name)))?
            .ok_or_else(|| Error::not_found(format!("job {id}")))
    }

    /// Kubernetes mode: inserts or updates the row of the resource with `input.uid` (required),
    /// undeleting it if needed, and retires a live row of the same name left by an older object.
    pub async fn upsert_job(&self, input: &JobInput<'_>) -> Result<Job> {
        let uid = input
            .uid
            .ok_or_else(|| Error::invalid("upsert_job needs the resource's uid"))?;
        let c = JobColumns::new(input, Utc::now())?;
        with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            sqlx::query(RETIRE_STALE_NAME)
                .bind(&c.namespace)
                .bind(&c.name)
                .bind(uid)
                .bind(c.now)
                .execute(&mut *tx)
                .await?;
            let job = bind_job_columns!(sqlx::query_as::<_, Job>(UPSERT_JOB).bind(uid), c)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(job)
        })
    }

    /// The job with this id, deleted or not.
    pub async fn get_job(&self, id: i64) -> Result<Job> {
        let job = with_pool!(self, pool => sqlx::query_as(GET_JOB).bind(id).fetch_optional(pool).await)?;
        job.ok_or_else(|| Error::not_found(format!("job {id}")))
    }

    /// The live (not deleted) job with this namespace and name.
    pub async fn get_job_by_name(&self, namespace: &str, name: &str) -> Result<Job> {
        let job = with_pool!(self, pool => {
            sqlx::query_as(GET_JOB_BY_NAME).bind(namespace).bind(name).fetch_optional(pool).await
        })?;
        job.ok_or_else(|| Error::not_found(format!("job {namespace}/{name}")))
    }

    /// The job of the resource with this UID, deleted or not.
    pub async fn get_job_by_uid(&self, uid: &str) -> Result<Job> {
        let job =
            with_pool!(self, pool => sqlx::query_as(GET_JOB_BY_UID).bind(uid).fetch_optional(pool).await)?;
        job.ok_or_else(|| Error::not_found(format!("job with uid {uid}")))
    }

    /// Soft-deletes job `id`: it is no longer listed, queued or due; its runs stay. Deleting a
    /// deleted job is harmless; an unknown id is `NotFound`.
    pub async fn delete_job(&self, id: i64) -> Result<()> {
        let now = Ts(Utc::now());
        let affected = with_pool!(self, pool => sqlx::query(DELETE_JOB).bind(id).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        if affected == 0 {
            self.get_job(id).await?;
        }
        Ok(())
    }

    /// Kubernetes mode (finalizer): soft-deletes the job of this UID; false when there was no live row.
    pub async fn delete_job_by_uid(&self, uid: &str) -> Result<bool> {
        let now = Ts(Utc::now());
        let affected = with_pool!(self, pool => {
            sqlx::query(DELETE_JOB_BY_UID).bind(uid).bind(now).execute(pool).await.map(|r| r.rows_affected())
        })?;
        Ok(affected > 0)
    }

    /// The jobs page: live jobs with their last run (denormalized on the row, so no scan of the
    /// runs), filtered, ordered by next_run (NULLs last) then name, and the number that match.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Page<Job>> {
        let pattern = filter
            .name_contains
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(like_pattern);
        let namespace = filter.namespace.as_deref().filter(|s| !s.is_empty());
        let status = filter.last_status.map(|s| s.as_str());
        let active = filter.active;
        let name_like = match self.backend_kind() {
            BackendKind::Postgres => NAME_LIKE_POSTGRES,
            BackendKind::Sqlite => NAME_LIKE_SQLITE,
        };
        // The default order is the one the list index is built for; the others sort names
        // byte-wise on both backends (PostgreSQL's database collation may not be).
        let order = if filter.order == JobOrder::default() {
            JOBS_ORDER.to_owned()
        } else {
            match self.backend_kind() {
                BackendKind::Postgres => filter.order.sql("name COLLATE \"C\""),
                BackendKind::Sqlite => filter.order.sql("name"),
            }
        };
        let (items, total) = with_pool!(self, pool => {
            let mut list = sqlx::QueryBuilder::new(LIST_JOBS);
            push_job_filters!(list, name_like, &pattern, namespace, status, active);
            list.push(&order).push(" LIMIT ").push_bind(filter.limit.max(0));
            list.push(" OFFSET ").push_bind(filter.offset.max(0)).push(")").push(&order);
            let items = list.build_query_as::<Job>().fetch_all(pool).await?;
            let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
            // A short page that is not past the end tells the total by itself: spare the second scan
            // (the common case of a filter that matches a few jobs).
            if len < filter.limit && (len > 0 || filter.offset == 0) {
                return Ok(Page { items, total: filter.offset.max(0) + len });
            }
            let mut count = sqlx::QueryBuilder::new(COUNT_JOBS);
            push_job_filters!(count, name_like, &pattern, namespace, status, active);
            let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
            Ok::<_, sqlx::Error>((items, total))
        })?;
        Ok(Page { items, total })
    }

    /// What is queued: live jobs with a next_run (scheduled or a pending Run Now), soonest first.
    pub async fn queued_jobs(&self, limit: i64) -> Result<Vec<Job>> {
        Ok(with_pool!(self, pool => sqlx::query_as(QUEUED_JOBS).bind(limit).fetch_all(pool).await)?)
    }

    /// Counts for status output.
    pub async fn stats(&self) -> Result<Stats> {
        let (jobs, active_jobs, queued_jobs, running_runs) =
            with_pool!(self, pool => sqlx::query_as::<_, (i64, i64, i64, i64)>(STATS).fetch_one(pool).await)?;
        Ok(Stats {
            jobs,
            active_jobs,
            queued_jobs,
            running_runs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jtp_crds::{IntervalUnit, Weekday};

    #[test]
    fn columns_come_from_the_spec() {
        let spec = ScheduledJobSpec::weekly(&[Weekday::Monday, Weekday::Friday], "09:30");
        let input = JobInput {
            name: "report",
            namespace: "",
            uid: None,
            spec: &spec,
            next_run: None,
        };
        let c = JobColumns::new(&input, Utc::now()).expect("valid");
        assert_eq!((c.schedule_type, c.namespace.as_str()), ("weekly", "default"));
        assert_eq!(c.weekdays.as_deref(), Some("monday,friday"));
        assert_eq!(c.at_time.as_deref(), Some("09:30"));
        assert_eq!(c.script, "echo hello");

        let mut spec = ScheduledJobSpec::interval(15, IntervalUnit::Minutes);
        spec.suspend = true;
        spec.script = jtp_crds::Script {
            command: Some(vec!["ls".into(), "-l".into()]),
            ..Default::default()
        };
        let input = JobInput {
            name: "x",
            namespace: "ops",
            uid: None,
            spec: &spec,
            next_run: Some(Utc::now()),
        };
        let c = JobColumns::new(&input, Utc::now()).expect("valid");
        assert_eq!((c.interval_value, c.interval_unit), (Some(15), Some("minutes")));
        assert_eq!((c.is_active, c.next_run), (false, None));
        assert_eq!(c.script, "ls -l");
    }

    #[test]
    fn search_text_is_literal() {
        assert_eq!(like_pattern("Nightly_100%"), "%nightly\\_100\\%%");
    }
}
