//! The operator's port to SQL: the `scheduled_jobs` mirror and the `job_execution_logs` rows.
//!
//! Every call is idempotent (rows are keyed by the resource UID and the Kubernetes Job's
//! `namespace/name`), so a retry after an outage or a restart writes each run once. [`SqlLedger`]
//! is the store; [`MemoryLedger`] keeps the runs of an operator started without a database URL
//! (warned at start) in its memory only.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use jtp_crds::policy::PendingRetry;
use jtp_crds::{Retention, RunStatus, ScheduledJobSpec, Trigger};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A failed SQL call; the operator retries it with backoff.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LedgerError {
    pub message: String,
    #[source]
    pub source: Option<jtp_store::Error>,
}

impl LedgerError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }
}

impl From<jtp_store::Error> for LedgerError {
    fn from(e: jtp_store::Error) -> Self {
        Self {
            message: e.to_string(),
            source: Some(e),
        }
    }
}

/// Identifies this writer in `job_execution_logs.runner`.
pub const RUNNER_NAME: &str = "operator";

/// The SQL store (PostgreSQL or SQLite). Connects lazily and again after a failed connect, so
/// the operator starts and schedules while the database is down.
pub struct SqlLedger {
    url: String,
    output_cap: usize,
    store: tokio::sync::Mutex<Option<jtp_store::Store>>,
    ids: Mutex<BTreeMap<String, i64>>,
}

impl SqlLedger {
    pub fn new(url: &str) -> Self {
        Self::with_output_cap(url, jtp_store::DEFAULT_OUTPUT_CAP)
    }

    /// A store keeping at most `output_cap` bytes of each run's output.
    pub fn with_output_cap(url: &str, output_cap: usize) -> Self {
        Self {
            url: url.to_owned(),
            output_cap,
            store: tokio::sync::Mutex::new(None),
            ids: Mutex::new(BTreeMap::new()),
        }
    }

    /// Connects now; the operator calls this at start to report a bad URL early.
    pub async fn store(&self) -> Result<jtp_store::Store, LedgerError> {
        let mut slot = self.store.lock().await;
        if let Some(store) = slot.as_ref() {
            return Ok(store.clone());
        }
        let options = jtp_store::StoreOptions {
            output_cap: self.output_cap,
            ..jtp_store::StoreOptions::default()
        };
        let store = jtp_store::Store::connect_with(&self.url, options).await?;
        *slot = Some(store.clone());
        Ok(store)
    }

    /// The mirror rows' ids by UID (a cache: a panic while it was held cannot leave it wrong).
    fn ids(&self) -> MutexGuard<'_, BTreeMap<String, i64>> {
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn job_id(&self, store: &jtp_store::Store, job: &JobMirror) -> Result<i64, LedgerError> {
        if let Some(id) = self.ids().get(&job.uid).copied() {
            return Ok(id);
        }
        self.upsert(store, job).await
    }

    async fn upsert(&self, store: &jtp_store::Store, job: &JobMirror) -> Result<i64, LedgerError> {
        let row = store
            .upsert_job(&jtp_store::JobInput {
                name: &job.name,
                namespace: &job.namespace,
                uid: Some(&job.uid),
                spec: &job.spec,
                next_run: job.next_run,
            })
            .await?;
        if job.spec.suspend && row.pause_note != job.pause_note {
            store.set_pause_note(row.id, job.pause_note.as_deref()).await?;
        }
        self.ids().insert(job.uid.clone(), row.id);
        Ok(row.id)
    }

    async fn start(&self, store: &jtp_store::Store, run: &RunStart) -> Result<i64, LedgerError> {
        let job_id = self.job_id(store, &run.job).await?;
        let start = jtp_store::RunStart {
            job_id,
            trigger: run.trigger,
            scheduled_for: run.scheduled_at,
            started_at: run.started_at,
            k8s_job_name: Some(qualified(&run.job.namespace, &run.k8s_job_name)),
            runner: Some(RUNNER_NAME.to_owned()),
            requester: run.requester.clone(),
            parameters: run.parameters.clone(),
        };
        Ok(store.record_attempt_start(&start, run.attempt).await?)
    }
}

