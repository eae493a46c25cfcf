//! The run policy of both modes: from what is known about a job at `now`, which runs start, which
//! stop, which slots are skipped and when the job runs next. The operator and the standalone
//! runner each gather the [`Facts`] their own way and carry out the [`Step`]; the decisions are
//! made only here. Pure: no client, no clock, no SQL.
//!
//! The rules:
//! - A slot runs at most once. After a downtime only the latest missed slot runs (never a burst),
//!   and only within `startingDeadlineSeconds` when that is set.
//! - `concurrencyPolicy` applies to scheduled slots: Forbid skips a slot while a run is in flight,
//!   Replace stops the runs in flight and starts the new one, Allow starts it alongside.
//! - Run Now always starts one run, at once: suspended, manual, with runs in flight under any
//!   policy. It never stops a run and is never skipped — a person asked for it.
//! - Suspended and manual jobs have no next run; their slots are not handled, so resuming (an
//!   edit of `suspend`) starts again from now.
//! - An edit that changes when the job runs (its schedule, zone or `suspend`) recomputes the next
//!   run from now, so nothing runs retroactively; any other edit keeps it ([`after_edit`]).
//! - A run that ends in FAILURE or ERROR with `retries` left gets a further attempt for the same
//!   slot once its backoff has passed ([`after_attempt`]); only the last attempt counts towards
//!   the job's failures in a row. A pending attempt does not wait for other runs; it is dropped
//!   when a newer scheduled run starts (the newer run answers for the job) and, for scheduled
//!   slots, when the job is suspended.
//! - Once `pauseAfterConsecutiveFailures` runs in a row failed, the job is suspended ([`pause_due`]).

use crate::schedule::{CompiledSchedule, JobId, MissedSlots};
use crate::types::{ConcurrencyPolicy, RunStatus, ScheduledJobSpec, Trigger};
use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Everything the policy needs to know about one job, with `R` naming a run in flight.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a, R> {
    pub schedule: &'a CompiledSchedule,
    /// Read for `suspend`, `concurrencyPolicy` and `startingDeadlineSeconds`.
    pub spec: &'a ScheduledJobSpec,
    /// Every slot up to this instant is handled (run, skipped, or before the job existed or was
    /// last rescheduled); the slots after it are due once they are not after `now`.
    pub handled_until: DateTime<Utc>,
    /// The instant of a Run Now that has not been handled yet.
    pub run_now: Option<DateTime<Utc>>,
    /// The runs of this job in flight.
    pub active: &'a [R],
    /// The further attempt of a failed run that is waiting, if any.
    pub retry: Option<PendingRetry>,
    pub now: DateTime<Utc>,
}

/// What to do about one job now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step<R> {
    /// Runs to start, scheduled slots first.
    pub launch: Vec<Launch>,
    /// Runs in flight to stop.
    pub stop: Vec<Stop<R>>,
    /// Due slots that are not run.
    pub skipped: Vec<Skipped>,
    /// The slots that fell due in this step: at most the latest, and whether earlier ones were
    /// missed too (they never run; report them with [`Reason::MissedSlots`]).
    pub missed: MissedSlots,
    /// Where the next step starts: the `handled_until` to remember.
    pub handled_until: DateTime<Utc>,
    /// The job's next slot, `None` for manual and suspended jobs.
    pub next_run: Option<DateTime<Utc>>,
    /// What becomes of the pending retry.
    pub retry: RetryStep,
}

/// One run to start: its trigger and its slot (for Run Now, the instant it was asked for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    pub trigger: Trigger,
    pub slot: DateTime<Utc>,
}

/// A further attempt of a slot whose last attempt failed, and when it may start.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PendingRetry {
    /// The slot (or Run Now instant) the attempts are for.
    pub scheduled_time: DateTime<Utc>,
    pub trigger: Trigger,
    /// The number of the attempt to start (2 for the first retry).
    pub attempt: u32,
    /// When the backoff has passed.
    pub at: DateTime<Utc>,
}

/// What a step does with the pending retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryStep {
    /// None was pending.
    None,
    /// Still waiting for its time: look again at `at`.
    Wait(PendingRetry),
    /// Its time has come: start it.
    Launch(PendingRetry),
    /// Given up, and why.
    Drop(PendingRetry, DropReason),
}

impl RetryStep {
    /// The retry still pending after this step (waiting, or about to start).
    pub fn pending(self) -> Option<PendingRetry> {
        match self {
            Self::Wait(retry) | Self::Launch(retry) => Some(retry),
            Self::None | Self::Drop(..) => None,
        }
    }
}

