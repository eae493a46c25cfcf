//! The test cluster end to end: real Job controller, scheduler, API server, and a real node
//! (kubelet, containerd, runc) running containers from images made on this machine.
//! Each test has its own namespace.

use std::path::Path;
use std::time::Duration;

use jtp_testenv::{TestNamespace, kubectl, wait_for};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStateTerminated, ContainerStateWaiting, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn client() -> kube::Client {
    jtp_testenv::cluster().await
}

fn from_json<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("test manifest matches the Kubernetes type")
}

fn pod(name: &str, container: Value, volumes: Value) -> Pod {
    from_json(json!({
        "metadata": { "name": name },
        "spec": { "restartPolicy": "Never", "containers": [container], "volumes": volumes },
    }))
}

fn terminated(pod: &Pod) -> Option<ContainerStateTerminated> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .terminated
        .clone()
}

fn waiting(pod: &Pod) -> Option<ContainerStateWaiting> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .clone()
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// A scratch directory on the host, for a container to write to through a hostPath volume.
fn host_scratch(ns: &TestNamespace) -> std::path::PathBuf {
    let dir = jtp_testenv::testenv_dir().join("test-scratch").join(ns.name());
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

#[tokio::test]
async fn failing_job_reports_exit_code_and_logs_through_the_api_server() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "job").await;
    let jobs: Api<Job> = ns.api();
    let job: Job = from_json(json!({
        "metadata": { "name": "fails" },
        "spec": {
            "backoffLimit": 0,
            "template": { "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main",
                    "image": "busybox:1.36",
                    // stdout and stderr are two pipes read apart by the runtime: lines written in the
                    // same instant may be logged in either order, so the second comes a moment later.
                    "command": ["sh", "-c", "echo out; sleep 1; echo err >&2; exit 3"],
                }],
            }},
        },
    }));
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create job");

    wait_for(&jobs, "fails", TIMEOUT, "end Failed", |j| {
        j.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
    })
    .await;

    let pods: Api<Pod> = ns.api();
    let list = pods
        .list(&ListParams::default().labels("job-name=fails"))
        .await
        .expect("list pods");
    assert_eq!(list.items.len(), 1, "backoffLimit 0 means exactly one pod");
    let pod = &list.items[0];
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("jtp-node")
    );
    assert_eq!(phase(pod), "Failed");
    let t = terminated(pod).expect("container terminated");
    assert_eq!(t.exit_code, 3);
    assert_eq!(t.reason.as_deref(), Some("Error"));
    assert!(t.started_at.is_some() && t.finished_at.is_some());

    let pod_name = pod.metadata.name.clone().expect("pod name");
    let logs = kubectl(&["logs", "-n", ns.name(), &pod_name]);
    assert_eq!(
        logs, "out\nerr\n",
        "kubectl logs returns stdout and stderr in order"
    );
    // The same through the client's pods/log.
    let via_client = pods.logs(&pod_name, &Default::default()).await.expect("pods/log");
    assert_eq!(via_client, "out\nerr\n");
    ns.cleanup().await;
}

#[tokio::test]
async fn unpullable_image_never_runs() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "pull").await;
    let scratch = host_scratch(&ns);
    let pods: Api<Pod> = ns.api();
    let p = pod(
        "unpullable",
        json!({
            "name": "main",
            "image": "unpullable.invalid/script:1",
            "command": ["touch", "/out/ran"],
            "volumeMounts": [{ "name": "out", "mountPath": "/out" }],
        }),
        json!([{ "name": "out", "hostPath": { "path": scratch.to_string_lossy() } }]),
    );
    pods.create(&PostParams::default(), &p).await.expect("create pod");
    let seen = wait_for(&pods, "unpullable", TIMEOUT, "report ImagePullBackOff", |p| {
        waiting(p).and_then(|w| w.reason).as_deref() == Some("ImagePullBackOff")
    })
    .await;
    assert_eq!(phase(&seen), "Pending");
    assert!(
        waiting(&seen)
            .and_then(|w| w.message)
            .is_some_and(|m| m.contains("unpullable.invalid/script:1"))
    );
    assert!(
        !scratch.join("ran").exists(),
        "the container's command must never run"
    );
    ns.cleanup().await;
}

