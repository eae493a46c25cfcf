//! Property tests over many zones and random instants, against a brute-force reference that knows
//! nothing of the engine: it walks UTC minute by minute, notes every instant at which the local
//! clock shows each wall time, and applies the DST policy to that list: one instant is an ordinary
//! time, two are a repeated time (first, second or both), none is a skipped time (the first instant
//! whose local time passes it, or nothing).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::{TZ_VARIANTS, Tz};
use jtp_crds::{IntervalUnit, JobId, RepeatedTime, ScheduledJobSpec, SkippedTime, Weekday, validate};

/// The job the properties compile for, where the job does not matter.
const JOB: JobId<'static> = JobId {
    namespace: "default",
    name: "job",
};
use proptest::prelude::*;
use std::collections::HashMap;
use std::str::FromStr;

#[derive(Clone, Debug)]
enum Form {
    Hourly(u32),
    Daily(u32, u32),
    Weekly(Vec<Weekday>, u32, u32),
    Monthly(u32, u32, u32),
    Cron(&'static str),
    Interval(u64, IntervalUnit),
}

const CRONS: [&str; 11] = [
    "*/5 * * * *",
    "0 9 * * 1-5",
    "30 1,2,3 * * *",
    "15 2 * * 0",
    "0 0 1 * *",
    "*/20 0-3 * * *",
    "@hourly",
    "@daily",
    "0 9 * * mon-fri",
    "15 */2 * * *",
    "0,30 1-2 * * *",
];

/// The five-field form of a macro, for the reference matcher.
fn expanded(expr: &str) -> &str {
    match expr {
        "@hourly" => "0 * * * *",
        "@daily" => "0 0 * * *",
        other => other,
    }
}

/// A job's DST choices: `None` leaves the default.
type Choice = (Option<RepeatedTime>, Option<SkippedTime>);

fn choice() -> impl Strategy<Value = Choice> {
    (
        prop::option::of(prop::sample::select(vec![
            RepeatedTime::First,
            RepeatedTime::Second,
            RepeatedTime::Both,
        ])),
        prop::option::of(prop::sample::select(vec![
            SkippedTime::EndOfGap,
            SkippedTime::Skip,
        ])),
    )
}

/// The documented defaults, written out independently of the engine.
fn effective(form: &Form, (repeated, skipped): Choice) -> (RepeatedTime, SkippedTime) {
    let repeats = match form {
        Form::Hourly(_) => true,
        Form::Cron(expr) => {
            let fields: Vec<&str> = expanded(expr).split(' ').collect();
            fields[0].starts_with('*') || fields[1].starts_with('*')
        }
        _ => false,
    };
    let (r, s) = if repeats {
        (RepeatedTime::Both, SkippedTime::Skip)
    } else {
        (RepeatedTime::First, SkippedTime::EndOfGap)
    };
    (repeated.unwrap_or(r), skipped.unwrap_or(s))
}

fn form() -> impl Strategy<Value = Form> {
    let hhmm = (0u32..24, prop::sample::select(vec![0u32, 1, 15, 30, 45, 59]));
    prop_oneof![
        (0u32..60).prop_map(Form::Hourly),
        hhmm.clone().prop_map(|(h, m)| Form::Daily(h, m)),
        (
            prop::sample::subsequence(Weekday::ALL.to_vec(), 1..=3),
            hhmm.clone()
        )
            .prop_map(|(days, (h, m))| Form::Weekly(days, h, m)),
        (prop::sample::select(vec![1u32, 15, 28, 29, 30, 31]), hhmm)
            .prop_map(|(d, (h, m))| Form::Monthly(d, h, m)),
        prop::sample::select(CRONS.to_vec()).prop_map(Form::Cron),
        (
            prop::sample::select(vec![10u64, 45, 90, 3600]),
            Just(IntervalUnit::Seconds)
        )
            .prop_map(|(n, u)| Form::Interval(n, u)),
    ]
}

fn spec(form: &Form, zone: &str, (repeated, skipped): Choice) -> ScheduledJobSpec {
    let hm = |h: u32, m: u32| format!("{h:02}:{m:02}");
    match form {
        Form::Hourly(m) => ScheduledJobSpec::hourly(*m),
        Form::Daily(h, m) => ScheduledJobSpec::daily(&hm(*h, *m)),
        Form::Weekly(days, h, m) => ScheduledJobSpec::weekly(days, &hm(*h, *m)),
        Form::Monthly(d, h, m) => ScheduledJobSpec::monthly(*d, &hm(*h, *m)),
        Form::Cron(expr) => ScheduledJobSpec::cron(expr),
        Form::Interval(n, unit) => ScheduledJobSpec::interval(*n, *unit),
    }
    .in_zone(zone)
    .on_dst(repeated, skipped)
}

fn last_day(date: NaiveDate) -> u32 {
    (28..=31)
        .rev()
        .find(|d| date.with_day(*d).is_some())
        .unwrap_or(28)
}

/// Does this local wall time (on a minute) belong to the schedule? Independent of the engine.
fn matcher(form: &Form) -> impl Fn(NaiveDateTime) -> bool + '_ {
    let cron = match form {
        Form::Cron(expr) => Some(croner::Cron::from_str(expanded(expr)).expect("test cron parses")),
        _ => None,
    };
    move |wall| matches(form, cron.as_ref(), wall)
}

