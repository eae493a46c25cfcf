//! Runs one pod's containers as host processes and reports their status like a kubelet.
//!
//! Per pod: `<state>/pods/<uid>/volumes/<name>` holds each materialised volume and
//! `<state>/pods/<uid>/containers/<name>/` holds the container's log and scratch dir.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, KeyToPath, ObjectFieldSelector, Pod, Secret, ServiceAccount,
    Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc, watch};

use super::logs::LogRegistry;
use super::{MountMode, NodeConfig};

/// What the pod's worker is told when the pod gets a deletionTimestamp: the grace period,
/// or [`GONE`] when the object no longer exists.
pub type StopSignal = watch::Receiver<Option<i64>>;
/// Stop value meaning the pod object is already gone: kill, but do not delete.
pub const GONE: i64 = -1;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEFAULT_FILE_MODE: i32 = 0o644;
const PREPARE_RETRY: Duration = Duration::from_secs(2);
const IMAGE_PULL_BACKOFF_AFTER: Duration = Duration::from_secs(2);
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(300);
const MAX_GRACE: Duration = Duration::from_secs(30);
/// Exit code containerd reports for a container whose process could not be started.
const START_ERROR_EXIT_CODE: i32 = 128;

/// Shared by all pod workers.
pub struct Runtime {
    client: kube::Client,
    config: Arc<NodeConfig>,
    logs: LogRegistry,
    api_permits: Semaphore,
    apiserver_port: u16,
    /// Process groups of running containers, by pod uid, so shutdown can kill them all.
    groups: Mutex<HashMap<String, Vec<i32>>>,
    /// Directories the namespace mode had to create on the host as mount points.
    created_mountpoints: Mutex<Vec<PathBuf>>,
    /// util-linux tools of the host, found on the node's own PATH.
    unshare_bin: PathBuf,
    mount_bin: PathBuf,
}

/// Finds a program on the node's own PATH (falls back to /usr/bin/<name>).
fn host_program(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into());
    path.split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| Path::new("/usr/bin").join(name))
}

/// A volume mount as the container process will see it.
#[derive(Debug, Clone)]
struct Mount {
    host: PathBuf,
    path: String,
    read_only: bool,
}

/// A container ready to be started.
#[derive(Debug, Clone)]
struct Prepared {
    name: String,
    image: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    working_dir: Option<String>,
    mounts: Vec<Mount>,
}

/// Why a pod could not be prepared yet; shown as the waiting reason.
struct PrepareError {
    reason: &'static str,
    message: String,
}

impl PrepareError {
    fn mount(message: impl Into<String>) -> Self {
        Self {
            reason: "ContainerCreating",
            message: message.into(),
        }
    }
    fn config(message: impl Into<String>) -> Self {
        Self {
            reason: "CreateContainerConfigError",
            message: message.into(),
        }
    }
}

/// How one container process ended.
enum Exit {
    Process(std::io::Result<ExitStatus>),
    /// It never started; the runtime's message.
    StartError(String),
}

/// How a group of containers ended.
enum Outcome {
    Done { all_succeeded: bool },
    Stopped { grace: i64 },
    PodGone,
}

/// The pod status we own, patched as a whole.
struct PodStatus {
    phase: &'static str,
    start_time: Time,
    init: Vec<ContainerStatus>,
    main: Vec<ContainerStatus>,
    conditions: BTreeMap<&'static str, (bool, String, Option<&'static str>)>,
}

fn now() -> Time {
    Time(Timestamp::now())
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..Default::default()
    }
}

fn initial_status(container: &Container, reason: &str) -> ContainerStatus {
    ContainerStatus {
        name: container.name.clone(),
        image: container.image.clone().unwrap_or_default(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        state: Some(waiting(reason, None)),
        ..Default::default()
    }
}

impl PodStatus {
    fn new(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        let init = spec
            .and_then(|s| s.init_containers.as_ref())
            .map(|cs| cs.iter().map(|c| initial_status(c, "PodInitializing")).collect())
            .unwrap_or_default();
        let main = spec
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| initial_status(c, "ContainerCreating"))
                    .collect()
            })
            .unwrap_or_default();
        let t = Timestamp::now().to_string();
        let mut conditions = BTreeMap::new();
        for kind in [
            "PodReadyToStartContainers",
            "Initialized",
            "ContainersReady",
            "Ready",
        ] {
            conditions.insert(kind, (false, t.clone(), None));
        }
        Self {
            phase: "Pending",
            start_time: now(),
            init,
            main,
            conditions,
        }
    }

    fn set_condition(&mut self, kind: &'static str, value: bool, reason: Option<&'static str>) {
        if let Some(entry) = self.conditions.get_mut(kind) {
            if entry.0 != value {
                entry.1 = Timestamp::now().to_string();
            }
            entry.0 = value;
            entry.2 = reason;
        }
    }

    fn to_patch(&self) -> serde_json::Value {
        let conditions: Vec<_> = self
            .conditions
            .iter()
            .map(|(kind, (value, at, reason))| {
                let mut c = json!({
                    "type": kind,
                    "status": if *value { "True" } else { "False" },
                    "lastProbeTime": null,
                    "lastTransitionTime": at,
                });
                if let Some(reason) = reason {
                    c["reason"] = json!(reason);
                }
                c
            })
            .collect();
        let mut status = json!({
            "phase": self.phase,
            "startTime": self.start_time,
            "hostIP": "127.0.0.1",
            "hostIPs": [{ "ip": "127.0.0.1" }],
            "podIP": "127.0.0.1",
            "podIPs": [{ "ip": "127.0.0.1" }],
            "conditions": conditions,
            "containerStatuses": self.main,
        });
        if !self.init.is_empty() {
            status["initContainerStatuses"] = json!(self.init);
        }
        json!({ "status": status })
    }
}

