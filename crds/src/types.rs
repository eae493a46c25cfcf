//! The `ScheduledJob` custom resource (group `jobtrigger.io`, version `v1alpha1`): spec, status and
//! the small enums the store and the portal share. Schema rules here are what `kubectl apply` checks;
//! what a schema cannot check lives in [`crate::validate`].

// The derive takes one `printcolumn(...)` per column; clippy reads the repeats as duplicates.
#![allow(clippy::duplicated_attributes)]

use crate::alerting::Notifications;
use crate::parameters::Parameter;
use crate::policy::{AutoPause, PendingRetry};
use crate::retention::{DURATION_PATTERN, Retention};
use crate::retry::Retries;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A script that runs on a schedule or on demand, with every run recorded.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "jobtrigger.io",
    version = "v1alpha1",
    kind = "ScheduledJob",
    plural = "scheduledjobs",
    shortname = "sj",
    namespaced,
    status = "ScheduledJobStatus",
    printcolumn(
        name = "Schedule",
        type_ = "string",
        json_path = ".status.scheduleDescription"
    ),
    printcolumn(name = "Time Zone", type_ = "string", json_path = ".spec.timeZone"),
    printcolumn(name = "Next Run", type_ = "string", json_path = ".status.nextRun"),
    printcolumn(name = "Last Status", type_ = "string", json_path = ".status.lastStatus"),
    printcolumn(
        name = "Suspended",
        type_ = "boolean",
        json_path = ".spec.suspend",
        priority = "1"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledJobSpec {
    /// When the job runs: exactly one schedule form.
    pub schedule: Schedule,
    /// IANA time zone in which wall-clock times are read (default Asia/Hong_Kong).
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,
    /// A suspended job is never started by its schedule; Run Now still works.
    #[serde(default)]
    pub suspend: bool,
    /// What runs.
    pub script: Script,
    /// Free text shown in the portal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Container image (Kubernetes mode); the operator's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Environment variables for the script.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Values a person gives a manual run (Run Now), each passed to the script as the environment
    /// variable of its name; scheduled runs get the defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub parameters: Vec<Parameter>,
    /// Working directory of the script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Compute resources of the run's container (Kubernetes mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The run's pod beyond its script, with the standard Kubernetes types (Kubernetes mode): pod
    /// labels and annotations, and a PodSpec for env `valueFrom`/`envFrom`, volumes and mounts,
    /// node selector, tolerations, affinity, priority class, image pull secrets, init and extra
    /// containers, security contexts and resources. The container named `run` (added when absent)
    /// is the script's: the script sets its command, `image`/`env`/`workingDir`/`resources` above
    /// override or extend it. See [`crate::pod`] for every rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,
    /// Service account the run's pod uses (Kubernetes mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// What the job does when a DST change repeats or skips a wall time; the defaults follow Vixie
    /// cron (see [`DaylightSaving`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daylight_saving: Option<DaylightSaving>,
    /// What to do when a run is due while another is still running.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// A slot missed by more than this many seconds is skipped and reported, never replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,
    /// A run still going after this many seconds is stopped and counted as FAILURE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// Retries of a failed pod within one run (Kubernetes mode; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub backoff_limit: Option<i32>,
    /// Finished successful Kubernetes Jobs to keep (SQL keeps every run regardless; default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub successful_jobs_history_limit: Option<i32>,
    /// Finished failed Kubernetes Jobs to keep (SQL keeps every run regardless; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub failed_jobs_history_limit: Option<i32>,
    /// How long this job's runs are kept in SQL, instead of the operator's (or standalone
    /// runner's) global policy; `{}` keeps every run. See [`Retention`] for the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// The dead-man's switch: the job is overdue when it has not succeeded for this long (`26h`,
    /// `1d12h`; units d, h, m, s), whatever the reason — suspended, edited, slots skipped, runs
    /// failing, nothing scheduled, the scheduler down. Counted from its last success, or from when
    /// this field was set. Overdue jobs are marked in the portal and the API, and counted in
    /// metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), regex(pattern = DURATION_PATTERN))]
    pub expect_success_within: Option<String>,
    /// Who is told about this job's failures, recoveries and overdue state, and about which of
    /// them; left out, the operator's (or standalone runner's) defaults apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Notifications>,
    /// Further attempts of a run that ends in FAILURE or ERROR, each its own run for the same
    /// slot; see [`Retries`] (and `backoffLimit` for retrying a pod within one Kubernetes Job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// Suspends the job once this many runs in a row (each counted once its retries are spent)
    /// end in FAILURE or ERROR, with a `Paused` condition, an Event and a note in the portal.
    /// After a resume the job gets as many again before it pauses again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub pause_after_consecutive_failures: Option<u32>,
}

/// `spec.podTemplate` as written: a Kubernetes `PodTemplateSpec`, kept as JSON so that a
/// ScheduledJob always reads (a watch of every job must not fail on one job's typo) and read with
/// the k8s-openapi types by [`PodTemplate::parse`], which validation calls (errors name the path).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(transparent)]
pub struct PodTemplate(pub serde_json::Value);

impl JsonSchema for PodTemplate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PodTemplate".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        pod_template_schema(generator)
    }
}

