//! `spec.parameters`: values a person gives a manual run (Run Now), each passed to the script as
//! the environment variable of its name. The declarations' checks (called by
//! [`crate::validate()`]) and [`resolve`], the one function that turns the values someone supplied
//! into the values a run gets, in both modes and in the portal.

use crate::types::ScheduledJobSpec;
use crate::validate::FieldError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The values of a run's parameters, by name (sorted, so they read and compare the same everywhere).
pub type ParameterValues = BTreeMap<String, String>;

/// What a parameter's name must look like: an environment variable name in capitals.
pub const PARAMETER_NAME_PATTERN: &str = r"^[A-Z_][A-Z0-9_]*$";
/// The longest parameter name.
pub const MAX_PARAMETER_NAME_CHARS: usize = 63;
/// The most parameters a job may declare.
pub const MAX_PARAMETERS: usize = 32;
/// The longest value (default, allowed value or supplied value), in characters.
pub const MAX_VALUE_CHARS: usize = 1024;
/// The most allowed values of one parameter.
pub const MAX_ALLOWED_VALUES: usize = 64;
/// The longest `pattern`.
pub const MAX_PATTERN_CHARS: usize = 256;
/// Names the runner and the operator set themselves start with this; no parameter may.
pub const RESERVED_PREFIX: &str = "JTP_";
/// The most memory a compiled pattern may take (the regex crate's size limit): enough for any
/// pattern of [`MAX_PATTERN_CHARS`] a person writes, small enough that a hostile one is refused.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// One value a person may give a manual run, passed to the script as the environment variable
/// `name`. Scheduled runs get the `default`; so does a Run Now that leaves the parameter out.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    /// The environment variable's name: capitals, digits and `_`, not starting with a digit nor
    /// with `JTP_`, and not one of `spec.env`'s names.
    #[schemars(length(min = 1, max = 63), regex(pattern = PARAMETER_NAME_PATTERN))]
    pub name: String,
    /// Help text shown next to the field of the Run Now form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// The value when none is given (and of every scheduled run). Required for jobs on a
    /// schedule; without it a manual job's Run Now must give a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub default: Option<String>,
    /// The only values accepted (the portal offers them in a list); not with `pattern`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub allowed: Vec<String>,
    /// A regular expression (Rust `regex` syntax) the whole value must match, as if written
    /// between `^` and `$`; not with `allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub pattern: Option<String>,
}

/// Supplied values that a run cannot take, with every problem found. Fields are
/// `parameters.<NAME>`, as in the JSON API's body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
pub struct InvalidParameters {
    pub errors: Vec<FieldError>,
}

impl fmt::Display for InvalidParameters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        write!(f, "invalid parameters: {}", lines.join("; "))
    }
}

/// The field path of a supplied value (`parameters.REGION`).
pub fn value_field(name: &str) -> String {
    format!("parameters.{name}")
}

fn is_parameter_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(text) => {
                format!(
                    "not a regular expression: {}",
                    text.lines().last().unwrap_or("").trim()
                )
            }
            regex::Error::CompiledTooBig(_) => "the pattern is too large".to_owned(),
            _ => "not a regular expression".to_owned(),
        })
}

/// What a value breaks of `rule` (already-compiled `pattern`), or `None`.
fn value_problem(rule: &Parameter, pattern: Option<&regex::Regex>, value: &str) -> Option<String> {
    if value.chars().count() > MAX_VALUE_CHARS {
        return Some(format!("at most {MAX_VALUE_CHARS} characters"));
    }
    if value.contains('\0') {
        return Some("an environment variable cannot hold a NUL character".to_owned());
    }
    if !rule.allowed.is_empty() && !rule.allowed.iter().any(|a| a == value) {
        let list: Vec<String> = rule.allowed.iter().map(|a| format!("{a:?}")).collect();
        return Some(format!(
            "{value:?} is not allowed: use one of {}",
            list.join(", ")
        ));
    }
    if let (Some(re), Some(text)) = (pattern, &rule.pattern)
        && !re.is_match(value)
    {
        if value.is_empty() {
            return Some(format!("give a value: it must match the pattern {text}"));
        }
        return Some(format!("{value:?} does not match the pattern {text}"));
    }
    None
}

