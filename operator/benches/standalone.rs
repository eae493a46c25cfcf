//! Benchmark of standalone mode: jobs loaded into SQLite and run by the built `jtp standalone` for
//! a while; prints the runner's start-up time, CPU and memory, and p50/p99 of (process start −
//! scheduled time).
//!
//! Run with `cargo bench -p jtp-operator --bench standalone`. `JTP_BENCH_JOBS` (default 10,000)
//! jobs, `JTP_BENCH_SECONDS` (default 120) of running. By default every job is on a short interval
//! (60–300 s); `JTP_BENCH_SHORT=S` keeps S of them on 1–5 minute intervals and makes the rest the
//! mix of issue #19 item 4 — daily, weekly and cron jobs at times spread over the day and week —
//! and `JTP_BENCH_MIX=realistic` is that with S = a tenth of the jobs. Each script prints its own
//! start time, so the skew is measured from inside the started process, not from the runner's
//! bookkeeping. The runner's timing events (`jtp::timing`) say where the time went: how late the
//! runner woke, the database work of a pass, when each process had been spawned, and how long the
//! child then took to reach the script's first command.
//!
//! Start-up time: one more job (`bench-probe`, manual) is given a Run Now before the runner starts;
//! the runner's first pass starts it, so the time from spawning `jtp standalone` to that script's
//! first command is the time until the runner schedules. The runner's own "database ready" and
//! "runner starting" log lines are shown beside it.

use chrono::{DateTime, Utc};
use jtp_crds::{IntervalUnit, RunStatus, ScheduledJobSpec, Trigger, Weekday};
use jtp_store::{JobInput, RunFilter, Store};
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
    (own, children, status_mib(pid, "VmHWM:"))
}

/// A memory line of `/proc/PID/status` (`VmHWM:` peak RSS, `VmRSS:` now), in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
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

/// The runner's start-up log lines (`database ready`, `runner starting`): message → when.
fn startup_lines(log: &std::path::Path) -> HashMap<String, DateTime<Utc>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut lines = HashMap::new();
    for line in text.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(message), Some(at)) = (
            value["fields"]["message"].as_str(),
            value["timestamp"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok()),
        ) else {
            continue;
        };
        if matches!(message, "database ready" | "runner starting") {
            lines.entry(message.to_owned()).or_insert(at.with_timezone(&Utc));
        }
    }
    lines
}

/// What was asked for: how many jobs, how many of them on short intervals, for how long.
struct Size {
    jobs: u64,
    /// Jobs `bench-00000` … `bench-{short − 1}` are the short-interval ones.
    short: u64,
    seconds: u64,
}

impl Size {
    fn from_env() -> Self {
        let jobs = env_or("JTP_BENCH_JOBS", 10_000);
        let realistic = std::env::var("JTP_BENCH_MIX").is_ok_and(|m| m == "realistic");
        let short = env_or("JTP_BENCH_SHORT", if realistic { jobs / 10 } else { jobs }).min(jobs);
        Self {
            jobs,
            short,
            seconds: env_or("JTP_BENCH_SECONDS", 120),
        }
    }

    /// Some jobs are daily/weekly/cron (issue #19 item 4), not every one on a short interval.
    fn mixed(&self) -> bool {
        self.short < self.jobs
    }

    fn describe(&self) -> String {
        if self.mixed() {
            format!(
                "{} jobs ({} on 1–5 min intervals, the rest daily/weekly/cron)",
                self.jobs, self.short
            )
        } else {
            format!("{} jobs", self.jobs)
        }
    }

