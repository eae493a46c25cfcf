//! The install path on the real cluster of testenv/: `helm lint` and `helm install` of the chart, every
//! example applied server-side, bad manifests rejected with messages that name the problem,
//! least-privilege RBAC proven with `kubectl auth can-i`, the operator binary run out of cluster with the
//! chart's operator ServiceAccount identity scheduling a job end to end; and the chart installed with the
//! project's own image (`scripts/build-image`) running in cluster: probes passing under the chart's
//! securityContext, a Run Now landing in PostgreSQL, the leader's pod killed and the standby taking over
//! with no duplicate run, and the portal reached through `kubectl port-forward` with a token from
//! `kubectl create token`: its API, and real Chromium logging in, seeing the jobs list at 1280 and
//! 390 px, and pressing Run Now (refused without the form's CSRF token) until the run's SUCCESS and
//! output show; and the chart's SQLite mode on a hostPath PersistentVolume: the run in the SQLite file
//! on the node, and still there for the new pods after both were stopped and started again.

mod common;

use jtp_crds::{RunStatus, Trigger};
use jtp_dashboard::testing::Browser;
use jtp_store::Store;
use jtp_testenv::{TestNamespace, kubeconfig_path, kubectl, kubectl_output};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> String {
    repo().join("charts/job-trigger-portal").display().to_string()
}

