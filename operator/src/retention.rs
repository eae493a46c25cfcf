//! The global retention policy (flags shared by `jtp operator`, `jtp standalone` and `jtp portal`,
//! which shows it) and how often the background pass runs. The rule and the deleting live in
//! [`jtp_crds::Retention`] and [`jtp_store::Store::prune_runs`].

use jtp_crds::Retention;
use std::time::Duration;

/// Time between two retention passes (the first runs at start).
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The global retention policy: for jobs without `spec.retention`, and for the runs of every
/// deleted job. With neither flag, every run is kept.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionArgs {
    /// Delete runs that started longer ago than this (`90d`, `36h`, `1d12h`; units d, h, m, s).
    #[arg(long = "retention-max-age", env = "JTP_RETENTION_MAX_AGE")]
    pub retention_max_age: Option<String>,
    /// Always keep each job's newest N finished runs; without --retention-max-age, keep only them.
    #[arg(long = "retention-keep-last", env = "JTP_RETENTION_KEEP_LAST")]
    pub retention_keep_last: Option<u32>,
}

impl RetentionArgs {
    /// The policy, or a message naming the flag (and its variable) that is wrong. An empty value
    /// (an unset Helm value) means no limit.
    pub fn policy(&self) -> Result<Retention, String> {
        let policy = Retention {
            max_age: self.retention_max_age.clone().filter(|s| !s.trim().is_empty()),
            keep_last: self.retention_keep_last,
        };
        let flags = [
            ("maxAge", "--retention-max-age (JTP_RETENTION_MAX_AGE)"),
            ("keepLast", "--retention-keep-last (JTP_RETENTION_KEEP_LAST)"),
        ];
        let problems: Vec<String> = policy
            .check("")
            .into_iter()
            .map(|e| {
                let flag = flags
                    .iter()
                    .find(|(field, _)| e.field.ends_with(field))
                    .map_or(e.field.as_str(), |(_, flag)| flag);
                format!("{flag}: {}", e.message)
            })
            .collect();
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_the_policy_and_bad_ones_name_the_flag() {
        let args = RetentionArgs {
            retention_max_age: Some("90d".into()),
            retention_keep_last: Some(20),
        };
        assert_eq!(
            args.policy().expect("valid").to_string(),
            "runs of the last 90 days, and at least the last 20 runs"
        );
        let unset = RetentionArgs {
            retention_max_age: Some(String::new()),
            retention_keep_last: None,
        };
        assert!(unset.policy().expect("empty is unset").keeps_everything());
        let bad = RetentionArgs {
            retention_max_age: Some("90 days".into()),
            retention_keep_last: Some(0),
        };
        let message = bad.policy().expect_err("refused");
        assert!(
            message.starts_with("--retention-max-age (JTP_RETENTION_MAX_AGE): \"90 days\" is not a duration"),
            "{message}"
        );
        assert!(
            message.contains("--retention-keep-last (JTP_RETENTION_KEEP_LAST): must be at least 1"),
            "{message}"
        );
    }
}
