//! Containment: every process a run starts — its children, and theirs, even those that leave the
//! script's process group with `setsid` — ends with the run, and what a runner killed with
//! `kill -9` left running is ended before it runs anything again.
//!
//! Two kinds, chosen at start ([`Mode`]):
//! - **cgroup** (cgroup v2, where the runner may create cgroups, e.g. as root): each run in its own
//!   cgroup under one per runner process. The script enters its cgroup before it is executed (a
//!   `/bin/sh` line writes its own pid to `cgroup.procs` and `exec`s the program), so nothing it
//!   forks is ever outside. The run's end writes `cgroup.kill`. A watchdog process per runner
//!   holds a pipe from the runner and kills the whole tree the instant the runner dies.
//! - **tracking** (no cgroup): each run's processes carry `JTP_RUN_TAG` in their environment
//!   and are found in `/proc`. A process that clears its environment (`env -i`) escapes it.
//!
//! Either way the runner records its scope in the data folder, next to the lock of its id, and a
//! runner restarted with that id ends what the previous one left behind.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable that tags the processes of a run in tracking mode: `<runner scope>/<run id>`.
pub const RUN_TAG: &str = "JTP_RUN_TAG";

/// How long ending a scope waits for its processes to be gone.
const END_WAIT: Duration = Duration::from_secs(5);

/// Which containment to use (`--containment`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// cgroup when the runner can create cgroups, else tracking (with a warning).
    Auto,
    /// cgroup v2, or refuse to start.
    Cgroup,
    /// Processes found by `JTP_RUN_TAG` in their environment.
    Tracking,
}

/// Where one runner keeps its runs: made once at start by [`Containment::start`].
#[derive(Debug)]
pub struct Containment {
    scope: Scope,
    /// The cgroup watchdog and its pipe, closed when the runner dies, however it dies.
    watchdog: Option<(Child, ChildStdin)>,
}

/// A runner's scope, as recorded in the data folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Scope {
    /// The runner's cgroup directory; each run is a cgroup inside it.
    Cgroup(PathBuf),
    /// The prefix of its runs' tags.
    Tag(String),
}

/// Where the processes of one run are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunScope {
    /// A cgroup v2 directory the run's processes are started in.
    Cgroup(PathBuf),
    /// The value of [`RUN_TAG`] in the environment of the run's processes.
    Tag(String),
}

impl std::fmt::Display for RunScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunScope::Cgroup(dir) => write!(f, "cgroup {}", dir.display()),
            RunScope::Tag(tag) => write!(f, "{RUN_TAG}={tag}"),
        }
    }
}

impl Containment {
    /// Ends what an earlier runner with this id on this data folder left running, then makes this
    /// runner's scope and records it. `record` is the runner's file in the data folder (the caller
    /// holds the lock of its id).
    pub fn start(mode: Mode, record: &Path, runner_id: &str) -> Result<Self, String> {
        if let Some(previous) = read_record(record) {
            let ended = previous.end_all();
            if ended > 0 {
                tracing::warn!(
                    processes = ended,
                    "ended processes the previous runner with this id left running"
                );
            }
            previous.remove();
        }
        let name: String = runner_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = format!("jtp-{name}-{}", std::process::id());
        let (scope, watchdog) = match mode {
            Mode::Tracking => (Scope::Tag(name), None),
            Mode::Cgroup | Mode::Auto => match make_cgroup(&name) {
                Ok((dir, watchdog)) => (Scope::Cgroup(dir), Some(watchdog)),
                Err(e) if mode == Mode::Cgroup => {
                    return Err(format!(
                        "--containment cgroup: {e}; run as root or in a delegated cgroup v2, or use \
                         --containment tracking"
                    ));
                }
                Err(e) => {
                    tracing::warn!(
                        reason = %e,
                        "no cgroup for runs: their processes are tracked by {RUN_TAG} in their \
                         environment (a process that clears its environment escapes)"
                    );
                    (Scope::Tag(name), None)
                }
            },
        };
        let json = serde_json::to_vec(&scope).map_err(|e| e.to_string())?;
        std::fs::write(record, json).map_err(|e| format!("cannot write {}: {e}", record.display()))?;
        match &scope {
            Scope::Cgroup(dir) => tracing::info!(cgroup = %dir.display(), "each run gets its own cgroup"),
            Scope::Tag(_) => tracing::info!("runs are tracked by {RUN_TAG}"),
        }
        Ok(Self { scope, watchdog })
    }

