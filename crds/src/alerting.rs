//! What a job says about being watched: the dead-man's switch (`expectSuccessWithin`) and who is
//! told about its incidents (`notifications`), plus the pure rule that decides when a job is
//! overdue. The scheduler process of each mode applies the rule to what the store recorded; the
//! portal and the API show its answer. No clock, no client, no SQL.

use crate::retention::parse_duration;
use crate::validate::FieldError;
use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Who is told about this job's incidents, and about which.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Notifications {
    /// Names of receivers that the operator (or the standalone runner) defines with
    /// `--alert-receiver NAME=json|slack`; their URLs are its secrets, never part of a job. Left
    /// out: the default receivers (`--alert-default-receivers`); `[]`: nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub receivers: Option<Vec<ReceiverName>>,
    /// Which incidents alert (default: all of them). Not `on`, which YAML 1.1 (kubectl, helm)
    /// reads as the boolean `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 5))]
    pub events: Option<Vec<AlertOn>>,
}

/// A receiver's name: lowercase letters, digits and `-`, as in a Secret key or a file name.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(transparent)]
pub struct ReceiverName(#[schemars(length(min = 1, max = 63), regex(pattern = RECEIVER_PATTERN))] pub String);

/// What a receiver's name may be.
pub const RECEIVER_PATTERN: &str = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$";

/// An incident that alerts.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertOn {
    /// A run ended with a non-zero exit code (the first of a failing streak).
    Failure,
    /// A run could not start (the first of a failing streak).
    Error,
    /// The first success after failed runs, or after the job was overdue.
    Recovery,
    /// A due slot was not run (past its starting deadline, still running, missed while down).
    Skipped,
    /// No success within `expectSuccessWithin`.
    Overdue,
}

impl AlertOn {
    pub const ALL: [AlertOn; 5] = [
        Self::Failure,
        Self::Error,
        Self::Recovery,
        Self::Skipped,
        Self::Overdue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failure => "Failure",
            Self::Error => "Error",
            Self::Recovery => "Recovery",
            Self::Skipped => "Skipped",
            Self::Overdue => "Overdue",
        }
    }
}

impl Notifications {
    /// Problems, located under `path` (`spec.notifications`).
    pub fn check(&self, path: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let pattern = is_receiver_name;
        for (i, name) in self.receivers.iter().flatten().enumerate() {
            if !pattern(&name.0) {
                errors.push(FieldError::new(
                    format!("{path}.receivers[{i}]"),
                    format!(
                        "\"{}\" is not a receiver name: use lowercase letters, digits and '-' (at most 63), \
                         as given to --alert-receiver",
                        name.0
                    ),
                ));
            }
        }
        if self.events.as_ref().is_some_and(Vec::is_empty) {
            errors.push(FieldError::new(
                format!("{path}.events"),
                "list at least one of Failure, Error, Recovery, Skipped, Overdue (or leave it out for all)",
            ));
        }
        errors
    }

    /// Whether this incident alerts.
    pub fn wants(&self, on: AlertOn) -> bool {
        self.events.as_ref().is_none_or(|list| list.contains(&on))
    }
}

/// [`RECEIVER_PATTERN`] without a regex engine.
pub fn is_receiver_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_names_and_empty_lists_are_refused_with_their_path() {
        let bad = Notifications {
            receivers: Some(vec![ReceiverName("ops".into()), ReceiverName("Ops Team".into())]),
            events: Some(Vec::new()),
        };
        let errors = bad.check("spec.notifications");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.notifications.receivers[1]", "spec.notifications.events"]
        );
        let pattern = regex::Regex::new(RECEIVER_PATTERN).expect("compiles");
        for name in ["ops", "on-call-2", "a", "-x", "x-", "Ops", "a_b", ""] {
            assert_eq!(pattern.is_match(name), is_receiver_name(name), "{name:?}");
        }
    }

    #[test]
    fn everything_alerts_unless_the_job_lists_what() {
        assert!(AlertOn::ALL.iter().all(|on| Notifications::default().wants(*on)));
        let some = Notifications {
            receivers: None,
            events: Some(vec![AlertOn::Overdue]),
        };
        assert!(some.wants(AlertOn::Overdue) && !some.wants(AlertOn::Failure));
    }
}
