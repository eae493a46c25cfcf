//! A job's own page (`/jobs/{namespace}/{name}/details`): the whole spec in words, the next runs
//! as `jtp preview` computes them (the same [`jtp_crds::preview`] code), where the job comes from,
//! its health and recent runs; its export as a ScheduledJob manifest (`export.yaml`) and a clone
//! (the create form, prefilled). Also the form's preview of the next runs as you type
//! (`POST /jobs/preview`, a server-rendered fragment) and `POST /api/v1/preview` for API clients.

use crate::auth::{Caller, Verb};
use crate::data::{self, JobView, RunView};
use crate::error::{AppError, Result};
use crate::form::{FormErrors, JobForm};
use crate::pages::{Chrome, Zone, render};
use crate::timefmt::{self, Precision, ShownTime};
use crate::{AppState, Mode};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use jtp_crds::preview::upcoming;
use jtp_crds::{CompiledSchedule, ScheduledJob, ScheduledJobSpec};
use serde::{Deserialize, Serialize};

/// How many runs the job page and the form preview show.
pub const PREVIEW_RUNS: usize = 5;
/// How many recent runs the job page lists.
const RECENT_RUNS: u32 = 10;

/// The page routes of this module (behind authentication, like every page).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs/preview", post(form_preview))
        .route("/jobs/{namespace}/{name}/details", get(details_page))
        .route("/jobs/{namespace}/{name}/export.yaml", get(export_yaml))
        .route(
            "/jobs/{namespace}/{name}/clone",
            get(clone_form).post(create_clone),
        )
}

/// The API routes of this module (nested under `/api/v1`).
pub fn api_router() -> Router<AppState> {
    Router::new().route("/preview", post(api_preview))
}

/// One line of a preview as pages and the API show it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewLine {
    /// A run the DST policy leaves out (`note` says why), not a run.
    pub skipped: bool,
    pub at: ShownTime,
    /// What a DST change did to the run ("second pass of the repeated 01:30"), or why a skipped
    /// wall time is not run.
    pub note: Option<String>,
}

/// The next `count` runs of `schedule` after `after`, instants in `tz`.
pub fn preview_lines(
    schedule: &CompiledSchedule,
    after: DateTime<Utc>,
    count: usize,
    tz: chrono_tz::Tz,
) -> Vec<PreviewLine> {
    upcoming(schedule, after, count)
        .into_iter()
        .map(|entry| PreviewLine {
            skipped: entry.is_skipped(),
            at: timefmt::show_at(entry.slot().at, tz, Precision::Slot, after),
            note: entry.note(),
        })
        .collect()
}

/// The preview as the form shows it: the runs, or why there are none.
#[derive(Template)]
#[template(path = "preview.html")]
pub(crate) struct PreviewTemplate {
    pub lines: Vec<PreviewLine>,
    /// The schedule in words.
    pub describe: String,
    /// Set when the schedule cannot be previewed: every problem of its fields.
    pub problems: Vec<String>,
    pub manual: bool,
    pub suspended: bool,
}

/// The next runs of what the form holds, as HTML (the form's first view and its refreshes).
pub(crate) fn form_preview_html(form: &JobForm) -> String {
    let template = form_preview_template(form, Utc::now());
    template.render().unwrap_or_default()
}

fn form_preview_template(form: &JobForm, now: DateTime<Utc>) -> PreviewTemplate {
    let namespace = if form.namespace.trim().is_empty() {
        "default"
    } else {
        form.namespace.trim()
    };
    // The name places an interval's phase; until one is typed, a stand-in.
    let name = match form.name.trim() {
        "" => "new-job",
        n => n,
    };
    let empty = |problems: Vec<String>| PreviewTemplate {
        lines: Vec::new(),
        describe: String::new(),
        problems,
        manual: false,
        suspended: false,
    };
    // Only the schedule's own fields matter here (the rest of the form is checked on save): the
    // spec as far as it parses, its schedule compiled as the scheduler compiles it.
    let (spec, errors) = form.parse(None);
    let blocking = schedule_problems(&errors);
    if !blocking.is_empty() {
        return empty(blocking);
    }
    match CompiledSchedule::new(jtp_crds::JobId { namespace, name }, &spec) {
        Ok(schedule) => PreviewTemplate {
            lines: preview_lines(&schedule, now, PREVIEW_RUNS, schedule.time_zone()),
            describe: schedule.describe(),
            problems: Vec::new(),
            manual: schedule.is_manual(),
            suspended: spec.suspend,
        },
        Err(invalid) => {
            let problems = schedule_problems(&invalid.errors);
            empty(if problems.is_empty() {
                invalid.errors.iter().map(|e| e.message.clone()).collect()
            } else {
                problems
            })
        }
    }
}

