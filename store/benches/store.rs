//! `cargo bench -p jtp-store`: loads 10,000 jobs and 1,000,000 runs into SQLite and PostgreSQL,
//! then times the portal's hot queries and recording a run, printing p50/p99 per backend; then
//! times a search across outputs (a rare and a common text, alone and filtered by job, status
//! and a day of start times, first page of 50 with snippets) and what the search index costs a
//! recorded run (with it, then without it, in the same run); then records runs while a retention
//! pass deletes all but each job's newest run.
//!
//! Environment: JTP_BENCH_JOBS, JTP_BENCH_RUNS (sizes), JTP_BENCH_ITERATIONS (samples per query),
//! JTP_BENCH_BACKENDS (`sqlite,postgres`), JTP_BENCH_IDLE_SECONDS (how long runs are recorded idle
//! before the retention pass, 60), JTP_TEST_POSTGRES_URL (else scripts/postgres-up runs),
//! JTP_BENCH_KEEP (keep the PostgreSQL database for EXPLAIN).

use chrono::{DateTime, Duration, TimeZone, Utc};
use jtp_crds::{RunStatus, ScheduledJobSpec, Trigger};
use jtp_store::{
    BackendKind, FinishEffects, ImportedRun, JobFilter, JobInput, PruneOptions, RunFilter, RunFinish,
    RunStart, Store,
};
use rand::Rng;
use std::time::Instant;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

struct Timings(Vec<f64>);

/// (backend, what, p99 ms) of every figure, for the `BENCH|…` summary lines of scripts/bench.
static P99S: std::sync::Mutex<Vec<(String, String, f64)>> = std::sync::Mutex::new(Vec::new());

/// The summary lines of one backend: name|figure|peer or limit|ratio|target|ok.
fn summary_lines(kind: &str, jobs: usize, runs: usize) {
    let all = P99S.lock().map(|v| v.clone()).unwrap_or_default();
    let of = |pick: &dyn Fn(&str) -> bool| {
        all.iter()
            .filter(|(k, w, _)| k == kind && pick(w))
            .max_by(|a, b| a.2.total_cmp(&b.2))
            .map(|(_, w, p)| (w.clone(), *p))
    };
    let p99 = |what: &str| of(&|w| w == what).map_or(f64::NAN, |(_, p)| p);
    let ok = |b: bool| if b { "✔" } else { "✘" };
    let size = format!("{kind}, {jobs} jobs, {runs} runs");
    for (name, pick, target) in [
        (
            "worst p99 of the jobs and runs pages",
            &(|w: &str| w.starts_with("jobs page") || w.starts_with("one job")) as &dyn Fn(&str) -> bool,
            10.0,
        ),
        (
            "worst p99 of a search (first page with snippets; the 0-hit worst case included)",
            &|w: &str| w.starts_with("search"),
            100.0,
        ),
    ] {
        if let Some((what, p)) = of(pick) {
            println!(
                "BENCH|store ({size}): {name}|{p:.1} ms ({what})|—|—|≤ {target} ms|{}",
                ok(p <= target)
            );
        }
    }
    for (name, a, b) in [
        (
            "recording a run during a retention pass / idle, p99",
            "record a run during that pass",
            "record runs back to back, idle",
        ),
        (
            "recording a 2 KiB output with the search index / without, p99",
            "record a run with 2 KiB output, search index on",
            "record a run with 2 KiB output, search index dropped",
        ),
    ] {
        let (a, b) = (p99(a), p99(b));
        println!(
            "BENCH|store ({size}): {name}|{a:.1} ms|{b:.1} ms|{:.2}|≤ 2|{}",
            a / b,
            ok(a / b <= 2.0)
        );
    }
}

