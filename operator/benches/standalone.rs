//! Benchmark of standalone mode: 10,000 jobs on short intervals run by the built `jtp standalone`
//! for a while; prints p50/p99 of (process start − scheduled time) and the runner's CPU and memory.
//!
//! Run with `cargo bench -p jtp-operator --bench standalone` (set `JTP_BENCH_JOBS`,
//! `JTP_BENCH_SECONDS` to change the size). Each script prints its own start time, so the figure is
//! measured from inside the started process, not from the runner's bookkeeping. The runner's
//! timing events (`jtp::timing`) say where the time went: how late the runner woke, the database
//! work of a pass, when each process had been spawned, and how long the child then took to reach
//! the script's first command.

use chrono::{DateTime, Utc};
use jtp_crds::{IntervalUnit, RunStatus, ScheduledJobSpec};
use jtp_store::{JobInput, Store};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// utime+stime of the process itself and of its reaped children, in seconds; peak RSS in MiB.
fn usage(pid: u32) -> (f64, f64, f64) {
    let ticks = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the ')' field 0 is the state; utime is field 11, stime 12, cutime 13, cstime 14.
    let own = (field(11) + field(12)) / ticks;
    let children = (field(13) + field(14)) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    (own, children, hwm_kib / 1024.0)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One line: p50/p99/max of a sample, in ms.
fn summary(what: &str, mut sample: Vec<f64>) -> String {
    sample.sort_by(f64::total_cmp);
    format!(
        "{what}: p50 {:.1}, p99 {:.1}, max {:.1} ms (n={})",
        percentile(&sample, 50.0),
        percentile(&sample, 99.0),
        sample.last().copied().unwrap_or(f64::NAN),
        sample.len()
    )
}

/// The machine's own ceiling, without a runner: `n` times `/bin/sh -c 'date +%s%N'` started back
/// to back from one thread, each in its own process group with its output on a pipe (as the
/// executor starts them); ms from the first spawn to each script's first command.
fn bare_starts(n: usize) -> Vec<f64> {
    let first = Utc::now();
    let mut children = Vec::new();
    for _ in 0..n {
        let (reader, writer) = std::io::pipe().expect("pipe");
        let child = Command::new("/bin/sh")
            .args(["-c", "date +%s%N"])
            .stdin(Stdio::null())
            .stdout(writer.try_clone().expect("pipe"))
            .stderr(writer)
            .process_group(0)
            .spawn()
            .expect("start /bin/sh");
        children.push((reader, child));
    }
    children
        .into_iter()
        .filter_map(|(mut reader, mut child)| {
            let mut out = String::new();
            reader.read_to_string(&mut out).ok()?;
            child.wait().ok()?;
            let started = DateTime::from_timestamp_nanos(out.trim().parse().ok()?);
            Some((started - first).num_microseconds()? as f64 / 1000.0)
        })
        .collect()
}

/// The runner's `jtp::timing` events (JSON log lines), by kind.
struct Timing {
    /// Per pass that claimed runs: field name → value.
    passes: Vec<HashMap<String, f64>>,
    /// run id → (ms from the slot to the end of the spawn call, ms the spawn call took).
    spawned: HashMap<i64, (f64, f64)>,
}

fn read_timing(log: &std::path::Path) -> Timing {
    let mut timing = Timing {
        passes: Vec::new(),
        spawned: HashMap::new(),
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    for line in text.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if value["target"] != "jtp::timing" {
            continue;
        }
        let fields = &value["fields"];
        let number = |name: &str| fields[name].as_f64().unwrap_or(f64::NAN);
        match fields["event"].as_str() {
            Some("claimed") => {
                let names = [
                    "runs",
                    "wake_late_ms",
                    "query_ms",
                    "decide_ms",
                    "lock_wait_ms",
                    "claim_ms",
                    "ready_ms",
                ];
                timing
                    .passes
                    .push(names.iter().map(|n| ((*n).to_owned(), number(n))).collect());
            }
            Some("spawned") => {
                if let Some(run_id) = fields["run_id"].as_i64() {
                    timing
                        .spawned
                        .insert(run_id, (number("late_ms"), number("spawn_ms")));
                }
            }
            _ => {}
        }
    }
    timing
}

fn main() {
    let jobs = env_or("JTP_BENCH_JOBS", 10_000);
    let seconds = env_or("JTP_BENCH_SECONDS", 120);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("jtp.db").display());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(Store::connect(&url)).expect("store");

    // Intervals from 60 s to 300 s: slots fall on many different seconds, like real short jobs.
    let loaded = Instant::now();
    let start_at = Utc::now() + chrono::Duration::seconds(20);
    runtime.block_on(async {
        for i in 0..jobs {
            let every = 60 + (i % 241);
            let mut spec = ScheduledJobSpec::interval(every, IntervalUnit::Seconds).script("date +%s%N");
            spec.concurrency_policy = jtp_crds::ConcurrencyPolicy::Allow;
            let name = format!("bench-{i:05}");
            let id = jtp_crds::JobId {
                namespace: "default",
                name: &name,
            };
            let schedule = jtp_crds::validate(id, &spec).expect("valid");
            let input = JobInput {
                name: &name,
                namespace: "default",
                uid: None,
                spec: &spec,
                next_run: schedule.next_after(start_at),
            };
            store.create_job(&input).await.expect("create job");
        }
    });
    println!("loaded {jobs} jobs in {:.1} s", loaded.elapsed().as_secs_f64());

    let log_path = dir.path().join("jtp.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let load_before = load();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jtp"))
        .args(["standalone", "--no-portal", "--database-url", &url])
        .arg("--jobs-dir")
        .arg(dir.path().join("no-manifests"))
        .arg("--data-dir")
        .arg(dir.path())
        .env(
            "RUST_LOG",
            std::env::var("JTP_BENCH_LOG").unwrap_or_else(|_| "warn,jtp::timing=debug".into()),
        )
        .env("JTP_LOG_JSON", "true")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start jtp standalone");
    let begun = Utc::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let (own_cpu, children_cpu, peak_mib) = usage(child.id());
    let ended = Utc::now();
    let load_after = load();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();

    let timing = read_timing(&log_path);
    if let Ok(keep) = std::env::var("JTP_BENCH_KEEP_LOG") {
        let _ = std::fs::copy(&log_path, keep);
    }
    let mut skews = Vec::new();
    let mut child_begin = Vec::new();
    let mut by_slot: BTreeMap<DateTime<Utc>, Vec<f64>> = BTreeMap::new();
    let mut statuses = std::collections::BTreeMap::new();
    runtime.block_on(async {
        let page = store
            .list_jobs(&jtp_store::JobFilter {
                limit: i64::try_from(jobs).unwrap_or(i64::MAX),
                ..Default::default()
            })
            .await
            .expect("jobs");
        for job in page.items {
            let runs = store.list_runs(job.id, 1000, 0).await.expect("runs").items;
            for run in runs.into_iter().filter(|r| r.status != RunStatus::Running) {
                *statuses.entry(run.status.as_str()).or_insert(0usize) += 1;
                let output = store.get_run(run.id).await.expect("run").log_output;
                let Some(nanos) = output.trim().parse::<i64>().ok() else {
                    continue;
                };
                let started = DateTime::from_timestamp_nanos(nanos);
                let skew = (started - run.scheduled_for)
                    .num_microseconds()
                    .unwrap_or(i64::MAX) as f64
                    / 1000.0;
                skews.push(skew);
                by_slot.entry(run.scheduled_for).or_default().push(skew);
                if let Some((spawned, _)) = timing.spawned.get(&run.id) {
                    child_begin.push(skew - spawned);
                }
            }
        }
    });
    skews.sort_by(f64::total_cmp);
    let wall = (ended - begun).num_milliseconds() as f64 / 1000.0;
    println!(
        "runner ran {wall:.0} s (load average before {load_before}, after {load_after}); finished runs by status: {statuses:?}"
    );
    println!(
        "process start - scheduled time over {} runs: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        skews.len(),
        percentile(&skews, 50.0),
        percentile(&skews, 99.0),
        skews.last().copied().unwrap_or(f64::NAN)
    );
    let pass = |name: &str| -> Vec<f64> { timing.passes.iter().map(|p| p[name]).collect() };
    println!(
        "where the time went (runner's jtp::timing events, {} passes that started runs):",
        timing.passes.len()
    );
    println!("  {}", summary("runs per pass", pass("runs")));
    println!(
        "  {}",
        summary("runner woke after the pass's earliest slot", pass("wake_late_ms"))
    );
    println!("  {}", summary("due-jobs query", pass("query_ms")));
    println!(
        "  {}",
        summary("decide (validate, plan, concurrency queries)", pass("decide_ms"))
    );
    println!(
        "  {}",
        summary("waiting for the write turn", pass("lock_wait_ms"))
    );
    println!("  {}", summary("claim transaction", pass("claim_ms")));
    if timing.passes.iter().any(|p| !p["ready_ms"].is_nan()) {
        println!(
            "  {}",
            summary("claims ready before the slot (negative: late)", pass("ready_ms"))
        );
    }
    let spawned: Vec<(f64, f64)> = timing.spawned.values().copied().collect();
    println!(
        "  {}",
        summary(
            "spawn call returned, after the slot (the child exists)",
            spawned.iter().map(|s| s.0).collect()
        )
    );
    println!(
        "  {}",
        summary("spawn call itself", spawned.iter().map(|s| s.1).collect())
    );
    println!(
        "  {}",
        summary("from the spawn to the script's first command", child_begin)
    );
    // The p99 follows the window's largest bursts: list them, so windows can be compared.
    let mut bursts: Vec<(usize, f64)> = by_slot
        .values()
        .map(|skews| (skews.len(), skews.iter().copied().fold(f64::NAN, f64::max)))
        .collect();
    bursts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.total_cmp(&b.1)));
    let listed: Vec<String> = bursts
        .iter()
        .take(8)
        .map(|(runs, last)| format!("{runs} → {last:.0} ms"))
        .collect();
    println!(
        "largest bursts (runs due at one instant → the last script's start after the slot): {}",
        listed.join(", ")
    );
    // The largest burst against the machine's ceiling for the same number of processes, measured
    // right after the runner stopped, under the same load.
    if let Some((slot, burst)) = by_slot.iter().max_by_key(|(_, skews)| skews.len()) {
        let last = burst.iter().copied().fold(f64::NAN, f64::max);
        println!(
            "largest burst: {} runs due at {slot}; the last script started {last:.0} ms after the slot ({:.0} starts/s)",
            burst.len(),
            burst.len() as f64 / (last / 1000.0)
        );
        let bare = bare_starts(burst.len());
        let bare_last = bare.iter().copied().fold(f64::NAN, f64::max);
        println!(
            "  the same number started back to back without a runner (load average {}): {}; {:.0} starts/s",
            load(),
            summary("script's first command after the first spawn", bare.clone()),
            bare.len() as f64 / (bare_last / 1000.0)
        );
    }
    println!(
        "runner CPU {own_cpu:.1} s ({:.1}% of one core), scripts' CPU {children_cpu:.1} s, runner peak RSS {peak_mib:.1} MiB",
        100.0 * own_cpu / wall
    );
    // The summary line of scripts/bench: name|figure|peer or limit|ratio|target|ok|load.
    let p99 = percentile(&skews, 99.0);
    println!(
        "BENCH|standalone start skew, {jobs} jobs for {wall:.0} s ({} runs)|p50 {:.1} ms / p99 {p99:.1} ms|—|—|p99 ≤ 10 ms|{}|{load_before} → {load_after}",
        skews.len(),
        percentile(&skews, 50.0),
        if p99 <= 10.0 && !skews.is_empty() {
            "✔"
        } else {
            "✘"
        }
    );
}
