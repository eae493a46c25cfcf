//! The pure decision of one reconcile: from the spec, the last status, the Jobs seen and `now`,
//! which runs to start or stop, which finished Jobs to prune, what to report and the next status.
//! Which runs start or stop and when the job runs next is the run policy's
//! ([`jtp_crds::policy`]); this module turns the status and the Jobs into its facts and its step
//! into Jobs, Events and the next status. No client and no clock.

use chrono::{DateTime, Duration, Utc};
use jtp_crds::policy::{
    self, AutoPause, Edit, Facts, Reason, RetryStep, Stop, Timing, after_attempt, after_edit, pause_due,
};
use jtp_crds::{
    ActiveRun, CompiledSchedule, Condition, InvalidSpec, RunStatus, ScheduledJobSpec, ScheduledJobStatus,
    Trigger,
};
use std::time::Duration as StdDuration;

use super::builder::{Launch, attempt_job_name, job_name};

/// Successful Jobs kept in Kubernetes when the spec names no limit (SQL keeps every run).
pub const DEFAULT_SUCCESSFUL_HISTORY: i32 = 3;
/// Failed Jobs kept in Kubernetes when the spec names no limit.
pub const DEFAULT_FAILED_HISTORY: i32 = 1;
/// Condition type: the spec can be scheduled.
pub const CONDITION_VALID: &str = "Valid";
/// Condition type: the operator is scheduling this job.
pub const CONDITION_READY: &str = "Ready";
/// Reason of the Ready condition of a suspended job.
const READY_SUSPENDED: &str = "Suspended";
/// Condition type: the operator suspended the job after failures in a row
/// (`spec.pauseAfterConsecutiveFailures`); shown while it stays suspended.
pub const CONDITION_PAUSED: &str = "Paused";
/// Reason of the Paused condition and of its Event.
pub const PAUSED_REASON: &str = "ConsecutiveFailures";

/// A Job of this ScheduledJob, as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    pub name: String,
    pub trigger: Trigger,
    pub scheduled_at: DateTime<Utc>,
    /// 1 for a slot's first run, more for its retries.
    pub attempt: u32,
    pub created: DateTime<Utc>,
    /// Who asked for a manual run (the Job's requester annotation).
    pub requester: Option<String>,
    /// The values of the job's parameters the run got (the Job's parameters annotation).
    pub parameters: jtp_crds::ParameterValues,
    pub state: ChildState,
    /// The run's final row is known to be in SQL.
    pub recorded: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ChildState {
    Active,
    Finished {
        status: RunStatus,
        finished_at: DateTime<Utc>,
    },
}

impl Child {
    pub fn is_active(&self) -> bool {
        self.state == ChildState::Active
    }

    fn finished(&self) -> Option<(RunStatus, DateTime<Utc>)> {
        match self.state {
            ChildState::Finished { status, finished_at } => Some((status, finished_at)),
            ChildState::Active => None,
        }
    }
}

/// Everything a decision depends on.
#[derive(Clone, Copy, Debug)]
pub struct DecideInput<'a> {
    pub name: &'a str,
    pub generation: Option<i64>,
    pub created: DateTime<Utc>,
    pub spec: &'a ScheduledJobSpec,
    pub schedule: Result<&'a CompiledSchedule, &'a InvalidSpec>,
    pub status: &'a ScheduledJobStatus,
    /// Value of the run-now annotation, if any.
    pub run_now: Option<&'a str>,
    pub children: &'a [Child],
    pub now: DateTime<Utc>,
    /// How long a run may look stuck before it is called ERROR; also how often active runs are re-checked.
    pub error_grace: Duration,
}

/// Something worth an Event, with a static reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub reason: &'static str,
    pub message: String,
    pub warning: bool,
    /// The Job this notice is about, if it is about one run.
    pub run: Option<String>,
}

impl Notice {
    pub fn normal(reason: &'static str, message: String) -> Self {
        Self {
            reason,
            message,
            warning: false,
            run: None,
        }
    }

    /// A notice of the run policy, worded by it.
    pub fn of(reason: Reason, message: String) -> Self {
        Self {
            reason: reason.label(),
            message,
            warning: reason.is_warning(),
            run: None,
        }
    }

    pub fn warning(reason: &'static str, message: String) -> Self {
        Self {
            reason,
            message,
            warning: true,
            run: None,
        }
    }

    /// The same notice, about the run of Job `name`.
    pub fn about(mut self, name: &str) -> Self {
        self.run = Some(name.to_owned());
        self
    }
}

/// What one reconcile should do.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub launch: Vec<Launch>,
    /// Active Jobs to stop, and why.
    pub stop: Vec<Stop<String>>,
    /// Finished, recorded Jobs beyond the history limits.
    pub prune: Vec<String>,
    pub notices: Vec<Notice>,
    pub status: ScheduledJobStatus,
    /// When to look again; `None` waits for a change.
    pub requeue_after: Option<StdDuration>,
    /// Suspend the job: its failures in a row reached `pauseAfterConsecutiveFailures`.
    pub pause: Option<AutoPause>,
    /// Slots the run policy skipped or missed, each with the policy's words: they open a
    /// skipped-slot incident (alerts).
    pub skipped: Vec<(DateTime<Utc>, String)>,
}

