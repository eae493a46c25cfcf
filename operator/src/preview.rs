//! `jtp preview`: the next runs of a manifest, like `systemd-analyze calendar`.

use chrono::{DateTime, SecondsFormat, Utc};
use jtp_crds::admission::validate_object;
use jtp_crds::manifest::{Manifest, parse_documents};
use jtp_crds::{DstEffect, Slot};
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
        let mut cursor = after;
        let mut slots = Vec::new();
        for _ in 0..count {
            let Some(slot) = schedule.next_slot(cursor) else {
                break;
            };
            slots.push(slot);
            cursor = slot.at;
        }
        // Wall times the DST policy leaves out, placed among the runs by the instant they would have had.
        let skips = slots
            .last()
            .map_or_else(Vec::new, |last| schedule.dst_skips(after, last.at));
        let mut skips = skips.into_iter().peekable();
        for slot in slots {
            while let Some(skip) = skips.next_if(|skip| skip.at <= slot.at) {
                let _ = writeln!(out, "{}", skip_line(&skip));
            }
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

/// A run the DST policy leaves out, as a comment line.
fn skip_line(slot: &Slot) -> String {
    let when = slot.wall.format("%Y-%m-%d %H:%M");
    match slot.dst {
        DstEffect::FirstOfRepeated => {
            format!("# {when} (first pass of a repeated time) not run: daylightSaving.repeatedTime is Second")
        }
        DstEffect::SecondOfRepeated => {
            format!("# {when} (second pass of a repeated time) not run: daylightSaving.repeatedTime is First")
        }
        DstEffect::EndOfGap | DstEffect::None => format!(
            "# {when} does not exist (the clocks skip it) and is not run: daylightSaving.skippedTime is Skip"
        ),
    }
}
