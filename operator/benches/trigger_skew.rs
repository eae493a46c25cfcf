//! On-demand benchmark (not a test), against the real control plane and node of testenv/, one
//! phase after the other in the same run:
//! 1. **the limit**: a bare client creating N Jobs at once (the operator's Job for that run, built
//!    by the same `build_job`, suspended so that no pod runs and without an owner), once by
//!    server-side apply as the operator sends them and once by plain create;
//! 2. **the operator**: N ScheduledJobs due in the same second, recording into a SQLite file
//!    (`SqlLedger`, as users run it);
//! 3. **the peer**: the kube-controller-manager's CronJob controller on N equivalent CronJobs.
//!
//! Prints p50/p99/max of the time from the common start instant (the scheduled second; for the
//! bare client the instant it sends) to a watch first seeing each Job — the same method for every
//! phase — and API writes per run (the operator's own count, and the API server's
//! `apiserver_request_total` write verbs, leases and nodes excluded, which also counts the Job
//! controller, scheduler and node). Ends with `BENCH|…` summary lines for `scripts/bench`.
//!
//!     cargo bench -p jtp-operator --bench trigger_skew            # N = 1000
//!     JTP_BENCH_JOBS=200 cargo bench -p jtp-operator --bench trigger_skew
//!
//! `JTP_BENCH_CRONJOB=0` skips the CronJob phase, `JTP_BENCH_BARE=0` the bare client;
//! `JTP_BENCH_COALESCE_SECONDS` sets the operator's `--status-coalesce-seconds`.
//! `RUST_LOG=jtp_operator::controller::reconcile=debug` logs, per Job, the skew when its apply was
//! sent ("applying the Job") and when the API server answered ("run started"): the operator's part
//! of the skew apart from the API server's.

use chrono::{DateTime, Timelike, Utc};
use futures::StreamExt;
use jtp_crds::{ScheduledJob, ScheduledJobSpec, Trigger};
use jtp_operator::controller::builder::{JobDefaults, Launch, build_job};
use jtp_operator::controller::{DEFAULT_IMAGE, Metrics, OperatorArgs, SqlLedger, run_with};
use jtp_testenv::{TestNamespace, kubectl};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, CustomResourceExt, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CREATE_CONCURRENCY: usize = 32;
/// The resources a run writes to (the rest is other tests' and controllers' noise).
const COUNTED: [&str; 10] = [
    "jobs",
    "jobs/status",
    "cronjobs",
    "cronjobs/status",
    "scheduledjobs",
    "scheduledjobs/status",
    "events",
    "pods",
    "pods/status",
    "pods/binding",
];

type Seen = Arc<Mutex<HashMap<String, DateTime<Utc>>>>;

/// Write requests counted by the API server, by resource, for the resources in [`COUNTED`].
fn apiserver_writes() -> BTreeMap<String, f64> {
    let text = kubectl(&["get", "--raw", "/metrics"]);
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
                .to_owned()
        };
        let verb = label("verb");
        let resource = label("resource");
        let sub = label("subresource");
        let key = if sub.is_empty() {
            resource
        } else {
            format!("{resource}/{sub}")
        };
        if !["POST", "PUT", "PATCH", "DELETE", "APPLY"].contains(&verb.as_str())
            || !COUNTED.contains(&key.as_str())
        {
            continue;
        }
        *out.entry(key).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    out
}

fn diff(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The next minute boundary at least `lead` from now.
fn target_minute(lead: chrono::Duration) -> DateTime<Utc> {
    let t = Utc::now() + lead + chrono::Duration::minutes(1);
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("minute boundary")
}

fn watch_jobs(api: Api<Job>, seen: Seen) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = stream.next().await {
            let now = Utc::now();
            if let Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) = event
                && let Ok(mut seen) = seen.lock()
            {
                seen.entry(job.name_any()).or_insert(now);
            }
        }
    })
}

