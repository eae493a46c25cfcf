//! Alerting, one core for both modes. It observes only what the store records — finished runs
//! and skipped slots open incidents where they are written ([`jtp_store::Store::record_attempt_finish`],
//! [`jtp_store::Store::record_skipped`]) — and adds the one fact nobody records: silence. Every
//! [`CHECK_EVERY`] the scheduler process (the standalone runner, the operator's leader) checks
//! each job's dead-man's switch (`spec.expectSuccessWithin`) against its last success and opens
//! the overdue incident of each job past its deadline, once per deadline. Incidents live in SQL,
//! so a restart neither loses nor repeats one. [`send`] delivers them to webhooks.

pub mod send;

pub use send::{AlertArgs, AlertConfig, SecretUrls, UrlSource, deliver_forever};

use crate::controller::metrics::JobsCheck;
use chrono::{DateTime, Utc};
use jtp_crds::Overdue;
use jtp_store::Store;
use std::time::Duration;

/// Time between two checks of the dead-man's switches.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// A job with a dead-man's switch, as one check found it.
#[derive(Clone, Debug, PartialEq)]
pub struct Watched {
    pub job_id: i64,
    pub namespace: String,
    pub name: String,
    /// Set when it is overdue.
    pub overdue: Option<Overdue>,
}

/// Checks every job's dead-man's switch at `now` and opens the overdue incident of each job past
/// its deadline (writing one again is a no-op). Whatever keeps the job silent — suspended, an
/// edited schedule, skipped slots, failing runs, a manual job, a scheduler that was down — only a
/// recorded success moves its deadline.
pub async fn check_overdue(store: &Store, now: DateTime<Utc>) -> jtp_store::Result<Vec<Watched>> {
    let mut watched = Vec::new();
    for job in store.watched_jobs().await? {
        let overdue = job.overdue(now);
        if let Some(overdue) = &overdue
            && store.record_overdue(job.id, overdue, now).await?
        {
            tracing::warn!(job = %format!("{}/{}", job.namespace, job.name), %overdue, "job overdue");
        }
        watched.push(Watched {
            job_id: job.id,
            namespace: job.namespace,
            name: job.name,
            overdue,
        });
    }
    Ok(watched)
}

/// Checks the dead-man's switches at once and then every [`CHECK_EVERY`], until dropped, and
/// reads every live job's alerting facts for the per-job metrics; `store` gives the store for
/// each turn (the operator connects lazily: `None` skips the turn), `report` gets each turn's
/// result. A failed turn is logged and tried again at the next (the metrics keep the last good
/// one).
pub async fn watch_forever<S, F>(store: S, report: impl Fn(&JobsCheck) + Send)
where
    S: Fn() -> F + Send,
    F: std::future::Future<Output = Option<Store>> + Send,
{
    loop {
        if let Some(store) = store().await {
            let checked = match check_overdue(&store, Utc::now()).await {
                Ok(watched) => store
                    .job_health()
                    .await
                    .map(|health| JobsCheck { health, watched }),
                Err(e) => Err(e),
            };
            match checked {
                Ok(check) => report(&check),
                Err(e) => tracing::warn!(error = %e, "dead-man's switch check failed; will try again"),
            }
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}
