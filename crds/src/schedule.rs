//! The pure schedule engine: next run, missed slots and a description in words.
//!
//! Wall-clock forms (hourly, daily, weekly, monthly, cron) are evaluated on the local calendar of
//! the job's zone and each matching wall time is then mapped to UTC instants by the job's DST
//! policy ([`DaylightSaving`]), whose defaults follow Vixie cron:
//! - jobs that repeat within the day (hourly, a cron whose minute or hour field starts with `*`)
//!   run at every instant whose local clock matches: both passes of a repeated hour, nothing for a
//!   wall time that does not exist;
//! - fixed wall times (daily, weekly, monthly, other crons) run once: at the first occurrence of a
//!   repeated time, at the first instant after the gap for a skipped one.
//!
//! Intervals are absolute, whatever the zone: slots are `phase + k × every` after the Unix epoch,
//! where the phase (whole milliseconds in `[0, every)`) is derived from the job's namespace and
//! name, so a schedule is only ever compiled for a [`JobId`]. Every runner, restart and mode
//! computes the same slots, and many jobs on one interval spread over it instead of all starting
//! in the same instant.
//! Nothing here reads a clock: `now` and `after` are always parameters.

use crate::cron::CronExpr;
use crate::types::{
    DaylightSaving, IntervalUnit, RepeatedTime, Schedule, ScheduledJobSpec, SkippedTime, Weekday,
};
use crate::validate::{FieldError, InvalidSpec};
use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

/// The job a schedule belongs to. Interval slots are placed by it, so compiling a schedule takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JobId<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
}

impl fmt::Display for JobId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A schedule parsed once for one job and ready to answer "when next?" many times.
#[derive(Clone, Debug)]
pub struct CompiledSchedule {
    tz: Tz,
    rule: Rule,
    dst: DstPolicy,
}

/// The DST policy in force: the spec's choices, the schedule's defaults for the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DstPolicy {
    pub repeated: RepeatedTime,
    pub skipped: SkippedTime,
    /// True when the spec chose the repeated-time rule; false when it is the default.
    pub repeated_chosen: bool,
    /// True when the spec chose the skipped-time rule; false when it is the default.
    pub skipped_chosen: bool,
}

/// One run of a wall-clock or interval schedule, and what DST did to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// When it runs.
    pub at: DateTime<Utc>,
    /// The local wall time the schedule asked for (for intervals: the local time of `at`).
    pub wall: NaiveDateTime,
    pub dst: DstEffect,
}

impl Slot {
    /// What DST did to this run, in words ("second pass of the repeated 01:30"); `None` for an
    /// ordinary run. Shown by `jtp preview` and the portal's next run.
    pub fn dst_note(&self) -> Option<String> {
        let wall = self.wall.format("%H:%M");
        match self.dst {
            DstEffect::None => None,
            DstEffect::FirstOfRepeated => Some(format!("first pass of the repeated {wall}")),
            DstEffect::SecondOfRepeated => Some(format!("second pass of the repeated {wall}")),
            DstEffect::EndOfGap => Some(format!(
                "for {wall}, which the DST change skips: at the end of the gap"
            )),
        }
    }
}

/// How a DST change placed a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DstEffect {
    /// An ordinary wall time.
    None,
    /// The first pass of a repeated wall time.
    FirstOfRepeated,
    /// The second pass of a repeated wall time.
    SecondOfRepeated,
    /// The wall time does not exist; this is the first instant after the gap.
    EndOfGap,
}

#[derive(Clone, Debug)]
enum Rule {
    Interval {
        every_secs: i64,
        /// Milliseconds after each multiple of `every_secs` since the epoch, from the job's id.
        phase_ms: i64,
    },
    Hourly {
        minute: u32,
    },
    Daily {
        at: NaiveTime,
    },
    /// Bit `n` set = runs on the weekday whose `num_days_from_monday()` is `n`.
    Weekly {
        days: u8,
        at: NaiveTime,
    },
    Monthly {
        day: u32,
        at: NaiveTime,
    },
    Cron(Box<CronExpr>),
    Manual,
}

/// The slots that fell due between the last handled slot and now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissedSlots {
    /// The most recent missed slots, oldest first, at most the requested limit.
    pub recent: Vec<DateTime<Utc>>,
    /// True when more slots were missed than `recent` holds.
    pub truncated: bool,
}