impl Timings {
    fn p99(&self) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[((sorted.len() as f64 - 1.0) * 0.99).round() as usize]
    }

    fn report(mut self, backend: &str, what: &str) {
        self.0.sort_by(f64::total_cmp);
        let pick = |q: f64| self.0[((self.0.len() as f64 - 1.0) * q).round() as usize];
        if let Ok(mut all) = P99S.lock() {
            all.push((backend.to_owned(), what.to_owned(), pick(0.99)));
        }
        println!(
            "{backend:<9} {what:<34} n={:<5} p50={:>7.3} ms  p99={:>7.3} ms",
            self.0.len(),
            pick(0.50),
            pick(0.99)
        );
    }
}

async fn time<F, Fut>(iterations: usize, mut f: F) -> Timings
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let started = Instant::now();
        f(i).await;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Timings(samples)
}

async fn load(store: &Store, jobs: usize, runs: usize) -> Vec<i64> {
    let started = Instant::now();
    let spec = ScheduledJobSpec::interval(1, jtp_crds::IntervalUnit::Hours);
    let mut rng = rand::rng();
    let mut ids = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let name = format!("job-{i:05}");
        let namespace = format!("team-{}", i % 5);
        let next_run = (i % 10 != 0).then(|| base() + Duration::minutes(rng.random_range(0..7 * 24 * 60)));
        let input = JobInput {
            name: &name,
            namespace: &namespace,
            uid: None,
            spec: &spec,
            next_run,
        };
        ids.push(store.create_job(&input).await.expect("create job").id);
    }
    let jobs_took = started.elapsed();
    let started = Instant::now();
    let per_job = runs / jobs.max(1);
    let chunk_jobs = (100_000 / per_job.max(1)).max(1);
    for chunk in ids.chunks(chunk_jobs) {
        let batch: Vec<ImportedRun> = chunk
            .iter()
            .flat_map(|&job_id| (0..per_job).map(move |k| (job_id, k)))
            .map(|(job_id, k)| {
                let slot = base() - Duration::hours(k as i64);
                let roll = rng.random_range(0..100);
                let status = match roll {
                    0..90 => RunStatus::Success,
                    90..98 => RunStatus::Failure,
                    _ => RunStatus::Error,
                };
                ImportedRun {
                    job_id,
                    run_time: slot,
                    scheduled_for: slot,
                    finished_at: Some(slot + Duration::seconds(3)),
                    status,
                    exit_code: Some(if status == RunStatus::Success { 0 } else { 1 }),
                    trigger: Trigger::Schedule,
                    // One run in a thousand says what a search looks for.
                    output: if rng.random_range(0..1000) == 0 {
                        format!(
                            "run {k} of job {job_id}: connect: Connection refused (os error 111)\n{status}\n"
                        )
                    } else {
                        format!("run {k} of job {job_id}: {status}\n")
                    },
                    k8s_job_name: None,
                    runner: Some("bench".into()),
                }
            })
            .collect();
        store.import_runs(&batch).await.expect("import runs");
    }
    println!(
        "{:<9} loaded {jobs} jobs in {:.1} s and {} runs in {:.1} s",
        store.backend_kind(),
        jobs_took.as_secs_f64(),
        per_job * ids.len(),
        started.elapsed().as_secs_f64()
    );
    ids
}

