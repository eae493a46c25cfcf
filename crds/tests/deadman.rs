//! The dead-man's switch on a fixed clock, once per cause of silence. Each test drives the run
//! policy minute by minute as a scheduler would (or not at all, for a scheduler that is down),
//! keeps the job's last success from the runs it launched, and asks the switch at fixed instants.

mod scenarios;

use chrono::{DateTime, Duration, Utc};
use jtp_crds::policy::{Facts, step};
use jtp_crds::{Expectation, ScheduledJobSpec, validate};
use scenarios::{JOB, t};

/// How a launched run ends.
#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    Succeeds,
    Fails,
    /// Still running at the end of the simulation (it never finishes).
    Hangs,
}

/// A scheduler stepping `spec` every minute from `from` to `until`: runs that succeed finish a
/// minute after their slot. Returns the last success and how many slots were launched and skipped.
fn schedule(
    spec: &ScheduledJobSpec,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    outcome: Outcome,
    last_success: Option<DateTime<Utc>>,
) -> (Option<DateTime<Utc>>, usize, usize) {
    schedule_from(spec, from, from, until, outcome, last_success)
}

/// [`schedule`] for a scheduler that handled every slot up to `handled_until` and then stopped
/// until `from`.
fn schedule_from(
    spec: &ScheduledJobSpec,
    mut handled_until: DateTime<Utc>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    outcome: Outcome,
    mut last_success: Option<DateTime<Utc>>,
) -> (Option<DateTime<Utc>>, usize, usize) {
    let compiled = validate(JOB, spec).expect("valid spec");
    let mut active: Vec<DateTime<Utc>> = Vec::new();
    let (mut launched, mut skipped) = (0, 0);
    let mut now = from;
    while now <= until {
        let step = step(&Facts {
            schedule: &compiled,
            spec,
            handled_until,
            run_now: None,
            active: &active,
            retry: None,
            now,
        });
        handled_until = step.handled_until;
        skipped += step.skipped.len();
        for launch in &step.launch {
            launched += 1;
            match outcome {
                Outcome::Succeeds => last_success = Some(launch.slot + Duration::minutes(1)),
                Outcome::Fails => {}
                Outcome::Hangs => active.push(launch.slot),
            }
        }
        now += Duration::minutes(1);
    }
    (last_success, launched, skipped)
}

fn switch(since: &str, last_success: Option<DateTime<Utc>>) -> Expectation {
    Expectation {
        within: Duration::hours(26),
        since: t(since),
        last_success,
    }
}

/// The job succeeded on Monday 2026-03-02 at 01:01 UTC (09:01 in Hong Kong): due again by
/// Tuesday 03:01 UTC.
const LAST_SUCCESS: &str = "2026-03-02T01:01:00Z";
const DUE: &str = "2026-03-03T03:01:00Z";

fn last_success() -> Option<DateTime<Utc>> {
    Some(t(LAST_SUCCESS))
}

#[test]
fn a_job_that_succeeds_on_schedule_is_never_overdue() {
    let spec = ScheduledJobSpec::daily("09:00").expect_success_within("26h");
    let (success, launched, _) = schedule(
        &spec,
        t("2026-03-02T02:00:00Z"),
        t("2026-03-06T02:00:00Z"),
        Outcome::Succeeds,
        last_success(),
    );
    assert_eq!(launched, 4);
    assert_eq!(success, Some(t("2026-03-06T01:01:00Z")));
    let switch = switch("2026-03-01T00:00:00Z", success);
    assert_eq!(switch.check(t("2026-03-06T02:00:00Z")), None);
    assert_eq!(switch.deadline(), t("2026-03-07T03:01:00Z"));
}

#[test]
fn a_suspended_job_is_overdue_26_hours_after_its_last_success() {
    let mut spec = ScheduledJobSpec::daily("09:00").expect_success_within("26h");
    spec.suspend = true;
    let (success, launched, _) = schedule(
        &spec,
        t("2026-03-02T02:00:00Z"),
        t("2026-03-04T02:00:00Z"),
        Outcome::Succeeds,
        last_success(),
    );
    assert_eq!(launched, 0, "a suspended job starts nothing");
    let switch = switch("2026-03-01T00:00:00Z", success);
    assert_eq!(switch.check(t(DUE) - Duration::seconds(1)), None);
    let overdue = switch.check(t(DUE)).expect("overdue at the deadline");
    assert_eq!(overdue.deadline, t(DUE));
    assert_eq!(
        overdue.to_string(),
        "no success within 1d2h: the last one finished at 2026-03-02T01:01:00Z, so one was due by 2026-03-03T03:01:00Z"
    );
}

