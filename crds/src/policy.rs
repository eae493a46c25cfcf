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

use crate::schedule::{CompiledSchedule, JobId, MissedSlots};
use crate::types::{ConcurrencyPolicy, ScheduledJobSpec, Trigger};
use chrono::{DateTime, Duration, Utc};
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
}

/// One run to start: its trigger and its slot (for Run Now, the instant it was asked for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    pub trigger: Trigger,
    pub slot: DateTime<Utc>,
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

/// Decides one step for a job.
pub fn step<R: Clone>(facts: &Facts<'_, R>) -> Step<R> {
    let Facts {
        schedule,
        spec,
        handled_until,
        run_now,
        active,
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