impl MissedSlots {
    /// The latest missed slot, the only one a catch-up may run.
    pub fn latest(&self) -> Option<DateTime<Utc>> {
        self.recent.last().copied()
    }
}

/// How far a wall-clock search may look before deciding a schedule never fires (e.g. `0 0 30 2 *`).
const MAX_WALL_STEPS: usize = 2_000;
/// How many wall times [`CompiledSchedule::dst_skips`] reads at most.
const MAX_SKIP_STEPS: usize = 100_000;

impl CompiledSchedule {
    /// Parses job `job`'s schedule and zone; errors name the field and say what to fix.
    ///
    /// An interval's slots are `phase + k × every`, the phase a stable hash (FNV-1a) of
    /// `namespace/name`, so it is the same on every runner, in both modes and in every version.
    /// Other forms are wall-clock times and do not depend on the job.
    pub fn new(job: JobId<'_>, spec: &ScheduledJobSpec) -> Result<Self, InvalidSpec> {
        let mut errors = Vec::new();
        let tz = parse_time_zone(&spec.time_zone).map_err(|e| errors.push(e)).ok();
        let rule = compile_rule(job, &spec.schedule).map_err(|e| errors.push(e)).ok();
        match (tz, rule) {
            (Some(tz), Some(rule)) if errors.is_empty() => {
                let dst = DstPolicy::for_rule(&rule, spec.daylight_saving.unwrap_or_default());
                Ok(Self { tz, rule, dst })
            }
            _ => Err(InvalidSpec { errors }),
        }
    }

    /// The DST policy the job runs with (its choices, else the schedule's defaults).
    pub fn dst_policy(&self) -> DstPolicy {
        self.dst
    }

    /// The job's time zone.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// True for manual jobs, which never run by themselves.
    pub fn is_manual(&self) -> bool {
        matches!(self.rule, Rule::Manual)
    }