#[tokio::test]
async fn crd_cel_rule_is_enforced_by_the_api_server() {
    let client = client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = from_json(json!({
        "metadata": { "name": "widgets.testenv.jobtrigger.io" },
        "spec": {
            "group": "testenv.jobtrigger.io",
            "names": { "kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList" },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": {
                        "type": "object",
                        "properties": { "min": { "type": "integer" }, "max": { "type": "integer" } },
                        "x-kubernetes-validations": [{ "rule": "self.min <= self.max", "message": "min must not exceed max" }],
                    }},
                }},
            }],
        },
    }));
    match crds.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {} // installed by an earlier run
        Err(e) => panic!("creating the CRD: {e}"),
    }
    wait_for(
        &crds,
        "widgets.testenv.jobtrigger.io",
        TIMEOUT,
        "be Established",
        |c| {
            c.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"))
        },
    )
    .await;

    let ns = TestNamespace::new(&client, "cel").await;
    let gvk = kube::api::GroupVersionKind::gvk("testenv.jobtrigger.io", "v1", "Widget");
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns.name(), &resource);
    let object = |name: &str, min: i64, max: i64| -> kube::api::DynamicObject {
        from_json(json!({
            "apiVersion": "testenv.jobtrigger.io/v1", "kind": "Widget",
            "metadata": { "name": name }, "spec": { "min": min, "max": max },
        }))
    };
    // Discovery of a new CRD can lag its Established condition: retry the valid create.
    let mut attempts = 0;
    loop {
        match widgets.create(&PostParams::default(), &object("ok", 1, 2)).await {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 404 && attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("creating a valid Widget: {e}"),
        }
    }
    let err = widgets
        .create(&PostParams::default(), &object("bad", 5, 1))
        .await
        .expect_err("the API server must reject min > max");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422, "{s:?}");
            assert!(
                s.message.contains("min must not exceed max"),
                "message was: {}",
                s.message
            );
        }
        other => panic!("expected an API error, got {other}"),
    }
    ns.cleanup().await;
}

