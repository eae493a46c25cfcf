//! **Run Now**, with the job's parameters (`spec.parameters`): the form that offers them
//! (`GET /jobs/{namespace}/{name}/run`), the button or form post (`POST` there) and the API
//! (`POST /api/v1/jobs/{namespace}/{name}/run` with `{"parameters": {...}}`).
//!
//! The values are checked here with [`jtp_crds::parameters::resolve`] against the job's spec (the
//! live resource in a cluster), so a mistake comes back next to its field (422) before anything
//! is asked; the complete values (defaults filled in) then travel with the request: standalone in
//! the job's row until the runner claims it, in a cluster in the run-now-parameters annotation,
//! which the operator checks again and turns into the Job's environment.

use crate::AppState;
use crate::auth::{CSRF_FIELD, Caller, Verb};
use crate::data;
use crate::error::{AppError, Result};
use crate::pages::Chrome;
use crate::timefmt::{self, DisplayZone};
use askama::Template;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use jtp_crds::parameters::{self, Parameter, ParameterValues};
use jtp_crds::{FieldError, ScheduledJobSpec};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

/// Prefix of the form fields that carry values: `parameters.REGION`, the same path the API's
/// field errors name.
pub const FIELD_PREFIX: &str = "parameters.";

/// A Run Now that was asked for.
pub(crate) struct RunNowAsked {
    pub at: DateTime<Utc>,
    pub parameters: ParameterValues,
    pub spec: ScheduledJobSpec,
}

impl AppState {
    /// Asks for one run of a job now, as `caller` (who needs `trigger`), with the values
    /// `supplied` for its parameters: refused with every field's problem (422) when they do not
    /// fit the job's declarations.
    pub(crate) async fn request_run_now(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        supplied: &ParameterValues,
    ) -> Result<RunNowAsked> {
        caller
            .require(self, Verb::Trigger, namespace, "run this job now")
            .await?;
        let spec = self.spec_for_edit(namespace, name).await?;
        let values =
            parameters::resolve(&spec.parameters, supplied).map_err(|e| AppError::Invalid(e.errors))?;
        let at = Utc::now();
        self.run_now(namespace, name, at, &caller.principal.requester(), &values)
            .await?;
        Ok(RunNowAsked {
            at,
            parameters: values,
            spec,
        })
    }
}

/// The body of the API's Run Now: optional, and so is each parameter with a default.
#[derive(Deserialize, Default)]
struct RunNowBody {
    #[serde(default)]
    parameters: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The values of the body's `parameters`, each of which must be a JSON string.
fn body_values(body: RunNowBody) -> Result<ParameterValues> {
    let mut values = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, value) in body.parameters.unwrap_or_default() {
        match value {
            serde_json::Value::String(text) => {
                values.insert(name, text);
            }
            other => errors.push(FieldError::new(
                parameters::value_field(&name),
                format!("give the value as a JSON string (got {other})"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(AppError::Invalid(errors))
    }
}

/// `POST /api/v1/jobs/{namespace}/{name}/run`: 202 with the instant and the values the run gets.
/// The body (`application/json`) is optional: `{"parameters": {"REGION": "eu"}}`.
pub(crate) async fn api_run_now(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let body: RunNowBody = if body.iter().all(u8::is_ascii_whitespace) {
        RunNowBody::default()
    } else {
        crate::api::parse_body(&headers, &body, &["parameters"])?
    };
    let supplied = body_values(body)?;
    let asked = state
        .request_run_now(&caller, &namespace, &name, &supplied)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "namespace": namespace,
            "name": name,
            "requestedAt": asked.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "parameters": asked.parameters,
        })),
    )
        .into_response())
}

/// One field of the Run Now form.
pub struct ParameterField {
    pub name: String,
    /// The input's id (`param-REGION`); its help is `help-<id>`, its error `error-<id>`.
    pub id: String,
    pub field: String,
    pub description: Option<String>,
    pub value: String,
    /// The allowed values, each with whether it is chosen (a list instead of a text box).
    pub options: Vec<(String, bool)>,
    pub pattern: Option<String>,
    pub default: Option<String>,
    pub error: Option<String>,
}

impl ParameterField {
    fn new(rule: &Parameter, typed: Option<&String>, errors: &BTreeMap<String, Vec<String>>) -> Self {
        let field = parameters::value_field(&rule.name);
        let value = typed.or(rule.default.as_ref()).cloned().unwrap_or_default();
        Self {
            id: format!("param-{}", rule.name),
            name: rule.name.clone(),
            description: rule.description.clone().filter(|d| !d.is_empty()),
            options: rule.allowed.iter().map(|a| (a.clone(), *a == value)).collect(),
            pattern: rule.pattern.clone(),
            default: rule.default.clone(),
            error: errors.get(&field).map(|m| m.join("; ")),
            field,
            value,
        }
    }

    /// `aria-describedby`'s ids: the help text's, and the error's when there is one.
    pub fn described_by(&self) -> String {
        match self.error {
            Some(_) => format!("help-{0} error-{0}", self.id),
            None => format!("help-{}", self.id),
        }
    }
}

#[derive(Template)]
#[template(path = "run_now.html")]
struct RunNowTemplate {
    chrome: Chrome,
    namespace: String,
    name: String,
    description: Option<String>,
    fields: Vec<ParameterField>,
    /// Problems not tied to one field (a value for a parameter the job does not declare).
    general: Vec<String>,
    has_field_errors: bool,
    csrf: String,
}

