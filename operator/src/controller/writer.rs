//! Status writes and Events, queued per ScheduledJob and written off the launch path.
//!
//! A reconcile that starts a run creates its Job at once and hands the new status (and its
//! Events) to the [`StatusWriter`]. What a launch changed waits up to the coalescing window
//! (`--status-coalesce-seconds`): when the run ends within it, one status write and one Event
//! say both (three writes per run: the Job, the status, the Event). Anything else — a finished
//! run, an invalid spec, a skipped slot — is written at once. A burst of launches therefore
//! creates its Jobs first and writes statuses after, and writes for one object never overtake
//! each other. The status is what the operator decided (its [`super::expectations::Expectations`]
//! keep the newest), so a write that is still waiting never makes a slot look due twice.

use jtp_crds::{ScheduledJob, ScheduledJobStatus};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::FIELD_MANAGER;
use super::decide::Notice;
use super::metrics::Metrics;
use crate::backoff::Backoff;

/// Status writes (with their Events) in flight at once.
const WRITE_CONCURRENCY: usize = 16;
/// First wait before a failed status write is tried again; doubled per failure.
const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest wait between tries.
const RETRY_MAX: Duration = Duration::from_secs(15);
/// The waits between tries of a status write (its failures are counted in its [`Pending`]).
const RETRY: Backoff = Backoff::new(RETRY_MIN, RETRY_MAX);

/// How soon queued writes are wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Urgency {
    /// Write now.
    Now,
    /// Only launches changed the status: wait for the run to end, up to the coalescing window.
    Coalesce,
}

struct Pending {
    /// The ScheduledJob: its namespace and name address the status write, and Events regard it.
    object: ObjectReference,
    status: Option<ScheduledJobStatus>,
    notices: Vec<Notice>,
    due: Instant,
    failures: u32,
}

#[derive(Default)]
struct Queue {
    pending: HashMap<String, Pending>,
    /// UIDs with a write in flight: their next write waits for it.
    writing: HashSet<String>,
}

/// The queue of status writes and Events, and the loop that writes them.
pub struct StatusWriter {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    window: Duration,
    queue: Mutex<Queue>,
    wake: Notify,
}

impl StatusWriter {
    pub fn new(client: Client, recorder: Recorder, metrics: Arc<Metrics>, window: Duration) -> Self {
        Self {
            client,
            recorder,
            metrics,
            window,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
        }
    }

    /// The queue, also after a panic elsewhere while it was held: a poisoned lock must not make
    /// every later status write and Event silently vanish.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `status` (if it changed) and `notices` for `sj`. A newer status replaces a queued
    /// one; the "Started" Event of a run that has already ended is dropped, its end says it.
    pub fn queue(
        &self,
        sj: &ScheduledJob,
        status: Option<ScheduledJobStatus>,
        notices: Vec<Notice>,
        urgency: Urgency,
    ) {
        if status.is_none() && notices.is_empty() {
            return;
        }
        tracing::debug!(
            job = %sj.name_any(),
            ?urgency,
            status = status.is_some(),
            notices = ?notices.iter().map(|n| n.reason).collect::<Vec<_>>(),
            "queued"
        );
        let now = Instant::now();
        let due = match urgency {
            Urgency::Now => now,
            Urgency::Coalesce => now + self.window,
        };
        let mut queue = self.lock();
        let entry = queue
            .pending
            .entry(sj.uid().unwrap_or_default())
            .or_insert_with(|| Pending {
                object: sj.object_ref(&()),
                status: None,
                notices: Vec::new(),
                due,
                failures: 0,
            });
        if status.is_some() {
            entry.status = status;
        }
        for notice in notices {
            if let Some(run) = notice.run.as_deref().filter(|_| notice.reason != STARTED) {
                entry
                    .notices
                    .retain(|n| !(n.reason == STARTED && n.run.as_deref() == Some(run)));
            }
            entry.notices.push(notice);
        }
        entry.due = entry.due.min(due);
        drop(queue);
        self.wake.notify_one();
    }

    /// Forgets what is queued for a deleted ScheduledJob.
    pub fn forget(&self, uid: &str) {
        self.lock().pending.remove(uid);
    }

