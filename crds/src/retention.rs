//! How long runs are kept in SQL: the `retention` of a job's spec, the global default (a flag of
//! the operator and of standalone mode) and the rule that decides which runs go. The store applies
//! it ([`Retention::cutoff`] and [`Retention::keep_last`]); this module only decides.

use crate::validate::FieldError;
use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A duration as jobs write it: one or more `<number><unit>` with units `d` (24 hours), `h`, `m`
/// and `s`, largest first (`90d`, `26h`, `1d12h`, `30m`).
pub const DURATION_PATTERN: &str = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$";

/// Which runs of a job are kept. A run is deleted when it is finished, is not one of the newest
/// `keepLast` finished runs of its job, and (when `maxAge` is set) started more than `maxAge`
/// ago. So `maxAge` alone deletes by age, `keepLast` alone keeps the newest N, and both together
/// delete by age but always keep at least the newest N. Neither set keeps every run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Runs that started longer ago than this are deleted (`90d`, `36h`, `1d12h`; units d, h, m, s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), regex(pattern = DURATION_PATTERN))]
    pub max_age: Option<String>,
    /// The newest N finished runs of the job are never deleted; without `maxAge`, only they are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<u32>,
}

/// Reads a [`DURATION_PATTERN`] duration; the message says what is wrong.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let hint = "write a number and a unit, largest unit first: 90d, 26h, 1d12h, 30m (units d, h, m, s)";
    let mut total: i64 = 0;
    let mut digits = String::new();
    let mut last_unit = usize::MAX;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (rank, seconds) = match c {
            'd' => (0, 86_400),
            'h' => (1, 3_600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return Err(format!("\"{text}\" is not a duration: {hint}")),
        };
        if digits.is_empty() || (last_unit != usize::MAX && rank <= last_unit) {
            return Err(format!("\"{text}\" is not a duration: {hint}"));
        }
        let n: i64 = digits
            .parse()
            .map_err(|_| format!("\"{text}\" is too long a duration"))?;
        total = n
            .checked_mul(seconds)
            .and_then(|s| total.checked_add(s))
            .filter(|s| *s <= MAX_DURATION_SECONDS)
            .ok_or_else(|| format!("\"{text}\" is too long a duration (at most 100 years)"))?;
        digits.clear();
        last_unit = rank;
    }
    if !digits.is_empty() || last_unit == usize::MAX {
        return Err(format!("\"{text}\" is not a duration: {hint}"));
    }
    if total == 0 {
        return Err(format!("\"{text}\" is zero: give a duration longer than that"));
    }
    Ok(Duration::seconds(total))
}

/// A century: longer durations are typos.
const MAX_DURATION_SECONDS: i64 = 100 * 366 * 86_400;

/// Writes a duration in the [`DURATION_PATTERN`] form, largest units first (`1d12h`).
pub fn format_duration(duration: Duration) -> String {
    let mut left = duration.num_seconds().max(0);
    let mut out = String::new();
    for (unit, seconds) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if left >= seconds {
            out.push_str(&format!("{}{unit}", left / seconds));
            left %= seconds;
        }
    }
    if out.is_empty() { "0s".to_owned() } else { out }
}

impl Retention {
    /// Neither limit set: every run is kept.
    pub fn keeps_everything(&self) -> bool {
        self.max_age.is_none() && self.keep_last.is_none()
    }

    /// `maxAge` as a duration (None when unset or unreadable; [`Retention::check`] reports the latter).
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age.as_deref().and_then(|s| parse_duration(s).ok())
    }

    /// Runs that started before this instant may go (subject to `keepLast`); None: no age limit.
    pub fn cutoff(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.max_age().map(|age| now - age)
    }

    /// Problems of this policy, located under `path` (`spec.retention`, `--retention-max-age`).
    pub fn check(&self, path: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(text) = &self.max_age
            && let Err(message) = parse_duration(text)
        {
            errors.push(FieldError::new(format!("{path}.maxAge"), message));
        }
        if self.keep_last == Some(0) {
            errors.push(FieldError::new(
                format!("{path}.keepLast"),
                "must be at least 1 (leave it out to limit by age alone)",
            ));
        }
        errors
    }
}

/// In words, for the portal: "90 days, at least the last 20 runs", "the last 20 runs", "all runs".
impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let age = self.max_age().map(|d| {
            let s = d.num_seconds();
            if s % 86_400 == 0 {
                let days = s / 86_400;
                format!("{days} day{}", if days == 1 { "" } else { "s" })
            } else {
                format_duration(d)
            }
        });
        let runs = |n: u32| format!("{n} run{}", if n == 1 { "" } else { "s" });
        match (age, self.keep_last) {
            (None, None) => f.write_str("all runs"),
            (Some(age), None) => write!(f, "runs of the last {age}"),
            (None, Some(n)) => write!(f, "the last {}", runs(n)),
            (Some(age), Some(n)) => write!(f, "runs of the last {age}, and at least the last {}", runs(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_largest_unit_first() {
        assert_eq!(parse_duration("90d"), Ok(Duration::days(90)));
        assert_eq!(parse_duration("26h"), Ok(Duration::hours(26)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::hours(36)));
        assert_eq!(parse_duration("1h30m15s"), Ok(Duration::seconds(5415)));
        for bad in [
            "", "d", "90", "12h1d", "1h1h", "1w", "-1d", "1.5h", " 1h", "0s", "0d0h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(
            parse_duration("99999999999999999999d")
                .expect_err("refused")
                .contains("too long")
        );
    }

    #[test]
    fn the_schema_pattern_and_the_parser_agree() {
        let pattern = regex::Regex::new(DURATION_PATTERN).expect("the pattern compiles");
        for text in ["90d", "26h", "1d12h", "30m", "10s", "1d2h3m4s"] {
            assert!(pattern.is_match(text) && parse_duration(text).is_ok(), "{text}");
        }
        for text in ["12h1d", "1w", "h", "1.5h", "1h1h"] {
            assert!(!pattern.is_match(text) && parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn durations_format_back() {
        assert_eq!(format_duration(Duration::hours(36)), "1d12h");
        assert_eq!(format_duration(Duration::seconds(90)), "1m30s");
    }

    #[test]
    fn policies_in_words() {
        let both = Retention {
            max_age: Some("90d".into()),
            keep_last: Some(20),
        };
        assert_eq!(
            both.to_string(),
            "runs of the last 90 days, and at least the last 20 runs"
        );
        assert_eq!(Retention::default().to_string(), "all runs");
        let count = Retention {
            max_age: None,
            keep_last: Some(1),
        };
        assert_eq!(count.to_string(), "the last 1 run");
        let hours = Retention {
            max_age: Some("36h".into()),
            keep_last: None,
        };
        assert_eq!(hours.to_string(), "runs of the last 1d12h");
    }

    #[test]
    fn bad_policies_name_their_field() {
        let bad = Retention {
            max_age: Some("12h1d".into()),
            keep_last: Some(0),
        };
        let errors = bad.check("spec.retention");
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].field, "spec.retention.maxAge");
        assert_eq!(errors[1].field, "spec.retention.keepLast");
    }
}
