//! The local executor: runs one script as a child process in its own process group and its run's
//! scope ([`RunScope`]: a cgroup, or a tag), captures stdout and stderr together in the order they
//! were written, and classifies the outcome with the original system's rules (SUCCESS exit 0,
//! FAILURE non-zero or timed out, ERROR could not start). Whatever the script leaves running when
//! it exits, or when it is stopped, is killed with it: the run's whole process tree ends with it.

use super::contain::RunScope;
use jtp_crds::RunStatus;
pub use jtp_store::CapturedOutput;
use jtp_store::SharedOutput;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Program {
    /// A shell script, run with `sh -c`.
    Shell(String),
    /// A program and its arguments, run without a shell.
    Argv(Vec<String>),
    /// A file under the scripts folder, executed directly.
    File(PathBuf),
}

/// One run to execute.
#[derive(Clone, Debug)]
pub struct ExecRequest {
    pub program: Program,
    /// The job's variables, set over the few the runner passes on ([`script_env`]).
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    /// Stop the run (FAILURE) after this long.
    pub timeout: Option<Duration>,
    /// Keep at most this many bytes of output: the head and the tail.
    pub output_cap: usize,
    /// Where the run's processes are kept together (see [`super::contain`]).
    pub scope: RunScope,
    /// Where the output goes as it is read, for readers while the run is in flight (the portal's
    /// live output); the outcome holds it too.
    pub output: SharedOutput,
}

/// Why a run ended early, when it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Still running: let it go on.
    None,
    /// Replaced by a newer run, or the runner shut down: stop it now.
    Kill(&'static str),
    /// A person asked to stop it (the portal's Stop, `POST /api/v1/runs/{id}/stop`): stop it now;
    /// the run is FAILURE with the note "stopped by <who>" and gets no further attempt.
    ByUser(String),
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutcome {
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub output: CapturedOutput,
    /// Who stopped the run, when a person did ([`Stop::ByUser`]).
    pub stopped_by: Option<String>,
}

/// The shell of inline scripts, by its absolute path as POSIX `system()` uses it: a bare `sh`
/// would be looked up along `PATH`, one failed `execve` per directory before it, on every run.
pub const SHELL: &str = "/bin/sh";

/// Bytes read from a run's pipe at a time. Every run in flight holds one such buffer, and a burst
/// puts hundreds in flight at once: 16 KiB keeps that small while a script printing megabytes
/// still costs only a read per 16 KiB.
const READ_CHUNK: usize = 16 * 1024;

/// The runner's own variables a script inherits: what a login shell would set, nothing of the
/// server's configuration (`JTP_PORTAL_TOKEN`, `JTP_PORTAL_PASSWORD`, `JTP_DATABASE_URL` and the
/// like never reach a script). The locale's `LC_*` variables are passed as a family.
pub const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
];

/// `PATH` when the runner itself has none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The environment a script starts with: the allow-listed part of `inherited` ([`INHERITED_ENV`]
/// and `LC_*`), then `spec` (the job's `env` and the runner's `JTP_JOB_*` variables), which wins.
pub fn script_env(
    inherited: impl IntoIterator<Item = (String, String)>,
    spec: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = inherited
        .into_iter()
        .filter(|(name, _)| INHERITED_ENV.contains(&name.as_str()) || name.starts_with("LC_"))
        .collect();
    if !env.iter().any(|(name, _)| name == "PATH") {
        env.push(("PATH".to_owned(), DEFAULT_PATH.to_owned()));
    }
    env.retain(|(name, _)| !spec.iter().any(|(own, _)| own == name));
    env.extend(spec.iter().cloned());
    env
}

/// How long a stopped process group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// Runs the request to the end. `stop` lets the runner end it early (Replace policy, shutdown).
pub async fn execute(req: &ExecRequest, stop: watch::Receiver<Stop>) -> ExecOutcome {
    match start(req) {
        Ok(running) => running.finish(stop).await,
        Err(not_started) => not_started,
    }
}

/// A process that has been started: [`Running::finish`] reads its output and waits for it.
pub struct Running {
    reader: tokio::net::unix::pipe::Receiver,
    process: tokio::process::Child,
    pgid: Option<Pid>,
    scope: RunScope,
    deadline: Option<tokio::time::Instant>,
    timeout: Option<Duration>,
    output_cap: usize,
    output: SharedOutput,
}

