//! The one error type of the portal. Its response is JSON (`{"error": …}` or, for invalid input,
//! `{"errors": [{"field", "message"}]}`); the pages router turns the same response into an HTML page
//! (see [`crate::pages`]), so handlers of both areas return `Result<_, AppError>`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jtp_crds::FieldError;
use serde_json::json;

/// Everything a handler can fail with. Internal causes are logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Csrf(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many failed authentications from one client: 429 with `Retry-After` (seconds).
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    #[error("the job store failed")]
    Store(#[source] jtp_store::Error),
    #[error("the Kubernetes API failed")]
    Kube(#[source] kube::Error),
    #[error("{0}")]
    Internal(String),
}

/// Result of the portal's handlers.
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// What the HTML layer needs to render an error page from an error response.
#[derive(Clone, Debug)]
pub struct ErrorPage {
    pub status: StatusCode,
    pub message: String,
}

impl AppError {
    /// A short static label, for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::NotFound(_) => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::Unauthorized(_) => "unauthorized",
            Self::Csrf(_) => "csrf",
            Self::BadRequest(_) => "bad_request",
            Self::Conflict(_) => "conflict",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Store(_) => "store",
            Self::Kube(_) => "kube",
            Self::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) | Self::Csrf(_) => StatusCode::FORBIDDEN,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Kube(kube::Error::Api(status)) if status.code == 409 => StatusCode::CONFLICT,
            Self::Kube(kube::Error::Api(status)) if status.code == 404 => StatusCode::NOT_FOUND,
            Self::Kube(_) => StatusCode::BAD_GATEWAY,
            Self::Store(jtp_store::Error::Conflict { .. }) => StatusCode::CONFLICT,
            Self::Store(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message a user sees: specific for their mistakes, generic for ours.
    pub fn public_message(&self) -> String {
        match self {
            Self::Invalid(errors) => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                format!("invalid input: {}", lines.join("; "))
            }
            Self::Store(jtp_store::Error::Conflict { .. }) => {
                "a concurrent change got there first; reload and try again".to_owned()
            }
            Self::Store(e) if e.is_transient() => {
                format!("the job store is unavailable right now; try again in {STORE_RETRY_AFTER} s")
            }
            Self::Store(_) => "the job store failed; the portal's log has the details".to_owned(),
            Self::Kube(kube::Error::Api(status)) if status.code == 409 || status.code == 422 => {
                status.message.clone()
            }
            Self::Kube(kube::Error::Api(status)) if status.code == 404 => "no such ScheduledJob".to_owned(),
            Self::Kube(_) => "the Kubernetes API failed; the portal's log has the details".to_owned(),
            Self::Internal(_) => "internal error; the portal's log has the details".to_owned(),
            other => other.to_string(),
        }
    }
}

/// Seconds a client is asked to wait (`Retry-After`) when the job store is briefly unreachable.
const STORE_RETRY_AFTER: u64 = 5;

/// The one mapping of store errors to responses: a missing row is the client's 404, a duplicate
/// name its 409; everything else stays a store error, whose status [`AppError::status`] picks
/// (409 for a lost concurrent write, 503 while the database is unreachable, 500 otherwise).
impl From<jtp_store::Error> for AppError {
    fn from(e: jtp_store::Error) -> Self {
        match e {
            jtp_store::Error::NotFound { what } => Self::NotFound(format!("{what} not found")),
            jtp_store::Error::AlreadyExists { what } => Self::Conflict(format!("{what} already exists")),
            other => Self::Store(other),
        }
    }
}

impl From<kube::Error> for AppError {
    fn from(e: kube::Error) -> Self {
        Self::Kube(e)
    }
}

impl From<jtp_crds::InvalidSpec> for AppError {
    fn from(e: jtp_crds::InvalidSpec) -> Self {
        Self::Invalid(e.errors)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(kind = self.label(), error = %self, cause = ?std::error::Error::source(&self), "request failed");
        } else {
            tracing::debug!(kind = self.label(), error = %self, "request refused");
        }
        let message = self.public_message();
        let body = match &self {
            Self::Invalid(errors) => json!({ "errors": errors }),
            _ => json!({ "error": message, "kind": self.label() }),
        };
        let mut response = (status, Json(body)).into_response();
        let retry_after = match &self {
            Self::TooManyRequests { retry_after, .. } => Some(*retry_after),
            Self::Store(e) if e.is_transient() => Some(STORE_RETRY_AFTER),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response.extensions_mut().insert(ErrorPage { status, message });
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response_of(e: jtp_store::Error) -> (StatusCode, Option<String>, String) {
        let error = AppError::from(e);
        let message = error.public_message();
        let response = error.into_response();
        let retry = response
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .map(|v| v.to_str().expect("an ASCII header").to_owned());
        (response.status(), retry, message)
    }

    #[test]
    fn store_errors_map_to_the_status_a_client_can_act_on() {
        let (status, _, message) = response_of(jtp_store::Error::NotFound { what: "run 7".into() });
        assert_eq!(
            (status, message.as_str()),
            (StatusCode::NOT_FOUND, "run 7 not found")
        );

        let (status, _, message) = response_of(jtp_store::Error::AlreadyExists {
            what: "job a/b".into(),
        });
        assert_eq!(
            (status, message.as_str()),
            (StatusCode::CONFLICT, "job a/b already exists")
        );

        let (status, _, message) = response_of(jtp_store::Error::Conflict {
            message: "duplicate key value violates unique constraint \"runs_pkey\"".into(),
            source: None,
        });
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(!message.contains("runs_pkey"), "internal detail shown: {message}");

        let (status, retry, message) = response_of(jtp_store::Error::Unavailable {
            message: "connection refused to 10.0.0.5".into(),
            source: None,
        });
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("5"));
        assert!(!message.contains("10.0.0.5"), "internal detail shown: {message}");

        let (status, retry, message) = response_of(jtp_store::Error::Corrupt {
            message: "spec of job 3 is not JSON".into(),
        });
        assert_eq!((status, retry), (StatusCode::INTERNAL_SERVER_ERROR, None));
        assert!(!message.contains("job 3"), "internal detail shown: {message}");
    }
}
