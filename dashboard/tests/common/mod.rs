//! Shared by the portal's integration tests: a real SQLite store in a temp dir, requests through
//! `app(state)` with `oneshot`, and small helpers to read pages.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use jtp_crds::{RunStatus, ScheduledJobSpec, Trigger};
use jtp_dashboard::{AppState, PortalConfig, app};
use jtp_store::{JobInput, RunFinish, RunStart, Store, StoreOptions};
use std::sync::Arc;
use tempfile::TempDir;
use tokio::sync::Notify;
use tower::ServiceExt;

/// A standalone portal on a fresh SQLite file.
pub struct Standalone {
    pub state: AppState,
    pub store: Store,
    pub wake: Arc<Notify>,
    pub dir: TempDir,
}

pub async fn store_in(dir: &TempDir, output_cap: Option<usize>) -> Store {
    let url = format!("sqlite://{}/jtp.db", dir.path().display());
    let mut options = StoreOptions::default();
    if let Some(cap) = output_cap {
        options.output_cap = cap;
    }
    Store::connect_with(&url, options)
        .await
        .expect("connect to SQLite")
}

pub async fn standalone_with(config: PortalConfig, output_cap: Option<usize>) -> Standalone {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, output_cap).await;
    let wake = Arc::new(Notify::new());
    let state = AppState::standalone(store.clone(), wake.clone(), config);
    Standalone {
        state,
        store,
        wake,
        dir,
    }
}

pub async fn standalone() -> Standalone {
    standalone_with(PortalConfig::default(), None).await
}

/// A job row written the way the standalone portal writes it.
pub async fn add_job(store: &Store, namespace: &str, name: &str, spec: &ScheduledJobSpec) -> i64 {
    let next_run = jtp_crds::validate(spec).unwrap().next_after(Utc::now());
    let input = JobInput {
        name,
        namespace,
        uid: None,
        spec,
        next_run,
    };
    store.create_job(&input).await.unwrap().id
}

/// A finished run with this output; returns its id.
pub async fn add_run(
    store: &Store,
    job_id: i64,
    status: RunStatus,
    exit_code: Option<i32>,
    output: &str,
) -> i64 {
    add_run_at(store, job_id, Utc::now(), status, exit_code, output).await
}

pub async fn add_run_at(
    store: &Store,
    job_id: i64,
    at: DateTime<Utc>,
    status: RunStatus,
    exit_code: Option<i32>,
    output: &str,
) -> i64 {
    let id = store
        .record_start(&RunStart {
            job_id,
            trigger: Trigger::Manual,
            scheduled_for: at,
            started_at: at,
            k8s_job_name: None,
            runner: Some("test".into()),
        })
        .await
        .unwrap();
    if status != RunStatus::Running {
        store
            .record_finish(
                id,
                &RunFinish {
                    status,
                    exit_code,
                    output: output.as_bytes(),
                    finished_at: at + chrono::Duration::milliseconds(1500),
                },
            )
            .await
            .unwrap();
    }
    id
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The session cookie this reply sets, as `name=value`.
    pub fn session_cookie(&self) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("jtp_session=") && !v.contains("Max-Age=0"))
            .map(|v| v.split(';').next().unwrap().to_owned())
    }
}

pub async fn send(state: &AppState, request: Request<Body>) -> Reply {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::HOST, "127.0.0.1:8080")
        .body(Body::empty())
        .unwrap()
}

pub fn get_with_cookie(uri: &str, cookie: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

/// A form POST as a browser sends it from the portal's own page.
pub fn post_form(uri: &str, cookie: &str, fields: &[(&str, &str)]) -> Request<Body> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    Request::post(uri)
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, "http://127.0.0.1:8080")
        .header("sec-fetch-site", "same-origin")
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

pub fn json_request(method: &str, uri: &str, body: Option<serde_json::Value>) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "127.0.0.1:8080");
    match body {
        Some(b) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

/// A browser session: its cookie and the CSRF token of its forms.
pub async fn browser_session(state: &AppState) -> (String, String) {
    let reply = send(state, get("/jobs/new")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let cookie = reply.session_cookie().expect("a session cookie");
    (cookie, csrf_of(&reply.body))
}

/// The value of the first hidden `csrf` field of a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a csrf field") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// The fields of the job form for a daily job, as a browser posts them.
pub fn daily_form<'a>(csrf: &'a str, name: &'a str, at: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("name", name),
        ("namespace", "default"),
        ("description", ""),
        ("schedule_type", "daily"),
        ("interval_every", "15"),
        ("interval_unit", "minutes"),
        ("hourly_minute", "0"),
        ("daily_at", at),
        ("weekly_at", "09:00"),
        ("monthly_day", "1"),
        ("monthly_at", "09:00"),
        ("cron", ""),
        ("time_zone", "Asia/Hong_Kong"),
        ("script_kind", "inline"),
        ("script_inline", "echo hello"),
        ("concurrency_policy", "Forbid"),
    ]
}