async fn wait_until(at: DateTime<Utc>) {
    if let Ok(d) = (at - Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
}

struct Outcome {
    skews: Vec<f64>,
    missing: usize,
    writes: BTreeMap<String, f64>,
    own_writes: Option<f64>,
    /// The 1-minute load average of the machine just after the burst.
    load: String,
}

impl Outcome {
    fn p(&self, p: f64) -> f64 {
        let mut s = self.skews.clone();
        s.sort_by(f64::total_cmp);
        percentile(&s, p)
    }

    fn writes_per_run(&self, n: usize) -> f64 {
        self.writes.values().sum::<f64>() / n as f64
    }
}

/// The machine's 1-minute load average (the other figures depend on what else ran).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn report(name: &str, n: usize, o: &Outcome) {
    let mut s = o.skews.clone();
    s.sort_by(f64::total_cmp);
    let total: f64 = o.writes.values().sum();
    println!(
        "{name:<12} runs {:>5}/{n}  skew p50 {:>6.3}s  p99 {:>6.3}s  max {:>6.3}s  load {}  apiserver writes/run {:>5.2}{}",
        s.len(),
        percentile(&s, 50.0),
        percentile(&s, 99.0),
        s.last().copied().unwrap_or(f64::NAN),
        o.load,
        total / n as f64,
        o.own_writes
            .map(|w| format!("  controller's own writes/run {:.2}", w / n as f64))
            .unwrap_or_default()
    );
    if o.missing > 0 {
        println!("{name:<12} {} Jobs never appeared", o.missing);
    }
    let per: Vec<String> = o
        .writes
        .iter()
        .map(|(k, v)| format!("{k}={:.2}", v / n as f64))
        .collect();
    println!("{name:<12} apiserver writes/run by resource: {}", per.join(" "));
}

async fn skews_of(
    seen: &Seen,
    names: &[String],
    slot: DateTime<Utc>,
    deadline: DateTime<Utc>,
) -> (Vec<f64>, usize) {
    loop {
        let count = seen
            .lock()
            .map(|s| names.iter().filter(|n| s.contains_key(*n)).count())
            .unwrap_or(0);
        if count == names.len() || Utc::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let skews: Vec<f64> = names
        .iter()
        .filter_map(|n| seen.get(n))
        .map(|t| (*t - slot).num_microseconds().unwrap_or(0) as f64 / 1e6)
        .collect();
    let missing = names.len() - skews.len();
    (skews, missing)
}

async fn create_all<K, F>(api: &Api<K>, n: usize, make: F)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    F: Fn(usize) -> K,
{
    let objects: Vec<K> = (0..n).map(make).collect();
    futures::stream::iter(objects)
        .for_each_concurrent(CREATE_CONCURRENCY, |obj| async move {
            if let Err(e) = api.create(&PostParams::default(), &obj).await {
                eprintln!("create failed: {e}");
            }
        })
        .await;
}

/// The spec of every ScheduledJob of the operator phase (and of the bare client's Jobs).
fn bench_spec(cron: &str) -> ScheduledJobSpec {
    let mut spec = ScheduledJobSpec::cron(cron).in_zone("UTC").script("true");
    spec.successful_jobs_history_limit = Some(3);
    spec
}

/// How the bare client sends its Jobs.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// Server-side apply, as the operator does.
    Apply,
    /// A plain create (POST).
    Create,
}

impl Via {
    fn label(self) -> &'static str {
        match self {
            Via::Apply => "bare SSA",
            Via::Create => "bare create",
        }
    }
}