impl Ledger for SqlLedger {
    fn upsert_job<'a>(&'a self, job: &'a JobMirror) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let store = self.store().await?;
            self.upsert(&store, job).await.map(|_| ())
        })
    }

    fn record_run_start<'a>(&'a self, run: &'a RunStart) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let store = self.store().await?;
            self.start(&store, run).await.map(|_| ())
        })
    }

    fn record_run_finish<'a>(&'a self, run: &'a RunFinish) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let store = self.store().await?;
            let id = self.start(&store, &run.start).await?;
            let tail: Vec<u8> = run.output.tail.iter().copied().collect();
            store
                .record_finish_parts(
                    id,
                    &jtp_store::RunFinish {
                        status: run.status,
                        exit_code: run.exit_code,
                        output: &run.output.head,
                        finished_at: run.finished_at,
                    },
                    &tail,
                    run.output.omitted,
                    jtp_store::FinishEffects {
                        retry: run.retry,
                        standalone: false,
                    },
                )
                .await?;
            Ok(())
        })
    }

    fn mark_deleted<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let store = self.store().await?;
            store.delete_job_by_uid(uid).await?;
            Ok(())
        })
    }

    fn finished_runs<'a>(
        &'a self,
        namespace: &'a str,
        jobs: &'a [String],
    ) -> BoxFuture<'a, Result<HashSet<String>, LedgerError>> {
        Box::pin(async move {
            let store = self.store().await?;
            let names: Vec<String> = jobs.iter().map(|j| qualified(namespace, j)).collect();
            let found = store.finished_k8s_jobs(&names).await?;
            Ok(jobs
                .iter()
                .filter(|j| found.contains(&qualified(namespace, j)))
                .cloned()
                .collect())
        })
    }

    fn sql_store(&self) -> BoxFuture<'_, Result<Option<jtp_store::Store>, LedgerError>> {
        Box::pin(async move { self.store().await.map(Some) })
    }

    fn record_skipped<'a>(
        &'a self,
        job: &'a JobMirror,
        slot: DateTime<Utc>,
        detail: &'a str,
    ) -> BoxFuture<'a, Result<bool, LedgerError>> {
        Box::pin(async move {
            let store = self.store().await?;
            let job_id = self.job_id(&store, job).await?;
            Ok(store.record_skipped(job_id, slot, detail, Utc::now()).await?)
        })
    }

    fn prune_runs<'a>(&'a self, global: &'a Retention) -> BoxFuture<'a, Result<u64, LedgerError>> {
        Box::pin(async move {
            let store = self.store().await?;
            let report = store
                .prune_runs(global, Utc::now(), &jtp_store::PruneOptions::default())
                .await?;
            Ok(report.deleted)
        })
    }
}

/// `job_execution_logs.k8s_job_name`: Job names are unique only within a namespace.
fn qualified(namespace: &str, job: &str) -> String {
    format!("{namespace}/{job}")
}

/// The mirror row of one ScheduledJob.
#[derive(Clone, Debug, PartialEq)]
pub struct JobMirror {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub spec: ScheduledJobSpec,
    pub next_run: Option<DateTime<Utc>>,
    pub last_run: Option<DateTime<Utc>>,
    pub last_status: Option<RunStatus>,
    /// Why the operator paused the job (`status.autoPause`), shown in the portal while suspended.
    pub pause_note: Option<String>,
}

