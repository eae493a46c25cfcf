//! Watches the pods bound to this node and hands each one to a worker.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

use super::runtime::{GONE, Runtime, name, namespace, uid};
use super::{NodeConfig, Result};

/// What the node remembers about a pod it has seen.
struct Tracked {
    namespace: String,
    name: String,
    /// Tells the worker the pod is being deleted (with its grace period).
    stop: watch::Sender<Option<i64>>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

/// Watches pods with `spec.nodeName=<node>` forever.
pub async fn run(client: kube::Client, config: Arc<NodeConfig>, runtime: Arc<Runtime>) -> Result<()> {
    let pods: Api<Pod> = Api::all(client);
    let selector = format!("spec.nodeName={}", config.node_name);
    let mut events = watcher(pods, watcher::Config::default().fields(&selector))
        .default_backoff()
        .boxed();
    let mut tracked: HashMap<String, Tracked> = HashMap::new();
    let mut seen_in_relist: Option<Vec<String>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(pod)) => on_pod(&runtime, &mut tracked, pod),
            Ok(watcher::Event::InitApply(pod)) => {
                if let Some(seen) = seen_in_relist.as_mut() {
                    seen.push(uid(&pod));
                }
                on_pod(&runtime, &mut tracked, pod);
            }
            Ok(watcher::Event::Delete(pod)) => on_gone(&runtime, &mut tracked, &uid(&pod)),
            Ok(watcher::Event::Init) => seen_in_relist = Some(Vec::new()),
            Ok(watcher::Event::InitDone) => {
                // Pods that vanished while the watch was broken.
                if let Some(seen) = seen_in_relist.take() {
                    let gone: Vec<String> = tracked.keys().filter(|k| !seen.contains(k)).cloned().collect();
                    for uid in gone {
                        on_gone(&runtime, &mut tracked, &uid);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "pod watch error (retrying)"),
        }
    }
    Ok(())
}

fn on_pod(runtime: &Arc<Runtime>, tracked: &mut HashMap<String, Tracked>, pod: Pod) {
    let uid = uid(&pod);
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
    if let Some(t) = tracked.get(&uid) {
        if deleting && t.stop.borrow().is_none() {
            t.stop.send_replace(Some(grace));
            // A worker that already finished no longer listens: finalise here.
            if t.worker.as_ref().is_none_or(|w| w.is_finished()) {
                let runtime = runtime.clone();
                tokio::spawn(async move { runtime.finalize_deletion(&pod).await });
            }
        }
        return;
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let (stop, stop_rx) = watch::channel(deleting.then_some(grace));
    let worker = if deleting {
        // Never started here (or started by an earlier node process): nothing to kill.
        let runtime = runtime.clone();
        let pod = pod.clone();
        Some(tokio::spawn(async move { runtime.finalize_deletion(&pod).await }))
    } else if phase == "Succeeded" || phase == "Failed" {
        None
    } else if phase == "Running" {
        let runtime = runtime.clone();
        let pod = pod.clone();
        Some(tokio::spawn(async move { runtime.fail_lost_pod(&pod).await }))
    } else {
        Some(tokio::spawn(runtime.clone().run_pod(pod.clone(), stop_rx)))
    };
    tracked.insert(
        uid,
        Tracked {
            namespace: namespace(&pod),
            name: name(&pod),
            stop,
            worker,
        },
    );
}

fn on_gone(runtime: &Arc<Runtime>, tracked: &mut HashMap<String, Tracked>, uid: &str) {
    let Some(t) = tracked.remove(uid) else { return };
    if t.stop.borrow().is_none() {
        // The object is gone (force delete, or a terminal pod): stop what still runs and
        // tell the worker there is nothing left to delete.
        t.stop.send_replace(Some(GONE));
    }
    let runtime = runtime.clone();
    let uid = uid.to_string();
    tokio::spawn(async move {
        if let Some(worker) = t.worker {
            let _ = worker.await;
        }
        runtime.forget_pod(&t.namespace, &t.name, &uid);
    });
}
