//! The standalone runner: sleeps until the earliest `next_run` in the database (or until the portal
//! changes something), claims each due slot with a compare-and-set so that several runners on one
//! database never run a slot twice, runs it with the local executor and records how it ended.

use super::executor::{ExecRequest, Program, Stop, execute, resolve_script_file};
use super::plan::{Action, JobState, plan};
use chrono::{DateTime, Utc};
use jtp_crds::{ConcurrencyPolicy, RunStatus, Script, Trigger, validate};
use jtp_store::{Job, RunFinish, SlotClaim, Store};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// ConfigMaps from the jobs folder, by (namespace, name): key → content.
pub type ConfigMaps = Arc<RwLock<BTreeMap<(String, String), BTreeMap<String, String>>>>;

/// The longest the runner sleeps without looking at the database: a safety net for changes made
/// by another process (a second runner's portal), not a sweep — a due job never waits for it
/// when it was created through this process.
pub const MAX_IDLE: Duration = Duration::from_secs(30);
/// How many due jobs one pass takes.
const BATCH: i64 = 256;

/// Settings of a runner.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Who claims runs (`job_execution_logs.runner`); stable across restarts of the same runner.
    pub id: String,
    pub scripts_dir: PathBuf,
    /// Where ConfigMap scripts are written before they run.
    pub work_dir: PathBuf,
    /// How long running scripts may go on after shutdown is asked before they are killed.
    pub shutdown_grace: Duration,
}

/// A run in flight, stoppable by Replace or shutdown.
struct Active {
    run_id: i64,
    stop: watch::Sender<Stop>,
}

/// The runner; cheap to share.
pub struct Runner {
    store: Store,
    config: RunnerConfig,
    config_maps: ConfigMaps,
    wake: Arc<Notify>,
    active: Mutex<HashMap<i64, Vec<Active>>>,
    /// The runner's own writes take turns here. SQLite allows one writer at a time and makes the
    /// others sleep in growing steps until the lock is free; queueing in-process instead keeps
    /// claims from sleeping in SQLite's busy handler behind the finish of another run.
    writes: tokio::sync::Mutex<()>,
}