/// Decides one reconcile.
pub fn decide(input: DecideInput<'_>) -> Decision {
    let DecideInput {
        name,
        generation,
        created,
        spec,
        schedule,
        status: old,
        run_now,
        children,
        now,
        error_grace,
    } = input;
    let mut notices = Vec::new();
    let mut launch = Vec::new();
    let mut stop = Vec::new();
    let spec_changed = old.observed_generation != generation;
    let mut status = ScheduledJobStatus {
        observed_generation: generation,
        last_run_now: old.last_run_now.clone(),
        ..ScheduledJobStatus::default()
    };

    // Outcomes of runs that finished since the last status.
    let marker = old.last_successful_time.max(old.last_failure_time);
    let mut finished: Vec<(&Child, RunStatus, DateTime<Utc>)> = children
        .iter()
        .filter_map(|c| c.finished().map(|(s, at)| (c, s, at)))
        .filter(|(_, _, at)| marker.is_none_or(|m| *at > m))
        .collect();
    finished.sort_by_key(|(c, _, at)| (*at, c.scheduled_at));
    status.last_run = old.last_run;
    status.last_status = old.last_status;
    status.last_successful_time = old.last_successful_time;
    status.last_failure_time = old.last_failure_time;
    status.consecutive_failures = old.consecutive_failures;
    status.auto_pause = old.auto_pause.clone();
    // A retry already started (its Job exists) is no longer pending.
    let started = |retry: &policy::PendingRetry| {
        let name = attempt_job_name(name, retry.trigger, retry.scheduled_time, retry.attempt);
        children.iter().any(|c| c.name == name)
    };
    let mut pending_retry = old.pending_retry.filter(|r| !started(r));
    let mut pause = None;
    for (child, run_status, at) in &finished {
        status.last_run = Some(child.scheduled_at);
        status.last_status = Some(*run_status);
        if *run_status == RunStatus::Success {
            status.last_successful_time = Some(*at);
            status.consecutive_failures = 0;
            status.auto_pause = None;
            notices.push(
                Notice::normal("Succeeded", format!("run {} succeeded", child.name)).about(&child.name),
            );
            continue;
        }
        status.last_failure_time = Some(*at);
        let reason = if *run_status == RunStatus::Error {
            "Errored"
        } else {
            "Failed"
        };
        notices.push(
            Notice::warning(reason, format!("run {} ended with {run_status}", child.name)).about(&child.name),
        );
        let retry = after_attempt(
            spec,
            child.trigger,
            child.scheduled_at,
            child.attempt,
            *run_status,
            *at,
        );
        if let Some(retry) = retry.filter(|r| !started(r)) {
            let when = retry.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            notices.push(
                Notice::normal(
                    RETRY_REASON,
                    format!("attempt {} of this run starts at {when}", retry.attempt),
                )
                .about(&child.name),
            );
            pending_retry = Some(retry);
            continue;
        }
        if retry.is_some() {
            continue;
        }
        status.consecutive_failures = status.consecutive_failures.saturating_add(1);
        let paused_at = status.auto_pause.as_ref().map(|p| p.failures);
        if let Some(p) = pause_due(spec, status.consecutive_failures, paused_at, now) {
            notices.push(Notice::warning(PAUSED_REASON, p.message.clone()));
            status.auto_pause = Some(p.clone());
            pause = Some(p);
        }
    }

    // Pausing: from this pass on the job reads as suspended (no next run, nothing launched), as it
    // will once the operator's patch of `spec.suspend` lands, so no status ever says "Paused" with
    // a next run.
    let paused_spec;
    let spec = if pause.is_some() && !spec.suspend {
        paused_spec = ScheduledJobSpec {
            suspend: true,
            ..spec.clone()
        };
        &paused_spec
    } else {
        spec
    };

    let active: Vec<&Child> = children.iter().filter(|c| c.is_active()).collect();
    let exists = |job_name: &str| children.iter().any(|c| c.name == job_name);

    let compiled = match schedule {
        Ok(compiled) => compiled,
        Err(invalid) => {
            let message = invalid.to_string();
            let already = old
                .conditions
                .iter()
                .any(|c| c.type_ == CONDITION_VALID && c.status == "False" && c.message == message);
            if !already || spec_changed {
                notices.push(Notice::warning("InvalidSpec", message.clone()));
            }
            if let Some(value) = run_now.filter(|v| old.last_run_now.as_deref() != Some(*v)) {
                notices.push(Notice::warning(
                    "RunNowRejected",
                    format!("run-now {value} ignored: the spec is invalid"),
                ));
                status.last_run_now = Some(value.to_owned());
            }
            status.last_scheduled_time = old.last_scheduled_time;
            status.active = active_runs(&active);
            status.conditions = vec![
                condition(
                    old,
                    CONDITION_VALID,
                    false,
                    "InvalidSpec",
                    &message,
                    generation,
                    now,
                ),
                condition(
                    old,
                    CONDITION_READY,
                    false,
                    "InvalidSpec",
                    "fix the spec",
                    generation,
                    now,
                ),
            ];
            status.pending_retry = pending_retry;
            return Decision {
                launch,
                stop,
                prune: prune(spec, children),
                notices,
                status,
                requeue_after: active_requeue(&active, now, error_grace),
                pause,
                skipped: Vec::new(),
            };
        }
    };

    // Where scheduling resumes: a new object from its creation; after an edit that changed when
    // it runs, from now (no retroactive runs); otherwise after the last handled slot. A Job of a
    // later slot means that slot was handled (a restart lost the status write that said so).
    let timing = Timing::of(compiled, spec);
    let edit = if spec_changed {
        after_edit(old_timing(old).as_ref(), &timing)
    } else {
        Edit::Keep
    };
    let handled_until = match (old.observed_generation, old.last_scheduled_time) {
        (None, None) => created,
        _ if edit == Edit::FromNow => now,
        (_, Some(last)) => last,
        (_, None) => now,
    };
    let newest_launched = children
        .iter()
        .filter(|c| c.trigger == Trigger::Schedule)
        .map(|c| c.scheduled_at)
        .max();
    let handled_until = newest_launched.map_or(handled_until, |slot| slot.max(handled_until));

    // A Run Now value not handled yet, unless its Job exists (a lost status write again).
    let mut run_now_at = None;
    if let Some(value) = run_now.filter(|v| old.last_run_now.as_deref() != Some(*v)) {
        match DateTime::parse_from_rfc3339(value) {
            Ok(at) => {
                let at = at.with_timezone(&Utc);
                run_now_at = (!exists(&job_name(name, Trigger::Manual, at))).then_some(at);
            }
            Err(e) => notices.push(Notice::warning(
                "RunNowRejected",
                format!("run-now value {value:?} is not an RFC3339 instant: {e}"),
            )),
        }
        status.last_run_now = Some(value.to_owned());
    }

    let active_names: Vec<String> = active.iter().map(|c| c.name.clone()).collect();
    let step = policy::step(&Facts {
        schedule: compiled,
        spec,
        handled_until,
        run_now: run_now_at,
        active: &active_names,
        retry: pending_retry,
        now,
    });
    let mut skipped_slots = Vec::new();
    for skipped in &step.skipped {
        notices.push(Notice::of(skipped.reason, skipped.to_string()));
        skipped_slots.push((skipped.slot, skipped.to_string()));
    }
    if step.missed.truncated {
        notices.push(Notice::of(Reason::MissedSlots, Reason::MissedSlots.to_string()));
        if let Some(latest) = step.missed.latest() {
            skipped_slots.push((latest, policy::missed_slots_detail(latest)));
        }
    }
    launch.extend(step.launch.iter().map(|l| Launch::new(name, l.trigger, l.slot)));
    match step.retry {
        RetryStep::Launch(retry) => {
            launch.push(Launch::attempt(
                name,
                retry.trigger,
                retry.scheduled_time,
                retry.attempt,
            ));
        }
        RetryStep::Drop(retry, why) => notices.push(Notice::normal(
            RETRY_DROPPED_REASON,
            format!(
                "attempt {} of the run for {} dropped: {why}",
                retry.attempt,
                retry.scheduled_time.to_rfc3339()
            ),
        )),
        RetryStep::Wait(retry) => status.pending_retry = Some(retry),
        RetryStep::None => {}
    }
    stop.extend(step.stop);
    status.last_scheduled_time = Some(step.handled_until);
    status.next_run = step.next_run;
    status.next_run_dst = step.next_run.and_then(|at| compiled.dst_note_at(at));
    if spec.suspend || compiled.is_manual() {
        // Recomputed from now on resume or edit; keep what was handled for the record.
        status.last_scheduled_time = old.last_scheduled_time.or(Some(step.handled_until));
    }

    let mut running: Vec<ActiveRun> = active_runs(&active)
        .into_iter()
        .filter(|a| !stop.iter().any(|s| s.run == a.job_name))
        .collect();
    running.extend(launch.iter().map(|l| ActiveRun {
        job_name: l.job_name.clone(),
        scheduled_time: l.scheduled_at,
        trigger: l.trigger,
    }));
    running.sort_by(|a, b| (a.scheduled_time, &a.job_name).cmp(&(b.scheduled_time, &b.job_name)));
    status.active = running;
    status.schedule_description = Some(compiled.describe());
    let (ready_reason, ready_message) = if spec.suspend {
        (READY_SUSPENDED, "suspended: only Run Now starts it".to_owned())
    } else if compiled.is_manual() {
        ("Manual", "manual: only Run Now starts it".to_owned())
    } else {
        ("Scheduled", "scheduled".to_owned())
    };
    status.conditions = vec![
        condition(
            old,
            CONDITION_VALID,
            true,
            "Valid",
            "the spec is valid",
            generation,
            now,
        ),
        condition(
            old,
            CONDITION_READY,
            true,
            ready_reason,
            &ready_message,
            generation,
            now,
        ),
    ];
    // Paused while it stays suspended after an automatic pause (a resume clears it).
    if let Some(paused) = status
        .auto_pause
        .as_ref()
        .filter(|_| spec.suspend || pause.is_some())
    {
        status.conditions.push(condition(
            old,
            CONDITION_PAUSED,
            true,
            PAUSED_REASON,
            &paused.message,
            generation,
            now,
        ));
    }

    let until_next = status
        .next_run
        .into_iter()
        .chain(status.pending_retry.map(|r| r.at))
        .min()
        .map(|next| to_std(next - now));
    let requeue_after = match (until_next, active_requeue(&active, now, error_grace)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Decision {
        launch,
        stop,
        prune: prune(spec, children),
        notices,
        status,
        requeue_after,
        pause,
        skipped: skipped_slots,
    }
}

/// Event reason of a failed run that gets a further attempt.
pub const RETRY_REASON: &str = "Retrying";
/// Event reason of a further attempt given up (a newer run started, or the job was suspended).
pub const RETRY_DROPPED_REASON: &str = "RetryDropped";

fn active_runs(active: &[&Child]) -> Vec<ActiveRun> {
    active
        .iter()
        .map(|c| ActiveRun {
            job_name: c.name.clone(),
            scheduled_time: c.scheduled_at,
            trigger: c.trigger,
        })
        .collect()
}

/// Active runs are looked at again when their grace period ends, then every grace period, so a
/// pod stuck before starting (which changes no Job) is still noticed.
fn active_requeue(active: &[&Child], now: DateTime<Utc>, grace: Duration) -> Option<StdDuration> {
    active
        .iter()
        .map(|c| {
            let due = c.created + grace;
            if due > now { due - now } else { grace }
        })
        .min()
        .map(to_std)
}

/// Finished Jobs past the history limits, oldest first; only recorded ones, so no run is lost.
fn prune(spec: &ScheduledJobSpec, children: &[Child]) -> Vec<String> {
    let limit = |l: Option<i32>, default: i32| usize::try_from(l.unwrap_or(default)).unwrap_or(0);
    let keep_ok = limit(spec.successful_jobs_history_limit, DEFAULT_SUCCESSFUL_HISTORY);
    let keep_failed = limit(spec.failed_jobs_history_limit, DEFAULT_FAILED_HISTORY);
    let mut out = Vec::new();
    for (wanted_ok, keep) in [(true, keep_ok), (false, keep_failed)] {
        let mut done: Vec<(&Child, DateTime<Utc>)> = children
            .iter()
            .filter_map(|c| c.finished().map(|(s, at)| (c, s, at)))
            .filter(|(_, s, _)| (*s == RunStatus::Success) == wanted_ok)
            .map(|(c, _, at)| (c, at))
            .collect();
        done.sort_by_key(|(c, at)| std::cmp::Reverse((*at, c.scheduled_at)));
        out.extend(
            done.iter()
                .skip(keep)
                .filter(|(c, _)| c.recorded)
                .map(|(c, _)| c.name.clone()),
        );
    }
    out
}

fn condition(
    old: &ScheduledJobStatus,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = old
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(now, |c| c.last_transition_time);
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: since,
        observed_generation: generation,
    }
}

