//! Test support: one shared control plane per machine, a namespace per test, waits.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Resource};
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Default state directory of the running test cluster (`JTP_TESTENV_DIR` overrides).
pub const DEFAULT_TESTENV_DIR: &str = "/tmp/jtp-testenv";
/// Set to keep test namespaces after the test, for debugging.
pub const KEEP_NAMESPACES_ENV: &str = "JTP_KEEP_NAMESPACES";
const POLL: Duration = Duration::from_millis(200);
const NAMESPACE_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The `up` script of this checkout.
fn up_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("up")
}

/// The state directory of the test cluster: pid files, certificates, kubeconfigs, `bin/`.
pub fn testenv_dir() -> PathBuf {
    std::env::var_os("JTP_TESTENV_DIR").map_or_else(|| PathBuf::from(DEFAULT_TESTENV_DIR), PathBuf::from)
}

static KUBECONFIG: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Starts the cluster with `testenv/up` unless this process already did, and returns the
/// admin kubeconfig path. `up` itself takes a file lock, so concurrent test binaries
/// start one cluster, and returns at once when the cluster is already healthy.
///
/// # Panics
/// When `up` fails (Go missing, a build failure, a component that does not come up), with
/// its output and what to do about it.
fn ensure_up() -> PathBuf {
    let mut guard = KUBECONFIG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = guard.as_ref() {
        return path.clone();
    }
    let script = up_script();
    let mut cmd = Command::new(&script);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let path = stdout
        .lines()
        .last()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(PathBuf::from);
    match path {
        Some(path) if output.status.success() && path.exists() => {
            check_network_namespace();
            eprintln!(
                "jtp-testenv: cluster ready in {:.1?} ({})",
                started.elapsed(),
                path.display()
            );
            *guard = Some(path.clone());
            path
        }
        _ => panic!(
            "testenv/up failed ({status}).\n\
             The test cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd, \
             runc, the CNI plugins and kubelet) is built from source with Go >= 1.26 and started by {script} \
             (as root: it makes a network namespace, cgroups and mounts). If Go is missing, install it \
             (https://go.dev/doc/install or the distribution's golang package) and make sure `go` is on \
             PATH; the first build takes a while and is cached under $JTP_CACHE_DIR (default \
             ~/.cache/jtp). Logs of the components: {logs}.\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            status = output.status,
            script = script.display(),
            logs = testenv_dir().join("logs").display(),
        ),
    }
}

/// The device and inode that identify a network namespace (of a process or a bind mount).
fn namespace_id(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// The cluster, its node and its pods are reachable only inside the network namespace `up`
/// made (named in `<state>/netns`): a test process outside it could not connect.
///
/// # Panics
/// When this process runs in another network namespace, saying how to run it inside.
fn check_network_namespace() {
    let file = testenv_dir().join("netns");
    let netns = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("reading {} (written by testenv/up): {e}", file.display()));
    let netns = PathBuf::from(netns.trim());
    let cluster = namespace_id(&netns).unwrap_or_else(|e| panic!("{}: {e}", netns.display()));
    let own =
        namespace_id(Path::new("/proc/self/ns/net")).unwrap_or_else(|e| panic!("/proc/self/ns/net: {e}"));
    assert!(
        own == cluster,
        "this test runs outside the test cluster's network namespace ({netns}), where the API server, \
         the node and the pods live and nothing else can reach them. Run the tests inside it: \
         testenv/up && testenv/exec cargo test ... (scripts/test does this).",
        netns = netns.display()
    );
}

/// The admin kubeconfig of the test cluster, starting the cluster if needed.
pub fn kubeconfig_path() -> PathBuf {
    ensure_up()
}

async fn client_for(kubeconfig: PathBuf) -> kube::Client {
    let config = kube::config::Kubeconfig::read_from(&kubeconfig)
        .unwrap_or_else(|e| panic!("reading {}: {e}", kubeconfig.display()));
    let config = kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("loading {}: {e}", kubeconfig.display()));
    kube::Client::try_from(config).unwrap_or_else(|e| panic!("building a client: {e}"))
}

/// A client for the shared test cluster (started on demand, reused if already up).
///
/// Make a new client in every test: a `kube::Client` belongs to the Tokio runtime that
/// created it, and each `#[tokio::test]` has its own.
pub async fn cluster() -> kube::Client {
    let path = tokio::task::spawn_blocking(ensure_up)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    client_for(path).await
}

/// A binary of the running test cluster (`kubectl`, `helm`, `etcd`, `kube-apiserver`, ...).
pub fn tool_path(name: &str) -> PathBuf {
    testenv_dir().join("bin").join(name)
}

fn run_tool(tool: &str, args: &[&str]) -> Output {
    let kubeconfig = kubeconfig_path();
    let path = tool_path(tool);
    Command::new(&path)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()))
}

