//! The standalone runner: sleeps until just before the earliest `next_run` in the database (or until
//! the portal changes something), claims each slot with a compare-and-set so that several runners on
//! one database never run a slot twice, starts its process at the slot with the local executor and
//! records how it ended.
//!
//! The database work of a slot (finding, deciding, claiming) is done [`LEAD`] ahead of it, so at the
//! slot itself only processes are started; start times and finishes are then written by one
//! recorder task, so a burst of finishing runs never queues in front of the next claim.

use super::contain::Containment;
use super::executor::{ExecRequest, Program, Stop, resolve_script_file, start};
use crate::backoff::Backoff;
use crate::controller::Metrics;
use chrono::{DateTime, Utc};
use jtp_crds::manifest::SecretData;
use jtp_crds::parameters::{self, ParameterValues};
use jtp_crds::policy::{self, Facts, Reason, RetryStep, Step};
use jtp_crds::{CompiledSchedule, ConcurrencyPolicy, JobId, RunStatus, Script, Trigger, validate};
use jtp_dashboard::live::LiveRuns;
use jtp_store::{FinishEffects, Job, RetryClaim, RunFinish, SlotClaim, Store};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

/// The ConfigMaps and Secrets of the jobs folder, as its last scan found them.
pub type Objects = Arc<RwLock<FolderObjects>>;

/// ConfigMaps and Secrets by (namespace, name).
#[derive(Debug, Default)]
pub struct FolderObjects {
    pub config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
    pub secrets: BTreeMap<(String, String), SecretData>,
}

/// The longest the runner sleeps without looking at the database: a safety net for changes made
/// by another process (a second runner's portal), not a sweep — a due job never waits for it
/// when it was created through this process.
pub const MAX_IDLE: Duration = Duration::from_secs(30);
/// How many due jobs one query takes (a pass repeats the query while it finds this many).
const BATCH: i64 = 512;
/// How long before a slot the runner wakes to decide and claim it: longer than the due-jobs query
/// plus the claim transaction of the largest bursts (hundreds of jobs) take, even on a busy
/// machine. The RUNNING row exists from the claim on; its `run_time` is set when the process has
/// been started.
pub const LEAD: Duration = Duration::from_millis(300);
/// The last stretch before a slot is slept by the thread, not the runtime's timer (which is
/// millisecond-grained and may fire a millisecond or two late).
const PRECISE_SLEEP: Duration = Duration::from_millis(2);
/// Waits after failed passes of the loop (from 400 ms, doubling, up to 10 s).
const PASS_RETRY: Backoff = Backoff::new(Duration::from_millis(400), Duration::from_secs(10));
/// Waits between tries of a SQL write while the database is unavailable (from 200 ms, doubling, up
/// to 10 s).
const WRITE_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
/// Tracing target of the runner's timing events (debug level): where the time between a slot and
/// its process goes. `RUST_LOG=jtp::timing=debug` shows them; the standalone benchmark reads them.
pub const TIMING: &str = "jtp::timing";

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
    /// Where each run's processes are kept together.
    pub containment: Arc<Containment>,
}

/// What the recorder task writes, in the order it was sent.
enum Write {
    /// The process of a run has been started at `at`.
    Started {
        run_id: i64,
        at: DateTime<Utc>,
    },
    Finished(Box<FinishedRun>),
    /// Everything sent before has been written: stop.
    Close,
}

struct FinishedRun {
    job: Job,
    run_id: i64,
    trigger: Trigger,
    /// The slot (or Run Now instant) and the attempt's number, for the retry rule.
    slot: DateTime<Utc>,
    attempt: u32,
    done: Finished,
    started: DateTime<Utc>,
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
    objects: Objects,
    wake: Arc<Notify>,
    active: Mutex<HashMap<i64, Vec<Active>>>,
    /// The runner's own writes take turns here. SQLite allows one writer at a time and makes the
    /// others sleep in growing steps until the lock is free; queueing in-process instead keeps
    /// claims from sleeping in SQLite's busy handler behind the finish of another run.
    writes: tokio::sync::Mutex<()>,
    /// To the recorder task (see [`Runner::record_writes`]).
    recorder: mpsc::UnboundedSender<Write>,
    recorder_rx: Mutex<Option<mpsc::UnboundedReceiver<Write>>>,
    /// The output of the runs in flight, for the portal (until their end is recorded).
    live: LiveRuns,
    /// Runs started and finished, and how late scheduled runs started (`/metrics`).
    metrics: Arc<Metrics>,
}