    /// The scope of one run.
    pub fn run(&self, run_id: i64) -> RunScope {
        match &self.scope {
            Scope::Cgroup(dir) => RunScope::Cgroup(dir.join(format!("run-{run_id}"))),
            Scope::Tag(prefix) => RunScope::Tag(format!("{prefix}/{run_id}")),
        }
    }

    /// Kind and place, for the log.
    pub fn describe(&self) -> String {
        match &self.scope {
            Scope::Cgroup(dir) => format!("cgroup {}", dir.display()),
            Scope::Tag(prefix) => format!("tracking {RUN_TAG}={prefix}/…"),
        }
    }
}

impl Drop for Containment {
    fn drop(&mut self) {
        // A clean stop: every run has ended. The watchdog sees its pipe close and exits.
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = child.wait();
        }
        self.scope.remove();
    }
}

impl Scope {
    /// Kills every process of every run in the scope; how many there were.
    fn end_all(&self) -> usize {
        match self {
            Scope::Cgroup(dir) => {
                let runs = sub_cgroups(dir);
                let count = runs.iter().map(|run| cgroup_pids(run).len()).sum();
                for run in runs {
                    RunScope::Cgroup(run).end();
                }
                count
            }
            Scope::Tag(prefix) => end_tagged(&format!("{prefix}/")),
        }
    }