/// The problems that keep a schedule from being previewed (its form, zone and DST choices).
fn schedule_problems(errors: &[jtp_crds::FieldError]) -> Vec<String> {
    errors
        .iter()
        .filter(|e| {
            e.field.starts_with("spec.schedule")
                || e.field.starts_with("spec.timeZone")
                || e.field.starts_with("spec.daylightSaving")
                || matches!(
                    crate::form::form_field(&e.field),
                    Some(
                        "schedule_type"
                            | "interval_every"
                            | "interval_unit"
                            | "hourly_minute"
                            | "daily_at"
                            | "weekly_on"
                            | "weekly_at"
                            | "monthly_day"
                            | "monthly_at"
                            | "cron"
                            | "time_zone"
                    )
                )
        })
        .map(|e| e.message.clone())
        .collect()
}

/// `POST /jobs/preview`: the form's fields (urlencoded, as the form posts them) → the preview
/// fragment. Reads nothing and writes nothing, so anyone who may open the form may call it.
async fn form_preview(body: Bytes) -> Result<Response> {
    let form = JobForm::from_urlencoded(&body);
    Ok(render(&form_preview_template(&form, Utc::now()))?.into_response())
}

/// `POST /api/v1/preview`'s body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreviewRequest {
    #[serde(default)]
    namespace: Option<String>,
    name: String,
    spec: ScheduledJobSpec,
    /// Runs to show, 1 to 100 (default 5).
    #[serde(default)]
    count: Option<usize>,
    /// From this instant (default now).
    #[serde(default)]
    after: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PreviewAnswer {
    schedule: String,
    time_zone: String,
    runs: Vec<ApiPreviewRun>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiPreviewRun {
    /// RFC3339 UTC.
    at: String,
    /// In the job's zone.
    local: String,
    /// Not run: a wall time the DST policy leaves out.
    skipped: bool,
    note: Option<String>,
}

/// `POST /api/v1/preview`: the next runs of a spec, as `jtp preview` prints them; a spec that is
/// not valid is a 422 naming every field.
async fn api_preview(headers: HeaderMap, body: Bytes) -> Result<Response> {
    let request: PreviewRequest =
        crate::api::parse_body(&headers, &body, &["name", "namespace", "spec", "count", "after"])?;
    let namespace = request.namespace.as_deref().unwrap_or("default");
    let count = request.count.unwrap_or(PREVIEW_RUNS);
    if !(1..=100).contains(&count) {
        return Err(AppError::Invalid(vec![jtp_crds::FieldError::new(
            "count",
            format!("{count} runs: ask for 1 to 100"),
        )]));
    }
    let schedule = jtp_crds::admission::validate_object(namespace, &request.name, &request.spec)?;
    let after = request.after.unwrap_or_else(Utc::now);
    let tz = schedule.time_zone();
    let runs = upcoming(&schedule, after, count)
        .into_iter()
        .map(|entry| ApiPreviewRun {
            at: entry.slot().at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            local: entry
                .slot()
                .at
                .with_timezone(&tz)
                .format("%Y-%m-%d %H:%M:%S%.f %:z")
                .to_string(),
            skipped: entry.is_skipped(),
            note: entry.note(),
        })
        .collect();
    Ok(Json(PreviewAnswer {
        schedule: schedule.describe(),
        time_zone: tz.name().to_owned(),
        runs,
    })
    .into_response())
}

/// Where a job comes from, in words, and how a change there reaches it.
#[derive(Clone, Debug)]
pub struct Origin {
    /// `file`, `portal` or `kubernetes`.
    pub kind: &'static str,
    pub summary: String,
    /// Who last wrote it (Kubernetes: the field managers of the resource).
    pub managers: Vec<String>,
}

/// One line of the spec in words.
#[derive(Clone, Debug)]
pub struct Fact {
    pub label: &'static str,
    pub value: String,
}

/// An environment variable as the page shows it: a value the spec holds, or where the value comes
/// from (a Secret's name and key, never its value).
#[derive(Clone, Debug)]
pub struct EnvLine {
    pub name: String,
    pub value: Option<String>,
    pub from: Option<String>,
}

#[derive(Template)]
#[template(path = "job_page.html")]
struct JobPageTemplate {
    chrome: Chrome,
    job: JobView,
    origin: Origin,
    next: Vec<PreviewLine>,
    script_kind: &'static str,
    script: String,
    facts: Vec<Fact>,
    policies: Vec<Fact>,
    env: Vec<EnvLine>,
    env_from: Vec<String>,
    pod_template: Option<String>,
    runs: Vec<RunView>,
    older_href: Option<String>,
    csrf: String,
    kubernetes: bool,
}

async fn details_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Zone(zone): Zone,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response> {
    caller
        .require(&state, Verb::Get, &namespace, "read this job")
        .await?;
    let view = data::job_view(&state, &namespace, &name, zone).await?;
    let resource = live_resource(&state, &namespace, &name).await;
    let origin = origin_of(&state, &view, resource.as_ref());
    let (runs, older, _) = data::list_runs(&state, view.id, RECENT_RUNS, None, None, zone).await?;
    let tz = zone.for_job(&view.time_zone);
    let id = jtp_crds::JobId {
        namespace: &namespace,
        name: &name,
    };
    // The schedule in words (`job.schedule`) already ends with the DST policy in a zone with DST.
    let next = CompiledSchedule::new(id, &view.spec)
        .map(|schedule| preview_lines(&schedule, Utc::now(), PREVIEW_RUNS, tz))
        .unwrap_or_default();
    let spec = view.spec.clone();
    let (script_kind, script) = script_of(&spec);
    let (env, env_from) = env_of(&spec);
    let template = JobPageTemplate {
        chrome: Chrome::new(&state, &caller, zone, "jobs"),
        origin,
        next,
        script_kind,
        script,
        facts: facts_of(&spec),
        policies: policies_of(&spec, &view),
        env,
        env_from,
        pod_template: spec
            .pod_template
            .as_ref()
            .and_then(|t| serde_yaml::to_string(&t.0).ok()),
        runs,
        older_href: older.map(|c| format!("/jobs/{namespace}/{name}?before={c}")),
        csrf: caller.csrf(),
        kubernetes: state.is_kubernetes(),
        job: view,
    };
    Ok(render(&template)?.into_response())
}

/// Kubernetes mode: the ScheduledJob itself (for who manages it), read as the portal once the
/// user's `get` right was checked; `None` standalone or when it cannot be read (the mirror is
/// shown then).
async fn live_resource(state: &AppState, namespace: &str, name: &str) -> Option<ScheduledJob> {
    let Mode::Kubernetes { client, .. } = &state.inner.mode else {
        return None;
    };
    let api: kube::Api<ScheduledJob> = kube::Api::namespaced(client.clone(), namespace);
    match api.get(name).await {
        Ok(job) => Some(job),
        Err(e) => {
            tracing::debug!(%namespace, %name, error = %e, "job page: the resource could not be read");
            None
        }
    }
}

fn origin_of(state: &AppState, job: &JobView, resource: Option<&ScheduledJob>) -> Origin {
    if state.is_kubernetes() {
        let mut managers: Vec<String> = resource
            .and_then(|r| r.metadata.managed_fields.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let manager = m.manager.clone()?;
                let what = match manager.as_str() {
                    crate::FIELD_MANAGER => "the portal".to_owned(),
                    "kubectl-client-side-apply" | "kubectl" => "kubectl apply".to_owned(),
                    "kubectl-edit" => "kubectl edit".to_owned(),
                    "kubectl-annotate" => "kubectl annotate".to_owned(),
                    "helm" => "Helm".to_owned(),
                    _ => manager.clone(),
                };
                // The operator writes only the status and its finalizer.
                (m.subresource.as_deref() != Some("status")).then_some(what)
            })
            .collect();
        managers.dedup();
        let helm = resource
            .and_then(|r| r.metadata.labels.as_ref())
            .and_then(|l| l.get("app.kubernetes.io/managed-by"))
            .is_some_and(|v| v == "Helm");
        let mut summary = format!(
            "The ScheduledJob resource {}/{} (kubectl get sj {} -n {}); the portal shows the operator's copy of it.",
            job.namespace, job.name, job.name, job.namespace
        );
        if helm {
            summary.push_str(
                " It is part of a Helm release: a change made here lasts until the next helm upgrade.",
            );
        }
        return Origin {
            kind: "kubernetes",
            summary,
            managers,
        };
    }
    match &job.source_file {
        Some(file) => Origin {
            kind: "file",
            summary: format!(
                "The file {file} of the jobs folder. A change made here lasts until this job's document in that file changes."
            ),
            managers: Vec::new(),
        },
        None => Origin {
            kind: "portal",
            summary: "Created in the portal (or its API); it lives in the database only.".to_owned(),
            managers: Vec::new(),
        },
    }
}

