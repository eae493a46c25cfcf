//! The cron dialect: every schedule string a Kubernetes CronJob accepts, with Vixie cron's meaning.
//!
//! - Five fields: minute (0–59), hour (0–23), day of month (1–31), month (1–12 or `jan`–`dec`), day
//!   of week (0–7 or `sun`–`sat`; 0 and 7 are both Sunday). Names are case-insensitive.
//! - Each field is a comma-separated list of terms; a term is `*`, `?` (the same as `*`), a value, or a
//!   range `a-b`, each optionally followed by a step `/n`; `a/n` means `a-max/n`.
//! - Macros: `@yearly` and `@annually` (`0 0 1 1 *`), `@monthly` (`0 0 1 * *`), `@weekly`
//!   (`0 0 * * 0`), `@daily` and `@midnight` (`0 0 * * *`), `@hourly` (`0 * * * *`).
//! - The Vixie day rule: when both day fields are restricted, a day matching either runs; a day field
//!   whose text starts with `*` or `?` (also `*/2`) is unrestricted, and then only the other one counts.
//! - Refused, each with a message naming the token: `L`, `W` and `#` (Quartz extensions that CronJob
//!   refuses too), ranges that wrap around (`fri-mon`: write `fri-sat,sun-mon`), `@every` (use
//!   `schedule.interval`), `@reboot`, `TZ=`/`CRON_TZ=` prefixes (use `spec.timeZone`), and a
//!   seconds or year field.
//!
//! An expression that can never fire (`0 0 30 2 *`) is refused too.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};

/// One parsed cron expression: the set of local wall minutes it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronExpr {
    /// What the user wrote, trimmed.
    source: String,
    /// The five fields after a macro is expanded.
    fields: [String; 5],
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0.
    weekdays: u8,
    days_star: bool,
    weekdays_star: bool,
}

/// Why an expression was refused, as a sentence that names the field or token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError(pub String);

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Offset of `names[0]`.
    first_name: u32,
}

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        first_name: 0,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        first_name: 0,
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        first_name: 0,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTH_NAMES,
        first_name: 1,
    },
    Field {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: &DAY_NAMES,
        first_name: 0,
    },
];

/// The longest month of each month (February counts its leap day), 1-based.
const LONGEST_MONTH: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

impl Field {
    fn range_text(&self) -> String {
        match self.names {
            [] => format!("{}–{}", self.min, self.max),
            names => format!(
                "{}–{} or {}–{}",
                self.min,
                self.max,
                names[0],
                names[names.len() - 1]
            ),
        }
    }

    fn value(&self, text: &str, term: &str) -> Result<u32, CronError> {
        let lower = text.to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == lower) {
            return Ok(self.first_name + i as u32);
        }
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let n: u32 = text.parse().unwrap_or(u32::MAX);
            if n < self.min || n > self.max {
                return Err(CronError(format!(
                    "{} field: {text} in \"{term}\" is out of range: use {}",
                    self.name,
                    self.range_text()
                )));
            }
            return Ok(n);
        }
        Err(self.unknown(text, term))
    }

    fn unknown(&self, text: &str, term: &str) -> CronError {
        let upper = text.to_ascii_uppercase();
        let why = if term.contains('#') {
            "\"#\" (the n-th weekday of the month) is not supported (Kubernetes CronJob refuses it too): \
             list the days instead, e.g. 1-7 with the weekday for the first one"
                .to_owned()
        } else if upper == "L" || (upper.ends_with('L') && self.name.starts_with("day")) {
            "\"L\" (last day) is not supported (Kubernetes CronJob refuses it too): for the last day of \
             the month use schedule.monthly with day 31, which runs on the last day of shorter months"
                .to_owned()
        } else if upper.ends_with('W') && self.name == "day-of-month" {
            "\"W\" (nearest weekday) is not supported (Kubernetes CronJob refuses it too)".to_owned()
        } else {
            format!("\"{text}\" is not a value: use {}", self.range_text())
        };
        CronError(format!("{} field \"{term}\": {why}", self.name))
    }

    /// The bits of one comma-separated field, and whether it starts with `*` or `?`.
    fn parse(&self, text: &str) -> Result<(u64, bool), CronError> {
        let mut bits = 0u64;
        for term in text.split(',').filter(|t| !t.is_empty()) {
            bits |= self.term(term)?;
        }
        if bits == 0 {
            return Err(CronError(format!(
                "{} field \"{text}\" names no value: use {}",
                self.name,
                self.range_text()
            )));
        }
        Ok((bits, text.starts_with(['*', '?'])))
    }

    fn term(&self, term: &str) -> Result<u64, CronError> {
        let (range, step) = match term.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0 && step.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        CronError(format!(
                            "{} field \"{term}\": the step after / must be a whole number of at least 1",
                            self.name
                        ))
                    })?;
                (range, Some(step))
            }
            None => (term, None),
        };
        let max = if self.name == "day-of-week" { 6 } else { self.max };
        let (start, end) = if range == "*" || range == "?" {
            (self.min, max)
        } else if let Some((a_text, b_text)) = range.split_once('-') {
            let (a, b) = (self.value(a_text, term)?, self.value(b_text, term)?);
            if a > b {
                let (last, first) = match self.names {
                    [first, .., last] if !a_text.starts_with(|c: char| c.is_ascii_digit()) => {
                        ((*last).to_owned(), (*first).to_owned())
                    }
                    _ => (max.to_string(), self.min.to_string()),
                };
                let hint = format!("write it as a list, {a_text}-{last},{first}-{b_text}");
                return Err(CronError(format!(
                    "{} field \"{term}\": the range wraps around ({a} is after {b}), which is not supported: {hint}",
                    self.name
                )));
            }
            (a, b)
        } else {
            let a = self.value(range, term)?;
            // `a/n` runs from a to the end of the field, as in Kubernetes CronJob.
            (a, if step.is_some() { max } else { a })
        };
        let mut bits = 0u64;
        let mut v = start;
        while v <= end {
            // Sunday may be written 7.
            bits |= 1 << if self.name == "day-of-week" { v % 7 } else { v };
            v += step.unwrap_or(1);
        }
        Ok(bits)
    }
}

