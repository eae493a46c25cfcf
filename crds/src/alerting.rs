//! What a job says about being watched: the dead-man's switch (`expectSuccessWithin`), and the
//! pure rule that decides when a job is overdue. The scheduler process of each mode applies the rule to what the store recorded; the
//! portal and the API show its answer. No clock, no client, no SQL.

use crate::retention::parse_duration;
use crate::validate::FieldError;
use chrono::{DateTime, Duration, Utc};
use std::fmt;

/// Checks `spec.expectSuccessWithin`.
pub fn check_expectation(text: &str, path: &str) -> Option<FieldError> {
    parse_duration(text)
        .err()
        .map(|message| FieldError::new(path, message))
}

impl crate::types::ScheduledJobSpec {
    /// `expectSuccessWithin` as a duration (None when unset or unreadable; validation reports the latter).
    pub fn expected_success_within(&self) -> Option<Duration> {
        self.expect_success_within
            .as_deref()
            .and_then(|text| parse_duration(text).ok())
    }
}

/// What the dead-man's switch knows about one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// `expectSuccessWithin`.
    pub within: Duration,
    /// Since when the job has been expected to succeed: when `expectSuccessWithin` was set.
    pub since: DateTime<Utc>,
    /// When its newest successful run finished.
    pub last_success: Option<DateTime<Utc>>,
}

/// A job that is overdue: it should have succeeded by `deadline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overdue {
    pub deadline: DateTime<Utc>,
    /// The success it is measured from (`None`: it never succeeded since it was expected to).
    pub last_success: Option<DateTime<Utc>>,
    pub within: Duration,
}

impl Expectation {
    /// When the job must have succeeded again: `within` after its last success, or after the
    /// expectation was set when that is later (a job that never succeeded, or a switch that was
    /// turned on long after its last success, is not overdue the moment it is turned on).
    pub fn deadline(&self) -> DateTime<Utc> {
        let from = match self.last_success {
            Some(success) if success > self.since => success,
            _ => self.since,
        };
        from + self.within
    }

    /// Overdue at `now`, or not. Deliberately blind to why the job is silent: suspended, edited,
    /// skipping its slots, failing, manual, never scheduled, or a scheduler that was down — only
    /// a success moves the deadline.
    pub fn check(&self, now: DateTime<Utc>) -> Option<Overdue> {
        let deadline = self.deadline();
        (now >= deadline).then_some(Overdue {
            deadline,
            last_success: self.last_success,
            within: self.within,
        })
    }
}

impl fmt::Display for Overdue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let deadline = self.deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let within = crate::retention::format_duration(self.within);
        match self.last_success {
            Some(success) => write!(
                f,
                "no success within {within}: the last one finished at {}, so one was due by {deadline}",
                success.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => write!(f, "no success within {within}: one was due by {deadline}"),
        }
    }
}
