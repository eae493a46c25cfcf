//! What the Kubernetes API server refuses before a ScheduledJob's own rules run, repeated for the
//! places that take a job without it (the portal's API in standalone mode, the jobs folder,
//! `jtp preview`): object names (DNS-1123), ConfigMap keys, and unknown fields, which are refused
//! with their path and a "did you mean" hint the way `kubectl` strict field validation does.

use crate::schedule::CompiledSchedule;
use crate::types::{ScheduledJob, ScheduledJobSpec};
use crate::validate::{FieldError, InvalidSpec, validate};
use serde_json::Value;
use std::sync::OnceLock;

/// Longest object name (a DNS-1123 subdomain).
pub const MAX_NAME: usize = 253;
/// Longest namespace (a DNS-1123 label).
pub const MAX_NAMESPACE: usize = 63;
/// Longest ConfigMap key.
pub const MAX_CONFIG_MAP_KEY: usize = 253;

/// The fields of a document's top level and of its `metadata` that a manifest may carry.
const TOP_LEVEL: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
const METADATA: &[&str] = &[
    "name",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "generateName",
    "selfLink",
];

/// A DNS-1123 label: 1-63 lowercase letters, digits or '-', starting and ending alphanumeric.
fn is_label(part: &str, max: usize) -> bool {
    !part.is_empty()
        && part.len() <= max
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && part.starts_with(|c: char| c.is_ascii_alphanumeric())
        && part.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Checks an object name (a DNS-1123 subdomain: dot-separated labels, at most 253 characters).
pub fn check_name(field: &str, name: &str) -> Option<FieldError> {
    let ok = name.len() <= MAX_NAME && name.split('.').all(|label| is_label(label, 63));
    (!ok).then(|| {
        FieldError::new(
            field,
            format!(
                "\"{name}\" is not a valid name: use at most {MAX_NAME} lowercase letters, digits, '-' or '.', \
                 starting and ending with a letter or digit, with no empty part between dots"
            ),
        )
    })
}

/// Checks a namespace (a DNS-1123 label: no dots, at most 63 characters).
pub fn check_namespace(field: &str, namespace: &str) -> Option<FieldError> {
    (!is_label(namespace, MAX_NAMESPACE)).then(|| {
        FieldError::new(
            field,
            format!(
                "\"{namespace}\" is not a valid namespace: use at most {MAX_NAMESPACE} lowercase letters, \
                 digits or '-', starting and ending with a letter or digit"
            ),
        )
    })
}

/// Checks a ConfigMap key as the API server does: letters, digits, '-', '_' and '.', not `.` or
/// `..`. A key is a file name: `../x.sh` or `/etc/x` would be written outside the run's folder.
pub fn check_config_map_key(field: &str, key: &str) -> Option<FieldError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_CONFIG_MAP_KEY
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (!ok).then(|| {
        FieldError::new(
            field,
            format!(
                "\"{key}\" is not a valid ConfigMap key: use letters, digits, '-', '_' or '.' \
                 (no '/', not \".\" or \"..\"), at most {MAX_CONFIG_MAP_KEY} characters"
            ),
        )
    })
}

/// Name, namespace and spec of a job, every problem reported; on success the compiled schedule.
pub fn validate_object(
    namespace: &str,
    name: &str,
    spec: &ScheduledJobSpec,
) -> Result<CompiledSchedule, InvalidSpec> {
    let mut errors: Vec<FieldError> = [
        check_name("metadata.name", name),
        check_namespace("metadata.namespace", namespace),
    ]
    .into_iter()
    .flatten()
    .collect();
    match validate(crate::JobId { namespace, name }, spec) {
        Ok(compiled) if errors.is_empty() => Ok(compiled),
        Ok(_) => Err(InvalidSpec { errors }),
        Err(invalid) => {
            errors.extend(invalid.errors);
            Err(InvalidSpec { errors })
        }
    }
}

/// The CRD's schema of `spec` (structural: every object lists its properties).
fn spec_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(ScheduledJob::crd()).unwrap_or(Value::Null);
        crd.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
            .cloned()
            .unwrap_or(Value::Null)
    })
}