    /// Writes what falls due, forever (the controllers' lifetime).
    pub async fn run(self: Arc<Self>) {
        let mut writes = JoinSet::new();
        loop {
            while writes.try_join_next().is_some() {}
            let (ready, next) = self.take_due(Instant::now(), WRITE_CONCURRENCY.saturating_sub(writes.len()));
            for (uid, pending) in ready {
                let this = self.clone();
                writes.spawn(async move {
                    this.write(&uid, pending).await;
                    this.lock().writing.remove(&uid);
                    this.wake.notify_one();
                });
            }
            match next {
                Some(at) if writes.len() < WRITE_CONCURRENCY => tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = self.wake.notified() => {}
                },
                _ => self.wake.notified().await,
            }
        }
    }

    /// Takes up to `room` due entries whose object has no write in flight; also returns when
    /// the next remaining entry falls due.
    fn take_due(&self, now: Instant, room: usize) -> (Vec<(String, Pending)>, Option<Instant>) {
        let mut queue = self.lock();
        let Queue { pending, writing } = &mut *queue;
        let mut due: Vec<(Instant, String)> = pending
            .iter()
            .filter(|(uid, p)| p.due <= now && !writing.contains(*uid))
            .map(|(uid, p)| (p.due, uid.clone()))
            .collect();
        due.sort();
        due.truncate(room);
        let mut ready = Vec::with_capacity(due.len());
        for (_, uid) in due {
            if let Some(p) = pending.remove(&uid) {
                writing.insert(uid.clone());
                ready.push((uid, p));
            }
        }
        let next = pending
            .iter()
            .filter(|(uid, _)| !writing.contains(*uid))
            .map(|(_, p)| p.due)
            .min();
        (ready, next)
    }

    async fn write(&self, uid: &str, mut pending: Pending) {
        let namespace = pending.object.namespace.clone().unwrap_or_default();
        let name = pending.object.name.clone().unwrap_or_default();
        if let Some(status) = &pending.status {
            let api: Api<ScheduledJob> = Api::namespaced(self.client.clone(), &namespace);
            let patch = json!({
                "apiVersion": "jobtrigger.io/v1alpha1",
                "kind": "ScheduledJob",
                "status": status,
            });
            self.metrics.api_write("status_apply");
            match api
                .patch_status(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
            {
                Ok(_) => {}
                // Deleted meanwhile: nothing left to tell.
                Err(kube::Error::Api(e)) if e.code == 404 => return,
                Err(e) => {
                    self.metrics.reconcile_error("status_write");
                    pending.failures = pending.failures.saturating_add(1);
                    let wait = RETRY.delay(pending.failures);
                    tracing::warn!(job = %name, %namespace, error = %e, ?wait, "cannot write the status yet");
                    pending.due = Instant::now() + wait;
                    self.requeue(uid, pending);
                    return;
                }
            }
        }
        for notice in &pending.notices {
            publish(&self.recorder, &self.metrics, &pending.object, notice).await;
        }
    }

    /// Puts back a failed write, behind anything queued for the same object meanwhile.
    fn requeue(&self, uid: &str, mut failed: Pending) {
        let mut queue = self.lock();
        match queue.pending.get_mut(uid) {
            Some(newer) => {
                failed.notices.append(&mut newer.notices);
                newer.notices = failed.notices;
                newer.failures = failed.failures;
                newer.due = newer.due.max(failed.due);
                if newer.status.is_none() {
                    newer.status = failed.status;
                }
            }
            None => {
                queue.pending.insert(uid.to_owned(), failed);
            }
        }
    }
}

/// Reason of the Event that says a run started.
pub const STARTED: &str = "Started";
/// Reason of the Warning Event of a run not started because its parameter values do not fit
/// `spec.parameters` (a value not allowed, a required one missing, an unreadable annotation).
pub const INVALID_PARAMETERS_REASON: &str = "InvalidParameters";

