//! The crate's one error type, and the JSON error every endpoint answers with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bindspace_core::ErrorKind;

/// What can go wrong serving the API or writing an export.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] bindspace::Error),
    /// A restore could not be planned or run.
    #[error(transparent)]
    Pitr(#[from] bindspace_pitr::Error),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] bindspace_catalog::Error),
    /// A drill or verify could not run.
    #[error(transparent)]
    Dr(#[from] bindspace_dr::Error),
    /// Writing an export failed (the reader went away, or the disk).
    #[error("export: {0}")]
    Export(String),
    /// The token file, the listen address or TLS files are wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// Listening or serving failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// What the error means for the caller: whether a retry can help.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Engine(e) => e.kind(),
            Error::Pitr(e) => e.kind(),
            Error::Store(e) => e.kind(),
            Error::Dr(e) => e.kind(),
            Error::Export(_) | Error::Io(_) => ErrorKind::Unavailable,
            Error::Config(_) => ErrorKind::Invalid,
        }
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error answer: a status and a JSON body `{"error": {"code", "message"}}` whose
/// code is stable (clients match on it; the message is for people).
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

/// The body of every error answer.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `not_restorable`, `conflict`, `migration_refused`, `busy`, `fenced`, `corrupt`,
    /// `unavailable`,
    /// `payload_too_large`, `internal`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// A `400 bad_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// An answer with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// The body it answers with.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code.to_owned(),
            message: self.message.clone(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let (status, code) = match e.kind() {
            ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "bad_request"),
            // the state named is not in the repository
            ErrorKind::NotRestorable => (StatusCode::NOT_FOUND, "not_restorable"),
            ErrorKind::Busy => (StatusCode::CONFLICT, "busy"),
            ErrorKind::Fenced => (StatusCode::CONFLICT, "fenced"),
            ErrorKind::Corrupt => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

macro_rules! from_error {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> ApiError {
                Error::from(e).into()
            }
        }
    )*};
}
from_error!(
    bindspace::Error,
    bindspace_pitr::Error,
    bindspace_catalog::Error,
    bindspace_dr::Error
);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, message = %self.message, "request failed");
        }
        let mut r = (
            self.status,
            axum::Json(ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

/// Axum's own refusals (bad JSON, a bad query string, a body too large) as JSON.
macro_rules! rejection {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(r: $t) -> ApiError {
                let status = r.status();
                let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "payload_too_large"
                } else {
                    "bad_request"
                };
                // a body that is not JSON at all is a 415; every other refusal of the
                // client's input (syntax, types, a 422 from axum) is a 400
                let status = if status == StatusCode::PAYLOAD_TOO_LARGE
                    || status == StatusCode::UNSUPPORTED_MEDIA_TYPE
                {
                    status
                } else {
                    StatusCode::BAD_REQUEST
                };
                ApiError::new(status, code, r.body_text())
            }
        }
    )*};
}
rejection!(
    axum::extract::rejection::JsonRejection,
    axum::extract::rejection::QueryRejection,
    axum::extract::rejection::PathRejection
);