async fn bench(store: &Store, url: &str, jobs: usize, runs: usize, iterations: usize) {
    let ids = load(store, jobs, runs).await;
    let kind = store.backend_kind().as_str();
    let pages = (jobs / 50).max(1);
    let mut rng = rand::rng();
    let offsets: Vec<i64> = (0..iterations)
        .map(|_| rng.random_range(0..pages) as i64 * 50)
        .collect();
    let picks: Vec<i64> = (0..iterations)
        .map(|_| ids[rng.random_range(0..ids.len())])
        .collect();

    let first = JobFilter {
        limit: 50,
        ..JobFilter::default()
    };
    time(iterations, |_| async {
        assert_eq!(
            store.list_jobs(&first).await.expect("page").items.len(),
            50.min(jobs)
        )
    })
    .await
    .report(kind, "jobs page 1 (+count)");
    time(iterations, |i| {
        let filter = JobFilter {
            limit: 50,
            offset: offsets[i],
            ..JobFilter::default()
        };
        async move {
            store.list_jobs(&filter).await.expect("page");
        }
    })
    .await
    .report(kind, "jobs page, random offset (+count)");
    time(iterations, |_| async {
        let filter = JobFilter {
            name_contains: Some("12".into()),
            last_status: Some(RunStatus::Success),
            limit: 50,
            ..JobFilter::default()
        };
        store.list_jobs(&filter).await.expect("filtered");
    })
    .await
    .report(kind, "jobs page, name+status filter");
    time(iterations, |i| {
        let job_id = picks[i];
        async move {
            store.list_runs(job_id, 50, 0).await.expect("runs");
        }
    })
    .await
    .report(kind, "one job's runs page 1 (+count)");
    let slot0 = base() + Duration::days(30);
    time(iterations, |i| {
        let job_id = picks[i];
        async move { record_one(store, job_id, slot0 + Duration::minutes(i as i64)).await }
    })
    .await
    .report(kind, "record a run (start + finish)");
    bench_search(store, url, &picks, iterations, slot0 + Duration::days(10)).await;
    let idle = std::time::Duration::from_secs(env_or("JTP_BENCH_IDLE_SECONDS", 60) as u64);
    bench_prune(store, &picks, slot0 + Duration::days(30), idle).await;
    summary_lines(kind, jobs, runs);
}

/// One search the benchmark times: a text and the filters beside it.
struct Case {
    what: &'static str,
    text: &'static str,
    status: Option<RunStatus>,
    one_job: bool,
    window: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    samples: usize,
}

impl Case {
    fn new(what: &'static str, text: &'static str, samples: usize) -> Self {
        Self {
            what,
            text,
            status: None,
            one_job: false,
            window: (None, None),
            samples,
        }
    }
}

