//! The `ScheduledJob` API shared by every part of Job Trigger Portal: the custom resource types,
//! the one validation function, the pure schedule engine and the run policy of both modes (no
//! clock, no client).

pub mod admission;
pub mod alerting;
pub mod cron;
pub mod manifest;
pub mod parameters;
pub mod pod;
pub mod policy;
pub mod preview;
pub mod retention;
pub mod retry;
pub mod schedule;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod types;
pub mod validate;

pub use alerting::{AlertOn, Expectation, Notifications, Overdue, ReceiverName};
pub use parameters::{InvalidParameters, Parameter, ParameterValues};
pub use retention::{DURATION_PATTERN, Retention, format_duration, parse_duration};
pub use retry::{Backoff, BackoffStrategy, Retries};
pub use schedule::{CompiledSchedule, DstEffect, DstPolicy, JobId, MissedSlots, Slot};
pub use types::*;
pub use validate::{FieldError, InvalidSpec, validate};

/// Group of the custom resource.
pub const GROUP: &str = "jobtrigger.io";
/// Annotation that asks for one manual run; its value is an RFC3339 instant, one run per distinct value.
pub const RUN_NOW_ANNOTATION: &str = "jobtrigger.io/run-now";
/// Annotation on a ScheduledJob naming who asked for the pending run-now (set together with it;
/// the portal writes its user's name). The operator copies it to the run and then removes it, so
/// a later run-now without one is not credited to the same person.
pub const RUN_NOW_REQUESTER_ANNOTATION: &str = "jobtrigger.io/run-now-requester";
/// Annotation on a ScheduledJob holding the parameter values of the pending run-now, as a JSON
/// object (`{"REGION":"eu"}`; set together with it, like the requester). The operator checks them
/// against `spec.parameters`, passes them to the run's Job and removes the annotation once the run
/// has started, so a later run-now without it gets the defaults.
pub const RUN_NOW_PARAMETERS_ANNOTATION: &str = "jobtrigger.io/run-now-parameters";
/// Annotation on a launched Job holding the parameter values of its run, as a JSON object (the
/// ledger records them; a retry of the run takes them from here).
pub const PARAMETERS_ANNOTATION: &str = "jobtrigger.io/parameters";
/// Prefix of the annotations on a ScheduledJob that ask to stop one of its runs:
/// `stop.jobtrigger.io/<Job name>: <who asked>`. The operator records that run as FAILURE
/// "stopped by <who asked>", deletes its Job (its pods go with it) and removes the annotation; a
/// request for a Job that has already ended (or is not the job's) is only removed. One key per
/// run, so two stops of two runs never overwrite each other.
pub const STOP_RUN_ANNOTATION_PREFIX: &str = "stop.jobtrigger.io/";
/// Annotation on a launched manual Job naming who asked for it.
pub const REQUESTER_ANNOTATION: &str = "jobtrigger.io/requester";
/// The longest requester name kept (longer ones are cut, on a character boundary).
pub const MAX_REQUESTER_CHARS: usize = 253;
/// Annotation on a launched Job holding the scheduled instant (RFC3339 UTC).
pub const SCHEDULED_AT_ANNOTATION: &str = "jobtrigger.io/scheduled-at";
/// Annotation on a launched Job holding what triggered it (`schedule` or `manual`).
pub const TRIGGER_ANNOTATION: &str = "jobtrigger.io/trigger";
/// Label on a launched Job naming its ScheduledJob.
pub const JOB_LABEL: &str = "jobtrigger.io/scheduled-job";
/// Annotation on a launched Job holding its attempt number (1 for a slot's first run).
pub const ATTEMPT_ANNOTATION: &str = "jobtrigger.io/attempt";
/// Label on a launched Job holding the slot as UTC seconds.
pub const SLOT_LABEL: &str = "jobtrigger.io/slot";
/// The zone used when a job names none: Hong Kong, as in the original system.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Hong_Kong";
/// The shortest interval a job may ask for.
pub const MIN_INTERVAL_SECONDS: u64 = 10;

/// The CustomResourceDefinition generated from the Rust types, as YAML (what `crds/` holds).
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let crd = ScheduledJob::crd();
    let body = serde_yaml::to_string(&crd).unwrap_or_else(|e| format!("# cannot render CRD: {e}\n"));
    format!("# Generated from crds/src/types.rs by `jtp crd`; do not edit by hand.\n{body}")
}
