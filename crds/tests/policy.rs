//! The run policy's core on the scenario table, and the one rule for edits.

mod scenarios;

use jtp_crds::policy::{Edit, Facts, Reason, StopReason, Timing, after_edit, next_run_after_edit, step};
use jtp_crds::{ScheduledJobSpec, validate};
use scenarios::{Expected, JOB, scenarios, t};

#[test]
fn every_scenario_steps_as_the_table_says() {
    for scenario in scenarios() {
        let schedule = validate(JOB, &scenario.spec).expect("scenario specs are valid");
        let active: Vec<usize> = (0..scenario.active).collect();
        let step = step(&Facts {
            schedule: &schedule,
            spec: &scenario.spec,
            handled_until: scenario.handled_until,
            run_now: scenario.run_now,
            active: &active,
            retry: None,
            now: scenario.now,
        });
        assert!(
            step.stop.iter().all(|s| s.reason == StopReason::Replaced),
            "{}",
            scenario.name
        );
        let seen = Expected {
            launch: step.launch.iter().map(|l| (l.trigger, l.slot)).collect(),
            stopped: step.stop.len(),
            skipped: step.skipped.iter().map(|s| (s.slot, s.reason)).collect(),
            missed_earlier: step.missed.truncated,
            next_run: step.next_run,
        };
        assert_eq!(seen, scenario.expected, "{}", scenario.name);
    }
}

#[test]
fn a_step_remembers_the_slot_it_handled_and_a_second_step_does_not_run_it_again() {
    let spec = ScheduledJobSpec::daily("09:00");
    let schedule = validate(JOB, &spec).expect("valid");
    let facts = |handled_until, now| Facts::<()> {
        schedule: &schedule,
        spec: &spec,
        handled_until,
        run_now: None,
        active: &[],
        retry: None,
        now,
    };
    let first = step(&facts(t("2026-03-01T01:00:00Z"), t("2026-03-02T01:00:00.2Z")));
    assert_eq!(first.handled_until, t("2026-03-02T01:00:00Z"));
    let again = step(&facts(first.handled_until, t("2026-03-02T01:00:01Z")));
    assert!(again.launch.is_empty());
    assert_eq!(again.handled_until, first.handled_until);
}

#[test]
fn reasons_have_one_wording_each() {
    let skipped = jtp_crds::policy::Skipped {
        slot: t("2026-03-02T01:00:00Z"),
        reason: Reason::PastDeadline {
            late_seconds: 300,
            deadline_seconds: 60,
        },
    };
    assert_eq!(
        skipped.to_string(),
        "slot 2026-03-02T01:00:00Z skipped: missed by 300 s, more than startingDeadlineSeconds (60 s)"
    );
    assert_eq!(
        Reason::StillRunning.to_string(),
        "the previous run is still running (concurrencyPolicy: Forbid)"
    );
    assert_eq!(Reason::StillRunning.label(), "Skipped");
    assert!(!Reason::StillRunning.is_warning());
    assert_eq!(StopReason::Replaced.label(), "Replaced");
    assert_eq!(
        StopReason::Replaced.to_string(),
        "replaced by a newer run (concurrencyPolicy: Replace)"
    );
    assert_eq!(Reason::MissedSlots.label(), "MissedSlots");
    assert!(Reason::MissedSlots.is_warning());
}

