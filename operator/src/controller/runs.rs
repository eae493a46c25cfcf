//! What a run's Job and pod say about it: still running, SUCCESS, FAILURE or ERROR (classified
//! purely from their status), and the IO that fetches the pod's log through `pods/log`.

use chrono::{DateTime, Duration, Utc};
use futures::AsyncReadExt;
use jtp_crds::{
    ATTEMPT_ANNOTATION, REQUESTER_ANNOTATION, RunStatus, SCHEDULED_AT_ANNOTATION, TRIGGER_ANNOTATION, Trigger,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{ListParams, LogParams};
use std::collections::VecDeque;

use super::builder::CONTAINER_NAME;
use super::decide::{Child, ChildState};
use super::{Error, Result};

/// Waiting reasons that mean the script will never start by itself.
pub const NEVER_STARTS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "StartError",
    "ContainerCannotRun",
    "RunContainerError",
];
/// Label the Job controller puts on a Job's pods.
pub const POD_JOB_LABEL: &str = "batch.kubernetes.io/job-name";

/// How a finished (or hopelessly stuck) run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub finished_at: DateTime<Utc>,
    /// Why, when the log alone does not say (image pull failure, deadline…).
    pub note: Option<String>,
    /// The Job never finishes by itself: delete it once recorded.
    pub stuck: bool,
}

pub fn to_chrono(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(
        t.0.as_second(),
        u32::try_from(t.0.subsec_nanosecond()).unwrap_or(0),
    )
    .unwrap_or_default()
}

fn job_condition<'a>(job: &'a Job, type_: &str) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// True when the Job controller has declared the Job finished.
pub fn job_finished(job: &Job) -> bool {
    job_condition(job, "Complete").is_some() || job_condition(job, "Failed").is_some()
}

/// The instant a Job was created.
pub fn created(job: &Job) -> DateTime<Utc> {
    job.metadata
        .creation_timestamp
        .as_ref()
        .map(to_chrono)
        .unwrap_or_default()
}

/// Summarises a Job of ours; `None` for a Job without our annotations.
pub fn child(job: &Job, outcome: Option<&Outcome>) -> Option<Child> {
    let ann = job.metadata.annotations.as_ref()?;
    let scheduled_at = DateTime::parse_from_rfc3339(ann.get(SCHEDULED_AT_ANNOTATION)?)
        .ok()?
        .with_timezone(&Utc);
    let trigger = Trigger::parse(ann.get(TRIGGER_ANNOTATION)?)?;
    // Jobs made before retries existed have no attempt: they are first attempts.
    let attempt = ann
        .get(ATTEMPT_ANNOTATION)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let state = match outcome {
        Some(o) => ChildState::Finished {
            status: o.status,
            finished_at: o.finished_at,
        },
        None if job_finished(job) => ChildState::Finished {
            status: if job_condition(job, "Complete").is_some() {
                RunStatus::Success
            } else {
                RunStatus::Failure
            },
            finished_at: finished_at(job),
        },
        None => ChildState::Active,
    };
    Some(Child {
        name: job.metadata.name.clone()?,
        trigger,
        scheduled_at,
        attempt,
        created: created(job),
        requester: ann.get(REQUESTER_ANNOTATION).cloned(),
        parameters: super::builder::job_parameters(job),
        state,
        recorded: false,
    })
}

fn finished_at(job: &Job) -> DateTime<Utc> {
    let status = job.status.as_ref();
    status
        .and_then(|s| s.completion_time.as_ref())
        .or_else(|| job_condition(job, "Failed").and_then(|c| c.last_transition_time.as_ref()))
        .or_else(|| job_condition(job, "Complete").and_then(|c| c.last_transition_time.as_ref()))
        .map(to_chrono)
        .unwrap_or_else(|| created(job))
}