fn matches(form: &Form, cron: Option<&croner::Cron>, wall: NaiveDateTime) -> bool {
    let (h, m) = (wall.hour(), wall.minute());
    match form {
        Form::Hourly(minute) => m == *minute,
        Form::Daily(hh, mm) => (h, m) == (*hh, *mm),
        Form::Weekly(days, hh, mm) => {
            (h, m) == (*hh, *mm) && days.iter().any(|d| d.to_chrono() == wall.weekday())
        }
        Form::Monthly(day, hh, mm) => (h, m) == (*hh, *mm) && wall.day() == (*day).min(last_day(wall.date())),
        Form::Cron(_) => cron
            .expect("parsed above")
            .is_time_matching(&Utc.from_utc_datetime(&wall))
            .expect("matching works"),
        Form::Interval(..) => false,
    }
}

/// FNV-1a (64 bit) written out from its definition, as a reference for the interval phase.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// All slots in (start, end] by brute force on a one-minute UTC grid.
fn reference(
    form: &Form,
    choice: Choice,
    tz: Tz,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let (repeated, skipped) = effective(form, choice);
    if let Form::Interval(n, unit) = form {
        let every_ms = i64::try_from(n * unit.seconds() * 1_000).expect("small");
        let phase_ms = fnv1a(&format!("{}/{}", JOB.namespace, JOB.name)) % every_ms.unsigned_abs();
        let phase_ms = i64::try_from(phase_ms).expect("below every_ms");
        let first = (start.timestamp_millis() - phase_ms).div_euclid(every_ms) + 1;
        return (first..)
            .map(|k| DateTime::from_timestamp_millis(k * every_ms + phase_ms).expect("in range"))
            .take_while(|t| *t <= end)
            .collect();
    }
    let grid_start = start - Duration::days(2);
    let minutes = (end - start).num_minutes() + 4 * 24 * 60;
    let grid: Vec<(DateTime<Utc>, NaiveDateTime)> = (0..minutes)
        .map(|i| {
            let t = grid_start + Duration::minutes(i);
            (t, t.with_timezone(&tz).naive_local())
        })
        .collect();
    // Running maximum of local time: the first instant that reaches a wall time.
    let mut high = Vec::with_capacity(grid.len());
    let mut max = grid[0].1;
    for (_, local) in &grid {
        max = max.max(*local);
        high.push(max);
    }
    // Every instant at which the local clock shows each wall time.
    let mut shown: HashMap<NaiveDateTime, Vec<DateTime<Utc>>> = HashMap::new();
    for (t, local) in &grid {
        shown.entry(*local).or_default().push(*t);
    }
    let first_wall = grid[0].1;
    let belongs = matcher(form);
    let mut slots: Vec<DateTime<Utc>> = (0..minutes)
        .map(|i| first_wall + Duration::minutes(i))
        .filter(|wall| belongs(*wall))
        .flat_map(|wall| match shown.get(&wall).map(Vec::as_slice) {
            Some([one]) => vec![*one],
            Some([first, .., second]) => match repeated {
                RepeatedTime::First => vec![*first],
                RepeatedTime::Second => vec![*second],
                RepeatedTime::Both => vec![*first, *second],
            },
            _ => match skipped {
                SkippedTime::Skip => vec![],
                SkippedTime::EndOfGap => {
                    let i = high.partition_point(|h| *h < wall);
                    grid.get(i).map(|g| g.0).into_iter().collect()
                }
            },
        })
        .filter(|t| *t > start && *t <= end)
        .collect();
    slots.sort();
    slots.dedup();
    slots
}