    /// The spec of job `i`.
    fn spec(&self, i: u64) -> ScheduledJobSpec {
        if !self.mixed() {
            // Intervals from 60 s to 300 s: slots fall on many different seconds, like real short
            // jobs.
            let every = 60 + (i % 241);
            let mut spec = ScheduledJobSpec::interval(every, IntervalUnit::Seconds).script(SCRIPT);
            spec.concurrency_policy = jtp_crds::ConcurrencyPolicy::Allow;
            return spec;
        }
        // The mix keeps every field at its default (concurrencyPolicy Forbid), as users write them.
        if i < self.short {
            return ScheduledJobSpec::interval(1 + i % 5, IntervalUnit::Minutes).script(SCRIPT);
        }
        // The long ones at times spread over the day (a step prime to 1,440 minutes) and week, in
        // a few zones: half daily, 3/10 weekly on one or two days, 1/10 cron on weekdays and
        // 1/10 cron every six hours.
        let j = i - self.short;
        let minute_of_day = (j * 7919 + 13) % 1440;
        let (hour, minute) = (minute_of_day / 60, minute_of_day % 60);
        let at = format!("{hour:02}:{minute:02}");
        let day = |k: u64| Weekday::ALL[usize::try_from(k % 7).unwrap_or(0)];
        let spec = match j % 10 {
            0..=4 => ScheduledJobSpec::daily(&at),
            5..=7 if j.is_multiple_of(2) => ScheduledJobSpec::weekly(&[day(j / 10)], &at),
            5..=7 => ScheduledJobSpec::weekly(&[day(j / 10), day(j / 10 + 3)], &at),
            8 => ScheduledJobSpec::cron(&format!("{minute} {hour} * * 1-5")),
            _ => ScheduledJobSpec::cron(&format!("{minute} {}/6 * * *", hour % 6)),
        };
        let zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Hong_Kong"];
        spec.in_zone(zones[usize::try_from(j / 10 % 4).unwrap_or(0)])
            .script(SCRIPT)
    }

    /// Whether `name` is one of the short-interval jobs.
    fn is_short(&self, name: &str) -> bool {
        name.strip_prefix("bench-")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n < self.short)
    }
}

/// Every job's script: its own start time.
const SCRIPT: &str = "date +%s%N";

/// The runner's counters read once a second while it runs.
struct Sample {
    at: DateTime<Utc>,
    cpu: f64,
    rss_mib: f64,
}

fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

