//! `jtp operator` on a cluster without the ScheduledJob CRD: it stops at once with a message that
//! says what to apply. The test removes the CRD from the shared test cluster and puts it back
//! (cargo runs test binaries one after another, so no other test sees the gap).

mod common;

use jtp_crds::ScheduledJob;
use jtp_testenv::{kubeconfig_path, kubectl_output};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, CustomResourceExt, ResourceExt};
use serde_json::json;
use std::process::Stdio;
use std::time::{Duration, Instant};

const CRD: &str = "scheduledjobs.jobtrigger.io";

/// Puts the CRD back however the test ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let path = std::env::temp_dir().join(format!("jtp-crd-{}.json", std::process::id()));
        let crd = serde_json::to_string(&ScheduledJob::crd()).expect("CRD JSON");
        std::fs::write(&path, crd).expect("write the CRD");
        let path = path.display().to_string();
        let applied = kubectl_output(&["apply", "--server-side", "--force-conflicts", "-f", &path]);
        let crd = format!("crd/{CRD}");
        let established = applied.status.success()
            && kubectl_output(&["wait", "--for", "condition=Established", &crd, "--timeout=60s"])
                .status
                .success();
        let _ = std::fs::remove_file(path);
        // A second panic while the test is already failing would abort the whole test binary.
        if !established && !std::thread::panicking() {
            panic!("restoring the CRD failed: {applied:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_without_its_crd_stops_with_what_to_do() {
    let client = jtp_testenv::cluster().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let _restore = Restore;
    if crds.get_opt(CRD).await.expect("read the CRD").is_some() {
        // Left-over ScheduledJobs whose operator is gone would hold the CRD's deletion forever.
        let all: Api<ScheduledJob> = Api::all(client.clone());
        for sj in all.list(&ListParams::default()).await.expect("list").items {
            let api: Api<ScheduledJob> = Api::namespaced(client.clone(), &sj.namespace().unwrap_or_default());
            let _ = api
                .patch(
                    &sj.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
                )
                .await;
        }
        crds.delete(CRD, &DeleteParams::default())
            .await
            .expect("delete the CRD");
        let deadline = Instant::now() + Duration::from_secs(60);
        while crds.get_opt(CRD).await.expect("read the CRD").is_some() {
            assert!(Instant::now() < deadline, "the CRD was not deleted in 60 s");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    let started = Instant::now();
    let mut operator = common::jtp()
        .args([
            "operator",
            "--no-leader-election",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", kubeconfig_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jtp operator");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = operator.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = operator.kill();
            panic!("jtp operator kept running without its CRD for 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stderr = std::io::read_to_string(operator.stderr.take().expect("stderr")).expect("read stderr");
    assert!(!status.success(), "exit status {status}; stderr:\n{stderr}");
    assert!(
        stderr.contains("CustomResourceDefinition (scheduledjobs.jobtrigger.io) is not installed")
            && stderr.contains("jtp crd | kubectl apply -f -"),
        "{stderr}"
    );
    // It looks for a while (a CRD just applied can answer 404 for a moment), then gives up.
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "took {:?}",
        started.elapsed()
    );
}
