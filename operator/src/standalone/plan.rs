//! The runner's pure decision for one due job: which slot to run (if any), why a slot is skipped,
//! and the job's next run. No clock and no database: `now` and the job's state come in, a
//! [`Plan`] comes out.

use chrono::{DateTime, Duration, Utc};
use jtp_crds::{CompiledSchedule, ConcurrencyPolicy, ScheduledJobSpec, Trigger};

/// What the runner knows about a job when it looks at it.
#[derive(Clone, Debug)]
pub struct JobState<'a> {
    pub spec: &'a ScheduledJobSpec,
    pub schedule: &'a CompiledSchedule,
    /// The slot the job is waiting for (`scheduled_jobs.next_run`).
    pub next_run: Option<DateTime<Utc>>,
    /// A pending Run Now, if any.
    pub run_now: Option<DateTime<Utc>>,
    /// Runs of this job still in flight.
    pub active_runs: usize,
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub action: Action,
    /// The job's next run after this decision (`None` for manual and suspended jobs).
    pub next_run: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing is due yet.
    Wait,
    /// Start a run for this slot; `replace` stops the runs in flight first.
    Run {
        slot: DateTime<Utc>,
        trigger: Trigger,
        replace: bool,
    },
    /// The slot is not run; the reason is logged and shown.
    Skip { slot: DateTime<Utc>, reason: String },
}

/// Decides what to do with a job at `now`.
///
/// - Run Now wins: it runs once, even for suspended and manual jobs.
/// - A due slot runs at most once. When slots were missed (the runner was down), only the latest
///   one runs, and only if it is within `startingDeadlineSeconds`; never a burst.
/// - The next run is always computed from `now`, so nothing fires retroactively.
pub fn plan(job: &JobState<'_>, now: DateTime<Utc>) -> Plan {
    let next_run = upcoming(job, now);
    if let Some(requested) = job.run_now.filter(|at| *at <= now) {
        return Plan {
            action: concurrency(job, requested, Trigger::Manual),
            next_run,
        };
    }
    let Some(due) = job.next_run.filter(|slot| *slot <= now) else {
        return Plan {
            action: Action::Wait,
            next_run: job.next_run.or(next_run),
        };
    };
    if job.spec.suspend || job.schedule.is_manual() {
        return Plan {
            action: Action::Wait,
            next_run,
        };
    }
    // The latest slot that has fallen due: the one a catch-up may run.
    let latest = job
        .schedule
        .missed(due - Duration::nanoseconds(1), now, 1)
        .latest()
        .unwrap_or(due);
    let late = now - latest;
    if let Some(deadline) = job.spec.starting_deadline_seconds.map(Duration::seconds)
        && late > deadline
    {
        let reason = format!(
            "missed by {} s, more than the starting deadline of {} s",
            late.num_seconds(),
            deadline.num_seconds()
        );
        return Plan {
            action: Action::Skip { slot: latest, reason },
            next_run,
        };
    }
    Plan {
        action: concurrency(job, latest, Trigger::Schedule),
        next_run,
    }
}

fn concurrency(job: &JobState<'_>, slot: DateTime<Utc>, trigger: Trigger) -> Action {
    if job.active_runs == 0 {
        return Action::Run {
            slot,
            trigger,
            replace: false,
        };
    }
    match job.spec.concurrency_policy {
        ConcurrencyPolicy::Allow => Action::Run {
            slot,
            trigger,
            replace: false,
        },
        ConcurrencyPolicy::Replace => Action::Run {
            slot,
            trigger,
            replace: true,
        },
        ConcurrencyPolicy::Forbid => Action::Skip {
            slot,
            reason: "the previous run is still running (concurrencyPolicy: Forbid)".to_owned(),
        },
    }
}

