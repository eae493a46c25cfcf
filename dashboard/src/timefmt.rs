//! How instants are shown: in the job's zone with its abbreviation, UTC on hover. Never left to the
//! browser's zone.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// One instant, ready for a template: `local` is the text, `utc` goes in the `title` attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShownTime {
    /// "2026-11-30 09:00 HKT"
    pub local: String,
    /// "2026-11-30 01:00:00 UTC"
    pub utc: String,
    /// RFC3339, for machines (`<time datetime=…>`).
    pub rfc3339: String,
}

/// Shows `at` in `tz`: `%Z` gives the abbreviation ("HKT") or, for zones without one, the offset ("+08").
pub fn show(at: DateTime<Utc>, tz: Tz) -> ShownTime {
    let local = at.with_timezone(&tz);
    let abbrev = local.format("%Z").to_string();
    let abbrev = if abbrev.starts_with(['+', '-']) {
        format!("UTC{}", local.format("%:z"))
    } else {
        abbrev
    };
    ShownTime {
        local: format!("{} {abbrev}", local.format("%Y-%m-%d %H:%M")),
        utc: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        rfc3339: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// Parses a zone name, falling back to the default zone for names that no longer parse.
pub fn zone(name: &str) -> Tz {
    name.parse()
        .or_else(|_| jtp_crds::DEFAULT_TIME_ZONE.parse())
        .unwrap_or(Tz::UTC)
}

/// A run's duration in words: "850 ms", "12 s", "3 min 04 s", "2 h 05 min".
pub fn duration(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let ms = (end - start).num_milliseconds().max(0);
    let secs = ms / 1000;
    match secs {
        _ if ms < 1000 => format!("{ms} ms"),
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn hong_kong_has_an_abbreviation_and_utc_on_hover() {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 1, 0, 0).unwrap();
        let shown = show(at, chrono_tz::Asia::Hong_Kong);
        assert_eq!(shown.local, "2026-11-30 09:00 HKT");
        assert_eq!(shown.utc, "2026-11-30 01:00:00 UTC");
        assert_eq!(shown.rfc3339, "2026-11-30T01:00:00Z");
    }

    #[test]
    fn zones_without_abbreviation_show_the_offset() {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 1, 0, 0).unwrap();
        let shown = show(at, chrono_tz::Asia::Dubai);
        assert_eq!(shown.local, "2026-11-30 05:00 UTC+04:00");
    }

    #[test]
    fn durations_read_well() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            duration(start, start + chrono::Duration::milliseconds(850)),
            "850 ms"
        );
        assert_eq!(duration(start, start + chrono::Duration::seconds(12)), "12 s");
        assert_eq!(
            duration(start, start + chrono::Duration::seconds(184)),
            "3 min 04 s"
        );
        assert_eq!(
            duration(start, start + chrono::Duration::seconds(7500)),
            "2 h 05 min"
        );
    }
}