/// Classifies a run from its Job and its latest pod. `None` while it runs (or may still start).
pub fn classify(job: &Job, pod: Option<&Pod>, now: DateTime<Utc>, grace: Duration) -> Option<Outcome> {
    let container = pod
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.name == CONTAINER_NAME)
                .or_else(|| cs.first())
        });
    let state = container.and_then(|c| c.state.as_ref());
    let terminated = state.and_then(|s| s.terminated.as_ref());
    let waiting = state.and_then(|s| s.waiting.as_ref());
    let waiting_error = waiting.filter(|w| w.reason.as_deref().is_some_and(|r| NEVER_STARTS.contains(&r)));
    let never_ran = terminated.filter(|t| {
        t.reason
            .as_deref()
            .is_some_and(|r| r == "StartError" || r == "ContainerCannotRun")
            || t.message
                .as_deref()
                .is_some_and(|m| m.contains("executable file not found"))
    });
    let describe = |reason: Option<&String>, message: Option<&String>| {
        format!(
            "{}: {}",
            reason.map_or("Error", String::as_str),
            message.map_or("", String::as_str)
        )
    };

    if job_condition(job, "Complete").is_some() {
        return Some(Outcome {
            status: RunStatus::Success,
            exit_code: Some(terminated.map_or(0, |t| t.exit_code)),
            finished_at: finished_at(job),
            note: None,
            stuck: false,
        });
    }
    if let Some(failed) = job_condition(job, "Failed") {
        let deadline = failed.reason.as_deref() == Some("DeadlineExceeded");
        let (status, note) = if let Some(t) = never_ran {
            (
                RunStatus::Error,
                Some(describe(t.reason.as_ref(), t.message.as_ref())),
            )
        } else if let (Some(w), false) = (waiting_error, deadline) {
            (
                RunStatus::Error,
                Some(describe(w.reason.as_ref(), w.message.as_ref())),
            )
        } else if terminated.is_none() && !deadline {
            (
                RunStatus::Error,
                Some(describe(failed.reason.as_ref(), failed.message.as_ref())),
            )
        } else {
            let note = deadline.then(|| describe(failed.reason.as_ref(), failed.message.as_ref()));
            (RunStatus::Failure, note)
        };
        return Some(Outcome {
            status,
            exit_code: terminated.map(|t| t.exit_code),
            finished_at: finished_at(job),
            note,
            stuck: false,
        });
    }
    // Still active: only a run that provably cannot start is decided here, after the grace period
    // (deterministic finish time, so a retry computes the same row).
    let give_up = created(job) + grace;
    if now < give_up {
        return None;
    }
    if let Some(w) = waiting_error {
        return Some(Outcome {
            status: RunStatus::Error,
            exit_code: None,
            finished_at: give_up,
            note: Some(describe(w.reason.as_ref(), w.message.as_ref())),
            stuck: true,
        });
    }
    let unschedulable = pod
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter().find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
        });
    if let Some(c) = unschedulable {
        return Some(Outcome {
            status: RunStatus::Error,
            exit_code: None,
            finished_at: give_up,
            note: Some(describe(c.reason.as_ref(), c.message.as_ref())),
            stuck: true,
        });
    }
    None
}

/// An active Job that has no pod `grace` after it was created: ERROR, with why its pod was
/// never created (`why`, from its `FailedCreate` Events: a ResourceQuota, the namespace's Pod
/// Security, a missing ServiceAccount…) or that none appeared. `None` within the grace. The Job
/// would retry forever, so it is deleted once recorded.
pub fn never_created(job: &Job, why: Option<&str>, now: DateTime<Utc>, grace: Duration) -> Option<Outcome> {
    let give_up = created(job) + grace;
    // A Job that had a pod (now deleted, as at its deadline) is finishing, not failing to start:
    // the Job controller counts its pods and marks it FailureTarget/SuccessCriteriaMet first.
    let status = job.status.as_ref();
    let had_pods = status.is_some_and(|s| {
        [s.active, s.failed, s.succeeded, s.terminating, s.ready]
            .iter()
            .any(|n| n.unwrap_or(0) > 0)
    });
    let ending =
        job_condition(job, "FailureTarget").is_some() || job_condition(job, "SuccessCriteriaMet").is_some();
    if job_finished(job) || had_pods || ending || now < give_up {
        return None;
    }
    let note = match why {
        Some(message) => format!("FailedCreate: the Job's pod could not be created: {message}"),
        None => format!(
            "FailedCreate: the Job created no pod within {}s",
            grace.num_seconds()
        ),
    };
    Some(Outcome {
        status: RunStatus::Error,
        exit_code: None,
        finished_at: give_up,
        note: Some(note),
        stuck: true,
    })
}