/// Waits until the API server has counted no new write for 2 s (at most 10 s: on a shared
/// cluster other clients never stop), so that the Job controller's answers to one phase do not
/// compete with the next.
async fn settle() {
    let mut last = f64::NAN;
    let mut quiet = 0;
    for _ in 0..10 {
        let total: f64 = apiserver_writes().values().sum();
        quiet = if total == last { quiet + 1 } else { 0 };
        if quiet >= 2 {
            return;
        }
        last = total;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The limit: a bare client sends N Jobs at once (each in its own task, as many connections as
/// the client opens), the operator's own Job for each (`build_job` of the same spec) but
/// suspended and without an owner, so that no pod runs and the garbage collector leaves them be.
/// Skew = the watch sees the Job − the instant the client started sending. Also returns, per
/// Job, when the API server answered it (same origin).
async fn bare_phase(client: &kube::Client, n: usize, how: Via) -> (Outcome, Vec<f64>, TestNamespace) {
    let prefix = match how {
        Via::Apply => "bench-ssa",
        Via::Create => "bench-create",
    };
    let ns = TestNamespace::new(client, prefix).await;
    let slot = target_minute(chrono::Duration::zero());
    let defaults = JobDefaults {
        image: DEFAULT_IMAGE.into(),
    };
    let jobs: Vec<Job> = (0..n)
        .map(|i| {
            let name = format!("bare-{i}");
            let mut sj = ScheduledJob::new(&name, bench_spec("0 0 * * *"));
            sj.metadata.namespace = Some(ns.name().to_owned());
            sj.metadata.uid = Some(format!("00000000-0000-0000-0000-{i:012}"));
            let launch = Launch::new(&name, Trigger::Schedule, slot);
            let mut job = build_job(&sj, &launch, &defaults).expect("the operator's Job");
            job.metadata.owner_references = None;
            if let Some(spec) = job.spec.as_mut() {
                spec.suspend = Some(true);
            }
            job
        })
        .collect();
    let names: Vec<String> = jobs.iter().map(ResourceExt::name_any).collect();
    let seen: Seen = Arc::default();
    let watch = watch_jobs(ns.api(), seen.clone());
    // The watch's first list is done well before this.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = apiserver_writes();
    eprintln!("{}: {n} Jobs at once", how.label());
    let api: Api<Job> = ns.api();
    let start = Utc::now();
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let api = api.clone();
            tokio::spawn(async move {
                let name = job.name_any();
                let sent = match how {
                    Via::Apply => api
                        .patch(
                            &name,
                            &PatchParams::apply("jtp-bench-bare").force(),
                            &Patch::Apply(&job),
                        )
                        .await
                        .map(|_| ()),
                    Via::Create => api.create(&PostParams::default(), &job).await.map(|_| ()),
                };
                match sent {
                    Ok(()) => Some((Utc::now() - start).num_microseconds().unwrap_or(0) as f64 / 1e6),
                    Err(e) => {
                        eprintln!("{name}: {e}");
                        None
                    }
                }
            })
        })
        .collect();
    let mut answered = Vec::with_capacity(n);
    for task in tasks {
        if let Ok(Some(t)) = task.await {
            answered.push(t);
        }
    }
    let (skews, missing) = skews_of(&seen, &names, start, start + chrono::Duration::seconds(120)).await;
    let load = load_average();
    settle().await;
    let writes = diff(&apiserver_writes(), &before);
    watch.abort();
    let outcome = Outcome {
        skews,
        missing,
        writes,
        own_writes: None,
        load,
    };
    (outcome, answered, ns)
}

/// What a scheduler under test has of its own: its objects, the names of its Jobs and when their
/// runs are done. [`due_at_once`] does the rest, the same for each.
trait Scheduler {
    type Object: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug;
    /// Its name in the progress lines.
    const NAME: &'static str;
    /// What its objects are called in the progress lines.
    const OBJECTS: &'static str;

    /// Its object `i`, due daily at `cron`.
    fn object(&self, i: usize, cron: &str) -> Self::Object;

    /// Waits for it to be ready for `slot` once its objects exist.
    async fn ready(&self, _ns: &TestNamespace, _n: usize, _slot: DateTime<Utc>) {}

    /// The name of the Job it starts for object `i` at `slot`.
    fn job_name(&self, i: usize, slot: DateTime<Utc>) -> String;

    /// How many of these Jobs' runs it has seen finish.
    async fn finished(&self, ns: &TestNamespace, jobs: &[String]) -> usize;

    /// The API writes it counts itself, when it counts them.
    fn own_writes(&self) -> Option<u64> {
        None
    }
}

/// N objects of one scheduler due in the same second, in `ns`: creates them, waits for the slot,
/// measures when a watch sees each Job, and counts the API writes until every run has finished.
async fn due_at_once<S: Scheduler>(scheduler: &S, ns: &TestNamespace, n: usize) -> Outcome {
    let slot = target_minute(chrono::Duration::seconds(45 + (n / 10) as i64));
    eprintln!("{}: {n} {} due at {slot}", S::NAME, S::OBJECTS);
    let cron = format!("{} {} * * *", slot.minute(), slot.hour());
    create_all(&ns.api(), n, |i| scheduler.object(i, &cron)).await;
    scheduler.ready(ns, n, slot).await;
    let seen: Seen = Arc::default();
    let watch = watch_jobs(ns.api(), seen.clone());
    wait_until(slot - chrono::Duration::seconds(3)).await;
    let (before, own_before) = (apiserver_writes(), scheduler.own_writes());
    let names: Vec<String> = (0..n).map(|i| scheduler.job_name(i, slot)).collect();
    let (skews, missing) = skews_of(&seen, &names, slot, slot + chrono::Duration::seconds(120)).await;
    let load = load_average();
    // Every run finished, then a moment for the last status writes.
    let deadline = Utc::now() + chrono::Duration::seconds(300);
    while scheduler.finished(ns, &names).await < n - missing && Utc::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let writes = diff(&apiserver_writes(), &before);
    let own_writes = own_before
        .zip(scheduler.own_writes())
        .map(|(before, after)| (after - before) as f64);
    watch.abort();
    Outcome {
        skews,
        missing,
        writes,
        own_writes,
        load,
    }
}

/// The operator under test: its runs recorded in a SQLite file (`SqlLedger`, as users run it).
struct Operator {
    store: jtp_store::Store,
    metrics: Arc<Metrics>,
}

impl Scheduler for Operator {
    type Object = ScheduledJob;
    const NAME: &'static str = "operator";
    const OBJECTS: &'static str = "ScheduledJobs";

    fn object(&self, i: usize, cron: &str) -> ScheduledJob {
        ScheduledJob::new(&format!("op-{i}"), bench_spec(cron))
    }

    /// Lets the operator finish its first reconcile of every ScheduledJob before the slot.
    async fn ready(&self, ns: &TestNamespace, n: usize, slot: DateTime<Utc>) {
        let api: Api<ScheduledJob> = ns.api();
        loop {
            let settled = api
                .list(&Default::default())
                .await
                .map(|l| {
                    l.items
                        .iter()
                        .filter(|s| s.status.as_ref().is_some_and(|st| st.next_run.is_some()))
                        .count()
                })
                .unwrap_or(0);
            if settled >= n || Utc::now() > slot - chrono::Duration::seconds(5) {
                eprintln!(
                    "operator: {settled}/{n} ScheduledJobs reconciled {:.1}s before the slot",
                    (slot - Utc::now()).num_milliseconds() as f64 / 1e3
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn job_name(&self, i: usize, slot: DateTime<Utc>) -> String {
        format!("op-{i}-{}", slot.timestamp())
    }

    /// The runs the store has recorded as finished (by `<namespace>/<Job>`).
    async fn finished(&self, ns: &TestNamespace, jobs: &[String]) -> usize {
        let qualified: Vec<String> = jobs.iter().map(|j| format!("{}/{j}", ns.name())).collect();
        let mut done = 0;
        for chunk in qualified.chunks(500) {
            done += self.store.finished_k8s_jobs(chunk).await.map_or(0, |f| f.len());
        }
        done
    }

    fn own_writes(&self) -> Option<u64> {
        Some(self.metrics.api_writes_total())
    }
}

/// The peer: the kube-controller-manager's CronJob controller.
struct CronJobController;

impl Scheduler for CronJobController {
    type Object = CronJob;
    const NAME: &'static str = "cronjob";
    const OBJECTS: &'static str = "CronJobs";

    fn object(&self, i: usize, cron: &str) -> CronJob {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": format!("cj-{i}") },
            "spec": {
                "schedule": cron, "timeZone": "Etc/UTC", "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                "jobTemplate": { "spec": { "backoffLimit": 0, "template": { "spec": {
                    "restartPolicy": "Never",
                    "containers": [{ "name": "run", "image": "busybox:1.36", "command": ["sh", "-c", "true"] }]
                }}}}
            }
        }))
        .expect("CronJob")
    }

    /// The CronJob controller names Jobs <cronjob>-<scheduled time in minutes since the epoch>.
    fn job_name(&self, i: usize, slot: DateTime<Utc>) -> String {
        format!("cj-{i}-{}", slot.timestamp() / 60)
    }

    /// The CronJobs that have a last successful run (each has one run).
    async fn finished(&self, ns: &TestNamespace, _jobs: &[String]) -> usize {
        let api: Api<CronJob> = ns.api();
        api.list(&Default::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter(|c| {
                        c.status
                            .as_ref()
                            .is_some_and(|s| s.last_successful_time.is_some())
                    })
                    .count()
            })
            .unwrap_or(0)
    }
}

