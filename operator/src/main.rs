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
    /// Print the ScheduledJob CustomResourceDefinition generated from the types.
    Crd,
    /// Run the Kubernetes operator (controller for ScheduledJobs).
    Operator(jtp_operator::controller::OperatorArgs),
    /// Run without Kubernetes: scheduler, local executor and portal on one machine (SQLite by default).
    Standalone(jtp_operator::standalone::StandaloneArgs),
    /// Serve the portal in a cluster (Kubernetes tokens, ScheduledJob resources, the operator's database).
    Portal(jtp_operator::portal::PortalArgs),
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
        Command::Crd => print!("{}", jtp_crds::crd_yaml()),
        Command::Operator(args) => {
            tokio::runtime::Runtime::new()?.block_on(jtp_operator::controller::run(args))?
        }
        Command::Standalone(args) => {
            tokio::runtime::Runtime::new()?.block_on(jtp_operator::standalone::run(args))?;
        }
        Command::Portal(args) => {
            tokio::runtime::Runtime::new()?.block_on(jtp_operator::portal::run(args))?;
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
