//! On-demand soak (not a test): chaos with nothing lost. Short-interval ScheduledJobs run on a
//! real node while the operator — the `jtp` binary, recording into a real PostgreSQL — is killed
//! with SIGKILL at random moments and started again, many times; the API server is restarted once
//! and PostgreSQL once. Then every Job the API server ever had is checked against the SQL rows:
//!
//! - exactly one Job per slot (no slot run twice),
//! - exactly one finished row per Job, with the status and output the script really produced,
//! - no row left RUNNING, no Job without its row (a finished Job deleted before its row was
//!   written would be one: the jobs keep one finished Job, so the operator prunes all the time).
//!
//! It restarts the API server, so it needs a test cluster of its own:
//!
//!     scripts/chaos-soak                    # JTP_CHAOS_SECONDS=240 JTP_CHAOS_JOBS=4
//!
//! which starts a private testenv (`JTP_TESTENV_DIR=/tmp/jtp-chaos`) and a private PostgreSQL
//! (port 55448), runs this inside the cluster's network namespace, and stops both. It prints the
//! counts and exits non-zero if anything was lost or duplicated.

use futures::StreamExt;
use jtp_crds::RunStatus;
use jtp_crds::{
    CompiledSchedule, IntervalUnit, JOB_LABEL, JobId, SLOT_LABEL, ScheduledJob, ScheduledJobSpec,
};
use jtp_store::Store;
use jtp_testenv::TestNamespace;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, CustomResourceExt, ResourceExt};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const INTERVAL_SECONDS: u64 = 10;
const PG_PORT: &str = "55448";

/// Every Job the soak saw, by name: (ScheduledJob label, slot label).
type Seen = Arc<Mutex<BTreeMap<String, (String, String)>>>;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

