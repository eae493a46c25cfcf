//! The one validation function that the operator, the portal and the CLI all call. It repeats the
//! schema's rules (so a row written without the API server is held to them too) and adds what a
//! schema cannot check: a known time-zone name, a cron expression that parses.

use crate::schedule::{CompiledSchedule, JobId};
use crate::types::ScheduledJobSpec;
use serde::Serialize;
use std::fmt;

/// One problem, located by the field path a user wrote (`spec.schedule.daily.at`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A spec that cannot be scheduled, with every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
pub struct InvalidSpec {
    pub errors: Vec<FieldError>,
}

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        write!(f, "invalid ScheduledJob: {}", lines.join("; "))
    }
}

/// The longest argument Linux passes to a program (`MAX_ARG_STRLEN`, 32 pages, less the final
/// NUL byte): an inline script is one argument of `sh -c`.
pub const MAX_ARGUMENT_BYTES: usize = 32 * 4096 - 1;

/// The longest description, as the CRD's `maxLength` says.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;

/// Checks job `job`'s spec; on success returns its compiled schedule, ready to use.
pub fn validate(job: JobId<'_>, spec: &ScheduledJobSpec) -> Result<CompiledSchedule, InvalidSpec> {
    let mut errors = Vec::new();
    let compiled = CompiledSchedule::new(job, spec)
        .map_err(|e| errors.extend(e.errors))
        .ok();

    let script = &spec.script;
    let scripts = [
        script.inline.is_some(),
        script.config_map.is_some(),
        script.command.is_some(),
        script.file.is_some(),
    ];
    if scripts.into_iter().filter(|set| *set).count() != 1 {
        errors.push(FieldError::new(
            "spec.script",
            "set exactly one of script.inline, script.configMap, script.command or script.file",
        ));
    }
    if script.inline.as_deref().is_some_and(|s| s.trim().is_empty()) {
        errors.push(FieldError::new(
            "spec.script.inline",
            "the inline script is empty",
        ));
    }
    if script
        .command
        .as_ref()
        .is_some_and(|c| c.first().is_none_or(|p| p.is_empty()))
    {
        errors.push(FieldError::new(
            "spec.script.command",
            "name a program as the command's first item",
        ));
    }
    if let Some(cm) = &script.config_map
        && (cm.name.is_empty() || cm.key.is_empty())
    {
        errors.push(FieldError::new(
            "spec.script.configMap",
            "name both the ConfigMap and its key",
        ));
    }
    if let Some(key) = script
        .config_map
        .as_ref()
        .map(|cm| cm.key.as_str())
        .filter(|k| !k.is_empty())
        && let Some(error) = crate::admission::check_config_map_key("spec.script.configMap.key", key)
    {
        errors.push(error);
    }
    if script
        .inline
        .as_ref()
        .is_some_and(|s| s.len() > MAX_ARGUMENT_BYTES)
    {
        errors.push(FieldError::new(
            "spec.script.inline",
            format!(
                "the inline script has more than {MAX_ARGUMENT_BYTES} bytes, more than one argument \
                 of a program may hold: put it in a ConfigMap or a script file"
            ),
        ));
    }
    for (i, arg) in script.command.iter().flatten().enumerate() {
        if arg.len() > MAX_ARGUMENT_BYTES {
            errors.push(FieldError::new(
                format!("spec.script.command[{i}]"),
                format!("more than {MAX_ARGUMENT_BYTES} bytes, more than one argument may hold"),
            ));
        }
    }
    if spec
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        errors.push(FieldError::new(
            "spec.description",
            format!("at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if script.file.as_deref().is_some_and(str::is_empty) {
        errors.push(FieldError::new("spec.script.file", "name the script file"));
    }
    for (i, var) in spec.env.iter().enumerate() {
        let ok = var
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && var.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            errors.push(FieldError::new(
                format!("spec.env[{i}].name"),
                format!(
                    "\"{}\" is not a variable name: use letters, digits and _, not starting with a digit",
                    var.name
                ),
            ));
        }
    }
    errors.extend(crate::parameters::check(spec));
    errors.extend(crate::pod::check(spec));
    for (field, value, min) in [
        ("spec.startingDeadlineSeconds", spec.starting_deadline_seconds, 0),
        ("spec.activeDeadlineSeconds", spec.active_deadline_seconds, 1),
        ("spec.backoffLimit", spec.backoff_limit.map(i64::from), 0),
        (
            "spec.successfulJobsHistoryLimit",
            spec.successful_jobs_history_limit.map(i64::from),
            0,
        ),
        (
            "spec.failedJobsHistoryLimit",
            spec.failed_jobs_history_limit.map(i64::from),
            0,
        ),
    ] {
        if value.is_some_and(|v| v < min) {
            errors.push(FieldError::new(field, format!("must be at least {min}")));
        }
    }
    if let Some(retention) = &spec.retention {
        errors.extend(retention.check("spec.retention"));
    }
    if let Some(within) = &spec.expect_success_within {
        errors.extend(crate::alerting::check_expectation(
            within,
            "spec.expectSuccessWithin",
        ));
    }
    if let Some(notifications) = &spec.notifications {
        errors.extend(notifications.check("spec.notifications"));
    }
    if let Some(retries) = &spec.retries {
        errors.extend(retries.check("spec.retries"));
    }
    if spec.pause_after_consecutive_failures == Some(0) {
        errors.push(FieldError::new(
            "spec.pauseAfterConsecutiveFailures",
            "must be at least 1 (leave it out to never pause)",
        ));
    }
    match compiled {
        Some(compiled) if errors.is_empty() => Ok(compiled),
        _ => Err(InvalidSpec { errors }),
    }
}