fn script_of(spec: &ScheduledJobSpec) -> (&'static str, String) {
    let s = &spec.script;
    if let Some(inline) = &s.inline {
        ("shell script (sh -c)", inline.clone())
    } else if let Some(command) = &s.command {
        ("command, without a shell", command.join("\n"))
    } else if let Some(file) = &s.file {
        ("script file", file.clone())
    } else if let Some(cm) = &s.config_map {
        ("ConfigMap key", format!("{} / {}", cm.name, cm.key))
    } else {
        ("none", String::new())
    }
}

fn facts_of(spec: &ScheduledJobSpec) -> Vec<Fact> {
    let mut facts = Vec::new();
    let mut add = |label, value: Option<String>| {
        if let Some(value) = value {
            facts.push(Fact { label, value });
        }
    };
    add("Time zone", Some(spec.time_zone.clone()));
    add("Image", spec.image.clone());
    add("Working folder", spec.working_dir.clone());
    add("Service account", spec.service_account_name.clone());
    add(
        "Resources",
        spec.resources
            .as_ref()
            .and_then(|r| serde_json::to_string(r).ok()),
    );
    add(
        "State",
        Some(if spec.suspend { "suspended" } else { "active" }.to_owned()),
    );
    facts
}

fn policies_of(spec: &ScheduledJobSpec, view: &JobView) -> Vec<Fact> {
    let mut out = Vec::new();
    let concurrency = match spec.concurrency_policy {
        jtp_crds::ConcurrencyPolicy::Allow => "Allow: a run due while another runs starts alongside",
        jtp_crds::ConcurrencyPolicy::Forbid => "Forbid: a run due while another runs is skipped",
        jtp_crds::ConcurrencyPolicy::Replace => "Replace: a run due while another runs stops the old one",
    };
    out.push(Fact {
        label: "Concurrency",
        value: concurrency.to_owned(),
    });
    out.push(Fact {
        label: "Starting deadline",
        value: spec.starting_deadline_seconds.map_or_else(
            || "none: a missed slot runs once when the scheduler is back".to_owned(),
            |s| format!("{s} s: a slot missed by more is skipped"),
        ),
    });
    out.push(Fact {
        label: "Run deadline",
        value: spec.active_deadline_seconds.map_or_else(
            || "none".to_owned(),
            |s| format!("{s} s: a run going longer is stopped (FAILURE)"),
        ),
    });
    out.push(Fact {
        label: "Retries",
        value: match &spec.retries {
            None => "none".to_owned(),
            Some(r) => {
                let b = &r.backoff;
                let delay = b.delay.as_deref().unwrap_or("10s");
                let wait = match b.strategy {
                    jtp_crds::BackoffStrategy::Fixed => format!("{delay} between attempts"),
                    jtp_crds::BackoffStrategy::Exponential => format!(
                        "{delay}, doubling each time, at most {}",
                        b.max_delay.as_deref().unwrap_or("1h")
                    ),
                };
                format!(
                    "{} more attempt{} of a failed run, waiting {wait}",
                    r.limit,
                    if r.limit == 1 { "" } else { "s" }
                )
            }
        },
    });
    if let Some(n) = spec.pause_after_consecutive_failures {
        out.push(Fact {
            label: "Automatic pause",
            value: format!("after {n} failed runs in a row"),
        });
    }
    if let Some(limit) = spec.backoff_limit {
        out.push(Fact {
            label: "Pod retries (Kubernetes)",
            value: format!("{limit} within one run's Job"),
        });
    }
    if spec.successful_jobs_history_limit.is_some() || spec.failed_jobs_history_limit.is_some() {
        out.push(Fact {
            label: "Kubernetes Jobs kept",
            value: format!(
                "{} succeeded, {} failed",
                spec.successful_jobs_history_limit
                    .map_or_else(|| "default".to_owned(), |n| n.to_string()),
                spec.failed_jobs_history_limit
                    .map_or_else(|| "default".to_owned(), |n| n.to_string())
            ),
        });
    }
    out.push(Fact {
        label: "Retention",
        value: format!("keeps {} ({})", view.retention.summary, view.retention.whose()),
    });
    out.push(Fact {
        label: "Expect a success within",
        value: spec.expect_success_within.clone().map_or_else(
            || "not watched (no dead-man's switch)".to_owned(),
            |d| format!("{d}: overdue without a success for that long"),
        ),
    });
    out.push(Fact {
        label: "Notifications",
        value: match &spec.notifications {
            None => "the default receivers, for every event".to_owned(),
            Some(n) => {
                let receivers = match &n.receivers {
                    None => "the default receivers".to_owned(),
                    Some(r) if r.is_empty() => "nobody".to_owned(),
                    Some(r) => r.iter().map(|r| r.0.clone()).collect::<Vec<_>>().join(", "),
                };
                let events = match &n.events {
                    None => "every event".to_owned(),
                    Some(e) => e.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join(", "),
                };
                format!("{receivers}, for {events}")
            }
        },
    });
    out
}