/// A run that has started (an in-flight RUNNING row).
#[derive(Clone, Debug, PartialEq)]
pub struct RunStart {
    pub job: JobMirror,
    pub k8s_job_name: String,
    pub scheduled_at: DateTime<Utc>,
    /// When its Job was created.
    pub started_at: DateTime<Utc>,
    pub trigger: Trigger,
    /// Who asked for a manual run, when someone said.
    pub requester: Option<String>,
    /// 1 for a slot's first run, more for its retries.
    pub attempt: u32,
    /// The values of the job's parameters the run got (`spec.parameters`).
    pub parameters: jtp_crds::ParameterValues,
}

/// A run that has finished.
#[derive(Clone, Debug, PartialEq)]
pub struct RunFinish {
    pub start: RunStart,
    pub finished_at: DateTime<Utc>,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    /// The log as kept within the cap, with the operator's note at its end.
    pub output: super::runs::RunOutput,
    /// The further attempt this run gets (it then does not count towards failures in a row).
    pub retry: Option<PendingRetry>,
}

/// Where runs are recorded.
pub trait Ledger: Send + Sync {
    /// Inserts or updates the mirror row of a ScheduledJob, keyed by its UID.
    fn upsert_job<'a>(&'a self, job: &'a JobMirror) -> BoxFuture<'a, Result<(), LedgerError>>;
    /// Writes a RUNNING row for a Job unless one exists.
    fn record_run_start<'a>(&'a self, run: &'a RunStart) -> BoxFuture<'a, Result<(), LedgerError>>;
    /// Writes the final row of a Job (creating it if its start was never seen); a repeat is a no-op.
    fn record_run_finish<'a>(&'a self, run: &'a RunFinish) -> BoxFuture<'a, Result<(), LedgerError>>;
    /// Marks the mirror row of a deleted ScheduledJob deleted; its runs stay.
    fn mark_deleted<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<(), LedgerError>>;
    /// Which of these Jobs of `namespace` have their finished run recorded.
    fn finished_runs<'a>(
        &'a self,
        namespace: &'a str,
        jobs: &'a [String],
    ) -> BoxFuture<'a, Result<HashSet<String>, LedgerError>>;
    /// One retention pass ([`jtp_store::Store::prune_runs`]) with `global` for jobs without
    /// `spec.retention`; returns how many runs went.
    fn prune_runs<'a>(&'a self, global: &'a Retention) -> BoxFuture<'a, Result<u64, LedgerError>>;
    /// Opens the skipped-slot incident of `job` for `slot` (`detail` in the run policy's words),
    /// unless one is open ([`jtp_store::Store::record_skipped`]); true when it was written. Runs
    /// kept in memory alert nothing.
    fn record_skipped<'a>(
        &'a self,
        job: &'a JobMirror,
        slot: DateTime<Utc>,
        detail: &'a str,
    ) -> BoxFuture<'a, Result<bool, LedgerError>> {
        let _ = (job, slot, detail);
        Box::pin(async { Ok(false) })
    }
    /// The SQL store behind this ledger, which alerting reads and writes; `None` when runs are
    /// kept in memory (then nothing alerts).
    fn sql_store(&self) -> BoxFuture<'_, Result<Option<jtp_store::Store>, LedgerError>> {
        Box::pin(async { Ok(None) })
    }
}