/// The schema of `podTemplate`: labels and annotations typed, the PodSpec kept whole without its
/// schema (`x-kubernetes-preserve-unknown-fields`). The full PodSpec schema would make the CRD 22
/// times larger (545 KB instead of 24 KB: past the 256 KiB that client-side `kubectl apply` can keep
/// in its annotation);
/// instead [`crate::validate`] reads the spec with the k8s-openapi types (a wrong type is refused
/// with its path) and the API server checks the pod in full when the operator creates the run's Job.
fn pod_template_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let string_map = serde_json::json!({
        "type": "object",
        "additionalProperties": { "type": "string" }
    });
    schemars::json_schema!({
        "type": "object",
        "description": "The run's pod: metadata.labels, metadata.annotations and a Kubernetes PodSpec (spec). The container named run is the script's.",
        "properties": {
            "metadata": {
                "type": "object",
                "properties": {
                    "labels": string_map,
                    "annotations": string_map
                }
            },
            "spec": {
                "type": "object",
                "description": "A Kubernetes PodSpec (core/v1), checked by the API server when the run's Job is created.",
                "x-kubernetes-preserve-unknown-fields": true
            }
        }
    })
}

pub fn default_time_zone() -> String {
    crate::DEFAULT_TIME_ZONE.to_owned()
}

/// Exactly one schedule form. Wall-clock times are `HH:MM` in the job's time zone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = kube::core::Rule::new(
    "[has(self.interval), has(self.hourly), has(self.daily), has(self.weekly), has(self.monthly), has(self.cron), has(self.manual)].filter(x, x).size() == 1"
).message("set exactly one schedule form: interval, hourly, daily, weekly, monthly, cron or manual"))]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<IntervalSchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<HourlySchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<DailySchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<WeeklySchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<MonthlySchedule>,
    /// A cron expression as Kubernetes CronJob takes it, read in the job's zone: 5 fields (minute
    /// hour day-of-month month day-of-week; names, ranges, steps, lists, `?`) or a macro (`@yearly`,
    /// `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    #[schemars(regex(pattern = CRON_PATTERN))]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<ManualSchedule>,
}

/// What the schema lets through as a cron: five fields of cron characters, or one `@word`.
/// [`crate::validate`] reads it and names the field and token of anything it refuses (`L`, `W`,
/// `#`, wrap-around ranges, a value out of range, an unknown macro, a day that never comes).
pub const CRON_PATTERN: &str = r"^\s*(@[A-Za-z]+|[0-9A-Za-z*/,?#-]+(\s+[0-9A-Za-z*/,?#-]+){4})\s*$";

/// `HH:MM`, 00:00 to 23:59.
pub const TIME_PATTERN: &str = r"^([01][0-9]|2[0-3]):[0-5][0-9]$";

/// Every N units. Slot k is `phase + k × every` after the Unix epoch, where the phase (under one
/// interval) comes from a hash of the job's namespace and name: the same on every restart and in
/// both modes, and jobs on the same interval spread out instead of all starting at once.
/// `status.nextRun` shows where the phase fell; use `cron` or `hourly` for fixed minutes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = kube::core::Rule::new(
    "self.unit != 'seconds' || self.every >= 10"
).message("an interval must be at least 10 seconds"))]
pub struct IntervalSchedule {
    #[schemars(range(min = 1))]
    pub every: u64,
    pub unit: IntervalUnit,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IntervalUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl IntervalUnit {
    pub fn seconds(self) -> u64 {
        match self {
            Self::Seconds => 1,
            Self::Minutes => 60,
            Self::Hours => 3_600,
            Self::Days => 86_400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seconds => "seconds",
            Self::Minutes => "minutes",
            Self::Hours => "hours",
            Self::Days => "days",
        }
    }
}

/// Once an hour, at this minute.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HourlySchedule {
    #[schemars(range(min = 0, max = 59))]
    pub minute: u32,
}