/// The message of the latest `FailedCreate` Event of Job `job_name` (the Job controller's, which
/// tells why it could not create the pod); `None` when there is none or Events cannot be read.
pub async fn failed_create(events: &Api<CoreEvent>, job_name: &str) -> Option<String> {
    let fields = format!("involvedObject.kind=Job,involvedObject.name={job_name},reason=FailedCreate");
    match events.list(&ListParams::default().fields(&fields)).await {
        Ok(list) => list
            .items
            .into_iter()
            .max_by_key(|e| {
                e.last_timestamp
                    .as_ref()
                    .or(e.first_timestamp.as_ref())
                    .map(to_chrono)
            })
            .and_then(|e| e.message),
        Err(e) => {
            tracing::warn!(job = job_name, error = %e, "cannot read the Job's Events");
            None
        }
    }
}

/// The newest pod of a Job, if any.
pub async fn latest_pod(pods: &Api<Pod>, job_name: &str) -> Result<Option<Pod>> {
    let list = pods
        .list(&ListParams::default().labels(&format!("{POD_JOB_LABEL}={job_name}")))
        .await
        .map_err(Error::Kube)?;
    Ok(list
        .items
        .into_iter()
        .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(to_chrono)))
}

/// A pod's log as read: at most `cap` bytes of it, the head and the tail, and how many bytes were
/// dropped between them, so a log of any size costs the operator at most `cap` bytes of memory.
/// Bytes are kept as written; the store decodes them lossily (U+FFFD for what is not UTF-8).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOutput {
    pub head: Vec<u8>,
    pub tail: VecDeque<u8>,
    /// Bytes read but kept in neither part.
    pub omitted: u64,
}

impl RunOutput {
    /// Output that is only a note (a run with no log, or whose log could not be read).
    pub fn note_only(note: &str) -> Self {
        Self::default().with_note(note)
    }

    /// Adds `chunk`, read after everything before it, keeping the first `cap / 2` bytes and the
    /// last `cap - cap / 2`.
    pub fn push(&mut self, chunk: &[u8], cap: usize) {
        let head_room = (cap / 2).saturating_sub(self.head.len());
        let (to_head, rest) = chunk.split_at(head_room.min(chunk.len()));
        self.head.extend_from_slice(to_head);
        let tail_cap = cap - cap / 2;
        let skipped = rest.len().saturating_sub(tail_cap);
        self.tail.extend(&rest[skipped..]);
        let excess = self.tail.len().saturating_sub(tail_cap);
        self.tail.drain(..excess);
        self.omitted += (skipped + excess) as u64;
    }

    /// The output with `[jtp] note` on a line of its own after it (as [`jtp_store::with_note`]).
    pub fn with_note(mut self, note: &str) -> Self {
        let last = self.tail.back().or(self.head.last()).copied();
        let sep = if last.is_none_or(|b| b == b'\n') { "" } else { "\n" };
        self.tail
            .extend(format!("{sep}{}{note}\n", jtp_store::NOTE_PREFIX).as_bytes());
        self
    }

    /// The text to store, within `cap` (plus the line saying how much was cut).
    pub fn text(&self, cap: usize) -> String {
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        jtp_store::cap_output_parts(&self.head, &tail, self.omitted, cap).text
    }
}

/// Size of one read of a log stream.
const LOG_CHUNK: usize = 64 * 1024;

/// The pod's log (stdout and stderr) through the API server, streamed and kept within `cap`
/// bytes while it is read; a note when it cannot be read (after what could be).
pub async fn fetch_log(pods: &Api<Pod>, pod: &Pod, cap: usize) -> RunOutput {
    let Some(name) = pod.metadata.name.as_deref() else {
        return RunOutput::default();
    };
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.state.as_ref().is_some_and(|s| s.waiting.is_none()))
        });
    if !started {
        return RunOutput::default();
    }
    let params = LogParams {
        container: Some(CONTAINER_NAME.into()),
        ..LogParams::default()
    };
    let unreadable = |e: &dyn std::fmt::Display| format!("the log of pod {name} could not be read: {e}");
    let mut output = RunOutput::default();
    let stream = match pods.log_stream(name, &params).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!(pod = name, error = %e, "cannot read the pod log");
            return output.with_note(&unreadable(&e));
        }
    };
    let mut stream = std::pin::pin!(stream);
    let mut buf = vec![0; LOG_CHUNK];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return output,
            Ok(n) => output.push(&buf[..n], cap),
            Err(e) => {
                tracing::warn!(pod = name, error = %e, "the pod log stopped");
                return output.with_note(&unreadable(&e));
            }
        }
    }
}

