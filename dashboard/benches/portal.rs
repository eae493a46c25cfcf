//! Load test of the running portal over loopback: 10,000 jobs and 1,000,000 runs in a SQLite store,
//! then a fixed number of requests per endpoint at concurrency 8; prints p50/p99/max per endpoint.
//!
//! `cargo bench -p jtp-dashboard` (sizes: JTP_BENCH_JOBS, JTP_BENCH_RUNS, JTP_BENCH_REQUESTS; JTP_BENCH_ONLY
//! picks the endpoints whose name contains it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use jtp_crds::{RunStatus, ScheduledJobSpec, Trigger};
use jtp_dashboard::{AppState, PortalConfig};
use jtp_store::{ImportedRun, JobInput, Store, StoreOptions};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;

const CONCURRENCY: usize = 8;
/// Requests of the sequential pass, which shows the service time of each endpoint without queueing.
const SEQUENTIAL: usize = 200;
const TARGET_P99_MS: f64 = 50.0;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

/// Jobs of every schedule form, their next runs spread over a week; runs in batches through the
/// store's bulk import. Returns (job name, job id) pairs.
async fn load(store: &Store, jobs: usize, runs: usize) -> Vec<(String, i64)> {
    let started = Instant::now();
    let specs = [
        ScheduledJobSpec::daily("09:00"),
        ScheduledJobSpec::hourly(15),
        ScheduledJobSpec::interval(30, jtp_crds::IntervalUnit::Minutes),
        ScheduledJobSpec::weekly(&[jtp_crds::Weekday::Monday], "08:00"),
        ScheduledJobSpec::monthly(31, "23:00").in_zone("Europe/London"),
        ScheduledJobSpec::cron("*/5 * * * *"),
        ScheduledJobSpec::manual(),
    ];
    let mut out = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let name = format!("job-{i:05}");
        let spec = &specs[i % specs.len()];
        let next_run = spec
            .schedule
            .manual
            .is_none()
            .then(|| base() + Duration::minutes((i * 37 % 10_080) as i64));
        let input = JobInput {
            name: &name,
            namespace: "default",
            uid: None,
            spec,
            next_run,
        };
        out.push((
            name.clone(),
            store.create_job(&input).await.expect("create job").id,
        ));
    }
    let jobs_took = started.elapsed();
    let started = Instant::now();
    let per_job = runs / jobs.max(1);
    let chunk_jobs = (50_000 / per_job.max(1)).max(1);
    for chunk in out.chunks(chunk_jobs) {
        let batch: Vec<ImportedRun> = chunk
            .iter()
            .flat_map(|(_, job_id)| (0..per_job).map(move |k| (*job_id, k)))
            .map(|(job_id, k)| {
                let slot = base() - Duration::hours(k as i64);
                let status = match (job_id as usize + k) % 50 {
                    0 => RunStatus::Failure,
                    1 => RunStatus::Error,
                    _ => RunStatus::Success,
                };
                ImportedRun {
                    job_id,
                    run_time: slot,
                    scheduled_for: slot,
                    finished_at: Some(slot + Duration::seconds(3)),
                    status,
                    exit_code: Some(if status == RunStatus::Success { 0 } else { 1 }),
                    trigger: Trigger::Schedule,
                    output: format!("run {k} of job {job_id}: {status}\n<script>alert(1)</script>\n"),
                    k8s_job_name: None,
                    runner: Some("bench".into()),
                }
            })
            .collect();
        store.import_runs(&batch).await.expect("import runs");
    }
    println!(
        "loaded {jobs} jobs in {:.1} s and {} runs in {:.1} s",
        jobs_took.as_secs_f64(),
        per_job * out.len(),
        started.elapsed().as_secs_f64()
    );
    out
}

/// `requests` GETs of `url` with CONCURRENCY in flight; returns sorted latencies in ms.
async fn hammer(
    client: &reqwest::Client,
    url: &str,
    cookie: &str,
    requests: usize,
    concurrency: usize,
) -> Vec<f64> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, cookie, next) = (client.clone(), url.to_owned(), cookie.to_owned(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                let started = Instant::now();
                let response = client
                    .get(&url)
                    .header("cookie", &cookie)
                    .send()
                    .await
                    .expect("request");
                let status = response.status();
                let body = response.bytes().await.expect("body");
                assert!(status.is_success(), "{url}: {status}");
                assert!(!body.is_empty());
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        }));
    }
    let mut all = Vec::with_capacity(requests);
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    all.sort_by(f64::total_cmp);
    all
}

/// Warm-up, then the sequential pass, then `requests` at CONCURRENCY; prints the endpoint's line and
/// keeps the worst p99 in `worst`.
async fn measure(
    client: &reqwest::Client,
    name: &str,
    url: &str,
    cookie: &str,
    requests: usize,
    worst: &mut (f64, String),
) {
    hammer(client, url, cookie, requests / 10, CONCURRENCY).await; // warm-up
    let alone = hammer(client, url, cookie, SEQUENTIAL, 1).await;
    let started = Instant::now();
    let latencies = hammer(client, url, cookie, requests, CONCURRENCY).await;
    let rate = requests as f64 / started.elapsed().as_secs_f64();
    let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
    if p99 > worst.0 {
        *worst = (p99, name.to_owned());
    }
    println!(
        "{name:<44} {p50:>9.2} {p99:>9.2} {:>9.2} {rate:>9.0} {:>11.2}",
        latencies.last().copied().unwrap_or(0.0),
        percentile(&alone, 0.50)
    );
}

