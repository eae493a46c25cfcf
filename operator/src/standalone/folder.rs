//! The jobs folder: ScheduledJob manifests (the same files `kubectl apply` takes) read from disk.
//! This module only reads; `loader` decides what the store makes of it.

use jtp_crds::ScheduledJob;
use jtp_crds::admission::validate_object;
use jtp_crds::manifest::{Manifest, SecretData, parse_each};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What a scan of the folder found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Valid jobs by (namespace, name), with the file each came from.
    pub jobs: BTreeMap<(String, String), (PathBuf, ScheduledJob)>,
    /// ConfigMaps by (namespace, name), so `script.configMap`, `valueFrom`, `envFrom` and volumes
    /// work without a cluster.
    pub config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// Secrets by (namespace, name), for `valueFrom`, `envFrom` and volumes.
    pub secrets: BTreeMap<(String, String), SecretData>,
    /// Files with a document that could not be read or holds an invalid job, with why. Jobs of
    /// these files that the scan did not find are left as they were.
    pub broken: Vec<(PathBuf, String)>,
}

/// A cheap summary of the folder (names, sizes, modification times) to tell whether it changed;
/// `Err` when the folder cannot be listed.
pub type Fingerprint = Result<Vec<(PathBuf, u64, Option<SystemTime>)>, String>;

/// The namespace of a job without one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The YAML files directly in `dir`, sorted; an error when the folder cannot be listed (moved
/// away, out of file descriptors, a mount gone): that is not a folder without jobs.
fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read the jobs folder {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read the jobs folder {}: {e}", dir.display()))?
            .path();
        if path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

pub fn fingerprint(dir: &Path) -> Fingerprint {
    Ok(manifest_files(dir)?
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
            let modified = meta.and_then(|m| m.modified().ok());
            (path, len, modified)
        })
        .collect())
}

/// Reads every manifest in `dir`, each document on its own: a bad document is reported with its
/// file and reason, and the other documents (of that file too) are still read. A job defined
/// twice keeps its first definition (files are read in name order); the second is reported.
/// `Err` when the folder itself cannot be read. Reading and parsing block: call it off the
/// async runtime.
pub fn scan(dir: &Path) -> Result<Scan, String> {
    let mut out = Scan::default();
    for path in manifest_files(dir)? {
        let text = match read_manifest(&path) {
            Ok(text) => text,
            Err(e) => {
                out.broken.push((path, e));
                continue;
            }
        };
        for doc in parse_each(&text) {
            match doc {
                Ok(Manifest::ScheduledJob(job)) => out.add_job(&path, *job),
                Ok(Manifest::ConfigMap {
                    namespace,
                    name,
                    data,
                }) => {
                    let namespace = namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.into());
                    out.config_maps.insert((namespace, name), data);
                }
                Ok(Manifest::Secret {
                    namespace,
                    name,
                    data,
                }) => {
                    let namespace = namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.into());
                    out.secrets.insert((namespace, name), data);
                }
                Ok(Manifest::Other { .. }) => {}
                Err(e) => out.broken.push((path.clone(), e.to_string())),
            }
        }
    }
    Ok(out)
}

/// Reads a manifest file, refusing one too large to be a manifest before reading it whole.
fn read_manifest(path: &Path) -> Result<String, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > jtp_crds::manifest::MAX_MANIFEST_BYTES as u64 {
        return Err(format!(
            "the file has {len} bytes; a manifest file may have at most {}",
            jtp_crds::manifest::MAX_MANIFEST_BYTES
        ));
    }
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

impl Scan {
    fn add_job(&mut self, path: &Path, job: ScheduledJob) {
        let namespace = job
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.into());
        let name = job.metadata.name.clone().unwrap_or_default();
        if let Err(invalid) = validate_object(&namespace, &name, &job.spec) {
            let shown = if name.is_empty() {
                "a ScheduledJob"
            } else {
                name.as_str()
            };
            self.broken.push((path.to_owned(), format!("{shown}: {invalid}")));
            return;
        }
        if let Some((first, _)) = self.jobs.get(&(namespace.clone(), name.clone())) {
            let why = format!("{namespace}/{name} is already defined in {}", first.display());
            self.broken.push((path.to_owned(), why));
            return;
        }
        self.jobs.insert((namespace, name), (path.to_owned(), job));
    }
}
