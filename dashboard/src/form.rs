//! The job form: what the user typed (kept as text so nothing is lost when it is shown again), its
//! translation to a [`ScheduledJobSpec`], and the mapping of validation paths
//! (`spec.schedule.daily.at`) to the form field they belong next to.

use jtp_crds::{
    ConcurrencyPolicy, ConfigMapScript, DailySchedule, DaylightSaving, FieldError, HourlySchedule,
    IntervalSchedule, IntervalUnit, ManualSchedule, MonthlySchedule, Parameter, PodTemplate, RepeatedTime,
    Schedule, ScheduledJobSpec, Script, SkippedTime, Weekday, WeeklySchedule,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// The schedule forms the form offers, in the order shown.
pub const SCHEDULE_TYPES: [&str; 7] = [
    "interval", "hourly", "daily", "weekly", "monthly", "cron", "manual",
];
/// The script kinds the form offers.
pub const SCRIPT_KINDS: [&str; 4] = ["inline", "command", "file", "configMap"];

/// The form as typed. Every field is text, so a bad value is shown back exactly as entered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JobForm {
    pub name: String,
    pub namespace: String,
    pub description: String,
    pub schedule_type: String,
    pub interval_every: String,
    pub interval_unit: String,
    pub hourly_minute: String,
    pub daily_at: String,
    pub weekly_on: Vec<String>,
    pub weekly_at: String,
    pub monthly_day: String,
    pub monthly_at: String,
    pub cron: String,
    pub time_zone: String,
    /// `spec.daylightSaving`: "" for the schedule's default, else a [`RepeatedTime`] /
    /// [`SkippedTime`] name. `None` when the request did not send the field (an edit then keeps
    /// the job's own).
    pub repeated_time: Option<String>,
    pub skipped_time: Option<String>,
    pub suspend: bool,
    pub script_kind: String,
    pub script_inline: String,
    /// One argument per line.
    pub script_command: String,
    pub script_file: String,
    pub configmap_name: String,
    pub configmap_key: String,
    pub image: String,
    /// `spec.podTemplate` as YAML; "" for none, `None` when not sent (an edit keeps the job's own).
    pub pod_template: Option<String>,
    /// `spec.parameters` as a YAML list; "" for none, `None` when not sent (an edit keeps the job's own).
    pub parameters: Option<String>,
    pub concurrency_policy: String,
    pub starting_deadline_seconds: String,
    pub active_deadline_seconds: String,
}

/// Errors by form field; `general` holds those that belong to no one field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FormErrors {
    pub fields: BTreeMap<String, Vec<String>>,
    pub general: Vec<String>,
}

