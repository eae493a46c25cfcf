//! `jtp status`: the original system's troubleshooting views from the command line — how many jobs
//! and runs in flight, what is queued (soonest first) and the newest failures — read from the same
//! database the runner or the operator records into.

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use jtp_store::{Job, RecentFailure, Stats, Store, StoreOptions};
use std::fmt::Write as _;
use std::path::PathBuf;

/// `jtp status` flags.
#[derive(Args, Clone, Debug)]
pub struct StatusArgs {
    /// The standalone data folder whose `jtp.db` to read (ignored with `--database-url`).
    #[arg(long, env = "JTP_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Database URL (`sqlite://…` or `postgres://…`), e.g. the operator's `--database-url`.
    #[arg(long, env = "JTP_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// How many queued jobs and failures to list.
    #[arg(long, default_value_t = 10)]
    pub limit: i64,
}

/// Reads the three views and prints them.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let url = match args.database_url {
        Some(url) => url,
        None => {
            let file = crate::standalone::database_file(&args.data_dir);
            anyhow::ensure!(
                file.is_file(),
                "no database at {}: pass the data folder of `jtp standalone` with --data-dir, or --database-url",
                file.display()
            );
            crate::standalone::sqlite_url(&file)
        }
    };
    // Reading only: a database that is not migrated yet is an error, not something to change.
    let options = StoreOptions {
        migrate: false,
        ..Default::default()
    };
    let store = Store::connect_with(&url, options).await?;
    let limit = args.limit.clamp(1, 1000);
    let stats = store.stats().await?;
    let queued = store.queued_jobs(limit).await?;
    let failures = store.recent_failures(limit).await?;
    print!("{}", render(&stats, &queued, &failures));
    Ok(())
}

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The text `jtp status` prints: one summary line, then the queue and the failures as columns.
pub fn render(stats: &Stats, queued: &[Job], failures: &[RecentFailure]) -> String {
    let mut out = format!(
        "{} jobs, {} active, {} queued, {} runs in flight\n",
        stats.jobs, stats.active_jobs, stats.queued_jobs, stats.running_runs
    );
    out.push_str("\nQueued (soonest first):\n");
    if queued.is_empty() {
        out.push_str("  nothing\n");
    }
    for job in queued {
        let next = job.next_run.map_or_else(|| "-".to_owned(), instant);
        let run_now = if job.run_now_requested_at.is_some() {
            "  (Run Now pending)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {next}  {}/{}  {}{run_now}",
            job.namespace, job.name, job.schedule_type
        );
    }
    out.push_str("\nRecent failures (newest first):\n");
    if failures.is_empty() {
        out.push_str("  none\n");
    }
    for failure in failures {
        let run = &failure.run;
        let exit = run.exit_code.map(|c| format!(" exit {c}")).unwrap_or_default();
        let first_line = run.preview.lines().next().unwrap_or("").trim();
        let _ = writeln!(
            out,
            "  run {}  {}  {}/{}  {}{exit}  {first_line}",
            run.id,
            instant(run.run_time),
            failure.job_namespace,
            failure.job_name,
            run.status.as_str(),
        );
    }
    out
}
