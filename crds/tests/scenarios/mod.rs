//! The run policy's scenario table: given facts and `now`, the step both modes must take. It runs
//! through the core (`crds/tests/policy.rs`) and through each mode's adapter (the operator's
//! `decide` and the standalone runner's `step_for`, in their unit tests, which include this file),
//! so a mode that drifts from the policy fails a test.
//!
//! Every case is for the job `default/job` (standalone jobs live in `default`) and is one both
//! modes can hold: a pending Run Now with no scheduled slot due at the same time (in standalone
//! mode a Run Now takes the place of the job's next run).

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use jtp_crds::policy::Reason;
use jtp_crds::{ConcurrencyPolicy, IntervalUnit, JobId, ScheduledJobSpec, Trigger};

/// The job every scenario is about.
pub const JOB: JobId<'static> = JobId {
    namespace: "default",
    name: "job",
};

pub struct Scenario {
    pub name: &'static str,
    pub spec: ScheduledJobSpec,
    /// The last slot handled.
    pub handled_until: DateTime<Utc>,
    /// A pending Run Now.
    pub run_now: Option<DateTime<Utc>>,
    /// How many runs are in flight.
    pub active: usize,
    pub now: DateTime<Utc>,
    pub expected: Expected,
}

/// The step, as every mode can show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub launch: Vec<(Trigger, DateTime<Utc>)>,
    /// How many of the runs in flight are stopped (always as replaced).
    pub stopped: usize,
    pub skipped: Vec<(DateTime<Utc>, Reason)>,
    /// Slots before the latest were missed too.
    pub missed_earlier: bool,
    pub next_run: Option<DateTime<Utc>>,
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("scenario instants are RFC3339")
        .with_timezone(&Utc)
}

fn with_policy(mut spec: ScheduledJobSpec, policy: ConcurrencyPolicy) -> ScheduledJobSpec {
    spec.concurrency_policy = policy;
    spec
}

fn with_deadline(mut spec: ScheduledJobSpec, seconds: i64) -> ScheduledJobSpec {
    spec.starting_deadline_seconds = Some(seconds);
    spec
}

fn suspended(mut spec: ScheduledJobSpec) -> ScheduledJobSpec {
    spec.suspend = true;
    spec
}

fn minutely() -> ScheduledJobSpec {
    ScheduledJobSpec::cron("* * * * *").in_zone("UTC")
}

const NOTHING: Expected = Expected {
    launch: Vec::new(),
    stopped: 0,
    skipped: Vec::new(),
    missed_earlier: false,
    next_run: None,
};

