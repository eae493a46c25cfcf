//! The HTML pages: the jobs table with its runs panel, the runs view across jobs, a run's own page,
//! the job form, Run Now, login. Errors of these routes become HTML pages ([`html_errors`]); forms
//! with invalid input come back with every typed value and every error next to its field (422).

use crate::AppState;
use crate::auth::{CSRF_FIELD, Caller, Flash, Verb};
use crate::data::{self, JobQuery, JobView, RunQuery, RunRow, RunView};
use crate::error::{AppError, ErrorPage, Result};
use crate::form::{FormErrors, JobForm};
use crate::timefmt::{self, DISPLAY_ZONE_COOKIE, DISPLAY_ZONES, DisplayZone};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Extension, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use jtp_crds::ScheduledJobSpec;
use serde::Deserialize;
use std::sync::LazyLock;

/// Every IANA zone name chrono-tz knows, for the time-zone datalist.
static TIME_ZONES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect());

const STATUS_OPTIONS: [(&str, &str); 4] = [
    ("", "any"),
    ("SUCCESS", "last run succeeded"),
    ("FAILURE", "last run failed"),
    ("ERROR", "last run could not start"),
];

const STATE_OPTIONS: [(&str, &str); 3] = [
    ("", "any"),
    (data::STATE_ACTIVE, "active"),
    (data::STATE_SUSPENDED, "suspended"),
];

/// The page routes (behind authentication).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(jobs_page))
        .route("/jobs", post(create_job))
        .route("/jobs/new", get(new_job_form))
        .route("/jobs/{namespace}/{name}", get(job_page))
        .route("/jobs/{namespace}/{name}/panel", get(panel_fragment))
        .route("/jobs/{namespace}/{name}/runs/{id}", get(run_page))
        .route(
            "/jobs/{namespace}/{name}/edit",
            get(edit_job_form).post(update_job),
        )
        .route("/jobs/{namespace}/{name}/delete", post(delete_job))
        .route(
            "/jobs/{namespace}/{name}/run",
            get(crate::run_now::form).post(crate::run_now::page_run_now),
        )
        .route("/jobs/{namespace}/{name}/pause", post(pause_job))
        .route("/jobs/{namespace}/{name}/resume", post(resume_job))
        .route("/fragments/jobs", get(jobs_fragment))
        .route("/runs", get(runs_page))
        .route("/runs/{id}", get(run_own_page))
        .route("/runs/{id}/output.txt", get(output_txt))
        .route("/runs/{id}/stop", post(crate::run_actions::page_stop_run))
}

/// The display zone the browser chose (cookie [`DISPLAY_ZONE_COOKIE`]); each job's zone without one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Zone(pub DisplayZone);

impl<S: Send + Sync> FromRequestParts<S> for Zone {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == DISPLAY_ZONE_COOKIE)
            .map(|(_, value)| value.to_owned());
        Ok(Self(DisplayZone::from_cookie(value.as_deref())))
    }
}

/// Login and logout.
pub fn auth_router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

/// The script, the style sheet and the health check.
pub fn static_router() -> Router<AppState> {
    Router::new()
        .route("/static/app.js", get(app_js))
        .route("/static/app.css", get(app_css))
        .route("/healthz", get(healthz))
}

async fn app_js() -> Response {
    static_file("text/javascript; charset=utf-8", include_str!("../static/app.js"))
}

async fn app_css() -> Response {
    static_file("text/css; charset=utf-8", include_str!("../static/app.css"))
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn healthz(State(state): State<AppState>) -> Result<&'static str> {
    state.store().ping().await?;
    Ok("ok")
}

/// What every page shows around its content.
#[derive(Clone, Debug)]
pub struct Chrome {
    pub mode: &'static str,
    pub user: String,
    pub csrf: String,
    pub can_logout: bool,
    pub kubernetes: bool,
    pub flash: Option<Flash>,
    /// The display zone's cookie value and the choices of the switch.
    pub zone: &'static str,
    pub zones: &'static [(&'static str, &'static str)],
    /// Which tab of the top bar is current ("jobs", "runs", "").
    pub section: &'static str,
}

impl Chrome {
    pub(crate) fn new(state: &AppState, caller: &Caller, zone: DisplayZone, section: &'static str) -> Self {
        Self {
            mode: if state.is_kubernetes() {
                "Kubernetes"
            } else {
                "standalone"
            },
            user: caller.principal.display(),
            csrf: caller.csrf(),
            can_logout: caller.session.as_ref().is_some_and(|s| s.token.is_some()),
            kubernetes: state.is_kubernetes(),
            flash: state.take_flash(caller),
            zone: zone.cookie_value(),
            zones: &DISPLAY_ZONES,
            section,
        }
    }
}