/// Publishes one Event (best effort: a failure is logged).
pub async fn publish(recorder: &Recorder, metrics: &Metrics, object: &ObjectReference, notice: &Notice) {
    let event = Event {
        type_: if notice.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: notice.reason.into(),
        note: Some(notice.message.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    metrics.api_write("event");
    if let Err(e) = recorder.publish(&event, object).await {
        tracing::warn!(reason = notice.reason, error = %e, "cannot publish an Event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jtp_crds::ScheduledJobSpec;
    use kube::runtime::events::Reporter;

    fn writer(window: Duration) -> StatusWriter {
        // Nothing here is sent: the client only has to exist.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = Client::try_from(config).expect("client");
        let reporter = Reporter {
            controller: "test".into(),
            instance: None,
        };
        StatusWriter::new(
            client.clone(),
            Recorder::new(client, reporter),
            Metrics::new(),
            window,
        )
    }

    fn sj(uid: &str) -> ScheduledJob {
        let mut sj = ScheduledJob::new(uid, ScheduledJobSpec::manual());
        sj.metadata.uid = Some(uid.into());
        sj.metadata.namespace = Some("default".into());
        sj
    }

    fn status(n: u32) -> Option<ScheduledJobStatus> {
        Some(ScheduledJobStatus {
            consecutive_failures: n,
            ..ScheduledJobStatus::default()
        })
    }

    fn reasons(p: &Pending) -> Vec<&str> {
        p.notices.iter().map(|n| n.reason).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_launch_waits_for_the_window_and_a_quick_end_replaces_its_started_event() {
        let w = writer(Duration::from_secs(5));
        let started = Notice::normal(STARTED, "started a-1".into()).about("a-1");
        w.queue(&sj("a"), status(1), vec![started], Urgency::Coalesce);
        let (ready, next) = w.take_due(Instant::now(), 16);
        assert!(ready.is_empty(), "a launch alone waits");
        assert_eq!(next, Some(Instant::now() + Duration::from_secs(5)));

        tokio::time::advance(Duration::from_secs(2)).await;
        let ended = Notice::normal("Succeeded", "run a-1 succeeded".into()).about("a-1");
        w.queue(&sj("a"), status(2), vec![ended], Urgency::Now);
        let (ready, _) = w.take_due(Instant::now(), 16);
        assert_eq!(ready.len(), 1, "one write for both");
        let (uid, pending) = &ready[0];
        assert_eq!(uid, "a");
        assert_eq!(pending.status, status(2), "the newest status");
        assert_eq!(reasons(pending), ["Succeeded"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_run_keeps_its_started_event_and_writes_never_overtake() {
        let w = writer(Duration::from_secs(5));
        let started = Notice::normal(STARTED, "started a-1".into()).about("a-1");
        w.queue(&sj("a"), status(1), vec![started], Urgency::Coalesce);
        tokio::time::advance(Duration::from_secs(6)).await;
        let (ready, _) = w.take_due(Instant::now(), 16);
        assert_eq!(ready.len(), 1);
        assert_eq!(reasons(&ready[0].1), [STARTED]);

        // While that write is in flight, a newer one for the same job waits for it.
        w.queue(&sj("a"), status(2), Vec::new(), Urgency::Now);
        w.queue(&sj("b"), status(1), Vec::new(), Urgency::Now);
        let (ready, next) = w.take_due(Instant::now(), 16);
        assert_eq!(ready.iter().map(|(u, _)| u.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(next, None, "a's write waits for the one in flight");
        w.lock().writing.remove("a");
        let (ready, _) = w.take_due(Instant::now(), 16);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].1.status, status(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_write_goes_back_behind_newer_news_keeping_its_events() {
        let w = writer(Duration::from_secs(5));
        let failed = Pending {
            object: sj("a").object_ref(&()),
            status: status(1),
            notices: vec![Notice::warning("Failed", "run a-1 ended with FAILURE".into())],
            due: Instant::now() + RETRY_MIN,
            failures: 1,
        };
        w.queue(
            &sj("a"),
            status(2),
            vec![Notice::normal("Skipped", "slot skipped".into())],
            Urgency::Now,
        );
        w.requeue("a", failed);
        let queue = w.lock();
        let pending = queue.pending.get("a").expect("queued");
        assert_eq!(pending.status, status(2), "the newer status wins");
        assert_eq!(reasons(pending), ["Failed", "Skipped"], "events keep their order");
        assert_eq!(pending.due, Instant::now() + RETRY_MIN, "and the retry waits");
    }
}
