//! The JSON API under `/api/v1`: everything the pages do, for scripts and tools. Described by
//! [`crate::openapi::document`], served at `/api/v1/openapi.json`.
//!
//! Errors are JSON: `422 {"errors":[{"field","message"}]}` for invalid input, otherwise
//! `{"error": "...", "kind": "..."}` with 401, 403, 404, 409 or 5xx.

use crate::AppState;
use crate::auth::{Caller, Verb};
use crate::data::{self, JobQuery, JobView, RunQuery, RunRow, RunView};
use crate::error::{AppError, Result};
use crate::form;
use crate::timefmt::DisplayZone;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use jtp_crds::{FieldError, ScheduledJobSpec};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The API routes, relative to `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(list_jobs).post(create_job))
        .route(
            "/jobs/{namespace}/{name}",
            get(get_job).put(update_job).patch(patch_job).delete(delete_job),
        )
        .route("/jobs/{namespace}/{name}/run", post(crate::run_now::api_run_now))
        .route("/jobs/{namespace}/{name}/runs", get(list_runs))
        .route("/jobs/{namespace}/{name}/alerts", get(list_alerts))
        .route("/runs", get(list_all_runs))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/output", get(get_output))
        .route("/runs/{id}/live", get(get_live))
        .route("/runs/{id}/stop", post(crate::run_actions::api_stop_run))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Every route of [`router`] as `(method, path)`, for the check that the OpenAPI document covers them.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/jobs"),
    ("post", "/jobs"),
    ("get", "/jobs/{namespace}/{name}"),
    ("put", "/jobs/{namespace}/{name}"),
    ("patch", "/jobs/{namespace}/{name}"),
    ("delete", "/jobs/{namespace}/{name}"),
    ("post", "/jobs/{namespace}/{name}/run"),
    ("get", "/jobs/{namespace}/{name}/runs"),
    ("get", "/runs"),
    ("get", "/runs/{id}"),
    ("get", "/runs/{id}/output"),
    ("get", "/runs/{id}/live"),
    ("post", "/runs/{id}/stop"),
    ("post", "/preview"),
    ("get", "/openapi.json"),
];

async fn not_found() -> AppError {
    AppError::NotFound("no such API route; see /api/v1/openapi.json".to_owned())
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({
            "error": "this route does not take that method; see /api/v1/openapi.json",
            "kind": "method_not_allowed",
        })),
    )
        .into_response()
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

/// A page of jobs.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobList {
    items: Vec<JobView>,
    total: i64,
    page: u32,
    per_page: u32,
    /// How many pages there are (at least 1); a page past the last is empty.
    pages: i64,
}

async fn list_jobs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<JobQuery>,
) -> Result<Json<JobList>> {
    query.check()?;
    let namespaces = caller.readable_namespaces(&state).await?;
    let per_page = query.per_page(state.config().page_size)?;
    let page = query.page()?;
    let (mut items, total) = data::list_jobs(
        &state,
        &query,
        namespaces.as_deref(),
        page,
        per_page,
        DisplayZone::Job,
    )
    .await?;
    data::attach_health(&state, &mut items, DisplayZone::Job).await?;
    Ok(Json(JobList {
        items,
        total,
        page,
        per_page,
        pages: ((total + i64::from(per_page) - 1) / i64::from(per_page)).max(1),
    }))
}

async fn get_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<JobView>> {
    caller
        .require(&state, Verb::Get, &namespace, "read this job")
        .await?;
    Ok(Json(
        data::job_view(&state, &namespace, &name, DisplayZone::Job).await?,
    ))
}

/// Parses a JSON body; a body that is not what the route takes is a 422 naming the problem,
/// unknown fields included (with their path and the field probably meant). Only
/// `application/json` is read: a form or `text/plain` body is what a cross-site page can send
/// without the browser asking first.
pub(crate) fn parse_body<T: for<'de> Deserialize<'de>>(
    headers: &HeaderMap,
    body: &[u8],
    fields: &[&str],
) -> Result<T> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(AppError::UnsupportedMediaType(format!(
            "send the body as JSON with content-type: application/json (got \"{content_type}\")"
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        AppError::Invalid(vec![FieldError::new(
            "body",
            format!("the request body is not valid JSON: {e}"),
        )])
    })?;
    if let Some(object) = value.as_object() {
        let mut unknown: Vec<FieldError> = object
            .keys()
            .filter(|k| !fields.contains(&k.as_str()))
            .map(|k| {
                FieldError::new(
                    k.clone(),
                    format!("unknown field; the body takes {}", fields.join(", ")),
                )
            })
            .collect();
        if let Some(spec) = object.get("spec") {
            unknown.extend(jtp_crds::admission::unknown_spec_fields("spec", spec));
        }
        if !unknown.is_empty() {
            return Err(AppError::Invalid(unknown));
        }
    }
    serde_json::from_value(value).map_err(|e| {
        let field = if e.to_string().contains("spec") || e.is_data() {
            "spec"
        } else {
            "body"
        };
        AppError::Invalid(vec![FieldError::new(
            field,
            format!("the request body is not valid: {e}"),
        )])
    })
}

#[derive(Deserialize)]
struct CreateJob {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    spec: ScheduledJobSpec,
}

#[derive(Deserialize)]
struct UpdateJob {
    spec: ScheduledJobSpec,
}

/// What a write answers: the job as written.
#[derive(Serialize)]
struct Written {
    namespace: String,
    name: String,
    spec: ScheduledJobSpec,
}

fn validated(namespace: &str, name: &str, spec: &ScheduledJobSpec) -> Result<()> {
    form::validate_job(namespace, name, spec).map_err(AppError::Invalid)
}

async fn create_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let input: CreateJob = parse_body(&headers, &body, &["name", "namespace", "spec"])?;
    let namespace = match (state.is_kubernetes(), input.namespace) {
        (true, Some(ns)) => ns,
        (true, None) => {
            return Err(AppError::Invalid(vec![FieldError::new(
                "metadata.namespace",
                "name the namespace of the job",
            )]));
        }
        (false, ns) => {
            let only = state.config().standalone_namespace.clone();
            if ns.as_ref().is_some_and(|ns| *ns != only) {
                return Err(AppError::Invalid(vec![FieldError::new(
                    "metadata.namespace",
                    format!("standalone mode has one namespace, \"{only}\""),
                )]));
            }
            only
        }
    };
    validated(&namespace, &input.name, &input.spec)?;
    caller
        .require(&state, Verb::Create, &namespace, "create jobs here")
        .await?;
    state
        .create_job(&caller.principal, &namespace, &input.name, &input.spec)
        .await?;
    let location = format!("/api/v1/jobs/{namespace}/{}", input.name);
    let mut response = (
        StatusCode::CREATED,
        Json(Written {
            namespace,
            name: input.name,
            spec: input.spec,
        }),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

async fn update_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Written>> {
    caller
        .require(&state, Verb::Patch, &namespace, "edit this job")
        .await?;
    let input: UpdateJob = parse_body(&headers, &body, &["spec"])?;
    validated(&namespace, &name, &input.spec)?;
    state
        .update_job(&caller.principal, &namespace, &name, &input.spec)
        .await?;
    Ok(Json(Written {
        namespace,
        name,
        spec: input.spec,
    }))
}

#[derive(Deserialize)]
struct PatchJob {
    suspend: bool,
}

/// Pause or resume: `{"suspend": true}` / `{"suspend": false}` (needs the patch right).
async fn patch_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>> {
    caller
        .require(&state, Verb::Patch, &namespace, "pause or resume this job")
        .await?;
    let input: PatchJob = parse_body(&headers, &body, &["suspend"])?;
    state
        .set_suspended(&caller.principal, &namespace, &name, input.suspend)
        .await?;
    Ok(Json(
        json!({ "namespace": namespace, "name": name, "suspend": input.suspend }),
    ))
}

async fn delete_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<StatusCode> {
    caller
        .require(&state, Verb::Delete, &namespace, "delete this job")
        .await?;
    state.delete_job(&caller.principal, &namespace, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of one job's runs, newest first, with the cursors of the pages around it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunList {
    items: Vec<RunView>,
    /// Pass as `before` for the next (older) page; null on the last page.
    older_cursor: Option<String>,
    /// Pass as `after` for the previous (newer) page; null on the first page.
    newer_cursor: Option<String>,
}

async fn list_runs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<RunQuery>,
) -> Result<Json<RunList>> {
    caller
        .require(&state, Verb::Get, &namespace, "read this job")
        .await?;
    let job = data::require_job(&state, &namespace, &name).await?;
    let mut filter = q.to_filter(crate::timefmt::zone(&job.timezone), state.config().runs_in_panel)?;
    filter.job_id = Some(job.id);
    let page = data::list_all_runs(&state, filter, None, DisplayZone::Job).await?;
    Ok(Json(RunList {
        items: page.rows.into_iter().map(|r| r.run).collect(),
        older_cursor: page.older,
        newer_cursor: page.newer,
    }))
}

/// A job's newest incidents and their deliveries.
#[derive(Serialize)]
struct AlertList {
    items: Vec<data::AlertView>,
}

async fn list_alerts(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<AlertList>> {
    caller
        .require(&state, Verb::Get, &namespace, "read this job")
        .await?;
    let job = data::require_job(&state, &namespace, &name).await?;
    let items = data::job_alerts(&state, job.id, crate::timefmt::zone(&job.timezone)).await?;
    Ok(Json(AlertList { items }))
}

/// A page of runs across jobs.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AllRuns {
    items: Vec<RunRow>,
    older_cursor: Option<String>,
    newer_cursor: Option<String>,
    searched_part: bool,
}

async fn list_all_runs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<RunQuery>,
) -> Result<Json<AllRuns>> {
    let filter = q.to_filter(
        crate::timefmt::zone(jtp_crds::DEFAULT_TIME_ZONE),
        state.config().page_size,
    )?;
    let namespaces = caller.readable_namespaces(&state).await?;
    let page = data::list_all_runs(&state, filter, namespaces, DisplayZone::Job).await?;
    Ok(Json(AllRuns {
        items: page.rows,
        older_cursor: page.older,
        newer_cursor: page.newer,
        searched_part: page.searched_part,
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunResponse {
    namespace: String,
    job: String,
    time_zone: String,
    /// The job was deleted; its runs stay.
    job_deleted: bool,
    #[serde(flatten)]
    run: RunView,
    output: String,
}

async fn run_detail(state: &AppState, caller: &Caller, id: &str) -> Result<data::RunDetail> {
    data::readable_run(state, caller, data::run_id(id)?, DisplayZone::Job).await
}

async fn get_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<RunResponse>> {
    let detail = run_detail(&state, &caller, &id).await?;
    Ok(Json(RunResponse {
        namespace: detail.job.namespace,
        job: detail.job.name,
        time_zone: detail.job.timezone,
        job_deleted: detail.job.deleted_at.is_some(),
        run: detail.run,
        output: detail.output,
    }))
}

/// `?offset=N` of the live output.
#[derive(Deserialize)]
struct LiveQuery {
    #[serde(default)]
    offset: String,
}

/// What a run in flight wrote after byte `offset`, and whether it is still in flight.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LiveAnswer {
    status: jtp_crds::RunStatus,
    /// The output is followed here: `chunk` holds what is new. False once the run has ended (the
    /// stored output is then the whole), or while it runs somewhere this portal cannot follow.
    live: bool,
    #[serde(flatten)]
    chunk: crate::live::Chunk,
}

async fn get_live(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<LiveQuery>,
) -> Result<Json<LiveAnswer>> {
    let offset = match query.offset.trim() {
        "" => 0,
        text => text.parse::<u64>().map_err(|_| {
            AppError::Invalid(vec![FieldError::new(
                "offset",
                format!("\"{text}\" is not a byte offset: give a whole number, 0 or more"),
            )])
        })?,
    };
    let detail = run_detail(&state, &caller, &id).await?;
    let live = state.live_output(&detail.run);
    let chunk = match &live {
        Some(shared) => {
            let captured = shared.lock().unwrap_or_else(|p| p.into_inner());
            crate::live::chunk(&captured, offset, state.store().output_cap())
        }
        None => crate::live::Chunk::default(),
    };
    Ok(Json(LiveAnswer {
        status: detail.run.status,
        live: live.is_some(),
        chunk,
    }))
}

async fn get_output(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response> {
    let detail = run_detail(&state, &caller, &id).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        detail.output,
    )
        .into_response())
}
