//! The local executor on real processes: statuses, ordering, caps, timeouts and refusals.

use jtp_crds::RunStatus;
use jtp_operator::standalone::executor::{ExecRequest, Program, Stop, execute, resolve_script_file};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use tokio::sync::watch;

fn shell(script: &str) -> ExecRequest {
    ExecRequest {
        program: Program::Shell(script.into()),
        env: vec![("GREETING".into(), "hello".into())],
        working_dir: None,
        timeout: None,
        output_cap: 1 << 20,
    }
}

async fn run(req: ExecRequest) -> (RunStatus, Option<i32>, String, u64) {
    let (_keep, stop) = watch::channel(Stop::None);
    let outcome = execute(&req, stop).await;
    let (head, tail, dropped) = outcome.output.into_parts();
    let text = String::from_utf8_lossy(&[head, tail].concat()).into_owned();
    (outcome.status, outcome.exit_code, text, dropped)
}

#[tokio::test]
async fn success_captures_stdout_and_stderr_in_order_with_env() {
    let (status, code, text, _) = run(shell("echo one; echo two >&2; echo $GREETING; echo four >&2")).await;
    assert_eq!((status, code), (RunStatus::Success, Some(0)));
    assert_eq!(text, "one\ntwo\nhello\nfour\n");
}

#[tokio::test]
async fn non_zero_exit_is_failure_with_its_code() {
    let (status, code, text, _) = run(shell("echo broken >&2; exit 3")).await;
    assert_eq!((status, code), (RunStatus::Failure, Some(3)));
    assert_eq!(text, "broken\n");
}

#[tokio::test]
async fn a_program_that_cannot_start_is_error_with_the_os_error() {
    let mut req = shell("");
    req.program = Program::Argv(vec!["/nonexistent/jtp-no-such-program".into()]);
    let (status, code, text, _) = run(req).await;
    assert_eq!((status, code), (RunStatus::Error, None));
    assert!(text.contains("No such file or directory"), "{text}");

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("not-executable.sh");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut req = shell("");
    req.program = Program::File(file);
    let (status, _, text, _) = run(req).await;
    assert_eq!(status, RunStatus::Error);
    assert!(text.contains("Permission denied"), "{text}");
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group_and_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let marker = dir.path().join("grandchild-survived");
    let script = format!("(sleep 2; touch {}) & echo started; sleep 30", marker.display());
    let mut req = shell(&script);
    req.timeout = Some(Duration::from_millis(500));
    let started = Instant::now();
    let (status, _, text, _) = run(req).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status, RunStatus::Failure);
    assert!(
        text.starts_with("started\n") && text.contains("timed out after 0 s"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!marker.exists(), "a process of the group outlived the timeout");
}

#[tokio::test]
async fn a_stop_request_ends_the_run() {
    let (tx, rx) = watch::channel(Stop::None);
    let req = shell("echo going; sleep 30");
    let handle = tokio::spawn(async move { execute(&req, rx).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(Stop::Kill("the runner shut down"))
        .expect("executor listens");
    let outcome = tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("stopped in time")
        .expect("task");
    assert_eq!(outcome.status, RunStatus::Failure);
    let (head, tail, _) = outcome.output.into_parts();
    let text = String::from_utf8_lossy(&[head, tail].concat()).into_owned();
    assert!(text.contains("stopped: the runner shut down"), "{text}");
}

#[tokio::test]
async fn five_mib_of_output_keeps_head_and_tail_within_the_cap() {
    let mut req = shell("head -c 5242880 /dev/zero | tr '\\0' 'x'; echo; echo THE-END");
    req.output_cap = 64 * 1024;
    let (status, _, text, dropped) = run(req).await;
    assert_eq!(status, RunStatus::Success);
    assert!(text.len() <= 64 * 1024, "{}", text.len());
    assert!(text.starts_with("xxxx") && text.ends_with("THE-END\n"));
    assert_eq!(dropped, 5_242_880 + 9 - 64 * 1024);
}

#[tokio::test]
async fn invalid_utf8_output_is_kept_as_bytes() {
    let (status, _, text, _) = run(shell("printf 'ok \\377\\376 done\\n'")).await;
    assert_eq!(status, RunStatus::Success);
    assert_eq!(text, "ok \u{fffd}\u{fffd} done\n");
}

#[test]
fn script_files_outside_the_scripts_folder_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("scripts")).expect("mkdir");
    std::fs::write(dir.path().join("secret.sh"), "").expect("write");
    let scripts = dir.path().join("scripts");
    assert!(resolve_script_file(&scripts, "ok.sh").is_ok());
    assert!(resolve_script_file(&scripts, "sub/../ok.sh").is_ok());
    for bad in ["../secret.sh", "/etc/passwd", "sub/../../secret.sh"] {
        let err = resolve_script_file(&scripts, bad).expect_err(bad);
        assert!(err.starts_with("refused:"), "{err}");
    }
}