impl FormErrors {
    pub fn from_field_errors(errors: &[FieldError]) -> Self {
        let mut out = Self::default();
        for e in errors {
            match form_field(&e.field) {
                // The template and the parameters are one field each: their messages keep the
                // path inside it.
                Some(field @ ("pod_template" | "parameters"))
                    if e.field != "spec.podTemplate" && e.field != "spec.parameters" =>
                {
                    out.fields
                        .entry(field.to_owned())
                        .or_default()
                        .push(e.to_string())
                }
                Some(field) => out
                    .fields
                    .entry(field.to_owned())
                    .or_default()
                    .push(e.message.clone()),
                None => out.general.push(e.to_string()),
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty()
    }

    /// The messages for one form field, joined for display (empty when none).
    pub fn get(&self, field: &str) -> String {
        self.fields.get(field).map(|m| m.join("; ")).unwrap_or_default()
    }

    pub fn has(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    /// The attributes that tie an invalid input to its message (`aria-invalid`,
    /// `aria-describedby`), or nothing. `field` is one of the form's own field names.
    pub fn aria(&self, field: &str) -> String {
        if self.has(field) {
            format!(" aria-invalid=\"true\" aria-describedby=\"error-{field}\"")
        } else {
            String::new()
        }
    }
}

/// The form field that shows an error reported at `path` (a path of the API, as `validate` writes it).
pub fn form_field(path: &str) -> Option<&'static str> {
    let path = path.strip_prefix("spec.").unwrap_or(path);
    Some(match path {
        "metadata.name" | "name" => "name",
        "metadata.namespace" | "namespace" => "namespace",
        "description" => "description",
        "schedule" => "schedule_type",
        "schedule.interval" | "schedule.interval.every" => "interval_every",
        "schedule.interval.unit" => "interval_unit",
        "schedule.hourly" | "schedule.hourly.minute" => "hourly_minute",
        "schedule.daily" | "schedule.daily.at" => "daily_at",
        "schedule.weekly.days" => "weekly_on",
        "schedule.weekly" | "schedule.weekly.at" => "weekly_at",
        "schedule.monthly.day" => "monthly_day",
        "schedule.monthly" | "schedule.monthly.at" => "monthly_at",
        "schedule.cron" => "cron",
        "timeZone" => "time_zone",
        "daylightSaving.repeatedTime" => "repeated_time",
        "daylightSaving" | "daylightSaving.skippedTime" => "skipped_time",
        p if p == "podTemplate" || p.starts_with("podTemplate.") => "pod_template",
        p if p == "parameters" || p.starts_with("parameters[") => "parameters",
        "script" => "script_kind",
        "script.inline" => "script_inline",
        "script.command" => "script_command",
        "script.file" => "script_file",
        "script.configMap" | "script.configMap.name" => "configmap_name",
        "script.configMap.key" => "configmap_key",
        "image" => "image",
        "concurrencyPolicy" => "concurrency_policy",
        "startingDeadlineSeconds" => "starting_deadline_seconds",
        "activeDeadlineSeconds" => "active_deadline_seconds",
        _ => return None,
    })
}

impl JobForm {
    /// The DST choices and the pod template as the form shows them.
    pub fn repeated_time_shown(&self) -> &str {
        self.repeated_time.as_deref().unwrap_or_default()
    }

    pub fn skipped_time_shown(&self) -> &str {
        self.skipped_time.as_deref().unwrap_or_default()
    }

    pub fn pod_template_shown(&self) -> &str {
        self.pod_template.as_deref().unwrap_or_default()
    }

    pub fn parameters_shown(&self) -> &str {
        self.parameters.as_deref().unwrap_or_default()
    }

    /// An empty form for a new job: a daily job in the default zone.
    pub fn new_job(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            schedule_type: "daily".into(),
            interval_every: "15".into(),
            interval_unit: "minutes".into(),
            hourly_minute: "0".into(),
            daily_at: "09:00".into(),
            weekly_on: vec!["monday".into()],
            weekly_at: "09:00".into(),
            monthly_day: "1".into(),
            monthly_at: "09:00".into(),
            time_zone: jtp_crds::DEFAULT_TIME_ZONE.into(),
            repeated_time: Some(String::new()),
            skipped_time: Some(String::new()),
            pod_template: Some(String::new()),
            parameters: Some(String::new()),
            script_kind: "inline".into(),
            concurrency_policy: ConcurrencyPolicy::default().as_str().into(),
            ..Self::default()
        }
    }

    /// Reads an `application/x-www-form-urlencoded` body; repeated `weekly_on` keys are all kept.
    pub fn from_urlencoded(body: &[u8]) -> Self {
        let mut form = Self {
            schedule_type: String::new(),
            ..Self::default()
        };
        for (key, value) in url::form_urlencoded::parse(body) {
            let value = value.into_owned();
            match key.as_ref() {
                "name" => form.name = value,
                "namespace" => form.namespace = value,
                "description" => form.description = value,
                "schedule_type" => form.schedule_type = value,
                "interval_every" => form.interval_every = value,
                "interval_unit" => form.interval_unit = value,
                "hourly_minute" => form.hourly_minute = value,
                "daily_at" => form.daily_at = value,
                "weekly_on" => form.weekly_on.push(value),
                "weekly_at" => form.weekly_at = value,
                "monthly_day" => form.monthly_day = value,
                "monthly_at" => form.monthly_at = value,
                "cron" => form.cron = value,
                "time_zone" => form.time_zone = value,
                "repeated_time" => form.repeated_time = Some(value),
                "skipped_time" => form.skipped_time = Some(value),
                "pod_template" => form.pod_template = Some(value),
                "parameters" => form.parameters = Some(value),
                "suspend" => form.suspend = !value.is_empty() && value != "false",
                "script_kind" => form.script_kind = value,
                "script_inline" => form.script_inline = value,
                "script_command" => form.script_command = value,
                "script_file" => form.script_file = value,
                "configmap_name" => form.configmap_name = value,
                "configmap_key" => form.configmap_key = value,
                "image" => form.image = value,
                "concurrency_policy" => form.concurrency_policy = value,
                "starting_deadline_seconds" => form.starting_deadline_seconds = value,
                "active_deadline_seconds" => form.active_deadline_seconds = value,
                _ => {}
            }
        }
        form
    }

    /// The form showing an existing job.
    pub fn from_spec(namespace: &str, name: &str, spec: &ScheduledJobSpec) -> Self {
        let mut form = Self::new_job(namespace);
        form.name = name.to_owned();
        form.description = spec.description.clone().unwrap_or_default();
        form.schedule_type = spec.schedule.kind().to_owned();
        let s = &spec.schedule;
        if let Some(i) = &s.interval {
            form.interval_every = i.every.to_string();
            form.interval_unit = i.unit.as_str().to_owned();
        }
        if let Some(h) = &s.hourly {
            form.hourly_minute = h.minute.to_string();
        }
        if let Some(d) = &s.daily {
            form.daily_at = d.at.clone();
        }
        if let Some(w) = &s.weekly {
            form.weekly_on = w.days.iter().map(|d| d.as_str().to_owned()).collect();
            form.weekly_at = w.at.clone();
        }
        if let Some(m) = &s.monthly {
            form.monthly_day = m.day.to_string();
            form.monthly_at = m.at.clone();
        }
        if let Some(c) = &s.cron {
            form.cron = c.clone();
        }
        form.time_zone = spec.time_zone.clone();
        let dst = spec.daylight_saving.unwrap_or_default();
        form.repeated_time = Some(
            dst.repeated_time
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
        );
        form.skipped_time = Some(
            dst.skipped_time
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
        );
        form.pod_template = Some(
            spec.pod_template
                .as_ref()
                .and_then(|t| serde_yaml::to_string(&t.0).ok())
                .unwrap_or_default(),
        );
        form.parameters = Some(if spec.parameters.is_empty() {
            String::new()
        } else {
            serde_yaml::to_string(&spec.parameters).unwrap_or_default()
        });
        form.suspend = spec.suspend;
        let script = &spec.script;
        if let Some(inline) = &script.inline {
            form.script_kind = "inline".into();
            form.script_inline = inline.clone();
        } else if let Some(command) = &script.command {
            form.script_kind = "command".into();
            form.script_command = command.join("\n");
        } else if let Some(file) = &script.file {
            form.script_kind = "file".into();
            form.script_file = file.clone();
        } else if let Some(cm) = &script.config_map {
            form.script_kind = "configMap".into();
            form.configmap_name = cm.name.clone();
            form.configmap_key = cm.key.clone();
        }
        form.image = spec.image.clone().unwrap_or_default();
        form.concurrency_policy = spec.concurrency_policy.as_str().to_owned();
        form.starting_deadline_seconds = spec
            .starting_deadline_seconds
            .map(|v| v.to_string())
            .unwrap_or_default();
        form.active_deadline_seconds = spec
            .active_deadline_seconds
            .map(|v| v.to_string())
            .unwrap_or_default();
        form
    }

    /// The spec the form describes, on top of `base` (an edited job keeps the fields the form does not
    /// show, such as env and resources). Errors use the API's field paths; run [`jtp_crds::validate`]
    /// on the result too (or use [`JobForm::checked`], which does both).
    pub fn to_spec(&self, base: Option<&ScheduledJobSpec>) -> Result<ScheduledJobSpec, Vec<FieldError>> {
        let (spec, errors) = self.parse(base);
        if errors.is_empty() { Ok(spec) } else { Err(errors) }
    }

    /// The spec and every problem with the form at once: what does not parse (a number that is not
    /// one), and what the validation of the rest finds (an invalid name, time or zone), so the user
    /// fixes everything in one round. A validation error of a part that did not parse is left out:
    /// it would only repeat the first.
    pub fn checked(&self, base: Option<&ScheduledJobSpec>) -> Result<ScheduledJobSpec, Vec<FieldError>> {
        let (spec, mut errors) = self.parse(base);
        if let Err(more) = validate_job(&self.namespace, &self.name, &spec) {
            let schedule_failed = errors.iter().any(|e| e.field.starts_with("spec.schedule"));
            let shown: Vec<&'static str> = errors.iter().filter_map(|e| form_field(&e.field)).collect();
            errors.extend(more.into_iter().filter(|e| {
                let repeats_schedule = schedule_failed && e.field.starts_with("spec.schedule");
                let repeats_field = form_field(&e.field).is_some_and(|f| shown.contains(&f));
                !repeats_schedule && !repeats_field
            }));
        }
        if errors.is_empty() { Ok(spec) } else { Err(errors) }
    }

    pub(crate) fn parse(&self, base: Option<&ScheduledJobSpec>) -> (ScheduledJobSpec, Vec<FieldError>) {
        let mut errors = Vec::new();
        let mut spec = base
            .cloned()
            .unwrap_or_else(|| ScheduledJobSpec::with_schedule(Schedule::default()));
        spec.schedule = self.schedule(&mut errors);
        spec.time_zone = self.time_zone.trim().to_owned();
        if self.repeated_time.is_some() || self.skipped_time.is_some() {
            spec.daylight_saving = self.daylight_saving(spec.daylight_saving, &mut errors);
        }
        if let Some(typed) = &self.pod_template {
            spec.pod_template = pod_template(typed, &mut errors);
        }
        if let Some(typed) = &self.parameters {
            spec.parameters = parameters(typed, &mut errors);
        }
        spec.suspend = self.suspend;
        spec.description = non_empty(&self.description);
        if spec
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 1024)
        {
            errors.push(FieldError::new(
                "spec.description",
                "keep the description under 1024 characters",
            ));
        }
        spec.script = self.script(&mut errors);
        spec.image = non_empty(self.image.trim());
        spec.concurrency_policy = match self.concurrency_policy.as_str() {
            "Allow" => ConcurrencyPolicy::Allow,
            "Replace" => ConcurrencyPolicy::Replace,
            "Forbid" | "" => ConcurrencyPolicy::Forbid,
            other => {
                errors.push(FieldError::new(
                    "spec.concurrencyPolicy",
                    format!("\"{other}\" is not a policy: choose Allow, Forbid or Replace"),
                ));
                ConcurrencyPolicy::Forbid
            }
        };
        spec.starting_deadline_seconds = optional_int(
            "spec.startingDeadlineSeconds",
            &self.starting_deadline_seconds,
            &mut errors,
        );
        spec.active_deadline_seconds = optional_int(
            "spec.activeDeadlineSeconds",
            &self.active_deadline_seconds,
            &mut errors,
        );
        (spec, errors)
    }

