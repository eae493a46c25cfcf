//! The cron dialect: every schedule string Kubernetes CronJob accepts, with the same meaning, and a
//! message naming the field or token for everything refused. Each case is pinned to real dates.

use chrono::{DateTime, SecondsFormat, Utc};
use jtp_crds::{JobId, ScheduledJobSpec, validate};

const JOB: JobId<'static> = JobId {
    namespace: "default",
    name: "job",
};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test instant is RFC3339")
        .with_timezone(&Utc)
}

/// The next `n` runs of a cron in UTC after `after`.
fn walk(expr: &str, after: &str, n: usize) -> Vec<String> {
    let schedule = validate(JOB, &ScheduledJobSpec::cron(expr).in_zone("UTC"))
        .unwrap_or_else(|e| panic!("{expr:?} should be accepted: {e}"));
    let mut cursor = at(after);
    (0..n)
        .map(|_| {
            cursor = schedule
                .next_after(cursor)
                .unwrap_or_else(|| panic!("{expr:?} has a next run"));
            cursor.to_rfc3339_opts(SecondsFormat::Secs, true)
        })
        .collect()
}

/// The one error of a refused cron.
fn refusal(expr: &str) -> String {
    match validate(JOB, &ScheduledJobSpec::cron(expr)) {
        Ok(_) => panic!("{expr:?} should be refused"),
        Err(e) => {
            assert_eq!(e.errors.len(), 1, "{e}");
            assert_eq!(e.errors[0].field, "spec.schedule.cron");
            e.errors[0].message.clone()
        }
    }
}

fn same_runs(a: &str, b: &str, after: &str) {
    assert_eq!(walk(a, after, 6), walk(b, after, 6), "{a:?} and {b:?} differ");
}

#[test]
fn every_macro_runs_as_its_five_fields() {
    let after = "2026-11-29T10:17:00Z";
    for (word, fields) in [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ] {
        same_runs(word, fields, after);
    }
    assert_eq!(
        walk("@weekly", after, 2),
        ["2026-12-06T00:00:00Z", "2026-12-13T00:00:00Z"],
        "2026-12-06 is a Sunday"
    );
    assert_eq!(
        walk("@yearly", after, 2),
        ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]
    );
    assert_eq!(walk("  @daily  ", after, 1), ["2026-11-30T00:00:00Z"]);
}

#[test]
fn a_question_mark_is_a_star() {
    same_runs("0 9 ? * mon", "0 9 * * mon", "2026-11-29T00:00:00Z");
    same_runs("0 9 1 * ?", "0 9 1 * *", "2026-11-29T00:00:00Z");
}

#[test]
fn names_are_case_insensitive_and_sunday_is_zero_or_seven() {
    same_runs("0 9 * JAN,jul Mon-FRI", "0 9 * 1,7 1-5", "2026-11-29T00:00:00Z");
    same_runs("0 9 * * 7", "0 9 * * 0", "2026-11-29T00:00:00Z");
    same_runs("0 9 * * sun", "0 9 * * 0", "2026-11-29T00:00:00Z");
    same_runs("0 9 * * 5-7", "0 9 * * fri,sat,sun", "2026-11-29T00:00:00Z");
}

#[test]
fn ranges_steps_and_lists() {
    assert_eq!(
        walk("*/15 * * * *", "2026-11-29T10:17:00Z", 3),
        [
            "2026-11-29T10:30:00Z",
            "2026-11-29T10:45:00Z",
            "2026-11-29T11:00:00Z"
        ]
    );
    // `a/n` runs from a to the end of the field, as Kubernetes reads it.
    same_runs("5/20 * * * *", "5,25,45 * * * *", "2026-11-29T10:17:00Z");
    same_runs("10-40/15 * * * *", "10,25,40 * * * *", "2026-11-29T10:17:00Z");
    same_runs("0 8-10,14 * * *", "0 8,9,10,14 * * *", "2026-11-29T10:17:00Z");
    same_runs("0 0 1 */3 *", "0 0 1 1,4,7,10 *", "2026-11-29T10:17:00Z");
    // Several spaces or tabs between fields are one separator.
    same_runs("0\t9  *  * *", "0 9 * * *", "2026-11-29T10:17:00Z");
}

#[test]
fn when_both_day_fields_are_restricted_either_one_runs() {
    // The 1st and 15th of the month, and every Friday (2026-12-04, -11, -18; the 1st and 15th are a
    // Tuesday).
    assert_eq!(
        walk("0 0 1,15 * fri", "2026-11-30T12:00:00Z", 5),
        [
            "2026-12-01T00:00:00Z",
            "2026-12-04T00:00:00Z",
            "2026-12-11T00:00:00Z",
            "2026-12-15T00:00:00Z",
            "2026-12-18T00:00:00Z"
        ]
    );
}

#[test]
fn a_day_field_starting_with_a_star_defers_to_the_other_as_in_vixie_cron() {
    // `*/2` in the day of month starts with `*`: the two day fields combine with AND, so this runs on
    // Mondays that fall on an odd date (2026-12-07 and -21 are Mondays; -14 and -28 are even).
    assert_eq!(
        walk("0 0 */2 * mon", "2026-11-30T12:00:00Z", 3),
        [
            "2026-12-07T00:00:00Z",
            "2026-12-21T00:00:00Z",
            "2027-01-11T00:00:00Z"
        ]
    );
    // The same days written without a star are restricted: odd dates OR Mondays.
    assert_eq!(
        walk("0 0 1-31/2 * mon", "2026-11-30T12:00:00Z", 4),
        [
            "2026-12-01T00:00:00Z",
            "2026-12-03T00:00:00Z",
            "2026-12-05T00:00:00Z",
            "2026-12-07T00:00:00Z"
        ]
    );
    same_runs("0 0 * * mon", "0 0 ? * mon", "2026-11-30T12:00:00Z");
}