/// A running operator, stopped at the end once its ScheduledJobs (and finalizers) are gone.
type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<jtp_operator::controller::Result<()>>,
);

async fn operator_phase(
    client: &kube::Client,
    n: usize,
) -> (Outcome, TestNamespace, Running, tempfile::TempDir) {
    let ns = TestNamespace::new(client, "bench-op").await;
    // The runs go to a SQLite file, as users run it.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let url = format!("sqlite://{}", dir.path().join("jtp.db").display());
    let ledger = Arc::new(SqlLedger::new(&url));
    let store = ledger.store().await.expect("the SQLite store");
    let metrics = Metrics::new();
    let mut args = OperatorArgs::defaults();
    args.namespaces = vec![ns.name().to_owned()];
    args.no_leader_election = true;
    // JTP_BENCH_COALESCE_SECONDS sets the operator's --status-coalesce-seconds (default 5).
    if let Some(secs) = std::env::var("JTP_BENCH_COALESCE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        args.status_coalesce_seconds = secs;
    }
    args.metrics_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(run_with(
        client.clone(),
        args,
        ledger.clone(),
        metrics.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let outcome = due_at_once(&Operator { store, metrics }, &ns, n).await;
    (outcome, ns, (stop, operator), dir)
}

async fn cronjob_phase(client: &kube::Client, n: usize) -> (Outcome, TestNamespace) {
    let ns = TestNamespace::new(client, "bench-cj").await;
    let outcome = due_at_once(&CronJobController, &ns, n).await;
    (outcome, ns)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` and `cargo bench -- --list` must not start a run.
    }
    let n: usize = std::env::var("JTP_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let client = jtp_testenv::cluster().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = ScheduledJob::crd();
    crds.patch(
        crd.metadata.name.as_deref().unwrap_or_default(),
        &PatchParams::apply("jtp-bench").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply the CRD");
    // Namespaces are deleted at the end: deleting one mid-run would add its writes to the other phase.
    // JTP_BENCH_BARE=0 skips the bare client (for quick iterations on the operator).
    let with_bare = std::env::var("JTP_BENCH_BARE").map_or(true, |v| v != "0");
    let mut bare = Vec::new();
    if with_bare {
        for how in [Via::Apply, Via::Create] {
            bare.push((how, bare_phase(&client, n, how).await));
        }
    }
    let (op, op_ns, (stop, operator), _db) = operator_phase(&client, n).await;
    // JTP_BENCH_CRONJOB=0 skips the CronJob phase (for quick iterations on the operator).
    let with_cronjob = std::env::var("JTP_BENCH_CRONJOB").map_or(true, |v| v != "0");
    let cronjob = if with_cronjob {
        Some(cronjob_phase(&client, n).await)
    } else {
        None
    };
    let sjs: Api<ScheduledJob> = op_ns.api();
    let _ = sjs
        .delete_collection(&Default::default(), &Default::default())
        .await;
    for _ in 0..120 {
        if sjs
            .list(&Default::default())
            .await
            .is_ok_and(|l| l.items.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let _ = stop.send(());
    let _ = operator.await;
    op_ns.cleanup().await;
    println!(
        "\n{n} Jobs at once (skew = a watch sees the Job - the scheduled second, or the instant the bare client sent)"
    );
    for (how, (outcome, answered, _)) in &bare {
        report(how.label(), n, outcome);
        let mut a = answered.clone();
        a.sort_by(f64::total_cmp);
        println!(
            "{:<12} the API server answered p50 {:.3}s p99 {:.3}s after the start ({} of {n})",
            how.label(),
            percentile(&a, 50.0),
            percentile(&a, 99.0),
            a.len()
        );
    }
    report("operator", n, &op);
    let cj = match cronjob {
        Some((cj, cj_ns)) => {
            cj_ns.cleanup().await;
            report("cronjob", n, &cj);
            Some(cj)
        }
        None => None,
    };
    // One line per figure for scripts/bench: name|figure|peer or limit|ratio|target|ok|load.
    let shown = |o: &Outcome| format!("p50 {:.2} s / p99 {:.2} s", o.p(50.0), o.p(99.0));
    let line = |what: &str, figure: String, peer: String, ratio: f64, target: &str, ok: bool, load: &str| {
        let ok = if ok { "✔" } else { "✘" };
        println!("BENCH|{what}|{figure}|{peer}|{ratio:.2}|{target}|{ok}|{load}");
    };
    println!();
    let complete = |o: &Outcome| o.missing == 0;
    for (how, (b, _, _)) in &bare {
        let ratio = op.p(99.0) / b.p(99.0);
        line(
            &format!("operator skew, {n} jobs due at once / {} (limit)", how.label()),
            shown(&op),
            shown(b),
            ratio,
            "≤ 1.3",
            ratio <= 1.3 && complete(&op) && complete(b),
            &format!("{} / {}", op.load, b.load),
        );
    }
    if let Some(cj) = &cj {
        let ratio = op.p(99.0) / cj.p(99.0);
        line(
            &format!("operator skew, {n} jobs due at once / CronJob controller"),
            shown(&op),
            shown(cj),
            ratio,
            "≤ 0.2",
            ratio <= 0.2 && complete(&op),
            &format!("{} / {}", op.load, cj.load),
        );
        let (ours, theirs) = (op.writes_per_run(n), cj.writes_per_run(n));
        line(
            &format!("API-server writes per run, {n} jobs due at once / CronJob controller"),
            format!("{ours:.2}"),
            format!("{theirs:.2}"),
            ours / theirs,
            "< 1",
            ours < theirs,
            &format!("{} / {}", op.load, cj.load),
        );
    }
    for (_, (_, _, ns)) in bare {
        ns.cleanup().await;
    }
}