/// `helm …` with the testenv kubeconfig; panics with helm's output when it fails.
fn helm(args: &[&str]) -> String {
    let out = jtp_testenv::helm_output(args);
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl auth can-i`; `resource/sub` asks about a subresource (not an object named `sub`).
fn can_i(verb: &str, resource: &str, namespace: &str, user: &str) -> bool {
    let mut args = vec!["auth", "can-i", verb];
    match resource.split_once('/') {
        Some((resource, sub)) => args.extend([resource, "--subresource", sub]),
        None => args.push(resource),
    }
    args.extend(["-n", namespace, "--as", user]);
    let out = kubectl_output(&args);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_examples_rbac_and_the_operator_with_the_charts_identity() {
    let client = jtp_testenv::cluster().await;
    let ns = TestNamespace::new(&client, "chart").await;
    let namespace = ns.name().to_owned();
    let namespace = namespace.as_str();
    // Unique per run: the chart also makes cluster-scoped objects named after the release.
    let release = namespace;

    // The jobs live in a namespace of their own: the release's namespace runs none.
    let jobs_ns = TestNamespace::new(&client, "chart-jobs").await;
    let jobs = jobs_ns.name().to_owned();
    let jobs = jobs.as_str();
    let watched = format!("rbac.namespaces={{{namespace},{jobs}}}");

    let lint = helm(&["lint", &chart(), "--set", &watched]);
    assert!(lint.contains("0 chart(s) failed"), "{lint}");
    install(release, namespace, jobs, &["alerts.urlSecret=alert-urls"]);
    kubectl(&[
        "wait",
        "--for",
        "condition=Established",
        "crd/scheduledjobs.jobtrigger.io",
        "--timeout=60s",
    ]);
    let trust_env = operator_trust_env(release, namespace);

    // Least privilege, as the API server's authorizer sees it.
    let operator = format!("system:serviceaccount:{namespace}:{release}-operator");
    let portal = format!("system:serviceaccount:{namespace}:{release}-portal");
    for (verb, resource) in [
        ("watch", "scheduledjobs.jobtrigger.io"),
        ("patch", "scheduledjobs.jobtrigger.io/status"),
        ("create", "jobs.batch"),
        ("delete", "jobs.batch"),
        ("list", "pods"),
        ("get", "pods/log"),
        ("create", "events.events.k8s.io"),
        ("update", "leases.coordination.k8s.io"),
        ("get", "serviceaccounts"),
        ("list", "events"),
    ] {
        assert!(
            can_i(verb, resource, namespace, &operator),
            "operator cannot {verb} {resource}"
        );
    }
    assert!(can_i("get", "serviceaccounts", jobs, &operator));
    for verb in ["list", "patch", "create"] {
        assert!(
            !can_i(verb, "serviceaccounts", jobs, &operator),
            "operator may {verb} serviceaccounts"
        );
    }
    for (verb, resource) in [
        ("get", "secrets"),
        ("list", "configmaps"),
        ("create", "pods"),
        ("delete", "scheduledjobs.jobtrigger.io"),
        ("create", "scheduledjobs.jobtrigger.io"),
    ] {
        assert!(
            !can_i(verb, resource, namespace, &operator),
            "operator may {verb} {resource}"
        );
    }
    assert!(
        !can_i("create", "jobs.batch", "default", &operator),
        "namespaced RBAC leaks to other namespaces"
    );
    // The alert URLs' Secret, and only it, by name, in the release namespace only.
    let can_i_named = |verb: &str, object: &str, ns: &str| {
        let out = kubectl_output(&["auth", "can-i", verb, object, "-n", ns, "--as", &operator]);
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    assert!(
        can_i_named("get", "secret/alert-urls", namespace),
        "operator cannot get the alert URLs' Secret"
    );
    for (verb, object, ns) in [
        ("get", "secret/other", namespace),
        ("update", "secret/alert-urls", namespace),
        ("get", "secret/alert-urls", jobs),
    ] {
        assert!(
            !can_i_named(verb, object, ns),
            "operator may {verb} {object} in {ns}"
        );
    }
    for verb in ["list", "watch"] {
        assert!(
            !can_i(verb, "secrets", namespace, &operator),
            "operator may {verb} secrets"
        );
    }
    for (verb, resource) in [
        ("list", "scheduledjobs.jobtrigger.io"),
        ("patch", "scheduledjobs.jobtrigger.io"),
        ("impersonate-on:user-info:create", "scheduledjobs.jobtrigger.io"),
        ("impersonate-on:user-info:patch", "scheduledjobs.jobtrigger.io"),
        (
            "impersonate-on:serviceaccount:delete",
            "scheduledjobs.jobtrigger.io",
        ),
        ("create", "tokenreviews.authentication.k8s.io"),
        ("create", "subjectaccessreviews.authorization.k8s.io"),
        // The live output of runs in flight: their pods and logs, read-only.
        ("list", "pods"),
        ("get", "pods/log"),
    ] {
        assert!(
            can_i(verb, resource, namespace, &portal),
            "portal cannot {verb} {resource}"
        );
    }
    for (verb, resource) in [
        ("get", "secrets"),
        ("create", "jobs.batch"),
        ("create", "pods/exec"),
        ("delete", "pods"),
        ("patch", "scheduledjobs.jobtrigger.io/status"),
        // Creating and deleting jobs: only as the user.
        ("create", "scheduledjobs.jobtrigger.io"),
        ("delete", "scheduledjobs.jobtrigger.io"),
        // No legacy impersonation, and none for anything but ScheduledJobs.
        ("impersonate", "users"),
        ("impersonate", "serviceaccounts"),
        ("impersonate-on:user-info:get", "secrets"),
        ("impersonate-on:user-info:create", "pods"),
    ] {
        assert!(
            !can_i(verb, resource, namespace, &portal),
            "portal may {verb} {resource}"
        );
    }

    // Run Now has a right of its own: the chart's trigger role grants only `trigger`, and is
    // aggregated into the cluster's `edit` but not `view`; a team's own role with `patch` does not
    // include it.
    let bind = |user: &str, role: &str| {
        kubectl(&[
            "create",
            "rolebinding",
            &format!("can-i-{user}"),
            "-n",
            jobs,
            "--clusterrole",
            role,
            "--user",
            user,
        ]);
    };
    let trigger_role = format!("{release}-trigger");
    bind("run-only", &trigger_role);
    bind("an-editor", "edit");
    bind("a-viewer", "view");
    kubectl(&[
        "create",
        "clusterrole",
        &format!("{release}-test-patcher"),
        "--verb=get,list,patch",
        "--resource=scheduledjobs.jobtrigger.io",
    ]);
    bind("a-patcher", &format!("{release}-test-patcher"));
    let sj = "scheduledjobs.jobtrigger.io";
    // The aggregation controller adds the rule to `edit` shortly after install.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !can_i("trigger", sj, jobs, "an-editor") {
        assert!(
            Instant::now() < deadline,
            "the trigger role was not aggregated into edit within 60 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // who, may trigger, may patch
    let table = [
        ("run-only", true, false),
        ("a-patcher", false, true),
        ("an-editor", true, false),
        ("a-viewer", false, false),
        (portal.as_str(), false, true),
    ];
    for (who, trigger, patch) in table {
        assert_eq!(can_i("trigger", sj, jobs, who), trigger, "{who} may trigger");
        assert_eq!(can_i("patch", sj, jobs, who), patch, "{who} may patch");
    }
    assert!(
        !can_i("get", sj, jobs, "run-only"),
        "the trigger role grants only trigger"
    );
    assert!(
        !can_i("trigger", sj, namespace, "run-only"),
        "a RoleBinding stays in its namespace"
    );

    // The session Secret the chart generated, mounted as the portal Deployment mounts it, under the
    // portal's security context, is readable by the portal's user (what `--session-secret-file`
    // reads in every replica).
    let generated = kubectl(&[
        "get",
        "secret",
        &format!("{release}-session"),
        "-n",
        namespace,
        "-o",
        "jsonpath={.data.secrets}",
    ]);
    assert!(!generated.trim().is_empty(), "no generated session secret");
    session_secret_is_readable_by_the_portal(release, namespace, &watched);

    // Every example applies cleanly, server-side.
    let mut applied = 0;
    for entry in std::fs::read_dir(repo().join("examples")).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let file = path.display().to_string();
            kubectl(&[
                "apply",
                "--server-side",
                "--field-manager",
                "chart-test",
                "-n",
                jobs,
                "-f",
                &file,
            ]);
            applied += 1;
        }
    }
    assert!(applied >= 8, "expected every example, applied {applied}");

    // With the portal's own token, writing as a user works exactly as far as that user's rights
    // go, and only for ScheduledJobs.
    let portal_token = kubectl(&[
        "create",
        "token",
        &format!("{release}-portal"),
        "-n",
        namespace,
        "--duration=1h",
    ]);
    let admin_config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig_path()).expect("admin kubeconfig"))
            .expect("yaml");
    let portal_dir = tempfile::tempdir().expect("temp dir");
    let portal_kubeconfig = portal_dir.path().join("portal.kubeconfig");
    let cluster = &admin_config["clusters"][0]["cluster"];
    std::fs::write(
        &portal_kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {}\ncontexts:\n- name: c\n  context: {{ cluster: c, user: sa }}\ncurrent-context: c\n",
            cluster["server"].as_str().expect("server"),
            cluster["certificate-authority"].as_str().expect("CA path"),
            portal_token.trim()
        ),
    )
    .expect("write kubeconfig");
    let as_portal = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", portal_kubeconfig.to_str().expect("path")];
        all.extend_from_slice(args);
        kubectl_output(&all)
    };
    // A merge patch, as the portal sends it (no read first: the portal reads as itself).
    let annotate_as = |user: &str| {
        let patch = format!(r#"{{"metadata":{{"annotations":{{"written-by-portal-as":"{user}"}}}}}}"#);
        as_portal(&[
            "patch",
            "-n",
            jobs,
            "sj/rebuild-index",
            "--type",
            "merge",
            "-p",
            &patch,
            "--as",
            user,
        ])
    };
    let allowed = annotate_as("a-patcher");
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    for user in ["a-viewer", "run-only"] {
        let refused = annotate_as(user);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && stderr.contains(&format!("User \"{user}\" cannot ")),
            "{user}: {stderr}"
        );
    }
    let secrets = as_portal(&["get", "secrets", "-n", jobs, "--as", "a-patcher"]);
    let stderr = String::from_utf8_lossy(&secrets.stderr);
    assert!(
        !secrets.status.success() && stderr.contains("impersonate-on:user-info:list"),
        "the portal may not read secrets as anyone: {stderr}"
    );

    // Bad manifests are rejected by the API server with a message that names the problem.
    let bad = |schedule: &str, extra: &str| {
        format!(
            "apiVersion: jobtrigger.io/v1alpha1\nkind: ScheduledJob\nmetadata: {{ name: bad }}\nspec:\n  schedule: {schedule}\n  script: {{ inline: echo }}\n{extra}"
        )
    };
    let cases = [
        (bad("{}", ""), "set exactly one schedule form"),
        (
            bad("{ daily: { at: \"09:00\" }, hourly: { minute: 5 } }", ""),
            "set exactly one schedule form",
        ),
        (
            bad("{ hourly: { minute: 60 } }", ""),
            "spec.schedule.hourly.minute",
        ),
        (bad("{ daily: { at: \"24:00\" } }", ""), "spec.schedule.daily.at"),
        (bad("{ daily: { at: \"9am\" } }", ""), "spec.schedule.daily.at"),
        (
            bad("{ monthly: { day: 32, at: \"09:00\" } }", ""),
            "spec.schedule.monthly.day",
        ),
        (
            bad("{ interval: { every: 5, unit: seconds } }", ""),
            "an interval must be at least 10 seconds",
        ),
        (
            bad("{ weekly: { days: [], at: \"09:00\" } }", ""),
            "spec.schedule.weekly.days",
        ),
        (bad("{ weekly: { days: [funday], at: \"09:00\" } }", ""), "funday"),
        (bad("{ cron: \"* * *\" }", ""), "spec.schedule.cron"),
        (
            bad("{ manual: {} }", "  concurrencyPolicy: Sometimes\n"),
            "Sometimes",
        ),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, (manifest, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad-{i}.yaml"));
        std::fs::write(&file, manifest).expect("write manifest");
        let out = kubectl_output(&[
            "apply",
            "--server-side",
            "-n",
            namespace,
            "-f",
            &file.display().to_string(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted:\n{manifest}");
        assert!(
            stderr.contains(expected),
            "rejection of\n{manifest}\nshould name {expected:?}: {stderr}"
        );
    }

    // The operator, out of cluster, with nothing but the chart's operator ServiceAccount and the
    // chart's rules of who may run as whom (its own namespace as the downward API gives it).
    let token = kubectl(&[
        "create",
        "token",
        &format!("{release}-operator"),
        "-n",
        namespace,
        "--duration=1h",
    ]);
    let admin: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig_path()).expect("admin kubeconfig"))
            .expect("yaml");
    let cluster = &admin["clusters"][0]["cluster"];
    let kubeconfig = dir.path().join("operator.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {}\ncontexts:\n- name: c\n  context: {{ cluster: c, user: sa, namespace: {namespace} }}\ncurrent-context: c\n",
            cluster["server"].as_str().expect("server"),
            cluster["certificate-authority"].as_str().expect("CA path"),
            token.trim()
        ),
    )
    .expect("write kubeconfig");
    let database = format!("sqlite://{}", dir.path().join("jtp.db").display());
    let log = std::fs::File::create(dir.path().join("operator.log")).expect("log");
    let _operator = Killed(
        common::jtp()
            .args([
                "operator",
                "--namespaces",
                &format!("{namespace},{jobs}"),
                "--lease-namespace",
                namespace,
            ])
            .envs(trust_env)
            .env("POD_NAMESPACE", namespace)
            .args([
                "--database-url",
                &database,
                "--metrics-addr",
                "127.0.0.1:0",
                "--identity",
                "chart-test",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start jtp operator"),
    );
    // The same job in the release's namespace is refused, with the reason, and gets no Job.
    let example = repo().join("examples/manual.yaml").display().to_string();
    kubectl(&["apply", "-n", namespace, "-f", &example]);
    kubectl(&[
        "wait",
        "-n",
        namespace,
        "sj/rebuild-index",
        "--for=condition=Valid=False",
        "--timeout=60s",
    ]);
    let message = kubectl(&[
        "get",
        "-n",
        namespace,
        "sj/rebuild-index",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Valid\")].message}",
    ]);
    assert!(
        message.contains("metadata.namespace") && message.contains(namespace),
        "{message}"
    );
    kubectl(&[
        "annotate",
        "-n",
        jobs,
        "sj/rebuild-index",
        &format!(
            "jobtrigger.io/run-now={}",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        "jobtrigger.io/run-now-requester=ops-bob",
        "--overwrite",
    ]);
    let store = Store::connect(&database).await.expect("operator's database");
    let started = Instant::now();
    let run = loop {
        let job = store.get_job_by_name(jobs, "rebuild-index").await.ok();
        let runs = match &job {
            Some(job) => store.list_runs(job.id, 10, 0).await.expect("runs").items,
            None => Vec::new(),
        };
        if let Some(run) = runs.into_iter().find(|r| r.status != RunStatus::Running) {
            break run;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let log = std::fs::read_to_string(dir.path().join("operator.log")).unwrap_or_default();
            panic!("the operator with the chart's identity recorded no run in 90 s; its log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!((run.status, run.trigger), (RunStatus::Success, Trigger::Manual));
    assert_eq!(
        run.requester.as_deref(),
        Some("ops-bob"),
        "the kubectl user's requester annotation"
    );
    // Consumed: a later run-now that names nobody is not credited to ops-bob.
    let left = kubectl(&[
        "get",
        "-n",
        jobs,
        "sj/rebuild-index",
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    assert!(!left.contains("run-now-requester"), "{left}");
    let output = store.get_run(run.id).await.expect("run").log_output;
    assert!(
        output.contains("rebuilding the index") && output.contains("warning: this is a demo"),
        "{output}"
    );
    let log = std::fs::read_to_string(dir.path().join("operator.log")).unwrap_or_default();
    assert!(
        !log.contains("forbidden"),
        "the chart's RBAC refused the operator something:\n{log}"
    );

    let in_release = kubectl(&["get", "jobs.batch", "-n", namespace, "-o", "name"]);
    assert!(
        in_release.trim().is_empty(),
        "a Job in the release namespace: {in_release}"
    );

    delete_jobs_while_an_operator_runs(&[namespace, jobs]);
    helm(&["uninstall", release, "--namespace", namespace]);
    // The chart's SQLite claim (default values): no PVC protection controller runs in testenv.
    remove_finalizers("pvc", &format!("{release}-data"), Some(namespace));
    kubectl(&["delete", "clusterrole", &format!("{release}-test-patcher")]);
    ns.cleanup().await;
    jobs_ns.cleanup().await;
}

/// Runs busybox with the portal Deployment's pod and container security context and its session
/// volume and mount, as rendered by the chart, and checks it reads the whole generated secret.
fn session_secret_is_readable_by_the_portal(release: &str, namespace: &str, watched: &str) {
    let rendered = helm(&[
        "template",
        release,
        &chart(),
        "--namespace",
        namespace,
        "--set",
        watched,
    ]);
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&rendered)
        .filter_map(|doc| serde_yaml::Value::deserialize(doc).ok())
        .collect();
    let portal = find(&docs, "Deployment", &format!("{release}-portal"));
    let spec = &portal["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let pick = |list: &serde_yaml::Value| {
        list.as_sequence()
            .expect("a list")
            .iter()
            .find(|v| v["name"].as_str() == Some("session"))
            .cloned()
            .expect("the session volume and mount")
    };
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "session-reader" },
        "spec": {
            "restartPolicy": "Never",
            "securityContext": spec["securityContext"],
            "volumes": [pick(&spec["volumes"])],
            "containers": [{
                "name": "read",
                "image": "busybox:1.36",
                "command": ["sh", "-c", "wc -c < /etc/jtp/session/secrets"],
                "securityContext": container["securityContext"],
                "volumeMounts": [pick(&container["volumeMounts"])],
            }],
        },
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("pod.json");
    std::fs::write(&file, pod.to_string()).expect("write pod");
    kubectl(&["apply", "-n", namespace, "-f", &file.display().to_string()]);
    let done = kubectl_output(&[
        "wait",
        "-n",
        namespace,
        "pod/session-reader",
        "--for=jsonpath={.status.phase}=Succeeded",
        "--timeout=120s",
    ]);
    let logs = kubectl(&["logs", "-n", namespace, "pod/session-reader"]);
    assert!(done.status.success(), "the reader did not succeed: {logs}");
    assert_eq!(
        logs.trim(),
        "48",
        "the portal's user reads the 48-character secret"
    );
    kubectl(&["delete", "pod", "-n", namespace, "session-reader", "--wait=false"]);
}

/// The environment the chart gives the operator about who may run as whom, from `helm template`
/// (the downward API's POD_NAMESPACE checked to be there, its value left to the caller).
fn operator_trust_env(release: &str, namespace: &str) -> Vec<(String, String)> {
    let rendered = helm(&["template", release, &chart(), "--namespace", namespace]);
    let deployment = serde_yaml::Deserializer::from_str(&rendered)
        .filter_map(|doc| serde_yaml::Value::deserialize(doc).ok())
        .find(|doc| {
            doc["kind"].as_str() == Some("Deployment")
                && doc["metadata"]["name"].as_str() == Some(&format!("{release}-operator"))
        })
        .expect("the operator Deployment");
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .expect("env")
        .clone();
    let downward = env.iter().find(|e| e["name"].as_str() == Some("POD_NAMESPACE"));
    assert_eq!(
        downward.and_then(|e| e["valueFrom"]["fieldRef"]["fieldPath"].as_str()),
        Some("metadata.namespace"),
        "{env:?}"
    );
    let out: Vec<(String, String)> = env
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.to_owned(), e["value"].as_str()?.to_owned())))
        .filter(|(name, _)| {
            [
                "JTP_ALLOW_OWN_NAMESPACE",
                "JTP_REFUSED_NAMESPACES",
                "JTP_PROTECTED_SERVICE_ACCOUNTS",
            ]
            .contains(&name.as_str())
        })
        .collect();
    assert_eq!(out.len(), 3, "{env:?}");
    assert!(
        out.contains(&(
            "JTP_PROTECTED_SERVICE_ACCOUNTS".into(),
            format!("{namespace}/{release}-operator,{namespace}/{release}-portal")
        )),
        "{out:?}"
    );
    out
}

/// The image `scripts/build-image` writes (`JTP_IMAGE_ARCHIVE` overrides).
fn image_archive() -> PathBuf {
    if let Some(path) = std::env::var_os("JTP_IMAGE_ARCHIVE") {
        return PathBuf::from(path);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo().join("target"), PathBuf::from)
        .join("image/jtp.tar")
}

/// The node's InternalIP: where pods reach the test PostgreSQL (`scripts/postgres-up` with
/// `JTP_PG_LISTEN`, as `scripts/test` starts it).
async fn node_ip(client: &kube::Client) -> String {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let list = nodes.list(&Default::default()).await.expect("list nodes");
    list.items
        .iter()
        .flat_map(|n| n.status.iter().flat_map(|s| s.addresses.iter().flatten()))
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .expect("a node with an InternalIP")
}

/// The holder of the operator's leader Lease, once there is one.
async fn leader(namespace: &str, not: Option<&str>) -> String {
    let started = Instant::now();
    loop {
        let out = kubectl_output(&[
            "get",
            "lease",
            "jtp-operator",
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ]);
        let holder = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !holder.is_empty() && Some(holder.as_str()) != not {
            return holder;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no new leader in 120 s (holder {holder:?}, not {not:?})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Finished runs of `name`, waiting until there are `count`.
async fn finished_runs(
    store: &Store,
    namespace: &str,
    name: &str,
    count: usize,
) -> Vec<jtp_store::RunSummary> {
    let started = Instant::now();
    loop {
        let runs = match store.get_job_by_name(namespace, name).await {
            Ok(job) => store.list_runs(job.id, 10, 0).await.expect("runs").items,
            Err(_) => Vec::new(),
        };
        let done: Vec<_> = runs
            .into_iter()
            .filter(|r| r.status != RunStatus::Running)
            .collect();
        if done.len() >= count {
            return done;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let logs = kubectl_output(&[
                "logs",
                "-n",
                namespace,
                "-l",
                "app.kubernetes.io/component=operator",
                "--tail=50",
            ]);
            panic!(
                "{name}: {} of {count} runs finished in 120 s; operator logs:\n{}",
                done.len(),
                String::from_utf8_lossy(&logs.stdout)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn run_now(namespace: &str, name: &str, value: &str) {
    kubectl(&[
        "annotate",
        "-n",
        namespace,
        &format!("sj/{name}"),
        &format!("jobtrigger.io/run-now={value}"),
        "--overwrite",
    ]);
}

/// `kubectl port-forward` to a Service, on a free local port; killed when dropped.
fn port_forward(namespace: &str, target: &str) -> (Killed, u16) {
    let mut child = Command::new(jtp_testenv::tool_path("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args([
            "port-forward",
            "-n",
            namespace,
            target,
            "--address",
            "127.0.0.1",
            ":80",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kubectl port-forward");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("read port-forward");
    // kubectl prints a line per connection: keep its stdout open and drained, or it fails writing.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    // "Forwarding from 127.0.0.1:PORT -> 8080"
    let port = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected port-forward output: {line:?}"));
    (Killed(child), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_runs_the_projects_image_in_cluster_with_leader_election_and_port_forward() {
    let (client, ns, jobs_ns) = in_cluster("incluster").await;
    let (namespace, jobs) = (ns.name().to_owned(), jobs_ns.name().to_owned());
    let (namespace, jobs) = (namespace.as_str(), jobs.as_str());
    let release = namespace;

    // A database of its own on the test PostgreSQL; pods reach it on the node's address.
    let server = jtp_store::testing::postgres_server_url();
    let (db_name, db_url) = jtp_store::testing::create_database(&server, "incluster").await;
    let mut pod_url = url::Url::parse(&db_url).expect("database URL");
    pod_url.set_host(Some(&node_ip(&client).await)).expect("host");
    kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "-n",
        namespace,
        &format!("--from-literal=url={pod_url}"),
    ]);
    install(
        release,
        namespace,
        jobs,
        &[
            "image.repository=job-trigger-portal",
            "database.existingSecret=db",
        ],
    );
    // Ready means the chart's probes pass, with its non-root, read-only securityContext.
    wait_ready(release, namespace);
    let first = leader(namespace, None).await;

    let example = repo().join("examples/manual.yaml").display().to_string();
    kubectl(&["apply", "-n", jobs, "-f", &example]);
    let store = Store::connect(&db_url).await.expect("the release's database");
    run_now(jobs, "rebuild-index", "2026-01-01T00:00:00Z");
    let runs = finished_runs(&store, jobs, "rebuild-index", 1).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (runs[0].status, runs[0].trigger),
        (RunStatus::Success, Trigger::Manual)
    );
    let output = store.get_run(runs[0].id).await.expect("run").log_output;
    assert!(
        output.contains("rebuilding the index") && output.contains("warning: this is a demo"),
        "{output}"
    );

    // The leader's pod dies; the standby takes the Lease and serves the next Run Now, once.
    kubectl(&[
        "delete",
        "pod",
        "-n",
        namespace,
        &first,
        "--grace-period=0",
        "--force",
    ]);
    let second = leader(namespace, Some(&first)).await;
    assert_ne!(first, second);
    run_now(jobs, "rebuild-index", "2026-01-01T00:01:00Z");
    finished_runs(&store, jobs, "rebuild-index", 2).await;
    // Both operators have seen both annotations by now; neither may have added a run.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let runs = finished_runs(&store, jobs, "rebuild-index", 2).await;
    assert_eq!(runs.len(), 2, "exactly one run per Run Now: {runs:?}");

    // The portal, through kubectl port-forward (the kubelet's streaming), with a Kubernetes token.
    let token = portal_user(release, namespace, jobs, "runner");
    let (_forward, port) = port_forward(namespace, &format!("svc/{release}-portal"));
    let base = format!("http://127.0.0.1:{port}");
    let health = reqwest::get(format!("{base}/healthz"))
        .await
        .expect("GET /healthz through port-forward");
    assert!(health.status().is_success(), "{health:?}");
    let listed = portal_get(&base, &token, "/api/v1/jobs").await;
    assert!(listed.to_string().contains("rebuild-index"), "{listed}");

    // Real Chromium through the same port-forward: log in with the token, the jobs list, Run Now.
    let b = Browser::start().await;
    b.log_in(&base, &token).await;
    let row = format!("tr[data-job='{jobs}/rebuild-index']");
    for (width, height) in [(1280, 900), (390, 844)] {
        b.set_viewport(width, height).await;
        b.goto(&format!("{base}/")).await;
        b.find(&row).await;
        b.assert_nothing_covered("#jobs-table", &format!("in-cluster-jobs-{width}"))
            .await;
    }
    b.set_viewport(1440, 900).await;
    let job_page = format!("{base}/jobs/{jobs}/rebuild-index");
    // The Run Now form is CSRF protected: without its token the portal refuses, and no run starts.
    b.goto(&job_page).await;
    b.find("#run-now").await;
    b.eval("document.querySelectorAll('input[name=csrf]').forEach(i => i.remove()); return null;")
        .await;
    b.click("#run-now").await;
    let refusal = b.text("#error-message").await;
    assert!(refusal.contains("no CSRF token"), "{refusal}");
    b.goto(&job_page).await;
    b.click("#run-now").await;
    b.wait_text("#flash", Duration::from_secs(30), |t| {
        t.contains("Run Now requested for rebuild-index")
    })
    .await;
    // The operator runs it in a pod; the panel shows it reach SUCCESS, credited to the token's user
    // (a service account, which the Trigger cell shows as NS/NAME).
    let by = format!("by {namespace}/runner");
    b.wait_text("#runs-table tbody tr.run-row", Duration::from_secs(120), |t| {
        t.contains(&by) && t.contains("service account") && t.contains("SUCCESS")
    })
    .await;
    b.click("#runs-table tbody tr.run-row a").await;
    let output = b.text("#output-text").await;
    assert!(
        output.contains("rebuilding the index") && output.contains("warning: this is a demo"),
        "{output}"
    );
    b.set_viewport(390, 844).await;
    b.screenshot("in-cluster-output-390").await;
    b.close().await;
    let runs = finished_runs(&store, jobs, "rebuild-index", 3).await;
    assert_eq!(
        runs.len(),
        3,
        "one run per Run Now, none for the refused one: {runs:?}"
    );

    delete_jobs_while_an_operator_runs(&[jobs]);
    helm(&["uninstall", release, "--namespace", namespace]);
    store.close().await;
    jtp_store::testing::drop_database(&server, &db_name).await;
    ns.cleanup().await;
    jobs_ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_in_sqlite_mode_keeps_runs_on_a_persistent_volume_across_pod_restarts() {
    let (_client, ns, jobs_ns) = in_cluster("sqlite").await;
    let (namespace, jobs) = (ns.name().to_owned(), jobs_ns.name().to_owned());
    let (namespace, jobs) = (namespace.as_str(), jobs.as_str());
    let release = namespace;

    // The volume: a directory on the node (this machine), owned by the chart's user, since a
    // hostPath volume gets no fsGroup ownership change.
    let pod_security = rendered(&[])
        .iter()
        .find(|d| d["kind"].as_str() == Some("Deployment"))
        .map(|d| d["spec"]["template"]["spec"]["securityContext"].clone())
        .expect("a Deployment");
    let user = |key: &str| {
        let id = pod_security[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {pod_security:?}"));
        u32::try_from(id).expect("a uid")
    };
    let (uid, gid) = (user("runAsUser"), user("runAsGroup"));
    // In /tmp, which every user may traverse (a TMPDIR below /root would not be).
    let data = tempfile::Builder::new()
        .prefix("jtp-sqlite-volume-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    std::os::unix::fs::chown(data.path(), Some(uid), Some(gid)).expect("chown the volume");

    // No database Secret: the chart's SQLite mode, its PersistentVolumeClaim `<release>-data`.
    install(
        release,
        namespace,
        jobs,
        &["image.repository=job-trigger-portal", "database.sqlite.size=64Mi"],
    );
    let _volume = HostPathVolume::bind(namespace, &format!("{release}-data"), data.path(), "64Mi");
    wait_ready(release, namespace);

    // A run by the operator's pod, read through the portal's pod from the shared file.
    let example = repo().join("examples/manual.yaml").display().to_string();
    kubectl(&["apply", "-n", jobs, "-f", &example]);
    let token = portal_user(release, namespace, jobs, "reader");
    run_now(jobs, "rebuild-index", "2026-01-01T00:00:00Z");
    let first = {
        let (_forward, port) = port_forward(namespace, &format!("svc/{release}-portal"));
        let runs = portal_finished_runs(&format!("http://127.0.0.1:{port}"), &token, jobs, 1).await;
        runs[0]["id"].as_i64().expect("run id")
    };

    // Both pods go; the run is in the SQLite file on the node, with its output.
    restart_pods(release, namespace, async || {
        let url = format!("sqlite://{}", data.path().join("jtp.db").display());
        // Read only what the pods wrote: no migration of the test's own.
        let options = jtp_store::StoreOptions {
            migrate: false,
            ..Default::default()
        };
        let store = Store::connect_with(&url, options)
            .await
            .expect("the chart's SQLite file");
        let job = store
            .get_job_by_name(jobs, "rebuild-index")
            .await
            .expect("the job");
        let runs = store.list_runs(job.id, 10, 0).await.expect("runs").items;
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(
            (runs[0].id, runs[0].status, runs[0].trigger),
            (first, RunStatus::Success, Trigger::Manual)
        );
        let output = store.get_run(first).await.expect("run").log_output;
        assert!(output.contains("rebuilding the index"), "{output}");
        store.close().await;
    })
    .await;
    // The test opened the file as root: hand whatever it made back to the chart's user.
    for entry in std::fs::read_dir(data.path()).expect("the volume") {
        let path = entry.expect("entry").path();
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
    }

    // The new pods see the old run, and the new operator adds the next one to the same file.
    let (_forward, port) = port_forward(namespace, &format!("svc/{release}-portal"));
    let base = format!("http://127.0.0.1:{port}");
    let old = portal_finished_runs(&base, &token, jobs, 1).await;
    assert_eq!(old[0]["id"].as_i64(), Some(first), "{old:?}");
    run_now(jobs, "rebuild-index", "2026-01-01T00:01:00Z");
    let runs = portal_finished_runs(&base, &token, jobs, 2).await;
    let ids: Vec<_> = runs.iter().filter_map(|r| r["id"].as_i64()).collect();
    assert!(ids.len() == 2 && ids.contains(&first), "{runs:?}");
    assert!(runs.iter().all(|r| r["status"] == "SUCCESS"), "{runs:?}");

    delete_jobs_while_an_operator_runs(&[jobs]);
    helm(&["uninstall", release, "--namespace", namespace]);
    ns.cleanup().await;
    jobs_ns.cleanup().await;
}

/// A hostPath PersistentVolume on `dir` for the claim `namespace/claim`, bound to it; on drop the
/// claim and the volume are deleted.
///
/// testenv's controller-manager runs no persistentvolume-binder (nor the PV/PVC protection
/// controllers), so nothing would bind the chart's claim: this writes what that controller writes
/// for a pre-bound volume (the PV's `claimRef` with the claim's uid, the claim's `volumeName` and
/// `bind-completed` annotation, both `Bound`), which is what the scheduler and the kubelet read
/// before they mount the volume. On drop it also removes the protection finalizers that no
/// controller would remove.
struct HostPathVolume {
    namespace: String,
    claim: String,
    name: String,
}

impl HostPathVolume {
    fn bind(namespace: &str, claim: &str, dir: &Path, size: &str) -> Self {
        let this = Self {
            namespace: namespace.to_owned(),
            claim: claim.to_owned(),
            name: format!("{namespace}-data"),
        };
        let uid = kubectl(&[
            "get",
            "pvc",
            claim,
            "-n",
            namespace,
            "-o",
            "jsonpath={.metadata.uid}",
        ]);
        let volume = serde_json::json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": { "name": this.name },
            "spec": {
                "capacity": { "storage": size },
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": { "path": dir, "type": "Directory" },
                "claimRef": { "kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": namespace, "name": claim, "uid": uid.trim() },
            },
        });
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), volume.to_string()).expect("write the volume");
        kubectl(&["create", "-f", &file.path().display().to_string()]);
        let bound = r#"{"status":{"phase":"Bound"}}"#;
        kubectl(&[
            "patch",
            "pv",
            &this.name,
            "--subresource=status",
            "--type=merge",
            "-p",
            bound,
        ]);
        let claim_spec = serde_json::json!({
            "metadata": { "annotations": { "pv.kubernetes.io/bind-completed": "yes" } },
            "spec": { "volumeName": this.name },
        });
        let claim_status = serde_json::json!({
            "status": { "phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": { "storage": size } },
        });
        for (patch, sub) in [(claim_spec, None), (claim_status, Some("--subresource=status"))] {
            let patch = patch.to_string();
            let mut args = vec![
                "patch",
                "pvc",
                claim,
                "-n",
                namespace,
                "--type=merge",
                "-p",
                &patch,
            ];
            args.extend(sub);
            kubectl(&args);
        }
        this
    }
}

impl Drop for HostPathVolume {
    fn drop(&mut self) {
        let ns = self.namespace.as_str();
        let claim = [
            "delete",
            "pvc",
            &self.claim,
            "-n",
            ns,
            "--wait=false",
            "--ignore-not-found",
        ];
        let _ = kubectl_output(&claim);
        remove_finalizers("pvc", &self.claim, Some(ns));
        let _ = kubectl_output(&["delete", "pv", &self.name, "--wait=false", "--ignore-not-found"]);
        remove_finalizers("pv", &self.name, None);
    }
}

/// Drops the finalizers of `kind/name` (ignoring failures, e.g. when it is gone already).
fn remove_finalizers(kind: &str, name: &str, namespace: Option<&str>) {
    let none = r#"{"metadata":{"finalizers":null}}"#;
    let mut args = vec!["patch", kind, name, "--type=merge", "-p", none];
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    let _ = kubectl_output(&args);
}

/// Deletes the ScheduledJobs of `namespaces` while an operator still runs to remove its finalizer
/// (`jobtrigger.io/sql-mirror`), so the test namespaces can go once the operator is uninstalled.
fn delete_jobs_while_an_operator_runs(namespaces: &[&str]) {
    for ns in namespaces {
        kubectl(&[
            "delete",
            "scheduledjobs.jobtrigger.io",
            "--all",
            "-n",
            ns,
            "--timeout=60s",
        ]);
    }
}

/// Scales the release's Deployments to 0, runs `while_down` once their pods are gone, and scales
/// them back up until the new pods are Ready.
async fn restart_pods(release: &str, namespace: &str, while_down: impl AsyncFnOnce()) {
    let deployments = [
        format!("deployment/{release}-operator"),
        format!("deployment/{release}-portal"),
    ];
    let scale = |replicas: &str| {
        let mut args = vec!["scale", "-n", namespace, replicas];
        args.extend(deployments.iter().map(String::as_str));
        kubectl(&args);
    };
    scale("--replicas=0");
    let selector = format!("app.kubernetes.io/instance={release}");
    let started = Instant::now();
    while !kubectl(&["get", "pods", "-n", namespace, "-l", &selector, "-o", "name"])
        .trim()
        .is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the release's pods did not stop in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    while_down().await;
    scale("--replicas=1");
    wait_ready(release, namespace);
}

/// The finished runs of the example `rebuild-index` in `jobs`, as the portal's API lists them,
/// waiting until there are `count`.
async fn portal_finished_runs(base: &str, token: &str, jobs: &str, count: usize) -> Vec<serde_json::Value> {
    let path = format!("/api/v1/jobs/{jobs}/rebuild-index/runs");
    let started = Instant::now();
    loop {
        // Until the operator has put the job in SQL, the portal answers 404.
        let list = match portal_fetch(base, token, &path).await {
            Ok(list) => list,
            Err(e) => serde_json::Value::String(e),
        };
        let done: Vec<_> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["status"] != "RUNNING")
            .cloned()
            .collect();
        if done.len() >= count {
            return done;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{} of {count} runs finished in 120 s: {list}",
            done.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The cluster with the project's image on the node, and two fresh namespaces: `<prefix>-…` for
/// a release and `<prefix>-jobs-…` for its jobs (the release's namespace runs none).
async fn in_cluster(prefix: &str) -> (kube::Client, TestNamespace, TestNamespace) {
    let client = jtp_testenv::cluster().await;
    jtp_testenv::import_image(&image_archive());
    let ns = TestNamespace::new(&client, prefix).await;
    let jobs = TestNamespace::new(&client, &format!("{prefix}-jobs")).await;
    (client, ns, jobs)
}

/// `helm install` of the chart as `release` in `namespace`, watching `namespace` and `jobs`, with
/// the values `sets`.
fn install(release: &str, namespace: &str, jobs: &str, sets: &[&str]) {
    let watched = format!("rbac.namespaces={{{namespace},{jobs}}}");
    let mut args = vec![
        "install",
        release,
        &*CHART_PATH,
        "--namespace",
        namespace,
        "--set",
        &watched,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    helm(&args);
}

/// Waits until the release's operator and portal Deployments are rolled out: their pods Ready,
/// which means the chart's probes pass; panics with the pods' description otherwise.
fn wait_ready(release: &str, namespace: &str) {
    for deployment in ["operator", "portal"] {
        let out = kubectl_output(&[
            "rollout",
            "status",
            "-n",
            namespace,
            &format!("deployment/{release}-{deployment}"),
            "--timeout=180s",
        ]);
        if !out.status.success() {
            let pods = kubectl_output(&["describe", "pods", "-n", namespace]);
            panic!(
                "{deployment} did not become ready: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&pods.stdout)
            );
        }
    }
}

/// A ServiceAccount `name` in `namespace` that may read the ScheduledJobs of `jobs` and Run Now
/// there (the chart's `<release>-trigger` role, bound as the README says); returns a token of it
/// from `kubectl create token`, which the portal accepts (TokenReview).
fn portal_user(release: &str, namespace: &str, jobs: &str, name: &str) -> String {
    let account = format!("--serviceaccount={namespace}:{name}");
    kubectl(&["create", "serviceaccount", name, "-n", namespace]);
    kubectl(&[
        "create",
        "role",
        name,
        "-n",
        jobs,
        "--verb=get,list,watch",
        "--resource=scheduledjobs.jobtrigger.io",
    ]);
    kubectl(&[
        "create",
        "rolebinding",
        name,
        "-n",
        jobs,
        "--role",
        name,
        &account,
    ]);
    let trigger = format!("{release}-trigger");
    let binding = format!("{name}-trigger");
    kubectl(&[
        "create",
        "rolebinding",
        &binding,
        "-n",
        jobs,
        "--clusterrole",
        &trigger,
        &account,
    ]);
    let token = kubectl(&["create", "token", name, "-n", namespace, "--duration=1h"]);
    token.trim().to_owned()
}

/// `GET base+path` of the portal's JSON API with a bearer token; panics unless it answers 2xx JSON.
async fn portal_get(base: &str, token: &str, path: &str) -> serde_json::Value {
    portal_fetch(base, token, path)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `GET base+path` of the portal's JSON API with a bearer token: its JSON, or what went wrong.
async fn portal_fetch(base: &str, token: &str, path: &str) -> Result<serde_json::Value, String> {
    let reply = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    let status = reply.status();
    let body = reply.text().await.map_err(|e| format!("GET {path}: {e}"))?;
    if !status.is_success() {
        return Err(format!("GET {path}: {status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}: {body}"))
}

/// The documents `helm template` renders with `sets`.
fn rendered(sets: &[&str]) -> Vec<serde_yaml::Value> {
    let mut args = vec!["template", "render", &*CHART_PATH];
    for set in sets {
        args.extend(["--set", set]);
    }
    let out = helm(&args);
    serde_yaml::Deserializer::from_str(&out)
        .filter_map(|doc| serde_yaml::Value::deserialize(doc).ok())
        .filter(|doc| !doc.is_null())
        .collect()
}

static CHART_PATH: std::sync::LazyLock<String> = std::sync::LazyLock::new(chart);

fn find<'a>(docs: &'a [serde_yaml::Value], kind: &str, name: &str) -> &'a serde_yaml::Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn a_network_policy_without_peers_admits_no_one() {
    let docs = rendered(&["networkPolicy.enabled=true"]);
    for name in ["render-portal", "render-operator"] {
        let policy = find(&docs, "NetworkPolicy", name);
        let ingress = policy["spec"]["ingress"].as_sequence().expect("ingress list");
        assert!(ingress.is_empty(), "{name} admits: {ingress:?}");
    }
    let docs = rendered(&[
        "networkPolicy.enabled=true",
        "networkPolicy.portalFrom[0].podSelector.matchLabels.role=ingress",
    ]);
    let rules = find(&docs, "NetworkPolicy", "render-portal")["spec"]["ingress"]
        .as_sequence()
        .expect("ingress list")
        .clone();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["from"][0]["podSelector"]["matchLabels"]["role"].as_str(),
        Some("ingress")
    );
}

#[test]
fn in_sqlite_mode_the_portal_runs_on_the_operators_node() {
    let docs = rendered(&[]);
    let portal = find(&docs, "Deployment", "render-portal");
    let term = &portal["spec"]["template"]["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        [0];
    assert_eq!(term["topologyKey"].as_str(), Some("kubernetes.io/hostname"));
    assert_eq!(
        term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"].as_str(),
        Some("operator")
    );
    let operator = find(&docs, "Deployment", "render-operator");
    assert!(
        !operator["spec"]["template"]["spec"]["affinity"]["podAffinity"].is_null(),
        "the operator prefers the portal's node"
    );
    // With PostgreSQL nothing ties them together.
    let docs = rendered(&["database.existingSecret=db"]);
    for name in ["render-portal", "render-operator"] {
        let deployment = find(&docs, "Deployment", name);
        assert!(
            deployment["spec"]["template"]["spec"]["affinity"].is_null(),
            "{name}"
        );
    }
}

#[test]
fn behind_tls_the_session_cookie_is_secure() {
    let env_of = |docs: &[serde_yaml::Value]| {
        find(docs, "Deployment", "render-portal")["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()
            .expect("env")
            .iter()
            .filter_map(|e| Some((e["name"].as_str()?.to_owned(), e["value"].as_str()?.to_owned())))
            .collect::<Vec<_>>()
    };
    let plain = env_of(&rendered(&[]));
    assert!(
        !plain.iter().any(|(name, _)| name == "JTP_SECURE_COOKIES"),
        "{plain:?}"
    );
    let tls = env_of(&rendered(&["portal.secureCookies=true"]));
    assert!(
        tls.contains(&("JTP_SECURE_COOKIES".into(), "true".into())),
        "{tls:?}"
    );
}

#[test]
fn every_portal_replica_gets_the_same_session_secret() {
    let docs = rendered(&["portal.replicas=3"]);
    let secret = find(&docs, "Secret", "render-session");
    assert!(secret["data"]["secrets"].as_str().is_some_and(|s| !s.is_empty()));
    let portal = find(&docs, "Deployment", "render-portal");
    let spec = &portal["spec"]["template"]["spec"];
    let env = spec["containers"][0]["env"].as_sequence().expect("env");
    assert!(
        env.iter()
            .any(|e| e["name"].as_str() == Some("JTP_SESSION_SECRET_FILE")
                && e["value"].as_str() == Some("/etc/jtp/session/secrets")),
        "{env:?}"
    );
    let volume = spec["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| v["name"].as_str() == Some("session"))
        .expect("the session volume");
    assert_eq!(volume["secret"]["secretName"].as_str(), Some("render-session"));
    // A Secret of one's own replaces the generated one.
    let docs = rendered(&["portal.sessionSecret.existingSecret=mine"]);
    assert!(
        !docs.iter().any(|d| d["kind"].as_str() == Some("Secret")),
        "no generated Secret"
    );
    let portal = find(&docs, "Deployment", "render-portal");
    let volume = portal["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| v["name"].as_str() == Some("session"))
        .cloned()
        .expect("the session volume");
    assert_eq!(volume["secret"]["secretName"].as_str(), Some("mine"));
}

#[test]
fn numbers_reach_the_programs_as_integers() {
    // Helm reads values as floats: a large number rendered as-is becomes "1.048576e+06", which
    // the programs refuse at start.
    for (sets, expected) in [
        (&[][..], "1048576"),
        (&["database.outputCapBytes=8388608"][..], "8388608"),
    ] {
        let docs = rendered(sets);
        for name in ["render-portal", "render-operator"] {
            let env = find(&docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_sequence()
                .expect("env")
                .clone();
            let cap = env
                .iter()
                .find(|e| e["name"].as_str() == Some("JTP_OUTPUT_CAP_BYTES"))
                .unwrap_or_else(|| panic!("{name} has no JTP_OUTPUT_CAP_BYTES: {env:?}"));
            assert_eq!(cap["value"].as_str(), Some(expected), "{name}");
        }
    }
}

#[test]
fn the_prometheus_rule_is_optional_and_alerts_values_reach_the_operator_with_a_named_secret_role() {
    let defaults = rendered(&[]);
    assert!(
        !defaults
            .iter()
            .any(|d| d["kind"].as_str() == Some("PrometheusRule")),
        "off by default"
    );
    assert!(
        !defaults
            .iter()
            .any(|d| d["metadata"]["name"].as_str() == Some("render-alert-urls"))
    );
    let env_of = |docs: &[serde_yaml::Value]| -> Vec<(String, String)> {
        find(docs, "Deployment", "render-operator")["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()
            .expect("env")
            .iter()
            .filter_map(|e| Some((e["name"].as_str()?.to_owned(), e["value"].as_str()?.to_owned())))
            .collect()
    };
    assert!(!env_of(&defaults).iter().any(|(n, _)| n.starts_with("JTP_ALERT")));

    let docs = rendered(&[
        "prometheusRule.enabled=true",
        "prometheusRule.labels.release=prom",
    ]);
    let rule = find(&docs, "PrometheusRule", "render-alerts");
    assert_eq!(rule["metadata"]["labels"]["release"].as_str(), Some("prom"));
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"]
        .as_sequence()
        .expect("rules")
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert_eq!(
        alerts,
        [
            "JtpJobFailing",
            "JtpJobOverdue",
            "JtpNoLeader",
            "JtpTriggerSkewHigh",
            "JtpReconcileErrors"
        ],
        "JtpJobNoRecentSuccess only with noSuccessFor"
    );

    let docs = rendered(&[
        "alerts.receivers[0].name=ops",
        "alerts.receivers[1].name=chat",
        "alerts.receivers[1].format=slack",
        "alerts.defaultReceivers={ops}",
        "alerts.urlSecret=hooks",
    ]);
    let env = env_of(&docs);
    for (name, value) in [
        ("JTP_ALERT_RECEIVERS", "ops=json,chat=slack"),
        ("JTP_ALERT_DEFAULT_RECEIVERS", "ops"),
        ("JTP_ALERT_URL_SECRET", "hooks"),
    ] {
        assert!(
            env.contains(&(name.to_owned(), value.to_owned())),
            "{name}={value} in {env:?}"
        );
    }
    let role = find(&docs, "Role", "render-alert-urls");
    let rules = role["rules"].as_sequence().expect("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(
        serde_json::to_value(&rules[0]).expect("json"),
        serde_json::json!({ "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["hooks"], "verbs": ["get"] })
    );
    let binding = find(&docs, "RoleBinding", "render-alert-urls");
    assert_eq!(binding["subjects"][0]["name"].as_str(), Some("render-operator"));
}
