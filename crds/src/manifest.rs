//! Reading ScheduledJob manifests (YAML, several documents per file) the way `kubectl apply` would,
//! for the preview command and the standalone jobs folder. ConfigMaps and Secrets are kept too, so
//! a job whose script, variables or volumes come from them works unchanged without a cluster.

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
    /// A Secret: `data` (base64) and `stringData` together, `stringData` winning as in Kubernetes.
    Secret {
        namespace: Option<String>,
        name: String,
        data: SecretData,
    },
    /// Another kind; standalone mode ignores it.
    Other {
        kind: String,
    },
}

/// The keys and values of a Secret. Its `Debug` shows the keys only: a value is never logged.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretData(pub BTreeMap<String, Vec<u8>>);

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
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

/// The largest manifest file read, in bytes: far more than any job needs, small enough that a
/// hostile file cannot keep the parser busy for long.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

/// How deeply a document's collections may nest: a ScheduledJob needs six levels; libyaml's own
/// limit is far higher and a document nested that deep takes seconds to read.
pub const MAX_DEPTH: usize = 32;

/// Parses every document of a YAML text; empty documents are skipped. The first bad document is
/// the error (see [`parse_each`] to keep the good ones).
pub fn parse_documents(text: &str) -> Result<Vec<Manifest>, ManifestError> {
    parse_each(text).into_iter().collect()
}

/// Parses every document of a YAML text on its own: one answer per non-empty document, so one
/// bad document does not hide the others. A text over [`MAX_MANIFEST_BYTES`] or nested deeper
/// than [`MAX_DEPTH`] is one error.
pub fn parse_each(text: &str) -> Vec<Result<Manifest, ManifestError>> {
    if text.len() > MAX_MANIFEST_BYTES {
        return vec![Err(ManifestError {
            index: 1,
            message: format!(
                "the file has {} bytes; a manifest file may have at most {MAX_MANIFEST_BYTES}",
                text.len()
            ),
        })];
    }
    if let Some(line) = too_deep(text) {
        return vec![Err(ManifestError {
            index: 1,
            message: format!("line {line}: nested deeper than {MAX_DEPTH} levels"),
        })];
    }
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = index + 1;
        match serde_yaml::Value::deserialize(doc) {
            Ok(value) if value.is_null() => {}
            Ok(value) => out.push(parse_one(index, value)),
            Err(e) => {
                out.push(Err(ManifestError {
                    index,
                    message: format!("not YAML: {e}"),
                }));
                // The reader cannot find the next document after a syntax error.
                break;
            }
        }
    }
    out
}

/// The first line where flow collections (`[`, `{`) or block indentation nest deeper than
/// [`MAX_DEPTH`], found without parsing (a cheap look, not a YAML reader: quotes are skipped).
fn too_deep(text: &str) -> Option<usize> {
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '-']).len();
        // Two columns per level is the usual block style; one column per level is allowed too,
        // so the limit on indentation is generous.
        if indent > MAX_DEPTH * 4 {
            return Some(n + 1);
        }
        let mut quote = None;
        for c in line.chars() {
            match (quote, c) {
                (None, '#') => break,
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '[' | '{') => {
                    flow += 1;
                    if flow > MAX_DEPTH {
                        return Some(n + 1);
                    }
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

fn parse_one(index: usize, value: serde_yaml::Value) -> Result<Manifest, ManifestError> {
    let fail = |message: String| ManifestError { index, message };
    let head: Head = serde_yaml::from_value(value.clone()).map_err(|e| fail(e.to_string()))?;
    Ok(match head.kind.as_str() {
        "ScheduledJob" => {
            if head.api_version != format!("{}/v1alpha1", crate::GROUP) {
                return Err(fail(format!(
                    "apiVersion is \"{}\"; ScheduledJob is jobtrigger.io/v1alpha1",
                    head.api_version
                )));
            }
            let json = serde_json::to_value(&value).map_err(|e| fail(format!("ScheduledJob: {e}")))?;
            let unknown = crate::admission::unknown_fields(&json);
            if !unknown.is_empty() {
                let lines: Vec<String> = unknown.iter().map(ToString::to_string).collect();
                return Err(fail(lines.join("; ")));
            }
            let job: ScheduledJob =
                serde_yaml::from_value(value).map_err(|e| fail(format!("ScheduledJob: {e}")))?;
            Manifest::ScheduledJob(Box::new(job))
        }
        "ConfigMap" => {
            let cm: ConfigMapDoc =
                serde_yaml::from_value(value).map_err(|e| fail(format!("ConfigMap: {e}")))?;
            let bad_keys: Vec<String> = cm
                .data
                .keys()
                .filter_map(|key| crate::admission::check_config_map_key(&format!("data.{key}"), key))
                .map(|e| e.to_string())
                .collect();
            if !bad_keys.is_empty() {
                return Err(fail(format!(
                    "ConfigMap {}: {}",
                    cm.metadata.name,
                    bad_keys.join("; ")
                )));
            }
            Manifest::ConfigMap {
                namespace: cm.metadata.namespace,
                name: cm.metadata.name,
                data: cm.data,
            }
        }
        "Secret" => {
            let json = serde_json::to_value(&value).map_err(|e| fail(format!("Secret: {e}")))?;
            // The error of a value that is not base64 names the key, never the value.
            let secret: k8s_openapi::api::core::v1::Secret =
                serde_path_to_error::deserialize(json).map_err(|e| {
                    fail(format!(
                        "Secret: {}: not a Secret (check that data values are base64)",
                        e.path()
                    ))
                })?;
            let name = secret.metadata.name.clone().unwrap_or_default();
            if name.is_empty() {
                return Err(fail("Secret: metadata.name: name the Secret".to_owned()));
            }
            let mut data: BTreeMap<String, Vec<u8>> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(key, bytes)| (key, bytes.0))
                .collect();
            for (key, text) in secret.string_data.unwrap_or_default() {
                data.insert(key, text.into_bytes());
            }
            let bad_keys: Vec<String> = data
                .keys()
                .filter_map(|key| crate::admission::check_config_map_key(&format!("data.{key}"), key))
                .map(|e| e.to_string())
                .collect();
            if !bad_keys.is_empty() {
                return Err(fail(format!("Secret {name}: {}", bad_keys.join("; "))));
            }
            Manifest::Secret {
                namespace: secret.metadata.namespace,
                name,
                data: SecretData(data),
            }
        }
        _ => Manifest::Other { kind: head.kind },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_file_nested_too_deep_or_too_large_is_one_clear_error_read_quickly() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let started = std::time::Instant::now();
        let errors = parse_each(&deep);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let message = errors[0].as_ref().unwrap_err().to_string();
        assert!(message.contains("nested deeper than 32 levels"), "{message}");

        let large = format!("# {}\n", "x".repeat(MAX_MANIFEST_BYTES));
        let message = parse_each(&large)[0].as_ref().unwrap_err().to_string();
        assert!(message.contains("at most 1048576"), "{message}");
    }
}