/// A search's first page (50 runs and their snippets) for a rare text (one run in a thousand)
/// and a common one (nine in ten); then recording a run with a 2 KiB output with the search
/// index and, in the same run, after dropping it (its triggers on SQLite, its GIN index on
/// PostgreSQL): what the index costs a run.
async fn bench_search(store: &Store, url: &str, picks: &[i64], iterations: usize, slot0: DateTime<Utc>) {
    let kind = store.backend_kind().as_str();
    // The loaded runs start in the hours before base(), newest first per job.
    let day = (Some(base() - Duration::days(2)), Some(base() - Duration::days(1)));
    let cases = [
        Case::new("rare", "connection refused", iterations),
        Case::new("common", "SUCCESS", iterations),
        Case {
            one_job: true,
            ..Case::new("rare, one job", "connection refused", iterations)
        },
        Case {
            one_job: true,
            ..Case::new("common, one job", "SUCCESS", iterations)
        },
        Case {
            status: Some(RunStatus::Failure),
            ..Case::new("rare, status FAILURE", "connection refused", iterations)
        },
        Case {
            status: Some(RunStatus::Failure),
            ..Case::new("common, status FAILURE", "FAILURE", iterations)
        },
        Case {
            window: day,
            ..Case::new("rare, one day", "connection refused", iterations)
        },
        Case {
            window: day,
            ..Case::new("common, one day", "SUCCESS", iterations)
        },
    ];
    for Case {
        what,
        text,
        status,
        one_job,
        window: (since, until),
        samples: n,
    } in cases
    {
        let found = std::cell::Cell::new(0);
        time(n, |i| {
            let filter = RunFilter {
                text: Some(text.to_owned()),
                status,
                job_id: one_job.then(|| picks[i % picks.len()]),
                since,
                until,
                limit: 50,
                ..RunFilter::default()
            };
            let found = &found;
            async move {
                let page = store.list_all_runs(&filter).await.expect("search");
                let ids: Vec<i64> = page.items.iter().map(|r| r.run.id).collect();
                store.search_snippets(&ids, text).await.expect("snippets");
                found.set(found.get().max(ids.len()));
            }
        })
        .await
        .report(kind, &format!("search {what} ({} hits)", found.get()));
    }
    // A text most outputs contain, filtered to runs none of whose outputs contain it: the worst
    // case of reading runs newest first. On SQLite a page reads at most SCAN_BUDGET filtered runs
    // and says where it stopped (`searched_to`); PostgreSQL plans it itself. Fewer samples.
    time((iterations / 10).max(5), |_| async {
        let filter = RunFilter {
            text: Some("SUCCESS".to_owned()),
            status: Some(RunStatus::Failure),
            limit: 50,
            ..RunFilter::default()
        };
        let page = store.list_all_runs(&filter).await.expect("search");
        assert!(page.items.is_empty());
    })
    .await
    .report(
        kind,
        "search common text, status FAILURE (0 hits; SQLite: one page's reading)",
    );
    let output: Vec<u8> = (0..40)
        .flat_map(|i| {
            format!("step {i:02}: copied 1,024 rows from staging to reporting in 12 ms\n").into_bytes()
        })
        .take(2048)
        .collect();
    let with = time(iterations, |i| {
        let (job_id, output) = (picks[i], &output);
        async move { record_sized(store, job_id, slot0 + Duration::minutes(i as i64), output).await }
    })
    .await;
    let with_p99 = with.p99();
    with.report(kind, "record a run with 2 KiB output, search index on");
    // SQLite indexes finished runs' outputs in the background: let it finish before the
    // comparison, so that it does not run during it.
    while store.index_pending_outputs().await.expect("index") > 0 {}
    drop_search_index(store.backend_kind(), url).await;
    let without = time(iterations, |i| {
        let (job_id, output) = (picks[i], &output);
        async move {
            record_sized(
                store,
                job_id,
                slot0 + Duration::days(5) + Duration::minutes(i as i64),
                output,
            )
            .await
        }
    })
    .await;
    let ratio = with_p99 / without.p99();
    without.report(kind, "record a run with 2 KiB output, search index dropped");
    println!("{kind:<9} search index cost on recording: p99 with / without = {ratio:.2}x (target <= 2x)");
}

async fn drop_search_index(kind: BackendKind, url: &str) {
    use sqlx::Connection as _;
    let statements: &[&str] = match kind {
        BackendKind::Sqlite => &[
            "DROP TRIGGER run_output_search_insert",
            "DROP TRIGGER run_output_search_update",
            "DROP TRIGGER run_output_search_delete",
        ],
        BackendKind::Postgres => &["DROP INDEX job_execution_logs_output_trgm"],
    };
    match kind {
        BackendKind::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
            for s in statements {
                sqlx::raw_sql(*s).execute(&mut conn).await.expect("drop");
            }
        }
        BackendKind::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("postgres");
            for s in statements {
                sqlx::raw_sql(*s).execute(&mut conn).await.expect("drop");
            }
        }
    }
}

async fn record_sized(store: &Store, job_id: i64, slot: DateTime<Utc>, output: &[u8]) {
    let start = RunStart {
        job_id,
        trigger: Trigger::Schedule,
        scheduled_for: slot,
        started_at: slot,
        k8s_job_name: None,
        runner: Some("bench".into()),
        requester: None,
        parameters: Default::default(),
    };
    let id = store.record_attempt_start(&start, 1).await.expect("start");
    let finish = RunFinish {
        status: RunStatus::Success,
        exit_code: Some(0),
        output,
        finished_at: slot,
    };
    store
        .record_attempt_finish(id, &finish, FinishEffects::default())
        .await
        .expect("finish");
}