/// Once a day at a wall-clock time.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DailySchedule {
    #[schemars(regex(pattern = TIME_PATTERN))]
    pub at: String,
}

/// On one or more weekdays at a wall-clock time.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct WeeklySchedule {
    #[schemars(length(min = 1, max = 7))]
    pub days: Vec<Weekday>,
    #[schemars(regex(pattern = TIME_PATTERN))]
    pub at: String,
}

/// On a day of the month at a wall-clock time; day 29–31 runs on the last day of shorter months.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MonthlySchedule {
    #[schemars(range(min = 1, max = 31))]
    pub day: u32,
    #[schemars(regex(pattern = TIME_PATTERN))]
    pub at: String,
}

/// Never runs by itself; only Run Now starts it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ManualSchedule {}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Self::Monday,
        Self::Tuesday,
        Self::Wednesday,
        Self::Thursday,
        Self::Friday,
        Self::Saturday,
        Self::Sunday,
    ];

    pub fn to_chrono(self) -> chrono::Weekday {
        match self {
            Self::Monday => chrono::Weekday::Mon,
            Self::Tuesday => chrono::Weekday::Tue,
            Self::Wednesday => chrono::Weekday::Wed,
            Self::Thursday => chrono::Weekday::Thu,
            Self::Friday => chrono::Weekday::Fri,
            Self::Saturday => chrono::Weekday::Sat,
            Self::Sunday => chrono::Weekday::Sun,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monday => "monday",
            Self::Tuesday => "tuesday",
            Self::Wednesday => "wednesday",
            Self::Thursday => "thursday",
            Self::Friday => "friday",
            Self::Saturday => "saturday",
            Self::Sunday => "sunday",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s || d.as_str()[..3] == s)
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::Monday => "Monday",
            Self::Tuesday => "Tuesday",
            Self::Wednesday => "Wednesday",
            Self::Thursday => "Thursday",
            Self::Friday => "Friday",
            Self::Saturday => "Saturday",
            Self::Sunday => "Sunday",
        }
    }
}

/// What runs: exactly one of an inline shell script, a key of a ConfigMap, a command, or a file.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = kube::core::Rule::new(
    "[has(self.inline), has(self.configMap), has(self.command), has(self.file)].filter(x, x).size() == 1"
).message("set exactly one of script.inline, script.configMap, script.command or script.file"))]
#[serde(rename_all = "camelCase")]
pub struct Script {
    /// A shell script, run with `sh -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub inline: Option<String>,
    /// A script stored under a key of a ConfigMap in the job's namespace, mounted and executed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapScript>,
    /// A program and its arguments, run without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub command: Option<Vec<String>>,
    /// An executable file: a path in the image (Kubernetes) or relative to the scripts folder (standalone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub file: Option<String>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ConfigMapScript {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// One environment variable.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EnvVar {
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// What a job does when a daylight-saving change repeats or skips its wall times. Each choice left
/// out takes Vixie cron's default for the schedule:
/// - jobs that repeat within the day (`hourly`, a cron whose minute or hour field starts with `*`)
///   run at every instant whose local clock matches: in **both** passes of a repeated hour, and
///   **not** at times that do not exist (`skip`);
/// - fixed wall times (`daily`, `weekly`, `monthly`, a cron with a fixed minute and hour) run once:
///   at the **first** occurrence of a repeated time, at the **end of the gap** for a skipped one.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DaylightSaving {
    /// A wall time that happens twice (clocks go back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeated_time: Option<RepeatedTime>,
    /// A wall time that does not happen (clocks go forward).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_time: Option<SkippedTime>,
}

/// A wall time that happens twice when clocks go back.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepeatedTime {
    /// Run once, at the first occurrence (before the clocks go back).
    First,
    /// Run once, at the second occurrence (after the clocks went back).
    Second,
    /// Run at both occurrences.
    Both,
}

impl RepeatedTime {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::First => "First",
            Self::Second => "Second",
            Self::Both => "Both",
        }
    }
}

/// A wall time that does not happen when clocks go forward.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkippedTime {
    /// Run at the first instant after the gap (the change itself).
    EndOfGap,
    /// Do not run for it.
    Skip,
}

