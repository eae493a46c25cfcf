//! `jtp preview`: the next runs of a manifest, like `systemd-analyze calendar`.

use chrono::{DateTime, SecondsFormat, Utc};
use jtp_crds::admission::validate_object;
use jtp_crds::manifest::{Manifest, parse_documents};
use jtp_crds::preview::{PreviewEntry, skipped_note, upcoming};
use std::fmt::Write as _;

/// Why a preview could not be made; the text is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("{0}")]
    Manifest(String),
    #[error("{name}: {problems}")]
    Invalid {
        name: String,
        problems: jtp_crds::InvalidSpec,
    },
}

/// Renders the next `count` runs of every ScheduledJob in `yaml` after `after`, one per line:
/// the instant in RFC3339 UTC, then the same instant in the job's zone, then what a DST change did
/// to it, if anything (`# first pass of the repeated 01:30`). A wall time the job's DST policy
/// leaves out gets a line of its own, starting with `#`, where its run would have been.
pub fn preview(yaml: &str, after: DateTime<Utc>, count: usize) -> Result<String, PreviewError> {
    let docs = parse_documents(yaml).map_err(|e| PreviewError::Manifest(e.to_string()))?;
    let jobs: Vec<_> = docs
        .into_iter()
        .filter_map(|doc| match doc {
            Manifest::ScheduledJob(job) => Some(job),
            _ => None,
        })
        .collect();
    if jobs.is_empty() {
        return Err(PreviewError::Manifest("no ScheduledJob in the manifest".into()));
    }
    let mut out = String::new();
    for job in jobs {
        let name = job.metadata.name.clone().unwrap_or_default();
        // An interval's phase depends on the namespace: without one, the job is previewed as
        // standalone mode (and `kubectl apply` in the default namespace) would place it.
        let namespace = job.metadata.namespace.as_deref().unwrap_or("default");
        let schedule =
            validate_object(namespace, &name, &job.spec).map_err(|problems| PreviewError::Invalid {
                name: name.clone(),
                problems,
            })?;
        let zone = schedule.time_zone();
        // The same entries the portal's job page and form show (`jtp_crds::preview`).
        for entry in upcoming(&schedule, after, count) {
            let slot = match entry {
                PreviewEntry::Skipped(skip) => {
                    let _ = writeln!(out, "# {}", skipped_note(&skip));
                    continue;
                }
                PreviewEntry::Run(slot) => slot,
            };
            let local = slot.at.with_timezone(&zone);
            let _ = writeln!(
                out,
                "{}  {} {}{}",
                // Milliseconds only when there are some (an interval's phase).
                slot.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                local.format("%Y-%m-%d %H:%M:%S%.f %:z"),
                zone.name(),
                slot.dst_note()
                    .map_or_else(String::new, |note| format!("  # {note}"))
            );
        }
    }
    Ok(out)
}