pub fn scenarios() -> Vec<Scenario> {
    // 09:00 in Hong Kong (the default zone) is 01:00 UTC.
    let daily = || ScheduledJobSpec::daily("09:00");
    let scenario = |name, spec, handled_until: &str, now: &str, expected| Scenario {
        name,
        spec,
        handled_until: t(handled_until),
        run_now: None,
        active: 0,
        now: t(now),
        expected,
    };
    vec![
        scenario(
            "a due slot runs and the next is the following day",
            daily(),
            "2026-03-01T01:00:00Z",
            "2026-03-02T01:00:00.200Z",
            Expected {
                launch: vec![(Trigger::Schedule, t("2026-03-02T01:00:00Z"))],
                next_run: Some(t("2026-03-03T01:00:00Z")),
                ..NOTHING
            },
        ),
        scenario(
            "nothing runs before the slot",
            daily(),
            "2026-03-01T01:00:00Z",
            "2026-03-02T00:59:59Z",
            Expected {
                next_run: Some(t("2026-03-02T01:00:00Z")),
                ..NOTHING
            },
        ),
        scenario(
            "after an outage only the latest missed slot runs, once",
            minutely(),
            "2026-03-01T00:00:00Z",
            "2026-03-01T05:00:30Z",
            Expected {
                launch: vec![(Trigger::Schedule, t("2026-03-01T05:00:00Z"))],
                missed_earlier: true,
                next_run: Some(t("2026-03-01T05:01:00Z")),
                ..NOTHING
            },
        ),
        scenario(
            "a slot found past the starting deadline is skipped",
            with_deadline(daily(), 60),
            "2026-03-01T01:00:00Z",
            "2026-03-02T01:05:00Z",
            Expected {
                skipped: vec![(
                    t("2026-03-02T01:00:00Z"),
                    Reason::PastDeadline {
                        late_seconds: 300,
                        deadline_seconds: 60,
                    },
                )],
                next_run: Some(t("2026-03-03T01:00:00Z")),
                ..NOTHING
            },
        ),
        scenario(
            "a slot found within the starting deadline runs",
            with_deadline(daily(), 60),
            "2026-03-01T01:00:00Z",
            "2026-03-02T01:00:59Z",
            Expected {
                launch: vec![(Trigger::Schedule, t("2026-03-02T01:00:00Z"))],
                next_run: Some(t("2026-03-03T01:00:00Z")),
                ..NOTHING
            },
        ),
        Scenario {
            active: 1,
            ..scenario(
                "Forbid skips a slot while a run is in flight",
                minutely(),
                "2026-03-01T00:00:00Z",
                "2026-03-01T00:01:00.100Z",
                Expected {
                    skipped: vec![(t("2026-03-01T00:01:00Z"), Reason::StillRunning)],
                    next_run: Some(t("2026-03-01T00:02:00Z")),
                    ..NOTHING
                },
            )
        },
        Scenario {
            active: 1,
            ..scenario(
                "Allow starts a slot alongside the run in flight",
                with_policy(minutely(), ConcurrencyPolicy::Allow),
                "2026-03-01T00:00:00Z",
                "2026-03-01T00:01:00.100Z",
                Expected {
                    launch: vec![(Trigger::Schedule, t("2026-03-01T00:01:00Z"))],
                    next_run: Some(t("2026-03-01T00:02:00Z")),
                    ..NOTHING
                },
            )
        },
        Scenario {
            active: 1,
            ..scenario(
                "Replace stops the run in flight and starts the slot",
                with_policy(minutely(), ConcurrencyPolicy::Replace),
                "2026-03-01T00:00:00Z",
                "2026-03-01T00:01:00.100Z",
                Expected {
                    launch: vec![(Trigger::Schedule, t("2026-03-01T00:01:00Z"))],
                    stopped: 1,
                    next_run: Some(t("2026-03-01T00:02:00Z")),
                    ..NOTHING
                },
            )
        },
        Scenario {
            active: 1,
            run_now: Some(t("2026-03-01T00:00:30Z")),
            ..scenario(
                "a second Run Now under Forbid while the first runs starts a run",
                minutely(),
                "2026-03-01T00:00:00Z",
                "2026-03-01T00:00:30.100Z",
                Expected {
                    launch: vec![(Trigger::Manual, t("2026-03-01T00:00:30Z"))],
                    next_run: Some(t("2026-03-01T00:01:00Z")),
                    ..NOTHING
                },
            )
        },
        Scenario {
            active: 1,
            run_now: Some(t("2026-03-01T00:00:30Z")),
            ..scenario(
                "Run Now under Replace runs alongside and stops nothing",
                with_policy(minutely(), ConcurrencyPolicy::Replace),
                "2026-03-01T00:00:00Z",
                "2026-03-01T00:00:30.100Z",
                Expected {
                    launch: vec![(Trigger::Manual, t("2026-03-01T00:00:30Z"))],
                    next_run: Some(t("2026-03-01T00:01:00Z")),
                    ..NOTHING
                },
            )
        },
        Scenario {
            run_now: Some(t("2026-03-01T00:00:30Z")),
            ..scenario(
                "Run Now runs a manual job, which keeps no next run",
                ScheduledJobSpec::manual(),
                "2026-03-01T00:00:00Z",
                "2026-03-01T00:00:30.100Z",
                Expected {
                    launch: vec![(Trigger::Manual, t("2026-03-01T00:00:30Z"))],
                    ..NOTHING
                },
            )
        },
        Scenario {
            run_now: Some(t("2026-03-01T00:00:30Z")),
            ..scenario(
                "Run Now runs a suspended job, which keeps no next run",
                suspended(daily()),
                "2026-03-01T00:00:00Z",
                "2026-03-01T00:00:30.100Z",
                Expected {
                    launch: vec![(Trigger::Manual, t("2026-03-01T00:00:30Z"))],
                    ..NOTHING
                },
            )
        },
        scenario(
            "a suspended job runs no slot and has no next run",
            suspended(daily()),
            "2026-03-01T01:00:00Z",
            "2026-03-02T01:00:00.200Z",
            NOTHING,
        ),
        scenario(
            "an interval slot is on the job's phase",
            // default/job on 10 s: the phase is 5.658 s (FNV-1a of the id modulo 10,000 ms).
            ScheduledJobSpec::interval(10, IntervalUnit::Seconds),
            "2026-03-01T00:00:00Z",
            "2026-03-01T00:00:05.700Z",
            Expected {
                launch: vec![(Trigger::Schedule, t("2026-03-01T00:00:05.658Z"))],
                next_run: Some(t("2026-03-01T00:00:15.658Z")),
                ..NOTHING
            },
        ),
    ]
}