    /// The DST policy chosen; a field not sent keeps `base`'s choice, both defaults is none.
    fn daylight_saving(
        &self,
        base: Option<DaylightSaving>,
        errors: &mut Vec<FieldError>,
    ) -> Option<DaylightSaving> {
        let base = base.unwrap_or_default();
        let repeated_time = match self.repeated_time.as_deref().map(str::trim) {
            None => base.repeated_time,
            Some("") => None,
            Some("First") => Some(RepeatedTime::First),
            Some("Second") => Some(RepeatedTime::Second),
            Some("Both") => Some(RepeatedTime::Both),
            Some(other) => {
                errors.push(FieldError::new(
                    "spec.daylightSaving.repeatedTime",
                    format!("\"{other}\" is not a choice: First, Second or Both"),
                ));
                None
            }
        };
        let skipped_time = match self.skipped_time.as_deref().map(str::trim) {
            None => base.skipped_time,
            Some("") => None,
            Some("EndOfGap") => Some(SkippedTime::EndOfGap),
            Some("Skip") => Some(SkippedTime::Skip),
            Some(other) => {
                errors.push(FieldError::new(
                    "spec.daylightSaving.skippedTime",
                    format!("\"{other}\" is not a choice: EndOfGap or Skip"),
                ));
                None
            }
        };
        let chosen = DaylightSaving {
            repeated_time,
            skipped_time,
        };
        (chosen != DaylightSaving::default()).then_some(chosen)
    }

