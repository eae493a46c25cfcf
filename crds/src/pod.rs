//! The run's pod template (`spec.podTemplate`): what a ScheduledJob may say about its pod, and the
//! checks the schema cannot make (the PodSpec is kept without its schema, see
//! `pod_template_schema` in [`crate::types`]).
//!
//! Rules:
//! - the container named [`RUN_CONTAINER`] is the script's: the script sets its command (so the
//!   template gives it no `command` or `args`); `spec.image`, `spec.workingDir` and
//!   `spec.resources` override its own, `spec.env` is appended to its env. Without one, it is added
//!   first. Every other container and init container runs as written;
//! - the service account is `spec.serviceAccountName` (where the cluster's allow-list applies), so
//!   the template names none;
//! - a run is a Job's pod: `restartPolicy` is `Never` (the default) or `OnFailure`.

use crate::types::{PodTemplate, ScheduledJobSpec};
use crate::validate::FieldError;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use std::collections::BTreeSet;

/// Name of the container that runs the script.
pub const RUN_CONTAINER: &str = "run";

impl PodTemplate {
    /// The template with the k8s-openapi types; the error names the path of what does not read.
    pub fn parse(&self) -> Result<PodTemplateSpec, FieldError> {
        serde_path_to_error::deserialize(&self.0).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "spec.podTemplate".to_owned()
            } else {
                format!("spec.podTemplate.{path}")
            };
            FieldError::new(field, e.into_inner().to_string())
        })
    }

    /// A template from the k8s-openapi types.
    pub fn from_spec(template: &PodTemplateSpec) -> Self {
        Self(serde_json::to_value(template).unwrap_or_default())
    }
}