/// One run of [`MemoryLedger`].
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryRun {
    pub job_uid: String,
    pub scheduled_at: DateTime<Utc>,
    pub trigger: Trigger,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub output: String,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The runs of an operator without a database, in its memory: lost at restart, never shown by
/// the portal; nothing alerts and nothing is pruned. Keyed as the SQL rows are (the Job's
/// `namespace/name`), so Jobs of the same name in two namespaces are two runs.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    runs: Mutex<BTreeMap<String, MemoryRun>>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    /// The runs by `namespace/name` of their Kubernetes Job.
    pub fn runs(&self) -> BTreeMap<String, MemoryRun> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, MemoryRun>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Ledger for MemoryLedger {
    /// No mirror rows: only the portal reads them, and it reads SQL.
    fn upsert_job<'a>(&'a self, _job: &'a JobMirror) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async { Ok(()) })
    }

    fn record_run_start<'a>(&'a self, run: &'a RunStart) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let mut runs = self.lock();
            runs.entry(qualified(&run.job.namespace, &run.k8s_job_name))
                .or_insert_with(|| MemoryRun::started(run));
            Ok(())
        })
    }

    fn record_run_finish<'a>(&'a self, run: &'a RunFinish) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let mut runs = self.lock();
            let row = runs
                .entry(qualified(&run.start.job.namespace, &run.start.k8s_job_name))
                .or_insert_with(|| MemoryRun::started(&run.start));
            if row.status == RunStatus::Running {
                row.status = run.status;
                row.exit_code = run.exit_code;
                row.output = run.output.text(jtp_store::DEFAULT_OUTPUT_CAP);
                row.finished_at = Some(run.finished_at);
            }
            Ok(())
        })
    }

    /// No mirror rows to mark; the runs stay.
    fn mark_deleted<'a>(&'a self, _uid: &'a str) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async { Ok(()) })
    }

    fn finished_runs<'a>(
        &'a self,
        namespace: &'a str,
        jobs: &'a [String],
    ) -> BoxFuture<'a, Result<HashSet<String>, LedgerError>> {
        Box::pin(async move {
            let runs = self.lock();
            Ok(jobs
                .iter()
                .filter(|j| {
                    runs.get(&qualified(namespace, j))
                        .is_some_and(|r| r.status.is_finished())
                })
                .cloned()
                .collect())
        })
    }

    /// Runs kept in memory live as long as the process: nothing is pruned.
    fn prune_runs<'a>(&'a self, _global: &'a Retention) -> BoxFuture<'a, Result<u64, LedgerError>> {
        Box::pin(async { Ok(0) })
    }
}

impl MemoryRun {
    fn started(run: &RunStart) -> Self {
        Self {
            job_uid: run.job.uid.clone(),
            scheduled_at: run.scheduled_at,
            trigger: run.trigger,
            status: RunStatus::Running,
            exit_code: None,
            output: String::new(),
            finished_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(namespace: &str, job: &str) -> RunStart {
        let at = DateTime::from_timestamp(1_700_000_000, 0).expect("an instant");
        RunStart {
            job: JobMirror {
                uid: format!("uid-{namespace}"),
                namespace: namespace.into(),
                name: "backup".into(),
                spec: ScheduledJobSpec::manual(),
                next_run: None,
                last_run: None,
                last_status: None,
                pause_note: None,
            },
            k8s_job_name: job.into(),
            scheduled_at: at,
            started_at: at,
            trigger: Trigger::Manual,
            requester: None,
            parameters: Default::default(),
            attempt: 1,
        }
    }

    /// Jobs of one name in two namespaces are two runs, as in SQL: one finished does not make the
    /// other look recorded.
    #[tokio::test]
    async fn runs_in_memory_are_keyed_by_namespace_and_job_name() {
        let ledger = MemoryLedger::new();
        let (a, b) = (start("a", "backup-m1"), start("b", "backup-m1"));
        ledger.record_run_start(&a).await.expect("start a");
        ledger.record_run_start(&b).await.expect("start b");
        ledger
            .record_run_finish(&RunFinish {
                start: a,
                finished_at: DateTime::from_timestamp(1_700_000_010, 0).expect("an instant"),
                status: RunStatus::Success,
                exit_code: Some(0),
                output: super::super::runs::RunOutput::default(),
                retry: None,
            })
            .await
            .expect("finish a");
        let names = ["backup-m1".to_owned()];
        let in_a = ledger.finished_runs("a", &names).await.expect("a");
        let in_b = ledger.finished_runs("b", &names).await.expect("b");
        assert_eq!((in_a.len(), in_b.len()), (1, 0));
        assert_eq!(ledger.runs().len(), 2);
    }
}
