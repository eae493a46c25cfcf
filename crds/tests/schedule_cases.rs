//! Table tests of the schedule engine on real cases, each with a fixed `now`.

use chrono::{DateTime, Utc};
use jtp_crds::{
    DstEffect, IntervalUnit, JobId, RepeatedTime, ScheduledJobSpec, SkippedTime, Slot, Weekday, validate,
};

/// The job the cases compile for, where the job does not matter (wall-clock forms).
const JOB: JobId<'static> = JobId {
    namespace: "default",
    name: "job",
};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test instant is RFC3339")
        .with_timezone(&Utc)
}

fn next(spec: &ScheduledJobSpec, after: &str) -> Option<DateTime<Utc>> {
    validate(JOB, spec).expect("spec is valid").next_after(at(after))
}

fn walk(spec: &ScheduledJobSpec, after: &str, n: usize) -> Vec<String> {
    let schedule = validate(JOB, spec).expect("spec is valid");
    let mut cursor = at(after);
    (0..n)
        .map(|_| {
            cursor = schedule.next_after(cursor).expect("schedule has a next run");
            cursor.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .collect()
}

#[test]
fn daily_nine_hkt_is_one_utc() {
    let spec = ScheduledJobSpec::daily("09:00");
    assert_eq!(
        next(&spec, "2026-11-29T00:00:00Z"),
        Some(at("2026-11-29T01:00:00Z"))
    );
    assert_eq!(
        next(&spec, "2026-11-29T01:00:00Z"),
        Some(at("2026-11-30T01:00:00Z"))
    );
}

#[test]
fn hourly_at_minute_thirty() {
    let spec = ScheduledJobSpec::hourly(30);
    assert_eq!(
        walk(&spec, "2026-11-29T09:29:59Z", 3),
        [
            "2026-11-29T09:30:00Z",
            "2026-11-29T10:30:00Z",
            "2026-11-29T11:30:00Z"
        ]
    );
}

#[test]
fn weekly_monday_asked_monday_after_the_time_is_next_monday() {
    // 2026-11-30 is a Monday; 09:30 HKT = 01:30 UTC.
    let spec = ScheduledJobSpec::weekly(&[Weekday::Monday], "09:00");
    assert_eq!(
        next(&spec, "2026-11-30T01:30:00Z"),
        Some(at("2026-12-07T01:00:00Z"))
    );
    assert_eq!(
        next(&spec, "2026-11-30T00:30:00Z"),
        Some(at("2026-11-30T01:00:00Z"))
    );
}

#[test]
fn weekly_several_days() {
    let spec = ScheduledJobSpec::weekly(&[Weekday::Friday, Weekday::Monday], "18:00").in_zone("UTC");
    assert_eq!(
        walk(&spec, "2026-11-29T00:00:00Z", 3),
        [
            "2026-11-30T18:00:00Z",
            "2026-12-04T18:00:00Z",
            "2026-12-07T18:00:00Z"
        ]
    );
}

#[test]
fn monthly_day_31_runs_on_the_last_day_of_short_months() {
    let spec = ScheduledJobSpec::monthly(31, "09:00");
    assert_eq!(
        walk(&spec, "2027-01-31T02:00:00Z", 3),
        [
            "2027-02-28T01:00:00Z",
            "2027-03-31T01:00:00Z",
            "2027-04-30T01:00:00Z"
        ]
    );
    // 2028 is a leap year.
    assert_eq!(
        next(&spec, "2028-02-01T00:00:00Z"),
        Some(at("2028-02-29T01:00:00Z"))
    );
}

#[test]
fn london_daily_0130_across_the_gap_and_the_overlap_runs_once_each_day() {
    let spec = ScheduledJobSpec::daily("01:30").in_zone("Europe/London");
    // 2027-03-28: clocks go 01:00 GMT -> 02:00 BST, so 01:30 does not exist; run at 02:00 BST = 01:00 UTC.
    assert_eq!(
        walk(&spec, "2027-03-26T12:00:00Z", 4),
        [
            "2027-03-27T01:30:00Z",
            "2027-03-28T01:00:00Z",
            "2027-03-29T00:30:00Z",
            "2027-03-30T00:30:00Z"
        ]
    );
    // 2027-10-31: clocks go 02:00 BST -> 01:00 GMT, 01:30 happens twice; run at the first (00:30 UTC) only.
    assert_eq!(
        walk(&spec, "2027-10-29T12:00:00Z", 4),
        [
            "2027-10-30T00:30:00Z",
            "2027-10-31T00:30:00Z",
            "2027-11-01T01:30:00Z",
            "2027-11-02T01:30:00Z"
        ]
    );
}

#[test]
fn new_york_0230_on_spring_forward_day_runs_at_0300_edt() {
    // 2027-03-14: 02:00 EST -> 03:00 EDT. 02:30 does not exist: run at 03:00 EDT = 07:00 UTC.
    let spec = ScheduledJobSpec::daily("02:30").in_zone("America/New_York");
    assert_eq!(
        walk(&spec, "2027-03-13T12:00:00Z", 3),
        [
            "2027-03-14T07:00:00Z",
            "2027-03-15T06:30:00Z",
            "2027-03-16T06:30:00Z"
        ]
    );
}

#[test]
fn cron_every_five_minutes_in_hkt() {
    let spec = ScheduledJobSpec::cron("*/5 * * * *");
    assert_eq!(
        walk(&spec, "2026-11-29T09:02:10Z", 3),
        [
            "2026-11-29T09:05:00Z",
            "2026-11-29T09:10:00Z",
            "2026-11-29T09:15:00Z"
        ]
    );
}

#[test]
fn cron_wall_time_is_read_in_the_zone() {
    // 09:00 on weekdays in HKT = 01:00 UTC; 2026-11-28 is a Saturday.
    let spec = ScheduledJobSpec::cron("0 9 * * 1-5");
    assert_eq!(
        walk(&spec, "2026-11-27T02:00:00Z", 2),
        ["2026-11-30T01:00:00Z", "2026-12-01T01:00:00Z"]
    );
}

#[test]
fn cron_every_thirty_minutes_in_the_london_overlap_runs_in_both_passes_by_default() {
    // Every 30 minutes across the October overlap: 01:00 and 01:30 happen twice, and the minute
    // field starts with `*`, so (as in Vixie cron) the job runs whenever the clock shows them.
    let spec = ScheduledJobSpec::cron("*/30 * * * *").in_zone("Europe/London");
    assert_eq!(
        walk(&spec, "2027-10-30T23:45:00Z", 5),
        [
            "2027-10-31T00:00:00Z", // 01:00 BST
            "2027-10-31T00:30:00Z", // 01:30 BST
            "2027-10-31T01:00:00Z", // 01:00 GMT, the second pass
            "2027-10-31T01:30:00Z", // 01:30 GMT
            "2027-10-31T02:00:00Z", // 02:00 GMT
        ]
    );
}

#[test]
fn interval_fifteen_minutes_is_fifteen_minutes_apart_in_any_zone() {
    let spec = ScheduledJobSpec::interval(15, IntervalUnit::Minutes);
    // JOB's phase for 15 minutes is 755,658 ms (FNV-1a of "default/job" modulo 900,000 ms); the
    // cases print whole seconds.
    assert_eq!(
        walk(&spec, "2026-11-29T09:07:31Z", 3),
        [
            "2026-11-29T09:12:35Z",
            "2026-11-29T09:27:35Z",
            "2026-11-29T09:42:35Z"
        ]
    );
    // The zone does not move an interval.
    let london = ScheduledJobSpec::interval(15, IntervalUnit::Minutes).in_zone("Europe/London");
    assert_eq!(
        next(&london, "2026-11-29T09:07:31Z"),
        Some(at("2026-11-29T09:12:35.658Z"))
    );
}

#[test]
fn a_jobs_interval_phase_comes_from_its_namespace_and_name() {
    let spec = ScheduledJobSpec::interval(15, IntervalUnit::Minutes);
    let schedule = |namespace: &str, name: &str| validate(JobId { namespace, name }, &spec).expect("valid");
    let walk = |ns: &str, name: &str| {
        let s = schedule(ns, name);
        let mut cursor = at("2026-11-29T09:07:31Z");
        (0..3)
            .map(|_| {
                cursor = s.next_after(cursor).expect("next");
                cursor.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            })
            .collect::<Vec<_>>()
    };
    // Pinned: the phase is FNV-1a of "namespace/name" modulo the interval in milliseconds (834,277
    // and 184,382 here, computed outside this code). Changing it would move every job's slots.
    assert_eq!(
        walk("default", "nightly-report"),
        [
            "2026-11-29T09:13:54.277Z",
            "2026-11-29T09:28:54.277Z",
            "2026-11-29T09:43:54.277Z"
        ]
    );
    assert_eq!(
        walk("ops", "nightly-report")[0],
        "2026-11-29T09:18:04.382Z",
        "another namespace, another phase"
    );
    assert_eq!(
        walk("default", "nightly-report"),
        walk("default", "nightly-report")
    );
    // Exactly on a slot, the next one is a whole interval later; a millisecond before, it is the slot.
    let s = schedule("default", "nightly-report");
    let slot = at("2026-11-29T09:13:54.277Z");
    assert_eq!(s.next_after(slot), Some(at("2026-11-29T09:28:54.277Z")));
    assert_eq!(s.next_after(slot - chrono::Duration::milliseconds(1)), Some(slot));
    assert_eq!(s.next_after(slot - chrono::Duration::nanoseconds(1)), Some(slot));
    // Wall-clock forms keep their wall times.
    let daily = validate(
        JobId {
            namespace: "default",
            name: "nightly-report",
        },
        &ScheduledJobSpec::daily("14:00"),
    )
    .expect("valid");
    assert_eq!(
        daily.next_after(at("2026-11-29T00:00:00Z")),
        Some(at("2026-11-29T06:00:00Z"))
    );
}

#[test]
fn many_jobs_on_one_interval_spread_over_it() {
    let spec = ScheduledJobSpec::interval(60, IntervalUnit::Seconds);
    let after = at("2026-11-29T09:00:00Z");
    let mut per_second = [0usize; 60];
    for i in 0..1_000 {
        let name = format!("job-{i}");
        let id = JobId {
            namespace: "default",
            name: &name,
        };
        let next = validate(id, &spec)
            .expect("valid")
            .next_after(after)
            .expect("next");
        assert!(next > after && next <= after + chrono::Duration::seconds(60));
        per_second[usize::try_from((next - after).num_seconds()).expect("positive") % 60] += 1;
    }
    // 1,000 jobs over 60 seconds: about 17 a second, none empty, no second with a crowd
    // (without the phase, all 1,000 would start at 09:01:00).
    let busiest = per_second.iter().max().copied().unwrap_or(0);
    assert!(per_second.iter().all(|n| *n > 0), "{per_second:?}");
    assert!(
        busiest <= 35,
        "busiest second has {busiest} starts: {per_second:?}"
    );
}

#[test]
fn manual_has_no_next_run() {
    assert_eq!(next(&ScheduledJobSpec::manual(), "2026-11-29T00:00:00Z"), None);
}

#[test]
fn missed_slots_are_bounded_for_a_job_down_a_year() {
    let schedule = validate(JOB, &ScheduledJobSpec::cron("* * * * *")).expect("valid");
    let started = std::time::Instant::now();
    let missed = schedule.missed(at("2025-11-29T00:00:00Z"), at("2026-11-29T00:00:30Z"), 3);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(missed.truncated);
    assert_eq!(
        missed.recent,
        [
            at("2026-11-28T23:58:00Z"),
            at("2026-11-28T23:59:00Z"),
            at("2026-11-29T00:00:00Z")
        ]
    );
    assert_eq!(missed.latest(), Some(at("2026-11-29T00:00:00Z")));
}

#[test]
fn missed_slots_when_few_were_missed() {
    let schedule = validate(JOB, &ScheduledJobSpec::daily("09:00")).expect("valid");
    let missed = schedule.missed(at("2026-11-27T01:00:00Z"), at("2026-11-29T05:00:00Z"), 10);
    assert!(!missed.truncated);
    assert_eq!(
        missed.recent,
        [at("2026-11-28T01:00:00Z"), at("2026-11-29T01:00:00Z")]
    );
    let none = schedule.missed(at("2026-11-29T01:00:00Z"), at("2026-11-29T05:00:00Z"), 10);
    assert!(none.recent.is_empty() && !none.truncated);
    let one_of_two = schedule.missed(at("2026-11-27T01:00:00Z"), at("2026-11-29T05:00:00Z"), 1);
    assert!(one_of_two.truncated);
    assert_eq!(one_of_two.recent, [at("2026-11-29T01:00:00Z")]);
}

#[test]
fn descriptions_read_like_sentences() {
    let describe = |spec: ScheduledJobSpec| validate(JOB, &spec).expect("valid").describe();
    assert_eq!(
        describe(ScheduledJobSpec::weekly(&[Weekday::Monday], "09:00")),
        "Every Monday at 09:00 (Asia/Hong_Kong)"
    );
    assert_eq!(
        describe(ScheduledJobSpec::weekly(
            &[Weekday::Friday, Weekday::Monday, Weekday::Wednesday],
            "18:30"
        )),
        "Every Monday, Wednesday and Friday at 18:30 (Asia/Hong_Kong)"
    );
    assert_eq!(
        describe(ScheduledJobSpec::daily("14:00")),
        "Every day at 14:00 (Asia/Hong_Kong)"
    );
    assert_eq!(
        describe(ScheduledJobSpec::hourly(30)),
        "Every hour at minute 30 (Asia/Hong_Kong)"
    );
    assert_eq!(
        describe(ScheduledJobSpec::interval(15, IntervalUnit::Minutes)),
        "Every 15 minutes"
    );
    assert_eq!(
        describe(ScheduledJobSpec::interval(90, IntervalUnit::Seconds)),
        "Every 90 seconds"
    );
    assert_eq!(
        describe(ScheduledJobSpec::interval(1, IntervalUnit::Hours)),
        "Every hour"
    );
    assert_eq!(
        describe(ScheduledJobSpec::monthly(31, "09:00")),
        "Monthly on day 31 (or the month's last day) at 09:00 (Asia/Hong_Kong)"
    );
    assert_eq!(
        describe(ScheduledJobSpec::manual()),
        "Manual: runs only when triggered"
    );
    assert!(describe(ScheduledJobSpec::cron("*/5 * * * *")).starts_with("Cron \"*/5 * * * *\""));
}

fn with_dst(
    spec: ScheduledJobSpec,
    repeated: Option<RepeatedTime>,
    skipped: Option<SkippedTime>,
) -> ScheduledJobSpec {
    spec.on_dst(repeated, skipped)
}

#[test]
fn every_thirty_minutes_in_new_york_has_no_hole_on_the_autumn_change_day() {
    // 2026-11-01: 02:00 EDT -> 01:00 EST. By default a `*/30` job runs through both passes of
    // 01:00–01:59, every 30 minutes of real time.
    let spec = ScheduledJobSpec::cron("*/30 * * * *").in_zone("America/New_York");
    assert_eq!(
        walk(&spec, "2026-11-01T04:45:00Z", 6),
        [
            "2026-11-01T05:00:00Z", // 01:00 EDT
            "2026-11-01T05:30:00Z", // 01:30 EDT
            "2026-11-01T06:00:00Z", // 01:00 EST
            "2026-11-01T06:30:00Z", // 01:30 EST
            "2026-11-01T07:00:00Z", // 02:00 EST
            "2026-11-01T07:30:00Z",
        ]
    );
    // Choosing the first pass only leaves the hour-and-a-half hole the old rule had.
    let once = with_dst(spec, Some(RepeatedTime::First), None);
    assert_eq!(
        walk(&once, "2026-11-01T04:45:00Z", 3),
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T07:00:00Z"
        ]
    );
}

#[test]
fn hourly_in_new_york_runs_twice_in_the_repeated_hour_and_not_in_the_skipped_one() {
    let spec = ScheduledJobSpec::hourly(30).in_zone("America/New_York");
    assert_eq!(
        walk(&spec, "2026-11-01T04:45:00Z", 3),
        [
            "2026-11-01T05:30:00Z", // 01:30 EDT
            "2026-11-01T06:30:00Z", // 01:30 EST
            "2026-11-01T07:30:00Z", // 02:30 EST
        ]
    );
    // 2027-03-14: 02:00 EST -> 03:00 EDT; 02:30 does not exist and is skipped.
    assert_eq!(
        walk(&spec, "2027-03-14T06:00:00Z", 2),
        [
            "2027-03-14T06:30:00Z", // 01:30 EST
            "2027-03-14T07:30:00Z", // 03:30 EDT
        ]
    );
    let at_gap_end = with_dst(spec.clone(), None, Some(SkippedTime::EndOfGap));
    assert_eq!(
        walk(&at_gap_end, "2027-03-14T06:00:00Z", 3),
        [
            "2027-03-14T06:30:00Z",
            "2027-03-14T07:00:00Z", // 03:00 EDT, for 02:30
            "2027-03-14T07:30:00Z",
        ]
    );
    let second = with_dst(spec, Some(RepeatedTime::Second), None);
    assert_eq!(
        walk(&second, "2026-11-01T04:45:00Z", 2),
        ["2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"]
    );
}

#[test]
fn a_fixed_daily_time_in_the_repeated_hour_runs_once_unless_the_job_chooses() {
    let spec = ScheduledJobSpec::daily("01:30").in_zone("America/New_York");
    let day = |spec: &ScheduledJobSpec| {
        let schedule = validate(JOB, spec).expect("valid");
        let (from, to) = (at("2026-11-01T00:00:00Z"), at("2026-11-02T00:00:00Z"));
        let mut out = Vec::new();
        let mut cursor = from;
        while let Some(next) = schedule.next_after(cursor).filter(|t| *t < to) {
            out.push(next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            cursor = next;
        }
        out
    };
    assert_eq!(day(&spec), ["2026-11-01T05:30:00Z"], "default: first occurrence");
    assert_eq!(
        day(&with_dst(spec.clone(), Some(RepeatedTime::First), None)),
        ["2026-11-01T05:30:00Z"]
    );
    assert_eq!(
        day(&with_dst(spec.clone(), Some(RepeatedTime::Second), None)),
        ["2026-11-01T06:30:00Z"]
    );
    assert_eq!(
        day(&with_dst(spec, Some(RepeatedTime::Both), None)),
        ["2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z"]
    );
}

#[test]
fn a_fixed_time_in_the_skipped_hour_runs_at_the_end_of_the_gap_or_not_at_all() {
    // Europe/London 2027-03-28: 01:00 GMT -> 02:00 BST.
    let spec = ScheduledJobSpec::cron("30 1 * * *").in_zone("Europe/London");
    assert_eq!(
        walk(&spec, "2027-03-27T12:00:00Z", 2),
        ["2027-03-28T01:00:00Z", "2027-03-29T00:30:00Z"],
        "default: 02:00 BST, the end of the gap"
    );
    let skip = with_dst(spec, None, Some(SkippedTime::Skip));
    assert_eq!(
        walk(&skip, "2027-03-27T12:00:00Z", 2),
        ["2027-03-29T00:30:00Z", "2027-03-30T00:30:00Z"],
        "skipped on the change day"
    );
    // Lord Howe moves by 30 minutes: 2027-10-03 02:00 -> 02:30 (+10:30 -> +11:00).
    let lord_howe = ScheduledJobSpec::daily("02:15").in_zone("Australia/Lord_Howe");
    assert_eq!(
        next(&lord_howe, "2027-10-02T00:00:00Z"),
        Some(at("2027-10-02T15:30:00Z")),
        "02:30 +11:00"
    );
    assert_eq!(
        next(
            &with_dst(lord_howe, None, Some(SkippedTime::Skip)),
            "2027-10-02T00:00:00Z"
        ),
        Some(at("2027-10-03T15:15:00Z"))
    );
}

#[test]
fn the_slot_says_what_dst_did_and_the_left_out_times_are_listed() {
    let schedule = validate(JOB, &ScheduledJobSpec::hourly(30).in_zone("America/New_York")).expect("valid");
    let first = schedule.next_slot(at("2026-11-01T05:00:00Z")).expect("slot");
    assert_eq!(first.at, at("2026-11-01T05:30:00Z"));
    assert_eq!(first.dst, DstEffect::FirstOfRepeated);
    assert_eq!(first.wall.to_string(), "2026-11-01 01:30:00");
    let second = schedule.next_slot(first.at).expect("slot");
    assert_eq!(second.dst, DstEffect::SecondOfRepeated);
    assert_eq!(second.wall, first.wall);
    assert_eq!(schedule.next_slot(second.at).expect("slot").dst, DstEffect::None);
    // In spring, 02:30 is left out: listed with the instant it would have had (03:00 EDT).
    assert_eq!(
        schedule.dst_skips(at("2027-03-14T00:00:00Z"), at("2027-03-15T00:00:00Z")),
        [Slot {
            at: at("2027-03-14T07:00:00Z"),
            wall: "2027-03-14T02:30:00".parse().expect("wall"),
            dst: DstEffect::EndOfGap,
        }]
    );
    let daily = validate(
        JOB,
        &ScheduledJobSpec::daily("01:30")
            .in_zone("America/New_York")
            .on_dst(Some(RepeatedTime::Second), None),
    )
    .expect("valid");
    // The first pass of 01:30 (05:30 UTC) is left out under `Second`.
    assert_eq!(
        daily.dst_skips(at("2026-11-01T00:00:00Z"), at("2026-11-02T00:00:00Z")),
        [Slot {
            at: at("2026-11-01T05:30:00Z"),
            wall: "2026-11-01T01:30:00".parse().expect("wall"),
            dst: DstEffect::FirstOfRepeated,
        }]
    );
    let gap = validate(JOB, &ScheduledJobSpec::daily("02:30").in_zone("America/New_York")).expect("valid");
    let slot = gap.next_slot(at("2027-03-14T00:00:00Z")).expect("slot");
    assert_eq!(
        (slot.at, slot.dst),
        (at("2027-03-14T07:00:00Z"), DstEffect::EndOfGap)
    );
}

#[test]
fn the_dst_policy_is_described_with_its_defaults() {
    let describe = |spec: ScheduledJobSpec| validate(JOB, &spec).expect("valid").describe_dst();
    assert_eq!(
        describe(ScheduledJobSpec::hourly(5)).as_deref(),
        Some("a repeated time runs at both occurrences; a skipped time does not run (defaults)")
    );
    assert_eq!(
        describe(ScheduledJobSpec::daily("02:30")).as_deref(),
        Some(
            "a repeated time runs once, at its first occurrence; a skipped time runs at the end of the gap (defaults)"
        )
    );
    assert_eq!(
        describe(ScheduledJobSpec::daily("02:30").on_dst(Some(RepeatedTime::Second), None)).as_deref(),
        Some(
            "a repeated time runs once, at its second occurrence; a skipped time runs at the end of the gap (partly defaults)"
        )
    );
    assert_eq!(describe(ScheduledJobSpec::interval(1, IntervalUnit::Hours)), None);
    let zone_has_dst = |zone: &str| {
        validate(JOB, &ScheduledJobSpec::daily("09:00").in_zone(zone))
            .expect("valid")
            .zone_has_dst()
    };
    assert!(zone_has_dst("Europe/London"));
    assert!(!zone_has_dst("Asia/Hong_Kong"));
    assert!(!zone_has_dst("UTC"));
}