/// Why a pending retry was given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// A newer scheduled run started.
    Superseded,
    /// The job was suspended (scheduled slots only; a Run Now keeps its attempts).
    Suspended,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Superseded => "a newer scheduled run started",
            Self::Suspended => "the job was suspended",
        })
    }
}

/// Where a finished attempt leaves its slot: another attempt (with when), or `None` when this
/// attempt is the slot's outcome (it succeeded, or the retries are spent, or there are none).
pub fn after_attempt(
    spec: &ScheduledJobSpec,
    trigger: Trigger,
    scheduled_time: DateTime<Utc>,
    attempt: u32,
    status: RunStatus,
    finished_at: DateTime<Utc>,
) -> Option<PendingRetry> {
    let retries = spec.retries.as_ref()?;
    let failed = matches!(status, RunStatus::Failure | RunStatus::Error);
    (failed && attempt <= retries.limit).then(|| PendingRetry {
        scheduled_time,
        trigger,
        attempt: attempt + 1,
        at: finished_at + retries.backoff.wait_after(attempt),
    })
}

/// An automatic pause: the failures in a row that caused it, when, and why in words.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AutoPause {
    pub at: DateTime<Utc>,
    /// The job's failures in a row when it paused.
    pub failures: u32,
    pub message: String,
}

/// Whether a job with `failures` failed runs in a row pauses now. `paused_at` is the streak at
/// its last automatic pause, if this streak already paused it once (so a resumed job gets as
/// many failures again before it pauses again).
pub fn pause_due(
    spec: &ScheduledJobSpec,
    failures: u32,
    paused_at: Option<u32>,
    now: DateTime<Utc>,
) -> Option<AutoPause> {
    let limit = spec.pause_after_consecutive_failures?;
    let since = failures.saturating_sub(paused_at.filter(|p| *p <= failures).unwrap_or(0));
    (!spec.suspend && limit > 0 && since >= limit).then(|| AutoPause {
        at: now,
        failures,
        message: format!(
            "paused after {failures} failed run{} in a row (pauseAfterConsecutiveFailures: {limit}); \
             resume it once the cause is fixed",
            if failures == 1 { "" } else { "s" }
        ),
    })
}

/// A run in flight to stop, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop<R> {
    pub run: R,
    pub reason: StopReason,
}

/// Why the policy stops a run in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `concurrencyPolicy: Replace`: a newer run replaces this one.
    Replaced,
}

impl StopReason {
    /// The Event reason.
    pub fn label(self) -> &'static str {
        match self {
            Self::Replaced => "Replaced",
        }
    }

    /// The one wording, also in the stored run's `[jtp] stopped: …` note.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replaced => "replaced by a newer run (concurrencyPolicy: Replace)",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A due slot that is not run, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub slot: DateTime<Utc>,
    pub reason: Reason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.slot.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        write!(f, "slot {slot} skipped: {}", self.reason)
    }
}

/// Why the policy skipped a slot or reports something: one wording each, used in Events and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The slot was found more than `startingDeadlineSeconds` after it.
    PastDeadline {
        late_seconds: i64,
        deadline_seconds: i64,
    },
    /// `concurrencyPolicy: Forbid` and a run is still in flight.
    StillRunning,
    /// Several slots fell due while nothing was scheduling; only the latest runs.
    MissedSlots,
}

impl Reason {
    /// The Event reason: a short static label.
    pub fn label(self) -> &'static str {
        match self {
            Self::PastDeadline { .. } | Self::StillRunning => "Skipped",
            Self::MissedSlots => "MissedSlots",
        }
    }

    /// True when a person should look at it (a Warning Event, a WARN log line).
    pub fn is_warning(self) -> bool {
        matches!(self, Self::PastDeadline { .. } | Self::MissedSlots)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PastDeadline {
                late_seconds,
                deadline_seconds,
            } => write!(
                f,
                "missed by {late_seconds} s, more than startingDeadlineSeconds ({deadline_seconds} s)"
            ),
            Self::StillRunning => {
                f.write_str("the previous run is still running (concurrencyPolicy: Forbid)")
            }
            Self::MissedSlots => f.write_str("several slots were missed; only the latest runs"),
        }
    }
}

/// The words of a missed-slots incident (alerts): slots before `latest` fell due while nothing
/// was scheduling and only the latest may run.
pub fn missed_slots_detail(latest: DateTime<Utc>) -> String {
    let latest = latest.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    format!("slots before {latest} were missed while nothing was scheduling; only the latest runs")
}