    fn schedule(&self, errors: &mut Vec<FieldError>) -> Schedule {
        let mut schedule = Schedule::default();
        match self.schedule_type.as_str() {
            "interval" => {
                let every = parse_num::<u64>(
                    "spec.schedule.interval.every",
                    &self.interval_every,
                    "a whole number of units, e.g. 15",
                    errors,
                );
                let unit = match self.interval_unit.as_str() {
                    "seconds" => Some(IntervalUnit::Seconds),
                    "minutes" => Some(IntervalUnit::Minutes),
                    "hours" => Some(IntervalUnit::Hours),
                    "days" => Some(IntervalUnit::Days),
                    other => {
                        errors.push(FieldError::new(
                            "spec.schedule.interval.unit",
                            format!("\"{other}\" is not a unit: choose seconds, minutes, hours or days"),
                        ));
                        None
                    }
                };
                if let (Some(every), Some(unit)) = (every, unit) {
                    if every == 0 {
                        errors.push(FieldError::new(
                            "spec.schedule.interval.every",
                            "an interval of 0 never advances: use 1 or more",
                        ));
                    }
                    schedule.interval = Some(IntervalSchedule { every, unit });
                }
            }
            "hourly" => {
                if let Some(minute) =
                    parse_num::<u32>("spec.schedule.hourly.minute", &self.hourly_minute, "0 to 59", errors)
                {
                    schedule.hourly = Some(HourlySchedule { minute });
                }
            }
            "daily" => {
                schedule.daily = Some(DailySchedule {
                    at: wall_time(&self.daily_at),
                })
            }
            "weekly" => {
                let mut on = Vec::new();
                for day in &self.weekly_on {
                    match Weekday::parse(day) {
                        Some(d) if !on.contains(&d) => on.push(d),
                        Some(_) => {}
                        None => errors.push(FieldError::new(
                            "spec.schedule.weekly.days",
                            format!("\"{day}\" is not a weekday"),
                        )),
                    }
                }
                on.sort();
                schedule.weekly = Some(WeeklySchedule {
                    days: on,
                    at: wall_time(&self.weekly_at),
                });
            }
            "monthly" => {
                if let Some(day) = parse_num::<u32>("spec.schedule.monthly.day", &self.monthly_day, "1 to 31", errors)
                {
                    schedule.monthly = Some(MonthlySchedule {
                        day,
                        at: wall_time(&self.monthly_at),
                    });
                }
            }
            "cron" => {
                if self.cron.trim().is_empty() {
                    errors.push(FieldError::new(
                        "spec.schedule.cron",
                        "write a 5-field cron expression, e.g. \"*/5 * * * *\"",
                    ));
                } else {
                    schedule.cron = Some(self.cron.trim().to_owned());
                }
            }
            "manual" => schedule.manual = Some(ManualSchedule {}),
            other => errors.push(FieldError::new(
                "spec.schedule",
                format!(
                    "choose a schedule: interval, hourly, daily, weekly, monthly, cron or manual (got \"{other}\")"
                ),
            )),
        }
        schedule
    }