pub(crate) fn render<T: Template>(template: &T) -> Result<Html<String>> {
    template
        .render()
        .map(Html)
        .map_err(|e| AppError::Internal(format!("rendering a page: {e}")))
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate {
    chrome: Chrome,
    status: u16,
    heading: &'static str,
    message: String,
}

/// Turns error responses outside `/api/` into HTML pages (the API keeps its JSON), including
/// the refusals of the authentication middleware (CSRF, login).
pub(crate) async fn html_errors(request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    let Some(page) = response.extensions().get::<ErrorPage>().cloned() else {
        return response;
    };
    let caller = response.extensions().get::<Caller>().cloned();
    let heading = match page.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::UNAUTHORIZED => "Please log in",
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => "That did not work",
        StatusCode::CONFLICT => "Conflict",
        _ => "Something went wrong",
    };
    let chrome = Chrome {
        mode: "",
        user: caller.as_ref().map(|c| c.principal.display()).unwrap_or_default(),
        csrf: caller.as_ref().map(Caller::csrf).unwrap_or_default(),
        can_logout: caller
            .as_ref()
            .and_then(|c| c.session.as_ref())
            .is_some_and(|s| s.token.is_some()),
        kubernetes: false,
        flash: None,
        zone: "job",
        zones: &DISPLAY_ZONES,
        section: "",
    };
    let template = ErrorTemplate {
        chrome,
        status: page.status.as_u16(),
        heading,
        message: page.message,
    };
    match template.render() {
        Ok(html) => {
            let mut out = (page.status, Html(html)).into_response();
            // What the client is asked to do next survives the page: log in, or wait (a 429,
            // a 503 of an unreachable store).
            for (name, value) in response.headers() {
                if name == header::WWW_AUTHENTICATE || name == header::RETRY_AFTER {
                    out.headers_mut().insert(name, value.clone());
                }
            }
            out
        }
        Err(_) => response,
    }
}

/// The filters of the jobs list as shown and carried in links.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub name: String,
    pub status: String,
    pub namespace: String,
    pub state: String,
    /// The sort column (`next`, `name`, `last`, `status`; empty: next) and direction (`asc`/`desc`).
    pub sort: String,
    pub dir: String,
    /// `?name=…&status=…` (empty when no filter), appended to links so the filters stay.
    pub suffix: String,
}

impl ListQuery {
    fn from_query(q: &JobQuery) -> Self {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("name", &q.name),
            ("status", &q.status),
            ("namespace", &q.namespace),
            ("state", &q.state),
            ("sort", &q.sort),
            ("dir", &q.dir),
        ] {
            if !value.is_empty() {
                pairs.append_pair(key, value);
            }
        }
        if let Some(page) = q.page().ok().filter(|p| *p > 1) {
            pairs.append_pair("page", &page.to_string());
        }
        let encoded = pairs.finish();
        Self {
            name: q.name.clone(),
            status: q.status.clone(),
            namespace: q.namespace.clone(),
            state: q.state.clone(),
            sort: q.sort.clone(),
            dir: q.dir.clone(),
            suffix: if encoded.is_empty() {
                String::new()
            } else {
                format!("?{encoded}")
            },
        }
    }

    fn page_href(&self, page: u32) -> String {
        self.href(Some(page))
    }

    /// The sort column in effect.
    fn sort_column(&self) -> &str {
        match self.sort.as_str() {
            "" => "next",
            s => s,
        }
    }

    /// `aria-sort` of column `column`'s header.
    pub fn aria_sort(&self, column: &str) -> &'static str {
        match (self.sort_column() == column, self.dir == "desc") {
            (false, _) => "none",
            (true, false) => "ascending",
            (true, true) => "descending",
        }
    }

    /// The list sorted by `column`: ascending, or the other way when it is already sorted by it;
    /// from the first page, with the filters kept.
    pub fn sort_href(&self, column: &str) -> String {
        let dir = if self.sort_column() == column && self.dir != "desc" {
            "desc"
        } else {
            ""
        };
        let sorted = Self {
            sort: if column == "next" {
                String::new()
            } else {
                column.to_owned()
            },
            dir: dir.to_owned(),
            ..self.clone()
        };
        sorted.href(None)
    }

    /// The list with these filters, at `page` (`None`: the first page).
    fn href(&self, page: Option<u32>) -> String {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("name", &self.name),
            ("status", &self.status),
            ("namespace", &self.namespace),
            ("state", &self.state),
            ("sort", &self.sort),
            ("dir", &self.dir),
        ] {
            if !value.is_empty() {
                pairs.append_pair(key, value);
            }
        }
        if let Some(page) = page {
            pairs.append_pair("page", &page.to_string());
        }
        let query = pairs.finish();
        if query.is_empty() {
            "/".to_owned()
        } else {
            format!("/?{query}")
        }
    }
}

/// The output of one run, as the panel and the run's page show it.
#[derive(Clone, Debug)]
pub struct OutputView {
    pub run: RunView,
    /// The text cut by colour (ANSI codes rendered as classes, other escapes dropped).
    pub segments: Vec<crate::ansi::Segment>,
    pub truncated_bytes: i64,
    pub original_bytes: i64,
    /// Set while the run is in flight here: the page follows its output.
    pub live: Option<LiveOutputView>,
    /// The Stop button, for a run in flight ([`crate::run_actions`]).
    pub stop: Option<crate::run_actions::StopButton>,
}

