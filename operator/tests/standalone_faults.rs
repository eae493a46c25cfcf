//! Fault injection on standalone mode with real parts: a full disk under the database (a small
//! tmpfs, so these tests mount one and need root, as CI runs them; they fail, never skip, without
//! it). After each fault every run is recorded once with its real status and output.

use chrono::Utc;
use jtp_crds::{RunStatus, ScheduledJobSpec, Trigger};
use jtp_store::{Finish, FinishEffects, JobInput, RunFinish, SlotClaim, Store, StoreOptions};
use serde_json::json;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;
use common::{Jtp, Standalone, alive, jtp, wait_until};

fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this fault-injection test mounts a small tmpfs to fill its disk: run it as root (CI does), e.g. \
         `sudo -E cargo test -p jtp-operator --test standalone_faults`"
    );
}

/// A tmpfs of `size` mounted on a fresh folder; unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        require_root();
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed: {status}");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk with a file until the kernel says it is full; returns the file.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(nix::libc::ENOSPC), "{e}");
                    break;
                }
            }
        }
        let _ = file.flush();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn a_write_that_fails_on_a_full_disk_does_not_poison_the_connection() {
    let disk = SmallDisk::mount("4m");
    // One connection, so the write after the failure is sure to use the connection that failed.
    let options = StoreOptions {
        max_connections: 1,
        ..StoreOptions::default()
    };
    let url = format!("sqlite://{}", disk.path().join("jtp.db").display());
    let store = Store::connect_with(&url, options).await.expect("open the store");
    let spec = ScheduledJobSpec::manual();
    let job = store
        .create_job(&JobInput {
            name: "big",
            namespace: "default",
            uid: None,
            spec: &spec,
            next_run: Some(Utc::now()),
        })
        .await
        .expect("job");
    let claim = jtp_store::testing::claim_one(
        &store,
        SlotClaim {
            job_id: job.id,
            expected_next_run: job.next_run.expect("due"),
            new_next_run: None,
            runner: "faults",
            now: Utc::now(),
            drop_retry: false,
            parameters: &Default::default(),
        },
    )
    .await
    .expect("claim")
    .expect("won");
    let output = vec![b'x'; 400 * 1024];
    let finish = RunFinish {
        status: RunStatus::Success,
        exit_code: Some(0),
        output: &output,
        finished_at: Utc::now(),
    };
    let filler = disk.fill();
    let mut failures = 0;
    for _ in 0..5 {
        match store
            .record_attempt_finish(claim.run_id, &finish, FinishEffects::default())
            .await
        {
            Err(e) => {
                assert!(e.is_transient(), "a full disk is worth retrying: {e}");
                failures += 1;
            }
            Ok(done) => panic!("the write fit on a full disk: {done:?}"),
        }
    }
    assert_eq!(failures, 5);
    std::fs::remove_file(filler).expect("free the space");
    let done = store
        .record_attempt_finish(claim.run_id, &finish, FinishEffects::default())
        .await
        .expect("recorded once the space is back");
    assert_eq!(done, Finish::Recorded);
    let run = store.get_run(claim.run_id).await.expect("run");
    assert_eq!(
        (run.summary.status, run.summary.trigger),
        (RunStatus::Success, Trigger::Schedule)
    );
    assert_eq!(run.summary.output_bytes, 400 * 1024);
    store.close().await;
}

fn start(data: &Path, log: &Path) -> Jtp {
    Standalone::new(data).arg("--jobs-dir=").log(log).start()
}

#[test]
fn runs_that_finish_while_the_disk_is_full_are_recorded_when_space_is_back() {
    let disk = SmallDisk::mount("3m");
    let logs = tempfile::tempdir().expect("temp dir");
    let jtp = start(&disk.path().join("data"), &logs.path().join("jtp.log"));
    let spec = json!({ "schedule": { "manual": {} }, "script": { "inline": "head -c 409600 /dev/zero | tr '\\0' 'x'; echo; echo END" } });
    let (status, body) = jtp.api(
        reqwest::Method::POST,
        "/jobs",
        Some(json!({ "name": "big", "spec": spec })),
    );
    assert_eq!(status, 201, "{body}");

    let filler = disk.fill();
    let (status, body) = jtp.api(reqwest::Method::POST, "/jobs/default/big/run", None);
    // The request itself may not fit on the disk; the run is asked for again below if so.
    let asked_while_full = status == 202;
    std::thread::sleep(Duration::from_secs(4));
    std::fs::remove_file(filler).expect("free the space");
    if !asked_while_full {
        let (status, _) = jtp.api(reqwest::Method::POST, "/jobs/default/big/run", None);
        assert_eq!(status, 202, "Run Now once the space is back: {body}");
    }
    wait_until(Duration::from_secs(60), "the run to be recorded", || {
        jtp.runs("big").first().is_some_and(|r| r["status"] == "SUCCESS")
    });
    // The runner is not wedged: a second run goes through as well.
    let (status, _) = jtp.api(reqwest::Method::POST, "/jobs/default/big/run", None);
    assert_eq!(status, 202);
    wait_until(Duration::from_secs(60), "a second run", || {
        let all = jtp.runs("big");
        all.len() == 2 && all.iter().all(|r| r["status"] == "SUCCESS")
    });
    let log = std::fs::read_to_string(logs.path().join("jtp.log")).unwrap_or_default();
    assert!(!log.contains("non-zero transaction depth"), "{log}");
    for run in jtp.runs("big") {
        let id = run["id"].as_i64().expect("id");
        let (_, output) = jtp.api(reqwest::Method::GET, &format!("/runs/{id}/output"), None);
        let text = output.as_str().unwrap_or_default().to_owned();
        assert!(
            text.trim_end().ends_with("END"),
            "run {id} kept its output: {} bytes",
            text.len()
        );
    }
    drop(jtp);
}