/// The stored output: the log, then the note if there is one.
pub fn output(log: RunOutput, outcome: &Outcome) -> RunOutput {
    match &outcome.note {
        None => log,
        Some(note) => log.with_note(note),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {
                "name": "j-1", "creationTimestamp": "2026-03-01T00:00:00Z",
                "annotations": { SCHEDULED_AT_ANNOTATION: "2026-03-01T00:00:00Z", TRIGGER_ANNOTATION: "schedule" }
            },
            "status": status
        }))
        .expect("job")
    }

    fn pod(state: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "j-1-abc" },
            "status": { "containerStatuses": [{
                "name": "run", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": state
            }]}
        }))
        .expect("pod")
    }

    fn now(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("instant")
            .with_timezone(&Utc)
    }

    const GRACE: i64 = 30;

    #[test]
    fn exit_codes_make_success_and_failure() {
        let ok = job(json!({ "completionTime": "2026-03-01T00:00:03Z",
            "conditions": [{ "type": "Complete", "status": "True" }] }));
        let o = classify(
            &ok,
            Some(&pod(json!({"terminated": {"exitCode": 0}}))),
            now("2026-03-01T00:00:04Z"),
            Duration::seconds(GRACE),
        )
        .expect("finished");
        assert_eq!((o.status, o.exit_code), (RunStatus::Success, Some(0)));
        assert_eq!(o.finished_at, now("2026-03-01T00:00:03Z"));

        let failed = job(
            json!({ "conditions": [{ "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
            "lastTransitionTime": "2026-03-01T00:00:05Z" }] }),
        );
        let o = classify(
            &failed,
            Some(&pod(json!({"terminated": {"exitCode": 3}}))),
            now("2026-03-01T00:00:06Z"),
            Duration::seconds(GRACE),
        )
        .expect("finished");
        assert_eq!((o.status, o.exit_code), (RunStatus::Failure, Some(3)));

        let deadline = job(
            json!({ "conditions": [{ "type": "Failed", "status": "True", "reason": "DeadlineExceeded",
            "message": "Job was active longer than specified deadline" }] }),
        );
        let o = classify(
            &deadline,
            Some(&pod(json!({"terminated": {"exitCode": 137}}))),
            now("2026-03-01T00:01:00Z"),
            Duration::seconds(GRACE),
        )
        .expect("finished");
        assert_eq!(o.status, RunStatus::Failure);
        assert!(o.note.unwrap_or_default().contains("DeadlineExceeded"));
    }

    #[test]
    fn a_script_that_never_starts_is_an_error() {
        let failed = job(
            json!({ "conditions": [{ "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded" }] }),
        );
        let o = classify(
            &failed,
            Some(&pod(json!({"terminated": {"exitCode": 128, "reason": "StartError", "message": "exec: \"nope\": executable file not found in $PATH"}}))),
            now("2026-03-01T00:00:06Z"),
            Duration::seconds(GRACE),
        )
        .expect("finished");
        assert_eq!(o.status, RunStatus::Error);
        assert!(o.note.unwrap_or_default().contains("executable file not found"));

        let running = job(json!({ "active": 1 }));
        let pulling =
            pod(json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}));
        assert_eq!(
            classify(
                &running,
                Some(&pulling),
                now("2026-03-01T00:00:10Z"),
                Duration::seconds(GRACE)
            ),
            None,
            "within grace"
        );
        let o = classify(
            &running,
            Some(&pulling),
            now("2026-03-01T00:00:31Z"),
            Duration::seconds(GRACE),
        )
        .expect("stuck");
        assert_eq!(o.status, RunStatus::Error);
        assert!(o.stuck);
        assert_eq!(
            o.finished_at,
            now("2026-03-01T00:00:30Z"),
            "deterministic, so a retry writes the same row"
        );

        let creating = pod(json!({"waiting": {"reason": "ContainerCreating"}}));
        assert_eq!(
            classify(
                &running,
                Some(&creating),
                now("2026-03-01T00:05:00Z"),
                Duration::seconds(GRACE)
            ),
            None
        );
    }

    #[test]
    fn a_job_whose_pod_is_never_created_is_an_error_after_the_grace() {
        let running = job(json!({ "active": 0 }));
        let grace = Duration::seconds(GRACE);
        assert_eq!(
            never_created(&running, None, now("2026-03-01T00:00:29Z"), grace),
            None
        );
        let quota = "pods \"j-1-abc\" is forbidden: exceeded quota: none, requested: pods=1, used: pods=0, limited: pods=0";
        let o = never_created(&running, Some(quota), now("2026-03-01T00:00:31Z"), grace).expect("given up");
        assert_eq!((o.status, o.exit_code, o.stuck), (RunStatus::Error, None, true));
        assert_eq!(o.finished_at, now("2026-03-01T00:00:30Z"));
        assert!(
            o.note.as_deref().is_some_and(|n| n.contains("exceeded quota")),
            "{o:?}"
        );
        let o = never_created(&running, None, now("2026-03-01T00:01:00Z"), grace).expect("given up");
        assert!(
            o.note
                .as_deref()
                .is_some_and(|n| n.contains("created no pod within 30s")),
            "{o:?}"
        );
        for finishing in [
            json!({ "conditions": [{ "type": "Failed", "status": "True" }] }),
            json!({ "conditions": [{ "type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded" }] }),
            json!({ "failed": 1 }),
            json!({ "terminating": 1 }),
        ] {
            let job = job(finishing.clone());
            assert_eq!(
                never_created(&job, None, now("2026-03-01T00:01:00Z"), grace),
                None,
                "{finishing}"
            );
        }
    }

    #[test]
    fn children_are_active_until_their_job_finishes() {
        let c = child(&job(json!({ "active": 1 })), None).expect("ours");
        assert!(c.is_active() && !c.recorded);
        assert_eq!(c.trigger, Trigger::Schedule);
    }

    #[test]
    fn notes_follow_the_log() {
        let o = Outcome {
            status: RunStatus::Failure,
            exit_code: Some(137),
            finished_at: DateTime::default(),
            note: Some("DeadlineExceeded: too long".into()),
            stuck: false,
        };
        let mut log = RunOutput::default();
        log.push(b"partial", 1024);
        assert_eq!(
            output(log, &o).text(1024),
            "partial\n[jtp] DeadlineExceeded: too long\n"
        );
        assert_eq!(
            output(RunOutput::default(), &o).text(1024),
            "[jtp] DeadlineExceeded: too long\n"
        );
    }

    #[test]
    fn a_log_is_kept_head_and_tail_within_the_cap_while_it_is_read() {
        let cap = 100;
        let mut log = RunOutput::default();
        let mut written = Vec::new();
        for i in 0..1000u32 {
            let chunk = format!("line {i}\n");
            written.extend_from_slice(chunk.as_bytes());
            log.push(chunk.as_bytes(), cap);
            assert!(log.head.len() + log.tail.len() <= cap, "kept more than the cap");
        }
        assert_eq!(
            log.omitted as usize + log.head.len() + log.tail.len(),
            written.len()
        );
        let whole = jtp_store::cap_output(&written, cap).text;
        assert_eq!(log.text(cap), whole, "the same as capping the whole log");
        assert!(
            whole.starts_with("line 0\n") && whole.ends_with("line 999\n"),
            "{whole}"
        );
        // One chunk larger than the cap at once.
        let mut big = RunOutput::default();
        big.push(&written, cap);
        assert_eq!(big.text(cap), whole);
    }

    #[test]
    fn bytes_that_are_not_utf8_become_replacement_characters() {
        let mut log = RunOutput::default();
        log.push(b"before \xff after\n", 1024);
        assert_eq!(log.text(1024), "before \u{FFFD} after\n");
    }
}