/// Problems of `spec.parameters`, located at their paths (`spec.parameters[1].default`).
pub fn check(spec: &ScheduledJobSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let declared = &spec.parameters;
    if declared.len() > MAX_PARAMETERS {
        errors.push(FieldError::new(
            "spec.parameters",
            format!("at most {MAX_PARAMETERS} parameters (got {})", declared.len()),
        ));
    }
    let scheduled = spec.schedule.manual.is_none();
    for (i, rule) in declared.iter().enumerate() {
        let at = |field: &str| format!("spec.parameters[{i}].{field}");
        let name = rule.name.as_str();
        if !is_parameter_name(name) || name.len() > MAX_PARAMETER_NAME_CHARS {
            errors.push(FieldError::new(
                at("name"),
                format!(
                    "{name:?} is not a parameter name: use capitals, digits and _ (an environment \
                     variable's name), not starting with a digit, at most {MAX_PARAMETER_NAME_CHARS} characters"
                ),
            ));
        } else if name.starts_with(RESERVED_PREFIX) {
            errors.push(FieldError::new(
                at("name"),
                format!("{name:?} starts with {RESERVED_PREFIX}, which the runner's own variables use"),
            ));
        } else if declared[..i].iter().any(|p| p.name == name) {
            errors.push(FieldError::new(at("name"), format!("{name:?} is declared twice")));
        } else if spec.env.iter().any(|v| v.name == name) {
            errors.push(FieldError::new(
                at("name"),
                format!("{name:?} is also in spec.env: a variable comes from one of the two"),
            ));
        }
        if rule
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > crate::validate::MAX_DESCRIPTION_CHARS)
        {
            errors.push(FieldError::new(
                at("description"),
                format!("at most {} characters", crate::validate::MAX_DESCRIPTION_CHARS),
            ));
        }
        if !rule.allowed.is_empty() && rule.pattern.is_some() {
            errors.push(FieldError::new(at("pattern"), "set allowed or pattern, not both"));
        }
        if rule.allowed.len() > MAX_ALLOWED_VALUES {
            errors.push(FieldError::new(
                at("allowed"),
                format!("at most {MAX_ALLOWED_VALUES} values"),
            ));
        }
        for (j, value) in rule.allowed.iter().enumerate() {
            let plain = Parameter {
                allowed: Vec::new(),
                pattern: None,
                ..rule.clone()
            };
            if let Some(problem) = value_problem(&plain, None, value) {
                errors.push(FieldError::new(at(&format!("allowed[{j}]")), problem));
            } else if rule.allowed[..j].contains(value) {
                errors.push(FieldError::new(
                    at(&format!("allowed[{j}]")),
                    format!("{value:?} is listed twice"),
                ));
            }
        }
        let pattern = match &rule.pattern {
            Some(p) if p.chars().count() > MAX_PATTERN_CHARS => {
                errors.push(FieldError::new(
                    at("pattern"),
                    format!("at most {MAX_PATTERN_CHARS} characters"),
                ));
                None
            }
            Some(p) => compile(p)
                .map_err(|message| errors.push(FieldError::new(at("pattern"), message)))
                .ok(),
            None => None,
        };
        match &rule.default {
            Some(value) => {
                let unreadable = rule.pattern.is_some() && pattern.is_none();
                if !unreadable && let Some(problem) = value_problem(rule, pattern.as_ref(), value) {
                    errors.push(FieldError::new(at("default"), format!("the default: {problem}")));
                }
            }
            None if scheduled => errors.push(FieldError::new(
                at("default"),
                "a job on a schedule needs a default for each parameter: scheduled runs use the \
                 defaults (make the job manual to require a value at every Run Now)",
            )),
            None => {}
        }
    }
    errors
}