#[test]
fn an_edit_recomputes_from_now_only_when_schedule_zone_or_suspend_changed() {
    let now = t("2026-03-02T03:00:00Z");
    let kept = Some(t("2026-03-02T01:00:00Z")); // overdue: its one catch-up stays
    let timing = |spec: &ScheduledJobSpec| Timing::of(&validate(JOB, spec).expect("valid"), spec);
    let daily = ScheduledJobSpec::daily("09:00");

    let mut script_edit = daily.clone();
    script_edit.script.inline = Some("echo edited".into());
    let next = |old: &ScheduledJobSpec, new: &ScheduledJobSpec| {
        let edit = after_edit(Some(&timing(old)), &timing(new));
        let schedule = validate(JOB, new).expect("valid");
        (edit, next_run_after_edit(edit, kept, &schedule, new, now))
    };
    assert_eq!(next(&daily, &script_edit), (Edit::Keep, kept));

    let moved = ScheduledJobSpec::daily("10:00");
    assert_eq!(
        next(&daily, &moved),
        (Edit::FromNow, Some(t("2026-03-03T02:00:00Z")))
    );
    let zoned = ScheduledJobSpec::daily("09:00").in_zone("UTC");
    assert_eq!(
        next(&daily, &zoned),
        (Edit::FromNow, Some(t("2026-03-02T09:00:00Z")))
    );
    let mut paused = daily.clone();
    paused.suspend = true;
    assert_eq!(next(&daily, &paused), (Edit::FromNow, None));
    assert_eq!(
        next(&paused, &daily),
        (Edit::FromNow, Some(t("2026-03-03T01:00:00Z"))),
        "a resume starts from now"
    );
    // Two spellings of one interval are one timing.
    let minutes = ScheduledJobSpec::interval(15, jtp_crds::IntervalUnit::Minutes);
    let seconds = ScheduledJobSpec::interval(900, jtp_crds::IntervalUnit::Seconds);
    assert_eq!(next(&minutes, &seconds).0, Edit::Keep);
    // An old timing that is not known (the old spec was invalid) counts as a change.
    assert_eq!(after_edit(None, &timing(&daily)), Edit::FromNow);
}

mod retries_and_pause {
    use super::*;
    use jtp_crds::policy::{DropReason, PendingRetry, RetryStep, after_attempt, pause_due};
    use jtp_crds::{RunStatus, Trigger};

    fn retry_at(at: &str) -> PendingRetry {
        PendingRetry {
            scheduled_time: t("2026-03-02T01:00:00Z"),
            trigger: Trigger::Schedule,
            attempt: 2,
            at: t(at),
        }
    }

    #[test]
    fn a_failed_attempt_with_retries_left_gets_the_next_attempt_after_its_backoff() {
        let spec = ScheduledJobSpec::daily("09:00").retry(2, "30s");
        let slot = t("2026-03-02T01:00:00Z");
        let end = t("2026-03-02T01:00:05Z");
        for status in [RunStatus::Failure, RunStatus::Error] {
            assert_eq!(
                after_attempt(&spec, Trigger::Schedule, slot, 1, status, end),
                Some(PendingRetry {
                    scheduled_time: slot,
                    trigger: Trigger::Schedule,
                    attempt: 2,
                    at: t("2026-03-02T01:00:35Z"),
                })
            );
        }
        assert_eq!(
            after_attempt(&spec, Trigger::Schedule, slot, 2, RunStatus::Failure, end).map(|r| r.attempt),
            Some(3)
        );
        // The last attempt, a success and a job without retries: the slot is done.
        assert_eq!(
            after_attempt(&spec, Trigger::Schedule, slot, 3, RunStatus::Failure, end),
            None
        );
        assert_eq!(
            after_attempt(&spec, Trigger::Schedule, slot, 1, RunStatus::Success, end),
            None
        );
        let plain = ScheduledJobSpec::daily("09:00");
        assert_eq!(
            after_attempt(&plain, Trigger::Schedule, slot, 1, RunStatus::Failure, end),
            None
        );
    }

    #[test]
    fn exponential_backoff_doubles_between_attempts() {
        let mut spec = ScheduledJobSpec::daily("09:00").retry(5, "10s");
        if let Some(r) = spec.retries.as_mut() {
            r.backoff.strategy = jtp_crds::BackoffStrategy::Exponential;
            r.backoff.max_delay = Some("30s".into());
        }
        let end = t("2026-03-02T01:00:00Z");
        let waits: Vec<i64> = (1..=4)
            .map(|n| {
                let retry = after_attempt(&spec, Trigger::Manual, end, n, RunStatus::Failure, end)
                    .expect("retries left");
                (retry.at - end).num_seconds()
            })
            .collect();
        assert_eq!(waits, [10, 20, 30, 30]);
    }

