//! Reading ScheduledJob manifests (YAML, several documents per file) the way `kubectl apply` would,
//! for the preview command and the standalone jobs folder. ConfigMaps are kept too, so a job whose
//! script lives in a ConfigMap works unchanged without a cluster.

use crate::types::ScheduledJob;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One document of a manifest file.
#[derive(Clone, Debug)]
pub enum Manifest {
    ScheduledJob(Box<ScheduledJob>),
    ConfigMap {
        namespace: Option<String>,
        name: String,
        data: BTreeMap<String, String>,
    },
    /// Another kind; standalone mode ignores it.
    Other {
        kind: String,
    },
}

/// A document that cannot be read, with its position in the file.
#[derive(Debug, thiserror::Error)]
#[error("document {index}: {message}")]
pub struct ManifestError {
    pub index: usize,
    pub message: String,
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    kind: String,
    #[serde(default, rename = "apiVersion")]
    api_version: String,
}

#[derive(Deserialize)]
struct ConfigMapDoc {
    metadata: Meta,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Meta {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// Parses every document of a YAML text; empty documents are skipped.
pub fn parse_documents(text: &str) -> Result<Vec<Manifest>, ManifestError> {
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| ManifestError {
            index: index + 1,
            message: format!("not YAML: {e}"),
        })?;
        if value.is_null() {
            continue;
        }
        let fail = |message: String| ManifestError {
            index: index + 1,
            message,
        };
        let head: Head = serde_yaml::from_value(value.clone()).map_err(|e| fail(e.to_string()))?;
        out.push(match head.kind.as_str() {
            "ScheduledJob" => {
                if head.api_version != format!("{}/v1alpha1", crate::GROUP) {
                    return Err(fail(format!(
                        "apiVersion is \"{}\"; ScheduledJob is jobtrigger.io/v1alpha1",
                        head.api_version
                    )));
                }
                let job: ScheduledJob =
                    serde_yaml::from_value(value).map_err(|e| fail(format!("ScheduledJob: {e}")))?;
                Manifest::ScheduledJob(Box::new(job))
            }
            "ConfigMap" => {
                let cm: ConfigMapDoc =
                    serde_yaml::from_value(value).map_err(|e| fail(format!("ConfigMap: {e}")))?;
                Manifest::ConfigMap {
                    namespace: cm.metadata.namespace,
                    name: cm.metadata.name,
                    data: cm.data,
                }
            }
            _ => Manifest::Other { kind: head.kind },
        });
    }
    Ok(out)
}