/// Starts the process (its own process group, stdout and stderr on one pipe). When it cannot be
/// started the error is the outcome: ERROR, with the OS error as output.
pub fn start(req: &ExecRequest) -> Result<Running, ExecOutcome> {
    let (reader, process) = spawn(req).map_err(|e| {
        let mut output = CapturedOutput::default();
        // The OS reports a missing working directory as the program not being found: say which.
        match &req.working_dir {
            Some(dir) if !dir.is_dir() => output.note(&format!(
                "could not start {}: the working directory {} does not exist or is not a folder ({e})",
                describe(&req.program),
                dir.display()
            )),
            _ => output.note(&format!("could not start {}: {e}", describe(&req.program))),
        }
        ExecOutcome {
            status: RunStatus::Error,
            exit_code: None,
            output,
            stopped_by: None,
        }
    })?;
    let pgid = process
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    Ok(Running {
        reader,
        process,
        pgid,
        scope: req.scope.clone(),
        deadline: req.timeout.map(|t| tokio::time::Instant::now() + t),
        timeout: req.timeout,
        output_cap: req.output_cap,
        output: req.output.clone(),
    })
}

impl Running {
    /// Reads the output until the process has exited (or was stopped) and classifies the end.
    pub async fn finish(self, mut stop: watch::Receiver<Stop>) -> ExecOutcome {
        let Running {
            mut reader,
            mut process,
            pgid,
            scope,
            deadline,
            timeout,
            output_cap,
            output: shared,
        } = self;
        let output = || shared.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = vec![0u8; READ_CHUNK];
        let mut reason: Option<String> = None;
        let mut stopped_by: Option<String> = None;
        let mut open = true;
        let mut stop_open = true;
        let mut exited = None;
        // Once the script itself has exited, whatever it left running is stopped and the pipe drained.
        let mut drain_until = None;
        while open || exited.is_none() {
            tokio::select! {
                read = reader.read(&mut buf), if open => match read {
                    Ok(0) | Err(_) => open = false,
                    Ok(n) => output().push(&buf[..n], output_cap),
                },
                status = process.wait(), if exited.is_none() => {
                    exited = Some(status);
                    // Counted and killed before the group: counting after the kill could see some
                    // of them still dying.
                    let left = end_scope(&scope).await;
                    if let Some(pgid) = pgid {
                        let _ = killpg(pgid, Signal::SIGKILL);
                    }
                    if left > 0 && reason.is_none() {
                        output().note(&format!(
                            "the script exited; {left} process{} it left running {} killed",
                            if left == 1 { "" } else { "es" },
                            if left == 1 { "was" } else { "were" },
                        ));
                    }
                    drain_until = Some(tokio::time::Instant::now() + Duration::from_secs(2));
                }
                _ = sleep_until(drain_until), if open => open = false,
                _ = sleep_until(deadline), if reason.is_none() && exited.is_none() => {
                    let limit = timeout.unwrap_or_default().as_secs();
                    reason = Some(format!("timed out after {limit} s: the process group was killed"));
                    terminate(pgid, &scope, &mut process).await;
                }
                changed = stop.changed(), if stop_open && reason.is_none() && exited.is_none() => {
                    let requested = stop.borrow().clone();
                    match (changed, requested) {
                        (Ok(()), Stop::Kill(why)) => {
                            reason = Some(format!("stopped: {why}"));
                            terminate(pgid, &scope, &mut process).await;
                        }
                        (Ok(()), Stop::ByUser(who)) => {
                            reason = Some(format!("stopped by {who}"));
                            stopped_by = Some(who);
                            terminate(pgid, &scope, &mut process).await;
                        }
                        (Ok(()), Stop::None) => {}
                        (Err(_), _) => stop_open = false,
                    }
                }
            }
        }
        scope.remove();
        let output = output().clone();
        ExecOutcome {
            stopped_by,
            ..classify(exited, reason, output)
        }
    }
}

/// Kills what is left of the run's scope (off the runtime: it waits for the processes to go, and
/// tracking reads `/proc`); how many processes there were.
async fn end_scope(scope: &RunScope) -> usize {
    let scope = scope.clone();
    tokio::task::spawn_blocking(move || scope.end())
        .await
        .unwrap_or_default()
}

