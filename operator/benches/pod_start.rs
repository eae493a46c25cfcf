//! On-demand benchmark (not a test): pod start latency on testenv's real node (kubelet, containerd,
//! runc, CNI bridge). N one-container `busybox:1.36` pods are created at once (concurrent creates
//! through the API), and a watch records when it first sees each pod `Running`: the latency is that
//! instant minus the instant the creates were sent (scheduling, sandbox, CNI, container start and
//! the kubelet's status write). Prints p50/p99/max, when the last pod ran, and the machine's load.
//!
//!     testenv/exec cargo bench -p jtp-operator --bench pod_start           # N = 100
//!     JTP_BENCH_PODS=50 testenv/exec cargo bench -p jtp-operator --bench pod_start
//!
//! Runs in a namespace of its own (deleted at the end) on the cluster `jtp_testenv::cluster()`
//! finds; the node's `maxPods` is 110, so run it while no other test holds pods there.
#![allow(clippy::unwrap_used)]

use futures::StreamExt;
use jtp_testenv::TestNamespace;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(600);

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": { "bench": "pod-start" } },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "main",
                "image": "busybox:1.36",
                "command": ["sleep", "120"],
            }],
        },
    }))
    .unwrap()
}

/// The `q` quantile (nearest rank) of sorted `values`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("JTP_BENCH_PODS")
        .ok()
        .map(|v| v.parse().expect("JTP_BENCH_PODS: a number"))
        .unwrap_or(100);
    let client = jtp_testenv::cluster().await;
    let ns = TestNamespace::new(&client, "pod-start").await;
    let pods: Api<Pod> = ns.api();
    let load_before = load();

    // The watch runs before the first create, so no transition is missed.
    let mut seen = watcher(pods.clone(), watcher::Config::default().labels("bench=pod-start"))
        .default_backoff()
        .applied_objects()
        .boxed();
    let specs: Vec<Pod> = (0..n).map(|i| pod(&format!("start-{i:03}"))).collect();
    let sent = Instant::now();
    let created = tokio::spawn({
        let pods = pods.clone();
        async move {
            let post = PostParams::default();
            let creates = futures::future::join_all(specs.iter().map(|p| pods.create(&post, p)));
            for result in creates.await {
                result.expect("create a pod");
            }
            sent.elapsed()
        }
    });

    let mut running: HashMap<String, Duration> = HashMap::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while running.len() < n {
        let event = tokio::time::timeout_at(deadline, seen.next())
            .await
            .unwrap_or_else(|_| panic!("{} of {n} pods running after {TIMEOUT:?}", running.len()));
        let pod = match event.expect("the watch ended") {
            Ok(pod) => pod,
            Err(e) => {
                eprintln!("watch: {e} (retrying)");
                continue;
            }
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Running" | "Succeeded" | "Failed")) {
            assert_ne!(
                phase,
                Some("Failed"),
                "{} failed: {:?}",
                pod.name_any(),
                pod.status
            );
            running.entry(pod.name_any()).or_insert_with(|| sent.elapsed());
        }
    }
    let created = created.await.unwrap();
    let mut latencies: Vec<Duration> = running.into_values().collect();
    latencies.sort();
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "pod start, {n} pods of busybox:1.36 created at once (all creates answered after {:.2} s):",
        secs(created)
    );
    println!(
        "  create sent -> Running seen by a watch: p50 {:.2} s, p99 {:.2} s, max {:.2} s",
        secs(quantile(&latencies, 0.50)),
        secs(quantile(&latencies, 0.99)),
        secs(latencies[latencies.len() - 1])
    );
    println!("  load average before: {load_before}; after: {}", load());
    ns.cleanup().await;
}
