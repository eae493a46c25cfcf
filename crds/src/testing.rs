//! Small builders for tests in every crate: `ScheduledJobSpec::daily("09:00")`, then chain.

use crate::types::*;

impl ScheduledJobSpec {
    pub fn interval(every: u64, unit: IntervalUnit) -> Self {
        Self::with_schedule(Schedule {
            interval: Some(IntervalSchedule { every, unit }),
            ..Schedule::default()
        })
    }

    pub fn hourly(minute: u32) -> Self {
        Self::with_schedule(Schedule {
            hourly: Some(HourlySchedule { minute }),
            ..Schedule::default()
        })
    }

    pub fn daily(at: &str) -> Self {
        Self::with_schedule(Schedule {
            daily: Some(DailySchedule { at: at.into() }),
            ..Schedule::default()
        })
    }

    pub fn weekly(days: &[Weekday], at: &str) -> Self {
        Self::with_schedule(Schedule {
            weekly: Some(WeeklySchedule {
                days: days.to_vec(),
                at: at.into(),
            }),
            ..Schedule::default()
        })
    }

    pub fn monthly(day: u32, at: &str) -> Self {
        Self::with_schedule(Schedule {
            monthly: Some(MonthlySchedule { day, at: at.into() }),
            ..Schedule::default()
        })
    }

    pub fn cron(expr: &str) -> Self {
        Self::with_schedule(Schedule {
            cron: Some(expr.into()),
            ..Schedule::default()
        })
    }

    pub fn manual() -> Self {
        Self::with_schedule(Schedule {
            manual: Some(ManualSchedule {}),
            ..Schedule::default()
        })
    }

    /// Chooses what the job does when DST repeats (`repeated`) or skips (`skipped`) a wall time.
    pub fn on_dst(mut self, repeated: Option<RepeatedTime>, skipped: Option<SkippedTime>) -> Self {
        self.daylight_saving = Some(DaylightSaving {
            repeated_time: repeated,
            skipped_time: skipped,
        });
        self
    }

    pub fn in_zone(mut self, zone: &str) -> Self {
        self.time_zone = zone.into();
        self
    }

    pub fn script(mut self, inline: &str) -> Self {
        self.script = Script {
            inline: Some(inline.into()),
            ..Script::default()
        };
        self
    }

    /// Gives the job its own retention (`maxAge` like `90d`, `keepLast`).
    pub fn retain(mut self, max_age: Option<&str>, keep_last: Option<u32>) -> Self {
        self.retention = Some(crate::retention::Retention {
            max_age: max_age.map(Into::into),
            keep_last,
        });
        self
    }

    /// Turns on the dead-man's switch (`26h`, `10s`).
    pub fn expect_success_within(mut self, within: &str) -> Self {
        self.expect_success_within = Some(within.into());
        self
    }

    /// Sends this job's alerts to these receivers (every incident).
    pub fn notify(mut self, receivers: &[&str]) -> Self {
        self.notifications = Some(crate::alerting::Notifications {
            receivers: Some(
                receivers
                    .iter()
                    .map(|r| crate::alerting::ReceiverName((*r).into()))
                    .collect(),
            ),
            events: None,
        });
        self
    }

    /// Gives failed runs `limit` further attempts after a fixed wait (`delay` like `2s`).
    pub fn retry(mut self, limit: u32, delay: &str) -> Self {
        self.retries = Some(crate::retry::Retries {
            limit,
            backoff: crate::retry::Backoff {
                strategy: crate::retry::BackoffStrategy::Fixed,
                delay: Some(delay.into()),
                max_delay: None,
            },
        });
        self
    }

    /// Pauses the job after `n` failed runs in a row.
    pub fn pause_after(mut self, n: u32) -> Self {
        self.pause_after_consecutive_failures = Some(n);
        self
    }

    /// Declares parameter `name` with a default (`None`: a value is required at Run Now).
    pub fn parameter(self, name: &str, default: Option<&str>) -> Self {
        self.parameter_with(crate::parameters::Parameter {
            default: default.map(Into::into),
            ..free_parameter(name)
        })
    }

    /// Declares parameter `name` whose value is one of `allowed`, with a default or required.
    pub fn parameter_one_of(self, name: &str, default: Option<&str>, allowed: &[&str]) -> Self {
        self.parameter_with(crate::parameters::Parameter {
            default: default.map(Into::into),
            allowed: allowed.iter().map(|v| (*v).to_owned()).collect(),
            ..free_parameter(name)
        })
    }

    /// Declares parameter `name` whose value must match `pattern`; no default, so it is required.
    pub fn parameter_matching(self, name: &str, pattern: &str) -> Self {
        self.parameter_with(crate::parameters::Parameter {
            pattern: Some(pattern.into()),
            ..free_parameter(name)
        })
    }

    /// Declares `parameter` as written.
    pub fn parameter_with(mut self, parameter: crate::parameters::Parameter) -> Self {
        self.parameters.push(parameter);
        self
    }
}

/// Parameter `name` with no description, no default and any value allowed.
fn free_parameter(name: &str) -> crate::parameters::Parameter {
    crate::parameters::Parameter {
        name: name.into(),
        description: None,
        default: None,
        allowed: Vec::new(),
        pattern: None,
    }
}