#[test]
fn two_runners_on_one_data_folder_keep_their_own_ids_and_results() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let first = start(&data, &dir.path().join("first.log"));
    let spec = json!({ "schedule": { "manual": {} }, "script": { "inline": "sleep 3; echo finished" } });
    let (status, body) = first.api(
        reqwest::Method::POST,
        "/jobs",
        Some(json!({ "name": "slow", "spec": spec })),
    );
    assert_eq!(status, 201, "{body}");
    let (status, _) = first.api(reqwest::Method::POST, "/jobs/default/slow/run", None);
    assert_eq!(status, 202);
    wait_until(Duration::from_secs(20), "the run to start", || {
        first
            .runs("slow")
            .first()
            .is_some_and(|r| r["status"] == "RUNNING")
    });
    // A second runner with the default id starts beside it while the run is in flight.
    let second_log = dir.path().join("second.log");
    // Killed when dropped, even when an assertion below fails.
    let second = Standalone::new(&data)
        .arg("--jobs-dir=")
        .log(&second_log)
        .no_portal()
        .start();
    wait_until(Duration::from_secs(20), "the second runner to start", || {
        std::fs::read_to_string(&second_log).is_ok_and(|l| l.contains("runner starting"))
    });
    let log = std::fs::read_to_string(&second_log).unwrap_or_default();
    assert!(
        log.contains("-standalone-2"),
        "the second runner took its own id: {log}"
    );
    // The same id, given explicitly, is refused while its runner lives.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let held = format!("{}-standalone", host.trim());
    let refused = jtp()
        .args(["standalone", "--no-portal", "--jobs-dir=", "--runner-id", &held])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run jtp");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("held by a live runner"),
        "{stderr}"
    );

    wait_until(Duration::from_secs(30), "the run to finish", || {
        first
            .runs("slow")
            .first()
            .is_some_and(|r| r["status"] != "RUNNING")
    });
    let all = first.runs("slow");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[0]["status"], "SUCCESS",
        "the first runner's result stands: {all:?}"
    );
    drop(second);
}

#[tokio::test]
async fn a_real_finish_replaces_an_interrupted_row() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("jtp.db").display()))
        .await
        .expect("store");
    let spec = ScheduledJobSpec::manual();
    let job = store
        .create_job(&JobInput {
            name: "late",
            namespace: "default",
            uid: None,
            spec: &spec,
            next_run: Some(Utc::now()),
        })
        .await
        .expect("job");
    let claim = jtp_store::testing::claim_one(
        &store,
        SlotClaim {
            job_id: job.id,
            expected_next_run: job.next_run.expect("due"),
            new_next_run: None,
            runner: "r1",
            now: Utc::now(),
            drop_retry: false,
            parameters: &Default::default(),
        },
    )
    .await
    .expect("claim")
    .expect("won");
    assert_eq!(
        store
            .interrupted_runs_cleanup("r1", Utc::now())
            .await
            .expect("cleanup"),
        1
    );
    let finish = RunFinish {
        status: RunStatus::Success,
        exit_code: Some(0),
        output: b"done\n",
        finished_at: Utc::now(),
    };
    assert_eq!(
        store
            .record_attempt_finish(claim.run_id, &finish, FinishEffects::default())
            .await
            .expect("finish"),
        Finish::Recorded
    );
    let run = store.get_run(claim.run_id).await.expect("run");
    assert_eq!(
        (run.summary.status, run.log_output.as_str()),
        (RunStatus::Success, "done\n")
    );
    // A run that really finished stays as it is.
    let again = RunFinish {
        status: RunStatus::Failure,
        ..finish
    };
    assert_eq!(
        store
            .record_attempt_finish(claim.run_id, &again, FinishEffects::default())
            .await
            .expect("finish"),
        Finish::AlreadyFinished
    );
}

