//! Shared by the portal's integration tests: a real SQLite store in a temp dir, requests through
//! `app(state)` with `oneshot`, and small helpers to read pages.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use jtp_crds::{RunStatus, ScheduledJobSpec, Trigger};
use jtp_dashboard::{AppState, PortalConfig, app};
use jtp_store::{FinishEffects, JobInput, RunFinish, RunStart, Store, StoreOptions};
use std::sync::Arc;
use tempfile::TempDir;
use tokio::sync::Notify;
use tower::ServiceExt;

/// A standalone portal on a fresh SQLite file.
pub struct Standalone {
    pub state: AppState,
    pub store: Store,
    pub wake: Arc<Notify>,
    /// Plays the runner's part for live output: a run's output registered here shows on its page.
    pub live: jtp_dashboard::live::LiveRuns,
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
    let live = jtp_dashboard::live::LiveRuns::default();
    let state = AppState::standalone(store.clone(), wake.clone(), live.clone(), config);
    Standalone {
        state,
        store,
        wake,
        live,
        dir,
    }
}

pub async fn standalone() -> Standalone {
    standalone_with(PortalConfig::default(), None).await
}

/// A job row written the way the standalone portal writes it.
pub async fn add_job(store: &Store, namespace: &str, name: &str, spec: &ScheduledJobSpec) -> i64 {
    let next_run = jtp_crds::validate(jtp_crds::JobId { namespace, name }, spec)
        .unwrap()
        .next_after(Utc::now());
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
    add_run_by(store, job_id, at, status, exit_code, output, None).await
}