impl Runner {
    pub fn new(store: Store, config: RunnerConfig, config_maps: ConfigMaps, wake: Arc<Notify>) -> Arc<Self> {
        Arc::new(Self {
            store,
            config,
            config_maps,
            wake,
            active: Mutex::new(HashMap::new()),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// Runs until `shutdown` turns true, then gives running scripts the grace period, stops the
    /// rest and records them.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        match self
            .store
            .interrupted_runs_cleanup(&self.config.id, Utc::now())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                runs = n,
                "closed runs left in flight by an earlier stop as interrupted"
            ),
            Err(e) => tracing::error!(error = %e, "could not close interrupted runs"),
        }
        let mut tasks = JoinSet::new();
        let mut backoff = Duration::from_millis(200);
        while !*shutdown.borrow() {
            let pause = match self.pass(&mut tasks).await {
                Ok(pause) => {
                    backoff = Duration::from_millis(200);
                    pause
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "runner pass failed");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    backoff
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
            // Reap finished runs; they need nothing more from the loop.
            while tasks.try_join_next().is_some() {}
        }
        self.stop_all(&mut tasks).await;
    }

    /// One look at the database: start what is due; return how long to sleep.
    async fn pass(self: &Arc<Self>, tasks: &mut JoinSet<()>) -> jtp_store::Result<Duration> {
        let now = Utc::now();
        let mut pending = Vec::new();
        for job in self.store.due_jobs(now, BATCH).await? {
            if let Some(run) = self.handle(job, now).await? {
                pending.push(run);
            }
        }
        self.start(pending, now, tasks).await?;
        let next = self.store.next_wakeup().await?;
        let until = next.map_or(MAX_IDLE, |at| {
            (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
        });
        Ok(until.min(MAX_IDLE))
    }

    /// Decides one due job; skips are written at once, runs are returned to be claimed together.
    async fn handle(&self, job: Job, now: DateTime<Utc>) -> jtp_store::Result<Option<Pending>> {
        let Some(expected) = job.next_run else {
            return Ok(None);
        };
        let _writing = self.writes.lock().await;
        let schedule = match validate(&job.spec) {
            Ok(schedule) => schedule,
            Err(invalid) => {
                tracing::error!(job = %job.name, %invalid, "invalid job left unscheduled until it is fixed");
                self.store.skip_slot(job.id, expected, None).await?;
                return Ok(None);
            }
        };
        // Allow never looks at runs in flight: spare the query on the hot path.
        let active_runs = match job.spec.concurrency_policy {
            ConcurrencyPolicy::Allow => 0,
            _ => usize::try_from(self.store.running_runs(job.id).await?).unwrap_or(usize::MAX),
        };
        let state = JobState {
            spec: &job.spec,
            schedule: &schedule,
            next_run: Some(expected),
            run_now: job.run_now_requested_at,
            active_runs,
        };
        let decision = plan(&state, now);
        match decision.action {
            Action::Wait => {
                if decision.next_run != job.next_run {
                    self.store.skip_slot(job.id, expected, decision.next_run).await?;
                }
            }
            Action::Skip { slot, reason } => {
                if self.store.skip_slot(job.id, expected, decision.next_run).await? {
                    tracing::warn!(job = %job.name, %slot, %reason, "slot skipped");
                }
            }
            Action::Run {
                slot,
                trigger,
                replace,
            } => {
                // A catch-up runs the latest missed slot: move next_run onto it first (a
                // compare-and-set like the claim), so the run is recorded for that slot.
                let mut expected = expected;
                if trigger == Trigger::Schedule && slot != expected {
                    if !self.store.skip_slot(job.id, expected, Some(slot)).await? {
                        return Ok(None);
                    }
                    expected = slot;
                }
                if replace {
                    self.stop_job_runs(job.id, "replaced by a newer run (concurrencyPolicy: Replace)");
                }
                return Ok(Some(Pending {
                    job,
                    expected,
                    next_run: decision.next_run,
                }));
            }
        }
        Ok(None)
    }

    /// Claims the due runs of a pass in one transaction and starts those won.
    async fn start(
        self: &Arc<Self>,
        pending: Vec<Pending>,
        now: DateTime<Utc>,
        tasks: &mut JoinSet<()>,
    ) -> jtp_store::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let claims: Vec<SlotClaim<'_>> = pending
            .iter()
            .map(|p| SlotClaim {
                job_id: p.job.id,
                expected_next_run: p.expected,
                new_next_run: p.next_run,
                runner: &self.config.id,
                now,
            })
            .collect();
        let won = {
            let _writing = self.writes.lock().await;
            self.store.claim_slots(&claims).await?
        };
        for (run, claim) in pending.into_iter().zip(won) {
            let Some(claim) = claim else { continue };
            let skew_ms = (Utc::now() - claim.scheduled_for).num_milliseconds();
            tracing::info!(job = %run.job.name, run_id = claim.run_id, trigger = %claim.trigger, skew_ms, "run started");
            let (stop, stopped) = watch::channel(Stop::None);
            self.register(run.job.id, claim.run_id, stop);
            let runner = Arc::clone(self);
            tasks.spawn(async move { runner.execute_run(run.job, claim.run_id, stopped).await });
        }
        Ok(())
    }

    async fn execute_run(self: Arc<Self>, job: Job, run_id: i64, stop: watch::Receiver<Stop>) {
        let started = Utc::now();
        let outcome = match self.request(&job, run_id) {
            Ok(request) => {
                let outcome = execute(&request, stop).await;
                let (head, tail, omitted) = outcome.output.into_parts();
                Finished {
                    status: outcome.status,
                    exit_code: outcome.exit_code,
                    head,
                    tail,
                    omitted,
                }
            }
            Err(message) => Finished {
                status: RunStatus::Error,
                exit_code: None,
                head: format!("[jtp] {message}\n").into_bytes(),
                tail: Vec::new(),
                omitted: 0,
            },
        };
        let _ = std::fs::remove_dir_all(self.config.work_dir.join(run_id.to_string()));
        self.unregister(job.id, run_id);
        self.record(&job, run_id, outcome, started).await;
    }

    /// Records a finished run, retrying while the database is unavailable: a run is never lost
    /// because the database blinked.
    async fn record(&self, job: &Job, run_id: i64, done: Finished, started: DateTime<Utc>) {
        let finished_at = Utc::now();
        let mut delay = Duration::from_millis(200);
        loop {
            let finish = RunFinish {
                status: done.status,
                exit_code: done.exit_code,
                output: &done.head,
                finished_at,
            };
            let recorded = {
                let _writing = self.writes.lock().await;
                self.store
                    .record_finish_parts(run_id, &finish, &done.tail, done.omitted)
                    .await
            };
            match recorded {
                Ok(_) => {
                    let seconds = (finished_at - started).num_milliseconds() as f64 / 1000.0;
                    tracing::info!(job = %job.name, run_id, status = %done.status, exit_code = ?done.exit_code, seconds, "run finished");
                    return;
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(job = %job.name, run_id, error = %e, retry_in = ?delay, "database unavailable; will record the run when it is back");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    tracing::error!(job = %job.name, run_id, error = %e, "could not record the run");
                    return;
                }
            }
        }
    }

    /// Builds the process to start, or says why the script cannot start (an ERROR run).
    fn request(&self, job: &Job, run_id: i64) -> Result<ExecRequest, String> {
        let spec = &job.spec;
        let program = match &spec.script {
            Script {
                inline: Some(script), ..
            } => Program::Shell(script.clone()),
            Script {
                command: Some(argv), ..
            } => Program::Argv(argv.clone()),
            Script { file: Some(file), .. } => {
                Program::File(resolve_script_file(&self.config.scripts_dir, file)?)
            }
            Script {
                config_map: Some(cm), ..
            } => {
                let content = self
                    .config_maps
                    .read()
                    .map_err(|_| "the ConfigMap table is unavailable".to_owned())?
                    .get(&(job.namespace.clone(), cm.name.clone()))
                    .and_then(|data| data.get(&cm.key).cloned())
                    .ok_or_else(|| {
                        format!(
                            "ConfigMap {}/{} with key {} is not in the jobs folder",
                            job.namespace, cm.name, cm.key
                        )
                    })?;
                let dir = self.config.work_dir.join(run_id.to_string());
                let path = dir.join(&cm.key);
                let write = || -> std::io::Result<()> {
                    std::fs::create_dir_all(&dir)?;
                    std::fs::write(&path, content.as_bytes())?;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                };
                write().map_err(|e| format!("could not write the script {}: {e}", path.display()))?;
                Program::File(path)
            }
            _ => return Err("the job names no script".to_owned()),
        };
        let mut env: Vec<(String, String)> = spec
            .env
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect();
        env.push(("JTP_JOB_NAME".into(), job.name.clone()));
        env.push(("JTP_JOB_NAMESPACE".into(), job.namespace.clone()));
        env.push(("JTP_RUN_ID".into(), run_id.to_string()));
        Ok(ExecRequest {
            program,
            env,
            working_dir: spec.working_dir.as_ref().map(PathBuf::from),
            timeout: spec
                .active_deadline_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs),
            output_cap: self.store.output_cap(),
        })
    }