fn form_page(
    state: &AppState,
    caller: &Caller,
    (namespace, name): (&str, &str),
    spec: &ScheduledJobSpec,
    typed: &ParameterValues,
    errors: &[FieldError],
    status: StatusCode,
) -> Result<Response> {
    let mut by_field: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut general = Vec::new();
    for e in errors {
        let declared = spec
            .parameters
            .iter()
            .any(|p| parameters::value_field(&p.name) == e.field);
        if declared {
            by_field
                .entry(e.field.clone())
                .or_default()
                .push(e.message.clone());
        } else {
            general.push(e.to_string());
        }
    }
    let template = RunNowTemplate {
        chrome: Chrome::new(state, caller, DisplayZone::Job, ""),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        description: spec.description.clone().filter(|d| !d.is_empty()),
        fields: spec
            .parameters
            .iter()
            .map(|rule| ParameterField::new(rule, typed.get(&rule.name), &by_field))
            .collect(),
        general,
        has_field_errors: !by_field.is_empty(),
        csrf: caller.csrf(),
    };
    let html = template
        .render()
        .map_err(|e| AppError::Internal(format!("rendering a page: {e}")))?;
    Ok((status, Html(html)).into_response())
}

/// The values typed into the form (fields named `parameters.<NAME>`), or given in the query of a
/// link that prefills it ("Run again" with a run's values).
fn typed_values<'a>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
) -> ParameterValues {
    pairs
        .filter_map(|(key, value)| {
            key.strip_prefix(FIELD_PREFIX)
                .map(|name| (name.to_owned(), value.into_owned()))
        })
        .collect()
}

/// The link to the Run Now form of a job, prefilled with `values`.
pub fn form_href(namespace: &str, name: &str, values: &ParameterValues) -> String {
    let base = format!("/jobs/{namespace}/{name}/run");
    if values.is_empty() {
        return base;
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in values {
        query.append_pair(&format!("{FIELD_PREFIX}{key}"), value);
    }
    format!("{base}?{}", query.finish())
}

/// `GET /jobs/{namespace}/{name}/run`: the Run Now form, its fields prefilled with the defaults
/// (or the query's values). For a job without parameters the form is only its button.
pub(crate) async fn form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response> {
    caller
        .require(&state, Verb::Trigger, &namespace, "run this job now")
        .await?;
    let spec = state.spec_for_edit(&namespace, &name).await?;
    let typed = typed_values(query.into_iter().map(|(k, v)| (k.into(), v.into())));
    form_page(
        &state,
        &caller,
        (&namespace, &name),
        &spec,
        &typed,
        &[],
        StatusCode::OK,
    )
}

/// `POST /jobs/{namespace}/{name}/run` (the Run Now button or form): a flash message and back to
/// the job; values that do not fit come back in the form, each error next to its field (422).
pub(crate) async fn page_run_now(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    crate::pages::Zone(zone): crate::pages::Zone,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response> {
    let typed = typed_values(url::form_urlencoded::parse(&body).filter(|(k, _)| k != CSRF_FIELD));
    let asked = match state.request_run_now(&caller, &namespace, &name, &typed).await {
        Ok(asked) => asked,
        Err(AppError::Invalid(errors)) => {
            let spec = state.spec_for_edit(&namespace, &name).await?;
            return form_page(
                &state,
                &caller,
                (&namespace, &name),
                &spec,
                &typed,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
        Err(e) => return Err(e),
    };
    let zone = match data::get_job(&state, &namespace, &name).await {
        Ok(Some(job)) => zone.for_job(&job.timezone),
        _ => zone.for_job(&asked.spec.time_zone),
    };
    let at = timefmt::show_precise(asked.at, zone);
    let with = if asked.parameters.is_empty() {
        String::new()
    } else {
        let pairs: Vec<String> = asked.parameters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(" with {}", pairs.join(", "))
    };
    state.set_flash(
        &caller,
        "success",
        format!(
            "Run Now requested for {name} at {}{with}. The run appears below when it starts.",
            at.local
        ),
    );
    Ok(Redirect::to(&format!("/jobs/{namespace}/{name}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_link_carries_the_values_to_prefill() {
        let values = ParameterValues::from([("REGION".to_owned(), "eu west".to_owned())]);
        assert_eq!(
            form_href("default", "report", &values),
            "/jobs/default/report/run?parameters.REGION=eu+west"
        );
        assert_eq!(
            form_href("default", "report", &ParameterValues::new()),
            "/jobs/default/report/run"
        );
        let parsed = typed_values(url::form_urlencoded::parse(
            b"csrf=x&parameters.REGION=eu+west&other=1",
        ));
        assert_eq!(parsed, values);
    }

    #[test]
    fn non_string_values_in_the_body_are_refused_with_their_field() {
        let body: RunNowBody =
            serde_json::from_str(r#"{"parameters": {"LIMIT": 10, "REGION": "eu"}}"#).expect("json");
        let Err(AppError::Invalid(errors)) = body_values(body) else {
            panic!("refused");
        };
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "parameters.LIMIT");
        assert_eq!(errors[0].message, "give the value as a JSON string (got 10)");
    }
}