/// A run in flight whose output is written here as it comes ([`crate::live`]).
#[derive(Clone, Debug)]
pub struct LiveOutputView {
    /// Where the page asks for what follows (`?offset=` is added).
    pub url: String,
    /// Bytes of output in `OutputView::segments` so far.
    pub offset: u64,
}

impl OutputView {
    /// The stored output, or for a run in flight in this process what it has written so far.
    fn new(state: &AppState, detail: data::RunDetail) -> Self {
        let live = state.live_output(&detail.run);
        let (segments, live) = match live {
            Some(shared) => {
                let captured = shared.lock().unwrap_or_else(|p| p.into_inner());
                let chunk = crate::live::chunk(&captured, 0, state.store().output_cap());
                let url = format!("/api/v1/runs/{}/live", detail.run.id);
                (
                    chunk.segments,
                    Some(LiveOutputView {
                        url,
                        offset: chunk.offset,
                    }),
                )
            }
            None => (crate::ansi::segments(&detail.output), None),
        };
        Self {
            truncated_bytes: detail.run.output_truncated_bytes,
            original_bytes: detail.run.output_bytes,
            segments,
            live,
            stop: None,
            run: detail.run,
        }
    }
}

/// The side panel of one job.
#[derive(Clone, Debug)]
pub struct PanelData {
    pub job: JobView,
    pub runs: Vec<RunView>,
    /// The run whose output is shown (-1: none).
    pub selected_run: i64,
    pub output: Option<OutputView>,
    pub csrf: String,
    pub kubernetes: bool,
    pub refresh_url: String,
    pub query_suffix: String,
    pub back_suffix: String,
    /// A run is in flight or a Run Now is pending: the panel says it is updating.
    pub live: bool,
    /// Links to the older and newer pages of runs (within the panel).
    pub older_href: Option<String>,
    pub newer_href: Option<String>,
    /// The newest run in words, for the live region ("Run #12 SUCCESS").
    pub latest: String,
    /// The job's newest incidents and where they went.
    pub alerts: Vec<data::AlertView>,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsTemplate {
    chrome: Chrome,
    query: ListQuery,
    status_options: Vec<(&'static str, &'static str)>,
    state_options: Vec<(&'static str, &'static str)>,
    jobs: Vec<JobView>,
    total: i64,
    page: u32,
    pages: i64,
    prev_href: Option<String>,
    next_href: Option<String>,
    selected: String,
    /// Where the table's rows refresh from.
    refresh_url: String,
    panel: Option<PanelData>,
    /// The page sorts by a time and shows jobs of several zones in their own: say that the
    /// order is the instant's, which the relative times show.
    zone_note: bool,
}

#[derive(Template)]
#[template(path = "panel_fragment.html")]
struct PanelTemplate {
    p: PanelData,
}

async fn jobs_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Zone(zone): Zone,
    Query(query): Query<JobQuery>,
) -> Result<Response> {
    render_jobs(&state, &caller, &query, None, zone).await
}

async fn job_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Zone(zone): Zone,
    Path((namespace, name)): Path<(String, String)>,
    Query(panel_query): Query<PanelQuery>,
    Query(query): Query<JobQuery>,
) -> Result<Response> {
    let panel = panel_data(
        &state,
        &caller,
        &namespace,
        &name,
        None,
        &panel_query,
        &query,
        zone,
    )
    .await?;
    render_jobs(&state, &caller, &query, Some(panel), zone).await
}

async fn run_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Zone(zone): Zone,
    Path((namespace, name, id)): Path<(String, String, String)>,
    Query(panel_query): Query<PanelQuery>,
    Query(query): Query<JobQuery>,
) -> Result<Response> {
    let id = data::run_id(&id)?;
    let panel = panel_data(
        &state,
        &caller,
        &namespace,
        &name,
        Some(id),
        &panel_query,
        &query,
        zone,
    )
    .await?;
    render_jobs(&state, &caller, &query, Some(panel), zone).await
}

/// The panel's own parameters: the run shown and the page of runs (cursors).
#[derive(Clone, Debug, Default, Deserialize)]
struct PanelQuery {
    #[serde(default)]
    run: String,
    #[serde(default)]
    before: String,
    #[serde(default)]
    after: String,
}

async fn panel_fragment(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Zone(zone): Zone,
    Path((namespace, name)): Path<(String, String)>,
    Query(panel_query): Query<PanelQuery>,
    Query(query): Query<JobQuery>,
) -> Result<Response> {
    let run = match panel_query.run.trim() {
        "" => None,
        id => Some(data::run_id(id)?),
    };
    let p = panel_data(
        &state,
        &caller,
        &namespace,
        &name,
        run,
        &panel_query,
        &query,
        zone,
    )
    .await?;
    Ok(render(&PanelTemplate { p })?.into_response())
}