#[test]
fn the_twenty_ninth_of_february_runs_in_leap_years_only() {
    assert_eq!(
        walk("0 0 29 2 *", "2026-11-29T00:00:00Z", 2),
        ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]
    );
    // 2100 is not a leap year: from 2097 the next one is 2104.
    assert_eq!(
        walk("0 0 29 2 *", "2097-01-01T00:00:00Z", 1),
        ["2104-02-29T00:00:00Z"]
    );
}

#[test]
fn a_schedule_that_can_never_fire_is_refused() {
    for expr in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30,31 feb *"] {
        let message = refusal(expr);
        assert!(message.contains("never fires"), "{expr}: {message}");
    }
    // With a restricted weekday, a day-of-month that never comes still leaves the weekday.
    assert_eq!(
        walk("0 0 30 2 mon", "2026-11-29T00:00:00Z", 1),
        ["2027-02-01T00:00:00Z"]
    );
}

#[test]
fn values_out_of_range_name_the_field_and_the_allowed_range() {
    for (expr, words) in [
        (
            "60 * * * *",
            "minute field: 60 in \"60\" is out of range: use 0–59",
        ),
        ("0 24 * * *", "hour field: 24 in \"24\" is out of range: use 0–23"),
        (
            "0 0 0 * *",
            "day-of-month field: 0 in \"0\" is out of range: use 1–31",
        ),
        (
            "0 0 32 * *",
            "day-of-month field: 32 in \"32\" is out of range: use 1–31",
        ),
        (
            "0 0 * 13 *",
            "month field: 13 in \"13\" is out of range: use 1–12 or jan–dec",
        ),
        (
            "0 0 * * 8",
            "day-of-week field: 8 in \"8\" is out of range: use 0–7 or sun–sat",
        ),
        ("0 0 * * 1-9", "day-of-week field: 9 in \"1-9\" is out of range"),
        (
            "0 0 * * funday",
            "day-of-week field \"funday\": \"funday\" is not a value: use 0–7 or sun–sat",
        ),
        (
            "*/0 * * * *",
            "minute field \"*/0\": the step after / must be a whole number of at least 1",
        ),
        ("*/x * * * *", "minute field \"*/x\": the step"),
    ] {
        let message = refusal(expr);
        assert!(message.contains(words), "{expr}: {message}");
        assert!(
            message.starts_with(&format!("cron \"{expr}\" is invalid: ")),
            "{message}"
        );
    }
}

#[test]
fn unsupported_tokens_are_refused_by_name() {
    for (expr, words) in [
        (
            "0 0 L * *",
            "day-of-month field \"L\": \"L\" (last day) is not supported",
        ),
        (
            "0 0 * * 5L",
            "day-of-week field \"5L\": \"L\" (last day) is not supported",
        ),
        (
            "0 0 15W * *",
            "day-of-month field \"15W\": \"W\" (nearest weekday) is not supported",
        ),
        (
            "0 0 * * 1#2",
            "day-of-week field \"1#2\": \"#\" (the n-th weekday of the month) is not supported",
        ),
        (
            "0 0 * * fri-mon",
            "day-of-week field \"fri-mon\": the range wraps around (5 is after 1), which is not supported: write it as a list, fri-sat,sun-mon",
        ),
        (
            "0 22-2 * * *",
            "hour field \"22-2\": the range wraps around (22 is after 2)",
        ),
        ("@every 5m", "\"@every 5m\": use schedule.interval"),
        ("@reboot", "\"@reboot\" is not supported"),
        (
            "@fortnightly",
            "unknown macro \"@fortnightly\": use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly",
        ),
        (
            "TZ=Europe/London 0 9 * * *",
            "a TZ= prefix is not supported: set spec.timeZone to Europe/London instead",
        ),
        (
            "CRON_TZ=UTC 0 9 * * *",
            "a CRON_TZ= prefix is not supported: set spec.timeZone to UTC instead",
        ),
        ("0 0 9 * * *", "has 6 fields; write 5"),
        ("* * *", "has 3 fields; write 5"),
    ] {
        let message = refusal(expr);
        assert!(message.contains(words), "{expr}: {message}");
    }
}

#[test]
fn descriptions_say_the_schedule_in_words() {
    let describe = |expr: &str| {
        validate(JOB, &ScheduledJobSpec::cron(expr).in_zone("UTC"))
            .expect("valid")
            .describe()
    };
    assert_eq!(
        describe("0 9 * * 1-5"),
        "Cron \"0 9 * * 1-5\": at 09:00 on weekday Monday–Friday (UTC)"
    );
    assert_eq!(describe("@daily"), "Cron \"@daily\": at 00:00 (UTC)");
    assert_eq!(
        describe("*/5 * * * *"),
        "Cron \"*/5 * * * *\": every 5 minutes (UTC)"
    );
    assert_eq!(
        describe("30 * 1 * *"),
        "Cron \"30 * 1 * *\": at minute 30 on day 1 of the month (UTC)"
    );
}