    fn step_with(spec: &ScheduledJobSpec, retry: PendingRetry, now: &str, handled: &str) -> RetryStep {
        let schedule = validate(JOB, spec).expect("valid");
        step(&Facts::<()> {
            schedule: &schedule,
            spec,
            handled_until: t(handled),
            run_now: None,
            active: &[],
            retry: Some(retry),
            now: t(now),
        })
        .retry
    }

    #[test]
    fn a_pending_retry_waits_for_its_time_then_starts() {
        let spec = ScheduledJobSpec::daily("09:00").retry(1, "30s");
        let retry = retry_at("2026-03-02T01:00:35Z");
        let handled = "2026-03-02T01:00:00Z";
        assert_eq!(
            step_with(&spec, retry, "2026-03-02T01:00:34Z", handled),
            RetryStep::Wait(retry)
        );
        assert_eq!(
            step_with(&spec, retry, "2026-03-02T01:00:35Z", handled),
            RetryStep::Launch(retry)
        );
    }

    #[test]
    fn a_newer_scheduled_run_or_a_suspend_drops_the_pending_retry() {
        let spec = ScheduledJobSpec::daily("09:00").retry(1, "1d");
        let retry = retry_at("2026-03-03T01:00:05Z");
        // The next day's slot falls due first: it starts and the old slot's attempt is dropped.
        assert_eq!(
            step_with(&spec, retry, "2026-03-03T01:00:00Z", "2026-03-02T01:00:00Z"),
            RetryStep::Drop(retry, DropReason::Superseded)
        );
        let mut suspended = spec.clone();
        suspended.suspend = true;
        assert_eq!(
            step_with(&suspended, retry, "2026-03-03T01:00:06Z", "2026-03-02T01:00:00Z"),
            RetryStep::Drop(retry, DropReason::Suspended)
        );
        // A Run Now's attempts go on while the job is suspended: a person asked for that run.
        let manual = PendingRetry {
            trigger: Trigger::Manual,
            ..retry
        };
        assert_eq!(
            step_with(&suspended, manual, "2026-03-03T01:00:06Z", "2026-03-02T01:00:00Z"),
            RetryStep::Launch(manual)
        );
    }

    #[test]
    fn a_job_pauses_once_its_failures_in_a_row_reach_the_limit_and_again_after_as_many_more() {
        let spec = ScheduledJobSpec::daily("09:00").pause_after(3);
        let now = t("2026-03-02T01:00:00Z");
        assert_eq!(pause_due(&spec, 2, None, now), None);
        let pause = pause_due(&spec, 3, None, now).expect("pauses at 3");
        assert_eq!(pause.failures, 3);
        assert!(
            pause.message.contains("3 failed runs in a row")
                && pause.message.contains("pauseAfterConsecutiveFailures: 3"),
            "{}",
            pause.message
        );
        // Resumed at 3: it pauses again at 6, not at 4.
        assert_eq!(pause_due(&spec, 4, Some(3), now), None);
        assert_eq!(pause_due(&spec, 6, Some(3), now).map(|p| p.failures), Some(6));
        // A streak that started after a success is counted from zero.
        assert_eq!(pause_due(&spec, 3, Some(5), now).map(|p| p.failures), Some(3));
        // Suspended already, or no limit: nothing to do.
        let mut suspended = spec.clone();
        suspended.suspend = true;
        assert_eq!(pause_due(&suspended, 9, None, now), None);
        assert_eq!(pause_due(&ScheduledJobSpec::daily("09:00"), 9, None, now), None);
    }
}