#[tokio::test]
async fn background_leftovers_do_not_keep_a_finished_run_open() {
    let started = Instant::now();
    let (status, _, text, _) = run(shell("sleep 60 & echo done")).await;
    assert_eq!(status, RunStatus::Success);
    assert_eq!(text, "done\n");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn scripts_get_a_clean_environment_not_the_runners() {
    // `cargo test` runs this process with CARGO_* variables set: a script must not see them, nor
    // anything else outside the allow-list, but does get PATH, HOME and its own variables.
    assert!(
        std::env::var_os("CARGO_MANIFEST_DIR").is_some(),
        "run this through cargo test"
    );
    let (status, _, text, _) = run(shell("env")).await;
    assert_eq!(status, RunStatus::Success);
    let names: Vec<&str> = text.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(names.contains(&"PATH") && names.contains(&"GREETING"), "{text}");
    let leaked: Vec<&&str> = names
        .iter()
        .filter(|n| !jtp_operator::standalone::executor::INHERITED_ENV.contains(n))
        .filter(|n| {
            !n.starts_with("LC_") && **n != "GREETING" && **n != "PWD" && **n != "SHLVL" && **n != "_"
        })
        .collect();
    assert!(leaked.is_empty(), "the script inherited {leaked:?}");
}

#[test]
fn the_jobs_own_variables_win_over_inherited_ones() {
    use jtp_operator::standalone::executor::script_env;
    let inherited = [
        ("PATH", "/usr/bin"),
        ("JTP_DATABASE_URL", "postgres://u:secret@h/db"),
        ("JTP_PORTAL_TOKEN", "t0ken"),
        ("LC_TIME", "C"),
        ("TZ", "UTC"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let env = script_env(inherited, &[("TZ".into(), "Asia/Tokyo".into())]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        env,
        [("PATH", "/usr/bin"), ("LC_TIME", "C"), ("TZ", "Asia/Tokyo")]
    );
}

#[tokio::test]
async fn a_missing_working_directory_is_named_as_what_failed() {
    let mut req = shell("echo hi");
    req.working_dir = Some("/nonexistent/jtp-no-such-dir".into());
    let (status, _, text, _) = run(req).await;
    assert_eq!(status, RunStatus::Error);
    assert!(
        text.contains("the working directory /nonexistent/jtp-no-such-dir does not exist"),
        "{text}"
    );
}

#[tokio::test]
async fn a_stopped_run_ends_as_soon_as_its_group_is_gone_not_after_the_whole_grace() {
    let (tx, rx) = watch::channel(Stop::None);
    // `sleep` dies of SIGTERM at once: nothing is left to wait for.
    let req = shell("sleep 30");
    let handle = tokio::spawn(async move { execute(&req, rx).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    tx.send(Stop::Kill("replaced")).expect("executor listens");
    let outcome = handle.await.expect("task");
    assert_eq!(outcome.status, RunStatus::Failure);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "took {:?}; the grace is {:?}",
        asked.elapsed(),
        jtp_operator::standalone::executor::KILL_GRACE
    );
}
