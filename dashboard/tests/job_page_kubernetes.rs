//! The job page in Kubernetes mode against the real control plane: the spec from the operator's
//! mirror, where the job comes from (the resource and who wrote it), the exported manifest taken
//! by the real `kubectl apply` (strict field validation, YAML as kubectl reads it) back to the
//! same spec, and a clone created as the user.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::kube_env::{KubeEnv, Mirror, bearer};
use common::*;
use jtp_crds::{EnvVar, ScheduledJobSpec};
use jtp_dashboard::{AppState, PortalConfig};

#[tokio::test]
async fn the_job_page_export_and_clone_work_in_a_cluster() {
    let env = KubeEnv::new("dash-jobpage").await;
    let ns = env.ns.name().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, None).await;
    let state = AppState::kubernetes(store.clone(), env.client.clone(), PortalConfig::default());
    let mut spec = ScheduledJobSpec::daily("09:00")
        .in_zone("America/New_York")
        .script("echo \"yes: on\"")
        .retry(1, "10s")
        .retain(None, Some(5));
    spec.env = vec![EnvVar {
        name: "MODE".into(),
        value: "on".into(),
    }];
    spec.description = Some("no: off".into());
    env.create_job("rich", spec.clone()).await;
    let mut mirror = Mirror::new("");
    mirror.sync(&env.jobs(), &store).await;

    let page = send(
        &state,
        bearer(get(&format!("/jobs/{ns}/rich/details")), &env.reader),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("data-origin=\"kubernetes\""), "{}", page.body);
    assert!(page.body.contains(&format!("kubectl get sj rich -n {ns}")));
    assert!(
        page.body.contains("Written by:"),
        "the resource's managers: {}",
        page.body
    );
    assert!(page.body.contains("1 more attempt of a failed run"));
    assert_eq!(page.body.matches(" 09:00 EST</time>").count(), 5, "{}", page.body);

    // The export, renamed, goes through the real kubectl with strict field validation.
    let yaml = send(
        &state,
        bearer(get(&format!("/jobs/{ns}/rich/export.yaml")), &env.reader),
    )
    .await;
    assert_eq!(yaml.status, StatusCode::OK, "{}", yaml.body);
    let renamed = yaml.body.replace("name: rich\n", "name: rich-applied\n");
    assert_ne!(renamed, yaml.body, "{}", yaml.body);
    let file = dir.path().join("exported.yaml");
    std::fs::write(&file, &renamed).unwrap();
    let path = file.display().to_string();
    tokio::task::spawn_blocking(move || jtp_testenv::kubectl(&["apply", "--validate=strict", "-f", &path]))
        .await
        .unwrap();
    let applied = env.jobs().get("rich-applied").await.unwrap();
    assert_eq!(applied.spec, spec, "kubectl read back the same spec");

    // A clone, as the owner (the portal writes as the user).
    let login = send(&state, post_form("/login", "", &[("token", &env.owner)])).await;
    let cookie = login.session_cookie().unwrap();
    let form = send(
        &state,
        get_with_cookie(&format!("/jobs/{ns}/rich/clone"), &cookie),
    )
    .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(form.body.contains("value=\"rich-copy\""));
    let csrf = csrf_of(&form.body);
    let mut fields = daily_form(&csrf, "rich-copy", "09:00");
    fields.retain(|(k, _)| !["namespace", "time_zone", "script_inline", "description"].contains(k));
    fields.push(("namespace", ns.as_str()));
    fields.push(("time_zone", "America/New_York"));
    fields.push(("script_inline", "echo \"yes: on\""));
    fields.push(("description", "no: off"));
    let created = send(
        &state,
        post_form(&format!("/jobs/{ns}/rich/clone"), &cookie, &fields),
    )
    .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let copy = env.jobs().get("rich-copy").await.unwrap();
    assert_eq!(copy.spec, spec, "the copy keeps env, retries and retention");

    // A reader may read the page and the export but not create the copy.
    let login = send(&state, post_form("/login", "", &[("token", &env.reader)])).await;
    let cookie = login.session_cookie().unwrap();
    let form = send(
        &state,
        get_with_cookie(&format!("/jobs/{ns}/rich/clone"), &cookie),
    )
    .await;
    let csrf = csrf_of(&form.body);
    let mut fields = daily_form(&csrf, "rich-copy-2", "09:00");
    fields.retain(|(k, _)| *k != "namespace");
    fields.push(("namespace", ns.as_str()));
    let refused = send(
        &state,
        post_form(&format!("/jobs/{ns}/rich/clone"), &cookie, &fields),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    env.ns.cleanup().await;
}
