//! How instants are shown: in a zone named on the page with its abbreviation, UTC on hover, and
//! how far away they are ("in 3 h", "5 min ago"). The zone is the job's (the default) or the one the
//! user picked for the browser ([`DisplayZone`]); never left to the browser's zone.

use chrono::{DateTime, Datelike, Offset, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// The cookie that remembers the display zone for a browser.
pub const DISPLAY_ZONE_COOKIE: &str = "jtp_zone";

/// The zones the display-zone switch offers besides the job's own: `(cookie value, label)`.
pub const DISPLAY_ZONES: [(&str, &str); 3] = [
    ("job", "each job's zone"),
    ("Asia/Hong_Kong", "Hong Kong"),
    ("UTC", "UTC"),
];

/// Where instants are shown: each job's zone, or one zone for every job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DisplayZone {
    /// The zone of the job the instant belongs to.
    #[default]
    Job,
    /// One zone for every instant on the page.
    Fixed(Tz),
}

impl DisplayZone {
    /// The cookie's value read back; anything but the offered zones is the job's zone.
    pub fn from_cookie(value: Option<&str>) -> Self {
        match value {
            Some(v) if v != "job" && DISPLAY_ZONES.iter().any(|(z, _)| *z == v) => {
                v.parse().map_or(Self::Job, Self::Fixed)
            }
            _ => Self::Job,
        }
    }

    /// The cookie value of this choice.
    pub fn cookie_value(self) -> &'static str {
        match self {
            Self::Job => "job",
            Self::Fixed(tz) => DISPLAY_ZONES
                .iter()
                .map(|(z, _)| *z)
                .find(|z| *z == tz.name())
                .unwrap_or("job"),
        }
    }

    /// The zone to show an instant of a job in `job_zone`.
    pub fn for_job(self, job_zone: &str) -> Tz {
        match self {
            Self::Job => zone(job_zone),
            Self::Fixed(tz) => tz,
        }
    }
}

/// One instant, ready for a template: `local` is the text, `utc` goes in the `title` attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShownTime {
    /// "2026-11-30 09:00 HKT"; with seconds when they are not zero ("2026-11-30 03:25:14 HKT"),
    /// or always for the instants of runs.
    pub local: String,
    /// "2026-11-30 01:00:00 UTC", with milliseconds when there are any ("… 19:25:14.529 UTC").
    pub utc: String,
    /// RFC3339 with milliseconds, for machines (`<time datetime=…>`).
    pub rfc3339: String,
    /// How far from when the page was made: "in 3 h 05 min", "5 min ago", "now".
    pub relative: String,
}

/// How precise the wall time reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Minutes, and seconds when the instant has any (a schedule's slot).
    Slot,
    /// Always seconds (when a run started or ended: six runs in one minute must read apart).
    Seconds,
}

/// Shows `at` in `tz` as of `now`, with the zone's abbreviation ("HKT") or, for zones without
/// one, the offset ("UTC+04:00").
pub fn show_at(at: DateTime<Utc>, tz: Tz, precision: Precision, now: DateTime<Utc>) -> ShownTime {
    ShownTime {
        local: wall(at, tz, precision),
        utc: if at.nanosecond() / 1_000_000 == 0 {
            at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
        } else {
            at.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
        },
        rfc3339: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        relative: relative(at, now),
    }
}

/// The wall time of `at` in `tz` with the zone's abbreviation ("2026-11-30 09:00:01 HKT"), or
/// its offset for zones without one ("UTC+04:00"): [`ShownTime::local`] alone. Written field by
/// field, since a page shows a thousand of them (one per bar of the health charts) and a
/// `strftime` pattern is parsed again on every call.
pub fn wall(at: DateTime<Utc>, tz: Tz, precision: Precision) -> String {
    use chrono_tz::OffsetName;
    use std::fmt::Write;
    let local = at.with_timezone(&tz);
    let mut text = String::with_capacity(28);
    let _ = write!(
        text,
        "{:04}-{:02}-{:02} {:02}:{:02}",
        local.year(),
        local.month(),
        local.day(),
        local.hour(),
        local.minute()
    );
    let whole_minute = at.second() == 0 && at.nanosecond() == 0;
    if precision == Precision::Seconds || !whole_minute {
        let _ = write!(text, ":{:02}", local.second());
    }
    match local.offset().abbreviation() {
        Some(abbrev) if !abbrev.starts_with(['+', '-']) => {
            let _ = write!(text, " {abbrev}");
        }
        _ => {
            let offset = local.offset().fix().local_minus_utc();
            let sign = if offset < 0 { '-' } else { '+' };
            let minutes = offset.abs() / 60;
            let _ = write!(text, " UTC{sign}{:02}:{:02}", minutes / 60, minutes % 60);
        }
    }
    text
}

/// [`show_at`] for a schedule's slot, as of now.
pub fn show(at: DateTime<Utc>, tz: Tz) -> ShownTime {
    show_at(at, tz, Precision::Slot, Utc::now())
}

/// [`show_at`] with seconds, as of now.
pub fn show_precise(at: DateTime<Utc>, tz: Tz) -> ShownTime {
    show_at(at, tz, Precision::Seconds, Utc::now())
}

/// Parses a zone name, falling back to the default zone for names that no longer parse.
pub fn zone(name: &str) -> Tz {
    name.parse()
        .or_else(|_| jtp_crds::DEFAULT_TIME_ZONE.parse())
        .unwrap_or(Tz::UTC)
}