    fn script(&self, errors: &mut Vec<FieldError>) -> Script {
        let mut script = Script::default();
        match self.script_kind.as_str() {
            "inline" => {
                // Browsers send CRLF line ends; a shell reads the CR as part of the command.
                script.inline = Some(self.script_inline.replace("\r\n", "\n"));
            }
            "command" => {
                let args: Vec<String> = self
                    .script_command
                    .lines()
                    .map(|l| l.trim_end_matches('\r').to_owned())
                    .filter(|l| !l.trim().is_empty())
                    .collect();
                script.command = Some(args);
            }
            "file" => script.file = Some(self.script_file.trim().to_owned()),
            "configMap" => {
                script.config_map = Some(ConfigMapScript {
                    name: self.configmap_name.trim().to_owned(),
                    key: self.configmap_key.trim().to_owned(),
                })
            }
            other => errors.push(FieldError::new(
                "spec.script",
                format!("choose what runs: inline, command, file or configMap (got \"{other}\")"),
            )),
        }
        script
    }
}

/// A wall time as the spec takes it: `9:00` is `09:00` (the hour's leading zero is optional in
/// the form); anything else is passed on for the validation to judge.
fn wall_time(typed: &str) -> String {
    let t = typed.trim();
    match t.split_once(':') {
        Some((h, m)) if h.len() == 1 && h.bytes().all(|b| b.is_ascii_digit()) => format!("0{h}:{m}"),
        _ => t.to_owned(),
    }
}