/// Unknown fields of a whole ScheduledJob document (top level, metadata and spec), by path.
pub fn unknown_fields(document: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(fields) = document.as_object() else {
        return errors;
    };
    for (key, value) in fields {
        if !TOP_LEVEL.contains(&key.as_str()) {
            errors.push(unknown(key, key, TOP_LEVEL.iter().copied()));
        } else if key == "metadata"
            && let Some(meta) = value.as_object()
        {
            for field in meta.keys().filter(|k| !METADATA.contains(&k.as_str())) {
                errors.push(unknown(
                    &format!("metadata.{field}"),
                    field,
                    METADATA.iter().copied(),
                ));
            }
        } else if key == "spec" {
            errors.extend(unknown_spec_fields("spec", value));
        }
    }
    errors.sort_by(|a, b| a.field.cmp(&b.field));
    errors
}

/// Unknown fields of a spec (`prefix` is its path, normally `spec`), checked against the CRD.
pub fn unknown_spec_fields(prefix: &str, spec: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    walk(prefix, spec, spec_schema(), &mut errors);
    errors.sort_by(|a, b| a.field.cmp(&b.field));
    errors
}

fn walk(path: &str, value: &Value, schema: &Value, errors: &mut Vec<FieldError>) {
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return;
    }
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, inner) in fields {
                let inner_path = format!("{path}.{key}");
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(field_schema), _) => walk(&inner_path, inner, field_schema, errors),
                    (None, Some(field_schema)) => walk(&inner_path, inner, field_schema, errors),
                    (None, None) => {
                        if let Some(known) = properties {
                            errors.push(unknown(&inner_path, key, known.keys().map(String::as_str)));
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(&format!("{path}[{i}]"), item, item_schema, errors);
                }
            }
        }
        _ => {}
    }
}

fn unknown<'a>(path: &str, key: &str, known: impl Iterator<Item = &'a str>) -> FieldError {
    let message = match did_you_mean(key, known) {
        Some(hint) => format!("unknown field, did you mean {hint}?"),
        None => "unknown field".to_owned(),
    };
    FieldError::new(path, message)
}

/// The known field closest to `key`: the same letters in another case, or a near spelling.
fn did_you_mean<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = key.to_ascii_lowercase();
    known
        .map(|candidate| {
            let score = if candidate.eq_ignore_ascii_case(key) {
                1.0
            } else {
                strsim::jaro_winkler(&lower, &candidate.to_ascii_lowercase())
            };
            (score, candidate)
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_dns_1123_subdomains() {
        for good in ["a", "backup", "db-backup.daily", "a1", &"a".repeat(63)] {
            assert!(check_name("metadata.name", good).is_none(), "{good}");
        }
        for bad in [
            "",
            "a..b",
            "a/b",
            "A",
            "-a",
            "a-",
            ".a",
            "a.",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(check_name("metadata.name", bad).is_some(), "{bad}");
        }
        assert!(check_namespace("metadata.namespace", "ops").is_none());
        assert!(check_namespace("metadata.namespace", "o.ps").is_some());
    }

    #[test]
    fn config_map_keys_stay_inside_the_run_folder() {
        assert!(check_config_map_key("data", "backup.sh").is_none());
        for bad in ["../../x.sh", "/etc/passwd", "a/b.sh", "..", ".", ""] {
            let error = check_config_map_key("data", bad).expect(bad);
            assert!(error.message.contains("not a valid ConfigMap key"), "{error}");
        }
    }

    #[test]
    fn a_misspelt_field_is_named_with_its_path_and_the_field_meant() {
        let doc = json!({
            "apiVersion": "jobtrigger.io/v1alpha1",
            "kind": "ScheduledJob",
            "metadata": { "name": "x", "lables": {} },
            "spec": {
                "schedule": { "daily": { "at": "09:00", "tz": "x" } },
                "timezone": "Europe/London",
                "script": { "inline": "echo" },
                "env": [{ "name": "A", "vaule": "1" }],
                "resources": { "limits": { "cpu": "1" } }
            }
        });
        let errors: Vec<String> = unknown_fields(&doc).iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "metadata.lables: unknown field, did you mean labels?",
                "spec.env[0].vaule: unknown field, did you mean value?",
                "spec.schedule.daily.tz: unknown field",
                "spec.timezone: unknown field, did you mean timeZone?",
            ]
        );
    }
}
