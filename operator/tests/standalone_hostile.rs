//! `jtp standalone` against hostile or careless input, through the built binary: secrets in its
//! environment and flags, empty credentials, and what scripts get to see.

use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Jtp, Standalone, jtp, wait_until};

/// Starts standalone mode with the server's secrets in its environment, as a deployment would.
fn start_with_secrets(data: &Path) -> Jtp {
    let jobs = data.join("jobs");
    std::fs::create_dir_all(&jobs).expect("jobs dir");
    Standalone::new(data)
        .arg("--jobs-dir")
        .arg(&jobs)
        .token("portal-secret-token-4711")
        .env(
            "JTP_DATABASE_URL",
            format!("sqlite://{}", data.join("jtp.db").display()),
        )
        .env("JTP_SOME_OTHER_SETTING", "server-only")
        .log(&data.join("jtp.log"))
        .start()
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
    let (status, body) = jtp.api(
        reqwest::Method::POST,
        "/jobs",
        Some(json!({ "name": "show-env", "spec": spec })),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = jtp.api(reqwest::Method::POST, "/jobs/default/show-env/run", None);
    assert_eq!(status, 202, "{body}");
    let mut output = String::new();
    wait_until(Duration::from_secs(30), "the run to finish", || {
        let (_, runs) = jtp.api(reqwest::Method::GET, "/jobs/default/show-env/runs", None);
        let Some(id) = runs["items"][0]["id"]
            .as_i64()
            .filter(|_| runs["items"][0]["status"] == "SUCCESS")
        else {
            return false;
        };
        let (_, run) = jtp.api(reqwest::Method::GET, &format!("/runs/{id}/output"), None);
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

/// A flood of half-open connections — 3,000, three times the open-file limit the server runs
/// under — neither shuts out the portal (`/healthz` and Run Now answer while it holds) nor the
/// scheduler (its jobs keep running, none fails with "Too many open files").
#[test]
fn a_flood_of_half_open_connections_starves_neither_the_portal_nor_the_scheduler() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    const FLOOD: usize = 3_000;
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("limit");
    assert!(
        hard >= 4_096,
        "this test holds {FLOOD} sockets open: raise the hard open-file limit (ulimit -Hn) to 4096 or more"
    );
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("raise this test's own limit");
    let data = tempfile::tempdir().expect("temp dir");
    let jtp = Standalone::with_file_limit(data.path(), 1_024)
        .arg("--jobs-dir=")
        .log(&data.path().join("jtp.log"))
        .start();
    // Five jobs every 10 s (each on its own phase): each runs at least once while the flood holds.
    const TICKS: usize = 5;
    for i in 0..TICKS {
        jtp.create(
            &format!("tick-{i}"),
            json!({ "schedule": { "interval": { "every": 10, "unit": "seconds" } }, "script": { "inline": "echo tick" } }),
        );
    }
    jtp.create(
        "asked",
        json!({ "schedule": { "manual": {} }, "script": { "inline": "echo asked" } }),
    );
    let addr: std::net::SocketAddr = jtp.base.trim_start_matches("http://").parse().expect("addr");
    let flood_started = chrono::Utc::now();
    let flood: Vec<std::net::TcpStream> = (0..FLOOD)
        .filter_map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok())
        .collect();
    assert!(
        flood.len() >= FLOOD * 2 / 3,
        "only {} connections opened",
        flood.len()
    );

    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("client");
    for _ in 0..5 {
        let started = Instant::now();
        let health = client.get(format!("{}/healthz", jtp.base)).send();
        assert!(
            health.as_ref().is_ok_and(|r| r.status().is_success()),
            "/healthz during the flood: {health:?} after {:?}",
            started.elapsed()
        );
    }
    jtp.run_now("asked");
    wait_until(Duration::from_secs(15), "the Run Now during the flood", || {
        jtp.runs("asked")
            .first()
            .is_some_and(|r| r["status"] == "SUCCESS")
    });
    // The scheduler kept its slots while the flood held.
    wait_until(
        Duration::from_secs(15),
        "every job's slot during the flood",
        || {
            (0..TICKS).all(|i| {
                jtp.runs(&format!("tick-{i}")).iter().any(|r| {
                    r["status"] != "RUNNING"
                        && r["scheduledFor"]["rfc3339"]
                            .as_str()
                            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                            .is_some_and(|t| t > flood_started)
                })
            })
        },
    );
    for i in 0..TICKS {
        for run in jtp.runs(&format!("tick-{i}")) {
            let id = run["id"].as_i64().expect("id");
            if run["status"] != "RUNNING" {
                assert_eq!(run["status"], "SUCCESS", "{run}: {}", jtp.output(id));
            }
        }
    }
    // And the API answers while the flood still holds.
    let (status, _) = jtp.api(reqwest::Method::GET, "/jobs", None);
    assert_eq!(status, 200);
    drop(flood);
}