impl Runner {
    pub fn new(
        store: Store,
        config: RunnerConfig,
        objects: Objects,
        wake: Arc<Notify>,
        live: LiveRuns,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let (recorder, recorder_rx) = mpsc::unbounded_channel();
        let runner = Arc::new(Self {
            store,
            config,
            objects,
            wake,
            active: Mutex::new(HashMap::new()),
            writes: tokio::sync::Mutex::new(()),
            recorder,
            recorder_rx: Mutex::new(Some(recorder_rx)),
            live: live.clone(),
            metrics,
        });
        // The portal of this process stops runs through the runner (weakly: the portal may
        // outlive it).
        let weak = Arc::downgrade(&runner);
        live.set_stopper(Box::new(move |run_id, by| {
            weak.upgrade()
                .is_some_and(|runner| runner.stop_by_user(run_id, by))
        }));
        runner
    }

    /// A person stops run `run_id`: its process tree is ended (SIGTERM, then SIGKILL after
    /// [`super::executor::KILL_GRACE`]) and it is recorded as FAILURE "stopped by <by>", with no
    /// further attempt. False when the run is not in flight in this runner.
    pub fn stop_by_user(&self, run_id: i64, by: &str) -> bool {
        let Ok(active) = self.active.lock() else {
            return false;
        };
        let Some(run) = active.values().flatten().find(|a| a.run_id == run_id) else {
            return false;
        };
        tracing::info!(run_id, by, "stop requested");
        run.stop.send(Stop::ByUser(by.to_owned())).is_ok()
    }

