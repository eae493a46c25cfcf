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