fn per_job_total(jobs: usize, runs: usize) -> usize {
    runs / jobs.max(1) * jobs
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let jobs = env_or("JTP_BENCH_JOBS", 10_000);
    let runs = env_or("JTP_BENCH_RUNS", 1_000_000);
    let requests = env_or("JTP_BENCH_REQUESTS", 2_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let store = Store::connect_with(&url, StoreOptions::default())
        .await
        .expect("store");
    let loaded = load(&store, jobs, runs).await;

    // One run with a long output (200 KiB) for the output endpoints.
    let (big_job, big_job_id) = loaded[loaded.len() / 2].clone();
    let big_output = "0123456789abcdef <b>escaped</b> output line\n".repeat(4_800);
    let live_output = big_output.clone();
    let at = base() + Duration::hours(1);
    store
        .import_runs(&[ImportedRun {
            job_id: big_job_id,
            run_time: at,
            scheduled_for: at,
            finished_at: Some(at + Duration::seconds(9)),
            status: RunStatus::Success,
            exit_code: Some(0),
            trigger: Trigger::Manual,
            output: big_output,
            k8s_job_name: None,
            runner: Some("bench".into()),
        }])
        .await
        .expect("import the big run");
    let big_run = store.list_runs(big_job_id, 1, 0).await.expect("runs").items[0].id;

    let live = jtp_dashboard::live::LiveRuns::default();
    let config = PortalConfig::default();
    let per_page = config.page_size as usize;
    let state = AppState::standalone(store.clone(), Arc::new(Notify::new()), live.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(jtp_dashboard::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let base_url = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");
    // A browser session, as a real user has (the pages set it once).
    let first = client
        .get(format!("{base_url}/"))
        .send()
        .await
        .expect("first page");
    let cookie = first
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .to_owned();

    // Page 100 is past the end below 4,951 jobs: the portal then redirects to the last page, and the
    // figure is of both requests (the client follows the redirect). The last page is measured too.
    let last_page = jobs.div_ceil(per_page).max(1);
    let page_100 = if last_page < 100 {
        format!("jobs page 100 (past the end: redirect to {last_page})")
    } else {
        format!("jobs page 100 (offset {})", 99 * per_page)
    };
    let last_run_100 = if last_page < 100 {
        "jobs by last run, page 100 (redirect)".to_owned()
    } else {
        "jobs sorted by last run, page 100".to_owned()
    };
    let endpoints = vec![
        (
            "jobs page (first 50, by next run)".to_owned(),
            format!("{base_url}/"),
        ),
        (page_100, format!("{base_url}/?page=100")),
        (
            format!("jobs page {last_page} (the last)"),
            format!("{base_url}/?page={last_page}"),
        ),
        (
            "jobs page, name filter".to_owned(),
            format!("{base_url}/?name=job-012"),
        ),
        (
            "jobs page, status filter".to_owned(),
            format!("{base_url}/?status=FAILURE"),
        ),
        (
            "jobs page sorted by name".to_owned(),
            format!("{base_url}/?sort=name"),
        ),
        (last_run_100, format!("{base_url}/?sort=last&dir=desc&page=100")),
        (
            format!("jobs by last run, page {last_page} (last)"),
            format!("{base_url}/?sort=last&dir=desc&page={last_page}"),
        ),
        (
            "jobs page sorted by status".to_owned(),
            format!("{base_url}/?sort=status"),
        ),
        (
            "the job's own page (spec, next 5)".to_owned(),
            format!("{base_url}/jobs/default/{big_job}/details"),
        ),
        (
            "a job's export.yaml".to_owned(),
            format!("{base_url}/jobs/default/{big_job}/export.yaml"),
        ),
        (
            "job page with runs panel".to_owned(),
            format!("{base_url}/jobs/default/{big_job}"),
        ),
        (
            "runs panel fragment (polled)".to_owned(),
            format!("{base_url}/jobs/default/{big_job}/panel"),
        ),
        (
            "jobs page, its panel with a 200 KiB output".to_owned(),
            format!("{base_url}/jobs/default/{big_job}/runs/{big_run}"),
        ),
        (
            "run output.txt (200 KiB)".to_owned(),
            format!("{base_url}/runs/{big_run}/output.txt"),
        ),
        (
            "jobs rows fragment (polled)".to_owned(),
            format!("{base_url}/fragments/jobs"),
        ),
        (
            "runs view (all jobs, newest 50)".to_owned(),
            format!("{base_url}/runs"),
        ),
        (
            "runs view, failures only".to_owned(),
            format!("{base_url}/runs?status=FAILURE"),
        ),
        (
            "runs view, one job, a start range".to_owned(),
            format!("{base_url}/runs?job={big_job}&since=2026-11-01&until=2026-11-15"),
        ),
        (
            "run's own page (200 KiB output)".to_owned(),
            format!("{base_url}/runs/{big_run}"),
        ),
        ("API: list jobs".to_owned(), format!("{base_url}/api/v1/jobs")),
        (
            "API: runs across jobs".to_owned(),
            format!("{base_url}/api/v1/runs"),
        ),
        (
            "API: a job's runs".to_owned(),
            format!("{base_url}/api/v1/jobs/default/{big_job}/runs"),
        ),
    ];
    println!(
        "\n{jobs} jobs, {} runs; {requests} requests per endpoint, concurrency {CONCURRENCY}, loopback\n",
        per_job_total(jobs, runs)
    );
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "endpoint", "p50 ms", "p99 ms", "max ms", "req/s", "alone p50"
    );
    let mut worst = (0.0f64, String::new());
    // JTP_BENCH_ONLY=text measures only the endpoints whose name contains it (for a profile of one).
    let only = std::env::var("JTP_BENCH_ONLY").unwrap_or_default();
    let mut measured = 0;
    for (name, url) in endpoints.iter().filter(|(name, _)| name.contains(&only)) {
        measure(&client, name, url, &cookie, requests, &mut worst).await;
        measured += 1;
    }
    // Live output of a run in flight, measured after the pages above so that its RUNNING row does
    // not change them. As the standalone runner does (`LiveRuns::start`, then each read of the
    // pipe pushed into the capture), the bench registers the run's capture in the AppState's
    // LiveRuns and keeps writing to it while the page polls; 200 KiB are written before.
    let live_job_id = loaded[loaded.len() / 3].1;
    let now = Utc::now();
    let live_run = store
        .record_attempt_start(
            &jtp_store::RunStart {
                job_id: live_job_id,
                trigger: Trigger::Manual,
                scheduled_for: now,
                started_at: now,
                k8s_job_name: None,
                runner: Some("bench".into()),
                requester: Some("bench".into()),
                parameters: Default::default(),
            },
            1,
        )
        .await
        .expect("start the live run");
    let capture = live.start(live_run);
    let cap = store.output_cap();
    capture.lock().unwrap().push(live_output.as_bytes(), cap);
    let caught_up = capture.lock().unwrap().total;
    let writer = {
        let capture = capture.clone();
        tokio::spawn(async move {
            for line in 0u64.. {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let text = format!("\x1b[32mstill running\x1b[0m, line {line}\n");
                capture.lock().unwrap().push(text.as_bytes(), cap);
            }
        })
    };
    for (name, offset) in [
        ("API: live output, caught up (200 KiB so far)", caught_up),
        ("API: live output from 0 (200 KiB so far)", 0),
    ]
    .into_iter()
    .filter(|(name, _)| name.contains(&only))
    {
        let url = format!("{base_url}/api/v1/runs/{live_run}/live?offset={offset}");
        measure(&client, name, &url, &cookie, requests, &mut worst).await;
        measured += 1;
    }
    writer.abort();
    live.end(live_run);
    let (worst, worst_name) = worst;
    // The store's share: the jobs page's queries alone, in process.
    for (what, filter) in [
        (
            "store: first page of jobs",
            jtp_store::JobFilter {
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "store: name filter",
            jtp_store::JobFilter {
                limit: 50,
                name_contains: Some("job-012".into()),
                ..Default::default()
            },
        ),
    ] {
        let mut times = Vec::new();
        for _ in 0..SEQUENTIAL {
            let started = Instant::now();
            store.list_jobs(&filter).await.expect("list");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{what:<44} p50 {:.2} ms, p99 {:.2} ms",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    // The health columns' share: the recent runs of the first page's 50 jobs.
    let first_page: Vec<i64> = store
        .list_jobs(&jtp_store::JobFilter {
            limit: 50,
            ..Default::default()
        })
        .await
        .expect("list")
        .items
        .iter()
        .map(|j| j.id)
        .collect();
    let mut times = Vec::new();
    for _ in 0..SEQUENTIAL {
        let started = Instant::now();
        store
            .run_history(&first_page, jtp_dashboard::data::HEALTH_RUNS)
            .await
            .expect("history");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{:<44} p50 {:.2} ms, p99 {:.2} ms",
        "store: health of 50 jobs",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("machine load average while measuring: {}", load.trim());
    }
    println!(
        "\nworst p99 {worst:.2} ms (target <= {TARGET_P99_MS} ms): {}",
        if worst <= TARGET_P99_MS { "met" } else { "NOT met" }
    );
    // The summary line of scripts/bench: name|figure|peer or limit|ratio|target|ok.
    println!(
        "BENCH|portal ({jobs} jobs, {} runs, concurrency {CONCURRENCY}): worst p99 of {} pages|{worst:.1} ms ({worst_name})|—|—|≤ {TARGET_P99_MS} ms|{}",
        per_job_total(jobs, runs),
        measured,
        if worst <= TARGET_P99_MS { "✔" } else { "✘" }
    );
    let _ = stop.send(());
    server.await.expect("server task").expect("server");
}