    /// The first slot strictly after `after`, in UTC; `None` for manual jobs (or a cron that never fires).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_slot(after).map(|slot| slot.at)
    }

    /// The first slot strictly after `after`, with the wall time it stands for and what DST did.
    pub fn next_slot(&self, after: DateTime<Utc>) -> Option<Slot> {
        match &self.rule {
            Rule::Manual => None,
            Rule::Interval { every_secs, phase_ms } => {
                // Slots fall on whole milliseconds: the first one after `after`'s millisecond
                // is also strictly after `after`.
                let every_ms = every_secs.checked_mul(1_000)?;
                let k = (after.timestamp_millis() - phase_ms).div_euclid(every_ms) + 1;
                let at = DateTime::from_timestamp_millis(k.checked_mul(every_ms)?.checked_add(*phase_ms)?)?;
                Some(Slot {
                    at,
                    wall: at.with_timezone(&self.tz).naive_local(),
                    dst: DstEffect::None,
                })
            }
            _ => self.next_wall_slot(after),
        }
    }

    /// The runs in `(after, until]` that the DST policy leaves out, as the slot each would have
    /// been: a wall time inside a gap under `Skip` ([`DstEffect::EndOfGap`], at the end of the
    /// gap), and the pass of a repeated time that `First` or `Second` does not run. For
    /// `jtp preview` and the portal.
    pub fn dst_skips(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Slot> {
        let mut out = Vec::new();
        if matches!(self.rule, Rule::Interval { .. } | Rule::Manual) || until <= after {
            return out;
        }
        let (lo, hi) = self.offset_bounds(after, until);
        let end = until.naive_utc() + Duration::seconds(hi);
        let mut wall = after.naive_utc() + Duration::seconds(lo) - Duration::minutes(1);
        for _ in 0..MAX_SKIP_STEPS {
            let Some(next) = self.next_wall_after(wall) else {
                break;
            };
            if next > end {
                break;
            }
            wall = next;
            match self.tz.from_local_datetime(&wall) {
                LocalResult::None if self.dst.skipped == SkippedTime::Skip => {
                    let at = gap_end(self.tz, wall);
                    if at > after && at <= until {
                        out.push(Slot {
                            at,
                            wall,
                            dst: DstEffect::EndOfGap,
                        });
                    }
                }
                LocalResult::Ambiguous(a, b) if self.dst.repeated != RepeatedTime::Both => {
                    let (first, second) = (a.min(b).with_timezone(&Utc), a.max(b).with_timezone(&Utc));
                    let (at, dst) = if self.dst.repeated == RepeatedTime::First {
                        (second, DstEffect::SecondOfRepeated)
                    } else {
                        (first, DstEffect::FirstOfRepeated)
                    };
                    if at > after && at <= until {
                        out.push(Slot { at, wall, dst });
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Up to `limit` of the most recent slots in `(last, now]`, oldest first.
    ///
    /// Bounded in time and memory however long the job was down: the search looks back from `now`
    /// in widening windows, so a minutely job down for a year costs a few thousand steps.
    pub fn missed(&self, last: DateTime<Utc>, now: DateTime<Utc>, limit: usize) -> MissedSlots {
        if limit == 0 || now <= last || self.is_manual() {
            return MissedSlots {
                recent: Vec::new(),
                truncated: false,
            };
        }
        let mut window = Duration::minutes(1);
        loop {
            let start = now.checked_sub_signed(window).map_or(last, |s| s.max(last));
            let mut recent = VecDeque::with_capacity(limit);
            let mut count = 0usize;
            let mut cursor = start;
            while let Some(slot) = self.next_after(cursor).filter(|slot| *slot <= now) {
                if recent.len() == limit {
                    recent.pop_front();
                }
                recent.push_back(slot);
                count += 1;
                cursor = slot;
            }
            if count >= limit || start == last {
                let earlier = start > last && self.next_after(last).is_some_and(|s| s <= start);
                return MissedSlots {
                    recent: recent.into(),
                    truncated: count > limit || earlier,
                };
            }
            window = window * 4;
        }
    }

    /// The schedule in words, with the zone: "Every Monday at 09:00 (Asia/Hong_Kong)". In a zone
    /// with DST, the zone is followed by what the job does on a change ([`Self::describe_dst`]).
    /// What a DST change does to the slot at `at` (a slot of this schedule, e.g. the next run), in
    /// `jtp preview`'s words; `None` when no change touches it.
    pub fn dst_note_at(&self, at: DateTime<Utc>) -> Option<String> {
        let slot = self.next_slot(at - chrono::Duration::milliseconds(1))?;
        (slot.at == at).then(|| slot.dst_note()).flatten()
    }

    pub fn describe(&self) -> String {
        let zone = match self.describe_dst() {
            Some(dst) if self.zone_has_dst() => format!("{}; DST: {dst}", self.tz.name()),
            _ => self.tz.name().to_owned(),
        };
        match &self.rule {
            Rule::Manual => "Manual: runs only when triggered".to_owned(),
            Rule::Interval { every_secs, .. } => describe_interval(*every_secs),
            Rule::Hourly { minute } => format!("Every hour at minute {minute} ({zone})"),
            Rule::Daily { at } => format!("Every day at {} ({zone})", at.format("%H:%M")),
            Rule::Weekly { days, at } => {
                let names: Vec<&str> = Weekday::ALL
                    .iter()
                    .filter(|d| days & day_bit(d.to_chrono()) != 0)
                    .map(|d| d.title())
                    .collect();
                let list = match names.as_slice() {
                    [] => String::new(),
                    [one] => (*one).to_owned(),
                    [init @ .., last] => format!("{} and {last}", init.join(", ")),
                };
                format!("Every {list} at {} ({zone})", at.format("%H:%M"))
            }
            Rule::Monthly { day, at } => {
                let clamp = if *day > 28 {
                    " (or the month's last day)"
                } else {
                    ""
                };
                format!("Monthly on day {day}{clamp} at {} ({zone})", at.format("%H:%M"))
            }
            Rule::Cron(cron) => format!("Cron \"{}\": {} ({zone})", cron.source(), cron.describe()),
        }
    }

    /// What the job does on DST changes, in words: "repeated times run in both passes, skipped
    /// times are skipped". `None` for intervals and manual jobs, which DST does not touch.
    pub fn describe_dst(&self) -> Option<String> {
        if matches!(self.rule, Rule::Interval { .. } | Rule::Manual) {
            return None;
        }
        let repeated = match self.dst.repeated {
            RepeatedTime::First => "a repeated time runs once, at its first occurrence",
            RepeatedTime::Second => "a repeated time runs once, at its second occurrence",
            RepeatedTime::Both => "a repeated time runs at both occurrences",
        };
        let skipped = match self.dst.skipped {
            SkippedTime::EndOfGap => "a skipped time runs at the end of the gap",
            SkippedTime::Skip => "a skipped time does not run",
        };
        let chosen = match (self.dst.repeated_chosen, self.dst.skipped_chosen) {
            (true, true) => "",
            (false, false) => " (defaults)",
            _ => " (partly defaults)",
        };
        Some(format!("{repeated}; {skipped}{chosen}"))
    }

    /// True when the job's zone changes its offset (DST) in the years 2000–2040.
    pub fn zone_has_dst(&self) -> bool {
        let offsets = (2000..=2040).flat_map(|year| {
            [1, 4, 7, 10].map(|month| {
                NaiveDate::from_ymd_opt(year, month, 15)
                    .and_then(|d| d.and_hms_opt(12, 0, 0))
                    .map(|t| self.offset_secs(Utc.from_utc_datetime(&t)))
            })
        });
        let mut seen = None;
        for offset in offsets.flatten() {
            match seen {
                None => seen = Some(offset),
                Some(o) if o != offset => return true,
                Some(_) => {}
            }
        }
        false
    }

    /// The zone's UTC offset at `t`, in seconds.
    fn offset_secs(&self, t: DateTime<Utc>) -> i64 {
        i64::from(
            self.tz
                .offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc(),
        )
    }

    /// The smallest and largest offset at `from`, two days later and `to`.
    fn offset_bounds(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> (i64, i64) {
        let samples = [from, from + Duration::days(2), to].map(|t| self.offset_secs(t));
        (
            samples.iter().copied().min().unwrap_or(0),
            samples.iter().copied().max().unwrap_or(0),
        )
    }

    /// The instants the policy gives one matching wall time.
    fn instants(&self, wall: NaiveDateTime) -> [Option<(DateTime<Utc>, DstEffect)>; 2] {
        match self.tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => [Some((t.with_timezone(&Utc), DstEffect::None)), None],
            LocalResult::Ambiguous(a, b) => {
                let first = (a.min(b).with_timezone(&Utc), DstEffect::FirstOfRepeated);
                let second = (a.max(b).with_timezone(&Utc), DstEffect::SecondOfRepeated);
                match self.dst.repeated {
                    RepeatedTime::First => [Some(first), None],
                    RepeatedTime::Second => [Some(second), None],
                    RepeatedTime::Both => [Some(first), Some(second)],
                }
            }
            LocalResult::None => match self.dst.skipped {
                SkippedTime::EndOfGap => [Some((gap_end(self.tz, wall), DstEffect::EndOfGap)), None],
                SkippedTime::Skip => [None, None],
            },
        }
    }

    /// The earliest instant strictly after `after` that some matching wall time maps to.
    ///
    /// Around a change the instants are not in wall order (the second pass of 01:30 comes after
    /// the first pass of 01:45), so walls are read from the lowest local time any later instant
    /// can have, and the search stops once no later wall can map before the best instant found.
    fn next_wall_slot(&self, after: DateTime<Utc>) -> Option<Slot> {
        let (lo, mut hi) = self.offset_bounds(after, after);
        let mut wall = after.naive_utc() + Duration::seconds(lo) - Duration::minutes(1);
        let mut best: Option<Slot> = None;
        for _ in 0..MAX_WALL_STEPS {
            wall = match self.next_wall_after(wall) {
                Some(next) => next,
                None => break,
            };
            if let Some(best) = &best
                && wall - Duration::seconds(hi) > best.at.naive_utc()
            {
                break;
            }
            for (at, dst) in self.instants(wall).into_iter().flatten() {
                if at > after && best.is_none_or(|b| at < b.at) {
                    hi = hi.max(self.offset_secs(at));
                    best = Some(Slot { at, wall, dst });
                }
            }
        }
        best
    }

    /// The next wall time of the rule strictly after `wall`, on the zone's local calendar.
    fn next_wall_after(&self, wall: NaiveDateTime) -> Option<NaiveDateTime> {
        match &self.rule {
            Rule::Hourly { minute } => {
                let hour = wall.date().and_hms_opt(wall.hour(), *minute, 0)?;
                Some(if hour > wall {
                    hour
                } else {
                    hour + Duration::hours(1)
                })
            }
            Rule::Daily { at } => {
                let today = wall.date().and_time(*at);
                Some(if today > wall {
                    today
                } else {
                    today + Duration::days(1)
                })
            }
            Rule::Weekly { days, at } => (0..=7).find_map(|offset| {
                let date = wall.date() + Duration::days(offset);
                let candidate = date.and_time(*at);
                (days & day_bit(date.weekday()) != 0 && candidate > wall).then_some(candidate)
            }),
            Rule::Monthly { day, at } => {
                let (mut year, mut month) = (wall.year(), wall.month());
                for _ in 0..3 {
                    let date = clamped_day(year, month, *day)?;
                    let candidate = date.and_time(*at);
                    if candidate > wall {
                        return Some(candidate);
                    }
                    (year, month) = if month == 12 {
                        (year + 1, 1)
                    } else {
                        (year, month + 1)
                    };
                }
                None
            }
            Rule::Cron(cron) => cron.next_after(wall),
            Rule::Interval { .. } | Rule::Manual => None,
        }
    }
}

/// The first instant after the DST gap containing `wall`: the transition itself.
fn gap_end(tz: Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    let as_utc = Utc.from_utc_datetime(&wall);
    let offset_secs = |t: DateTime<Utc>| {
        i64::from(
            tz.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc(),
        )
    };
    let before = offset_secs(as_utc - Duration::days(2));
    let after = offset_secs(as_utc + Duration::days(2));
    // Read with the later offset the wall time falls before the transition; with the earlier, after it.
    let mut lo = as_utc.timestamp() - after;
    let mut hi = as_utc.timestamp() - before;
    let local_after_wall = |secs: i64| {
        DateTime::from_timestamp(secs, 0).is_some_and(|t| t.with_timezone(&tz).naive_local() > wall)
    };
    if lo >= hi || !local_after_wall(hi) {
        // Not a plain two-offset gap: walk forward minute by minute (bounded) instead.
        return (1..=48 * 60)
            .find_map(|m| tz.from_local_datetime(&(wall + Duration::minutes(m))).earliest())
            .map_or(as_utc, |t| t.with_timezone(&Utc));
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local_after_wall(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap_or(as_utc)
}

fn day_bit(day: chrono::Weekday) -> u8 {
    1 << day.num_days_from_monday()
}

/// Day `day` of the month, or the month's last day when the month is shorter.
fn clamped_day(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    let first_of_next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }?;
    let last_day = first_of_next.pred_opt()?.day();
    NaiveDate::from_ymd_opt(year, month, day.min(last_day))
}

/// The phase of an interval of `every_secs` for `job`, in `[0, every)` ms.
fn interval_phase_ms(job: JobId<'_>, every_secs: i64) -> i64 {
    use std::hash::Hasher;
    let mut hash = fnv::FnvHasher::default();
    hash.write(job.namespace.as_bytes());
    hash.write(b"/");
    hash.write(job.name.as_bytes());
    let every_ms = u64::try_from(every_secs)
        .unwrap_or(1)
        .saturating_mul(1_000)
        .max(1);
    i64::try_from(hash.finish() % every_ms).unwrap_or(0)
}

fn describe_interval(every_secs: i64) -> String {
    let (n, unit) = [(86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second")]
        .into_iter()
        .find(|(secs, _)| every_secs % secs == 0)
        .map_or((every_secs, "second"), |(secs, unit)| (every_secs / secs, unit));
    if n == 1 {
        format!("Every {unit}")
    } else {
        format!("Every {n} {unit}s")
    }
}

/// Parses an IANA zone name; the error says what to fix and suggests the closest name.
pub fn parse_time_zone(name: &str) -> Result<Tz, FieldError> {
    Tz::from_str(name).map_err(|_| {
        let normal = |s: &str| s.to_ascii_lowercase().replace(['_', ' ', '-'], "");
        let wanted = normal(name);
        let hint = chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| normal(tz.name()) == wanted)
            .map_or_else(
                || "use an IANA name such as Asia/Hong_Kong, Europe/London or UTC".to_owned(),
                |tz| format!("did you mean {}?", tz.name()),
            );
        FieldError::new("spec.timeZone", format!("unknown time zone \"{name}\": {hint}"))
    })
}

/// Parses `HH:MM` (00:00–23:59).
pub fn parse_wall_time(field: &str, value: &str) -> Result<NaiveTime, FieldError> {
    let bad = || {
        FieldError::new(
            field,
            format!("\"{value}\" is not a time: write HH:MM on a 24-hour clock, 00:00 to 23:59"),
        )
    };
    let (h, m) = value.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    NaiveTime::from_hms_opt(h, m, 0)
        .filter(|_| m < 60)
        .ok_or_else(bad)
}

/// Parses a cron expression of the dialect in [`crate::cron`]; the error names the cron field,
/// the token and what is allowed.
pub fn parse_cron(field: &str, expr: &str) -> Result<CronExpr, FieldError> {
    CronExpr::parse(expr)
        .map_err(|e| FieldError::new(field, format!("cron \"{}\" is invalid: {}", expr.trim(), e.0)))
}

impl DstPolicy {
    /// The spec's choices, and Vixie cron's defaults for what it leaves out.
    fn for_rule(rule: &Rule, chosen: DaylightSaving) -> Self {
        let repeats = match rule {
            Rule::Hourly { .. } => true,
            Rule::Cron(cron) => cron.repeats_within_day(),
            _ => false,
        };
        let (repeated, skipped) = if repeats {
            (RepeatedTime::Both, SkippedTime::Skip)
        } else {
            (RepeatedTime::First, SkippedTime::EndOfGap)
        };
        Self {
            repeated: chosen.repeated_time.unwrap_or(repeated),
            skipped: chosen.skipped_time.unwrap_or(skipped),
            repeated_chosen: chosen.repeated_time.is_some(),
            skipped_chosen: chosen.skipped_time.is_some(),
        }
    }
}

fn compile_rule(job: JobId<'_>, schedule: &Schedule) -> Result<Rule, FieldError> {
    let path = "spec.schedule";
    if schedule.forms_set() != 1 {
        return Err(FieldError::new(
            path,
            "set exactly one schedule form: interval, hourly, daily, weekly, monthly, cron or manual",
        ));
    }
    if let Some(interval) = &schedule.interval {
        let every_secs = interval.every.saturating_mul(interval.unit.seconds());
        if every_secs < crate::MIN_INTERVAL_SECONDS {
            return Err(FieldError::new(
                "spec.schedule.interval",
                format!(
                    "every {} {} is too often: an interval must be at least {} seconds",
                    interval.every,
                    interval.unit.as_str(),
                    crate::MIN_INTERVAL_SECONDS
                ),
            ));
        }
        let every_secs = i64::try_from(every_secs)
            .ok()
            .filter(|s| *s <= 100 * 366 * IntervalUnit::Days.seconds() as i64)
            .ok_or_else(|| {
                FieldError::new(
                    "spec.schedule.interval.every",
                    "an interval must be at most 100 years",
                )
            })?;
        return Ok(Rule::Interval {
            every_secs,
            phase_ms: interval_phase_ms(job, every_secs),
        });
    }
    if let Some(hourly) = &schedule.hourly {
        if hourly.minute > 59 {
            return Err(FieldError::new(
                "spec.schedule.hourly.minute",
                format!("minute {} is out of range: use 0 to 59", hourly.minute),
            ));
        }
        return Ok(Rule::Hourly {
            minute: hourly.minute,
        });
    }
    if let Some(daily) = &schedule.daily {
        let at = parse_wall_time("spec.schedule.daily.at", &daily.at)?;
        return Ok(Rule::Daily { at });
    }
    if let Some(weekly) = &schedule.weekly {
        if weekly.days.is_empty() {
            return Err(FieldError::new(
                "spec.schedule.weekly.days",
                "name at least one weekday, e.g. [monday]",
            ));
        }
        let at = parse_wall_time("spec.schedule.weekly.at", &weekly.at)?;
        let days = weekly
            .days
            .iter()
            .fold(0, |bits, d| bits | day_bit(d.to_chrono()));
        return Ok(Rule::Weekly { days, at });
    }
    if let Some(monthly) = &schedule.monthly {
        if !(1..=31).contains(&monthly.day) {
            return Err(FieldError::new(
                "spec.schedule.monthly.day",
                format!(
                    "day {} is out of range: use 1 to 31 (29–31 run on the last day of shorter months)",
                    monthly.day
                ),
            ));
        }
        let at = parse_wall_time("spec.schedule.monthly.at", &monthly.at)?;
        return Ok(Rule::Monthly { day: monthly.day, at });
    }
    if let Some(expr) = &schedule.cron {
        return Ok(Rule::Cron(Box::new(parse_cron("spec.schedule.cron", expr)?)));
    }
    Ok(Rule::Manual)
}