/// `spec.env` and the `run` container's own variables of the pod template: values the spec
/// holds, and for the rest where they come from. A Secret is shown by name and key only: the
/// portal never reads one.
fn env_of(spec: &ScheduledJobSpec) -> (Vec<EnvLine>, Vec<String>) {
    let mut env: Vec<EnvLine> = spec
        .env
        .iter()
        .map(|e| EnvLine {
            name: e.name.clone(),
            value: Some(e.value.clone()),
            from: None,
        })
        .collect();
    let mut env_from = Vec::new();
    let containers = spec
        .pod_template
        .as_ref()
        .and_then(|t| t.0.pointer("/spec/containers"))
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    for container in containers {
        let cname = container.get("name").and_then(|n| n.as_str()).unwrap_or("");
        let prefix = if cname == "run" {
            String::new()
        } else {
            format!("container {cname}: ")
        };
        for var in container
            .get("env")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
        {
            let name = var.get("name").and_then(|n| n.as_str()).unwrap_or("").to_owned();
            let text = |v: &serde_json::Value, key: &str| {
                v.get(key).and_then(|x| x.as_str()).unwrap_or("?").to_owned()
            };
            let from = var.get("valueFrom").map(|from| {
                if let Some(s) = from.get("secretKeyRef") {
                    format!(
                        "{prefix}Secret {}, key {} (its value is not shown)",
                        text(s, "name"),
                        text(s, "key")
                    )
                } else if let Some(c) = from.get("configMapKeyRef") {
                    format!("{prefix}ConfigMap {}, key {}", text(c, "name"), text(c, "key"))
                } else if let Some(f) = from.get("fieldRef") {
                    format!("{prefix}the pod's {}", text(f, "fieldPath"))
                } else if let Some(r) = from.get("resourceFieldRef") {
                    format!("{prefix}the container's {}", text(r, "resource"))
                } else {
                    format!("{prefix}elsewhere")
                }
            });
            let value = if from.is_none() {
                var.get("value").and_then(|v| v.as_str()).map(str::to_owned)
            } else {
                None
            };
            env.push(EnvLine {
                name,
                value,
                from: from.or_else(|| (!prefix.is_empty()).then(|| prefix.trim_end_matches(": ").to_owned())),
            });
        }
        for source in container
            .get("envFrom")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
        {
            let with_prefix = source
                .get("prefix")
                .and_then(|p| p.as_str())
                .map_or_else(String::new, |p| format!(", names prefixed {p}"));
            if let Some(s) = source.get("secretRef") {
                let name = s.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                env_from.push(format!(
                    "{prefix}every key of Secret {name}{with_prefix} (values not shown)"
                ));
            } else if let Some(c) = source.get("configMapRef") {
                let name = c.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                env_from.push(format!("{prefix}every key of ConfigMap {name}{with_prefix}"));
            }
        }
    }
    (env, env_from)
}

