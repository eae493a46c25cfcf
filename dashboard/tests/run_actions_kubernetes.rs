//! Stopping a run through the portal in Kubernetes mode, against the real control plane: the
//! user's own `patch` right is checked (SubjectAccessReview), the stop annotation is written on
//! the ScheduledJob as the user (impersonation) and names them; an ended run is a 409. (What the
//! operator does with the annotation is `operator/tests/operator_cluster.rs`'s
//! `a_run_stopped_on_request_is_recorded_failure_and_its_job_and_pod_are_gone`.)
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::kube_env::{KubeEnv, Mirror, bearer};
use common::*;
use jtp_crds::{RunStatus, STOP_RUN_ANNOTATION_PREFIX, ScheduledJobSpec, Trigger};
use jtp_dashboard::{AppState, PortalConfig};
use jtp_store::RunStart;

#[tokio::test]
async fn a_stop_needs_patch_and_is_written_as_the_users_annotation_and_an_ended_run_is_a_conflict() {
    let env = KubeEnv::new("dash-stop").await;
    let ns = env.ns.name().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, None).await;
    let state = AppState::kubernetes(store.clone(), env.client.clone(), PortalConfig::default());
    env.create_job("long", ScheduledJobSpec::manual()).await;
    let mut mirror = Mirror::new("done");
    mirror.sync(&env.jobs(), &store).await;
    let job = store.get_job_by_name(&ns, "long").await.unwrap();
    let job_name = "long-manual-1764650000";
    let now = chrono::Utc::now();
    let running = store
        .record_attempt_start(
            &RunStart {
                job_id: job.id,
                trigger: Trigger::Manual,
                scheduled_for: now,
                started_at: now,
                k8s_job_name: Some(format!("{ns}/{job_name}")),
                runner: None,
                requester: None,
                parameters: Default::default(),
            },
            1,
        )
        .await
        .unwrap();
    let ended = add_run(&store, job.id, RunStatus::Success, Some(0), "ok\n").await;
    let stop = |id: i64, token: &str| {
        bearer(
            json_request("POST", &format!("/api/v1/runs/{id}/stop"), None),
            token,
        )
    };
    let key = format!("{STOP_RUN_ANNOTATION_PREFIX}{job_name}");
    let annotation = || async {
        let live = env.jobs().get("long").await.unwrap();
        live.metadata.annotations.unwrap_or_default().get(&key).cloned()
    };

    // Reading the run, or the right to Run Now, is not enough.
    for (who, token) in [("reader", &env.reader), ("runner", &env.runner)] {
        let reply = send(&state, stop(running, token)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{who}: {}", reply.body);
        let message = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(
            message.contains("stop this job's runs") && message.contains("\"patch\""),
            "{message}"
        );
    }
    assert_eq!(annotation().await, None);

    // The editor (patch) may: 202, and the annotation names them.
    let reply = send(&state, stop(running, &env.editor)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let editor = format!("system:serviceaccount:{ns}:editor");
    assert_eq!(reply.json()["stopRequestedBy"], editor.as_str());
    assert_eq!(annotation().await, Some(editor));

    // An ended run: 409, nothing written; a run that does not exist: 404.
    let reply = send(&state, stop(ended, &env.owner)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("already ended (SUCCESS)")
    );
    let reply = send(&state, stop(999_999, &env.owner)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
}
