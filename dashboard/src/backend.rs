//! Writes, one way per mode: standalone writes store rows and wakes the runner; Kubernetes creates,
//! patches and deletes ScheduledJob resources and leaves the rest to the operator. Callers have
//! already validated the input and checked the user's rights.
//!
//! In Kubernetes mode every write but Run Now is sent **as the user**, by impersonation (user name,
//! uid, groups and extra; a ServiceAccount by its name alone, the API server adds its groups), so
//! the API server's own authorization, admission policies and audit log see the user and not the
//! portal. The chart grants the portal constrained impersonation (Kubernetes 1.36+): it may act
//! as anyone, but only to create, patch and delete ScheduledJobs. Run Now is the one write the
//! portal makes as itself, after checking the user's `trigger` right: the user need not be allowed
//! to patch the job.

use crate::auth::{KubeUser, Principal};
use crate::error::{AppError, Result};
use crate::{AppState, FIELD_MANAGER, Mode};
use axum::http::{self as http, HeaderValue};
use chrono::{DateTime, SecondsFormat, Utc};
use jtp_crds::{
    RUN_NOW_ANNOTATION, RUN_NOW_PARAMETERS_ANNOTATION, RUN_NOW_REQUESTER_ANNOTATION, ScheduledJob,
    ScheduledJobSpec,
};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// The 404 of a job that does not exist.
pub(crate) fn job_not_found(namespace: &str, name: &str) -> AppError {
    AppError::NotFound(format!("no job \"{name}\" in namespace \"{namespace}\""))
}

/// Turns the API server's 404 into the portal's, naming the job.
fn kube_err(namespace: &str, name: &str) -> impl Fn(kube::Error) -> AppError {
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    move |e| match &e {
        kube::Error::Api(status) if status.code == 404 => job_not_found(&namespace, &name),
        // Writes go as the user: this is the API server's own refusal (its RBAC or admission).
        kube::Error::Api(status) if status.code == 403 => {
            AppError::Forbidden(format!("the API server refused it: {}", status.message))
        }
        kube::Error::Api(status) if status.code == 409 => AppError::Conflict(format!(
            "a ScheduledJob \"{name}\" already exists in namespace \"{namespace}\""
        )),
        kube::Error::Api(status) if status.code == 422 => AppError::Invalid(vec![jtp_crds::FieldError::new(
            "spec",
            format!("the API server refused the job: {}", status.message),
        )]),
        _ => AppError::Kube(e),
    }
}

/// The prefix of ServiceAccount user names.
pub(crate) const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

fn header(value: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(value)
        .map_err(|_| AppError::BadRequest("the user name cannot be sent to the API server".to_owned()))
}

/// `request` sent as `user`: the impersonation headers. A ServiceAccount is impersonated by its
/// name alone (the API server gives it its groups; its token's extra describes the token, not the
/// account); anyone else with their uid, groups and extra.
fn as_user(mut request: http::Request<Vec<u8>>, user: &KubeUser) -> Result<http::Request<Vec<u8>>> {
    let headers = request.headers_mut();
    headers.insert("impersonate-user", header(&user.username)?);
    if !user.username.starts_with(SERVICE_ACCOUNT_PREFIX) {
        if let Some(uid) = &user.uid {
            headers.insert("impersonate-uid", header(uid)?);
        }
        for group in &user.groups {
            headers.append("impersonate-group", header(group)?);
        }
        for (key, values) in &user.extra {
            let key: String = url::form_urlencoded::byte_serialize(key.to_lowercase().as_bytes()).collect();
            let name = http::HeaderName::from_bytes(format!("impersonate-extra-{key}").as_bytes())
                .map_err(|_| AppError::BadRequest(format!("the user's extra {key:?} cannot be sent")))?;
            for value in values {
                headers.append(name.clone(), header(value)?);
            }
        }
    }
    Ok(request)
}

/// Sends `request` as `principal` (a Kubernetes user; anyone else: as the portal).
async fn send_as<T: serde::de::DeserializeOwned>(
    client: &kube::Client,
    principal: &Principal,
    request: std::result::Result<http::Request<Vec<u8>>, kube::core::request::Error>,
) -> std::result::Result<T, kube::Error> {
    let request = request.map_err(kube::Error::BuildRequest)?;
    let request = match principal {
        Principal::Kube(user) => as_user(request, user)
            .map_err(|e| kube::Error::BuildRequest(kube::core::request::Error::Validation(e.to_string())))?,
        _ => request,
    };
    client.request(request).await
}

