//! Live output in a cluster: the portal follows the pod log of a run in flight while someone reads
//! its page.
//!
//! The first read of a RUNNING run's live output ([`Followers::output`]) starts one follower for
//! it: it finds the Job's pod (label `batch.kubernetes.io/job-name`), waits for the run container
//! to start, and streams its log (`pods/log?follow=true`, through the API server with the
//! portal's own ServiceAccount) into a [`SharedOutput`] within the output cap, the same capture the
//! standalone runner fills. The page then reads it exactly as in standalone mode
//! ([`crate::live::chunk`]). A follower stops when the log ends (the container exited) or when no
//! page asked for [`IDLE`]; at most [`MAX_FOLLOWERS`] run at once, beyond which pages show the
//! stored output when the run ends, as before. Who may read a run's live output is who may read
//! the run (the caller's check happens before).

use futures::AsyncReadExt;
use jtp_store::SharedOutput;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, LogParams};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A follower nobody read for this long stops (a page polls once a second).
pub const IDLE: Duration = Duration::from_secs(30);
/// Followers at once, each one log stream through the API server.
pub const MAX_FOLLOWERS: usize = 64;
/// How often a follower looks for its pod while the pod is not running yet.
const POD_POLL: Duration = Duration::from_secs(1);
/// An ended follower's output stays readable this long (the operator records the end meanwhile).
const KEEP_ENDED: Duration = Duration::from_secs(60);
const READ_CHUNK: usize = 64 * 1024;

struct Follower {
    output: SharedOutput,
    last_read: Instant,
    ended: Option<Instant>,
}

/// The followers of this portal process, by run id. Cheap to clone.
#[derive(Clone, Default)]
pub struct Followers {
    runs: Arc<Mutex<HashMap<i64, Follower>>>,
}

impl Followers {
    /// The output of run `run_id` (Kubernetes Job `namespace/name`) so far, starting its
    /// follower on the first read. `None` when `job` is not `namespace/name` or too many runs are
    /// followed already.
    pub fn output(&self, client: &kube::Client, run_id: i64, job: &str, cap: usize) -> Option<SharedOutput> {
        let (namespace, name) = job.split_once('/')?;
        let mut runs = self.lock();
        let now = Instant::now();
        runs.retain(|_, f| f.ended.is_none_or(|at| now.duration_since(at) < KEEP_ENDED));
        if let Some(follower) = runs.get_mut(&run_id) {
            follower.last_read = now;
            return Some(follower.output.clone());
        }
        if runs.len() >= MAX_FOLLOWERS {
            tracing::warn!(
                run = run_id,
                "too many live outputs followed; this run's shows when it ends"
            );
            return None;
        }
        let output = SharedOutput::default();
        runs.insert(
            run_id,
            Follower {
                output: output.clone(),
                last_read: now,
                ended: None,
            },
        );
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let (this, name, shared) = (self.clone(), name.to_owned(), output.clone());
        tokio::spawn(async move {
            let outcome = this.follow(&pods, run_id, &name, &shared, cap).await;
            tracing::debug!(run = run_id, job = %name, ?outcome, "live output follower stopped");
            this.stopped(run_id, outcome);
        });
        Some(output)
    }

    /// Follows the log of Job `job`'s pod into `output` until it ends or nobody reads.
    async fn follow(
        &self,
        pods: &Api<Pod>,
        run_id: i64,
        job: &str,
        output: &SharedOutput,
        cap: usize,
    ) -> Stop {
        let selector = format!("batch.kubernetes.io/job-name={job}");
        let pod = loop {
            if self.idle(run_id) {
                return Stop::Idle;
            }
            match pods.list(&ListParams::default().labels(&selector)).await {
                Ok(list) => {
                    if let Some(pod) = list.items.into_iter().find(container_started) {
                        break pod;
                    }
                }
                Err(e) => tracing::debug!(job, error = %e, "listing the run's pod"),
            }
            tokio::time::sleep(POD_POLL).await;
        };
        let Some(name) = pod.metadata.name else {
            return Stop::Ended;
        };
        let params = LogParams {
            container: Some(jtp_crds::pod::RUN_CONTAINER.into()),
            follow: true,
            ..LogParams::default()
        };
        let stream = match pods.log_stream(&name, &params).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(pod = %name, error = %e, "cannot follow the pod log");
                return Stop::Ended;
            }
        };
        let mut stream = std::pin::pin!(stream);
        let mut buf = vec![0; READ_CHUNK];
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) => return Stop::Ended,
                    Ok(n) => output.lock().unwrap_or_else(|p| p.into_inner()).push(&buf[..n], cap),
                    Err(e) => {
                        tracing::debug!(pod = %name, error = %e, "the followed pod log stopped");
                        return Stop::Ended;
                    }
                },
                () = tokio::time::sleep(POD_POLL) => {
                    if self.idle(run_id) {
                        return Stop::Idle;
                    }
                }
            }
        }
    }

    fn idle(&self, run_id: i64) -> bool {
        self.lock()
            .get(&run_id)
            .is_none_or(|f| f.last_read.elapsed() >= IDLE)
    }

    /// An idle follower goes (a later read starts a new one, from the log's start); an ended one
    /// stays readable for a while with everything the container wrote.
    fn stopped(&self, run_id: i64, outcome: Stop) {
        let mut runs = self.lock();
        match outcome {
            Stop::Idle => {
                runs.remove(&run_id);
            }
            Stop::Ended => {
                if let Some(f) = runs.get_mut(&run_id) {
                    f.ended = Some(Instant::now());
                }
            }
        }
    }

    /// How many runs are followed now (ended ones included until they go).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no run is followed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Follower>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
enum Stop {
    Idle,
    Ended,
}

/// The run container has started (running or already ended): its log can be read.
fn container_started(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.name == jtp_crds::pod::RUN_CONTAINER
                    && c.state.as_ref().is_some_and(|s| s.waiting.is_none())
            })
        })
}