#[test]
fn a_schedule_edited_by_mistake_to_monthly_is_overdue() {
    // Meant "daily at 09:00", written as the first of the month: the next run is 2026-04-01.
    let spec = ScheduledJobSpec::monthly(1, "09:00").expect_success_within("26h");
    let (success, launched, _) = schedule(
        &spec,
        t("2026-03-02T02:00:00Z"),
        t("2026-03-04T02:00:00Z"),
        Outcome::Succeeds,
        last_success(),
    );
    assert_eq!(launched, 0);
    assert_eq!(
        switch("2026-03-01T00:00:00Z", success)
            .check(t(DUE))
            .map(|o| o.deadline),
        Some(t(DUE))
    );
}

#[test]
fn a_job_whose_slots_are_skipped_is_overdue() {
    // A run that hangs: Forbid skips every later slot while it is in flight.
    let spec = ScheduledJobSpec::daily("09:00").expect_success_within("26h");
    let (success, launched, skipped) = schedule(
        &spec,
        t("2026-03-02T02:00:00Z"),
        t("2026-03-04T02:00:00Z"),
        Outcome::Hangs,
        last_success(),
    );
    assert_eq!(
        (launched, skipped),
        (1, 1),
        "Tuesday's run hangs, Wednesday's slot is skipped"
    );
    assert!(switch("2026-03-01T00:00:00Z", success).check(t(DUE)).is_some());
}

#[test]
fn a_job_whose_runs_fail_is_overdue() {
    let spec = ScheduledJobSpec::interval(1, jtp_crds::IntervalUnit::Hours).expect_success_within("26h");
    let (success, launched, _) = schedule(
        &spec,
        t("2026-03-02T02:00:00Z"),
        t("2026-03-03T04:00:00Z"),
        Outcome::Fails,
        last_success(),
    );
    assert!(launched >= 26, "it ran every hour: {launched}");
    assert!(switch("2026-03-01T00:00:00Z", success).check(t(DUE)).is_some());
}

#[test]
fn a_manual_job_nobody_runs_is_overdue_from_when_it_was_expected_to_succeed() {
    let spec = ScheduledJobSpec::manual().expect_success_within("26h");
    let (success, launched, _) = schedule(
        &spec,
        t("2026-03-02T00:00:00Z"),
        t("2026-03-04T00:00:00Z"),
        Outcome::Succeeds,
        None,
    );
    assert_eq!((success, launched), (None, 0));
    let switch = switch("2026-03-02T00:00:00Z", success);
    assert_eq!(switch.check(t("2026-03-03T01:59:59Z")), None);
    let overdue = switch.check(t("2026-03-03T02:00:00Z")).expect("overdue");
    assert_eq!(
        overdue.to_string(),
        "no success within 1d2h: one was due by 2026-03-03T02:00:00Z"
    );
}

#[test]
fn a_scheduler_that_was_down_finds_the_job_overdue_since_the_original_deadline() {
    // Nothing steps between Monday 02:00 and Wednesday 10:00: the scheduler was down. Its first
    // check on return finds the job overdue since Tuesday 03:01, not 26 hours after the restart.
    let spec = ScheduledJobSpec::daily("09:00").expect_success_within("26h");
    let back = t("2026-03-04T10:00:00Z");
    let switch = switch("2026-03-01T00:00:00Z", last_success());
    assert_eq!(switch.check(back).map(|o| o.deadline), Some(t(DUE)));
    // The catch-up run that follows succeeds, and the deadline moves with it.
    let (success, launched, _) = schedule_from(
        &spec,
        t("2026-03-02T02:00:00Z"),
        back,
        back + Duration::minutes(5),
        Outcome::Succeeds,
        last_success(),
    );
    assert_eq!(launched, 1, "only the latest missed slot runs");
    let after = Expectation {
        last_success: success,
        ..switch
    };
    assert_eq!(after.check(back + Duration::minutes(5)), None);
}

#[test]
fn turning_the_switch_on_counts_from_then_not_from_an_old_success() {
    let old_success = Some(t("2026-01-01T00:00:00Z"));
    let switch = switch("2026-03-02T00:00:00Z", old_success);
    assert_eq!(switch.deadline(), t("2026-03-03T02:00:00Z"));
    assert_eq!(switch.check(t("2026-03-03T01:00:00Z")), None);
}