fn zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(TZ_VARIANTS.to_vec())
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 1995..2037, on a minute, so slots and the grid line up.
    (788_918_400i64 / 60..2_114_380_800i64 / 60)
        .prop_map(|m| DateTime::from_timestamp(m * 60, 0).expect("in range"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// The next run is strictly after the instant and is a slot of the schedule.
    #[test]
    fn next_is_strictly_after_and_a_real_slot(form in form(), choice in choice(), tz in zone(), after in instant(), nudge in 0i64..60) {
        let after = after + Duration::seconds(nudge);
        let schedule = validate(JOB, &spec(&form, tz.name(), choice)).expect("generated specs are valid");
        let next = schedule.next_after(after).expect("every generated form fires");
        prop_assert!(next > after);
        let horizon = if matches!(form, Form::Monthly(..)) { Duration::days(62) } else { Duration::days(8) };
        prop_assume!(next - after < horizon);
        let expected = reference(&form, choice, tz, after - Duration::seconds(nudge), next);
        let expected = expected.into_iter().find(|t| *t > after);
        prop_assert_eq!(Some(next), expected);
    }

    /// Walking next -> next over three days yields exactly the reference slots: none skipped, none twice.
    #[test]
    fn walking_never_skips_or_repeats(form in form().prop_filter("short forms", |f| !matches!(f, Form::Monthly(..))), choice in choice(), tz in zone(), start in instant()) {
        let schedule = validate(JOB, &spec(&form, tz.name(), choice)).expect("generated specs are valid");
        let end = start + Duration::days(3);
        let mut walked = Vec::new();
        let mut cursor = start;
        while let Some(next) = schedule.next_after(cursor).filter(|t| *t <= end) {
            walked.push(next);
            cursor = next;
        }
        prop_assert_eq!(walked, reference(&form, choice, tz, start, end));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// A job's interval slots: one phase in [0, every), slots exactly `every` apart, the first
    /// within one interval of any instant, and `missed` agreeing with walking.
    #[test]
    fn a_jobs_interval_slots_are_evenly_spaced_on_one_phase(
        every in 10u64..200_000,
        name in "[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?",
        namespace in "[a-z0-9]{1,12}",
        start in instant(),
        nudge_ns in 0i64..120_000_000_000,
    ) {
        let start = start + Duration::nanoseconds(nudge_ns);
        let spec = ScheduledJobSpec::interval(every, jtp_crds::IntervalUnit::Seconds);
        let id = JobId { namespace: &namespace, name: &name };
        let schedule = validate(id, &spec).expect("valid");
        let every_ms = i64::try_from(every * 1_000).expect("small");
        let mut cursor = start;
        let mut slots = Vec::new();
        for _ in 0..4 {
            let next = schedule.next_after(cursor).expect("an interval always fires");
            prop_assert!(next > cursor);
            slots.push(next);
            cursor = next;
        }
        prop_assert!(slots[0] - start <= Duration::milliseconds(every_ms));
        let phase = slots[0].timestamp_millis().rem_euclid(every_ms);
        for pair in slots.windows(2) {
            prop_assert_eq!(pair[1] - pair[0], Duration::milliseconds(every_ms));
        }
        for slot in &slots {
            prop_assert_eq!(slot.timestamp_subsec_nanos() % 1_000_000, 0);
            prop_assert_eq!(slot.timestamp_millis().rem_euclid(every_ms), phase);
        }
        let again = validate(id, &spec).expect("valid");
        prop_assert_eq!(again.next_after(start), Some(slots[0]));
        let missed = schedule.missed(start, slots[3], 2);
        prop_assert_eq!(missed.recent, slots[2..].to_vec());
        prop_assert!(missed.truncated);
    }
}

/// The same over the DST transitions of zones that have them, where bugs live: every form with
/// every combination of DST choices (each left to its default, or set to each value).
#[test]
fn walking_across_dst_transitions_matches_the_reference() {
    let forms = [
        Form::Daily(1, 30),
        Form::Daily(2, 30),
        Form::Daily(0, 0),
        Form::Hourly(30),
        Form::Hourly(0),
        Form::Cron("*/20 0-3 * * *"),
        Form::Cron("30 1,2,3 * * *"),
        Form::Cron("*/30 * * * *"),
        Form::Cron("@hourly"),
        Form::Cron("0,30 1-2 * * *"),
        Form::Weekly(vec![Weekday::Sunday], 2, 0),
    ];
    let repeated = [
        None,
        Some(RepeatedTime::First),
        Some(RepeatedTime::Second),
        Some(RepeatedTime::Both),
    ];
    let skipped = [None, Some(SkippedTime::EndOfGap), Some(SkippedTime::Skip)];
    let cases = [
        ("Europe/London", "2027-03-27T00:00:00Z"),
        ("Europe/London", "2027-10-30T00:00:00Z"),
        ("America/New_York", "2027-03-13T00:00:00Z"),
        ("America/New_York", "2027-11-06T00:00:00Z"),
        ("Australia/Lord_Howe", "2027-04-03T00:00:00Z"),
        ("Australia/Lord_Howe", "2027-10-02T00:00:00Z"),
        ("America/Santiago", "2027-04-03T00:00:00Z"),
        ("Pacific/Apia", "2011-12-29T00:00:00Z"),
        ("Antarctica/Casey", "2011-10-27T00:00:00Z"),
        ("Antarctica/Casey", "2012-02-20T00:00:00Z"),
    ];
    for (zone, start) in cases {
        let tz = Tz::from_str(zone).expect("known zone");
        let start = DateTime::parse_from_rfc3339(start)
            .expect("rfc3339")
            .with_timezone(&Utc);
        let end = start + Duration::days(3);
        for form in &forms {
            for choice in repeated
                .iter()
                .flat_map(|r| skipped.iter().map(move |s| (*r, *s)))
            {
                let schedule = validate(JOB, &spec(form, zone, choice)).expect("valid");
                let mut walked = Vec::new();
                let mut cursor = start;
                while let Some(next) = schedule.next_after(cursor).filter(|t| *t <= end) {
                    walked.push(next);
                    cursor = next;
                }
                assert_eq!(
                    walked,
                    reference(form, choice, tz, start, end),
                    "{form:?} {choice:?} in {zone} from {start}"
                );
            }
        }
    }
}