impl SkippedTime {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndOfGap => "EndOfGap",
            Self::Skip => "Skip",
        }
    }
}

/// What happens when a run is due while an earlier one is still running.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConcurrencyPolicy {
    /// Start the new run alongside.
    Allow,
    /// Skip the new run (the default).
    #[default]
    Forbid,
    /// Stop the running one and start the new one.
    Replace,
}

impl ConcurrencyPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "Allow",
            Self::Forbid => "Forbid",
            Self::Replace => "Replace",
        }
    }
}

/// Outcome of a run, with the original system's names.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunStatus {
    /// Still running (or queued).
    Running,
    /// Exit code 0.
    Success,
    /// A non-zero exit code, or stopped for running too long.
    Failure,
    /// The script never started: not found, permission denied, image pull failure…
    Error,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
            Self::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RUNNING" => Some(Self::Running),
            "SUCCESS" => Some(Self::Success),
            "FAILURE" => Some(Self::Failure),
            "ERROR" => Some(Self::Error),
            _ => None,
        }
    }

    pub fn is_finished(self) -> bool {
        self != Self::Running
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run started.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "schedule" => Some(Self::Schedule),
            "manual" => Some(Self::Manual),
            _ => None,
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the operator last observed and decided. Times are UTC.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledJobStatus {
    /// The schedule in words, for `kubectl get sj`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_description: Option<String>,
    /// The next slot; absent for manual or suspended jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<DateTime<Utc>>,
    /// What a daylight-saving change does to the next run, when one touches it (e.g. "second pass
    /// of the repeated 01:30"), as `jtp preview` and the portal word it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_dst: Option<String>,
    /// The last slot handled (run or skipped); scheduling resumes after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_time: Option<DateTime<Utc>>,
    /// When the last finished run was scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<RunStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Runs in flight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<ActiveRun>,
    /// The last `jobtrigger.io/run-now` value acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_now: Option<String>,
    /// The next attempt of a failed run, waiting for its time (`spec.retries`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_retry: Option<PendingRetry>,
    /// The last automatic pause (`spec.pauseAfterConsecutiveFailures`), kept until a run succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_pause: Option<AutoPause>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A run in flight.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActiveRun {
    pub job_name: String,
    pub scheduled_time: DateTime<Utc>,
    pub trigger: Trigger,
}

/// A standard Kubernetes condition (`Ready`, `Valid`…).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    pub last_transition_time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Schedule {
    /// The name of the form that is set (`interval`, `daily`, …), or `none`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self {
                interval: Some(_), ..
            } => "interval",
            Self { hourly: Some(_), .. } => "hourly",
            Self { daily: Some(_), .. } => "daily",
            Self { weekly: Some(_), .. } => "weekly",
            Self { monthly: Some(_), .. } => "monthly",
            Self { cron: Some(_), .. } => "cron",
            Self { manual: Some(_), .. } => "manual",
            _ => "none",
        }
    }

    /// How many forms are set; a valid schedule has exactly one.
    pub fn forms_set(&self) -> usize {
        [
            self.interval.is_some(),
            self.hourly.is_some(),
            self.daily.is_some(),
            self.weekly.is_some(),
            self.monthly.is_some(),
            self.cron.is_some(),
            self.manual.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count()
    }
}

impl ScheduledJobSpec {
    /// A job with this schedule and an `echo` script, in the default zone, every other field at its
    /// default (the portal's form starts from it; tests chain the builders of the `testing` feature).
    pub fn with_schedule(schedule: Schedule) -> Self {
        Self {
            schedule,
            time_zone: default_time_zone(),
            suspend: false,
            script: Script {
                inline: Some("echo hello".into()),
                ..Script::default()
            },
            description: None,
            image: None,
            env: Vec::new(),
            parameters: Vec::new(),
            working_dir: None,
            resources: None,
            pod_template: None,
            service_account_name: None,
            daylight_saving: None,
            concurrency_policy: ConcurrencyPolicy::default(),
            starting_deadline_seconds: None,
            active_deadline_seconds: None,
            backoff_limit: None,
            successful_jobs_history_limit: None,
            failed_jobs_history_limit: None,
            retention: None,
            expect_success_within: None,
            notifications: None,
            retries: None,
            pause_after_consecutive_failures: None,
        }
    }
}
