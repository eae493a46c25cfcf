//! Actions on one run: **stop** a run in flight, from its page, the runs panel
//! (`POST /runs/{id}/stop`) and the API (`POST /api/v1/runs/{id}/stop`).
//!
//! Standalone, the runner of this process ends the run's whole process tree (its scope: a cgroup
//! or its tagged processes) and records it as FAILURE "stopped by <who>". In a cluster the portal
//! writes the annotation `stop.jobtrigger.io/<Job name>: <who>` on the ScheduledJob, as the user
//! (like every write but Run Now); the operator records the run FAILURE "stopped by <who>" and
//! deletes its Job with background propagation, so its pods go too. Either way the run's one row
//! is finished once, by the one writer of that mode's runs.
//!
//! Who may stop: the right to `patch` the ScheduledJob (the right that pauses and edits it, and
//! the one a `kubectl annotate` of the stop annotation needs). `trigger` alone does not stop
//! runs: it lets people start runs without the power to interrupt the job's work.

use crate::auth::{Caller, Verb};
use crate::data;
use crate::error::{AppError, Result};
use crate::timefmt::DisplayZone;
use crate::{AppState, Mode};
use axum::Json;
use axum::extract::{Extension, Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use jtp_crds::{RunStatus, STOP_RUN_ANNOTATION_PREFIX};
use serde::Deserialize;
use serde_json::json;

/// What a stop request did: asked for the run to end (it ends within seconds).
pub(crate) struct StopAsked {
    pub id: i64,
    pub namespace: String,
    pub job: String,
    pub by: String,
}

impl AppState {
    /// Asks for run `id` to stop, as `caller`. 404 for a run they may not read, 403 without the
    /// right to patch its job, 409 for a run that is not in flight (ended, or not stoppable here).
    pub(crate) async fn stop_run(&self, caller: &Caller, id: &str) -> Result<StopAsked> {
        let id = data::run_id(id)?;
        let detail = data::readable_run(self, caller, id, DisplayZone::Job).await?;
        let namespace = detail.job.namespace.clone();
        caller
            .require(self, Verb::Patch, &namespace, "stop this job's runs")
            .await?;
        if detail.run.status != RunStatus::Running {
            return Err(AppError::Conflict(format!(
                "run #{id} has already ended ({}): there is nothing to stop",
                detail.run.status
            )));
        }
        let by = caller.principal.requester();
        match &self.inner.mode {
            Mode::Standalone { live, .. } => {
                if !live.stop(id, &by) {
                    return Err(AppError::Conflict(format!(
                        "run #{id} is not in flight in this runner (it is ending, just starting, or runs \
                         in another runner sharing the database): try again in a moment, or stop it from \
                         that runner's portal"
                    )));
                }
            }
            Mode::Kubernetes { client, .. } => {
                let job_name = detail
                    .run
                    .kubernetes_job
                    .as_deref()
                    .map(|n| n.split_once('/').map_or(n, |(_, name)| name))
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        AppError::Conflict(format!(
                            "run #{id} has no Kubernetes Job yet: try again in a moment"
                        ))
                    })?;
                let key = format!("{STOP_RUN_ANNOTATION_PREFIX}{job_name}");
                let patch = json!({ "metadata": { "annotations": { key: by } } });
                Self::merge_patch(client, &caller.principal, &namespace, &detail.job.name, &patch).await?;
            }
        }
        tracing::info!(run = id, by = %by, "stop requested");
        Ok(StopAsked {
            id,
            namespace,
            job: detail.job.name,
            by,
        })
    }
}

/// `POST /api/v1/runs/{id}/stop`: 202 with the request (the run ends within seconds; poll the run).
pub(crate) async fn api_stop_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response> {
    let asked = state.stop_run(&caller, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": asked.id,
            "namespace": asked.namespace,
            "job": asked.job,
            "stopRequestedBy": asked.by,
        })),
    )
        .into_response())
}

/// Where the page's Stop button was: `panel` goes back to the job's panel with the run open.
#[derive(Deserialize)]
pub(crate) struct StopForm {
    #[serde(default)]
    back: String,
}

/// `POST /runs/{id}/stop` (the Stop button): a flash message, back to where it was pressed.
pub(crate) async fn page_stop_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Form(form): Form<StopForm>,
) -> Result<Response> {
    let asked = state.stop_run(&caller, &id).await?;
    let how = if state.is_kubernetes() {
        "the operator deletes its Job and records it as FAILURE"
    } else {
        "its processes are being ended and it is recorded as FAILURE"
    };
    state.set_flash(
        &caller,
        "success",
        format!(
            "Stop requested for run #{}: {how} (stopped by {}).",
            asked.id, asked.by
        ),
    );
    let target = if form.back == "panel" {
        format!("/jobs/{}/{}/runs/{}", asked.namespace, asked.job, asked.id)
    } else {
        format!("/runs/{}", asked.id)
    };
    Ok(Redirect::to(&target).into_response())
}

/// The Stop button of a run's output view (the run's page and the panel).
#[derive(Clone, Debug)]
pub struct StopButton {
    pub csrf: String,
    /// Where the button is: `panel` or `run`.
    pub back: &'static str,
}

/// `view` with its Stop button when the run is in flight.
pub(crate) fn with_stop_button(
    mut view: crate::pages::OutputView,
    caller: &Caller,
    back: &'static str,
) -> crate::pages::OutputView {
    if view.run.status == RunStatus::Running {
        view.stop = Some(StopButton {
            csrf: caller.csrf(),
            back,
        });
    }
    view
}
