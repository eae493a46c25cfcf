//! The one retry schedule of `jtp`: a wait that starts at `initial`, doubles with every failure in
//! a row up to `max`, and starts over after a success. Used wherever something is tried again
//! (runner passes and SQL writes, status writes, reconciles, alert deliveries).

use std::time::Duration;

/// A doubling wait between tries, capped. Either counts failures itself ([`Backoff::failed`],
/// [`Backoff::reset`]) or, where the count is kept elsewhere (an alert's attempt number, a queued
/// write), gives the wait for a given count ([`Backoff::delay`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// Failures in a row since the last [`Backoff::reset`].
    failures: u32,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            failures: 0,
        }
    }

    /// The wait after the `failures`-th failure in a row (counted from 1; 0 counts as 1):
    /// `initial`, twice that, four times… never more than `max`.
    pub fn delay(&self, failures: u32) -> Duration {
        // Past 2^31 every useful cap has long been reached; saturating keeps it from overflowing.
        let exponent = failures.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << exponent).min(self.max)
    }

    /// One more failure: the wait before the next try.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.delay(self.failures)
    }

    /// A success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_wait_doubles_per_failure_up_to_the_cap() {
        let mut backoff = Backoff::new(SECOND, Duration::from_secs(15));
        let waits: Vec<u64> = (0..7).map(|_| backoff.failed().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 15, 15, 15]);
    }

    #[test]
    fn a_reset_starts_over_from_the_initial_wait() {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        backoff.failed();
        backoff.failed();
        backoff.reset();
        assert_eq!(backoff.failed(), Duration::from_millis(200));
        assert_eq!(backoff.failed(), Duration::from_millis(400));
    }

    #[test]
    fn the_delay_of_a_count_is_what_counting_gives() {
        let schedule = Backoff::new(SECOND, Duration::from_secs(300));
        let mut counting = schedule;
        for failures in 1..=20 {
            assert_eq!(schedule.delay(failures), counting.failed(), "failure {failures}");
        }
        assert_eq!(schedule.delay(0), SECOND, "no failure yet counts as the first");
    }

    #[test]
    fn huge_failure_counts_stay_at_the_cap_without_overflowing() {
        let schedule = Backoff::new(SECOND, Duration::from_secs(300));
        for failures in [32, 33, 64, 1_000, u32::MAX] {
            assert_eq!(schedule.delay(failures), Duration::from_secs(300));
        }
        let uncapped = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(uncapped.delay(u32::MAX), Duration::MAX);
        let mut counting = Backoff::new(SECOND, Duration::from_secs(300));
        counting.failures = u32::MAX;
        assert_eq!(counting.failed(), Duration::from_secs(300));
    }
}
