//! `jtp preview`: the next runs of a manifest, like `systemd-analyze calendar`.

use chrono::{DateTime, SecondsFormat, Utc};
use jtp_crds::manifest::{Manifest, parse_documents};
use jtp_crds::{JobId, validate};
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
/// the instant in RFC3339 UTC, then the same instant in the job's zone.
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
        let id = JobId {
            namespace,
            name: &name,
        };
        let schedule = validate(id, &job.spec).map_err(|problems| PreviewError::Invalid {
            name: name.clone(),
            problems,
        })?;
        let zone = schedule.time_zone();
        let mut cursor = after;
        for _ in 0..count {
            let Some(next) = schedule.next_after(cursor) else {
                break;
            };
            let local = next.with_timezone(&zone);
            let _ = writeln!(
                out,
                "{}  {} {}",
                // Milliseconds only when there are some (an interval's phase).
                next.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                local.format("%Y-%m-%d %H:%M:%S%.f %:z"),
                zone.name()
            );
            cursor = next;
        }
    }
    Ok(out)
}