/// Decides one step for a job.
pub fn step<R: Clone>(facts: &Facts<'_, R>) -> Step<R> {
    let Facts {
        schedule,
        spec,
        handled_until,
        run_now,
        active,
        retry,
        now,
    } = *facts;
    let mut step = Step {
        launch: Vec::new(),
        stop: Vec::new(),
        skipped: Vec::new(),
        missed: MissedSlots {
            recent: Vec::new(),
            truncated: false,
        },
        handled_until,
        next_run: None,
        retry: RetryStep::None,
    };
    let scheduling = !spec.suspend && !schedule.is_manual();
    if scheduling {
        step.missed = schedule.missed(handled_until, now, 1);
        if let Some(slot) = step.missed.latest() {
            step.handled_until = slot;
            let late = now - slot;
            let deadline = spec.starting_deadline_seconds.map(Duration::seconds);
            if let Some(deadline) = deadline.filter(|d| late > *d) {
                let reason = Reason::PastDeadline {
                    late_seconds: late.num_seconds(),
                    deadline_seconds: deadline.num_seconds(),
                };
                step.skipped.push(Skipped { slot, reason });
            } else if spec.concurrency_policy == ConcurrencyPolicy::Forbid && !active.is_empty() {
                let reason = Reason::StillRunning;
                step.skipped.push(Skipped { slot, reason });
            } else {
                if spec.concurrency_policy == ConcurrencyPolicy::Replace {
                    step.stop.extend(active.iter().map(|run| Stop {
                        run: run.clone(),
                        reason: StopReason::Replaced,
                    }));
                }
                step.launch.push(Launch {
                    trigger: Trigger::Schedule,
                    slot,
                });
            }
        }
        step.next_run = schedule.next_after(step.handled_until.max(now));
    }
    if let Some(slot) = run_now {
        step.launch.push(Launch {
            trigger: Trigger::Manual,
            slot,
        });
    }
    if let Some(retry) = retry {
        let newer = step.launch.iter().any(|l| l.trigger == Trigger::Schedule);
        step.retry = if newer {
            RetryStep::Drop(retry, DropReason::Superseded)
        } else if spec.suspend && retry.trigger == Trigger::Schedule {
            RetryStep::Drop(retry, DropReason::Suspended)
        } else if retry.at <= now {
            RetryStep::Launch(retry)
        } else {
            RetryStep::Wait(retry)
        };
    }
    step
}

/// When a job runs, as far as an edit is concerned: its schedule in words with the zone (so two
/// spellings of one schedule, e.g. 15 minutes and 900 seconds, are the same) and `suspend`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    pub schedule: String,
    pub suspend: bool,
}

impl Timing {
    /// The timing of a spec compiled as `schedule`.
    pub fn of(schedule: &CompiledSchedule, spec: &ScheduledJobSpec) -> Self {
        Self {
            schedule: schedule.describe(),
            suspend: spec.suspend,
        }
    }

    /// The timing of job `job`'s spec, `None` when its schedule or zone is invalid.
    pub fn of_spec(job: JobId<'_>, spec: &ScheduledJobSpec) -> Option<Self> {
        CompiledSchedule::new(job, spec)
            .ok()
            .map(|schedule| Self::of(&schedule, spec))
    }
}

/// What an edit (or a resume, an edit of `suspend`) does to the slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    /// When the job runs did not change: the slots handled so far, and the next run, stay.
    Keep,
    /// When the job runs changed (or was not known): scheduling starts again from now, so no
    /// slot before the edit runs.
    FromNow,
}

/// The one rule for edits, in every mode and path: from now when the schedule, its zone or
/// `suspend` changed (or the old timing is not known, e.g. the old spec was invalid), else kept.
pub fn after_edit(old: Option<&Timing>, new: &Timing) -> Edit {
    if old == Some(new) {
        Edit::Keep
    } else {
        Edit::FromNow
    }
}

/// The next run of a job just created or edited: `kept` (its next run before the edit) when the
/// edit keeps it, else the first slot after `now`; `None` for suspended and manual jobs.
pub fn next_run_after_edit(
    edit: Edit,
    kept: Option<DateTime<Utc>>,
    schedule: &CompiledSchedule,
    spec: &ScheduledJobSpec,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if spec.suspend {
        return None;
    }
    match (edit, kept) {
        (Edit::Keep, Some(kept)) => Some(kept),
        _ => schedule.next_after(now),
    }
}