impl Runtime {
    pub fn new(
        client: kube::Client,
        config: Arc<NodeConfig>,
        logs: LogRegistry,
        apiserver_port: u16,
    ) -> Self {
        let api_permits = Semaphore::new(config.api_concurrency.max(1));
        Self {
            client,
            config,
            logs,
            api_permits,
            apiserver_port,
            groups: Mutex::new(HashMap::new()),
            created_mountpoints: Mutex::new(Vec::new()),
            unshare_bin: host_program("unshare"),
            mount_bin: host_program("mount"),
        }
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.config.state_dir.join("pods").join(uid)
    }

    /// Kills every container process group this node started (used on shutdown).
    pub async fn kill_all(&self) {
        let groups: Vec<i32> = match self.groups.lock() {
            Ok(g) => g.values().flatten().copied().collect(),
            Err(_) => Vec::new(),
        };
        for pgid in &groups {
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
        }
        self.remove_created_mountpoints();
        tracing::info!(count = groups.len(), "killed all containers");
    }

    fn remove_created_mountpoints(&self) {
        if let Ok(mut dirs) = self.created_mountpoints.lock() {
            // Deepest first; remove_dir only succeeds on empty, unmounted dirs, and
            // mount-point files are always empty.
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            dirs.dedup();
            for path in dirs.drain(..) {
                if path.is_dir() {
                    let _ = std::fs::remove_dir(&path);
                } else if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }

    fn track_group(&self, uid: &str, pgid: i32, add: bool) {
        if let Ok(mut groups) = self.groups.lock() {
            let entry = groups.entry(uid.to_string()).or_default();
            if add {
                entry.push(pgid);
            } else {
                entry.retain(|g| *g != pgid);
                if entry.is_empty() {
                    groups.remove(uid);
                }
            }
        }
    }

    /// Removes what the node keeps on disk for a pod that no longer exists.
    pub fn forget_pod(&self, namespace: &str, name: &str, uid: &str) {
        self.logs.remove_pod(namespace, name, uid);
        let _ = std::fs::remove_dir_all(self.pod_dir(uid));
    }

    async fn patch_status(&self, pod: &Pod, status: &PodStatus) -> Result<(), kube::Error> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace(pod));
        let _permit = self.api_permits.acquire().await;
        let mut attempt = 0;
        loop {
            match pods
                .patch_status(
                    &name(pod),
                    &PatchParams::default(),
                    &Patch::Strategic(status.to_patch()),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) || attempt >= 5 => return Err(e),
                Err(e) => {
                    attempt += 1;
                    tracing::debug!(pod = %name(pod), error = %e, "status patch failed, retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
            }
        }
    }

    /// Deletes the pod object with grace 0 once its processes are gone, like a kubelet.
    pub async fn finalize_deletion(&self, pod: &Pod) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace(pod));
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        let _permit = self.api_permits.acquire().await;
        match pods.delete(&name(pod), &params).await {
            Ok(_) => tracing::info!(pod = %name(pod), "pod deleted"),
            Err(e) if is_not_found(&e) || is_conflict(&e) => {}
            Err(e) => tracing::warn!(pod = %name(pod), error = %e, "deleting pod failed"),
        }
    }

    /// Marks a pod that was Running before this node process started as Failed: its
    /// processes are gone and cannot be recovered.
    pub async fn fail_lost_pod(&self, pod: &Pod) {
        let mut status = PodStatus::new(pod);
        status.phase = "Failed";
        for c in &mut status.main {
            c.state = Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some("ContainerStatusUnknown".into()),
                    message: Some("jtp-node restarted; the container process was lost".into()),
                    finished_at: Some(now()),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        if let Err(e) = self.patch_status(pod, &status).await {
            tracing::warn!(pod = %name(pod), error = %e, "failing a lost pod failed");
        }
    }

    /// Runs the pod to completion (or until it is deleted) and reports status throughout.
    pub async fn run_pod(self: Arc<Self>, pod: Pod, mut stop: StopSignal) {
        let pod_name = format!("{}/{}", namespace(&pod), name(&pod));
        let mut status = PodStatus::new(&pod);
        tracing::info!(pod = %pod_name, "starting pod");
        let outcome = self.drive(&pod, &mut status, &mut stop).await;
        match outcome {
            Outcome::Done { all_succeeded } => {
                status.phase = if all_succeeded { "Succeeded" } else { "Failed" };
                status.set_condition("Ready", false, Some("PodCompleted"));
                status.set_condition("ContainersReady", false, Some("PodCompleted"));
                status.set_condition("PodReadyToStartContainers", false, None);
                for c in status.main.iter_mut().chain(status.init.iter_mut()) {
                    c.ready = false;
                    c.started = Some(false);
                }
                if let Err(e) = self.patch_status(&pod, &status).await {
                    tracing::warn!(pod = %pod_name, error = %e, "final status patch failed");
                }
                tracing::info!(pod = %pod_name, phase = status.phase, "pod finished");
                // A terminal pod is deleted immediately by the API server, but wait for a
                // deletion that was requested while we were finishing.
                if wait_stop(&mut stop).await != GONE {
                    self.finalize_deletion(&pod).await;
                }
            }
            Outcome::Stopped { grace } => {
                tracing::info!(pod = %pod_name, grace, "pod deleted: containers stopped");
                if grace != GONE {
                    self.finalize_deletion(&pod).await;
                }
            }
            Outcome::PodGone => tracing::info!(pod = %pod_name, "pod is gone"),
        }
    }

    async fn drive(&self, pod: &Pod, status: &mut PodStatus, stop: &mut StopSignal) -> Outcome {
        // Images are never pulled; an image with the unpullable prefix never gets further.
        let prefix = &self.config.unpullable_prefix;
        let all: Vec<&Container> = pod_containers(pod, true)
            .chain(pod_containers(pod, false))
            .collect();
        if let Some(c) = all
            .iter()
            .find(|c| !prefix.is_empty() && c.image.as_deref().unwrap_or("").starts_with(prefix.as_str()))
        {
            return self.image_pull_failure(pod, status, c, stop).await;
        }
        let uid = uid(pod);
        let dir = self.pod_dir(&uid);
        let (init, main) = loop {
            match self.prepare(pod, &dir).await {
                Ok(prepared) => break prepared,
                Err(e) => {
                    tracing::info!(pod = %name(pod), reason = e.reason, message = %e.message, "pod not ready to start");
                    for c in status.main.iter_mut().chain(status.init.iter_mut()) {
                        c.state = Some(waiting(e.reason, Some(e.message.clone())));
                    }
                    if let Err(err) = self.patch_status(pod, status).await
                        && is_not_found(&err)
                    {
                        return Outcome::PodGone;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(PREPARE_RETRY) => {}
                        grace = wait_stop(stop) => return Outcome::Stopped { grace },
                    }
                }
            }
        };
        status.set_condition("PodReadyToStartContainers", true, None);
        let restart_policy = pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into());

        for (index, container) in init.into_iter().enumerate() {
            match self
                .run_group(pod, status, vec![container], true, index, &restart_policy, stop)
                .await
            {
                Outcome::Done { all_succeeded: true } => {}
                other => return other,
            }
        }
        status.set_condition("Initialized", true, None);
        self.run_group(pod, status, main, false, 0, &restart_policy, stop)
            .await
    }

    async fn image_pull_failure(
        &self,
        pod: &Pod,
        status: &mut PodStatus,
        container: &Container,
        stop: &mut StopSignal,
    ) -> Outcome {
        let image = container.image.clone().unwrap_or_default();
        let set = |status: &mut PodStatus, reason: &str, message: String| {
            for c in status.init.iter_mut().chain(status.main.iter_mut()) {
                if c.name == container.name {
                    c.state = Some(waiting(reason, Some(message.clone())));
                }
            }
        };
        set(
            status,
            "ErrImagePull",
            format!(
                "failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": \
                 {image}: not found (jtp-node never pulls images with the prefix \"{}\")",
                self.config.unpullable_prefix
            ),
        );
        if let Err(e) = self.patch_status(pod, status).await
            && is_not_found(&e)
        {
            return Outcome::PodGone;
        }
        tokio::select! {
            _ = tokio::time::sleep(IMAGE_PULL_BACKOFF_AFTER) => {}
            grace = wait_stop(stop) => return Outcome::Stopped { grace },
        }
        set(
            status,
            "ImagePullBackOff",
            format!("Back-off pulling image \"{image}\""),
        );
        if let Err(e) = self.patch_status(pod, status).await
            && is_not_found(&e)
        {
            return Outcome::PodGone;
        }
        Outcome::Stopped {
            grace: wait_stop(stop).await,
        }
    }

    /// Runs containers concurrently (one init container, or all main containers) until
    /// they are all terminated for good under the restart policy.
    #[allow(clippy::too_many_arguments)]
    async fn run_group(
        &self,
        pod: &Pod,
        status: &mut PodStatus,
        containers: Vec<Prepared>,
        init: bool,
        first_index: usize,
        restart_policy: &str,
        stop: &mut StopSignal,
    ) -> Outcome {
        let uid = uid(pod);
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Exit, Time)>();
        let mut running: HashMap<usize, i32> = HashMap::new();
        let mut restart_at: HashMap<usize, tokio::time::Instant> = HashMap::new();
        let mut finished: HashMap<usize, bool> = HashMap::new();

        fn slot(status: &mut PodStatus, init: bool, index: usize) -> &mut ContainerStatus {
            if init {
                &mut status.init[index]
            } else {
                &mut status.main[index]
            }
        }

        for (i, container) in containers.iter().enumerate() {
            self.start_container(
                pod,
                status,
                init,
                first_index + i,
                i,
                container,
                &tx,
                &mut running,
                &uid,
            );
        }
        self.refresh_ready(status, init);
        if let Err(e) = self.patch_status(pod, status).await
            && is_not_found(&e)
        {
            self.kill_groups(&uid, running.values().copied().collect(), 0)
                .await;
            return Outcome::PodGone;
        }

        loop {
            if finished.len() == containers.len() {
                let all_succeeded = finished.values().all(|ok| *ok);
                return Outcome::Done { all_succeeded };
            }
            let next_restart = restart_at
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(i, at)| (*i, *at));
            tokio::select! {
                Some((i, exit, finished_at)) = rx.recv() => {
                    let pgid = running.remove(&i);
                    if let Some(pgid) = pgid {
                        // Like a container runtime: nothing of the container outlives its main process.
                        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                        self.track_group(&uid, pgid, false);
                    }
                    let c = slot(status, init, first_index + i);
                    let started_at = c.state.as_ref().and_then(|s| s.running.as_ref()).and_then(|r| r.started_at.clone());
                    let (code, signal, reason, message, started_at) = match exit {
                        Exit::Process(Ok(s)) => {
                            let code = s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0));
                            (code, s.signal(), if code == 0 { "Completed" } else { "Error" }, None, started_at)
                        }
                        Exit::Process(Err(e)) => (START_ERROR_EXIT_CODE, None, "Error", Some(e.to_string()), started_at),
                        // containerd reports a never-started process as started at the epoch.
                        Exit::StartError(m) => (START_ERROR_EXIT_CODE, None, "StartError", Some(m), Some(Time(Timestamp::UNIX_EPOCH))),
                    };
                    let terminated = ContainerStateTerminated {
                        exit_code: code,
                        signal,
                        reason: Some(reason.into()),
                        started_at,
                        finished_at: Some(finished_at),
                        container_id: c.container_id.clone(),
                        message,
                    };
                    self.logs.set_running(&namespace(pod), &name(pod), &containers[i].name, false);
                    let restart = match restart_policy {
                        "Always" => true,
                        "OnFailure" => code != 0,
                        _ => false,
                    };
                    c.ready = false;
                    c.started = Some(false);
                    if restart {
                        let backoff = self.config.restart_backoff.saturating_mul(1u32 << c.restart_count.clamp(0, 5) as u32).min(MAX_RESTART_BACKOFF);
                        c.last_state = Some(ContainerState { terminated: Some(terminated), ..Default::default() });
                        c.state = Some(waiting("CrashLoopBackOff", Some(format!(
                            "back-off {}s restarting failed container={} pod={}_{}({})",
                            backoff.as_secs(), containers[i].name, name(pod), namespace(pod), uid))));
                        restart_at.insert(i, tokio::time::Instant::now() + backoff);
                    } else {
                        c.state = Some(ContainerState { terminated: Some(terminated), ..Default::default() });
                        finished.insert(i, code == 0);
                    }
                    self.refresh_ready(status, init);
                    if finished.len() == containers.len() {
                        continue; // the caller patches the final status
                    }
                    if let Err(e) = self.patch_status(pod, status).await && is_not_found(&e) {
                        self.kill_groups(&uid, running.values().copied().collect(), 0).await;
                        return Outcome::PodGone;
                    }
                }
                _ = async {
                    match next_restart {
                        Some((_, at)) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some((i, _)) = next_restart {
                        restart_at.remove(&i);
                        let c = slot(status, init, first_index + i);
                        c.restart_count += 1;
                        self.logs.rotate(&namespace(pod), &name(pod), &containers[i].name);
                        self.start_container(pod, status, init, first_index + i, i, &containers[i], &tx, &mut running, &uid);
                        self.refresh_ready(status, init);
                        if let Err(e) = self.patch_status(pod, status).await && is_not_found(&e) {
                            self.kill_groups(&uid, running.values().copied().collect(), 0).await;
                            return Outcome::PodGone;
                        }
                    }
                }
                grace = wait_stop(stop) => {
                    self.kill_groups(&uid, running.values().copied().collect(), grace).await;
                    for c in containers.iter() {
                        self.logs.set_running(&namespace(pod), &name(pod), &c.name, false);
                    }
                    return Outcome::Stopped { grace };
                }
            }
        }
    }

    fn refresh_ready(&self, status: &mut PodStatus, init: bool) {
        if init {
            return;
        }
        let all_ready = !status.main.is_empty() && status.main.iter().all(|c| c.ready);
        let any_running = status
            .main
            .iter()
            .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
        let reason = if all_ready {
            None
        } else {
            Some("ContainersNotReady")
        };
        status.set_condition("ContainersReady", all_ready, reason);
        status.set_condition("Ready", all_ready, reason);
        if any_running {
            status.phase = "Running";
        }
    }

    /// SIGTERM, then SIGKILL after the grace period (capped), for each process group.
    async fn kill_groups(&self, uid: &str, groups: Vec<i32>, grace: i64) {
        for pgid in &groups {
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(grace.max(0) as u64).min(MAX_GRACE);
        loop {
            let alive: Vec<i32> = groups
                .iter()
                .copied()
                .filter(|g| killpg(Pid::from_raw(*g), None).is_ok())
                .collect();
            if alive.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                for pgid in &alive {
                    let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for pgid in groups {
            self.track_group(uid, pgid, false);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_container(
        &self,
        pod: &Pod,
        status: &mut PodStatus,
        init: bool,
        status_index: usize,
        i: usize,
        container: &Prepared,
        tx: &mpsc::UnboundedSender<(usize, Exit, Time)>,
        running: &mut HashMap<usize, i32>,
        uid: &str,
    ) {
        let c = if init {
            &mut status.init[status_index]
        } else {
            &mut status.main[status_index]
        };
        let container_id = format!("jtp://{uid}/{}/{}", container.name, c.restart_count);
        c.container_id = Some(container_id.clone());
        c.image_id = format!("jtp-node://{}", container.image);
        match self.spawn(pod, container) {
            Ok((mut child, pgid)) => {
                running.insert(i, pgid);
                self.track_group(uid, pgid, true);
                c.state = Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(now()),
                    }),
                    ..Default::default()
                });
                c.ready = !init;
                c.started = Some(true);
                let tx = tx.clone();
                tokio::spawn(async move {
                    let exit = child.wait().await;
                    let _ = tx.send((i, Exit::Process(exit), now()));
                });
            }
            Err(message) => {
                tracing::info!(pod = %name(pod), container = %container.name, %message, "container could not start");
                // Reported like any exit, so the restart policy applies as with a kubelet.
                let _ = tx.send((i, Exit::StartError(message), now()));
            }
        }
    }

    /// Starts the container's process in its own process group; `Err` is a StartError message.
    fn spawn(&self, pod: &Pod, container: &Prepared) -> Result<(tokio::process::Child, i32), String> {
        let Some(argv0) = container.argv.first() else {
            return Err(
                "jtp-node cannot run an image's entrypoint: the container has no command or args".into(),
            );
        };
        let container_dir = self.pod_dir(&uid(pod)).join("containers").join(&container.name);
        let scratch = container_dir.join("work");
        std::fs::create_dir_all(&scratch).map_err(|e| format!("creating {}: {e}", scratch.display()))?;
        let env_path = container
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| DEFAULT_PATH.into());
        let (argv, env, working_dir, mounts) = match self.config.mount_mode {
            MountMode::Namespace => (
                container.argv.clone(),
                container.env.clone(),
                container.working_dir.clone(),
                container.mounts.clone(),
            ),
            MountMode::Rewrite => {
                let rw = |s: &String| rewrite_paths(s, &container.mounts);
                (
                    container.argv.iter().map(rw).collect(),
                    container.env.iter().map(|(k, v)| (k.clone(), rw(v))).collect(),
                    container.working_dir.as_ref().map(rw),
                    Vec::new(),
                )
            }
        };
        let cwd_host = working_dir
            .as_deref()
            .map(|wd| to_host(wd, &mounts))
            .unwrap_or_else(|| scratch.clone());
        check_executable(argv0, &argv, &env_path, &mounts, &cwd_host)?;

        let log_path = self.logs.start(
            &namespace(pod),
            &name(pod),
            &uid(pod),
            &container.name,
            &container_dir,
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("opening log {}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| format!("opening log: {e}"))?;

        let mut cmd = match self.config.mount_mode {
            MountMode::Namespace => {
                let mut script = String::from("set -e\n");
                for m in &mounts {
                    self.ensure_mountpoint(Path::new(&m.path), m.host.is_dir())?;
                    let mount = quote(&self.mount_bin.to_string_lossy());
                    script += &format!(
                        "{mount} --bind {} {}\n",
                        quote(&m.host.to_string_lossy()),
                        quote(&m.path)
                    );
                    if m.read_only {
                        script += &format!("{mount} -o remount,bind,ro {}\n", quote(&m.path));
                    }
                }
                let wd = match &working_dir {
                    Some(wd) => {
                        if !mounts.iter().any(|m| under(wd, &m.path)) {
                            self.ensure_mountpoint(Path::new(wd), true)?;
                        }
                        wd.clone()
                    }
                    None => scratch.to_string_lossy().into_owned(),
                };
                script += &format!("cd {}\nexec \"$@\"\n", quote(&wd));
                // Absolute paths: the process gets the container's PATH, not the node's.
                let mut cmd = tokio::process::Command::new(&self.unshare_bin);
                cmd.args([
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "/bin/sh",
                    "-c",
                    &script,
                    "jtp-container",
                ]);
                cmd.args(&argv);
                cmd.current_dir(&scratch);
                cmd
            }
            MountMode::Rewrite => {
                let mut cmd = tokio::process::Command::new(&argv[0]);
                cmd.args(&argv[1..]);
                cmd.current_dir(&cwd_host);
                cmd
            }
        };
        cmd.env_clear()
            .env("PATH", &env_path)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .kill_on_drop(false);
        let child = cmd.spawn().map_err(|e| start_error(argv0, &e))?;
        let pgid = child
            .id()
            .map(|p| p as i32)
            .ok_or_else(|| "process exited before it was tracked".to_string())?;
        Ok((child, pgid))
    }

    /// Creates a missing mount point on the host (as runc would inside the container's
    /// rootfs), remembering the topmost directory created so shutdown can remove it.
    fn ensure_mountpoint(&self, path: &Path, dir: bool) -> Result<(), String> {
        if path.exists() {
            return Ok(());
        }
        // Every directory we are about to create, so all of them can be removed later.
        let mut created: Vec<PathBuf> = Vec::new();
        let mut missing = if dir { Some(path) } else { path.parent() };
        while let Some(p) = missing.filter(|p| !p.exists()) {
            created.push(p.to_path_buf());
            missing = p.parent();
        }
        let made = if dir {
            std::fs::create_dir_all(path)
        } else {
            path.parent()
                .map(std::fs::create_dir_all)
                .unwrap_or(Ok(()))
                .and_then(|_| std::fs::File::create(path).map(|_| ()))
        };
        made.map_err(|e| format!("creating mount point {}: {e}", path.display()))?;
        if !dir {
            created.push(path.to_path_buf());
        }
        let record = self.config.state_dir.join("created-mountpoints");
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(record) {
            use std::io::Write;
            for p in &created {
                let _ = writeln!(f, "{}", p.display());
            }
        }
        if let Ok(mut all) = self.created_mountpoints.lock() {
            all.extend(created);
        }
        Ok(())
    }

    /// Materialises volumes and resolves env for every container. Errors are retried.
    async fn prepare(&self, pod: &Pod, dir: &Path) -> Result<(Vec<Prepared>, Vec<Prepared>), PrepareError> {
        let spec = pod
            .spec
            .as_ref()
            .ok_or_else(|| PrepareError::config("pod has no spec"))?;
        let volumes_dir = dir.join("volumes");
        let mut volume_paths: HashMap<String, PathBuf> = HashMap::new();
        for volume in spec.volumes.iter().flatten() {
            let path = self.materialise_volume(pod, volume, &volumes_dir).await?;
            volume_paths.insert(volume.name.clone(), path);
        }
        let mut init = Vec::new();
        for c in spec.init_containers.iter().flatten() {
            init.push(self.prepare_container(pod, c, &volume_paths).await?);
        }
        let mut main = Vec::new();
        for c in &spec.containers {
            main.push(self.prepare_container(pod, c, &volume_paths).await?);
        }
        Ok((init, main))
    }

    async fn prepare_container(
        &self,
        pod: &Pod,
        container: &Container,
        volumes: &HashMap<String, PathBuf>,
    ) -> Result<Prepared, PrepareError> {
        let ns = namespace(pod);
        let mut env: Vec<(String, String)> = vec![
            ("HOME".into(), "/root".into()),
            ("HOSTNAME".into(), name(pod)),
            ("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into()),
            ("KUBERNETES_SERVICE_PORT".into(), self.apiserver_port.to_string()),
        ];
        for from in container.env_from.iter().flatten() {
            let prefix = from.prefix.clone().unwrap_or_default();
            if let Some(r) = &from.config_map_ref {
                let optional = r.optional.unwrap_or(false);
                if let Some(cm) = self.get_config_map(&ns, &r.name, optional).await? {
                    for (k, v) in cm.data.unwrap_or_default() {
                        set_env(&mut env, format!("{prefix}{k}"), v);
                    }
                }
            }
            if let Some(r) = &from.secret_ref {
                let optional = r.optional.unwrap_or(false);
                if let Some(s) = self.get_secret(&ns, &r.name, optional).await? {
                    for (k, v) in s.data.unwrap_or_default() {
                        set_env(
                            &mut env,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        );
                    }
                }
            }
        }
        for var in container.env.iter().flatten() {
            let value = match &var.value_from {
                None => Some(expand(var.value.as_deref().unwrap_or(""), &env)),
                Some(from) => {
                    if let Some(f) = &from.field_ref {
                        Some(field_ref(pod, f).ok_or_else(|| {
                            PrepareError::config(format!(
                                "unsupported fieldRef {} for env {}",
                                f.field_path, var.name
                            ))
                        })?)
                    } else if let Some(k) = &from.config_map_key_ref {
                        let optional = k.optional.unwrap_or(false);
                        match self.get_config_map(&ns, &k.name, optional).await? {
                            Some(cm) => match cm.data.unwrap_or_default().remove(&k.key) {
                                Some(v) => Some(v),
                                None if optional => None,
                                None => {
                                    return Err(PrepareError::config(format!(
                                        "couldn't find key {} in ConfigMap {ns}/{}",
                                        k.key, k.name
                                    )));
                                }
                            },
                            None => None,
                        }
                    } else if let Some(k) = &from.secret_key_ref {
                        let optional = k.optional.unwrap_or(false);
                        match self.get_secret(&ns, &k.name, optional).await? {
                            Some(s) => match s.data.unwrap_or_default().remove(&k.key) {
                                Some(v) => Some(String::from_utf8_lossy(&v.0).into_owned()),
                                None if optional => None,
                                None => {
                                    return Err(PrepareError::config(format!(
                                        "couldn't find key {} in Secret {ns}/{}",
                                        k.key, k.name
                                    )));
                                }
                            },
                            None => None,
                        }
                    } else {
                        return Err(PrepareError::config(format!(
                            "jtp-node supports only fieldRef, configMapKeyRef and secretKeyRef (env {})",
                            var.name
                        )));
                    }
                }
            };
            if let Some(value) = value {
                set_env(&mut env, var.name.clone(), value);
            }
        }
        let mut argv: Vec<String> = container.command.clone().unwrap_or_default();
        // No image entrypoint is known: with only args, the args are the command, as for
        // images without ENTRYPOINT (busybox, alpine, debian, ...).
        argv.extend(container.args.clone().unwrap_or_default());
        let argv = argv.iter().map(|a| expand(a, &env)).collect();
        let mut mounts = Vec::new();
        for m in container.volume_mounts.iter().flatten() {
            let Some(host) = volumes.get(&m.name) else {
                return Err(PrepareError::config(format!(
                    "volume mount {} refers to no volume",
                    m.name
                )));
            };
            let host = match &m.sub_path {
                Some(sub) if !sub.is_empty() => host.join(sub),
                _ => host.clone(),
            };
            mounts.push(Mount {
                host,
                path: m.mount_path.clone(),
                read_only: m.read_only.unwrap_or(false),
            });
        }
        Ok(Prepared {
            name: container.name.clone(),
            image: container.image.clone().unwrap_or_default(),
            argv,
            env,
            working_dir: container.working_dir.clone().filter(|w| !w.is_empty()),
            mounts,
        })
    }

    async fn get_config_map(
        &self,
        ns: &str,
        name: &str,
        optional: bool,
    ) -> Result<Option<ConfigMap>, PrepareError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        let _permit = self.api_permits.acquire().await;
        match api.get_opt(name).await {
            Ok(Some(cm)) => Ok(Some(cm)),
            Ok(None) if optional => Ok(None),
            Ok(None) => Err(PrepareError::mount(format!("configmap \"{name}\" not found"))),
            // The node authorizer may not yet know the pod references it: retried.
            Err(e) => Err(PrepareError::mount(format!("reading configmap \"{name}\": {e}"))),
        }
    }

    async fn get_secret(&self, ns: &str, name: &str, optional: bool) -> Result<Option<Secret>, PrepareError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let _permit = self.api_permits.acquire().await;
        match api.get_opt(name).await {
            Ok(Some(s)) => Ok(Some(s)),
            Ok(None) if optional => Ok(None),
            Ok(None) => Err(PrepareError::mount(format!("secret \"{name}\" not found"))),
            Err(e) => Err(PrepareError::mount(format!("reading secret \"{name}\": {e}"))),
        }
    }

    async fn materialise_volume(
        &self,
        pod: &Pod,
        volume: &Volume,
        volumes_dir: &Path,
    ) -> Result<PathBuf, PrepareError> {
        let ns = namespace(pod);
        if let Some(host) = &volume.host_path {
            return Ok(PathBuf::from(&host.path));
        }
        let dir = volumes_dir.join(&volume.name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| PrepareError::mount(format!("creating {}: {e}", dir.display())))?;
        if volume.empty_dir.is_some() {
            return Ok(dir);
        }
        if let Some(cm) = &volume.config_map {
            let optional = cm.optional.unwrap_or(false);
            if let Some(obj) = self.get_config_map(&ns, &cm.name, optional).await? {
                write_items(
                    &dir,
                    config_map_files(obj),
                    cm.items.as_deref(),
                    cm.default_mode,
                    optional,
                )?;
            }
            return Ok(dir);
        }
        if let Some(s) = &volume.secret {
            let optional = s.optional.unwrap_or(false);
            let name = s.secret_name.clone().unwrap_or_default();
            if let Some(obj) = self.get_secret(&ns, &name, optional).await? {
                write_items(
                    &dir,
                    secret_files(obj),
                    s.items.as_deref(),
                    s.default_mode,
                    optional,
                )?;
            }
            return Ok(dir);
        }
        if let Some(d) = &volume.downward_api {
            for item in d.items.iter().flatten() {
                if let Some(f) = &item.field_ref {
                    let value = field_ref(pod, f).unwrap_or_default();
                    write_file(&dir, &item.path, value.as_bytes(), item.mode.or(d.default_mode))?;
                }
            }
            return Ok(dir);
        }
        if let Some(p) = &volume.projected {
            for source in p.sources.iter().flatten() {
                if let Some(cm) = &source.config_map {
                    let optional = cm.optional.unwrap_or(false);
                    if let Some(obj) = self.get_config_map(&ns, &cm.name, optional).await? {
                        write_items(
                            &dir,
                            config_map_files(obj),
                            cm.items.as_deref(),
                            p.default_mode,
                            optional,
                        )?;
                    }
                }
                if let Some(s) = &source.secret {
                    let optional = s.optional.unwrap_or(false);
                    if let Some(obj) = self.get_secret(&ns, &s.name, optional).await? {
                        write_items(
                            &dir,
                            secret_files(obj),
                            s.items.as_deref(),
                            p.default_mode,
                            optional,
                        )?;
                    }
                }
                if let Some(d) = &source.downward_api {
                    for item in d.items.iter().flatten() {
                        if let Some(f) = &item.field_ref {
                            let value = field_ref(pod, f).unwrap_or_default();
                            write_file(&dir, &item.path, value.as_bytes(), item.mode.or(p.default_mode))?;
                        }
                    }
                }
                if let Some(t) = &source.service_account_token {
                    let token = self
                        .request_token(pod, t.audience.clone(), t.expiration_seconds)
                        .await?;
                    write_file(&dir, &t.path, token.as_bytes(), p.default_mode)?;
                }
            }
            return Ok(dir);
        }
        Err(PrepareError::mount(format!(
            "volume {}: jtp-node supports emptyDir, configMap, secret, downwardAPI, projected and hostPath volumes",
            volume.name
        )))
    }

    async fn request_token(
        &self,
        pod: &Pod,
        audience: Option<String>,
        expiration: Option<i64>,
    ) -> Result<String, PrepareError> {
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: audience.map(|a| vec![a]),
                expiration_seconds: Some(expiration.unwrap_or(3607)),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(name(pod)),
                    uid: pod.metadata.uid.clone(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &namespace(pod));
        let _permit = self.api_permits.acquire().await;
        let created: TokenRequest = api
            .create_subresource("token", &sa, &PostParams::default(), &request)
            .await
            .map_err(|e| PrepareError::mount(format!("requesting a token for service account {sa}: {e}")))?;
        Ok(created.status.and_then(|s| s.token).unwrap_or_default())
    }
}