#[tokio::test]
async fn configmap_script_runs_and_missing_executable_is_a_start_error() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "script").await;
    let cms: Api<ConfigMap> = ns.api();
    let cm: ConfigMap = from_json(json!({
        "metadata": { "name": "scripts" },
        "data": { "run.sh": "#!/bin/sh\necho \"script ran in $POD_NAMESPACE with $(ls /scripts)\"\nexit 0\n" },
    }));
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    let pods: Api<Pod> = ns.api();
    let script_pod = pod(
        "script",
        json!({
            "name": "main", "image": "busybox:1.36",
            "command": ["/scripts/run.sh"],
            "env": [{ "name": "POD_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } }],
            "volumeMounts": [{ "name": "scripts", "mountPath": "/scripts" }],
        }),
        json!([{ "name": "scripts", "configMap": { "name": "scripts", "defaultMode": 0o755 } }]),
    );
    pods.create(&PostParams::default(), &script_pod)
        .await
        .expect("create script pod");
    // Found through the container's own PATH, which points into the mounted volume.
    let via_path = pod(
        "via-path",
        json!({
            "name": "main", "image": "busybox:1.36",
            "command": ["run.sh"],
            "env": [
                { "name": "PATH", "value": "/scripts:/usr/bin:/bin" },
                { "name": "POD_NAMESPACE", "value": "by-path" },
            ],
            "volumeMounts": [{ "name": "scripts", "mountPath": "/scripts", "readOnly": true }],
        }),
        json!([{ "name": "scripts", "configMap": { "name": "scripts", "defaultMode": 0o755 } }]),
    );
    pods.create(&PostParams::default(), &via_path)
        .await
        .expect("create via-path pod");
    let missing = pod(
        "missing",
        json!({ "name": "main", "image": "busybox:1.36", "command": ["definitely-not-installed-jtp"] }),
        json!([]),
    );
    pods.create(&PostParams::default(), &missing)
        .await
        .expect("create missing pod");

    let done = wait_for(&pods, "script", TIMEOUT, "succeed", |p| phase(p) == "Succeeded").await;
    assert_eq!(terminated(&done).map(|t| t.exit_code), Some(0));
    let logs = kubectl(&["logs", "-n", ns.name(), "script"]);
    assert_eq!(logs, format!("script ran in {} with run.sh\n", ns.name()));

    wait_for(&pods, "via-path", TIMEOUT, "succeed", |p| phase(p) == "Succeeded").await;
    assert_eq!(
        kubectl(&["logs", "-n", ns.name(), "via-path"]),
        "script ran in by-path with run.sh\n"
    );

    let failed = wait_for(&pods, "missing", TIMEOUT, "fail to start", |p| {
        phase(p) == "Failed"
    })
    .await;
    let t = terminated(&failed).expect("terminated state");
    assert_eq!(t.reason.as_deref(), Some("StartError"));
    let message = t.message.unwrap_or_default();
    assert!(
        message.contains("executable file not found in $PATH"),
        "{message}"
    );
    ns.cleanup().await;
}

/// The host pids of processes whose command line contains `marker`.
fn host_pids_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

#[tokio::test]
async fn deleting_a_running_pod_stops_its_container() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "kill").await;
    let scratch = host_scratch(&ns);
    let pods: Api<Pod> = ns.api();
    // The shell's $0 carries a marker, so the container's process can be found on the host.
    // It notes the SIGTERM the kubelet sends, in a hostPath volume, and exits.
    let marker = format!("jtp-sleeper-{}", ns.name());
    let script = "trap 'echo terminated > /out/signal; exit 0' TERM; echo started > /out/signal; \
                  while true; do sleep 1; done";
    let mut p = pod(
        "sleeper",
        json!({
            "name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script, &marker],
            "volumeMounts": [{ "name": "out", "mountPath": "/out" }],
        }),
        json!([{ "name": "out", "hostPath": { "path": scratch.to_string_lossy() } }]),
    );
    if let Some(spec) = p.spec.as_mut() {
        spec.termination_grace_period_seconds = Some(10);
    }
    pods.create(&PostParams::default(), &p).await.expect("create pod");
    wait_for(&pods, "sleeper", TIMEOUT, "run", |p| phase(p) == "Running").await;
    wait_for_text(&scratch.join("signal"), "started").await;
    let running = host_pids_with(&marker);
    assert!(
        !running.is_empty(),
        "the container's shell should run on the host"
    );

    pods.delete("sleeper", &DeleteParams::default())
        .await
        .expect("delete pod");
    let deadline = std::time::Instant::now() + TIMEOUT;
    while pods.get_opt("sleeper").await.expect("get pod").is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "pod was not removed after its container was stopped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        std::fs::read_to_string(scratch.join("signal")).expect("signal file"),
        "terminated\n",
        "the container got SIGTERM"
    );
    assert_eq!(
        host_pids_with(&marker),
        Vec::<u32>::new(),
        "the container's processes {running:?} still run after the pod was deleted"
    );
    ns.cleanup().await;
}

async fn wait_for_text(file: &Path, text: &str) {
    for _ in 0..300 {
        if std::fs::read_to_string(file).is_ok_and(|t| t.trim() == text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never held {text:?}", file.display());
}

#[tokio::test]
async fn pinned_helm_reaches_the_cluster() {
    let _client = client().await;
    let version = jtp_testenv::helm(&["version", "--short"]);
    assert!(version.starts_with("v4."), "{version}");
    let releases = jtp_testenv::helm(&["list", "--all-namespaces", "--output", "json"]);
    assert!(releases.trim_start().starts_with('['), "{releases}");
}
