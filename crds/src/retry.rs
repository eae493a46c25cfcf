//! `spec.retries` and `spec.pauseAfterConsecutiveFailures`: the fields and their checks. What
//! they mean for a run (when the next attempt starts, when a job pauses) is decided by the run
//! policy ([`crate::policy::after_attempt`], [`crate::policy::pause_due`]).

use crate::retention::{DURATION_PATTERN, parse_duration};
use crate::validate::FieldError;
use chrono::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The most further attempts a run may have.
pub const MAX_RETRIES: u32 = 10;
/// The wait before the first retry when `backoff.delay` is left out.
pub const DEFAULT_RETRY_DELAY: &str = "10s";
/// The longest wait between exponential attempts when `backoff.maxDelay` is left out.
pub const DEFAULT_MAX_RETRY_DELAY: &str = "1h";

/// Further attempts of a run that ended in FAILURE or ERROR. Each attempt is its own run (its own
/// row, and its own Kubernetes Job in cluster mode) for the same slot, numbered from 1; the slot's
/// outcome is its last attempt's.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    /// How many more attempts a failed run gets (0 to 10): `limit: 2` runs a slot at most 3 times.
    #[schemars(range(min = 0, max = 10))]
    pub limit: u32,
    /// How long to wait before each further attempt.
    #[serde(default)]
    pub backoff: Backoff,
}

/// The wait before a further attempt, counted from the end of the failed one.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// `Fixed`: every wait is `delay`. `Exponential` (the default): `delay`, then twice as long
    /// each time, never longer than `maxDelay`.
    #[serde(default)]
    pub strategy: BackoffStrategy,
    /// The first wait (default 10s; units d, h, m, s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), regex(pattern = DURATION_PATTERN))]
    pub delay: Option<String>,
    /// `Exponential` only: the longest wait (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), regex(pattern = DURATION_PATTERN))]
    pub max_delay: Option<String>,
}

/// How the wait grows from one attempt to the next.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackoffStrategy {
    /// The same wait before every attempt.
    Fixed,
    /// Twice the wait of the attempt before, up to `maxDelay`.
    #[default]
    Exponential,
}

impl Backoff {
    /// The first wait.
    pub fn delay(&self) -> Duration {
        read_or_default(self.delay.as_deref(), DEFAULT_RETRY_DELAY)
    }

    /// The longest wait (exponential).
    pub fn max_delay(&self) -> Duration {
        read_or_default(self.max_delay.as_deref(), DEFAULT_MAX_RETRY_DELAY)
    }

    /// The wait after attempt `failed` (1 for the first run) before attempt `failed + 1`.
    pub fn wait_after(&self, failed: u32) -> Duration {
        let delay = self.delay();
        match self.strategy {
            BackoffStrategy::Fixed => delay,
            BackoffStrategy::Exponential => {
                let doublings = failed.saturating_sub(1).min(40);
                let factor = 1_i64 << doublings;
                let max = self.max_delay();
                delay
                    .num_seconds()
                    .checked_mul(factor)
                    .map_or(max, Duration::seconds)
                    .min(max)
            }
        }
    }
}

fn read_or_default(text: Option<&str>, default: &str) -> Duration {
    text.and_then(|t| parse_duration(t).ok())
        .or_else(|| parse_duration(default).ok())
        .unwrap_or_else(|| Duration::seconds(10))
}

impl Retries {
    /// Problems of `spec.retries`, located under `path`.
    pub fn check(&self, path: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.limit > MAX_RETRIES {
            errors.push(FieldError::new(
                format!("{path}.limit"),
                format!("at most {MAX_RETRIES} further attempts (got {})", self.limit),
            ));
        }
        let backoff = &self.backoff;
        for (field, text) in [("delay", &backoff.delay), ("maxDelay", &backoff.max_delay)] {
            if let Some(text) = text
                && let Err(message) = parse_duration(text)
            {
                errors.push(FieldError::new(format!("{path}.backoff.{field}"), message));
            }
        }
        if backoff.max_delay.is_some() && backoff.strategy == BackoffStrategy::Fixed {
            errors.push(FieldError::new(
                format!("{path}.backoff.maxDelay"),
                "applies to strategy Exponential only: leave it out, or set strategy: Exponential",
            ));
        }
        let readable = |t: &Option<String>| t.as_deref().is_none_or(|t| parse_duration(t).is_ok());
        if readable(&backoff.delay)
            && readable(&backoff.max_delay)
            && backoff.strategy == BackoffStrategy::Exponential
            && backoff.max_delay() < backoff.delay()
        {
            errors.push(FieldError::new(
                format!("{path}.backoff.maxDelay"),
                "is shorter than backoff.delay: make it at least as long",
            ));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(strategy: BackoffStrategy, delay: &str, max: Option<&str>) -> Backoff {
        Backoff {
            strategy,
            delay: Some(delay.into()),
            max_delay: max.map(Into::into),
        }
    }

    #[test]
    fn fixed_backoff_waits_the_same_before_every_attempt() {
        let b = backoff(BackoffStrategy::Fixed, "30s", None);
        for failed in 1..=5 {
            assert_eq!(b.wait_after(failed), Duration::seconds(30));
        }
    }

    #[test]
    fn exponential_backoff_doubles_up_to_its_cap() {
        let b = backoff(BackoffStrategy::Exponential, "10s", Some("1m"));
        let waits: Vec<i64> = (1..=6).map(|n| b.wait_after(n).num_seconds()).collect();
        assert_eq!(waits, [10, 20, 40, 60, 60, 60]);
        // The defaults: 10 s, doubling, at most an hour.
        let default = Backoff::default();
        assert_eq!(default.wait_after(1), Duration::seconds(10));
        assert_eq!(default.wait_after(10), Duration::hours(1));
    }

    #[test]
    fn bad_retries_name_their_field() {
        let retries = Retries {
            limit: 11,
            backoff: backoff(BackoffStrategy::Fixed, "1x", Some("1m")),
        };
        let fields: Vec<String> = retries
            .check("spec.retries")
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.retries.limit",
                "spec.retries.backoff.delay",
                "spec.retries.backoff.maxDelay"
            ]
        );
        let short_cap = Retries {
            limit: 1,
            backoff: backoff(BackoffStrategy::Exponential, "10m", Some("1m")),
        };
        let errors = short_cap.check("spec.retries");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("shorter than backoff.delay"),
            "{errors:?}"
        );
    }
}