/// Waits until the pod is being deleted and returns the grace period (or [`GONE`]).
async fn wait_stop(stop: &mut StopSignal) -> i64 {
    match stop.wait_for(Option::is_some).await {
        Ok(value) => value.unwrap_or(GONE),
        Err(_) => GONE,
    }
}

fn set_env(env: &mut Vec<(String, String)>, key: String, value: String) {
    env.retain(|(k, _)| *k != key);
    env.push((key, value));
}

/// Expands `$(VAR)` references like the kubelet; `$$` escapes a `$`; unknown stay literal.
fn expand(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let key = &inner[..end];
            match env.iter().rev().find(|(k, _)| k == key) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(key);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn field_ref(pod: &Pod, f: &ObjectFieldSelector) -> Option<String> {
    let meta = &pod.metadata;
    let path = f.field_path.as_str();
    let lookup = |map: &Option<BTreeMap<String, String>>, prefix: &str| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.as_ref().and_then(|m| m.get(key).cloned()).unwrap_or_default())
    };
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => pod.spec.as_ref().and_then(|s| s.service_account_name.clone()),
        "status.hostIP" | "status.podIP" | "status.hostIPs" | "status.podIPs" => Some("127.0.0.1".into()),
        _ => lookup(&meta.labels, "metadata.labels['")
            .or_else(|| lookup(&meta.annotations, "metadata.annotations['")),
    }
}

