//! The jobs folder: ScheduledJob manifests (the same files `kubectl apply` takes) read from disk.
//! This module only reads; `loader` decides what the store makes of it.

use jtp_crds::ScheduledJob;
use jtp_crds::manifest::{Manifest, parse_documents};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What a scan of the folder found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Jobs by (namespace, name), with the file each came from.
    pub jobs: BTreeMap<(String, String), (PathBuf, ScheduledJob)>,
    /// ConfigMaps by (namespace, name), so `script.configMap` works without a cluster.
    pub config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// Files that could not be read, with why. Their jobs are left as they were.
    pub broken: Vec<(PathBuf, String)>,
}

/// A cheap summary of the folder (names, sizes, modification times) to tell whether it changed.
pub type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The namespace of a job without one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The YAML files directly in `dir`, sorted.
fn manifest_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

pub fn fingerprint(dir: &Path) -> Fingerprint {
    manifest_files(dir)
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
            let modified = meta.and_then(|m| m.modified().ok());
            (path, len, modified)
        })
        .collect()
}

/// Reads every manifest in `dir`. A job defined twice keeps its first definition (files are read
/// in name order) and the second file is reported as broken.
pub fn scan(dir: &Path) -> Scan {
    let mut out = Scan::default();
    for path in manifest_files(dir) {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                out.broken.push((path, e.to_string()));
                continue;
            }
        };
        let docs = match parse_documents(&text) {
            Ok(docs) => docs,
            Err(e) => {
                out.broken.push((path, e.to_string()));
                continue;
            }
        };
        for doc in docs {
            match doc {
                Manifest::ScheduledJob(job) => {
                    let namespace = job
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| DEFAULT_NAMESPACE.into());
                    let Some(name) = job.metadata.name.clone() else {
                        out.broken
                            .push((path.clone(), "a ScheduledJob has no metadata.name".into()));
                        continue;
                    };
                    if let Some((first, _)) = out.jobs.get(&(namespace.clone(), name.clone())) {
                        let why = format!("{namespace}/{name} is already defined in {}", first.display());
                        out.broken.push((path.clone(), why));
                        continue;
                    }
                    out.jobs.insert((namespace, name), (path.clone(), *job));
                }
                Manifest::ConfigMap {
                    namespace,
                    name,
                    data,
                } => {
                    let namespace = namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.into());
                    out.config_maps.insert((namespace, name), data);
                }
                Manifest::Other { .. } => {}
            }
        }
    }
    out
}