#[derive(Template)]
#[template(path = "jobs_rows.html")]
struct JobRowsTemplate {
    chrome: Chrome,
    query: ListQuery,
    jobs: Vec<JobView>,
    selected: String,
}

/// The rows of the jobs table, for the page's refresh (`?selected=ns/name` marks the open job).
async fn jobs_fragment(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Zone(zone): Zone,
    Query(query): Query<JobQuery>,
    Query(selected): Query<SelectedQuery>,
) -> Result<Response> {
    query.check()?;
    let namespaces = caller.readable_namespaces(&state).await?;
    let per_page = query.per_page(state.config().page_size)?;
    let page = query.page()?;
    let (mut jobs, _) = data::list_jobs(&state, &query, namespaces.as_deref(), page, per_page, zone).await?;
    data::attach_health(&state, &mut jobs, zone).await?;
    let template = JobRowsTemplate {
        chrome: Chrome::new(&state, &caller, zone, "jobs"),
        query: ListQuery::from_query(&query),
        jobs,
        selected: selected.selected,
    };
    Ok(render(&template)?.into_response())
}

#[derive(Deserialize)]
struct SelectedQuery {
    #[serde(default)]
    selected: String,
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsTemplate {
    chrome: Chrome,
    query: RunQuery,
    rows: Vec<RunRow>,
    older_href: Option<String>,
    newer_href: Option<String>,
    status_options: Vec<(&'static str, &'static str)>,
    trigger_options: Vec<(&'static str, &'static str)>,
    filtered: bool,
    /// The search read its limit of runs before it filled the page.
    searched_part: bool,
    scan_budget: i64,
    /// The zone `since`/`until` are read in, for the hint.
    zone_name: String,
}

const RUN_STATUS_OPTIONS: [(&str, &str); 5] = [
    ("", "any"),
    ("SUCCESS", "succeeded"),
    ("FAILURE", "failed"),
    ("ERROR", "could not start"),
    ("RUNNING", "running"),
];

const TRIGGER_OPTIONS: [(&str, &str); 3] = [("", "any"), ("schedule", "schedule"), ("manual", "manual")];

/// The zone a display zone reads typed times in: the chosen one, else the default zone.
fn input_zone(zone: DisplayZone) -> chrono_tz::Tz {
    match zone {
        DisplayZone::Fixed(tz) => tz,
        DisplayZone::Job => timefmt::zone(jtp_crds::DEFAULT_TIME_ZONE),
    }
}

/// Runs across jobs, deleted jobs' included: filters, cursor pages, newest first.
async fn runs_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Zone(zone): Zone,
    Query(query): Query<RunQuery>,
) -> Result<Response> {
    let filter = query.to_filter(input_zone(zone), state.config().page_size)?;
    let namespaces = caller.readable_namespaces(&state).await?;
    let page = data::list_all_runs(&state, filter, namespaces, zone).await?;
    let href = |key: &str, cursor: &str| {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", &query.status),
            ("trigger", &query.trigger),
            ("job", &query.job),
            ("namespace", &query.namespace),
            ("since", &query.since),
            ("until", &query.until),
            ("q", &query.q),
            ("limit", &query.limit),
        ] {
            if !v.trim().is_empty() {
                pairs.append_pair(k, v.trim());
            }
        }
        pairs.append_pair(key, cursor);
        format!("/runs?{}", pairs.finish())
    };
    let filtered = [
        &query.status,
        &query.trigger,
        &query.job,
        &query.namespace,
        &query.since,
        &query.until,
        &query.q,
    ]
    .iter()
    .any(|v| !v.trim().is_empty());
    let template = RunsTemplate {
        chrome: Chrome::new(&state, &caller, zone, "runs"),
        older_href: page.older.as_deref().map(|c| href("before", c)),
        newer_href: page.newer.as_deref().map(|c| href("after", c)),
        rows: page.rows,
        status_options: RUN_STATUS_OPTIONS.to_vec(),
        trigger_options: TRIGGER_OPTIONS.to_vec(),
        filtered,
        searched_part: page.searched_part,
        scan_budget: jtp_store::SCAN_BUDGET,
        zone_name: input_zone(zone).name().to_owned(),
        query,
    };
    Ok(render(&template)?.into_response())
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunTemplate {
    chrome: Chrome,
    namespace: String,
    job: String,
    /// The job still exists (its panel can be opened).
    job_live: bool,
    /// For a job with parameters: its Run Now form, prefilled with this run's values.
    run_again_form: Option<String>,
    out: OutputView,
}

