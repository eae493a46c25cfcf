//! The local executor on real processes: statuses, ordering, caps, timeouts and refusals.

use jtp_crds::RunStatus;
use jtp_operator::standalone::contain::{Containment, Mode, RunScope};
use jtp_operator::standalone::executor::{ExecRequest, Program, Stop, execute, resolve_script_file};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

fn shell(script: &str) -> ExecRequest {
    ExecRequest {
        program: Program::Shell(script.into()),
        env: vec![("GREETING".into(), "hello".into())],
        working_dir: None,
        timeout: None,
        output_cap: 1 << 20,
        scope: tracked(),
        output: Default::default(),
    }
}

/// A tracking scope of its own for each run of this process.
fn tracked() -> RunScope {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    RunScope::Tag(format!("executor-test-{}/{n}", std::process::id()))
}

/// A runner's cgroup containment (root, as CI runs the tests) and the scope of one of its runs.
fn cgroup(dir: &std::path::Path) -> (Containment, RunScope) {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the cgroup containment tests create cgroups: run them as root (CI does), e.g. \
         `sudo -E cargo test -p jtp-operator --test executor`"
    );
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let runner = format!("executor-test-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let containment = Containment::start(Mode::Cgroup, &dir.join("scope"), &runner)
        .expect("cgroup v2 is mounted and writable (as root)");
    let scope = containment.run(1);
    assert!(matches!(scope, RunScope::Cgroup(_)), "{scope:?}");
    (containment, scope)
}

/// Whether the process is alive (a zombie is not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}

/// Waits for the pid a script wrote to `file`.
fn read_pid(file: &std::path::Path) -> i32 {
    std::fs::read_to_string(file)
        .expect("the script wrote its child's pid")
        .trim()
        .parse()
        .expect("a pid")
}

/// A script that starts a child in a session of its own (out of its process group), waits until
/// the child has written its pid, then goes on with `rest`.
fn setsid_child(pid_file: &std::path::Path, rest: &str) -> String {
    let pid = pid_file.display();
    format!(
        "setsid sh -c 'echo $$ > {pid}.tmp; mv {pid}.tmp {pid}; exec sleep 300' & \
         while [ ! -s {pid} ]; do sleep 0.05; done; {rest}"
    )
}

async fn a_setsid_child_ends_when_the_script_exits(scope: RunScope) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("child.pid");
    let mut req = shell(&setsid_child(&pid_file, "echo done"));
    req.scope = scope;
    let (status, code, text, _) = run(req).await;
    let child = read_pid(&pid_file);
    let gone = !alive(child);
    if !gone {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(gone, "the setsid child {child} lives on after the run");
    assert_eq!((status, code), (RunStatus::Success, Some(0)), "{text}");
    assert!(
        text.starts_with("done\n") && text.contains("1 process it left running was killed"),
        "{text}"
    );
}

async fn a_setsid_child_ends_at_the_timeout(scope: RunScope) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("child.pid");
    let mut req = shell(&setsid_child(&pid_file, "echo waiting; sleep 300"));
    req.scope = scope;
    req.timeout = Some(Duration::from_secs(1));
    let (status, _, text, _) = run(req).await;
    let child = read_pid(&pid_file);
    let gone = !alive(child);
    if !gone {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(gone, "the setsid child {child} outlived the timeout");
    assert_eq!(status, RunStatus::Failure, "{text}");
    assert!(text.contains("timed out after 1 s"), "{text}");
}

#[tokio::test]
async fn tracked_a_setsid_child_ends_when_the_script_exits() {
    a_setsid_child_ends_when_the_script_exits(tracked()).await;
}

#[tokio::test]
async fn tracked_a_setsid_child_ends_at_the_timeout() {
    a_setsid_child_ends_at_the_timeout(tracked()).await;
}

#[tokio::test]
async fn cgroup_a_setsid_child_ends_when_the_script_exits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_containment, scope) = cgroup(dir.path());
    a_setsid_child_ends_when_the_script_exits(scope.clone()).await;
    assert!(
        !matches!(&scope, RunScope::Cgroup(path) if path.exists()),
        "the run's cgroup is removed at its end"
    );
}

#[tokio::test]
async fn cgroup_a_setsid_child_ends_at_the_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_containment, scope) = cgroup(dir.path());
    a_setsid_child_ends_at_the_timeout(scope).await;
}

/// In a cgroup a shell line enters the cgroup and `exec`s the program: what cannot be started is
/// still an ERROR with the OS's reason, and the script runs inside its cgroup.
#[tokio::test]
async fn cgroup_runs_start_in_their_cgroup_and_start_errors_stay_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_containment, scope) = cgroup(dir.path());
    let RunScope::Cgroup(path) = &scope else {
        unreachable!("a cgroup scope")
    };
    let mut req = shell("cat /proc/self/cgroup");
    req.scope = scope.clone();
    let (status, _, text, _) = run(req).await;
    assert_eq!(status, RunStatus::Success, "{text}");
    let name = path.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(
        text.lines().any(|l| l.starts_with("0::") && l.ends_with(name)),
        "{text}"
    );

    for (argv, says) in [
        (
            vec!["/nonexistent/jtp-no-such-program"],
            "No such file or directory",
        ),
        (vec!["jtp-no-such-program-on-path"], "No such file or directory"),
        (vec!["/etc"], "Permission denied"),
    ] {
        let mut req = shell("");
        req.program = Program::Argv(argv.iter().map(|a| (*a).to_owned()).collect());
        req.scope = scope.clone();
        let (status, code, text, _) = run(req).await;
        assert_eq!((status, code), (RunStatus::Error, None), "{argv:?}: {text}");
        assert!(text.contains(says), "{argv:?}: {text}");
    }
    let file = dir.path().join("not-executable.sh");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut req = shell("");
    req.program = Program::File(file);
    req.scope = scope.clone();
    let (status, _, text, _) = run(req).await;
    assert_eq!(status, RunStatus::Error);
    assert!(text.contains("Permission denied"), "{text}");
    let mut req = shell("");
    req.program = Program::Argv(vec!["sh".into(), "-c".into(), "echo found on PATH".into()]);
    req.scope = scope;
    let (status, _, text, _) = run(req).await;
    assert_eq!((status, text.as_str()), (RunStatus::Success, "found on PATH\n"));
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
    assert!(
        text.starts_with("[jtp] could not start"),
        "no blank line first: {text:?}"
    );

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
    assert_eq!(
        text,
        "done\n[jtp] the script exited; 1 process it left running was killed\n"
    );
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
        .filter(|n| !n.starts_with("LC_") && !["GREETING", "PWD", "SHLVL", "_", "JTP_RUN_TAG"].contains(*n))
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