/// A manual run as [`add_run_at`] records it, asked for by `requester`.
pub async fn add_run_by(
    store: &Store,
    job_id: i64,
    at: DateTime<Utc>,
    status: RunStatus,
    exit_code: Option<i32>,
    output: &str,
    requester: Option<&str>,
) -> i64 {
    let id = store
        .record_attempt_start(
            &RunStart {
                job_id,
                trigger: Trigger::Manual,
                scheduled_for: at,
                started_at: at,
                k8s_job_name: None,
                runner: Some("test".into()),
                requester: requester.map(str::to_owned),
                parameters: Default::default(),
            },
            1,
        )
        .await
        .unwrap();
    if status != RunStatus::Running {
        store
            .record_attempt_finish(
                id,
                &RunFinish {
                    status,
                    exit_code,
                    output: output.as_bytes(),
                    finished_at: at + chrono::Duration::milliseconds(1500),
                },
                FinishEffects::default(),
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

    /// The `Cookie` header a browser sends after this reply, which had `cookie`: this reply's
    /// `Set-Cookie`s added, replaced or (with `Max-Age=0`) removed. The flash message travels so.
    pub fn next_cookie(&self, cookie: &str) -> String {
        let mut jar: Vec<(String, String)> = cookie
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for set in self
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let Some((name, value)) = set.split(';').next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            jar.retain(|(k, _)| k != name);
            if !set.contains("Max-Age=0") {
                jar.push((name.to_owned(), value.to_owned()));
            }
        }
        jar.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
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

/// Kubernetes-mode support: the CRD applied, a namespace with an editor, a reader and an owner
/// ServiceAccount, their tokens, and the portal's own admin client.
pub mod kube_env {
    use super::*;
    use jtp_crds::{RUN_NOW_ANNOTATION, ScheduledJob};
    use jtp_testenv::{TestNamespace, kubectl};
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    use kube::Api;
    use kube::api::{ListParams, PostParams};
    use serde_json::json;
    use std::collections::HashMap;
    use std::path::Path;

    /// `request` as `token`'s holder sends it: an `Authorization: Bearer` header.
    pub fn bearer(mut request: Request<Body>, token: &str) -> Request<Body> {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        request
    }

    /// Applies the CRD from `crds/scheduledjob.yaml` (server-side apply with force, so idempotent
    /// and safe when other tests apply it too) and waits until it is served.
    pub async fn apply_crd(client: &kube::Client) {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        use kube::api::{Patch, PatchParams};
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/scheduledjob.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let crd: CustomResourceDefinition = serde_yaml::from_str(&text).unwrap();
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        api.patch(
            "scheduledjobs.jobtrigger.io",
            &PatchParams::apply("jtp-dashboard-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        tokio::task::spawn_blocking(|| {
            kubectl(&[
                "wait",
                "--for=condition=Established",
                "crd/scheduledjobs.jobtrigger.io",
                "--timeout=60s",
            ])
        })
        .await
        .unwrap();
    }

    pub struct KubeEnv {
        pub client: kube::Client,
        pub ns: TestNamespace,
        /// get, list, patch (edit and pause, but not Run Now)
        pub editor: String,
        /// get, list, trigger (Run Now, but not edit)
        pub runner: String,
        /// get, list
        pub reader: String,
        /// everything on scheduledjobs
        pub owner: String,
    }

    fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).expect("test manifest matches the Kubernetes type")
    }

    async fn account(client: &kube::Client, ns: &str, name: &str, verbs: &[&str]) -> String {
        let pp = PostParams::default();
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        sas.create(&pp, &from_json(json!({ "metadata": { "name": name } })))
            .await
            .unwrap();
        let roles: Api<Role> = Api::namespaced(client.clone(), ns);
        roles
            .create(
                &pp,
                &from_json(json!({
                    "metadata": { "name": format!("sj-{name}") },
                    "rules": [{ "apiGroups": ["jobtrigger.io"], "resources": ["scheduledjobs"], "verbs": verbs }]
                })),
            )
            .await
            .unwrap();
        let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
        bindings
            .create(
                &pp,
                &from_json(json!({
                    "metadata": { "name": format!("sj-{name}") },
                    "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("sj-{name}") },
                    "subjects": [{ "kind": "ServiceAccount", "name": name, "namespace": ns }]
                })),
            )
            .await
            .unwrap();
        kubectl(&["create", "token", name, "-n", ns, "--duration=1h"])
            .trim()
            .to_owned()
    }

    impl KubeEnv {
        pub async fn new(prefix: &str) -> Self {
            let client = jtp_testenv::cluster().await;
            apply_crd(&client).await;
            let ns = TestNamespace::new(&client, prefix).await;
            let editor = account(&client, ns.name(), "editor", &["get", "list", "patch"]).await;
            let runner = account(&client, ns.name(), "runner", &["get", "list", "trigger"]).await;
            let reader = account(&client, ns.name(), "reader", &["get", "list"]).await;
            let owner = account(
                &client,
                ns.name(),
                "owner",
                &[
                    "get", "list", "watch", "create", "patch", "update", "delete", "trigger",
                ],
            )
            .await;
            Self {
                client,
                ns,
                editor,
                runner,
                reader,
                owner,
            }
        }

        pub fn jobs(&self) -> Api<ScheduledJob> {
            Api::namespaced(self.client.clone(), self.ns.name())
        }

        pub async fn create_job(&self, name: &str, spec: ScheduledJobSpec) -> ScheduledJob {
            self.jobs()
                .create(&PostParams::default(), &ScheduledJob::new(name, spec))
                .await
                .unwrap()
        }
    }

    /// Plays the operator's part that the portal relies on, against the real API server and the
    /// real store: mirrors the namespace's ScheduledJobs into the store, and records one run for
    /// each new Run Now annotation (with `output`, and the requester annotation's name, as the
    /// operator does). Returns how many runs it recorded.
    pub struct Mirror {
        pub seen_run_now: HashMap<String, String>,
        pub output: String,
    }

    impl Mirror {
        pub fn new(output: &str) -> Self {
            Self {
                seen_run_now: HashMap::new(),
                output: output.to_owned(),
            }
        }

        pub async fn sync(&mut self, api: &Api<ScheduledJob>, store: &Store) -> usize {
            let mut runs = 0;
            let now = Utc::now();
            let Ok(list) = api.list(&ListParams::default()).await else {
                return 0;
            };
            for job in list.items {
                let (Some(name), Some(namespace), Some(uid)) = (
                    job.metadata.name.clone(),
                    job.metadata.namespace.clone(),
                    job.metadata.uid.clone(),
                ) else {
                    continue;
                };
                let id = jtp_crds::JobId {
                    namespace: &namespace,
                    name: &name,
                };
                let next_run = jtp_crds::validate(id, &job.spec)
                    .ok()
                    .and_then(|c| c.next_after(now));
                let input = JobInput {
                    name: &name,
                    namespace: &namespace,
                    uid: Some(&uid),
                    spec: &job.spec,
                    next_run,
                };
                let Ok(row) = store.upsert_job(&input).await else {
                    continue;
                };
                let annotation = job
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(RUN_NOW_ANNOTATION))
                    .cloned();
                if let Some(value) = annotation
                    && self.seen_run_now.get(&uid) != Some(&value)
                {
                    self.seen_run_now.insert(uid.clone(), value.clone());
                    let requester = job
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(jtp_crds::RUN_NOW_REQUESTER_ANNOTATION))
                        .cloned();
                    let at = DateTime::parse_from_rfc3339(&value)
                        .map(|t| t.with_timezone(&Utc))
                        .unwrap_or(now);
                    let id = store
                        .record_attempt_start(
                            &RunStart {
                                job_id: row.id,
                                trigger: Trigger::Manual,
                                scheduled_for: at,
                                started_at: Utc::now(),
                                k8s_job_name: Some(format!("{name}-manual-{}", at.timestamp())),
                                runner: None,
                                requester,
                                parameters: Default::default(),
                            },
                            1,
                        )
                        .await
                        .unwrap();
                    store
                        .record_attempt_finish(
                            id,
                            &RunFinish {
                                status: RunStatus::Success,
                                exit_code: Some(0),
                                output: self.output.as_bytes(),
                                finished_at: Utc::now(),
                            },
                            FinishEffects::default(),
                        )
                        .await
                        .unwrap();
                    runs += 1;
                }
            }
            runs
        }
    }
}

/// The portal served on 127.0.0.1 with a free port until the returned sender is dropped or used.
pub async fn serve_portal(
    state: AppState,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        jtp_dashboard::serve(listener, state, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (format!("http://127.0.0.1:{}", addr.port()), stop, server)
}