/// One run on a page of its own; works for the runs of deleted jobs too.
async fn run_own_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Zone(zone): Zone,
    Path(id): Path<String>,
) -> Result<Response> {
    let detail = data::readable_run(&state, &caller, data::run_id(&id)?, zone).await?;
    let template = RunTemplate {
        chrome: Chrome::new(&state, &caller, zone, "runs"),
        namespace: detail.job.namespace.clone(),
        job: detail.job.name.clone(),
        job_live: detail.job.deleted_at.is_none(),
        run_again_form: (!detail.job.spec.parameters.is_empty()).then(|| {
            crate::run_now::form_href(&detail.job.namespace, &detail.job.name, &detail.run.parameters)
        }),
        out: crate::run_actions::with_stop_button(OutputView::new(&state, detail), &caller, "run"),
    };
    Ok(render(&template)?.into_response())
}

async fn output_txt(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = data::run_id(&id)?;
    let detail = data::readable_run(&state, &caller, id, DisplayZone::Job).await?;
    let filename = format!("{}-run-{id}.txt", detail.job.name);
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        detail.output,
    )
        .into_response())
}

async fn render_jobs(
    state: &AppState,
    caller: &Caller,
    query: &JobQuery,
    panel: Option<PanelData>,
    zone: DisplayZone,
) -> Result<Response> {
    query.check()?;
    let namespaces = caller.readable_namespaces(state).await?;
    let per_page = query.per_page(state.config().page_size)?;
    let page = query.page()?;
    let (mut jobs, total) =
        data::list_jobs(state, query, namespaces.as_deref(), page, per_page, zone).await?;
    let pages = ((total + i64::from(per_page) - 1) / i64::from(per_page)).max(1);
    let list_query = ListQuery::from_query(query);
    if i64::from(page) > pages {
        // Past the last page (a bookmark, a list that shrank): the last page, not "page 99 of 1".
        let last = u32::try_from(pages).unwrap_or(u32::MAX);
        let target = list_query.href((last > 1).then_some(last));
        return Ok(Redirect::to(&target).into_response());
    }
    data::attach_health(state, &mut jobs, zone).await?;
    let by_time = list_query.aria_sort("next") != "none" || list_query.aria_sort("last") != "none";
    let zones_differ = jobs.windows(2).any(|w| w[0].time_zone != w[1].time_zone);
    let zone_note = matches!(zone, DisplayZone::Job) && by_time && zones_differ;
    let template = JobsTemplate {
        zone_note,
        chrome: Chrome::new(state, caller, zone, "jobs"),
        prev_href: (page > 1).then(|| list_query.page_href(page - 1)),
        next_href: (i64::from(page) < pages).then(|| list_query.page_href(page + 1)),
        query: list_query,
        status_options: STATUS_OPTIONS.to_vec(),
        state_options: STATE_OPTIONS.to_vec(),
        jobs,
        total,
        page,
        pages,
        selected: panel.as_ref().map(|p| p.job.key.clone()).unwrap_or_default(),
        refresh_url: format!(
            "/fragments/jobs?{}",
            url::form_urlencoded::Serializer::new(list_query_pairs(query))
                .append_pair(
                    "selected",
                    &panel.as_ref().map(|p| p.job.key.clone()).unwrap_or_default()
                )
                .finish()
        ),
        panel,
    };
    Ok(render(&template)?.into_response())
}

/// The jobs list's filters and page as a query string (without `?`).
fn list_query_pairs(query: &JobQuery) -> String {
    ListQuery::from_query(query)
        .suffix
        .trim_start_matches('?')
        .to_owned()
}

#[allow(clippy::too_many_arguments)]
async fn panel_data(
    state: &AppState,
    caller: &Caller,
    namespace: &str,
    name: &str,
    run: Option<i64>,
    panel_query: &PanelQuery,
    query: &JobQuery,
    zone: DisplayZone,
) -> Result<PanelData> {
    caller
        .require(state, Verb::Get, namespace, "read this job")
        .await?;
    let view = data::job_view(state, namespace, name, zone).await?;
    let cursor = |field: &str, text: &str| match text.trim() {
        "" => Ok(None),
        t => data::parse_cursor(field, t).map(Some),
    };
    let (before, after) = (
        cursor("before", &panel_query.before)?,
        cursor("after", &panel_query.after)?,
    );
    let (runs, older, newer) =
        data::list_runs(state, view.id, state.config().runs_in_panel, before, after, zone).await?;
    let output = match run {
        None => None,
        Some(id) => {
            let detail = data::get_run(state, id, zone)
                .await?
                .filter(|d| d.job.id == view.id)
                .ok_or_else(|| AppError::NotFound(format!("job {namespace}/{name} has no run #{id}")))?;
            let view = OutputView::new(state, detail);
            Some(crate::run_actions::with_stop_button(view, caller, "panel"))
        }
    };
    let live = view.run_now_requested.is_some() || runs.iter().any(|r| !r.status.is_finished());
    let list_query = ListQuery::from_query(query);
    let rest = list_query.suffix.trim_start_matches('?').to_owned();
    let with = |path: String, extra: &[(&str, String)]| {
        let mut pairs = url::form_urlencoded::Serializer::new(rest.clone());
        for (k, v) in extra {
            pairs.append_pair(k, v);
        }
        let q = pairs.finish();
        if q.is_empty() { path } else { format!("{path}?{q}") }
    };
    let base = format!("/jobs/{namespace}/{name}");
    let mut refresh_extra = Vec::new();
    if let Some(id) = run {
        refresh_extra.push(("run", id.to_string()));
    }
    // A later page of runs stays where it is; the first page follows new runs.
    if let Some(b) = before {
        refresh_extra.push(("before", data::encode_cursor(b)));
    }
    let page_path = match run {
        Some(id) => format!("{base}/runs/{id}"),
        None => base.clone(),
    };
    let latest = runs.first().map_or_else(
        || "No runs yet.".to_owned(),
        |r| {
            format!(
                "Latest run #{}: {}, started {}.",
                r.id, r.status_label, r.started.local
            )
        },
    );
    let alerts = data::job_alerts(state, view.id, zone.for_job(&view.time_zone)).await?;
    Ok(PanelData {
        alerts,
        job: view,
        selected_run: run.unwrap_or(-1),
        output,
        csrf: caller.csrf(),
        kubernetes: state.is_kubernetes(),
        refresh_url: with(format!("{base}/panel"), &refresh_extra),
        back_suffix: list_query.suffix.clone(),
        query_suffix: list_query.suffix,
        live,
        older_href: older.map(|c| with(page_path.clone(), &[("before", c)])),
        newer_href: newer.map(|c| with(page_path.clone(), &[("after", c)])),
        latest,
        runs,
    })
}