async fn record_one(store: &Store, job_id: i64, slot: DateTime<Utc>) {
    let start = RunStart {
        job_id,
        trigger: Trigger::Schedule,
        scheduled_for: slot,
        started_at: slot,
        k8s_job_name: None,
        runner: Some("bench".into()),
        requester: None,
        parameters: Default::default(),
    };
    let id = store.record_attempt_start(&start, 1).await.expect("start");
    let finish = RunFinish {
        status: RunStatus::Success,
        exit_code: Some(0),
        output: b"ok\n",
        finished_at: slot,
    };
    store
        .record_attempt_finish(id, &finish, FinishEffects::default())
        .await
        .expect("finish");
}

/// Records runs one after the other (the picked jobs in turn, a minute apart from `slot0`) while
/// `go_on` says so; the ms each took.
async fn record_back_to_back(
    store: &Store,
    picks: &[i64],
    slot0: DateTime<Utc>,
    mut go_on: impl FnMut() -> bool,
) -> Vec<f64> {
    let mut samples = Vec::new();
    while go_on() {
        let i = samples.len();
        let started = Instant::now();
        record_one(store, picks[i % picks.len()], slot0 + Duration::minutes(i as i64)).await;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples
}

/// Recording a run while a retention pass deletes every loaded run but each job's newest
/// (`keepLast: 1`), against recording with nothing else going on — both sampled the same way:
/// runs recorded back to back, the idle ones for `idle` just before the pass (long enough to
/// meet what recording meets now and then anyway: the search index's pending list merged, a
/// checkpoint, autovacuum).
async fn bench_prune(store: &Store, picks: &[i64], slot0: DateTime<Utc>, idle: std::time::Duration) {
    let kind = store.backend_kind().as_str();
    let idle_from = Instant::now();
    let samples = record_back_to_back(store, picks, slot0, || idle_from.elapsed() < idle).await;
    println!(
        "{kind:<9} recorded {} runs back to back, idle, in {:.1} s",
        samples.len(),
        idle.as_secs_f64()
    );
    let slot0 = slot0 + Duration::minutes(samples.len() as i64);
    Timings(samples).report(kind, "record runs back to back, idle");
    let policy = jtp_crds::Retention {
        max_age: None,
        keep_last: Some(1),
    };
    let pruner = tokio::spawn({
        let store = store.clone();
        async move {
            let started = Instant::now();
            let report = store
                .prune_runs(&policy, Utc::now(), &PruneOptions::default())
                .await
                .expect("prune");
            (report, started.elapsed())
        }
    });
    let samples = record_back_to_back(store, picks, slot0, || !pruner.is_finished()).await;
    let (report, took) = pruner.await.expect("pruner");
    println!(
        "{kind:<9} retention pass deleted {} runs of {} jobs in {:.1} s",
        report.deleted,
        report.jobs,
        took.as_secs_f64()
    );
    if samples.is_empty() {
        println!("{kind:<9} (the pass ended before a run could be recorded: load more runs)");
    } else {
        Timings(samples).report(kind, "record a run during that pass");
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we do not need.
    let jobs = env_or("JTP_BENCH_JOBS", 10_000);
    let runs = env_or("JTP_BENCH_RUNS", 1_000_000);
    let iterations = env_or("JTP_BENCH_ITERATIONS", 500);
    let backends = std::env::var("JTP_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    println!("jtp-store bench: {jobs} jobs, {runs} runs, {iterations} samples per query");

    if backends.contains("sqlite") {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        let store = Store::connect(&url).await.expect("sqlite");
        bench(&store, &url, jobs, runs, iterations).await;
        store.close().await;
    }
    if backends.contains("postgres") {
        let admin = jtp_store::testing::postgres_server_url();
        let (name, url) = jtp_store::testing::create_database(&admin, "jtp_bench").await;
        let store = Store::connect(&url).await.expect("postgres");
        bench(&store, &url, jobs, runs, iterations).await;
        store.close().await;
        if std::env::var_os("JTP_BENCH_KEEP").is_some() {
            println!("kept database {name}");
            return;
        }
        jtp_store::testing::drop_database(&admin, &name).await;
    }
}
