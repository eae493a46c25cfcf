//! The CRD checked in under `crds/` must be exactly what the Rust types generate.
//! Regenerate with `cargo run -p jtp-operator -- crd > crds/scheduledjob.yaml`
//! (or run this test with `JTP_UPDATE_CRD=1`).

use std::path::Path;

#[test]
fn checked_in_crd_equals_the_generated_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scheduledjob.yaml");
    let generated = jtp_crds::crd_yaml();
    if std::env::var_os("JTP_UPDATE_CRD").is_some() {
        std::fs::write(&path, &generated).expect("write the CRD");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "crds/scheduledjob.yaml is stale: run `JTP_UPDATE_CRD=1 cargo test -p jtp-crds --test crd_is_current` and commit it"
    );
}

#[test]
fn the_helm_chart_ships_the_same_crd() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/job-trigger-portal/crds/scheduledjob.yaml");
    let generated = jtp_crds::crd_yaml();
    if std::env::var_os("JTP_UPDATE_CRD").is_some() {
        std::fs::write(&path, &generated).expect("write the chart's CRD");
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == generated,
        "charts/job-trigger-portal/crds/scheduledjob.yaml differs from the generated CRD: run \
         `JTP_UPDATE_CRD=1 cargo test -p jtp-crds --test crd_is_current` and commit it"
    );
}

#[test]
fn crd_has_what_kubectl_users_need() {
    let yaml = jtp_crds::crd_yaml();
    for needle in [
        "group: jobtrigger.io",
        "- sj",
        "name: v1alpha1",
        "status: {}",
        "jsonPath: .status.nextRun",
        "set exactly one schedule form",
        "an interval must be at least 10 seconds",
        "pattern: ^([01][0-9]|2[0-3]):[0-5][0-9]$",
        "podTemplate:",
        "x-kubernetes-preserve-unknown-fields: true",
    ] {
        assert!(yaml.contains(needle), "CRD lacks {needle:?}:\n{yaml}");
    }
}

/// kubectl and helm read manifests as YAML 1.1, where `on`, `off`, `yes`, `no`, `y` and `n` are
/// booleans: a field of that name would arrive as `true`/`false` (helm's CRD then differs from
/// the one the types generate, and a user's manifest loses the field). No field is named so.
#[test]
fn no_field_name_is_a_yaml_1_1_boolean() {
    use kube::CustomResourceExt;
    fn walk(schema: &serde_json::Value, path: &str, bad: &mut Vec<String>) {
        if let Some(properties) = schema.get("properties").and_then(serde_json::Value::as_object) {
            for (name, inner) in properties {
                let words = ["y", "yes", "n", "no", "on", "off", "true", "false"];
                if words.contains(&name.to_ascii_lowercase().as_str()) {
                    bad.push(format!("{path}.{name}"));
                }
                walk(inner, &format!("{path}.{name}"), bad);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(inner) = schema.get(key) {
                walk(inner, path, bad);
            }
        }
    }
    let crd = serde_json::to_value(jtp_crds::ScheduledJob::crd()).expect("json");
    let mut bad = Vec::new();
    for version in crd["spec"]["versions"].as_array().expect("versions") {
        walk(&version["schema"]["openAPIV3Schema"], "", &mut bad);
    }
    assert!(bad.is_empty(), "fields named like YAML 1.1 booleans: {bad:?}");
}
