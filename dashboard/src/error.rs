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

impl From<jtp_store::Error> for AppError {
    fn from(e: jtp_store::Error) -> Self {
        Self::Store(e)
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
        if let Self::TooManyRequests { retry_after, .. } = &self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after),
            );
        }
        response.extensions_mut().insert(ErrorPage { status, message });
        response
    }
}
