//! What this process knows about each ScheduledJob that the API server's copies may not show yet:
//! the status it last decided, the finished runs it knows are in SQL, the Jobs it created that
//! the cache has not delivered, and how often its reconcile failed in a row.
//!
//! One map behind one lock, keyed by the ScheduledJob's UID. Every update is a single insert or
//! removal, so a lock poisoned by a panicking reconcile still holds consistent entries: it is taken
//! over, never skipped (skipping would silently forget a launch or a recorded run).

use crate::backoff::Backoff;
use chrono::{DateTime, Utc};
use jtp_crds::{RunStatus, ScheduledJobStatus};
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How a recorded run ended, when this process recorded it (after a restart only "recorded" is
/// known).
pub type Ended = (RunStatus, DateTime<Utc>);

/// How long a Job this process created counts as existing while the cache has not shown it.
const LAUNCH_MEMORY: Duration = Duration::from_secs(60);
/// Shortest wait before retrying a failed reconcile or SQL write; doubled per failure.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest wait between retries.
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// The waits between retries of one ScheduledJob's reconcile.
const RETRY: Backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);

#[derive(Default)]
pub struct Expectations {
    by_uid: Mutex<HashMap<String, Expected>>,
}

struct Expected {
    /// The status last decided: a reconcile that sees an older copy of the object (the watch lags
    /// our own write) decides from this one instead, so a slot never looks due twice.
    written: Option<ScheduledJobStatus>,
    /// Finished Jobs whose runs are in SQL (their logs are not read again and history limits may
    /// prune them), by Job name, with how they ended when this process recorded them (a start
    /// error is ERROR though its Job only says Failed).
    recorded: HashMap<String, Option<Ended>>,
    /// Jobs created here and not yet in the cache, by name.
    launched: HashMap<String, (Job, Instant)>,
    /// Reconciles failed in a row, and so the wait before the next.
    retry: Backoff,
}

impl Default for Expected {
    fn default() -> Self {
        Self {
            written: None,
            recorded: HashMap::new(),
            launched: HashMap::new(),
            retry: RETRY,
        }
    }
}

impl Expectations {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Expected>> {
        self.by_uid.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with<T>(&self, uid: &str, f: impl FnOnce(&mut Expected) -> T) -> T {
        f(self.lock().entry(uid.to_owned()).or_default())
    }

    /// The status last decided for `uid`.
    pub fn written(&self, uid: &str) -> Option<ScheduledJobStatus> {
        self.lock().get(uid).and_then(|e| e.written.clone())
    }

    pub fn set_written(&self, uid: &str, status: ScheduledJobStatus) {
        self.with(uid, |e| e.written = Some(status));
    }

    /// `None` when the run of Job `job` is not known to be recorded; else how it ended, if known.
    pub fn recorded(&self, uid: &str, job: &str) -> Option<Option<Ended>> {
        self.lock().get(uid).and_then(|e| e.recorded.get(job).copied())
    }

    pub fn mark_recorded(&self, uid: &str, jobs: impl IntoIterator<Item = (String, Option<Ended>)>) {
        self.with(uid, |e| e.recorded.extend(jobs));
    }

    /// Remembers a Job just created until the cache shows it (read-your-writes for launches).
    pub fn launched(&self, uid: &str, job: Job) {
        self.with(uid, |e| {
            e.launched.insert(job.name_any(), (job, Instant::now()));
        });
    }

    /// The Jobs created here that `seen` (the cache) does not hold yet; forgets those it holds
    /// and those remembered long enough.
    pub fn unseen_launches(&self, uid: &str, seen: &[Job]) -> Vec<Job> {
        let mut by_uid = self.lock();
        let Some(expected) = by_uid.get_mut(uid) else {
            return Vec::new();
        };
        expected.launched.retain(|name, (_, at)| {
            !seen.iter().any(|j| &j.name_any() == name) && at.elapsed() < LAUNCH_MEMORY
        });
        expected.launched.values().map(|(job, _)| job.clone()).collect()
    }

    /// One more failure of `uid`'s reconcile: the delay before the next try, doubling from
    /// [`BACKOFF_MIN`] to [`BACKOFF_MAX`].
    pub fn failed(&self, uid: &str) -> Duration {
        self.with(uid, |e| e.retry.failed())
    }

    pub fn succeeded(&self, uid: &str) {
        if let Some(e) = self.lock().get_mut(uid) {
            e.retry.reset();
        }
    }

    /// Drops everything about a deleted ScheduledJob.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str) -> Job {
        let mut job = Job::default();
        job.metadata.name = Some(name.into());
        job
    }

    #[test]
    fn a_launch_is_remembered_until_the_cache_shows_it() {
        let expectations = Expectations::default();
        expectations.launched("uid", job("a-1"));
        let names = |jobs: Vec<Job>| jobs.iter().map(ResourceExt::name_any).collect::<Vec<_>>();
        assert_eq!(names(expectations.unseen_launches("uid", &[])), ["a-1"]);
        assert_eq!(
            names(expectations.unseen_launches("other", &[])),
            Vec::<String>::new()
        );
        assert!(expectations.unseen_launches("uid", &[job("a-1")]).is_empty());
        assert!(
            expectations.unseen_launches("uid", &[]).is_empty(),
            "forgotten once seen"
        );
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_the_cap_and_resets_on_success() {
        let expectations = Expectations::default();
        let delays: Vec<u64> = (0..6).map(|_| expectations.failed("uid").as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 15, 15]);
        expectations.succeeded("uid");
        assert_eq!(expectations.failed("uid"), BACKOFF_MIN);
    }

    #[test]
    fn a_poisoned_lock_is_taken_over_not_skipped() {
        let expectations = std::sync::Arc::new(Expectations::default());
        expectations.mark_recorded("uid", [("a-1".to_owned(), None)]);
        let poisoner = std::sync::Arc::clone(&expectations);
        let _ = std::thread::spawn(move || {
            let _held = poisoner.lock();
            panic!("a reconcile panics while holding the lock");
        })
        .join();
        assert!(expectations.by_uid.is_poisoned());
        assert_eq!(expectations.recorded("uid", "a-1"), Some(None));
        expectations.mark_recorded("uid", [("a-2".to_owned(), None)]);
        assert_eq!(expectations.recorded("uid", "a-2"), Some(None));
    }
}