/// "in 3 h 05 min", "5 min ago", "in 14 s", "now" (within a second), "in 2 days".
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let ms = (at - now).num_milliseconds();
    let secs = ms.abs() / 1000;
    if secs == 0 {
        return "now".to_owned();
    }
    let span = match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => match (secs % 3600) / 60 {
            0 => format!("{} h", secs / 3600),
            m => format!("{} h {m:02} min", secs / 3600),
        },
        86_400..172_800 => "1 day".to_owned(),
        _ => format!("{} days", secs / 86_400),
    };
    if ms > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A run's duration in words: "850 ms", "1.5 s", "12 s", "3 min 04 s", "2 h 05 min". When both
/// ends are whole seconds (a pod's times) and equal, the run took under a second: "< 1 s".
pub fn duration(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let ms = (end - start).num_milliseconds().max(0);
    let secs = ms / 1000;
    let whole_seconds = start.nanosecond() == 0 && end.nanosecond() == 0;
    match secs {
        _ if ms == 0 && whole_seconds => "< 1 s".to_owned(),
        _ if ms == 0 => "< 1 ms".to_owned(),
        _ if ms < 1000 => format!("{ms} ms"),
        0..10 => format!("{}.{} s", secs, (ms % 1000) / 100),
        10..60 => format!("{secs} s"),
        60..3600 => format!("{} min {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, h, m, s).unwrap()
    }

    #[test]
    fn wall_time_reads_as_strftime_would() {
        let t = at(1, 0, 0);
        assert_eq!(
            wall(t, chrono_tz::Asia::Hong_Kong, Precision::Seconds),
            "2026-11-30 09:00:00 HKT"
        );
        assert_eq!(
            wall(t, chrono_tz::Asia::Dubai, Precision::Slot),
            "2026-11-30 05:00 UTC+04:00"
        );
        assert_eq!(
            wall(t, chrono_tz::America::St_Johns, Precision::Slot),
            "2026-11-29 21:30 NST"
        );
        assert_eq!(
            wall(t, chrono_tz::America::Sao_Paulo, Precision::Slot),
            "2026-11-29 22:00 UTC-03:00"
        );
    }

    #[test]
    fn hong_kong_has_an_abbreviation_and_utc_on_hover() {
        let shown = show_at(
            at(1, 0, 0),
            chrono_tz::Asia::Hong_Kong,
            Precision::Slot,
            at(0, 0, 0),
        );
        assert_eq!(shown.local, "2026-11-30 09:00 HKT");
        assert_eq!(shown.utc, "2026-11-30 01:00:00 UTC");
        assert_eq!(shown.rfc3339, "2026-11-30T01:00:00.000Z");
        assert_eq!(shown.relative, "in 1 h");
    }

    #[test]
    fn an_interval_slot_shows_its_seconds_and_runs_always_do() {
        let slot = at(19, 25, 14) + chrono::Duration::milliseconds(529);
        let hk = chrono_tz::Asia::Hong_Kong;
        assert_eq!(
            show_at(slot, hk, Precision::Slot, slot).local,
            "2026-12-01 03:25:14 HKT"
        );
        assert_eq!(
            show_at(slot, hk, Precision::Slot, slot).utc,
            "2026-11-30 19:25:14.529 UTC"
        );
        assert_eq!(
            show_at(at(1, 0, 0), hk, Precision::Seconds, at(1, 0, 0)).local,
            "2026-11-30 09:00:00 HKT"
        );
    }

    #[test]
    fn zones_without_abbreviation_show_the_offset() {
        let shown = show(at(1, 0, 0), chrono_tz::Asia::Dubai);
        assert_eq!(shown.local, "2026-11-30 05:00 UTC+04:00");
    }

    #[test]
    fn relative_times_read_both_ways() {
        let now = at(12, 0, 0);
        assert_eq!(relative(now, now), "now");
        assert_eq!(relative(at(12, 0, 14), now), "in 14 s");
        assert_eq!(relative(at(11, 55, 0), now), "5 min ago");
        assert_eq!(relative(at(15, 5, 0), now), "in 3 h 05 min");
        assert_eq!(relative(now + chrono::Duration::days(3), now), "in 3 days");
        assert_eq!(relative(now - chrono::Duration::hours(30), now), "1 day ago");
    }

    #[test]
    fn durations_read_well() {
        let start = at(0, 0, 0);
        let ms = chrono::Duration::milliseconds;
        assert_eq!(duration(start, start), "< 1 s");
        assert_eq!(duration(start + ms(3), start + ms(3)), "< 1 ms");
        assert_eq!(duration(start, start + ms(850)), "850 ms");
        assert_eq!(duration(start, start + ms(1500)), "1.5 s");
        assert_eq!(duration(start, start + ms(12_000)), "12 s");
        assert_eq!(duration(start, start + ms(184_000)), "3 min 04 s");
        assert_eq!(duration(start, start + ms(7_500_000)), "2 h 05 min");
    }

    #[test]
    fn the_display_zone_cookie_offers_only_its_zones() {
        assert_eq!(DisplayZone::from_cookie(None), DisplayZone::Job);
        assert_eq!(DisplayZone::from_cookie(Some("Mars/Base")), DisplayZone::Job);
        assert_eq!(DisplayZone::from_cookie(Some("Europe/London")), DisplayZone::Job);
        let utc = DisplayZone::from_cookie(Some("UTC"));
        assert_eq!(utc, DisplayZone::Fixed(Tz::UTC));
        assert_eq!(utc.cookie_value(), "UTC");
        assert_eq!(utc.for_job("Asia/Hong_Kong"), Tz::UTC);
        assert_eq!(
            DisplayZone::Job.for_job("Europe/London"),
            chrono_tz::Europe::London
        );
    }
}