#[derive(Template)]
#[template(path = "job_form.html")]
struct FormTemplate {
    chrome: Chrome,
    form: JobForm,
    errors: FormErrors,
    editing: bool,
    action: String,
    csrf: String,
    kubernetes: bool,
    cancel_href: String,
    schedule_options: Vec<(&'static str, &'static str)>,
    interval_units: Vec<&'static str>,
    weekday_options: Vec<(&'static str, &'static str, bool)>,
    time_zones: &'static [&'static str],
    script_options: Vec<(&'static str, &'static str)>,
    concurrency_options: Vec<(&'static str, &'static str)>,
    repeated_time_options: Vec<(&'static str, &'static str)>,
    skipped_time_options: Vec<(&'static str, &'static str)>,
    /// "a copy of default/report" when the form clones a job.
    copy_of: String,
    /// The next runs of what the form holds ([`crate::jobpage`]); refreshed as you type.
    preview: String,
}

/// Where a form posts and what it is: a new job, a copy of one, or an edit.
pub(crate) struct FormTarget {
    editing: bool,
    action: String,
    cancel_href: String,
    copy_of: String,
}

impl FormTarget {
    fn new_job() -> Self {
        Self {
            editing: false,
            action: "/jobs".to_owned(),
            cancel_href: "/".to_owned(),
            copy_of: String::new(),
        }
    }

    fn edit(namespace: &str, name: &str) -> Self {
        Self {
            editing: true,
            action: format!("/jobs/{namespace}/{name}/edit"),
            cancel_href: format!("/jobs/{namespace}/{name}"),
            copy_of: String::new(),
        }
    }

    /// The create form of a copy of `namespace/name`, posting to its clone route.
    pub(crate) fn clone_of(namespace: &str, name: &str) -> Self {
        Self {
            editing: false,
            action: format!("/jobs/{namespace}/{name}/clone"),
            cancel_href: crate::jobpage::details_href(namespace, name),
            copy_of: format!("{namespace}/{name}"),
        }
    }
}

fn form_page(
    state: &AppState,
    caller: &Caller,
    form: JobForm,
    errors: FormErrors,
    editing: bool,
    status: StatusCode,
) -> Result<Response> {
    let target = if editing {
        FormTarget::edit(&form.namespace, &form.name)
    } else {
        FormTarget::new_job()
    };
    form_page_at(state, caller, target, form, errors, status)
}

/// The job form for `target`, with `errors` next to their fields.
pub(crate) fn form_page_at(
    state: &AppState,
    caller: &Caller,
    target: FormTarget,
    form: JobForm,
    errors: FormErrors,
    status: StatusCode,
) -> Result<Response> {
    let FormTarget {
        editing,
        action,
        cancel_href,
        copy_of,
    } = target;
    let weekday_options = jtp_crds::Weekday::ALL
        .iter()
        .map(|d| {
            (
                d.as_str(),
                d.title(),
                form.weekly_on.iter().any(|w| w == d.as_str()),
            )
        })
        .collect();
    let template = FormTemplate {
        chrome: Chrome::new(state, caller, DisplayZone::Job, ""),
        errors,
        editing,
        action,
        csrf: caller.csrf(),
        kubernetes: state.is_kubernetes(),
        cancel_href,
        schedule_options: vec![
            ("interval", "at an interval"),
            ("hourly", "every hour"),
            ("daily", "every day"),
            ("weekly", "on weekdays"),
            ("monthly", "every month"),
            ("cron", "cron expression"),
            ("manual", "manually only"),
        ],
        interval_units: vec!["seconds", "minutes", "hours", "days"],
        weekday_options,
        time_zones: TIME_ZONES.as_slice(),
        script_options: vec![
            ("inline", "shell script"),
            ("command", "command"),
            ("file", "script file"),
            ("configMap", "ConfigMap key"),
        ],
        concurrency_options: vec![
            ("Forbid", "skip the new run (Forbid)"),
            ("Allow", "run both (Allow)"),
            ("Replace", "stop the old run (Replace)"),
        ],
        repeated_time_options: vec![
            ("", "the schedule's default"),
            ("First", "run once, the first time (First)"),
            ("Second", "run once, the second time (Second)"),
            ("Both", "run both times (Both)"),
        ],
        skipped_time_options: vec![
            ("", "the schedule's default"),
            ("EndOfGap", "run when the clocks have gone forward (EndOfGap)"),
            ("Skip", "do not run for it (Skip)"),
        ],
        copy_of,
        preview: crate::jobpage::form_preview_html(&form),
        form,
    };
    Ok((status, render(&template)?).into_response())
}

