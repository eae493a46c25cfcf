//! The next runs of a schedule as `jtp preview` and the portal show them: each run with what a
//! DST change did to it, and the wall times the job's DST policy leaves out placed among them.

use crate::schedule::{CompiledSchedule, DstEffect, Slot};
use chrono::{DateTime, Utc};

/// One line of a preview: a run, or a wall time the DST policy does not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreviewEntry {
    /// A run; [`Slot::dst_note`] says what a DST change did to it, if anything.
    Run(Slot),
    /// A run the DST policy leaves out, at the instant it would have had ([`skipped_note`]).
    Skipped(Slot),
}

impl PreviewEntry {
    /// The slot of the line.
    pub fn slot(&self) -> &Slot {
        match self {
            Self::Run(slot) | Self::Skipped(slot) => slot,
        }
    }

    /// A wall time the DST policy leaves out, not a run.
    pub fn is_skipped(&self) -> bool {
        matches!(self, Self::Skipped(_))
    }

    /// What the line says beside its time: what a DST change did to the run, or why a skipped
    /// wall time is not run.
    pub fn note(&self) -> Option<String> {
        match self {
            Self::Run(slot) => slot.dst_note(),
            Self::Skipped(slot) => Some(skipped_note(slot)),
        }
    }
}

/// The next `count` runs strictly after `after`, oldest first, with the wall times the DST policy
/// leaves out before each of them (a manual job has none).
pub fn upcoming(schedule: &CompiledSchedule, after: DateTime<Utc>, count: usize) -> Vec<PreviewEntry> {
    let mut cursor = after;
    let mut slots = Vec::with_capacity(count);
    for _ in 0..count {
        let Some(slot) = schedule.next_slot(cursor) else {
            break;
        };
        slots.push(slot);
        cursor = slot.at;
    }
    let skips = slots
        .last()
        .map_or_else(Vec::new, |last| schedule.dst_skips(after, last.at));
    let mut skips = skips.into_iter().peekable();
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        while let Some(skip) = skips.next_if(|skip| skip.at <= slot.at) {
            out.push(PreviewEntry::Skipped(skip));
        }
        out.push(PreviewEntry::Run(slot));
    }
    out
}

/// Why a wall time is not run, in `jtp preview`'s words: "2026-11-01 01:30 (second pass of a
/// repeated time) not run: daylightSaving.repeatedTime is First".
pub fn skipped_note(slot: &Slot) -> String {
    let when = slot.wall.format("%Y-%m-%d %H:%M");
    match slot.dst {
        DstEffect::FirstOfRepeated => {
            format!("{when} (first pass of a repeated time) not run: daylightSaving.repeatedTime is Second")
        }
        DstEffect::SecondOfRepeated => {
            format!("{when} (second pass of a repeated time) not run: daylightSaving.repeatedTime is First")
        }
        DstEffect::EndOfGap | DstEffect::None => format!(
            "{when} does not exist (the clocks skip it) and is not run: daylightSaving.skippedTime is Skip"
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::types::{DaylightSaving, RepeatedTime, ScheduledJobSpec};
    use crate::{JobId, validate};

    #[test]
    fn a_repeated_time_left_out_comes_before_the_run_it_precedes() {
        let mut spec = ScheduledJobSpec::daily("01:30");
        spec.time_zone = "America/New_York".into();
        spec.daylight_saving = Some(DaylightSaving {
            repeated_time: Some(RepeatedTime::First),
            skipped_time: None,
        });
        let id = JobId {
            namespace: "default",
            name: "dst",
        };
        let schedule = validate(id, &spec).unwrap();
        let after = "2026-10-31T12:00:00Z".parse().unwrap();
        let entries = upcoming(&schedule, after, 2);
        let shown: Vec<String> = entries
            .iter()
            .map(|e| match e {
                PreviewEntry::Run(s) => format!("run {} {:?}", s.at, s.dst_note()),
                PreviewEntry::Skipped(s) => format!("skip {}", skipped_note(s)),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "run 2026-11-01 05:30:00 UTC Some(\"first pass of the repeated 01:30\")",
                "skip 2026-11-01 01:30 (second pass of a repeated time) not run: daylightSaving.repeatedTime is First",
                "run 2026-11-02 06:30:00 UTC None",
            ]
        );
    }

    #[test]
    fn a_manual_job_has_no_runs() {
        let spec = ScheduledJobSpec::manual();
        let id = JobId {
            namespace: "default",
            name: "m",
        };
        assert!(upcoming(&validate(id, &spec).unwrap(), Utc::now(), 5).is_empty());
    }
}
