//! What the tests that run the built `jtp standalone` share: starting it on a free port of
//! 127.0.0.1 (killed when dropped, even when an assertion fails), waiting, and the JSON API;
//! [`cluster`] is what the tests of the in-process operator share, [`link`] a database connection
//! a test can cut.
#![allow(dead_code)] // Each test binary uses its own part of this module.

pub mod cluster;
pub mod link;

use jtp_dashboard::testing::free_port;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The built `jtp` binary.
pub fn jtp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jtp"))
}

/// A `jtp standalone` to start: `--listen` on a free port, `--data-dir`, `RUST_LOG=info`.
pub struct Standalone {
    cmd: Command,
    port: u16,
    portal: bool,
    token: Option<String>,
    log: Option<PathBuf>,
}

impl Standalone {
    pub fn new(data: &Path) -> Self {
        Self::from_command(jtp(), data)
    }

    /// Under `prlimit --nofile=<files>:<files>` (util-linux): soft and hard limit on open files.
    pub fn with_file_limit(data: &Path, files: u64) -> Self {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={files}:{files}"))
            .arg(env!("CARGO_BIN_EXE_jtp"));
        Self::from_command(cmd, data)
    }

    fn from_command(mut cmd: Command, data: &Path) -> Self {
        let port = free_port();
        cmd.arg("standalone")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Self {
            cmd,
            port,
            portal: true,
            token: None,
            log: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(name, value);
        self
    }

    /// Appends its log (stderr) to `path`, printed when the test fails.
    pub fn log(mut self, path: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("log file");
        self.cmd.stderr(Stdio::from(file));
        self.log = Some(path.to_owned());
        self
    }

    /// Protects the portal with a bearer token, which [`Jtp::api`] then sends.
    pub fn token(mut self, token: &str) -> Self {
        self.cmd.env("JTP_PORTAL_TOKEN", token);
        self.token = Some(token.to_owned());
        self
    }

    /// Runs without the portal (`--no-portal`): [`Standalone::start`] does not wait for it.
    pub fn no_portal(mut self) -> Self {
        self.cmd.arg("--no-portal");
        self.portal = false;
        self
    }

    /// Starts it and, with the portal, waits until `/healthz` answers.
    pub fn start(mut self) -> Jtp {
        let child = self.cmd.spawn().expect("start jtp standalone");
        let jtp = Jtp {
            child,
            base: format!("http://127.0.0.1:{}", self.port),
            token: self.token,
            log: self.log,
        };
        if self.portal {
            wait_until(Duration::from_secs(30), "the portal to answer", || {
                reqwest::blocking::get(format!("{}/healthz", jtp.base)).is_ok_and(|r| r.status().is_success())
            });
        }
        jtp
    }
}

/// One `jtp standalone` process; killed (SIGKILL) when dropped, its log printed if the test failed.
pub struct Jtp {
    pub child: Child,
    pub base: String,
    pub token: Option<String>,
    log: Option<PathBuf>,
}

impl Drop for Jtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(log) = self.log.as_ref().filter(|_| std::thread::panicking()) {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            eprintln!("--- jtp log ({}) ---\n{text}", log.display());
        }
    }
}

impl Jtp {
    /// Guards a `jtp` process started some other way.
    pub fn guard(child: Child) -> Self {
        Self {
            child,
            base: String::new(),
            token: None,
            log: None,
        }
    }

    /// SIGTERM; the process must then exit successfully by itself within `limit`.
    pub fn stop(mut self, limit: Duration) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        wait_until(limit, "jtp to stop on SIGTERM", || {
            self.child.try_wait().expect("wait").is_some()
        });
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "jtp exited with {status} after SIGTERM");
    }

    /// A request to the JSON API: the status and the body (JSON, or the text as a string).
    pub fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let client = reqwest::blocking::Client::new();
        let mut request = client.request(method, format!("{}/api/v1{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().expect("API request");
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Creates the job `default/<name>` through the API.
    pub fn create(&self, name: &str, spec: Value) {
        let (status, body) = self.api(
            reqwest::Method::POST,
            "/jobs",
            Some(serde_json::json!({ "name": name, "spec": spec })),
        );
        assert_eq!(status, 201, "creating {name}: {body}");
    }

    /// Run Now on `default/<name>`.
    pub fn run_now(&self, name: &str) {
        let (status, body) = self.api(reqwest::Method::POST, &format!("/jobs/default/{name}/run"), None);
        assert_eq!(status, 202, "Run Now of {name}: {body}");
    }

    /// The runs of `default/<name>`, newest first.
    pub fn runs(&self, name: &str) -> Vec<Value> {
        let (_, runs) = self.api(reqwest::Method::GET, &format!("/jobs/default/{name}/runs"), None);
        runs["items"].as_array().cloned().unwrap_or_default()
    }

    /// The stored output of a run.
    pub fn output(&self, run_id: i64) -> String {
        let (_, output) = self.api(reqwest::Method::GET, &format!("/runs/{run_id}/output"), None);
        output
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| output.to_string())
    }
}

pub fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the process is alive (a zombie is not).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}