/// The next slot strictly after `now`, or none for manual and suspended jobs.
pub fn upcoming(job: &JobState<'_>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if job.spec.suspend {
        return None;
    }
    job.schedule.next_after(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jtp_crds::{IntervalUnit, JobId, validate};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    fn decide(
        spec: &ScheduledJobSpec,
        next_run: Option<&str>,
        run_now: Option<&str>,
        active: usize,
        now: &str,
    ) -> Plan {
        let id = JobId {
            namespace: "default",
            name: "job",
        };
        let schedule = validate(id, spec).expect("valid");
        plan(
            &JobState {
                spec,
                schedule: &schedule,
                next_run: next_run.map(at),
                run_now: run_now.map(at),
                active_runs: active,
            },
            at(now),
        )
    }

    #[test]
    fn a_due_slot_runs_and_the_next_is_after_now() {
        let spec = ScheduledJobSpec::daily("09:00");
        let plan = decide(
            &spec,
            Some("2026-11-30T01:00:00Z"),
            None,
            0,
            "2026-11-30T01:00:00.050Z",
        );
        assert_eq!(
            plan.action,
            Action::Run {
                slot: at("2026-11-30T01:00:00Z"),
                trigger: Trigger::Schedule,
                replace: false
            }
        );
        assert_eq!(plan.next_run, Some(at("2026-12-01T01:00:00Z")));
    }

    #[test]
    fn nothing_is_due_before_the_slot() {
        let spec = ScheduledJobSpec::daily("09:00");
        let plan = decide(
            &spec,
            Some("2026-11-30T01:00:00Z"),
            None,
            0,
            "2026-11-30T00:59:59Z",
        );
        assert_eq!(
            plan,
            Plan {
                action: Action::Wait,
                next_run: Some(at("2026-11-30T01:00:00Z"))
            }
        );
    }

    #[test]
    fn after_downtime_only_the_latest_missed_slot_runs_once() {
        let spec = ScheduledJobSpec::interval(10, IntervalUnit::Minutes);
        let plan = decide(
            &spec,
            Some("2026-11-30T01:00:00Z"),
            None,
            0,
            "2026-11-30T03:05:00Z",
        );
        // "default/job" on 10 minutes has the phase 2 min 35.658 s.
        assert_eq!(
            plan.action,
            Action::Run {
                slot: at("2026-11-30T03:02:35.658Z"),
                trigger: Trigger::Schedule,
                replace: false
            }
        );
        assert_eq!(plan.next_run, Some(at("2026-11-30T03:12:35.658Z")));
    }

    #[test]
    fn a_slot_missed_past_the_starting_deadline_is_skipped() {
        let mut spec = ScheduledJobSpec::daily("09:00");
        spec.starting_deadline_seconds = Some(300);
        let plan = decide(
            &spec,
            Some("2026-11-30T01:00:00Z"),
            None,
            0,
            "2026-11-30T01:10:00Z",
        );
        assert!(matches!(plan.action, Action::Skip { slot, .. } if slot == at("2026-11-30T01:00:00Z")));
        assert_eq!(plan.next_run, Some(at("2026-12-01T01:00:00Z")));
        let within = decide(
            &spec,
            Some("2026-11-30T01:00:00Z"),
            None,
            0,
            "2026-11-30T01:04:00Z",
        );
        assert!(matches!(within.action, Action::Run { .. }));
    }

    #[test]
    fn forbid_skips_while_a_run_is_active_and_replace_replaces() {
        let mut spec = ScheduledJobSpec::interval(10, IntervalUnit::Seconds);
        let plan = decide(
            &spec,
            Some("2026-11-30T01:00:00Z"),
            None,
            1,
            "2026-11-30T01:00:00Z",
        );
        assert!(matches!(plan.action, Action::Skip { .. }));
        spec.concurrency_policy = ConcurrencyPolicy::Replace;
        let plan = decide(
            &spec,
            Some("2026-11-30T01:00:00Z"),
            None,
            1,
            "2026-11-30T01:00:00Z",
        );
        assert!(matches!(plan.action, Action::Run { replace: true, .. }));
        spec.concurrency_policy = ConcurrencyPolicy::Allow;
        let plan = decide(
            &spec,
            Some("2026-11-30T01:00:00Z"),
            None,
            1,
            "2026-11-30T01:00:00Z",
        );
        assert!(matches!(plan.action, Action::Run { replace: false, .. }));
    }

    #[test]
    fn run_now_runs_manual_and_suspended_jobs_once() {
        let manual = ScheduledJobSpec::manual();
        let plan = decide(
            &manual,
            Some("2026-11-30T01:00:00Z"),
            Some("2026-11-30T01:00:00Z"),
            0,
            "2026-11-30T01:00:01Z",
        );
        assert_eq!(
            plan,
            Plan {
                action: Action::Run {
                    slot: at("2026-11-30T01:00:00Z"),
                    trigger: Trigger::Manual,
                    replace: false
                },
                next_run: None
            }
        );
        let mut suspended = ScheduledJobSpec::daily("09:00");
        suspended.suspend = true;
        let plan = decide(
            &suspended,
            None,
            Some("2026-11-30T01:00:00Z"),
            0,
            "2026-11-30T01:00:01Z",
        );
        assert!(matches!(
            plan.action,
            Action::Run {
                trigger: Trigger::Manual,
                ..
            }
        ));
        assert_eq!(plan.next_run, None);
    }

    #[test]
    fn suspended_jobs_do_not_run_by_schedule() {
        let mut spec = ScheduledJobSpec::daily("09:00");
        spec.suspend = true;
        let plan = decide(
            &spec,
            Some("2026-11-30T01:00:00Z"),
            None,
            0,
            "2026-11-30T01:00:00Z",
        );
        assert_eq!(
            plan,
            Plan {
                action: Action::Wait,
                next_run: None
            }
        );
    }
}
