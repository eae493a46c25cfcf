//! `jtp`: parse the command line, set up logging, run.

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "jtp",
    version,
    about = "Job Trigger Portal: scheduled scripts with every run recorded"
)]
struct Cli {
    /// Log JSON lines instead of text (every command; `RUST_LOG` filters).
    #[arg(long, global = true, env = "JTP_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the next runs of a ScheduledJob manifest, one per line (UTC first, then the job's zone).
    Preview {
        /// A YAML file holding one or more ScheduledJobs.
        file: PathBuf,
        /// Show runs strictly after this RFC3339 instant (default: now).
        #[arg(long)]
        after: Option<DateTime<Utc>>,
        /// How many runs to show.
        #[arg(long, default_value_t = 5)]
        count: usize,
    },
    /// Read Kubernetes CronJobs (files, or stdin when none or `-`; `kubectl get cronjob -o yaml`
    /// output included) and print equivalent ScheduledJobs; stderr says, per CronJob, what could
    /// not be carried over and why. Fails when a CronJob could not be converted.
    Convert {
        /// YAML files holding CronJobs (or a List of them).
        files: Vec<PathBuf>,
    },
    /// Print the ScheduledJob CustomResourceDefinition generated from the types.
    Crd,
    /// Run the Kubernetes operator (controller for ScheduledJobs).
    Operator(jtp_operator::controller::OperatorArgs),
    /// Run without Kubernetes: scheduler, local executor and portal on one machine (SQLite by default).
    Standalone(jtp_operator::standalone::StandaloneArgs),
    /// Serve the portal in a cluster (Kubernetes tokens, ScheduledJob resources, the operator's database).
    Portal(jtp_operator::portal::PortalArgs),
    /// Print what is queued and the newest failures, with counts, from the database runs are recorded in.
    Status(jtp_operator::status::StatusArgs),
    /// Apply the database migrations and exit (they also run at every start).
    Migrate {
        /// Database URL (`postgres://…` or `sqlite://…`).
        #[arg(long, env = "JTP_DATABASE_URL")]
        database_url: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    jtp_operator::process::init_logging(cli.log_json);
    match cli.command {
        Command::Preview { file, after, count } => {
            let yaml =
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let text = jtp_operator::preview::preview(&yaml, after.unwrap_or_else(Utc::now), count)?;
            print!("{text}");
        }
        Command::Convert { files } => convert(&files)?,
        Command::Crd => print!("{}", jtp_crds::crd_yaml()),
        Command::Operator(args) => {
            jtp_operator::process::raise_open_file_limit();
            tokio::runtime::Runtime::new()?.block_on(jtp_operator::controller::run(args))?
        }
        Command::Standalone(args) => {
            tokio::runtime::Runtime::new()?.block_on(jtp_operator::standalone::run(args))?;
        }
        Command::Portal(args) => {
            jtp_operator::process::raise_open_file_limit();
            tokio::runtime::Runtime::new()?.block_on(jtp_operator::portal::run(args))?;
        }
        Command::Status(args) => {
            tokio::runtime::Runtime::new()?.block_on(jtp_operator::status::run(args))?;
        }
        Command::Migrate { database_url } => {
            tokio::runtime::Runtime::new()?.block_on(async {
                let options = jtp_store::StoreOptions {
                    migrate: false,
                    ..Default::default()
                };
                let store = jtp_store::Store::connect_with(&database_url, options).await?;
                store.migrate().await?;
                println!("migrations applied to {}", store.url());
                anyhow::Ok(())
            })?;
        }
    }
    Ok(())
}

/// `jtp convert`: ScheduledJobs on stdout, one note per line on stderr.
fn convert(files: &[PathBuf]) -> anyhow::Result<()> {
    use std::io::Read as _;
    let mut inputs = Vec::new();
    if files.is_empty() || files.iter().any(|f| f.as_os_str() == "-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        inputs.push(("stdin".to_owned(), text));
    }
    for file in files.iter().filter(|f| f.as_os_str() != "-") {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        inputs.push((file.display().to_string(), text));
    }
    let mut jobs = Vec::new();
    let mut failed = 0;
    for (origin, text) in &inputs {
        for converted in jtp_operator::convert::convert(text).with_context(|| format!("reading {origin}"))? {
            for note in &converted.notes {
                eprintln!("{}: {note}", converted.source);
            }
            match converted.job {
                Some(job) => jobs.push(job),
                None if converted.skipped => {}
                None => failed += 1,
            }
        }
    }
    print!(
        "{}",
        jtp_operator::convert::to_yaml(&jobs.iter().collect::<Vec<_>>())?
    );
    if failed > 0 {
        anyhow::bail!("{failed} object(s) not converted (see above)");
    }
    Ok(())
}