/// The fields of `spec` that only a Kubernetes pod uses, which standalone mode (a local process)
/// ignores: `image`, `resources`, `serviceAccountName` and each part of `podTemplate` a local run
/// cannot use (`podTemplate.spec.nodeSelector`, `podTemplate.spec.containers[sidecar]`,
/// `podTemplate.spec.containers[run].securityContext`, a `fieldRef` variable, a claim volume…).
/// Standalone uses the run container's `env` (values, Secret and ConfigMap keys), `envFrom`
/// and `volumeMounts` of Secret, ConfigMap, projected (their Secret and ConfigMap sources) and
/// emptyDir volumes.
pub fn ignored_in_standalone(spec: &ScheduledJobSpec) -> Vec<String> {
    let mut out = Vec::new();
    for (field, set) in [
        ("image", spec.image.is_some()),
        ("resources", spec.resources.is_some()),
        ("serviceAccountName", spec.service_account_name.is_some()),
    ] {
        if set {
            out.push(field.to_owned());
        }
    }
    let Some(template) = &spec.pod_template else {
        return out;
    };
    let of = |part: &str| template.0.get(part);
    match of("metadata").and_then(serde_json::Value::as_object) {
        Some(fields) => out.extend(fields.keys().map(|key| format!("podTemplate.metadata.{key}"))),
        None if of("metadata").is_some() => out.push("podTemplate.metadata".to_owned()),
        None => {}
    }
    let Some(pod) = of("spec").and_then(serde_json::Value::as_object) else {
        if of("spec").is_some() {
            out.push("podTemplate.spec".to_owned());
        }
        return out;
    };
    let named = |item: &serde_json::Value| {
        item.get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    for (key, value) in pod {
        let at = format!("podTemplate.spec.{key}");
        match key.as_str() {
            "containers" => {
                for container in value.as_array().into_iter().flatten() {
                    let name = named(container);
                    let at = format!("{at}[{name}]");
                    if name != RUN_CONTAINER {
                        out.push(at);
                        continue;
                    }
                    for (field, value) in container.as_object().into_iter().flatten() {
                        match field.as_str() {
                            "name" | "envFrom" | "volumeMounts" => {}
                            "env" => {
                                for var in value.as_array().into_iter().flatten() {
                                    for from in ["fieldRef", "resourceFieldRef"] {
                                        if var.get("valueFrom").and_then(|v| v.get(from)).is_some() {
                                            out.push(format!("{at}.env[{}].valueFrom.{from}", named(var)));
                                        }
                                    }
                                }
                            }
                            _ => out.push(format!("{at}.{field}")),
                        }
                    }
                }
            }
            "volumes" => {
                for volume in value.as_array().into_iter().flatten() {
                    let name = named(volume);
                    for (kind, value) in volume.as_object().into_iter().flatten() {
                        match kind.as_str() {
                            "name" | "secret" | "configMap" => {}
                            "projected" => {
                                let sources = value.get("sources").and_then(serde_json::Value::as_array);
                                for (i, source) in sources.into_iter().flatten().enumerate() {
                                    for kind in source.as_object().into_iter().flatten().map(|(k, _)| k) {
                                        if !matches!(kind.as_str(), "secret" | "configMap") {
                                            out.push(format!("{at}[{name}].projected.sources[{i}].{kind}"));
                                        }
                                    }
                                }
                            }
                            "emptyDir" => out.extend(
                                value
                                    .as_object()
                                    .into_iter()
                                    .flatten()
                                    .map(|(field, _)| format!("{at}[{name}].emptyDir.{field}")),
                            ),
                            _ => out.push(format!("{at}[{name}].{kind}")),
                        }
                    }
                }
            }
            _ => out.push(at),
        }
    }
    out
}

/// Problems with `spec.podTemplate`, each at its path.
pub fn check(spec: &ScheduledJobSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(written) = spec.pod_template.as_ref() else {
        return errors;
    };
    let template = match written.parse() {
        Err(e) => return vec![e],
        Ok(template) => template,
    };
    // The schema keeps the PodSpec whole, so a misspelt field would be dropped without a word:
    // whatever the k8s-openapi types did not keep is refused by its path.
    let kept = serde_json::to_value(&template).unwrap_or_default();
    unknown_fields("spec.podTemplate", &written.0, &kept, &mut errors);
    let Some(pod) = template.spec.as_ref() else {
        return errors;
    };
    let at = |rest: &str| format!("spec.podTemplate.spec.{rest}");
    if pod.service_account_name.is_some() || pod.service_account.is_some() {
        errors.push(FieldError::new(
            at("serviceAccountName"),
            "set the service account in spec.serviceAccountName, where the cluster's allow-list applies",
        ));
    }
    if let Some(policy) = pod.restart_policy.as_deref()
        && !matches!(policy, "Never" | "OnFailure")
    {
        errors.push(FieldError::new(
            at("restartPolicy"),
            format!("\"{policy}\" is not allowed for a run (a Job's pod): use Never or OnFailure"),
        ));
    }
    let mut names = BTreeSet::new();
    let init = pod
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (format!("initContainers[{i}]"), c));
    let main = pod
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("containers[{i}]"), c));
    for (path, container) in main.chain(init) {
        if container.name.is_empty() {
            errors.push(FieldError::new(at(&format!("{path}.name")), "name the container"));
        } else if !names.insert(container.name.as_str()) {
            errors.push(FieldError::new(
                at(&format!("{path}.name")),
                format!("container name \"{}\" is used twice", container.name),
            ));
        }
        let is_run = path.starts_with("containers") && container.name == RUN_CONTAINER;
        if is_run && (container.command.is_some() || container.args.is_some()) {
            errors.push(FieldError::new(
                at(&format!("{path}.command")),
                "the script sets the run container's command: move it to spec.script.command",
            ));
        }
        if !is_run && container.image.as_deref().is_none_or(str::is_empty) {
            errors.push(FieldError::new(
                at(&format!("{path}.image")),
                format!("container \"{}\" needs an image", container.name),
            ));
        }
    }
    errors
}

/// Fields of `written` that `kept` (the same value read and written back) lost.
fn unknown_fields(
    path: &str,
    written: &serde_json::Value,
    kept: &serde_json::Value,
    errors: &mut Vec<FieldError>,
) {
    use serde_json::Value;
    match (written, kept) {
        (Value::Object(written), Value::Object(kept)) => {
            for (key, value) in written {
                let inner = format!("{path}.{key}");
                match kept.get(key) {
                    Some(kept) => unknown_fields(&inner, value, kept, errors),
                    None if value.is_null() => {}
                    None => errors.push(FieldError::new(
                        inner,
                        format!("unknown field \"{key}\" (not in the Kubernetes type at this place)"),
                    )),
                }
            }
        }
        (Value::Array(written), Value::Array(kept)) => {
            for (i, (w, k)) in written.iter().zip(kept).enumerate() {
                unknown_fields(&format!("{path}[{i}]"), w, k, errors);
            }
        }
        _ => {}
    }
}
