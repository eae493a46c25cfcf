//! Keeps `scheduled_jobs` in step with the jobs folder.
//!
//! - A new manifest creates its job; its next run is computed from now. A job defined again
//!   with the namespace/name of a deleted one gets that row back, with its history.
//! - When a job's document changes, the job is updated. If the schedule, time zone or suspend
//!   changed, the next run is computed again from now (nothing fires retroactively); otherwise
//!   it is kept.
//! - A portal edit or delete of a file's job lasts until that job's own document changes: the
//!   row remembers what the file last said of it (`source_spec`), and a file that still says
//!   the same is left alone, whatever happens to the other files.
//! - A job whose file disappeared, or no longer defines it, is deleted (soft: its runs stay).
//! - A document that cannot be read or holds an invalid job is reported with its file; the
//!   jobs of that file that were not read are left as they were, so a typo never deletes a job.
//!   A folder that cannot be read at all is not synced (see `super::sync_folder`).
//!
//! Jobs created in the portal are not touched unless a file defines the same namespace/name, in
//! which case the file takes the job over.

use super::folder::Scan;
use chrono::{DateTime, Utc};
use jtp_crds::policy::{Edit, Timing, after_edit, next_run_after_edit};
use jtp_crds::{JobId, validate};
use jtp_store::{JobInput, Store};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What one sync did, for logs and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub created: Vec<String>,
    /// Jobs that came back to their deleted row (and its history).
    pub restored: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
    /// `file: problem` lines.
    pub problems: Vec<String>,
    /// `namespace/name: fields` of jobs created or changed by this sync that set fields only a
    /// Kubernetes pod uses; reported once per change of the job's document.
    pub ignored: Vec<String>,
}

/// Applies a scan of the folder to the store.
pub async fn sync(
    store: &Store,
    dir: &Path,
    scan: &Scan,
    now: DateTime<Utc>,
) -> jtp_store::Result<SyncReport> {
    let mut report = SyncReport::default();
    let mut broken_files: BTreeSet<PathBuf> = BTreeSet::new();
    for (path, why) in &scan.broken {
        report.problems.push(format!("{}: {why}", path.display()));
        broken_files.insert(path.clone());
    }
    let mut defined = BTreeSet::new();
    for ((namespace, name), (path, job)) in &scan.jobs {
        let key = format!("{namespace}/{name}");
        defined.insert((namespace.clone(), name.clone()));
        // The scan validated every job it kept.
        let Ok(schedule) = validate(JobId { namespace, name }, &job.spec) else {
            continue;
        };
        let source = source_of(dir, path);
        let said = serde_json::to_string(&job.spec).map_err(|e| jtp_store::Error::Invalid {
            message: format!("{key}: {e}"),
        })?;
        let row = store.latest_job_of_name(namespace, name).await?;
        let unchanged = row.as_ref().is_some_and(|row| {
            row.source.as_deref() == Some(source.as_str())
                && row.source_spec.as_deref() == Some(said.as_str())
        });
        if unchanged {
            // Whatever the portal did to this job since (an edit, a delete) stands.
            continue;
        }
        let ignored = jtp_crds::pod::ignored_in_standalone(&job.spec);
        if !ignored.is_empty() {
            report.ignored.push(format!("{key}: {}", ignored.join(", ")));
        }
        let mut input = JobInput {
            name,
            namespace,
            uid: None,
            spec: &job.spec,
            next_run: next_run_after_edit(Edit::FromNow, None, &schedule, &job.spec, now),
        };
        match row {
            Some(row) if row.deleted_at.is_none() => {
                let existing = store.get_job(row.id).await?;
                let old = Timing::of_spec(JobId { namespace, name }, &existing.spec);
                let edit = after_edit(old.as_ref(), &Timing::of(&schedule, &job.spec));
                input.next_run = next_run_after_edit(edit, existing.next_run, &schedule, &job.spec, now);
                store.update_job(row.id, &input).await?;
                store.set_job_source(row.id, Some(&source), Some(&said)).await?;
                report.updated.push(key);
            }
            Some(row) => {
                store.undelete_job(row.id).await?;
                store.update_job(row.id, &input).await?;
                store.set_job_source(row.id, Some(&source), Some(&said)).await?;
                report.restored.push(key);
            }
            None => {
                let created = store.create_job(&input).await?;
                store
                    .set_job_source(created.id, Some(&source), Some(&said))
                    .await?;
                report.created.push(key);
            }
        }
    }
    let broken_sources: BTreeSet<String> = broken_files.iter().map(|p| source_of(dir, p)).collect();
    for job in store.jobs_with_source().await? {
        let gone = !defined.contains(&(job.namespace.clone(), job.name.clone()));
        let file_broken = job.source.as_ref().is_some_and(|s| broken_sources.contains(s));
        if gone && !file_broken {
            // Forget what the file said, so the job comes back when a file defines it again.
            store.set_job_source(job.id, job.source.as_deref(), None).await?;
            store.delete_job(job.id).await?;
            report.deleted.push(format!("{}/{}", job.namespace, job.name));
        }
    }
    Ok(report)
}

/// How a job's file is named in `scheduled_jobs.source`.
fn source_of(dir: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(dir).unwrap_or(path);
    format!("file:{}", relative.display())
}