fn classify(
    exited: Option<io::Result<std::process::ExitStatus>>,
    reason: Option<String>,
    mut output: CapturedOutput,
) -> ExecOutcome {
    let Some(status) = exited else {
        output.note("lost track of the process");
        return ExecOutcome {
            status: RunStatus::Failure,
            exit_code: None,
            output,
            stopped_by: None,
        };
    };
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            output.note(&format!("lost track of the process: {e}"));
            return ExecOutcome {
                status: RunStatus::Failure,
                exit_code: None,
                output,
                stopped_by: None,
            };
        }
    };
    let exit_code = status.code().or_else(|| status.signal().map(|s| 128 + s));
    if let Some(reason) = reason {
        output.note(&reason);
        return ExecOutcome {
            status: RunStatus::Failure,
            exit_code,
            output,
            stopped_by: None,
        };
    }
    if let Some(signal) = status.signal() {
        output.note(&format!("killed by signal {signal}"));
    }
    let status = if exit_code == Some(0) {
        RunStatus::Success
    } else {
        RunStatus::Failure
    };
    ExecOutcome {
        status,
        exit_code,
        output,
        stopped_by: None,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// SIGTERM to the whole group and every process of the run's scope, then SIGKILL after a grace
/// period. Returns as soon as they are all gone. The script itself is reaped here (its status
/// stays with `process` for the caller's `wait`): an exited but unreaped leader is a zombie that
/// keeps the group "alive" for the probe, which would always wait the whole grace.
async fn terminate(pgid: Option<Pid>, scope: &RunScope, process: &mut tokio::process::Child) {
    let Some(pgid) = pgid else { return };
    let _ = killpg(pgid, Signal::SIGTERM);
    let members = scope.clone();
    let _ = tokio::task::spawn_blocking(move || members.signal(Signal::SIGTERM)).await;
    let deadline = tokio::time::Instant::now() + KILL_GRACE;
    while tokio::time::Instant::now() < deadline {
        let _ = process.try_wait();
        // Signal 0 probes whether any member of the group is alive.
        if killpg(pgid, None).is_err() && scope_is_empty(scope).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    end_scope(scope).await;
}

async fn scope_is_empty(scope: &RunScope) -> bool {
    let scope = scope.clone();
    tokio::task::spawn_blocking(move || scope.pids().is_empty())
        .await
        .unwrap_or(true)
}

fn describe(program: &Program) -> String {
    match program {
        Program::Shell(_) => SHELL.to_owned(),
        Program::Argv(argv) => argv.first().cloned().unwrap_or_default(),
        Program::File(path) => path.display().to_string(),
    }
}

type Spawned = (tokio::net::unix::pipe::Receiver, tokio::process::Child);

/// Starts the process with stdout and stderr on one pipe, in a new process group and the run's
/// scope.
fn spawn(req: &ExecRequest) -> io::Result<Spawned> {
    let argv: Vec<OsString> = match &req.program {
        Program::Shell(script) => vec![SHELL.into(), "-c".into(), script.into()],
        Program::Argv(argv) if argv.is_empty() => {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        }
        Program::Argv(argv) => argv.iter().map(OsString::from).collect(),
        Program::File(path) => vec![path.into()],
    };
    let mut env = script_env(
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        &req.env,
    );
    if req.scope.execs_through_shell() {
        // The shell that enters the scope `exec`s the program: what execve would refuse is
        // refused here, before the start, so it is an ERROR with the OS's reason as before.
        let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str());
        check_executable(&argv[0], path.unwrap_or(DEFAULT_PATH))?;
    }
    req.scope
        .prepare()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot make the run's {}: {e}", req.scope)))?;
    let (argv, tag) = req.scope.wrap(argv);
    env.extend(tag);
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let (reader, writer) = io::pipe()?;
    cmd.stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .env_clear()
        .envs(env)
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &req.working_dir {
        cmd.current_dir(dir);
    }
    let child = cmd.spawn().inspect_err(|_| req.scope.remove())?;
    // Drop our copies of the write end (held by `cmd`) so EOF arrives when the group exits.
    drop(cmd);
    let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into())?;
    Ok((reader, child))
}

/// What `execve` of `program` would say, looked up along `path` as `execvp` does when it has no
/// slash: not found, or not executable.
fn check_executable(program: &std::ffi::OsStr, path: &str) -> io::Result<()> {
    use nix::unistd::{AccessFlags, access};
    let program = Path::new(program);
    let candidates: Vec<PathBuf> = if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        vec![program.to_owned()]
    } else {
        path.split(':')
            .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(program))
            .collect()
    };
    let mut refused = io::Error::from_raw_os_error(nix::libc::ENOENT);
    for candidate in candidates {
        match access(&candidate, AccessFlags::X_OK) {
            Ok(()) if candidate.is_dir() => refused = io::Error::from_raw_os_error(nix::libc::EACCES),
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => {}
            Err(e) => refused = io::Error::from(e),
        }
    }
    Err(refused)
}

/// Resolves `script.file` inside the scripts folder, refusing paths that escape it.
pub fn resolve_script_file(scripts_dir: &Path, file: &str) -> Result<PathBuf, String> {
    let relative = Path::new(file);
    if relative.is_absolute() {
        return Err(format!(
            "refused: script file \"{file}\" is an absolute path; name a file inside the scripts folder"
        ));
    }
    let root = scripts_dir
        .canonicalize()
        .map_err(|e| format!("scripts folder {} is not readable: {e}", scripts_dir.display()))?;
    let joined = root.join(relative);
    // A missing file is resolved lexically so the start error (not found) is what the user sees.
    let resolved = joined.canonicalize().unwrap_or_else(|_| normalize(&joined));
    if !resolved.starts_with(&root) {
        return Err(format!(
            "refused: script file \"{file}\" is outside the scripts folder {}",
            root.display()
        ));
    }
    Ok(resolved)
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
