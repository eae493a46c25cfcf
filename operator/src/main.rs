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
    match cli.command {
        Command::Preview { file, after, count } => {
            let yaml =
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let text = jtp_operator::preview::preview(&yaml, after.unwrap_or_else(Utc::now), count)?;
            print!("{text}");
        }
        Command::Crd => print!("{}", jtp_crds::crd_yaml()),
        Command::Operator(args) => tokio::runtime::Runtime::new()?.block_on(jtp_operator::controller::run(args))?,
    }
    Ok(())
}