fn jobs_request(namespace: &str) -> kube::core::Request {
    use kube::Resource;
    kube::core::Request::new(ScheduledJob::url_path(&(), Some(namespace)))
}

impl AppState {
    fn jobs_api(client: &kube::Client, namespace: &str) -> Api<ScheduledJob> {
        Api::namespaced(client.clone(), namespace)
    }

    fn wake_runner(&self) {
        if let Mode::Standalone { wake, .. } = &self.inner.mode {
            wake.notify_one();
        }
    }

    /// Creates a job, as `who`. A job of that name in that namespace is a conflict (409).
    pub(crate) async fn create_job(
        &self,
        who: &Principal,
        namespace: &str,
        name: &str,
        spec: &ScheduledJobSpec,
    ) -> Result<()> {
        match &self.inner.mode {
            Mode::Standalone { .. } => {
                crate::data::insert_job(self, namespace, name, spec).await?;
                self.wake_runner();
            }
            Mode::Kubernetes { client, .. } => {
                let mut job = ScheduledJob::new(name, spec.clone());
                job.metadata.namespace = Some(namespace.to_owned());
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PostParams::default()
                };
                let body = serde_json::to_vec(&job)
                    .map_err(|e| AppError::Internal(format!("serializing the job: {e}")))?;
                send_as::<ScheduledJob>(client, who, jobs_request(namespace).create(&params, body))
                    .await
                    .map_err(kube_err(namespace, name))?;
            }
        }
        Ok(())
    }

    /// Replaces a job's spec. Kubernetes: a merge patch that also sets to null what the new spec
    /// leaves out, so switching from daily to weekly does not leave both set.
    pub(crate) async fn update_job(
        &self,
        who: &Principal,
        namespace: &str,
        name: &str,
        spec: &ScheduledJobSpec,
    ) -> Result<()> {
        match &self.inner.mode {
            Mode::Standalone { .. } => {
                crate::data::update_job(self, namespace, name, spec).await?;
                self.wake_runner();
            }
            Mode::Kubernetes { client, .. } => {
                let api = Self::jobs_api(client, namespace);
                let live = api.get(name).await.map_err(kube_err(namespace, name))?;
                let old = serde_json::to_value(&live.spec)
                    .map_err(|e| AppError::Internal(format!("serializing the old spec: {e}")))?;
                let new = serde_json::to_value(spec)
                    .map_err(|e| AppError::Internal(format!("serializing the spec: {e}")))?;
                // resourceVersion makes the patch fail (409) if someone changed the job meanwhile.
                let patch = json!({
                    "metadata": { "resourceVersion": live.metadata.resource_version },
                    "spec": merge_patch_between(&old, &new),
                });
                Self::merge_patch(client, who, namespace, name, &patch).await?;
            }
        }
        Ok(())
    }

    /// Deletes a job, as `who`; its runs stay in the store.
    pub(crate) async fn delete_job(&self, who: &Principal, namespace: &str, name: &str) -> Result<()> {
        match &self.inner.mode {
            Mode::Standalone { .. } => {
                crate::data::delete_job(self, namespace, name).await?;
                self.wake_runner();
            }
            Mode::Kubernetes { client, .. } => {
                send_as::<serde_json::Value>(
                    client,
                    who,
                    jobs_request(namespace).delete(name, &DeleteParams::background()),
                )
                .await
                .map_err(kube_err(namespace, name))?;
            }
        }
        Ok(())
    }

    /// Asks for one run now, recorded as asked for by `requester`, with the parameter values
    /// `parameters` (already checked against the job's, see [`crate::run_now`]). Kubernetes: the
    /// run-now annotation set to `now` (RFC3339 UTC), the requester and the parameters annotation
    /// (removed when there are none), in one merge patch (the caller has checked the `trigger`
    /// right, which is all the user needs); standalone: the store's run-now request, then the
    /// runner is woken.
    pub(crate) async fn run_now(
        &self,
        namespace: &str,
        name: &str,
        now: DateTime<Utc>,
        requester: &str,
        parameters: &jtp_crds::ParameterValues,
    ) -> Result<()> {
        match &self.inner.mode {
            Mode::Standalone { .. } => {
                crate::data::request_run_now(self, namespace, name, now, requester, parameters).await?;
                self.wake_runner();
            }
            Mode::Kubernetes { client, .. } => {
                let value = now.to_rfc3339_opts(SecondsFormat::Millis, true);
                let values = (!parameters.is_empty())
                    .then(|| serde_json::to_string(parameters))
                    .transpose()
                    .map_err(|e| AppError::Internal(format!("encoding the parameters: {e}")))?;
                let patch = json!({ "metadata": { "annotations": {
                    RUN_NOW_ANNOTATION: value,
                    RUN_NOW_REQUESTER_ANNOTATION: requester,
                    RUN_NOW_PARAMETERS_ANNOTATION: values,
                } } });
                // As the portal itself: the user's `trigger` right was checked, and they need
                // not be allowed to patch the job.
                Self::merge_patch(client, &Principal::Anonymous, namespace, name, &patch).await?;
            }
        }
        Ok(())
    }

    /// A JSON merge patch of one ScheduledJob, as `who`, with the portal's field manager.
    pub(crate) async fn merge_patch(
        client: &kube::Client,
        who: &Principal,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<()> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        send_as::<ScheduledJob>(
            client,
            who,
            jobs_request(namespace).patch(name, &params, &Patch::Merge(patch)),
        )
        .await
        .map_err(kube_err(namespace, name))?;
        Ok(())
    }

    /// Pauses (`suspend`) or resumes a job and nothing else. Kubernetes: a merge patch of
    /// `spec.suspend` alone; standalone: the row's spec with `suspend` changed, so resuming plans
    /// the next run from now (the run policy's rule for edits of when a job runs).
    pub(crate) async fn set_suspended(
        &self,
        who: &Principal,
        namespace: &str,
        name: &str,
        suspend: bool,
    ) -> Result<()> {
        match &self.inner.mode {
            Mode::Standalone { .. } => {
                let mut spec = self.spec_for_edit(namespace, name).await?;
                if spec.suspend != suspend {
                    spec.suspend = suspend;
                    crate::data::update_job(self, namespace, name, &spec).await?;
                    self.wake_runner();
                }
            }
            Mode::Kubernetes { client, .. } => {
                let patch = json!({ "spec": { "suspend": suspend } });
                Self::merge_patch(client, who, namespace, name, &patch).await?;
            }
        }
        Ok(())
    }

    /// The spec to edit: in Kubernetes mode the live resource (the mirror may lag and leaves out
    /// nothing, but the resource is what the patch replaces); standalone the stored row.
    pub(crate) async fn spec_for_edit(&self, namespace: &str, name: &str) -> Result<ScheduledJobSpec> {
        match &self.inner.mode {
            Mode::Standalone { .. } => crate::data::get_job(self, namespace, name)
                .await?
                .map(|j| j.spec)
                .ok_or_else(|| job_not_found(namespace, name)),
            Mode::Kubernetes { client, .. } => Ok(Self::jobs_api(client, namespace)
                .get(name)
                .await
                .map_err(kube_err(namespace, name))?
                .spec),
        }
    }
}

/// A JSON merge patch (RFC 7396) that turns `old` into `new`: keys missing from `new` become null.
pub fn merge_patch_between(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = serde_json::Map::new();
            for (key, value) in new {
                let entry = match old.get(key) {
                    Some(previous) => merge_patch_between(previous, value),
                    None => value.clone(),
                };
                patch.insert(key.clone(), entry);
            }
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_removes_what_the_new_spec_leaves_out() {
        let old = serde_json::to_value(ScheduledJobSpec::daily("09:00")).unwrap();
        let new = serde_json::to_value(ScheduledJobSpec::hourly(5)).unwrap();
        let patch = merge_patch_between(&old, &new);
        assert_eq!(patch["schedule"]["daily"], serde_json::Value::Null);
        assert_eq!(patch["schedule"]["hourly"]["minute"], 5);
    }
}