/// The pod template typed as YAML (a mapping with `metadata` and/or `spec`), or none when empty.
/// What is inside is checked by [`jtp_crds::validate`], each problem at its path.
fn pod_template(typed: &str, errors: &mut Vec<FieldError>) -> Option<PodTemplate> {
    typed_yaml(
        "spec.podTemplate",
        typed,
        serde_json::Value::is_object,
        "write a mapping with metadata and/or spec, as in a CronJob's jobTemplate.spec.template",
        errors,
    )
    .map(PodTemplate)
}

/// A field typed as YAML: `None` when left empty, or (with the error at `field`) when it is not
/// YAML or not of the `shape` `hint` asks for.
fn typed_yaml(
    field: &str,
    typed: &str,
    shape: fn(&serde_json::Value) -> bool,
    hint: &str,
    errors: &mut Vec<FieldError>,
) -> Option<serde_json::Value> {
    if typed.trim().is_empty() {
        return None;
    }
    match serde_yaml::from_str::<serde_json::Value>(typed) {
        Ok(value) if shape(&value) => Some(value),
        Ok(_) => {
            errors.push(FieldError::new(field, hint));
            None
        }
        Err(e) => {
            errors.push(FieldError::new(field, format!("not YAML: {e}")));
            None
        }
    }
}

/// The parameters typed as a YAML list of `{name, description, default, allowed, pattern}`, or none
/// when empty. A misspelt key is refused at its path (`spec.parameters[0].defualt`), with the
/// nearest known one; the values are checked by [`jtp_crds::validate`].
fn parameters(typed: &str, errors: &mut Vec<FieldError>) -> Vec<Parameter> {
    let Some(value) = typed_yaml(
        "spec.parameters",
        typed,
        serde_json::Value::is_array,
        "write a list, one \"- name: …\" item per parameter",
        errors,
    ) else {
        return Vec::new();
    };
    let unknown =
        jtp_crds::admission::unknown_spec_fields("spec", &serde_json::json!({ "parameters": value }));
    if !unknown.is_empty() {
        errors.extend(unknown);
        return Vec::new();
    }
    serde_path_to_error::deserialize(&value).unwrap_or_else(|e| {
        let field = match e.path().to_string() {
            path if path == "." => "spec.parameters".to_owned(),
            path => format!("spec.parameters{path}"),
        };
        let mut message = e.into_inner().to_string();
        if message.contains("expected a string") {
            message.push_str(": put the value in quotes");
        }
        errors.push(FieldError::new(field, message));
        Vec::new()
    })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_owned())
}

fn parse_num<T: std::str::FromStr>(
    field: &str,
    value: &str,
    hint: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    match value.trim().parse() {
        Ok(v) => Some(v),
        Err(_) => {
            errors.push(FieldError::new(
                field,
                format!("\"{value}\" is not a number: write {hint}"),
            ));
            None
        }
    }
}