fn stdout_or_panic(tool: &str, args: &[&str], out: Output) -> String {
    if !out.status.success() {
        panic!(
            "{tool} {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the cluster's kubectl with the admin kubeconfig and returns its output as is.
pub fn kubectl_output(args: &[&str]) -> Output {
    run_tool("kubectl", args)
}

/// Runs kubectl and returns its stdout.
///
/// # Panics
/// When kubectl fails, with its stderr.
pub fn kubectl(args: &[&str]) -> String {
    stdout_or_panic("kubectl", args, kubectl_output(args))
}

/// Runs the pinned helm with the admin kubeconfig and returns its output as is.
pub fn helm_output(args: &[&str]) -> Output {
    run_tool("helm", args)
}

/// Runs helm and returns its stdout.
///
/// # Panics
/// When helm fails, with its stderr.
pub fn helm(args: &[&str]) -> String {
    stdout_or_panic("helm", args, helm_output(args))
}

/// Imports an image archive (docker-archive or OCI archive, e.g. from `scripts/build-image`) into the
/// node's containerd, so pods can run it without a pull.
///
/// # Panics
/// When the archive is missing or `ctr` fails, with its output.
pub fn import_image(archive: &Path) {
    ensure_up();
    assert!(
        archive.is_file(),
        "image archive {} not found: build it with scripts/build-image",
        archive.display()
    );
    let ctr = tool_path("ctr");
    let socket = testenv_dir().join("containerd").join("containerd.sock");
    let out = Command::new(&ctr)
        .arg("--address")
        .arg(&socket)
        .args([
            "--namespace",
            "k8s.io",
            "images",
            "import",
            "--snapshotter",
            "overlayfs",
        ])
        .arg(archive)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", ctr.display()));
    assert!(
        out.status.success(),
        "importing {} failed ({}):\n{}{}",
        archive.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `name` until `condition` holds and returns the object.
///
/// # Panics
/// After `timeout`, naming what was awaited and showing the object as last seen.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    what: &str,
    condition: impl Fn(&K) -> bool,
) -> K
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let deadline = Instant::now() + timeout;
    let mut last: Option<K> = None;
    let mut last_error = None;
    loop {
        match api.get_opt(name).await {
            Ok(Some(obj)) => {
                if condition(&obj) {
                    return obj;
                }
                last = Some(obj);
            }
            Ok(None) => last_error = Some("not found".to_string()),
            Err(e) => last_error = Some(e.to_string()),
        }
        if Instant::now() >= deadline {
            let shown = last
                .as_ref()
                .and_then(|o| serde_json::to_string_pretty(o).ok())
                .unwrap_or_else(|| "<never seen>".into());
            panic!(
                "timed out after {timeout:?} waiting for {kind} {name} to {what}\nlast error: {}\nlast seen: {shown}",
                last_error.unwrap_or_else(|| "none".into())
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A namespace of its own for one test, with a random suffix; deleted on drop (or by
/// [`TestNamespace::cleanup`]) unless `JTP_KEEP_NAMESPACES` is set.
pub struct TestNamespace {
    name: String,
    client: kube::Client,
    deleted: bool,
}

impl TestNamespace {
    /// Creates `jtp-<prefix>-<random>` and waits until pods can be created in it (its
    /// `default` ServiceAccount and `kube-root-ca.crt` ConfigMap exist).
    pub async fn new(client: &kube::Client, prefix: &str) -> Self {
        let suffix: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(6)
            .map(|c| char::from(c).to_ascii_lowercase())
            .collect();
        let name = format!("jtp-{prefix}-{suffix}");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": { "jobtrigger.io/test": "true" } }
        }))
        .unwrap_or_else(|e| panic!("building namespace: {e}"));
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        let this = Self {
            name,
            client: client.clone(),
            deleted: false,
        };
        let sas: Api<ServiceAccount> = this.api();
        wait_for(
            &sas,
            "default",
            NAMESPACE_READY_TIMEOUT,
            "be created by the serviceaccount controller",
            |_| true,
        )
        .await;
        let cms: Api<ConfigMap> = this.api();
        wait_for(
            &cms,
            "kube-root-ca.crt",
            NAMESPACE_READY_TIMEOUT,
            "be published",
            |_| true,
        )
        .await;
        this
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An `Api` for namespaced resources in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace now (without waiting for it to be gone).
    pub async fn cleanup(mut self) {
        self.deleted = true;
        if std::env::var_os(KEEP_NAMESPACES_ENV).is_some() {
            return;
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if let Err(e) = namespaces.delete(&self.name, &DeleteParams::background()).await {
            eprintln!("jtp-testenv: deleting namespace {}: {e}", self.name);
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.deleted || std::env::var_os(KEEP_NAMESPACES_ENV).is_some() {
            return;
        }
        // No async in Drop: kubectl, which returns at once with --wait=false.
        let out = kubectl_output(&[
            "delete",
            "namespace",
            &self.name,
            "--wait=false",
            "--ignore-not-found",
        ]);
        if !out.status.success() {
            eprintln!(
                "jtp-testenv: deleting namespace {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