fn config_map_files(cm: ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = cm
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    files.extend(
        cm.binary_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, ByteString(v))| (k, v)),
    );
    files
}

fn secret_files(s: Secret) -> BTreeMap<String, Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = s
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, ByteString(v))| (k, v))
        .collect();
    files.extend(
        s.string_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes())),
    );
    files
}

fn write_items(
    dir: &Path,
    files: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<(), PrepareError> {
    match items {
        None => {
            for (key, data) in &files {
                write_file(dir, key, data, default_mode)?;
            }
        }
        Some(items) => {
            for item in items {
                match files.get(&item.key) {
                    Some(data) => write_file(dir, &item.path, data, item.mode.or(default_mode))?,
                    None if optional => {}
                    None => {
                        return Err(PrepareError::mount(format!(
                            "key {} not found in the volume's source",
                            item.key
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

fn write_file(dir: &Path, rel: &str, data: &[u8], mode: Option<i32>) -> Result<(), PrepareError> {
    if rel.split('/').any(|part| part == "..") || rel.starts_with('/') {
        return Err(PrepareError::mount(format!("invalid volume item path {rel}")));
    }
    let path = dir.join(rel);
    let err = |e: std::io::Error| PrepareError::mount(format!("writing {}: {e}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    std::fs::write(&path, data).map_err(err)?;
    let mode = mode.unwrap_or(DEFAULT_FILE_MODE) as u32 & 0o7777;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    Ok(())
}

fn under(path: &str, mount: &str) -> bool {
    let mount = mount.trim_end_matches('/');
    path == mount || path.strip_prefix(mount).is_some_and(|r| r.starts_with('/')) || mount.is_empty()
}

/// Where an in-container path lives on the host, given the container's mounts.
fn to_host(path: &str, mounts: &[Mount]) -> PathBuf {
    let best = mounts
        .iter()
        .filter(|m| under(path, &m.path))
        .max_by_key(|m| m.path.trim_end_matches('/').len());
    match best {
        Some(m) => {
            let rest = path[m.path.trim_end_matches('/').len()..].trim_start_matches('/');
            if rest.is_empty() {
                m.host.clone()
            } else {
                m.host.join(rest)
            }
        }
        None => PathBuf::from(path),
    }
}

/// Rewrite mode: replaces mount path prefixes in a string with the host directories.
fn rewrite_paths(s: &str, mounts: &[Mount]) -> String {
    let mut sorted: Vec<&Mount> = mounts.iter().collect();
    sorted.sort_by_key(|m| std::cmp::Reverse(m.path.len()));
    let mut out = s.to_string();
    for m in sorted {
        let from = m.path.trim_end_matches('/');
        if from.is_empty() {
            continue;
        }
        out = out.replace(from, &m.host.to_string_lossy());
    }
    out
}

/// Checks, before starting anything, that the executable exists and may be executed, and
/// returns the container runtime's error message if not.
fn check_executable(
    argv0: &str,
    _argv: &[String],
    path_var: &str,
    mounts: &[Mount],
    cwd: &Path,
) -> Result<(), String> {
    let is_exec = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    let fail = |inner: String| {
        Err(format!(
            "failed to start container process: exec: \"{argv0}\": {inner}: unknown"
        ))
    };
    if argv0.contains('/') {
        let host = if argv0.starts_with('/') {
            to_host(argv0, mounts)
        } else {
            cwd.join(argv0)
        };
        return match std::fs::metadata(&host) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fail(format!("stat {argv0}: no such file or directory"))
            }
            Err(e) => fail(e.to_string()),
            Ok(_) if is_exec(&host) => Ok(()),
            Ok(_) => fail("permission denied".into()),
        };
    }
    let mut found_not_exec = false;
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = to_host(&format!("{}/{argv0}", dir.trim_end_matches('/')), mounts);
        if is_exec(&candidate) {
            return Ok(());
        }
        if candidate.is_file() {
            found_not_exec = true;
        }
    }
    if found_not_exec {
        fail("permission denied".into())
    } else {
        fail("executable file not found in $PATH".into())
    }
}

fn start_error(argv0: &str, e: &std::io::Error) -> String {
    let inner = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    format!("failed to start container process: exec: \"{argv0}\": {inner}: unknown")
}

/// Single-quotes a string for `sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn pod_containers(pod: &Pod, init: bool) -> impl Iterator<Item = &Container> {
    pod.spec.as_ref().into_iter().flat_map(move |s| {
        if init {
            s.init_containers.as_deref().unwrap_or(&[])
        } else {
            &s.containers[..]
        }
    })
}

pub(crate) fn namespace(pod: &Pod) -> String {
    pod.metadata.namespace.clone().unwrap_or_else(|| "default".into())
}

pub(crate) fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

pub(crate) fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_kubelet() {
        let env = vec![("A".to_string(), "x".to_string())];
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "x-$(B)-$(A)-$");
    }

    #[test]
    fn maps_paths_through_mounts() {
        let mounts = vec![Mount {
            host: PathBuf::from("/state/v/scripts"),
            path: "/scripts".into(),
            read_only: false,
        }];
        assert_eq!(
            to_host("/scripts/run.sh", &mounts),
            PathBuf::from("/state/v/scripts/run.sh")
        );
        assert_eq!(to_host("/scriptsx", &mounts), PathBuf::from("/scriptsx"));
        assert_eq!(
            rewrite_paths("sh /scripts/run.sh", &mounts),
            "sh /state/v/scripts/run.sh"
        );
    }
}