/// The job as a ScheduledJob manifest that `kubectl apply -f` and the jobs folder take: apiVersion,
/// kind, name, namespace and the spec, nothing of the status or the server's metadata.
pub fn manifest_yaml(namespace: &str, name: &str, spec: &ScheduledJobSpec) -> Result<String> {
    let mut job = ScheduledJob::new(name, spec.clone());
    job.metadata.namespace = Some(namespace.to_owned());
    let yaml =
        serde_yaml::to_string(&job).map_err(|e| AppError::Internal(format!("writing the manifest: {e}")))?;
    Ok(format!(
        "# ScheduledJob {namespace}/{name}, exported from Job Trigger Portal\n{}",
        quote_for_yaml_1_1(&yaml)
    ))
}

/// Quotes the plain scalars that a YAML 1.1 reader (kubectl and Helm read YAML 1.1, as does PyYAML)
/// would not read as the strings they are: wall times like `09:00` (base-60 numbers there) and
/// `on`/`off`/`yes`/`no`/`y`/`n` (booleans there). Block scalars (a script) are left as written.
fn quote_for_yaml_1_1(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len() + 16);
    // The indentation of the key whose block scalar the lines belong to, while inside one.
    let mut block: Option<usize> = None;
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(key_indent) = block {
            if line.trim().is_empty() || indent > key_indent {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            block = None;
        }
        let split = line
            .rsplit_once(": ")
            .map(|(head, value)| (format!("{head}: "), value))
            .or_else(|| {
                let trimmed = line.trim_start();
                trimmed
                    .strip_prefix("- ")
                    .map(|value| (format!("{}- ", &line[..indent]), value))
            });
        let Some((head, value)) = split else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        if value.starts_with('|') || value.starts_with('>') {
            block = Some(indent);
            out.push_str(line);
        } else if needs_quotes_in_yaml_1_1(value) {
            out.push_str(&format!("{head}'{value}'"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// A plain scalar that YAML 1.1 reads as a boolean or a base-60 number.
fn needs_quotes_in_yaml_1_1(value: &str) -> bool {
    const BOOLEANS: [&str; 16] = [
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF",
    ];
    if BOOLEANS.contains(&value) {
        return true;
    }
    let mut parts = value.split(':');
    let first = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    !rest.is_empty()
        && !first.is_empty()
        && first.bytes().all(|b| b.is_ascii_digit())
        && rest
            .iter()
            .all(|p| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

async fn export_yaml(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response> {
    caller
        .require(&state, Verb::Get, &namespace, "read this job")
        .await?;
    let spec = spec_of(&state, &namespace, &name).await?;
    let yaml = manifest_yaml(&namespace, &name, &spec)?;
    let disposition = HeaderValue::from_str(&format!("inline; filename=\"{name}.yaml\""))
        .unwrap_or_else(|_| HeaderValue::from_static("inline"));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/yaml; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        yaml,
    )
        .into_response())
}

/// The job's spec as the store holds it (standalone: the row; a cluster: the operator's mirror of
/// the resource).
async fn spec_of(state: &AppState, namespace: &str, name: &str) -> Result<ScheduledJobSpec> {
    Ok(data::require_job(state, namespace, name).await?.spec)
}

/// A free name for a copy of `name`: `name-copy`, else `name-copy-2`… (cut to 63 characters).
async fn copy_name(state: &AppState, namespace: &str, name: &str) -> Result<String> {
    for n in 1..100 {
        let suffix = if n == 1 {
            "-copy".to_owned()
        } else {
            format!("-copy-{n}")
        };
        let keep = 63usize.saturating_sub(suffix.len());
        let base: String = name.chars().take(keep).collect();
        let candidate = format!("{}{suffix}", base.trim_end_matches('-'));
        if data::get_job(state, namespace, &candidate).await?.is_none() {
            return Ok(candidate);
        }
    }
    Ok(format!("{name}-copy"))
}

async fn clone_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response> {
    caller
        .require(&state, Verb::Get, &namespace, "read this job")
        .await?;
    let spec = spec_of(&state, &namespace, &name).await?;
    let new_name = copy_name(&state, &namespace, &name).await?;
    let form = JobForm::from_spec(&namespace, &new_name, &spec);
    crate::pages::form_page_at(
        &state,
        &caller,
        crate::pages::FormTarget::clone_of(&namespace, &name),
        form,
        FormErrors::default(),
        StatusCode::OK,
    )
}

/// Creates the copy: the form's fields over the original's spec, so what the form does not show
/// (env, retries, notifications, the pod template's rest…) is copied too.
async fn create_clone(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response> {
    caller
        .require(&state, Verb::Get, &namespace, "read this job")
        .await?;
    let base = spec_of(&state, &namespace, &name).await?;
    crate::pages::create_from_form(
        &state,
        &caller,
        &body,
        Some(&base),
        crate::pages::FormTarget::clone_of(&namespace, &name),
    )
    .await
}

/// `/jobs/{namespace}/{name}/details` of a job.
pub fn details_href(namespace: &str, name: &str) -> String {
    format!("/jobs/{namespace}/{name}/details")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn what_yaml_1_1_misreads_is_quoted_and_scripts_are_kept() {
        let yaml = "spec:\n  schedule:\n    daily:\n      at: 09:00\n  cron: '*/5 * * * *'\n  x: a:b\n  \
                    script:\n    inline: |-\n      at: 09:00\n\n      v: on\n  env:\n  - name: A\n    value: on\n  \
                    days:\n  - yes\n  - monday\n";
        assert_eq!(
            quote_for_yaml_1_1(yaml),
            "spec:\n  schedule:\n    daily:\n      at: '09:00'\n  cron: '*/5 * * * *'\n  x: a:b\n  \
             script:\n    inline: |-\n      at: 09:00\n\n      v: on\n  env:\n  - name: A\n    value: 'on'\n  \
             days:\n  - 'yes'\n  - monday\n"
        );
    }

    #[test]
    fn the_form_preview_names_what_keeps_it_from_running() {
        let mut form = JobForm::new_job("default");
        form.name = "x".into();
        form.daily_at = "25:00".into();
        form.script_inline = "echo".into();
        let t = form_preview_template(&form, Utc::now());
        assert!(t.lines.is_empty());
        assert!(t.problems.iter().any(|p| p.contains("25:00")), "{:?}", t.problems);
        form.daily_at = "9:00".into();
        let t = form_preview_template(&form, Utc::now());
        assert_eq!(t.lines.len(), PREVIEW_RUNS, "{:?}", t.problems);
        assert!(t.lines[0].at.local.contains("09:00 HKT"), "{:?}", t.lines[0]);
    }
}