impl CronExpr {
    /// Parses a cron expression of this dialect; the error names the field and what is allowed.
    pub fn parse(expr: &str) -> Result<Self, CronError> {
        let source = expr.trim().to_owned();
        let fields: Vec<&str> = source.split_whitespace().collect();
        if let [first, ..] = fields.as_slice()
            && let Some(prefix) = ["TZ=", "CRON_TZ="].into_iter().find(|p| first.starts_with(p))
        {
            return Err(CronError(format!(
                "\"{first}\": a {prefix} prefix is not supported: set spec.timeZone to {} instead",
                &first[prefix.len()..]
            )));
        }
        let expanded: Vec<String> = match fields.as_slice() {
            [macro_] if macro_.starts_with('@') => {
                expand_macro(macro_)?.split(' ').map(str::to_owned).collect()
            }
            [word, ..] if word.starts_with('@') => {
                let hint = if word.eq_ignore_ascii_case("@every") {
                    "use schedule.interval (e.g. interval: { every: 5, unit: minutes })"
                } else {
                    "a macro stands alone, e.g. \"@daily\""
                };
                return Err(CronError(format!("\"{source}\": {hint}")));
            }
            five if five.len() == 5 => five.iter().map(|f| (*f).to_owned()).collect(),
            other => {
                return Err(CronError(format!(
                    "\"{source}\" has {} fields; write 5: minute hour day-of-month month day-of-week, e.g. \"*/5 * * * *\", or a macro such as \"@daily\"",
                    other.len()
                )));
            }
        };
        let mut bits = [0u64; 5];
        let mut stars = [false; 5];
        for (i, field) in FIELDS.iter().enumerate() {
            (bits[i], stars[i]) = field.parse(&expanded[i])?;
        }
        let fields: [String; 5] = [0, 1, 2, 3, 4].map(|i| expanded[i].clone());
        let cron = Self {
            source,
            fields,
            minutes: bits[0],
            hours: u32::try_from(bits[1]).unwrap_or(0),
            days: u32::try_from(bits[2]).unwrap_or(0),
            months: u16::try_from(bits[3]).unwrap_or(0),
            weekdays: u8::try_from(bits[4]).unwrap_or(0),
            days_star: stars[2],
            weekdays_star: stars[4],
        };
        if !cron.can_fire() {
            return Err(CronError(format!(
                "\"{}\" never fires: no month it names has day {}",
                cron.source, cron.fields[2]
            )));
        }
        Ok(cron)
    }

    /// What the user wrote.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The five fields, a macro expanded: `["0", "0", "*", "*", "*"]` for `@daily`.
    pub fn fields(&self) -> &[String; 5] {
        &self.fields
    }

    /// True when the job runs several times a day on a moving wall time: the minute or the hour
    /// field starts with `*` (Vixie cron's test; `@hourly` is `0 * * * *`). Such jobs run at every
    /// instant whose local clock matches; the others are fixed wall times.
    pub fn repeats_within_day(&self) -> bool {
        self.fields[0].starts_with(['*', '?']) || self.fields[1].starts_with(['*', '?'])
    }