fn optional_int(field: &str, value: &str, errors: &mut Vec<FieldError>) -> Option<i64> {
    if value.trim().is_empty() {
        return None;
    }
    parse_num(
        field,
        value,
        "a whole number of seconds, or leave it empty",
        errors,
    )
}

/// Name and namespace checks plus [`jtp_crds::validate`]: every problem, not just the first.
pub fn validate_job(namespace: &str, name: &str, spec: &ScheduledJobSpec) -> Result<(), Vec<FieldError>> {
    jtp_crds::admission::validate_object(namespace, name, spec)
        .map(|_| ())
        .map_err(|invalid| invalid.errors)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_round_trips_through_the_form() {
        for spec in [
            ScheduledJobSpec::daily("09:00"),
            ScheduledJobSpec::interval(15, IntervalUnit::Minutes),
            ScheduledJobSpec::hourly(30),
            ScheduledJobSpec::weekly(&[Weekday::Monday, Weekday::Friday], "08:30"),
            ScheduledJobSpec::monthly(31, "23:00"),
            ScheduledJobSpec::cron("*/5 * * * *").in_zone("Europe/London"),
            ScheduledJobSpec::manual(),
        ] {
            let form = JobForm::from_spec("default", "job", &spec);
            assert_eq!(form.to_spec(None).unwrap(), spec, "{form:?}");
        }
    }

    #[test]
    fn the_dst_policy_and_the_pod_template_round_trip_and_are_kept_when_not_sent() {
        let mut spec = ScheduledJobSpec::cron("*/30 * * * *").in_zone("America/New_York");
        spec.daylight_saving = Some(DaylightSaving {
            repeated_time: Some(RepeatedTime::First),
            skipped_time: None,
        });
        spec.pod_template = Some(PodTemplate(serde_json::json!({
            "spec": { "nodeSelector": { "disk": "ssd" } }
        })));
        let form = JobForm::from_spec("default", "job", &spec);
        assert_eq!(form.repeated_time.as_deref(), Some("First"));
        assert_eq!(form.to_spec(None).unwrap(), spec, "{form:?}");

        // A request without the fields (an API client's form post) keeps the job's own.
        let mut bare = form.clone();
        bare.repeated_time = None;
        bare.skipped_time = None;
        bare.pod_template = None;
        assert_eq!(bare.to_spec(Some(&spec)).unwrap(), spec);
        // Sent empty, they are cleared.
        let mut cleared = form;
        cleared.repeated_time = Some(String::new());
        cleared.pod_template = Some("  \n".into());
        let spec = cleared.to_spec(Some(&spec)).unwrap();
        assert_eq!(spec.daylight_saving, None);
        assert_eq!(spec.pod_template, None);
    }

    #[test]
    fn a_bad_pod_template_or_dst_choice_is_a_field_error_with_its_path() {
        let mut form = JobForm::new_job("default");
        form.name = "job".into();
        form.script_inline = "echo".into();
        form.repeated_time = Some("Twice".into());
        form.pod_template = Some("spec: [unclosed".into());
        let errors = form.checked(None).unwrap_err();
        let shown = FormErrors::from_field_errors(&errors);
        assert!(
            shown.get("repeated_time").contains("First, Second or Both"),
            "{shown:?}"
        );
        assert!(shown.get("pod_template").contains("not YAML"), "{shown:?}");

        form.repeated_time = Some(String::new());
        form.pod_template = Some("spec:\n  containers:\n    - name: run\n      imagee: x\n".into());
        let errors = form.checked(None).unwrap_err();
        let shown = FormErrors::from_field_errors(&errors);
        assert!(
            shown
                .get("pod_template")
                .contains("spec.podTemplate.spec.containers[0].imagee"),
            "{shown:?}"
        );
        assert!(shown.general.is_empty(), "{shown:?}");
    }

    #[test]
    fn parameters_round_trip_and_are_kept_when_not_sent() {
        let spec = ScheduledJobSpec::manual()
            .parameter_one_of("REGION", Some("eu"), &["eu", "us"])
            .parameter_matching("TICKET", "[A-Z]+-[0-9]+");
        let form = JobForm::from_spec("default", "job", &spec);
        assert!(form.parameters_shown().contains("name: REGION"), "{form:?}");
        assert_eq!(form.to_spec(None).unwrap(), spec, "{form:?}");
        let mut bare = form.clone();
        bare.parameters = None;
        assert_eq!(bare.to_spec(Some(&spec)).unwrap(), spec);
        let mut cleared = form;
        cleared.parameters = Some(" \n".into());
        assert!(cleared.to_spec(Some(&spec)).unwrap().parameters.is_empty());
        // A new job's form shows none.
        assert_eq!(JobForm::new_job("default").parameters_shown(), "");
    }

    #[test]
    fn bad_parameters_are_field_errors_with_their_path() {
        let mut form = JobForm::new_job("default");
        form.name = "job".into();
        form.script_inline = "echo".into();
        let shown = |form: &JobForm| FormErrors::from_field_errors(&form.checked(None).unwrap_err());

        form.parameters = Some("- name: REGION\n  defualt: eu\n".into());
        let errors = shown(&form);
        assert_eq!(
            errors.get("parameters"),
            "spec.parameters[0].defualt: unknown field, did you mean default?",
            "{errors:?}"
        );
        form.parameters = Some("- name: [unclosed".into());
        assert!(shown(&form).get("parameters").contains("not YAML"));
        form.parameters = Some("name: REGION".into());
        assert!(shown(&form).get("parameters").contains("write a list"));
        form.parameters = Some("- name: COUNT\n  default: 5\n".into());
        let errors = shown(&form);
        assert!(
            errors
                .get("parameters")
                .starts_with("spec.parameters[0].default: invalid type"),
            "{errors:?}"
        );
        assert!(
            errors.get("parameters").ends_with("put the value in quotes"),
            "{errors:?}"
        );
        // What parses is validated: a scheduled job's parameter needs a default, a name its form.
        form.parameters = Some("- name: region\n- name: TICKET\n".into());
        let errors = shown(&form);
        let text = errors.get("parameters");
        assert!(text.contains("spec.parameters[0].name"), "{errors:?}");
        assert!(text.contains("spec.parameters[1]"), "{errors:?}");
        assert!(errors.general.is_empty(), "{errors:?}");
    }

    #[test]
    fn repeated_weekdays_are_all_read() {
        let form = JobForm::from_urlencoded(
            b"name=a&schedule_type=weekly&weekly_on=monday&weekly_on=friday&weekly_at=09%3A00&time_zone=UTC&script_kind=inline&script_inline=echo",
        );
        let spec = form.to_spec(None).unwrap();
        let weekly = spec.schedule.weekly.unwrap();
        assert_eq!(weekly.days, vec![Weekday::Monday, Weekday::Friday]);
    }

    #[test]
    fn errors_land_next_to_their_field() {
        let mut form = JobForm::new_job("default");
        form.name = "Bad Name".into();
        form.daily_at = "25:00".into();
        form.time_zone = "Mars/Base".into();
        form.script_inline = "echo".into();
        let spec = form.to_spec(None).unwrap();
        let errors = validate_job("default", &form.name, &spec).unwrap_err();
        let shown = FormErrors::from_field_errors(&errors);
        assert!(shown.has("name"), "{shown:?}");
        assert!(shown.has("daily_at"), "{shown:?}");
        assert!(shown.has("time_zone"), "{shown:?}");
        assert!(shown.general.is_empty(), "{shown:?}");
    }

    #[test]
    fn non_numbers_are_field_errors() {
        let mut form = JobForm::new_job("default");
        form.schedule_type = "interval".into();
        form.interval_every = "often".into();
        let errors = form.to_spec(None).unwrap_err();
        assert_eq!(errors[0].field, "spec.schedule.interval.every");
    }
}