async fn new_job_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    let namespace = if state.is_kubernetes() {
        "default".to_owned()
    } else {
        state.config().standalone_namespace.clone()
    };
    form_page(
        &state,
        &caller,
        JobForm::new_job(&namespace),
        FormErrors::default(),
        false,
        StatusCode::OK,
    )
}

/// The form's spec and every problem with it, as the API would report them.
fn checked_spec(
    form: &JobForm,
    base: Option<&ScheduledJobSpec>,
) -> std::result::Result<ScheduledJobSpec, FormErrors> {
    form.checked(base)
        .map_err(|errors| FormErrors::from_field_errors(&errors))
}

async fn create_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response> {
    create_from_form(&state, &caller, &body, None, FormTarget::new_job()).await
}

/// Creates a job from a posted form; what the form does not show comes from `base` (a clone's
/// original), else from the defaults. Invalid input comes back in the form of `target`.
pub(crate) async fn create_from_form(
    state: &AppState,
    caller: &Caller,
    body: &[u8],
    base: Option<&ScheduledJobSpec>,
    target: FormTarget,
) -> Result<Response> {
    let mut form = JobForm::from_urlencoded(body);
    form.name = form.name.trim().to_owned();
    form.namespace = if state.is_kubernetes() {
        form.namespace.trim().to_owned()
    } else {
        state.config().standalone_namespace.clone()
    };
    let spec = match checked_spec(&form, base) {
        Ok(spec) => spec,
        Err(errors) => {
            return form_page_at(
                state,
                caller,
                target,
                form,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    caller
        .require(state, Verb::Create, &form.namespace, "create jobs here")
        .await?;
    match state
        .create_job(&caller.principal, &form.namespace, &form.name, &spec)
        .await
    {
        Ok(()) => {}
        Err(AppError::Conflict(message)) => {
            let mut errors = FormErrors::default();
            errors.fields.insert("name".into(), vec![message]);
            return form_page_at(state, caller, target, form, errors, StatusCode::CONFLICT);
        }
        Err(AppError::Invalid(errors)) => {
            let errors = FormErrors::from_field_errors(&errors);
            return form_page_at(
                state,
                caller,
                target,
                form,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
        Err(e) => return Err(e),
    }
    let note = if state.is_kubernetes() {
        " The operator schedules it; it is listed once the operator has recorded it."
    } else {
        ""
    };
    state.set_flash(caller, "success", format!("Created job {}.{note}", form.name));
    // In a cluster the row exists only once the operator has mirrored the resource.
    let target = if state.is_kubernetes() {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("namespace", &form.namespace)
            .append_pair("name", &form.name)
            .finish();
        format!("/?{query}")
    } else {
        format!("/jobs/{}/{}", form.namespace, form.name)
    };
    Ok(Redirect::to(&target).into_response())
}

async fn edit_job_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response> {
    caller
        .require(&state, Verb::Get, &namespace, "read this job")
        .await?;
    let spec = state.spec_for_edit(&namespace, &name).await?;
    let form = JobForm::from_spec(&namespace, &name, &spec);
    form_page(&state, &caller, form, FormErrors::default(), true, StatusCode::OK)
}

async fn update_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response> {
    caller
        .require(&state, Verb::Patch, &namespace, "edit this job")
        .await?;
    let mut form = JobForm::from_urlencoded(&body);
    form.name = name.clone();
    form.namespace = namespace.clone();
    let base = state.spec_for_edit(&namespace, &name).await?;
    let spec = match checked_spec(&form, Some(&base)) {
        Ok(spec) => spec,
        Err(errors) => {
            return form_page(
                &state,
                &caller,
                form,
                errors,
                true,
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    match state
        .update_job(&caller.principal, &namespace, &name, &spec)
        .await
    {
        Ok(()) => {}
        Err(AppError::Invalid(errors)) => {
            let errors = FormErrors::from_field_errors(&errors);
            return form_page(
                &state,
                &caller,
                form,
                errors,
                true,
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
        Err(e) => return Err(e),
    }
    state.set_flash(&caller, "success", format!("Saved job {name}."));
    Ok(Redirect::to(&format!("/jobs/{namespace}/{name}")).into_response())
}

async fn delete_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response> {
    caller
        .require(&state, Verb::Delete, &namespace, "delete this job")
        .await?;
    state.delete_job(&caller.principal, &namespace, &name).await?;
    state.set_flash(
        &caller,
        "success",
        format!("Deleted job {name}; its runs stay recorded."),
    );
    Ok(Redirect::to("/").into_response())
}

#[derive(Deserialize)]
struct BackTo {
    /// Where the button was: `list` goes back to the jobs list (its filters in `q`), else the job.
    #[serde(default)]
    back: String,
    #[serde(default)]
    q: String,
}

async fn pause_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
    Form(back): Form<BackTo>,
) -> Result<Response> {
    set_suspended(&state, &caller, &namespace, &name, true, &back).await
}

async fn resume_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((namespace, name)): Path<(String, String)>,
    Form(back): Form<BackTo>,
) -> Result<Response> {
    set_suspended(&state, &caller, &namespace, &name, false, &back).await
}

async fn set_suspended(
    state: &AppState,
    caller: &Caller,
    namespace: &str,
    name: &str,
    suspend: bool,
    back: &BackTo,
) -> Result<Response> {
    let what = if suspend {
        "pause this job"
    } else {
        "resume this job"
    };
    caller.require(state, Verb::Patch, namespace, what).await?;
    state
        .set_suspended(&caller.principal, namespace, name, suspend)
        .await?;
    let done = if suspend {
        format!("Paused {name}: it does not start by its schedule until resumed (Run Now still works).")
    } else if state.is_kubernetes() {
        format!("Resumed {name}: the operator plans its next run from now.")
    } else {
        format!("Resumed {name}: its next run is planned from now.")
    };
    state.set_flash(caller, "success", done);
    // Only a query string of the list's own filters is carried back, never another address.
    let q = url::form_urlencoded::parse(back.q.trim_start_matches('?').as_bytes())
        .filter(|(k, _)| {
            ["name", "status", "namespace", "state", "page", "sort", "dir"].contains(&k.as_ref())
        })
        .fold(
            url::form_urlencoded::Serializer::new(String::new()),
            |mut s, (k, v)| {
                s.append_pair(&k, &v);
                s
            },
        )
        .finish();
    let q = if q.is_empty() {
        String::new()
    } else {
        format!("?{q}")
    };
    let target = if back.back == "list" {
        format!("/{q}")
    } else {
        format!("/jobs/{namespace}/{name}{q}")
    };
    Ok(Redirect::to(&target).into_response())
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginTemplate {
    prompt: &'static str,
    hint: &'static str,
    message: String,
}

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    expired: Option<String>,
}

fn login_template(state: &AppState, message: String) -> LoginTemplate {
    if state.is_kubernetes() {
        LoginTemplate {
            prompt: "Kubernetes bearer token",
            hint: "For example the output of: kubectl create token YOUR-SERVICEACCOUNT. \
                   What you may see and do follows your own RBAC rights.",
            message,
        }
    } else {
        LoginTemplate {
            prompt: "Access token",
            hint: "The token the portal was started with.",
            message,
        }
    }
}

fn logins_with_token(state: &AppState) -> bool {
    state.is_kubernetes() || matches!(state.config().local_auth, crate::LocalAuth::Token(_))
}

async fn login_page(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Result<Response> {
    if !logins_with_token(&state) {
        return Ok(Redirect::to("/").into_response());
    }
    let message = if q.expired.is_some() {
        "Your session ended or the token is no longer accepted; log in again.".to_owned()
    } else {
        String::new()
    };
    Ok(render(&login_template(&state, message))?.into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<AppState>,
    Extension(from): Extension<crate::auth::ClientKey>,
    Form(form): Form<LoginForm>,
) -> Result<Response> {
    if !logins_with_token(&state) {
        return Ok(Redirect::to("/").into_response());
    }
    let token = form.token.trim();
    let accepted = !token.is_empty() && state.principal_for_token(token, from).await?.is_some();
    if !accepted {
        let page = render(&login_template(
            &state,
            "That token was not accepted. Paste a valid, unexpired token.".to_owned(),
        ))?;
        return Ok((crate::auth::LOGIN_REFUSED, page).into_response());
    }
    let session = state.login_session(token.to_owned());
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, state.session_cookie(Some(&session)));
    Ok(response)
}

async fn logout(State(state): State<AppState>) -> Response {
    let target = if logins_with_token(&state) { "/login" } else { "/" };
    let mut response = Redirect::to(target).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, state.session_cookie(None));
    response
}

/// Name of the hidden CSRF field, for tests and templates.
pub const CSRF_FORM_FIELD: &str = CSRF_FIELD;
