//! Keeps `scheduled_jobs` in step with the jobs folder.
//!
//! - A new manifest creates its job; its next run is computed from now.
//! - A changed manifest updates the job. If the schedule, time zone or suspend changed, the next
//!   run is computed again from now (nothing fires retroactively); otherwise it is kept.
//! - A job whose file disappeared, or no longer defines it, is deleted (soft: its runs stay).
//! - A file that cannot be read or holds an invalid job is reported and its jobs are left as they
//!   were, so a typo never deletes a job.
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
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
    /// `file: problem` lines.
    pub problems: Vec<String>,
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
        let schedule = match validate(JobId { namespace, name }, &job.spec) {
            Ok(schedule) => schedule,
            Err(invalid) => {
                report
                    .problems
                    .push(format!("{}: {key}: {invalid}", path.display()));
                broken_files.insert(path.clone());
                continue;
            }
        };
        let source = source_of(dir, path);
        match store.get_job_by_name(namespace, name).await {
            Ok(existing) => {
                let same_source = store.job_source(existing.id).await?.as_deref() == Some(source.as_str());
                if existing.spec == job.spec && same_source {
                    continue;
                }
                let old = Timing::of_spec(JobId { namespace, name }, &existing.spec);
                let edit = after_edit(old.as_ref(), &Timing::of(&schedule, &job.spec));
                let next_run = next_run_after_edit(edit, existing.next_run, &schedule, &job.spec, now);
                let input = JobInput {
                    name,
                    namespace,
                    uid: None,
                    spec: &job.spec,
                    next_run,
                };
                store.update_job(existing.id, &input).await?;
                store.set_job_source(existing.id, Some(&source)).await?;
                report.updated.push(key);
            }
            Err(jtp_store::Error::NotFound { .. }) => {
                let input = JobInput {
                    name,
                    namespace,
                    uid: None,
                    spec: &job.spec,
                    next_run: next_run_after_edit(Edit::FromNow, None, &schedule, &job.spec, now),
                };
                let created = store.create_job(&input).await?;
                store.set_job_source(created.id, Some(&source)).await?;
                report.created.push(key);
            }
            Err(e) => return Err(e),
        }
    }
    let broken_sources: BTreeSet<String> = broken_files.iter().map(|p| source_of(dir, p)).collect();
    for job in store.jobs_with_source().await? {
        let gone = !defined.contains(&(job.namespace.clone(), job.name.clone()));
        let file_broken = job.source.as_ref().is_some_and(|s| broken_sources.contains(s));
        if gone && !file_broken {
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
