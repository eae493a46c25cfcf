//! `jtp standalone` against hostile or careless input, through the built binary: secrets in its
//! environment and flags, empty credentials, and what scripts get to see.

use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `jtp standalone` process; killed when dropped.
struct Jtp {
    child: Child,
    base: String,
    token: String,
}

impl Drop for Jtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn jtp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jtp"))
}

fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts standalone mode with the server's secrets in its environment, as a deployment would.
fn start_with_secrets(data: &Path) -> Jtp {
    let port = free_port();
    let jobs = data.join("jobs");
    std::fs::create_dir_all(&jobs).expect("jobs dir");
    let token = "portal-secret-token-4711".to_owned();
    let child = jtp()
        .arg("standalone")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data)
        .arg("--jobs-dir")
        .arg(&jobs)
        .env("JTP_PORTAL_TOKEN", &token)
        .env(
            "JTP_DATABASE_URL",
            format!("sqlite://{}", data.join("jtp.db").display()),
        )
        .env("JTP_SOME_OTHER_SETTING", "server-only")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(data.join("jtp.log")).expect("log file"),
        ))
        .spawn()
        .expect("start jtp standalone");
    let jtp = Jtp {
        child,
        base: format!("http://127.0.0.1:{port}"),
        token,
    };
    wait_until(Duration::from_secs(30), "the portal to answer", || {
        reqwest::blocking::get(format!("{}/healthz", jtp.base)).is_ok_and(|r| r.status().is_success())
    });
    jtp
}

fn api(jtp: &Jtp, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut request = client
        .request(method, format!("{}/api/v1{path}", jtp.base))
        .bearer_auth(&jtp.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().expect("API request");
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[test]
fn help_never_prints_the_database_password() {
    let out = jtp()
        .args(["standalone", "--help"])
        .env(
            "JTP_DATABASE_URL",
            "postgres://jtp:hunter2-secret@127.0.0.1:1/jtp",
        )
        .env("JTP_PORTAL_PASSWORD", "pw-secret")
        .env("JTP_PORTAL_TOKEN", "token-secret")
        .output()
        .expect("run jtp");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && help.contains("--database-url"), "{help}");
    for secret in ["hunter2-secret", "pw-secret", "token-secret"] {
        assert!(!help.contains(secret), "--help printed {secret}:\n{help}");
    }
}

#[test]
fn empty_credentials_are_refused_at_start() {
    let data = tempfile::tempdir().expect("temp dir");
    for (flags, says) in [
        (vec!["--portal-token", ""], "--portal-token is empty"),
        (
            vec!["--portal-user", "admin", "--portal-password", ""],
            "--portal-password is empty",
        ),
        (
            vec!["--portal-password", "pw"],
            "--portal-password needs --portal-user",
        ),
    ] {
        let out = jtp()
            .arg("standalone")
            .args(["--listen", "127.0.0.1:0", "--jobs-dir="])
            .arg("--data-dir")
            .arg(data.path())
            .args(&flags)
            .output()
            .expect("run jtp");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} was accepted");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    }
}

#[test]
fn scripts_never_see_the_servers_secrets() {
    let data = tempfile::tempdir().expect("temp dir");
    let jtp = start_with_secrets(data.path());
    let spec = json!({ "schedule": { "manual": {} }, "script": { "inline": "env" }, "env": [{ "name": "MINE", "value": "kept" }] });
    let (status, body) = api(
        &jtp,
        reqwest::Method::POST,
        "/jobs",
        Some(json!({ "name": "show-env", "spec": spec })),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = api(&jtp, reqwest::Method::POST, "/jobs/default/show-env/run", None);
    assert_eq!(status, 202, "{body}");
    let mut output = String::new();
    wait_until(Duration::from_secs(30), "the run to finish", || {
        let (_, runs) = api(&jtp, reqwest::Method::GET, "/jobs/default/show-env/runs", None);
        let Some(id) = runs["items"][0]["id"]
            .as_i64()
            .filter(|_| runs["items"][0]["status"] == "SUCCESS")
        else {
            return false;
        };
        let (_, run) = api(&jtp, reqwest::Method::GET, &format!("/runs/{id}/output"), None);
        output = run.as_str().map(str::to_owned).unwrap_or_else(|| run.to_string());
        true
    });
    assert!(
        output.contains("MINE=kept") && output.contains("JTP_JOB_NAME=show-env"),
        "{output}"
    );
    assert!(output.contains("PATH="), "{output}");
    for secret in [
        "portal-secret-token-4711",
        "JTP_PORTAL_TOKEN",
        "JTP_DATABASE_URL",
        "JTP_SOME_OTHER_SETTING",
    ] {
        assert!(!output.contains(secret), "the script saw {secret}:\n{output}");
    }
}

#[test]
fn a_jobs_folder_that_does_not_exist_is_an_error_at_start() {
    let data = tempfile::tempdir().expect("temp dir");
    let out = jtp()
        .args(["standalone", "--no-portal", "--jobs-dir"])
        .arg(data.path().join("no-such-folder"))
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .expect("run jtp");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no-such-folder does not exist"), "{stderr}");
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit_at_start() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new("prlimit")
        .arg("--nofile=256:8192")
        .arg(env!("CARGO_BIN_EXE_jtp"))
        .args(["standalone", "--no-portal", "--jobs-dir="])
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prlimit (util-linux) runs jtp");
    let limits = format!("/proc/{}/limits", child.id());
    let mut line = String::new();
    wait_until(Duration::from_secs(20), "the raised limit", || {
        line = std::fs::read_to_string(&limits)
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap_or_default()
            .to_owned();
        line.split_whitespace().nth(3) == Some("8192")
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("8192"), "{line}");
}