/// The values a run gets from the values someone `supplied`: each declared parameter's supplied
/// value, else its default. Refused, with every problem at once: a name the job does not declare,
/// a missing value without default, a value that breaks its parameter's rules. A scheduled run
/// resolves an empty map (its defaults). An invalid declaration (see [`check`]) refuses its values.
pub fn resolve(
    declared: &[Parameter],
    supplied: &ParameterValues,
) -> Result<ParameterValues, InvalidParameters> {
    let mut errors = Vec::new();
    for name in supplied.keys() {
        if !declared.iter().any(|p| &p.name == name) {
            let message = if declared.is_empty() {
                "the job declares no parameters".to_owned()
            } else {
                let names: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
                format!(
                    "the job has no parameter {name:?}: it declares {}",
                    names.join(", ")
                )
            };
            errors.push(FieldError::new(value_field(name), message));
        }
    }
    let mut values = ParameterValues::new();
    for rule in declared {
        let field = value_field(&rule.name);
        let Some(value) = supplied.get(&rule.name).or(rule.default.as_ref()) else {
            errors.push(FieldError::new(
                field,
                "give a value: this parameter has no default",
            ));
            continue;
        };
        let pattern = match rule.pattern.as_deref().map(compile).transpose() {
            Ok(pattern) => pattern,
            Err(message) => {
                errors.push(FieldError::new(
                    field,
                    format!("the job's pattern is invalid: {message}"),
                ));
                continue;
            }
        };
        if let Some(problem) = value_problem(rule, pattern.as_ref(), value) {
            errors.push(FieldError::new(field, problem));
            continue;
        }
        values.insert(rule.name.clone(), value.clone());
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(InvalidParameters { errors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ManualSchedule, Schedule};

    fn param(name: &str) -> Parameter {
        Parameter {
            name: name.into(),
            description: None,
            default: None,
            allowed: Vec::new(),
            pattern: None,
        }
    }

    fn manual(parameters: Vec<Parameter>) -> ScheduledJobSpec {
        let mut spec = ScheduledJobSpec::with_schedule(Schedule {
            manual: Some(ManualSchedule {}),
            ..Schedule::default()
        });
        spec.parameters = parameters;
        spec
    }

    fn values(pairs: &[(&str, &str)]) -> ParameterValues {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_missing_value_takes_the_default_and_a_given_one_wins() {
        let declared = [
            Parameter {
                default: Some("eu".into()),
                allowed: vec!["eu".into(), "us".into()],
                ..param("REGION")
            },
            Parameter {
                default: Some("10".into()),
                pattern: Some("[0-9]+".into()),
                ..param("LIMIT")
            },
        ];
        assert_eq!(
            resolve(&declared, &values(&[("LIMIT", "250")])),
            Ok(values(&[("LIMIT", "250"), ("REGION", "eu")]))
        );
        assert_eq!(
            resolve(&declared, &ParameterValues::new()),
            Ok(values(&[("LIMIT", "10"), ("REGION", "eu")]))
        );
    }

    #[test]
    fn unknown_names_missing_values_and_broken_rules_are_all_refused_at_once() {
        let declared = [
            param("TICKET"),
            Parameter {
                allowed: vec!["eu".into(), "us".into()],
                default: Some("eu".into()),
                ..param("REGION")
            },
            Parameter {
                pattern: Some("[0-9]+".into()),
                default: Some("1".into()),
                ..param("LIMIT")
            },
        ];
        let supplied = values(&[("REGION", "asia"), ("LIMIT", "12a"), ("COLOUR", "red")]);
        let err = resolve(&declared, &supplied).expect_err("refused");
        assert_eq!(
            fields(&err.errors),
            [
                "parameters.COLOUR",
                "parameters.TICKET",
                "parameters.REGION",
                "parameters.LIMIT"
            ]
        );
        assert_eq!(
            err.errors[0].message,
            "the job has no parameter \"COLOUR\": it declares TICKET, REGION, LIMIT"
        );
        assert_eq!(
            err.errors[1].message,
            "give a value: this parameter has no default"
        );
        assert_eq!(
            err.errors[2].message,
            "\"asia\" is not allowed: use one of \"eu\", \"us\""
        );
        assert_eq!(err.errors[3].message, "\"12a\" does not match the pattern [0-9]+");
    }

    #[test]
    fn the_pattern_must_match_the_whole_value() {
        let declared = [Parameter {
            pattern: Some("[a-z]+|[0-9]+".into()),
            ..param("X")
        }];
        assert!(resolve(&declared, &values(&[("X", "abc")])).is_ok());
        assert!(resolve(&declared, &values(&[("X", "42")])).is_ok());
        assert!(resolve(&declared, &values(&[("X", "abc42")])).is_err());
        let empty = resolve(&declared, &values(&[("X", "")])).expect_err("empty");
        assert_eq!(
            empty.errors[0].message,
            "give a value: it must match the pattern [a-z]+|[0-9]+"
        );
    }

    #[test]
    fn a_job_without_parameters_takes_no_values() {
        assert_eq!(resolve(&[], &ParameterValues::new()), Ok(ParameterValues::new()));
        let err = resolve(&[], &values(&[("A", "1")])).expect_err("refused");
        assert_eq!(err.errors[0].message, "the job declares no parameters");
    }

    #[test]
    fn values_that_no_environment_holds_are_refused() {
        let declared = [param("X")];
        let nul = resolve(&declared, &values(&[("X", "a\0b")])).expect_err("NUL");
        assert!(nul.errors[0].message.contains("NUL"), "{nul}");
        let long = "x".repeat(MAX_VALUE_CHARS + 1);
        assert!(resolve(&declared, &values(&[("X", &long)])).is_err());
        // Empty is a value (no pattern, no list): the variable is set and empty.
        assert_eq!(
            resolve(&declared, &values(&[("X", "")])),
            Ok(values(&[("X", "")]))
        );
    }

    #[test]
    fn declarations_are_checked_with_their_paths() {
        let mut spec = manual(vec![
            param("lower"),
            param("JTP_RUN"),
            param("DUP"),
            param("DUP"),
            param("REPORT"),
            Parameter {
                pattern: Some("([a-z]".into()),
                ..param("BAD_RE")
            },
            Parameter {
                allowed: vec!["a".into(), "a".into()],
                pattern: Some("a".into()),
                ..param("BOTH")
            },
            Parameter {
                allowed: vec!["eu".into()],
                default: Some("us".into()),
                ..param("REGION")
            },
            Parameter {
                pattern: Some("[0-9]+".into()),
                default: Some("ten".into()),
                ..param("LIMIT")
            },
        ]);
        spec.env = vec![crate::types::EnvVar {
            name: "REPORT".into(),
            value: "x".into(),
        }];
        let errors = check(&spec);
        assert_eq!(
            fields(&errors),
            [
                "spec.parameters[0].name",
                "spec.parameters[1].name",
                "spec.parameters[3].name",
                "spec.parameters[4].name",
                "spec.parameters[5].pattern",
                "spec.parameters[6].pattern",
                "spec.parameters[6].allowed[1]",
                "spec.parameters[7].default",
                "spec.parameters[8].default",
            ],
            "{errors:?}"
        );
        assert!(
            errors[4].message.starts_with("not a regular expression"),
            "{}",
            errors[4].message
        );
        assert_eq!(
            errors[7].message,
            "the default: \"us\" is not allowed: use one of \"eu\""
        );
    }

    #[test]
    fn a_scheduled_job_needs_a_default_for_each_parameter_and_a_manual_one_does_not() {
        let manual_spec = manual(vec![param("TICKET")]);
        assert!(check(&manual_spec).is_empty());
        let mut daily = crate::types::ScheduledJobSpec::with_schedule(Schedule {
            daily: Some(crate::types::DailySchedule { at: "09:00".into() }),
            ..Schedule::default()
        });
        daily.parameters = vec![param("TICKET")];
        let errors = check(&daily);
        assert_eq!(fields(&errors), ["spec.parameters[0].default"]);
    }

    #[test]
    fn a_pattern_too_large_to_compile_is_refused_not_run() {
        let spec = manual(vec![Parameter {
            pattern: Some("(a{1000}){1000}".into()),
            ..param("X")
        }]);
        let errors = check(&spec);
        assert_eq!(fields(&errors), ["spec.parameters[0].pattern"]);
        assert_eq!(errors[0].message, "the pattern is too large");
    }
}