fn to_std(d: Duration) -> StdDuration {
    d.to_std().unwrap_or(StdDuration::ZERO)
}

/// When the job ran before an edit, as the last status shows it: the schedule in words with
/// its zone, and whether it was suspended. `None` when no valid spec was scheduled yet.
fn old_timing(old: &ScheduledJobStatus) -> Option<Timing> {
    let schedule = old.schedule_description.clone()?;
    let suspend = old
        .conditions
        .iter()
        .any(|c| c.type_ == CONDITION_READY && c.reason == READY_SUSPENDED);
    Some(Timing { schedule, suspend })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy_scenarios::t;
    use jtp_crds::{ConcurrencyPolicy, IntervalUnit, JobId, Weekday, validate};

    struct Case {
        spec: ScheduledJobSpec,
        status: ScheduledJobStatus,
        generation: i64,
        created: DateTime<Utc>,
        run_now: Option<String>,
        children: Vec<Child>,
    }

    impl Case {
        fn new(spec: ScheduledJobSpec) -> Self {
            Self {
                spec,
                status: ScheduledJobStatus::default(),
                generation: 1,
                created: t("2026-01-01T00:00:00Z"),
                run_now: None,
                children: Vec::new(),
            }
        }

        fn clone_with_status(&self, status: ScheduledJobStatus) -> Self {
            Self {
                spec: self.spec.clone(),
                status,
                generation: self.generation,
                created: self.created,
                run_now: self.run_now.clone(),
                children: self.children.clone(),
            }
        }

        /// A status as left by an earlier reconcile of the same generation.
        fn handled_until(mut self, last: &str) -> Self {
            self.status.observed_generation = Some(self.generation);
            self.status.last_scheduled_time = Some(t(last));
            self
        }

        fn at(&self, now: &str) -> Decision {
            self.at_instant(t(now))
        }

        fn at_instant(&self, now: DateTime<Utc>) -> Decision {
            let id = JobId {
                namespace: "default",
                name: "job",
            };
            let compiled = validate(id, &self.spec);
            decide(DecideInput {
                name: "job",
                generation: Some(self.generation),
                created: self.created,
                spec: &self.spec,
                schedule: compiled.as_ref(),
                status: &self.status,
                run_now: self.run_now.as_deref(),
                children: &self.children,
                now,
                error_grace: Duration::seconds(30),
            })
        }
    }

    // The cases run as "default/job", whose interval phase is 5.658 s for 10 s and 35.658 s for
    // one minute (FNV-1a of the id modulo the interval).

    fn slots(d: &Decision) -> Vec<(Trigger, DateTime<Utc>)> {
        d.launch.iter().map(|l| (l.trigger, l.scheduled_at)).collect()
    }

    fn active(name: &str, at: &str) -> Child {
        Child {
            name: name.into(),
            trigger: Trigger::Schedule,
            scheduled_at: t(at),
            attempt: 1,
            created: t(at),
            requester: None,
            parameters: Default::default(),
            state: ChildState::Active,
            recorded: false,
        }
    }

    fn done(name: &str, at: &str, status: RunStatus, finished: &str, recorded: bool) -> Child {
        Child {
            state: ChildState::Finished {
                status,
                finished_at: t(finished),
            },
            recorded,
            ..active(name, at)
        }
    }

    #[test]
    fn daily_fires_at_its_wall_time_in_the_zone_and_requeues_for_the_next_day() {
        // 09:00 in Hong Kong is 01:00 UTC.
        let case = Case::new(ScheduledJobSpec::daily("09:00")).handled_until("2026-03-01T01:00:00Z");
        let before = case.at("2026-03-02T00:59:59Z");
        assert!(before.launch.is_empty());
        assert_eq!(before.status.next_run, Some(t("2026-03-02T01:00:00Z")));
        assert_eq!(before.requeue_after, Some(StdDuration::from_secs(1)));

        let on_time = case.at("2026-03-02T01:00:00.200Z");
        assert_eq!(
            slots(&on_time),
            vec![(Trigger::Schedule, t("2026-03-02T01:00:00Z"))]
        );
        assert_eq!(
            on_time.launch[0].job_name,
            format!("job-{}", t("2026-03-02T01:00:00Z").timestamp())
        );
        assert_eq!(
            on_time.status.last_scheduled_time,
            Some(t("2026-03-02T01:00:00Z"))
        );
        assert_eq!(on_time.status.next_run, Some(t("2026-03-03T01:00:00Z")));
        assert_eq!(on_time.status.active.len(), 1);
    }

    #[test]
    fn weekly_monthly_and_cron_pick_the_right_slots() {
        // 2026-03-02 is a Monday.
        let weekly = Case::new(ScheduledJobSpec::weekly(
            &[Weekday::Monday, Weekday::Thursday],
            "09:00",
        ))
        .handled_until("2026-03-02T01:00:00Z");
        assert_eq!(
            weekly.at("2026-03-03T00:00:00Z").status.next_run,
            Some(t("2026-03-05T01:00:00Z"))
        );
        assert_eq!(
            slots(&weekly.at("2026-03-05T01:00:01Z")),
            vec![(Trigger::Schedule, t("2026-03-05T01:00:00Z"))]
        );

        // Day 31 runs on the last day of a shorter month.
        let monthly = Case::new(ScheduledJobSpec::monthly(31, "09:00").in_zone("UTC"))
            .handled_until("2026-03-31T09:00:00Z");
        assert_eq!(
            monthly.at("2026-04-01T00:00:00Z").status.next_run,
            Some(t("2026-04-30T09:00:00Z"))
        );

        let cron = Case::new(ScheduledJobSpec::cron("*/15 9-17 * * 1-5").in_zone("UTC"))
            .handled_until("2026-03-06T17:45:00Z"); // a Friday
        assert_eq!(
            cron.at("2026-03-06T18:00:00Z").status.next_run,
            Some(t("2026-03-09T09:00:00Z"))
        );
        assert_eq!(
            slots(&cron.at("2026-03-09T09:00:00Z")),
            vec![(Trigger::Schedule, t("2026-03-09T09:00:00Z"))]
        );
    }

    #[test]
    fn the_status_says_what_a_dst_change_does_to_the_next_run() {
        // New York, 2026-11-01: 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
        let mut spec = ScheduledJobSpec::daily("01:30").in_zone("America/New_York");
        spec.daylight_saving = Some(jtp_crds::DaylightSaving {
            repeated_time: Some(jtp_crds::RepeatedTime::Second),
            skipped_time: None,
        });
        let case = Case::new(spec).handled_until("2026-10-31T05:30:00Z");
        let d = case.at("2026-10-31T12:00:00Z");
        assert_eq!(d.status.next_run, Some(t("2026-11-01T06:30:00Z")));
        assert_eq!(
            d.status.next_run_dst.as_deref(),
            Some("second pass of the repeated 01:30")
        );
        // The day after, no change touches the next run.
        let after = Case::new(ScheduledJobSpec::daily("01:30").in_zone("America/New_York"))
            .handled_until("2026-11-01T05:30:00Z")
            .at("2026-11-01T12:00:00Z");
        assert_eq!(after.status.next_run, Some(t("2026-11-02T06:30:00Z")));
        assert_eq!(after.status.next_run_dst, None);
    }

    #[test]
    fn a_long_outage_runs_one_catch_up_never_a_burst() {
        let case = Case::new(ScheduledJobSpec::interval(1, IntervalUnit::Minutes))
            .handled_until("2026-03-01T00:00:00Z");
        let d = case.at("2026-03-01T05:00:30Z");
        assert_eq!(
            slots(&d),
            vec![(Trigger::Schedule, t("2026-03-01T04:59:35.658Z"))]
        );
        assert!(d.notices.iter().any(|n| n.reason == "MissedSlots"));
        assert_eq!(d.status.next_run, Some(t("2026-03-01T05:00:35.658Z")));
    }

    #[test]
    fn starting_deadline_skips_a_late_slot_and_reports_it() {
        let mut spec = ScheduledJobSpec::daily("09:00");
        spec.starting_deadline_seconds = Some(60);
        let case = Case::new(spec).handled_until("2026-03-01T01:00:00Z");
        let late = case.at("2026-03-02T01:05:00Z");
        assert!(late.launch.is_empty());
        assert!(late.notices.iter().any(|n| n.reason == "Skipped" && n.warning));
        assert_eq!(late.status.last_scheduled_time, Some(t("2026-03-02T01:00:00Z")));
        assert_eq!(late.status.next_run, Some(t("2026-03-03T01:00:00Z")));
        assert_eq!(slots(&case.at("2026-03-02T01:00:59Z")).len(), 1);
    }

    #[test]
    fn concurrency_policies() {
        let mut case = Case::new(ScheduledJobSpec::interval(10, IntervalUnit::Seconds))
            .handled_until("2026-03-01T00:00:00Z");
        case.children = vec![active("job-old", "2026-03-01T00:00:00Z")];
        let forbid = case.at("2026-03-01T00:00:10Z");
        assert!(forbid.launch.is_empty());
        assert!(forbid.notices.iter().any(|n| n.reason == "Skipped"));
        assert_eq!(
            forbid.status.last_scheduled_time,
            Some(t("2026-03-01T00:00:05.658Z"))
        );

        case.spec.concurrency_policy = ConcurrencyPolicy::Allow;
        let allow = case.at("2026-03-01T00:00:10Z");
        assert_eq!(allow.launch.len(), 1);
        assert!(allow.stop.is_empty());
        assert_eq!(allow.status.active.len(), 2);

        case.spec.concurrency_policy = ConcurrencyPolicy::Replace;
        let replace = case.at("2026-03-01T00:00:10Z");
        assert_eq!(replace.launch.len(), 1);
        assert_eq!(
            replace.stop,
            vec![Stop {
                run: "job-old".to_string(),
                reason: policy::StopReason::Replaced
            }]
        );
        assert_eq!(replace.status.active.len(), 1);
    }

    #[test]
    fn an_edit_or_a_resume_recomputes_from_now() {
        let mut case = Case::new(ScheduledJobSpec::interval(10, IntervalUnit::Seconds))
            .handled_until("2026-03-01T00:00:00Z");
        case.generation = 2; // edited while slots went by
        let d = case.at("2026-03-01T00:05:03Z");
        assert!(d.launch.is_empty(), "no retroactive run after an edit");
        assert_eq!(d.status.last_scheduled_time, Some(t("2026-03-01T00:05:03Z")));
        assert_eq!(d.status.next_run, Some(t("2026-03-01T00:05:05.658Z")));
        assert_eq!(d.status.observed_generation, Some(2));

        case.spec.suspend = true;
        let suspended = case.at("2026-03-01T00:05:03Z");
        assert!(suspended.launch.is_empty());
        assert_eq!(suspended.status.next_run, None);
        assert_eq!(suspended.requeue_after, None);
    }

    #[test]
    fn an_edit_that_keeps_the_timing_keeps_the_slots() {
        let mut case = Case::new(ScheduledJobSpec::daily("09:00")).handled_until("2026-03-01T01:00:00Z");
        let before = case.at("2026-03-01T02:00:00Z");
        case.status = before.status;
        case.generation = 2;
        case.spec.script.inline = Some("echo edited".into());
        // The operator was down over the 2 March slot: the script edit keeps its one catch-up.
        let d = case.at("2026-03-02T03:00:00Z");
        assert_eq!(slots(&d), vec![(Trigger::Schedule, t("2026-03-02T01:00:00Z"))]);
        case.spec.schedule = ScheduledJobSpec::daily("10:00").schedule;
        let moved = case.at("2026-03-02T03:00:00Z");
        assert!(moved.launch.is_empty(), "a schedule edit starts from now");
        assert_eq!(moved.status.next_run, Some(t("2026-03-03T02:00:00Z")));
    }

    #[test]
    fn every_policy_scenario_steps_the_same_through_the_operator() {
        use jtp_crds::policy::Skipped;
        for scenario in crate::policy_scenarios::scenarios() {
            let handled = scenario.handled_until.to_rfc3339();
            let mut case = Case::new(scenario.spec.clone()).handled_until(&handled);
            case.children = (0..scenario.active)
                .map(|i| active(&format!("job-old-{i}"), "2026-02-28T00:00:00Z"))
                .collect();
            case.run_now = scenario.run_now.map(|at| at.to_rfc3339());
            let d = case.at_instant(scenario.now);
            let expected = &scenario.expected;
            let name = scenario.name;
            assert_eq!(slots(&d), expected.launch, "{name}");
            assert_eq!(d.stop.len(), expected.stopped, "{name}");
            let skipped: Vec<(&str, String)> = d
                .notices
                .iter()
                .filter(|n| n.reason == "Skipped")
                .map(|n| (n.reason, n.message.clone()))
                .collect();
            let wanted: Vec<(&str, String)> = expected
                .skipped
                .iter()
                .map(|(slot, reason)| {
                    let skipped = Skipped {
                        slot: *slot,
                        reason: *reason,
                    };
                    (reason.label(), skipped.to_string())
                })
                .collect();
            assert_eq!(skipped, wanted, "{name}");
            let missed = d.notices.iter().any(|n| n.reason == "MissedSlots");
            assert_eq!(missed, expected.missed_earlier, "{name}");
            assert_eq!(d.status.next_run, expected.next_run, "{name}");
        }
    }

    #[test]
    fn a_new_job_starts_from_its_creation() {
        let mut case = Case::new(ScheduledJobSpec::interval(10, IntervalUnit::Seconds));
        case.created = t("2026-03-01T00:00:06Z");
        assert_eq!(
            slots(&case.at("2026-03-01T00:00:16.5Z")),
            vec![(Trigger::Schedule, t("2026-03-01T00:00:15.658Z"))]
        );
        assert!(case.at("2026-03-01T00:00:15Z").launch.is_empty());
    }

    #[test]
    fn a_restart_after_launch_finds_the_job_instead_of_starting_another() {
        let mut case = Case::new(ScheduledJobSpec::interval(10, IntervalUnit::Seconds))
            .handled_until("2026-03-01T00:00:00Z");
        let slot = t("2026-03-01T00:00:05.658Z");
        case.children = vec![active(
            &format!("job-{}", slot.timestamp()),
            "2026-03-01T00:00:05.658Z",
        )];
        let d = case.at("2026-03-01T00:00:11Z");
        assert!(d.launch.is_empty());
        assert_eq!(d.status.last_scheduled_time, Some(slot));
    }

    #[test]
    fn run_now_starts_one_manual_run_per_value_even_when_suspended_or_manual() {
        let mut case = Case::new(ScheduledJobSpec::manual()).handled_until("2026-03-01T00:00:00Z");
        case.run_now = Some("2026-03-01T00:00:30Z".into());
        let d = case.at("2026-03-01T00:00:31Z");
        assert_eq!(slots(&d), vec![(Trigger::Manual, t("2026-03-01T00:00:30Z"))]);
        assert_eq!(
            d.launch[0].job_name,
            format!("job-m{}", t("2026-03-01T00:00:30Z").timestamp())
        );
        assert_eq!(d.status.last_run_now.as_deref(), Some("2026-03-01T00:00:30Z"));
        assert_eq!(d.status.next_run, None, "manual jobs have no next run");

        case.status.last_run_now = Some("2026-03-01T00:00:30Z".into());
        assert!(
            case.at("2026-03-01T00:00:32Z").launch.is_empty(),
            "handled values run once"
        );

        let mut suspended = Case::new(ScheduledJobSpec::daily("09:00")).handled_until("2026-03-01T00:00:00Z");
        suspended.spec.suspend = true;
        suspended.run_now = Some("2026-03-01T00:00:30Z".into());
        assert_eq!(suspended.at("2026-03-01T00:00:31Z").launch.len(), 1);

        suspended.run_now = Some("yesterday".into());
        let bad = suspended.at("2026-03-01T00:00:31Z");
        assert!(bad.launch.is_empty());
        assert!(bad.notices.iter().any(|n| n.reason == "RunNowRejected"));
        assert_eq!(bad.status.last_run_now.as_deref(), Some("yesterday"));
    }

    #[test]
    fn finished_runs_update_the_status_once() {
        let mut case = Case::new(ScheduledJobSpec::daily("09:00")).handled_until("2026-03-02T01:00:00Z");
        case.status.consecutive_failures = 2;
        case.children = vec![
            done(
                "a",
                "2026-03-01T01:00:00Z",
                RunStatus::Failure,
                "2026-03-01T01:00:05Z",
                true,
            ),
            done(
                "b",
                "2026-03-02T01:00:00Z",
                RunStatus::Success,
                "2026-03-02T01:00:05Z",
                false,
            ),
        ];
        case.status.last_failure_time = Some(t("2026-03-01T01:00:05Z"));
        let d = case.at("2026-03-02T02:00:00Z");
        assert_eq!(d.status.last_status, Some(RunStatus::Success));
        assert_eq!(d.status.last_run, Some(t("2026-03-02T01:00:00Z")));
        assert_eq!(d.status.last_successful_time, Some(t("2026-03-02T01:00:05Z")));
        assert_eq!(d.status.consecutive_failures, 0);
        assert_eq!(d.notices.iter().filter(|n| n.reason == "Succeeded").count(), 1);

        case.status = d.status.clone();
        let again = case.at("2026-03-02T02:00:01Z");
        assert!(
            again.notices.iter().all(|n| n.reason != "Succeeded"),
            "reported once"
        );
        assert_eq!(again.status.consecutive_failures, 0);
    }

    #[test]
    fn history_limits_prune_only_recorded_jobs() {
        let mut spec = ScheduledJobSpec::daily("09:00");
        spec.successful_jobs_history_limit = Some(1);
        let mut case = Case::new(spec).handled_until("2026-03-05T01:00:00Z");
        case.children = vec![
            done(
                "s1",
                "2026-03-01T01:00:00Z",
                RunStatus::Success,
                "2026-03-01T01:00:05Z",
                true,
            ),
            done(
                "s2",
                "2026-03-02T01:00:00Z",
                RunStatus::Success,
                "2026-03-02T01:00:05Z",
                false,
            ),
            done(
                "s3",
                "2026-03-03T01:00:00Z",
                RunStatus::Success,
                "2026-03-03T01:00:05Z",
                true,
            ),
            done(
                "f1",
                "2026-03-04T01:00:00Z",
                RunStatus::Failure,
                "2026-03-04T01:00:05Z",
                true,
            ),
            done(
                "f2",
                "2026-03-05T01:00:00Z",
                RunStatus::Error,
                "2026-03-05T01:00:05Z",
                true,
            ),
        ];
        let d = case.at("2026-03-05T02:00:00Z");
        assert_eq!(d.prune, vec!["s1".to_string(), "f1".to_string()]);
    }

    #[test]
    fn an_invalid_spec_reports_once_and_waits() {
        let mut case = Case::new(ScheduledJobSpec::daily("09:00").in_zone("Mars/Olympus"));
        let d = case.at("2026-03-02T00:00:00Z");
        assert!(d.launch.is_empty());
        assert_eq!(d.requeue_after, None);
        let valid = d
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_VALID)
            .expect("Valid");
        assert_eq!(valid.status, "False");
        assert!(valid.message.contains("Mars/Olympus"), "{}", valid.message);
        assert_eq!(d.notices.iter().filter(|n| n.reason == "InvalidSpec").count(), 1);
        case.status = d.status;
        assert!(case.at("2026-03-02T00:01:00Z").notices.is_empty());
    }

    #[test]
    fn active_runs_are_rechecked_after_the_grace_period() {
        let mut case = Case::new(ScheduledJobSpec::manual()).handled_until("2026-03-01T00:00:00Z");
        case.children = vec![active("job-m1", "2026-03-01T00:00:00Z")];
        assert_eq!(
            case.at("2026-03-01T00:00:10Z").requeue_after,
            Some(StdDuration::from_secs(20))
        );
        assert_eq!(
            case.at("2026-03-01T00:01:00Z").requeue_after,
            Some(StdDuration::from_secs(30))
        );
    }

    #[test]
    fn conditions_keep_their_transition_time() {
        let case = Case::new(ScheduledJobSpec::daily("09:00")).handled_until("2026-03-01T01:00:00Z");
        let first = case.at("2026-03-01T02:00:00Z");
        let mut next = Case::new(ScheduledJobSpec::daily("09:00"));
        next.status = first.status.clone();
        let second = next.at("2026-03-01T03:00:00Z");
        assert_eq!(first.status.conditions, second.status.conditions);
    }

    #[test]
    fn a_failed_attempt_gets_its_retry_after_the_backoff_and_only_the_last_attempt_counts() {
        // 09:00 HKT is 01:00 UTC. Attempt 1 fails at 01:00:05; the retry waits 30 s.
        let mut case =
            Case::new(ScheduledJobSpec::daily("09:00").retry(1, "30s")).handled_until("2026-03-02T01:00:00Z");
        case.children = vec![done(
            "job-1772413200",
            "2026-03-02T01:00:00Z",
            RunStatus::Failure,
            "2026-03-02T01:00:05Z",
            true,
        )];
        let waiting = case.at("2026-03-02T01:00:10Z");
        assert!(waiting.launch.is_empty());
        let retry = waiting.status.pending_retry.expect("a retry is pending");
        assert_eq!((retry.attempt, retry.at), (2, t("2026-03-02T01:00:35Z")));
        assert_eq!(
            waiting.status.consecutive_failures, 0,
            "a retried attempt does not count"
        );
        assert_eq!(waiting.requeue_after, Some(StdDuration::from_secs(25)));
        assert!(waiting.notices.iter().any(|n| n.reason == RETRY_REASON));

        // Due: attempt 2 starts as its own Job for the same slot.
        case.status = waiting.status.clone();
        let due = case.at("2026-03-02T01:00:35Z");
        assert_eq!(due.launch.len(), 1);
        assert_eq!(due.launch[0].job_name, "job-1772413200-a2");
        assert_eq!(
            (due.launch[0].attempt, due.launch[0].scheduled_at),
            (2, t("2026-03-02T01:00:00Z"))
        );
        assert_eq!(due.status.pending_retry, None);

        // A lost status write: the Job of attempt 2 exists, so it is not started again.
        let mut lost = case.clone_with_status(waiting.status.clone());
        lost.children
            .push(active("job-1772413200-a2", "2026-03-02T01:00:00Z"));
        assert!(lost.at("2026-03-02T01:00:40Z").launch.is_empty());

        // Attempt 2 fails too: the slot has failed, once.
        let mut last = case.clone_with_status(due.status.clone());
        last.children.push(Child {
            attempt: 2,
            ..done(
                "job-1772413200-a2",
                "2026-03-02T01:00:00Z",
                RunStatus::Error,
                "2026-03-02T01:00:40Z",
                true,
            )
        });
        let failed = last.at("2026-03-02T01:00:41Z");
        assert_eq!(failed.status.pending_retry, None);
        assert_eq!(failed.status.consecutive_failures, 1);
        assert_eq!(failed.status.last_status, Some(RunStatus::Error));
    }

    #[test]
    fn failures_in_a_row_pause_the_job_with_a_condition_and_an_event() {
        let mut case =
            Case::new(ScheduledJobSpec::daily("09:00").pause_after(2)).handled_until("2026-03-02T01:00:00Z");
        case.status.consecutive_failures = 1;
        case.status.last_failure_time = Some(t("2026-03-01T01:00:05Z"));
        case.children = vec![done(
            "job-1772413200",
            "2026-03-02T01:00:00Z",
            RunStatus::Failure,
            "2026-03-02T01:00:05Z",
            true,
        )];
        let d = case.at("2026-03-02T01:00:06Z");
        let pause = d.pause.expect("pauses");
        assert_eq!(pause.failures, 2);
        assert_eq!(d.status.auto_pause.as_ref(), Some(&pause));
        assert!(d.notices.iter().any(|n| n.reason == PAUSED_REASON && n.warning));
        let paused = d
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_PAUSED)
            .expect("a Paused condition");
        assert_eq!(paused.message, pause.message);
        assert_eq!(d.status.next_run, None, "paused: no next run, as once suspended");
        assert!(d.launch.is_empty());

        // Once suspended (by the operator's patch), the condition stays and nothing pauses again.
        let mut suspended = case.clone_with_status(d.status.clone());
        suspended.spec.suspend = true;
        suspended.generation = 2;
        let after = suspended.at("2026-03-02T01:00:07Z");
        assert!(after.pause.is_none());
        assert!(
            after
                .status
                .conditions
                .iter()
                .any(|c| c.type_ == CONDITION_PAUSED)
        );
    }
}