    /// The folders a runner killed mid-run left behind (with the Secret files of its runs): every
    /// folder of a run that is no longer RUNNING (a runner sharing the data dir keeps the folders
    /// of the runs it still has going).
    async fn remove_folders_of_ended_runs(&self) {
        let Ok(entries) = std::fs::read_dir(&self.config.work_dir) else {
            return; // none yet
        };
        for entry in entries.filter_map(std::result::Result::ok) {
            let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<i64>().ok()) else {
                continue;
            };
            let ended = match self.store.get_run(id).await {
                Ok(run) => run.summary.status != RunStatus::Running,
                Err(jtp_store::Error::NotFound { .. }) => true,
                Err(e) => {
                    tracing::warn!(run = id, error = %e, "could not read the run of a left-behind folder; kept");
                    false
                }
            };
            if ended && let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(run = id, error = %e, "could not remove a left-behind run folder");
            }
        }
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
        self.remove_folders_of_ended_runs().await;
        let recorder = self
            .recorder_rx
            .lock()
            .ok()
            .and_then(|mut rx| rx.take())
            .map(|rx| tokio::spawn(Arc::clone(&self).record_writes(rx)));
        let mut tasks = JoinSet::new();
        let mut retry = PASS_RETRY;
        let mut meant_to_wake = None;
        while !*shutdown.borrow() {
            let pause = match self.pass(&mut tasks, meant_to_wake).await {
                Ok(pause) => {
                    retry.reset();
                    pause
                }
                Err(e) => {
                    let wait = retry.failed();
                    tracing::warn!(error = %e, retry_in = ?wait, "runner pass failed");
                    wait
                }
            };
            meant_to_wake = chrono::Duration::from_std(pause)
                .ok()
                .map(|pause| Utc::now() + pause);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.wake.notified() => meant_to_wake = None,
                _ = shutdown.changed() => {}
            }
            // Reap finished runs; they need nothing more from the loop.
            while tasks.try_join_next().is_some() {}
        }
        self.stop_all(&mut tasks).await;
        // Every run task has ended, so their finishes are queued: let the recorder write them.
        let _ = self.recorder.send(Write::Close);
        if let Some(recorder) = recorder {
            let _ = recorder.await;
        }
    }

    /// One look at the database: decide and claim what is due now or within [`LEAD`], start each
    /// claimed run at its slot; return how long to sleep.
    async fn pass(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        meant_to_wake: Option<DateTime<Utc>>,
    ) -> jtp_store::Result<Duration> {
        let now = Utc::now();
        let horizon = now + lead();
        let mut launches = Vec::new();
        let claimed = self.claim_due(now, horizon, meant_to_wake, &mut launches).await;
        // Runs claimed before an error are started all the same: their slots are taken.
        self.launch(launches, tasks).await;
        claimed?;
        let next = self.store.next_wakeup().await?;
        let Some(at) = next else {
            return Ok(MAX_IDLE);
        };
        // A slot inside this pass's horizon that is still pending was left for its own instant;
        // anything later is claimed LEAD ahead of it.
        let wake_at = if at <= horizon { at } else { at - lead() };
        Ok((wake_at - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_IDLE))
    }

    /// Decides and claims every job due by `horizon`, adding the runs won to `launches`.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        horizon: DateTime<Utc>,
        meant_to_wake: Option<DateTime<Utc>>,
        launches: &mut Vec<Launch>,
    ) -> jtp_store::Result<()> {
        loop {
            let started = Instant::now();
            let due = self.store.due_jobs(horizon, BATCH).await?;
            let full = due.len() >= usize::try_from(BATCH).unwrap_or(usize::MAX);
            let queried = started.elapsed();
            let mut pending = Vec::new();
            for job in due {
                if let Some(run) = self.handle(job, now).await? {
                    pending.push(run);
                }
            }
            let decided = started.elapsed();
            let claimed = self
                .claim(pending, now, started, [queried, decided], meant_to_wake)
                .await?;
            let progress = !claimed.is_empty();
            launches.extend(claimed);
            // Jobs left for their own instant (see `handle`) come back in every query: stop when a
            // full batch brought nothing new rather than spin on them.
            if !full || !progress {
                break;
            }
        }
        self.claim_retries(now, horizon, launches).await
    }

    /// Decides and claims the further attempts of failed runs due by `horizon` (`spec.retries`),
    /// each as the run policy's step says: started at its time, or dropped.
    async fn claim_retries(
        &self,
        now: DateTime<Utc>,
        horizon: DateTime<Utc>,
        launches: &mut Vec<Launch>,
    ) -> jtp_store::Result<()> {
        let due = self.store.due_retries(horizon, BATCH).await?;
        let mut pending = Vec::new();
        for job in due {
            let Some(retry) = job.pending_retry() else {
                continue;
            };
            let id = JobId {
                namespace: &job.namespace,
                name: &job.name,
            };
            let Ok(schedule) = validate(id, &job.spec) else {
                continue;
            };
            let step = step_for(&job, &schedule, &[], retry.at.max(now));
            match step.retry {
                RetryStep::Launch(retry) => pending.push((job, retry)),
                RetryStep::Drop(retry, why) => {
                    let _writing = self.writes.lock().await;
                    self.store.drop_retry(job.id).await?;
                    tracing::info!(job = %job.name, attempt = retry.attempt, "retry dropped: {why}");
                }
                RetryStep::Wait(_) | RetryStep::None => {}
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let claims: Vec<RetryClaim<'_>> = pending
            .iter()
            .map(|(job, retry)| RetryClaim {
                job_id: job.id,
                retry: *retry,
                runner: &self.config.id,
                now,
            })
            .collect();
        let won = {
            let _writing = self.writes.lock().await;
            self.store.claim_retries(&claims).await?
        };
        launches.extend(pending.into_iter().zip(won).filter_map(|((job, retry), claim)| {
            claim.map(|claim| Launch {
                job,
                run_id: claim.run_id,
                trigger: claim.trigger,
                slot: claim.scheduled_for,
                attempt: claim.attempt,
                at: retry.at,
                parameters: claim.parameters,
            })
        }));
        Ok(())
    }

    /// Decides one job due now or within the lead, as of the instant it is due; skips are written
    /// at once, runs are returned to be claimed together.
    async fn handle(&self, job: Job, now: DateTime<Utc>) -> jtp_store::Result<Option<Pending>> {
        let Some(expected) = job.next_run else {
            return Ok(None);
        };
        let at = expected.max(now);
        let id = JobId {
            namespace: &job.namespace,
            name: &job.name,
        };
        let schedule = match validate(id, &job.spec) {
            Ok(schedule) => schedule,
            Err(invalid) => {
                tracing::error!(job = %job.name, %invalid, "invalid job left unscheduled until it is fixed");
                self.skip_slot(job.id, expected, None).await?;
                return Ok(None);
            }
        };
        // Only Forbid and Replace look at runs in flight: spare the query on the hot path.
        let active = match job.spec.concurrency_policy {
            ConcurrencyPolicy::Allow => Vec::new(),
            _ => self.store.running_runs(job.id).await?,
        };
        // A run in flight may end before the slot: Forbid and Replace decide at the slot itself.
        if at > now && !active.is_empty() {
            return Ok(None);
        }
        let step = step_for(&job, &schedule, &active, at);
        // A row holds one pending run: a Run Now took the place of the next slot (see `step_for`).
        let Some(launch) = step.launch.first().copied() else {
            if step.next_run != job.next_run {
                let moved = self.skip_slot(job.id, expected, step.next_run).await?;
                if moved {
                    log_step(&job.name, &step);
                    self.record_skips(job.id, &step, now).await?;
                }
            }
            return Ok(None);
        };
        // A catch-up runs the latest missed slot: move next_run onto it first (a compare-and-set
        // like the claim), so the run is recorded for that slot.
        let mut expected = expected;
        if launch.trigger == Trigger::Schedule && launch.slot != expected {
            if !self.skip_slot(job.id, expected, Some(launch.slot)).await? {
                return Ok(None);
            }
            expected = launch.slot;
        }
        log_step(&job.name, &step);
        self.record_skips(job.id, &step, now).await?;
        self.stop_runs(job.id, &step.stop);
        Ok(Some(Pending {
            expected,
            next_run: step.next_run,
            drop_retry: matches!(step.retry, RetryStep::Drop(..)),
            // A job whose defaults do not resolve is refused again when its run starts, with why.
            defaults: parameters::resolve(&job.spec.parameters, &ParameterValues::new()).unwrap_or_default(),
            job,
        }))
    }

    /// Opens the skipped-slot incident of what `step` skipped or missed (alerts: one per streak,
    /// the store keeps it from opening twice), in the write turn.
    async fn record_skips(&self, job_id: i64, step: &Step<i64>, now: DateTime<Utc>) -> jtp_store::Result<()> {
        let missed = step
            .missed
            .truncated
            .then(|| step.missed.latest())
            .flatten()
            .map(|latest| (latest, policy::missed_slots_detail(latest)));
        let skips = step.skipped.iter().map(|s| (s.slot, s.to_string())).chain(missed);
        for (slot, detail) in skips {
            let _writing = self.writes.lock().await;
            if self.store.record_skipped(job_id, slot, &detail, now).await? {
                tracing::info!(job_id, %slot, "skipped-slot incident opened");
            }
        }
        Ok(())
    }

    /// Moves a job's next_run on without running it (a compare-and-set), in the write turn.
    async fn skip_slot(
        &self,
        job_id: i64,
        expected: DateTime<Utc>,
        next_run: Option<DateTime<Utc>>,
    ) -> jtp_store::Result<bool> {
        let _writing = self.writes.lock().await;
        self.store.skip_slot(job_id, expected, next_run).await
    }

    /// Claims the runs of a pass in one transaction; returns those won, each with its instant.
    async fn claim(
        &self,
        pending: Vec<Pending>,
        now: DateTime<Utc>,
        started: Instant,
        [queried, decided]: [Duration; 2],
        meant_to_wake: Option<DateTime<Utc>>,
    ) -> jtp_store::Result<Vec<Launch>> {
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let claims: Vec<SlotClaim<'_>> = pending
            .iter()
            .map(|p| SlotClaim {
                job_id: p.job.id,
                expected_next_run: p.expected,
                new_next_run: p.next_run,
                runner: &self.config.id,
                now,
                drop_retry: p.drop_retry,
                parameters: &p.defaults,
            })
            .collect();
        let (won, locked) = {
            let _writing = self.writes.lock().await;
            let locked = started.elapsed();
            (self.store.claim_slots(&claims).await?, locked)
        };
        let claimed = started.elapsed();
        let launches: Vec<Launch> = pending
            .into_iter()
            .zip(won)
            .filter_map(|(run, claim)| {
                claim.map(|claim| Launch {
                    job: run.job,
                    run_id: claim.run_id,
                    trigger: claim.trigger,
                    slot: claim.scheduled_for,
                    at: claim.scheduled_for,
                    attempt: claim.attempt,
                    parameters: claim.parameters,
                })
            })
            .collect();
        let earliest = launches.iter().map(|l| l.at).min();
        tracing::debug!(
            target: TIMING,
            event = "claimed",
            slot = ?earliest,
            runs = launches.len(),
            wake_late_ms = meant_to_wake.map(|meant| ms_between(meant, now)),
            query_ms = ms(queried),
            decide_ms = ms(decided - queried),
            lock_wait_ms = ms(locked - decided),
            claim_ms = ms(claimed - locked),
            ready_ms = earliest.map(|slot| ms_between(Utc::now(), slot)),
        );
        Ok(launches)
    }

    /// Starts each claimed run at its instant (at once when that has passed), one task per run so
    /// the processes of a burst are started on every core.
    async fn launch(self: &Arc<Self>, mut launches: Vec<Launch>, tasks: &mut JoinSet<()>) {
        launches.sort_by_key(|l| l.at);
        let mut launches = launches.into_iter().peekable();
        while let Some(first) = launches.next() {
            let at = first.at;
            sleep_until(at).await;
            let late_ms = ms_between(at, Utc::now());
            let mut runs = 0;
            for run in std::iter::once(first).chain(std::iter::from_fn(|| launches.next_if(|l| l.at == at))) {
                runs += 1;
                let (stop, stopped) = watch::channel(Stop::None);
                self.register(run.job.id, run.run_id, stop);
                let runner = Arc::clone(self);
                tasks.spawn(async move { runner.execute_run(run, stopped).await });
            }
            tracing::debug!(target: TIMING, event = "launched", slot = %at, runs, late_ms);
        }
    }

    async fn execute_run(self: Arc<Self>, run: Launch, stop: watch::Receiver<Stop>) {
        let Launch {
            job,
            run_id,
            trigger,
            slot,
            attempt,
            at,
            parameters,
        } = run;
        let mut started = Utc::now();
        let done = match self.request(&job, run_id, &parameters) {
            Ok(request) => {
                let spawning = Instant::now();
                let outcome = match start(&request) {
                    Ok(running) => {
                        started = Utc::now();
                        let _ = self.recorder.send(Write::Started { run_id, at: started });
                        tracing::debug!(
                            target: TIMING,
                            event = "spawned",
                            run_id,
                            late_ms = ms_between(at, started),
                            spawn_ms = ms(spawning.elapsed()),
                        );
                        // Logged after the spawn, not before: a burst's processes do not wait for
                        // hundreds of log lines.
                        let skew_ms = (started - at).num_milliseconds();
                        tracing::info!(job = %job.name, run_id, %trigger, attempt, skew_ms, "run started");
                        self.metrics.run_started(trigger);
                        // As in the operator: retries start after their backoff, not at their slot.
                        if trigger == Trigger::Schedule && attempt == 1 {
                            self.metrics.trigger_skew(ms_between(at, started) / 1000.0);
                        }
                        running.finish(stop).await
                    }
                    Err(not_started) => not_started,
                };
                let (head, tail, omitted) = outcome.output.into_parts();
                Finished {
                    status: outcome.status,
                    exit_code: outcome.exit_code,
                    head,
                    tail,
                    omitted,
                    stopped_by: outcome.stopped_by,
                }
            }
            Err(message) => Finished {
                status: RunStatus::Error,
                exit_code: None,
                head: jtp_store::with_note("", &message).into_bytes(),
                tail: Vec::new(),
                omitted: 0,
                stopped_by: None,
            },
        };
        let _ = std::fs::remove_dir_all(self.config.work_dir.join(run_id.to_string()));
        self.unregister(job.id, run_id);
        let _ = self.recorder.send(Write::Finished(Box::new(FinishedRun {
            job,
            run_id,
            trigger,
            slot,
            attempt,
            done,
            started,
        })));
    }

    /// The recorder task: writes start times (a burst in one transaction) and finishes in the
    /// order they come, until [`Write::Close`].
    async fn record_writes(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Write>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < 1024
                && let Ok(next) = rx.try_recv()
            {
                batch.push(next);
            }
            let mut starts = Vec::new();
            let mut closing = false;
            for write in batch {
                match write {
                    Write::Started { run_id, at } => starts.push((run_id, at)),
                    Write::Finished(run) => {
                        // A run's start was sent before its finish: write the starts so far first.
                        self.record_starts(std::mem::take(&mut starts)).await;
                        let run_id = run.run_id;
                        self.record(*run).await;
                        // Its page shows the stored output from now on.
                        self.live.end(run_id);
                    }
                    Write::Close => closing = true,
                }
            }
            self.record_starts(starts).await;
            if closing {
                return;
            }
        }
    }

    /// Sets the `run_time` of started runs to when their process was started (one transaction),
    /// retrying while the database is unavailable.
    async fn record_starts(&self, starts: Vec<(i64, DateTime<Utc>)>) {
        if starts.is_empty() {
            return;
        }
        let mut write_retry = WRITE_RETRY;
        loop {
            let written = {
                let _writing = self.writes.lock().await;
                self.store.record_starts(&starts).await
            };
            match written {
                Ok(()) => return,
                Err(e) if e.is_transient() => {
                    let wait = write_retry.failed();
                    tracing::warn!(runs = starts.len(), error = %e, retry_in = ?wait, "database unavailable; will record the start times when it is back");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    tracing::error!(runs = starts.len(), error = %e, "could not record start times");
                    return;
                }
            }
        }
    }

    /// Records a finished run, retrying while the database is unavailable: a run is never lost
    /// because the database blinked. Its further attempt, if the run policy gives it one, is
    /// written with it (and the job paused if its failures in a row call for it).
    async fn record(&self, run: FinishedRun) {
        let FinishedRun {
            job,
            run_id,
            trigger,
            slot,
            attempt,
            done,
            started,
        } = run;
        let finished_at = Utc::now();
        // A run a person stopped is not retried: they asked for it to end.
        let retry = policy::after_attempt(&job.spec, trigger, slot, attempt, done.status, finished_at)
            .filter(|_| done.stopped_by.is_none());
        let effects = FinishEffects {
            retry,
            standalone: true,
        };
        let job = job.name.as_str();
        let mut write_retry = WRITE_RETRY;
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
                    .record_finish_parts(run_id, &finish, &done.tail, done.omitted, effects)
                    .await
            };
            match recorded {
                Ok(finished) => {
                    if finished == jtp_store::Finish::Recorded {
                        self.metrics.run_finished(done.status);
                    }
                    let seconds = (finished_at - started).num_milliseconds() as f64 / 1000.0;
                    tracing::info!(job, run_id, attempt, status = %done.status, exit_code = ?done.exit_code, seconds, "run finished");
                    if let Some(retry) = retry {
                        tracing::info!(job, run_id, attempt = retry.attempt, at = %retry.at, "retry scheduled");
                        // The loop may be asleep past the retry's time: let it look again.
                        self.wake.notify_one();
                    }
                    return;
                }
                Err(e) if e.is_transient() => {
                    let wait = write_retry.failed();
                    tracing::warn!(job, run_id, error = %e, retry_in = ?wait, "database unavailable; will record the run when it is back");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    tracing::error!(job, run_id, error = %e, "could not record the run");
                    return;
                }
            }
        }
    }

    /// Builds the process to start, or says why the script cannot start (an ERROR run).
    fn request(&self, job: &Job, run_id: i64, claimed: &ParameterValues) -> Result<ExecRequest, String> {
        let spec = &job.spec;
        // Checked again against the spec as it is now: an edit since the Run Now may have
        // changed what the job takes.
        let values = parameters::resolve(&spec.parameters, claimed).map_err(|e| e.to_string())?;
        // The run's own folder (only its owner may read it): ConfigMap scripts and the pod's
        // volumes are written here; it is removed when the run ends.
        let run_dir = self.config.work_dir.join(run_id.to_string());
        let made = std::fs::create_dir_all(&run_dir)
            .and_then(|()| std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o700)));
        made.map_err(|e| format!("could not make the run's folder {}: {e}", run_dir.display()))?;
        let pod_env = {
            let objects = self
                .objects
                .read()
                .map_err(|_| "the ConfigMap and Secret table is unavailable".to_owned())?;
            super::pod::prepare(spec, &job.namespace, &objects, &run_dir)?
        };
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
                    .objects
                    .read()
                    .map_err(|_| "the ConfigMap table is unavailable".to_owned())?
                    .config_maps
                    .get(&(job.namespace.clone(), cm.name.clone()))
                    .and_then(|data| data.get(&cm.key).cloned())
                    .ok_or_else(|| {
                        format!(
                            "ConfigMap {}/{} with key {} is not in the jobs folder",
                            job.namespace, cm.name, cm.key
                        )
                    })?;
                let path = run_dir.join(&cm.key);
                let write = || -> std::io::Result<()> {
                    std::fs::write(&path, content.as_bytes())?;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                };
                write().map_err(|e| format!("could not write the script {}: {e}", path.display()))?;
                Program::File(path)
            }
            _ => return Err("the job names no script".to_owned()),
        };
        // As in the pod: the run container's envFrom and env, then spec.env, then the runner's.
        let mut env = pod_env;
        env.extend(spec.env.iter().map(|v| (v.name.clone(), v.value.clone())));
        env.extend(values);
        env.push(("JTP_RUN_DIR".into(), run_dir.display().to_string()));
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
            scope: self.config.containment.run(run_id),
            output: self.live.start(run_id),
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

    /// Stops the runs the policy stops, those of them that run here.
    fn stop_runs(&self, job_id: i64, stops: &[policy::Stop<i64>]) {
        if stops.is_empty() {
            return;
        }
        if let Ok(active) = self.active.lock() {
            for run in active.get(&job_id).into_iter().flatten() {
                if let Some(stop) = stops.iter().find(|s| s.run == run.run_id) {
                    let _ = run.stop.send(Stop::Kill(stop.reason.as_str()));
                }
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

/// A claimed run waiting for its instant.
struct Launch {
    job: Job,
    run_id: i64,
    trigger: Trigger,
    /// The slot (or the Run Now instant) the run is for.
    slot: DateTime<Utc>,
    /// 1, or the number of a further attempt (`spec.retries`).
    attempt: u32,
    /// When its process starts: the slot, or when a further attempt's backoff has passed.
    at: DateTime<Utc>,
    /// The values of the job's parameters, as claimed (recorded with the run).
    parameters: ParameterValues,
}

/// A due run waiting for its claim.
struct Pending {
    job: Job,
    expected: DateTime<Utc>,
    next_run: Option<DateTime<Utc>>,
    /// The run policy dropped the job's pending retry.
    drop_retry: bool,
    /// The parameters' defaults: the values of a scheduled run.
    defaults: ParameterValues,
}

struct Finished {
    status: RunStatus,
    exit_code: Option<i32>,
    head: Vec<u8>,
    tail: Vec<u8>,
    omitted: u64,
    /// Who stopped it, when a person did.
    stopped_by: Option<String>,
}

/// The run policy's step for a job row due at `at`.
///
/// The row's `next_run` is the first slot not handled yet; a pending Run Now took its place (the
/// portal sets `next_run` to the request), so then scheduling goes on after `at`.
pub(crate) fn step_for(
    job: &Job,
    schedule: &CompiledSchedule,
    active: &[i64],
    at: DateTime<Utc>,
) -> Step<i64> {
    let handled_until = match (job.run_now_requested_at, job.next_run) {
        (None, Some(next)) => next - chrono::Duration::nanoseconds(1),
        _ => at,
    };
    policy::step(&Facts {
        schedule,
        spec: &job.spec,
        handled_until,
        run_now: job.run_now_requested_at,
        active,
        retry: job.pending_retry(),
        now: at,
    })
}

/// Logs what a step skipped or missed, in the policy's words.
fn log_step(job: &str, step: &Step<i64>) {
    for skipped in &step.skipped {
        if skipped.reason.is_warning() {
            tracing::warn!(job, reason = skipped.reason.label(), "{skipped}");
        } else {
            tracing::info!(job, reason = skipped.reason.label(), "{skipped}");
        }
    }
    if step.missed.truncated {
        let reason = Reason::MissedSlots;
        tracing::warn!(job, reason = reason.label(), "{reason}");
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Milliseconds from `from` to `to` (negative when `to` is earlier).
fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

fn lead() -> chrono::Duration {
    chrono::Duration::from_std(LEAD).unwrap_or_default()
}

/// Sleeps until the wall-clock instant `at`: on the runtime's timer until shortly before, then the
/// last [`PRECISE_SLEEP`] on the thread, so a burst starts on the instant rather than a tick later.
async fn sleep_until(at: DateTime<Utc>) {
    let remaining = |at: DateTime<Utc>| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    let left = remaining(at);
    if left > PRECISE_SLEEP {
        tokio::time::sleep(left - PRECISE_SLEEP).await;
    }
    // At most PRECISE_SLEEP of blocking on one worker, once per slot.
    std::thread::sleep(remaining(at));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy_scenarios::{Expected, JOB, Scenario, scenarios};

    /// The row of the scenario's job as the portal leaves it: `next_run` the first slot not
    /// handled, or the Run Now instant when one is pending.
    fn row(scenario: &Scenario, schedule: &CompiledSchedule) -> Job {
        let scheduled = (!scenario.spec.suspend)
            .then(|| schedule.next_after(scenario.handled_until))
            .flatten();
        Job {
            id: 1,
            uid: None,
            name: JOB.name.into(),
            namespace: JOB.namespace.into(),
            description: None,
            schedule_type: String::new(),
            interval_value: None,
            interval_unit: None,
            minute: None,
            at_time: None,
            weekdays: None,
            day_of_month: None,
            cron_expr: None,
            timezone: scenario.spec.time_zone.clone(),
            script: String::new(),
            spec: scenario.spec.clone(),
            is_active: !scenario.spec.suspend,
            next_run: scenario.run_now.or(scheduled),
            last_run: None,
            last_status: None,
            consecutive_failures: 0,
            run_now_requested_at: scenario.run_now,
            deleted_at: None,
            created_at: scenario.handled_until,
            updated_at: scenario.handled_until,
            source: None,
            expect_success_within_seconds: None,
            expect_since: None,
            last_success_at: None,
            retry_at: None,
            retry_slot: None,
            retry_trigger: None,
            retry_attempt: None,
            pause_note: None,
            paused_at_failures: None,
        }
    }

    #[test]
    fn every_policy_scenario_steps_the_same_through_the_runner() {
        for scenario in scenarios() {
            let schedule = validate(JOB, &scenario.spec).expect("scenario specs are valid");
            let job = row(&scenario, &schedule);
            let active: Vec<i64> = (1..=i64::try_from(scenario.active).expect("few")).collect();
            // The runner looks at a row once it is due (`due_jobs`), as of its slot.
            let seen = match job.next_run.filter(|next| *next <= scenario.now + lead()) {
                None => Expected {
                    launch: Vec::new(),
                    stopped: 0,
                    skipped: Vec::new(),
                    missed_earlier: false,
                    next_run: job.next_run,
                },
                Some(expected) => {
                    let step = step_for(&job, &schedule, &active, expected.max(scenario.now));
                    assert!(step.launch.len() <= 1, "{}: one run per row", scenario.name);
                    Expected {
                        launch: step.launch.iter().map(|l| (l.trigger, l.slot)).collect(),
                        stopped: step.stop.len(),
                        skipped: step.skipped.iter().map(|s| (s.slot, s.reason)).collect(),
                        missed_earlier: step.missed.truncated,
                        next_run: step.next_run,
                    }
                }
            };
            assert_eq!(seen, scenario.expected, "{}", scenario.name);
        }
    }
}