    fn register(&self, job_id: i64, run_id: i64, stop: watch::Sender<Stop>) {
        if let Ok(mut active) = self.active.lock() {
            active.entry(job_id).or_default().push(Active { run_id, stop });
        }
    }

    fn unregister(&self, job_id: i64, run_id: i64) {
        if let Ok(mut active) = self.active.lock()
            && let Some(runs) = active.get_mut(&job_id)
        {
            runs.retain(|a| a.run_id != run_id);
            if runs.is_empty() {
                active.remove(&job_id);
            }
        }
    }

    fn stop_job_runs(&self, job_id: i64, why: &'static str) {
        if let Ok(active) = self.active.lock() {
            for run in active.get(&job_id).into_iter().flatten() {
                let _ = run.stop.send(Stop::Kill(why));
            }
        }
    }

    /// Shutdown: running scripts get the grace period, then are stopped and recorded.
    async fn stop_all(&self, tasks: &mut JoinSet<()>) {
        if tasks.is_empty() {
            return;
        }
        tracing::info!(runs = tasks.len(), grace = ?self.config.shutdown_grace, "waiting for running scripts");
        let drained = tokio::time::timeout(self.config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            if let Ok(active) = self.active.lock() {
                for run in active.values().flatten() {
                    let _ = run.stop.send(Stop::Kill("the runner shut down"));
                }
            }
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// A due run waiting for its claim.
struct Pending {
    job: Job,
    expected: DateTime<Utc>,
    next_run: Option<DateTime<Utc>>,
}

struct Finished {
    status: RunStatus,
    exit_code: Option<i32>,
    head: Vec<u8>,
    tail: Vec<u8>,
    omitted: u64,
}