    fn remove(&self) {
        if let Scope::Cgroup(dir) = self {
            for run in sub_cgroups(dir) {
                let _ = std::fs::remove_dir(run);
            }
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl RunScope {
    /// Made before the run's process is started.
    pub fn prepare(&self) -> io::Result<()> {
        match self {
            RunScope::Cgroup(dir) => std::fs::create_dir(dir).or_else(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            }),
            RunScope::Tag(_) => Ok(()),
        }
    }

    /// The pids of the run's live processes.
    pub fn pids(&self) -> Vec<Pid> {
        match self {
            RunScope::Cgroup(dir) => cgroup_pids(dir),
            RunScope::Tag(tag) => tagged(&|value| value == tag.as_bytes()),
        }
    }

    /// Sends `signal` to every process of the run.
    pub fn signal(&self, signal: Signal) {
        for pid in self.pids() {
            let _ = kill(pid, signal);
        }
    }

    /// Kills every process of the run and waits (a little) until they are gone; how many there
    /// were.
    pub fn end(&self) -> usize {
        match self {
            RunScope::Cgroup(dir) => {
                let count = cgroup_pids(dir).len();
                let started = Instant::now();
                // `cgroup.kill` (Linux 5.14) takes forks in flight with it; before it, one by one.
                if std::fs::write(dir.join("cgroup.kill"), "1").is_err() {
                    self.signal(Signal::SIGKILL);
                }
                while !cgroup_pids(dir).is_empty() && started.elapsed() < END_WAIT {
                    self.signal(Signal::SIGKILL);
                    std::thread::sleep(Duration::from_millis(10));
                }
                count
            }
            RunScope::Tag(tag) => end_tagged_where(&|value| value == tag.as_bytes()),
        }
    }

    /// Removes what [`RunScope::prepare`] made (the run has ended).
    pub fn remove(&self) {
        if let RunScope::Cgroup(dir) = self {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// How to start the command `argv` (program first) inside the scope: the command to spawn,
    /// and a variable to add to its environment.
    pub fn wrap(&self, argv: Vec<OsString>) -> (Vec<OsString>, Option<(String, String)>) {
        match self {
            RunScope::Cgroup(dir) => {
                let mut wrapped: Vec<OsString> = vec![
                    super::executor::SHELL.into(),
                    "-c".into(),
                    ENTER_CGROUP.into(),
                    "jtp-run".into(),
                    dir.join("cgroup.procs").into(),
                ];
                wrapped.extend(argv);
                (wrapped, None)
            }
            RunScope::Tag(tag) => (argv, Some((RUN_TAG.to_owned(), tag.clone()))),
        }
    }

    /// Whether the program is started by a shell line that then `exec`s it (whose errors
    /// would come from the shell, after the start).
    pub fn execs_through_shell(&self) -> bool {
        matches!(self, RunScope::Cgroup(_))
    }
}

/// The shell line a run starts with in cgroup mode: enter the cgroup, then become the program
/// (same pid, same process group). Should the write fail, the shell says why and exits 125.
const ENTER_CGROUP: &str = r#"echo $$ > "$1" || exit 125; shift; exec "$@""#;

/// The watchdog: blocks on its stdin (a pipe the runner holds) and, when it reads end of file (the
/// runner has exited or was killed), kills the runner's cgroup tree and removes its cgroups once
/// their processes are gone (for up to 2 s).
const WATCHDOG: &str = r#"read _ignored; echo 1 > "$1/cgroup.kill"
for _try in 1 2 3 4 5 6 7 8 9 10; do
  rmdir "$1"/run-* 2>/dev/null; rmdir "$1" 2>/dev/null && exit 0; sleep 0.2
done"#;

/// The runner's cgroup directory (`<cgroup2 mount><own cgroup>/<name>`) and its watchdog.
fn make_cgroup(name: &str) -> Result<(PathBuf, (Child, ChildStdin)), String> {
    let mount = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|info| cgroup2_mount(&info))
        .ok_or("no cgroup v2 hierarchy is mounted")?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|lines| {
            lines
                .lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
        })
        .ok_or("this process is in no cgroup v2")?;
    let dir = mount.join(own.trim_start_matches('/')).join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let probe = dir.join("run-probe");
    let usable = std::fs::create_dir(&probe).and_then(|()| std::fs::remove_dir(&probe));
    if let Err(e) = usable {
        let _ = std::fs::remove_dir(&dir);
        return Err(format!("cannot create cgroups in {}: {e}", dir.display()));
    }
    let mut watchdog = Command::new(super::executor::SHELL)
        .args(["-c", WATCHDOG, "jtp-watchdog"])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_clear()
        .current_dir("/")
        // Its own group: a Ctrl-C meant for the runner must not end it first.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the cgroup watchdog: {e}"))?;
    let stdin = watchdog.stdin.take().ok_or("the cgroup watchdog has no stdin")?;
    Ok((dir, (watchdog, stdin)))
}

/// Where the cgroup v2 hierarchy is mounted, from `/proc/self/mountinfo`.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

fn sub_cgroups(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn cgroup_pids(dir: &Path) -> Vec<Pid> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .map(Pid::from_raw)
        .collect()
}

fn read_record(record: &Path) -> Option<Scope> {
    let bytes = std::fs::read(record).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(scope) => Some(scope),
        Err(e) => {
            tracing::warn!(file = %record.display(), error = %e, "unreadable record of the previous runner's scope");
            None
        }
    }
}

/// Processes whose environment has [`RUN_TAG`] with a value that `matches`.
fn tagged(matches: &dyn Fn(&[u8]) -> bool) -> Vec<Pid> {
    let key = format!("{RUN_TAG}=");
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|var| var.strip_prefix(key.as_bytes()).is_some_and(matches))
            })
        })
        .filter_map(|pid| i32::try_from(pid).ok().map(Pid::from_raw))
        .collect()
}

/// Kills the tagged processes that `matches` until none is left (they may fork meanwhile);
/// how many were found first.
fn end_tagged_where(matches: &dyn Fn(&[u8]) -> bool) -> usize {
    let started = Instant::now();
    let mut first = None;
    loop {
        let pids = tagged(matches);
        first.get_or_insert(pids.len());
        if pids.is_empty() || started.elapsed() > END_WAIT {
            return first.unwrap_or_default();
        }
        for pid in pids {
            let _ = kill(pid, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn end_tagged(prefix: &str) -> usize {
    end_tagged_where(&|value| value.starts_with(prefix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_read_from_mountinfo() {
        let info = "24 30 0:21 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw\n\
                    33 24 0:29 / /sys/fs/cgroup/pids rw,relatime shared:9 - cgroup cgroup rw,pids\n\
                    35 24 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(info), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(
            cgroup2_mount("24 30 0:21 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"),
            None
        );
    }

    #[test]
    fn a_scope_record_reads_back() {
        for scope in [
            Scope::Cgroup("/sys/fs/cgroup/jtp-a-1".into()),
            Scope::Tag("jtp-a-1".into()),
        ] {
            let json = serde_json::to_vec(&scope).expect("json");
            assert_eq!(serde_json::from_slice::<Scope>(&json).expect("read"), scope);
        }
    }
}