/// Runs scripts/postgres-{up,down} for the soak's own server; the last line of its stdout.
fn postgres(script: &str) -> String {
    let mut words = script.split_whitespace();
    let out = Command::new("bash")
        .arg(scripts_dir().join(words.next().unwrap_or_default()))
        .args(words)
        .env("JTP_PG_PORT", PG_PORT)
        .output()
        .expect("run the postgres script");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The operator as users run it: the `jtp` binary, a process of its own.
fn start_operator(kubeconfig: &Path, namespace: &str, url: &str, log: &Path) -> Child {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("operator log");
    let err = out.try_clone().expect("operator log");
    Command::new(env!("CARGO_BIN_EXE_jtp"))
        .args([
            "operator",
            "--namespaces",
            namespace,
            "--no-leader-election",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("JTP_DATABASE_URL", url)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start jtp operator")
}

/// Kills the API server of the private testenv (SIGKILL) and starts it again with the same command line
/// (its pid file updated, so testenv/down still stops it). Returns how long it was down.
async fn restart_apiserver(testenv: &Path, client: &kube::Client) -> Duration {
    let pidfile = testenv.join("pids/kube-apiserver.pid");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("kube-apiserver pid file")
        .trim()
        .parse()
        .expect("a pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("kube-apiserver cmdline");
    let argv: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(
        argv.first().is_some_and(|a| a.ends_with("kube-apiserver")),
        "pid {pid} is not the API server: {argv:?}"
    );
    let down = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
        .expect("kill the API server");
    while Path::new(&format!("/proc/{pid}")).exists() && down.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few seconds away, so the operator's requests and watches really fail.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = OpenOptions::new()
        .append(true)
        .open(testenv.join("logs/kube-apiserver.log"))
        .expect("kube-apiserver log");
    let mut child = Command::new("setsid")
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start kube-apiserver again");
    std::fs::write(&pidfile, child.id().to_string()).expect("write the pid file");
    // It outlives this soak (testenv/down stops it); reaped here if it ends first.
    std::thread::spawn(move || child.wait());
    loop {
        if client.apiserver_version().await.is_ok() {
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            if crds.get_opt("scheduledjobs.jobtrigger.io").await.is_ok() {
                break;
            }
        }
        assert!(
            down.elapsed() < Duration::from_secs(120),
            "the API server did not come back"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    down.elapsed()
}

fn watch_jobs(api: Api<Job>, seen: Seen) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            if let Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) = event
                && let Ok(mut seen) = seen.lock()
            {
                let label = |k: &str| job.labels().get(k).cloned().unwrap_or_default();
                seen.entry(job.name_any())
                    .or_insert_with(|| (label(JOB_LABEL), label(SLOT_LABEL)));
            }
        }
    })
}

/// One job of the soak: its name, what its script prints, and how it ends.
struct Soaked {
    name: String,
    marker: String,
    fails: bool,
    uid: String,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` and `cargo bench -- --list` must not start a run.
    }
    let testenv = jtp_testenv::testenv_dir();
    assert!(
        testenv != Path::new(jtp_testenv::DEFAULT_TESTENV_DIR),
        "the chaos soak restarts the API server, so it runs on a test cluster of its own, never the \
         shared one ({}): run scripts/chaos-soak (or set JTP_TESTENV_DIR to another directory and run \
         it under testenv/exec)",
        jtp_testenv::DEFAULT_TESTENV_DIR
    );
    let seconds = env_number("JTP_CHAOS_SECONDS", 240);
    let jobs = env_number("JTP_CHAOS_JOBS", 4) as usize;
    let client = jtp_testenv::cluster().await;
    let kubeconfig = jtp_testenv::kubeconfig_path();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = ScheduledJob::crd();
    crds.patch(
        crd.metadata.name.as_deref().unwrap_or_default(),
        &PatchParams::apply("jtp-chaos").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply the CRD");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A fresh database: a data directory left by an earlier soak would hold its rows.
    postgres("postgres-down --purge");
    let url = postgres("postgres-up");
    let store = Store::connect(&url)
        .await
        .expect("connect to the soak's PostgreSQL");
    store.close().await;

    let ns = TestNamespace::new(&client, "chaos").await;
    let work = tempfile::tempdir().expect("temp dir");
    let log = work.path().join("operator.log");
    let seen: Seen = Arc::default();
    let watch = watch_jobs(ns.api(), seen.clone());
    let mut operator = start_operator(&kubeconfig, ns.name(), &url, &log);

    let api: Api<ScheduledJob> = ns.api();
    let mut soaked = Vec::new();
    for i in 0..jobs {
        // One job in four fails: its FAILURE must be recorded as such, with its output.
        let fails = i % 4 == 3;
        let name = format!("chaos-{i}");
        let marker = format!("soak-output-{i}");
        let script = if fails {
            format!("echo {marker}; sleep 1; exit 3")
        } else {
            format!("echo {marker}; sleep 2; echo done")
        };
        let mut spec = ScheduledJobSpec::interval(INTERVAL_SECONDS, IntervalUnit::Seconds).script(&script);
        // One finished Job kept: the operator deletes each earlier one, the moment it has its row.
        spec.successful_jobs_history_limit = Some(1);
        spec.failed_jobs_history_limit = Some(1);
        let created = api
            .create(&PostParams::default(), &ScheduledJob::new(&name, spec))
            .await
            .expect("create a ScheduledJob");
        soaked.push(Soaked {
            name,
            marker,
            fails,
            uid: created.uid().expect("uid"),
        });
    }
    let started = chrono::Utc::now();
    eprintln!(
        "chaos: {jobs} ScheduledJobs every {INTERVAL_SECONDS}s in {} for {seconds}s; operator log {}",
        ns.name(),
        log.display()
    );

    // The chaos: SIGKILL every 2–12 s, back after 0–1.5 s; the API server at a third of the way,
    // PostgreSQL (down 5 s) at two thirds.
    let begin = Instant::now();
    let total = Duration::from_secs(seconds);
    let (mut kills, mut apiserver_down, mut postgres_down) = (0u32, None, None);
    while begin.elapsed() < total {
        let wait = Duration::from_millis(rand::rng().random_range(2_000..12_000));
        tokio::time::sleep(wait).await;
        operator.kill().expect("SIGKILL the operator");
        let _ = operator.wait();
        kills += 1;
        if apiserver_down.is_none() && begin.elapsed() > total / 3 {
            let took = restart_apiserver(&testenv, &client).await;
            eprintln!("chaos: API server restarted, away {took:.1?}");
            apiserver_down = Some(took);
        } else if postgres_down.is_none() && begin.elapsed() > total * 2 / 3 {
            // Started with the database down: it must wait for it, and lose nothing.
            postgres("postgres-down");
            operator = start_operator(&kubeconfig, ns.name(), &url, &log);
            let down = Instant::now();
            tokio::time::sleep(Duration::from_secs(5)).await;
            postgres("postgres-up");
            eprintln!("chaos: PostgreSQL restarted, away {:.1?}", down.elapsed());
            postgres_down = Some(down.elapsed());
            continue;
        }
        let back = Duration::from_millis(rand::rng().random_range(0..1_500));
        tokio::time::sleep(back).await;
        operator = start_operator(&kubeconfig, ns.name(), &url, &log);
        if kills.is_multiple_of(10) {
            eprintln!("chaos: {kills} kills, {:.0?} of {total:.0?}", begin.elapsed());
        }
    }
    let ended = chrono::Utc::now();

    // No new slots; the runs in flight end and are recorded by a last operator left alone.
    for job in &soaked {
        api.patch(
            &job.name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": { "suspend": true } })),
        )
        .await
        .expect("suspend");
    }
    let store = Store::connect(&url).await.expect("connect");
    let settle = Instant::now();
    let rows = loop {
        let mut rows = BTreeMap::new();
        for job in &soaked {
            let runs = match store.get_job_by_uid(&job.uid).await {
                Ok(row) => store.list_runs(row.id, 10_000, 0).await.expect("list runs").items,
                Err(_) => Vec::new(),
            };
            rows.insert(job.name.clone(), runs);
        }
        let running = rows
            .values()
            .flatten()
            .filter(|r| r.status == RunStatus::Running)
            .count();
        let recorded: BTreeSet<String> = rows
            .values()
            .flatten()
            .filter_map(|r| r.k8s_job_name.clone())
            .collect();
        let unrecorded = seen
            .lock()
            .expect("seen")
            .keys()
            .filter(|name| !recorded.contains(&format!("{}/{name}", ns.name())))
            .count();
        if (running == 0 && unrecorded == 0) || settle.elapsed() > Duration::from_secs(120) {
            break rows;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    watch.abort();

    // The checks.
    let seen = seen.lock().expect("seen").clone();
    let mut per_slot: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (sj, slot) in seen.values() {
        *per_slot.entry((sj.clone(), slot.clone())).or_default() += 1;
    }
    let duplicate_jobs: usize = per_slot.values().map(|n| n.saturating_sub(1)).sum();
    let (mut duplicate_rows, mut left_running, mut wrong, mut lost, mut unknown) = (0, 0, 0, 0, 0);
    let mut refused = 0;
    let mut missed = 0;
    for job in &soaked {
        let runs = &rows[&job.name];
        let mut slots: BTreeMap<i64, usize> = BTreeMap::new();
        let mut by_job: BTreeMap<String, usize> = BTreeMap::new();
        for run in runs {
            *slots.entry(run.scheduled_for.timestamp()).or_default() += 1;
            if let Some(k8s) = &run.k8s_job_name {
                *by_job.entry(k8s.clone()).or_default() += 1;
            }
            if run.status == RunStatus::Running {
                left_running += 1;
                continue;
            }
            let output = store.get_run(run.id).await.expect("run").log_output;
            let expected = if job.fails {
                RunStatus::Failure
            } else {
                RunStatus::Success
            };
            // A pod the cluster never ran (not schedulable, say, while the node was marked
            // unreachable during the API server's absence) is an ERROR with the cluster's reason:
            // that is its real outcome, counted apart.
            if run.status == RunStatus::Error && !output.contains(&job.marker) && output.starts_with("[jtp]")
            {
                refused += 1;
                eprintln!(
                    "chaos: {} run {} at {}: ERROR from the cluster: {}",
                    job.name,
                    run.id,
                    run.scheduled_for,
                    output.trim()
                );
                continue;
            }
            if run.status != expected || !output.contains(&job.marker) {
                wrong += 1;
                eprintln!(
                    "chaos: {} run {} at {}: {:?}, output {:?}",
                    job.name, run.id, run.scheduled_for, run.status, output
                );
            }
        }
        duplicate_rows += slots.values().map(|n| n.saturating_sub(1)).sum::<usize>();
        duplicate_rows += by_job.values().map(|n| n.saturating_sub(1)).sum::<usize>();
        let label = jtp_operator::controller::builder::label_value(&job.name);
        for (name, (sj, _)) in &seen {
            if *sj == label && !by_job.contains_key(&format!("{}/{name}", ns.name())) {
                lost += 1;
                eprintln!("chaos: Job {name} has no row");
            }
        }
        unknown += by_job
            .keys()
            .filter(|k| !seen.contains_key(k.rsplit('/').next().unwrap_or_default()))
            .count();
        // Slots that came due while the soak ran and got no run (the operator or the API server
        // was away past the slot): reported, not an error.
        let schedule = CompiledSchedule::new(
            JobId {
                namespace: ns.name(),
                name: &job.name,
            },
            &ScheduledJobSpec::interval(INTERVAL_SECONDS, IntervalUnit::Seconds),
        )
        .expect("schedule");
        let mut at = started;
        while let Some(next) = schedule.next_after(at).filter(|n| *n < ended) {
            if !slots.contains_key(&next.timestamp()) {
                missed += 1;
            }
            at = next;
        }
    }
    let runs: usize = rows.values().map(Vec::len).sum();
    // The last operator deletes the ScheduledJobs' finalizers; then it stops.
    let _ = api
        .delete_collection(&Default::default(), &Default::default())
        .await;
    for _ in 0..60 {
        if api
            .list(&Default::default())
            .await
            .is_ok_and(|l| l.items.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let _ = operator.kill();
    let _ = operator.wait();
    ns.cleanup().await;
    store.close().await;
    postgres("postgres-down");

    println!(
        "\nchaos soak: {seconds}s, {jobs} jobs every {INTERVAL_SECONDS}s, operator SIGKILLed {kills} times, \
         API server restarted {} (away {:.1?}), PostgreSQL restarted {} (away {:.1?})",
        u8::from(apiserver_down.is_some()),
        apiserver_down.unwrap_or_default(),
        u8::from(postgres_down.is_some()),
        postgres_down.unwrap_or_default(),
    );
    println!(
        "Jobs created {}  rows {runs}  duplicate Jobs per slot {duplicate_jobs}  duplicate rows {duplicate_rows}  \
         lost (Job without its row) {lost}  rows without a Job {unknown}  left RUNNING {left_running}  \
         wrong status or output {wrong}  pods the cluster did not run (ERROR with its reason) {refused}  \
         slots not run (operator or API server away past them) {missed}",
        seen.len()
    );
    let bad = duplicate_jobs + duplicate_rows + lost + unknown + left_running + wrong;
    // The summary line of scripts/bench: name|figure|peer or limit|ratio|target|ok.
    println!(
        "BENCH|chaos soak, {seconds} s, {kills} operator kills: runs lost or duplicated, of {} Jobs|{}|—|—|0|{}",
        seen.len(),
        duplicate_jobs + duplicate_rows + lost,
        if bad == 0 { "✔" } else { "✘" }
    );
    if bad > 0 || apiserver_down.is_none() || postgres_down.is_none() {
        eprintln!("chaos soak FAILED (operator log: {})", log.display());
        std::mem::forget(work); // keep the log
        std::process::exit(1);
    }
}