#[test]
fn a_jobs_folder_moved_away_and_back_keeps_its_jobs_and_their_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).expect("jobs dir");
    std::fs::write(
        jobs.join("job.yaml"),
        "apiVersion: jobtrigger.io/v1alpha1\nkind: ScheduledJob\nmetadata: { name: from-file }\nspec:\n  schedule: { daily: { at: \"09:00\" } }\n  script: { inline: echo hi }\n",
    )
    .expect("write");
    let jtp = Standalone::new(&dir.path().join("data"))
        .arg("--jobs-dir")
        .arg(&jobs)
        .start();
    let job = |jtp: &Jtp| jtp.api(reqwest::Method::GET, "/jobs/default/from-file", None);
    wait_until(Duration::from_secs(30), "the job from the file", || {
        reqwest::blocking::get(format!("{}/healthz", jtp.base)).is_ok_and(|r| r.status().is_success())
            && job(&jtp).0 == 200
    });
    let (_, before) = job(&jtp);
    std::fs::rename(&jobs, dir.path().join("elsewhere")).expect("move the folder away");
    // Three looks at the folder (every 2 s) while it is gone.
    std::thread::sleep(Duration::from_secs(6));
    let (status, during) = job(&jtp);
    assert_eq!(status, 200, "the job survived the folder's absence: {during}");
    std::fs::rename(dir.path().join("elsewhere"), &jobs).expect("move it back");
    std::thread::sleep(Duration::from_secs(4));
    let (status, after) = job(&jtp);
    assert_eq!(status, 200, "{after}");
    // The instant, not its relative wording ("in 20 h 10 min"), which moves with the clock.
    assert_eq!(
        after["nextRun"]["rfc3339"], before["nextRun"]["rfc3339"],
        "the same row, untouched: {before} / {after}"
    );
}

/// `kill -9` of the runner while a script runs with a grandchild in a session of its own
/// (`setsid`): none of the run's processes lives on past the restarted runner's start (with a
/// cgroup, none lives on past the runner at all), the run is recorded once as interrupted, its
/// folder (where a run's Secret files live) is removed, and the next run goes through.
fn a_killed_runner_leaves_no_process_behind(containment: &str) {
    require_root();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let pids = dir.path().join("pids");
    std::fs::create_dir_all(&pids).expect("pids dir");
    let log = dir.path().join("jtp.log");
    let start = || {
        Standalone::new(&data)
            .args(["--jobs-dir=", "--containment", containment])
            .log(&log)
            .start()
    };
    let jtp = start();
    let p = pids.display();
    let script = format!(
        "if [ -e {p}/first ]; then echo second run; exit 0; fi; : > {p}/first; echo $$ > {p}/script; \
         setsid sh -c 'echo $$ > {p}/child.tmp; mv {p}/child.tmp {p}/child; exec sleep 300' & sleep 300"
    );
    jtp.create(
        "orphans",
        json!({ "schedule": { "manual": {} }, "concurrencyPolicy": "Forbid", "script": { "inline": script } }),
    );
    jtp.run_now("orphans");
    let pid_of =
        |name: &str| -> Option<i32> { std::fs::read_to_string(pids.join(name)).ok()?.trim().parse().ok() };
    wait_until(Duration::from_secs(20), "the script and its child", || {
        pid_of("script").is_some() && pid_of("child").is_some()
    });
    let started = [pid_of("script"), pid_of("child")].map(|p| p.expect("pid"));
    // Whatever an assertion below says, nothing of this test outlives it.
    struct KillOnDrop([i32; 2]);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            for pid in self.0 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let _leftovers = KillOnDrop(started);
    assert!(started.iter().all(|pid| alive(*pid)), "{started:?}");

    let scope_file = std::fs::read_dir(data.join("runners"))
        .expect("runners")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "scope"))
        .expect("the runner recorded its scope");
    let scope: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&scope_file).expect("read")).expect("json");
    let run_id = jtp.runs("orphans")[0]["id"].as_i64().expect("id");
    let run_dir = data.join("run").join(run_id.to_string());
    assert!(run_dir.is_dir(), "the run has its folder while it runs");
    drop(jtp); // SIGKILL: no chance to clean up.
    if containment == "cgroup" {
        wait_until(
            Duration::from_secs(5),
            "the watchdog to end the run's cgroup",
            || started.iter().all(|pid| !alive(*pid)),
        );
        let cgroup = PathBuf::from(scope["cgroup"].as_str().expect("a cgroup scope"));
        wait_until(
            Duration::from_secs(5),
            "the watchdog to remove the cgroups",
            || !cgroup.exists(),
        );
    }
    let jtp = start();
    let living: Vec<i32> = started.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(
        living.is_empty(),
        "processes of the killed runner's run live on after the restart: {living:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let runs = jtp.runs("orphans");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "FAILURE", "{runs:?}");
    let id = runs[0]["id"].as_i64().expect("id");
    assert!(jtp.output(id).contains("interrupted"), "{}", jtp.output(id));
    wait_until(
        Duration::from_secs(5),
        "the killed run's folder to be removed",
        || !run_dir.exists(),
    );

    jtp.run_now("orphans");
    wait_until(Duration::from_secs(20), "the next run", || {
        jtp.runs("orphans")
            .first()
            .is_some_and(|r| r["status"] == "SUCCESS")
    });
    let newest = jtp.runs("orphans")[0]["id"].as_i64().expect("id");
    assert_eq!(jtp.output(newest), "second run\n");
}

#[test]
fn cgroup_a_killed_runner_leaves_no_process_behind() {
    a_killed_runner_leaves_no_process_behind("cgroup");
}

#[test]
fn tracking_a_killed_runner_leaves_no_process_behind() {
    a_killed_runner_leaves_no_process_behind("tracking");
}
