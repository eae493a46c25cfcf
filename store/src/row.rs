//! Reading rows into the typed model, once for both backends: a small macro writes the `FromRow`
//! impl for PostgreSQL and SQLite rows from one field list, with a converter where the column's
//! text becomes an API enum or the spec.

use crate::alerts::{AlertEvent, AlertKind, Attempt, Delivery, DeliveryState, JobHealth};
use crate::model::{Job, RecentFailure, Run, RunListItem, RunSummary};

use jtp_crds::{RunStatus, ScheduledJobSpec, Trigger};

macro_rules! impl_from_row {
    ($ty:ident { $(.. $inner:ident,)? $($field:ident $(=> $conv:expr)?),* $(,)? }) => {
        impl_from_row!(@for sqlx::postgres::PgRow, $ty { $(.. $inner,)? $($field $(=> $conv)?),* });
        impl_from_row!(@for sqlx::sqlite::SqliteRow, $ty { $(.. $inner,)? $($field $(=> $conv)?),* });
    };
    (@for $row:ty, $ty:ident { $(.. $inner:ident,)? $($field:ident $(=> $conv:expr)?),* }) => {
        impl<'r> sqlx::FromRow<'r, $row> for $ty {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok(Self {
                    $($inner: sqlx::FromRow::from_row(row)?,)?
                    $($field: impl_from_row!(@get row, $field $(, $conv)?)),*
                })
            }
        }
    };
    (@get $row:ident, $field:ident) => { $row.try_get(stringify!($field))? };
    (@get $row:ident, $field:ident, $conv:expr) => { ($conv)($row.try_get(stringify!($field))?)? };
}

fn corrupt(column: &str, message: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: message.to_string().into(),
    }
}

fn status(text: String) -> Result<RunStatus, sqlx::Error> {
    RunStatus::parse(&text).ok_or_else(|| corrupt("status", format!("unknown run status {text:?}")))
}

fn last_status(text: Option<String>) -> Result<Option<RunStatus>, sqlx::Error> {
    text.map(status).transpose()
}

fn trigger(text: String) -> Result<Trigger, sqlx::Error> {
    Trigger::parse(&text).ok_or_else(|| corrupt("trigger", format!("unknown trigger {text:?}")))
}

fn retry_trigger(text: Option<String>) -> Result<Option<Trigger>, sqlx::Error> {
    text.map(trigger).transpose()
}

/// `job_execution_logs.parameters` (and `scheduled_jobs.run_now_parameters`): a JSON object of
/// strings, NULL when there are none.
pub(crate) fn parameters(json: Option<String>) -> Result<jtp_crds::ParameterValues, sqlx::Error> {
    json.map_or_else(
        || Ok(jtp_crds::ParameterValues::new()),
        |json| serde_json::from_str(&json).map_err(|e| corrupt("parameters", e)),
    )
}

/// The column value of `values`: NULL for none.
pub(crate) fn parameters_json(values: &jtp_crds::ParameterValues) -> Option<String> {
    (!values.is_empty()).then(|| serde_json::to_string(values).unwrap_or_else(|_| "{}".to_owned()))
}

fn spec(json: String) -> Result<ScheduledJobSpec, sqlx::Error> {
    serde_json::from_str(&json).map_err(|e| corrupt("spec", e))
}

/// Every column of `scheduled_jobs`, in [`Job`]'s order (for `SELECT` and `RETURNING`).
macro_rules! job_columns {
    () => {
        "id, uid, name, namespace, description, schedule_type, interval_value, interval_unit, minute, \
         at_time, weekdays, day_of_month, cron_expr, timezone, script, spec, is_active, next_run, \
         last_run, last_status, consecutive_failures, run_now_requested_at, deleted_at, created_at, \
         updated_at, source, expect_success_within_seconds, expect_since, last_success_at, retry_at, \
         retry_slot, retry_trigger, retry_attempt, pause_note, paused_at_failures"
    };
}
pub(crate) use job_columns;

/// The columns of a [`RunSummary`] from `job_execution_logs` aliased `l`.
macro_rules! run_summary_columns {
    () => {
        "l.id, l.job_id, l.run_time, l.scheduled_for, l.finished_at, l.status, l.exit_code, l.trigger, \
         l.attempt, l.k8s_job_name, l.runner, l.requester, l.parameters, l.output_bytes, l.output_truncated, substr(l.log_output, 1, 200) AS preview"
    };
}
pub(crate) use run_summary_columns;

impl_from_row!(Job {
    id, uid, name, namespace, description, schedule_type, interval_value, interval_unit, minute,
    at_time, weekdays, day_of_month, cron_expr, timezone, script,
    spec => spec,
    is_active, next_run, last_run,
    last_status => last_status,
    consecutive_failures, run_now_requested_at, deleted_at, created_at, updated_at, source,
    expect_success_within_seconds, expect_since, last_success_at,
    retry_at, retry_slot,
    retry_trigger => retry_trigger,
    retry_attempt, pause_note, paused_at_failures,
});

impl_from_row!(RunSummary {
    id, job_id, run_time, scheduled_for, finished_at,
    status => status,
    exit_code,
    trigger => trigger,
    attempt, k8s_job_name, runner, requester,
    parameters => parameters,
    output_bytes, output_truncated, preview,
});

impl_from_row!(Run { ..summary, log_output });

impl_from_row!(RecentFailure { ..run, job_name, job_namespace });

impl_from_row!(RunListItem { ..run, job_name, job_namespace, job_timezone, job_deleted });

fn alert_kind(text: String) -> Result<AlertKind, sqlx::Error> {
    AlertKind::parse(&text).ok_or_else(|| corrupt("kind", format!("unknown alert kind {text:?}")))
}

fn delivery_state(text: String) -> Result<DeliveryState, sqlx::Error> {
    DeliveryState::parse(&text).ok_or_else(|| corrupt("state", format!("unknown delivery state {text:?}")))
}

impl_from_row!(AlertEvent {
    id, job_id,
    kind => alert_kind,
    run_id,
    run_status => last_status,
    failures, detail, occurred_at, dispatched_at,
});

impl_from_row!(Delivery {
    id, event_id, receiver, format,
    state => delivery_state,
    attempts, next_attempt_at, updated_at,
});

impl_from_row!(Attempt {
    delivery_id,
    attempt,
    started_at,
    duration_ms,
    http_status,
    error
});

impl_from_row!(JobHealth {
    namespace,
    name,
    last_success_at,
    last_failure_at,
    consecutive_failures,
});
