//! The portal of Job Trigger Portal: server-rendered pages, a JSON API under `/api/v1`, and Run Now,
//! for both modes.
//!
//! - **Standalone**: [`AppState::standalone`] with a [`Store`] and the runner's wake-up
//!   [`Notify`]. Reads and writes go to the store; every write wakes the runner so it plans again at
//!   once.
//! - **Kubernetes**: [`AppState::kubernetes`] with a [`Store`] (the operator's SQL mirror) and a
//!   [`kube::Client`] with the portal's own identity. Reads come from the mirror; writes create, patch
//!   or delete `ScheduledJob` resources (the operator does the rest). Every request carries the user's
//!   bearer token, checked with TokenReview; every action is authorized with a SubjectAccessReview on
//!   the user's own rights (see [`auth`]).
//!
//! [`app`] builds the router (used as is by tests), [`serve`] runs it until a shutdown signal.

pub mod ansi;
pub mod api;
pub mod auth;
pub mod backend;
pub mod config;
pub mod data;
pub mod error;
pub mod follow;
pub mod form;
pub mod http;
pub mod jobpage;
pub mod live;
pub mod openapi;
pub mod pages;
pub mod run_actions;
pub mod run_now;
pub mod session;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timefmt;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use jtp_store::Store;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use auth::{Caller, Principal, Verb};
pub use config::{LocalAuth, PortalConfig, check_listen_policy};
pub use error::{AppError, Result};

/// Field manager of every write the portal makes to the Kubernetes API.
pub const FIELD_MANAGER: &str = "jtp-dashboard";

/// Where writes go.
#[derive(Clone)]
pub(crate) enum Mode {
    /// Rows in the store; `wake` tells the in-process runner to plan again, which shares the output
    /// of its runs in flight in `live`.
    Standalone { wake: Arc<Notify>, live: live::LiveRuns },
    /// ScheduledJob resources, written with the portal's own client after the user's rights are
    /// checked; the pod logs of runs in flight followed while their pages are open (`follow`).
    Kubernetes {
        client: kube::Client,
        follow: follow::Followers,
    },
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    mode: Mode,
    config: PortalConfig,
    auth: auth::AuthCache,
    descriptions: data::DescriptionCache,
    health: data::HealthCache,
}

impl AppState {
    /// A standalone portal: jobs and runs live in `store`; after each write (create, edit, delete,
    /// Run Now) the portal calls `wake.notify_one()` so the runner re-plans at once.
    ///
    /// The runner registers the output of its runs in flight in `live`, which their pages show as
    /// it is written.
    ///
    /// Without credentials in `config.local_auth`, anyone who reaches the port may do everything: call
    /// [`check_listen_policy`] before binding.
    pub fn standalone(store: Store, wake: Arc<Notify>, live: live::LiveRuns, config: PortalConfig) -> Self {
        Self::new(store, Mode::Standalone { wake, live }, config)
    }

    /// A portal in a cluster: reads from `store` (the operator's SQL mirror), writes ScheduledJob
    /// resources through `client`. `client`'s identity needs: create `tokenreviews` and
    /// `subjectaccessreviews`, and get/create/patch/delete `scheduledjobs.jobtrigger.io` in the
    /// namespaces it serves. Users authenticate with their own bearer token; `config.local_auth` is ignored.
    pub fn kubernetes(store: Store, client: kube::Client, config: PortalConfig) -> Self {
        Self::new(
            store,
            Mode::Kubernetes {
                client,
                follow: follow::Followers::default(),
            },
            config,
        )
    }

    fn new(store: Store, mode: Mode, config: PortalConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                mode,
                config,
                auth: auth::AuthCache::default(),
                descriptions: data::DescriptionCache::default(),
                health: data::HealthCache::default(),
            }),
        }
    }

    /// The store the portal reads.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration the portal was built with.
    pub fn config(&self) -> &PortalConfig {
        &self.inner.config
    }

    /// What run `run` has written so far while it is in flight, when the portal can see it:
    /// standalone, the runner's capture of this process; in a cluster, its pod's log, followed
    /// from the first read ([`follow`]). `None` for a run that has ended.
    pub(crate) fn live_output(&self, run: &data::RunView) -> Option<jtp_store::SharedOutput> {
        if run.status != jtp_crds::RunStatus::Running {
            return None;
        }
        match &self.inner.mode {
            Mode::Standalone { live, .. } => live.get(run.id),
            Mode::Kubernetes { client, follow } => follow.output(
                client,
                run.id,
                run.kubernetes_job.as_deref()?,
                self.store().output_cap(),
            ),
        }
    }

    /// True in Kubernetes mode.
    pub fn is_kubernetes(&self) -> bool {
        matches!(self.inner.mode, Mode::Kubernetes { .. })
    }
}

/// The whole portal: pages, `/api/v1`, login, static files, behind authentication and security headers.
pub fn app(state: AppState) -> Router {
    app_with(state, None)
}

/// [`app`], with `/metrics` answered by `metrics` when given (standalone mode serves the
/// scheduler's metrics on the portal's listener), behind the same authentication.
pub fn app_with(state: AppState, metrics: Option<Router>) -> Router {
    let mut router = Router::new()
        .merge(pages::router())
        .merge(jobpage::router())
        .nest("/api/v1", api::router().merge(jobpage::api_router()))
        .merge(pages::auth_router())
        .merge(pages::static_router());
    if let Some(metrics) = metrics {
        router = router.route_service("/metrics", metrics);
    }
    router
        .fallback(|| async { AppError::NotFound("no such page".to_owned()) })
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(middleware::from_fn(pages::html_errors))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Adds the security headers to every response. Scripts come only from `/static/` (no inline script),
/// nothing may frame the portal, and the browser must not guess content types.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    );
    set("x-content-type-options", "nosniff");
    set("x-frame-options", "DENY");
    set("referrer-policy", "same-origin");
    set("cross-origin-opener-policy", "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Serves the portal on `listener` until `shutdown` completes, then finishes the requests in flight;
/// with the server's limits ([`http`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, None, shutdown).await
}

/// [`serve`] of [`app_with`].
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    metrics: Option<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, kubernetes = state.is_kubernetes(), "portal listening");
    }
    http::serve(
        listener,
        app_with(state, metrics),
        http::Limits::for_this_process(),
        shutdown,
    )
    .await
}