    /// The day rule: restricted day fields are OR-ed; an unrestricted one defers to the other.
    pub fn matches_date(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// True when this local wall time (seconds ignored) matches.
    pub fn matches(&self, wall: NaiveDateTime) -> bool {
        self.matches_date(wall.date())
            && self.hours & (1 << wall.hour()) != 0
            && self.minutes & (1 << wall.minute()) != 0
    }

    /// The first matching wall minute strictly after `wall`, searching at most nine years ahead
    /// (29 February in a day field can be eight years apart).
    pub fn next_after(&self, wall: NaiveDateTime) -> Option<NaiveDateTime> {
        let start = wall.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let mut date = start.date();
        let last = date + Duration::days(9 * 366);
        let mut first_day = true;
        while date <= last {
            if self.months & (1 << date.month()) == 0 {
                // Jump to the first of the next month.
                date = NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?
                    .checked_add_months(chrono::Months::new(1))?;
                first_day = false;
                continue;
            }
            if self.matches_date(date) {
                let (from_hour, from_minute) = if first_day {
                    (start.hour(), start.minute())
                } else {
                    (0, 0)
                };
                for hour in (from_hour..24).filter(|h| self.hours & (1 << h) != 0) {
                    let first_minute = if hour == from_hour { from_minute } else { 0 };
                    if let Some(minute) = (first_minute..60).find(|m| self.minutes & (1 << m) != 0) {
                        return date.and_hms_opt(hour, minute, 0);
                    }
                }
            }
            date = date.succ_opt()?;
            first_day = false;
        }
        None
    }

    /// Whether some day of some named month can match (`0 0 30 2 *` cannot).
    fn can_fire(&self) -> bool {
        if self.days_star || !self.weekdays_star {
            // Any day of the month combined with weekdays that always come, or both restricted (a
            // named weekday always comes): it fires.
            return true;
        }
        (1..=12u32).any(|m| {
            self.months & (1 << m) != 0 && (1..=LONGEST_MONTH[m as usize]).any(|d| self.days & (1 << d) != 0)
        })
    }

    /// The expression in words: "at 09:00 on Monday–Friday", "every 5 minutes".
    pub fn describe(&self) -> String {
        let [minute, hour, dom, month, dow] = &self.fields;
        let mut parts = Vec::new();
        let fixed = |f: &str| f.bytes().all(|b| b.is_ascii_digit());
        match (fixed(minute), fixed(hour)) {
            (true, true) => {
                let (h, m): (u32, u32) = (hour.parse().unwrap_or(0), minute.parse().unwrap_or(0));
                parts.push(format!("at {h:02}:{m:02}"));
            }
            _ => {
                parts.push(match minute.as_str() {
                    "*" | "?" => "every minute".to_owned(),
                    m if m.starts_with("*/") => format!("every {} minutes", &m[2..]),
                    m => format!("at minute {m}"),
                });
                if !matches!(hour.as_str(), "*" | "?") {
                    parts.push(match hour.strip_prefix("*/") {
                        Some(n) => format!("every {n} hours"),
                        None => format!("in hour {hour}"),
                    });
                }
            }
        }
        let star = |f: &str| matches!(f, "*" | "?");
        match (star(dom), star(dow)) {
            (true, true) => {}
            (false, true) => parts.push(format!("on day {dom} of the month")),
            (true, false) => parts.push(format!("on weekday {}", weekday_words(dow))),
            (false, false) => parts.push(format!(
                "on day {dom} of the month or weekday {}",
                weekday_words(dow)
            )),
        }
        if !star(month) {
            parts.push(format!("in month {month}"));
        }
        parts.join(" ")
    }
}

/// Day-of-week text with the common forms in words: `1-5` → "Monday–Friday".
fn weekday_words(field: &str) -> String {
    const TITLES: [&str; 8] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let word = |v: &str| {
        let lower = v.to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .position(|n| *n == lower)
            .or_else(|| v.parse::<usize>().ok().filter(|n| *n <= 7))
            .map_or_else(|| v.to_owned(), |i| TITLES[i].to_owned())
    };
    if field.contains('/') {
        return field.to_owned();
    }
    field
        .split(',')
        .map(|term| match term.split_once('-') {
            Some((a, b)) => format!("{}–{}", word(a), word(b)),
            None => word(term),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn expand_macro(word: &str) -> Result<&'static str, CronError> {
    Ok(match word.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        "@every" => {
            return Err(CronError(format!(
                "\"{word}\": use schedule.interval (e.g. interval: {{ every: 5, unit: minutes }})"
            )));
        }
        "@reboot" => {
            return Err(CronError(
                "\"@reboot\" is not supported: a scheduler has no boot; use schedule.manual and Run Now"
                    .to_owned(),
            ));
        }
        _ => {
            return Err(CronError(format!(
                "unknown macro \"{word}\": use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"
            )));
        }
    })
}