fn main() {
    let size = Size::from_env();
    let Size { jobs, short, seconds } = size;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("jtp.db").display());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(Store::connect(&url)).expect("store");

    // One job at a time through the product's own create_job. Each job's first slot is after the
    // load is expected to end (from the rate so far), so no slot is due before the runner starts;
    // the long jobs are loaded first, the short ones last.
    let loaded = Instant::now();
    let probe = runtime.block_on(async {
        let order = (short..jobs).chain(0..short);
        for (k, i) in order.enumerate() {
            let k = k as f64;
            let left = (jobs as f64 - k).max(0.0);
            let per_job = if k >= 200.0 {
                loaded.elapsed().as_secs_f64() / k
            } else {
                0.002
            };
            let start_at = Utc::now()
                + chrono::Duration::seconds(20)
                + chrono::Duration::milliseconds((left * per_job * 1000.0) as i64);
            let spec = size.spec(i);
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
        let spec = ScheduledJobSpec::manual().script(SCRIPT);
        let input = JobInput {
            name: "bench-probe",
            namespace: "default",
            uid: None,
            spec: &spec,
            next_run: None,
        };
        store.create_job(&input).await.expect("create the probe job")
    });
    let load_seconds = loaded.elapsed().as_secs_f64();
    let db_mib =
        std::fs::metadata(dir.path().join("jtp.db")).map_or(0.0, |m| m.len() as f64) / (1024.0 * 1024.0);
    println!(
        "loaded {} in {load_seconds:.1} s ({:.0} jobs/s, create_job one by one); database {db_mib:.0} MiB",
        size.describe(),
        jobs as f64 / load_seconds
    );

    let log_path = dir.path().join("jtp.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let load_before = load();
    // The probe's Run Now: the runner's first pass starts it.
    runtime
        .block_on(store.request_run_now(probe.id, Utc::now(), "bench", &Default::default()))
        .expect("run now");
    // Its start-up lines at info, the rest as before (a line per run would weigh on the runner).
    let quiet = ["runner", "executor", "contain", "pod", "loader", "folder"]
        .map(|m| format!(",jtp_operator::standalone::{m}=warn"))
        .concat();
    let begun = Utc::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jtp"))
        .args(["standalone", "--no-portal", "--database-url", &url])
        .args(["--jobs-dir", ""])
        .arg("--data-dir")
        .arg(dir.path())
        .env(
            "RUST_LOG",
            std::env::var("JTP_BENCH_LOG")
                .unwrap_or_else(|_| format!("warn,jtp::timing=debug,jtp_operator::standalone=info{quiet}")),
        )
        .env("JTP_LOG_JSON", "true")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start jtp standalone");
    let mut samples = Vec::new();
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_secs(1).min(until - Instant::now()));
        samples.push(Sample {
            at: Utc::now(),
            cpu: usage(child.id()).0,
            rss_mib: status_mib(child.id(), "VmRSS:"),
        });
    }
    let (own_cpu, children_cpu, peak_mib) = usage(child.id());
    let ended = Utc::now();
    let load_after = load();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();

    let timing = read_timing(&log_path);
    let lines = startup_lines(&log_path);
    if let Ok(keep) = std::env::var("JTP_BENCH_KEEP_LOG") {
        let _ = std::fs::copy(&log_path, keep);
    }
    // Every run, newest first, a page at a time; the preview holds the script's whole output.
    let mut runs = Vec::new();
    runtime.block_on(async {
        let mut filter = RunFilter {
            limit: 1000,
            ..Default::default()
        };
        loop {
            let page = store.list_all_runs(&filter).await.expect("runs");
            runs.extend(page.items);
            match page.older {
                Some(cursor) => filter.before = Some(cursor),
                None => break,
            }
        }
    });
    let started_at = |preview: &str| {
        preview
            .trim()
            .parse::<i64>()
            .ok()
            .map(DateTime::from_timestamp_nanos)
    };
    let ready = runs
        .iter()
        .find(|r| r.job_name == "bench-probe")
        .and_then(|r| started_at(&r.run.preview));
    let startup_ms = ready.map_or(f64::NAN, |at| ms_between(begun, at));

    let mut skews = Vec::new();
    let mut short_skews = Vec::new();
    let mut child_begin = Vec::new();
    let mut by_slot: BTreeMap<DateTime<Utc>, Vec<f64>> = BTreeMap::new();
    let mut statuses = BTreeMap::new();
    let mut before_ready = 0usize;
    for item in &runs {
        let run = &item.run;
        if run.status == RunStatus::Running || run.trigger != Trigger::Schedule {
            continue;
        }
        *statuses.entry(run.status.as_str()).or_insert(0usize) += 1;
        let Some(started) = started_at(&run.preview) else {
            continue;
        };
        // A slot due before the runner could schedule (the load ran over its estimate) says
        // nothing about the runner's timing; counted apart.
        if ready.is_none_or(|ready| run.scheduled_for < ready) {
            before_ready += 1;
            continue;
        }
        let skew = ms_between(run.scheduled_for, started);
        skews.push(skew);
        if size.is_short(&item.job_name) {
            short_skews.push(skew);
        }
        by_slot.entry(run.scheduled_for).or_default().push(skew);
        if let Some((spawned, _)) = timing.spawned.get(&run.id) {
            child_begin.push(skew - spawned);
        }
    }
    skews.sort_by(f64::total_cmp);
    short_skews.sort_by(f64::total_cmp);
    let wall = ms_between(begun, ended) / 1000.0;
    println!(
        "runner ran {wall:.0} s (load average before {load_before}, after {load_after}); finished scheduled runs by status: {statuses:?}"
    );
    let since = |at: Option<&DateTime<Utc>>| {
        at.map_or("—".to_owned(), |at| format!("{:.0} ms", ms_between(begun, *at)))
    };
    println!(
        "start-up, from spawning `jtp standalone`: the probe's Run Now script started after {startup_ms:.0} ms \
         (log lines: database ready {}, runner starting {})",
        since(lines.get("database ready")),
        since(lines.get("runner starting"))
    );
    if before_ready > 0 {
        println!("{before_ready} scheduled runs were due before the runner was ready: left out of the skew");
    }
    let line = |what: &str, sample: &[f64]| {
        println!(
            "{what} over {} runs: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            sample.len(),
            percentile(sample, 50.0),
            percentile(sample, 99.0),
            sample.last().copied().unwrap_or(f64::NAN)
        )
    };
    line("process start - scheduled time", &skews);
    if size.mixed() {
        line("  of the 1–5 min interval jobs", &short_skews);
    }
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
    // CPU and memory: over the whole window, and from 10 s after start-up (steady running).
    let steady: Vec<&Sample> = samples
        .iter()
        .filter(|s| ready.is_some_and(|ready| s.at >= ready + chrono::Duration::seconds(10)))
        .collect();
    let steady_cpu = match (steady.first(), steady.last()) {
        (Some(first), Some(last)) if last.at > first.at => {
            100.0 * (last.cpu - first.cpu) / (ms_between(first.at, last.at) / 1000.0)
        }
        _ => f64::NAN,
    };
    let rss_at_ready = ready
        .and_then(|ready| samples.iter().find(|s| s.at >= ready))
        .map_or(f64::NAN, |s| s.rss_mib);
    let rss_end = samples.last().map_or(f64::NAN, |s| s.rss_mib);
    println!(
        "runner CPU {own_cpu:.1} s ({:.1}% of one core; {steady_cpu:.1}% from 10 s after start-up on), scripts' CPU {children_cpu:.1} s; \
         runner RSS {rss_at_ready:.1} MiB once started, {rss_end:.1} MiB at the end, peak {peak_mib:.1} MiB",
        100.0 * own_cpu / wall
    );
    // The summary lines of scripts/bench: name|figure|peer or limit|ratio|target|ok|load.
    let loads = format!("{load_before} → {load_after}");
    let what = size.describe();
    println!(
        "BENCH|standalone: loading {what} (create_job one by one)|{load_seconds:.1} s ({:.0} jobs/s)|—|—|—|—|{loads}",
        jobs as f64 / load_seconds
    );
    println!(
        "BENCH|standalone start-up at {what}: spawn → the first run's script|{startup_ms:.0} ms|—|—|—|—|{loads}"
    );
    println!(
        "BENCH|standalone runner at {what}, {wall:.0} s|peak RSS {peak_mib:.1} MiB; CPU {steady_cpu:.1}% of a core after start-up|—|—|—|—|{loads}"
    );
    let verdict = |sample: &[f64]| {
        if !sample.is_empty() && percentile(sample, 99.0) <= 10.0 {
            "✔"
        } else {
            "✘"
        }
    };
    let skew_line = |label: String, sample: &[f64]| {
        println!(
            "BENCH|{label} ({} runs)|p50 {:.1} ms / p99 {:.1} ms|—|—|p99 ≤ 10 ms|{}|{loads}",
            sample.len(),
            percentile(sample, 50.0),
            percentile(sample, 99.0),
            verdict(sample)
        )
    };
    if size.mixed() {
        skew_line(
            format!("standalone start skew of the {short} 1–5 min jobs, {what}, {wall:.0} s"),
            &short_skews,
        );
        skew_line(
            format!("standalone start skew of every run, {jobs} jobs, {wall:.0} s"),
            &skews,
        );
    } else {
        skew_line(
            format!("standalone start skew, {jobs} jobs for {wall:.0} s"),
            &skews,
        );
    }
}
