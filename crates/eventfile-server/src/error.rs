//! The error body every failed request gets, `{"error":{"kind":..,"message":..}}`, and the status
//! each kind of failure maps to.
//!
//! This module owns the mapping from the library's [`eventfile::ErrorKind`] to HTTP statuses
//! and the rule that a server-side failure (I/O, corruption, a poisoned handle) is answered with
//! a generic message while its detail (paths, OS errors) goes to the server's log only: a caller
//! never learns a file path from an error body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventfile::ErrorKind;
use serde::Serialize;

/// A failed request: the status, the kind (a stable snake_case word a client matches on) and a
/// message a person can act on.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    /// 400 with kind `invalid_input`: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is over the server's limit of {limit} bytes"),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 503: a store call outlived the request timeout.
    pub fn timed_out(timeout: std::time::Duration) -> ApiError {
        ApiError::unavailable(format!(
            "the request took longer than the server's limit of {} ms; an append already \
             handed to the store may still complete: retry it with the same event ids or key \
             to learn its result",
            timeout.as_millis()
        ))
    }

    /// 500: a store call did not complete (it panicked); the server's log has the detail.
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request failed inside the server; the server's log has the detail",
        )
    }

    /// The error body as JSON text.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Inner<'a> {
            kind: &'a str,
            message: &'a str,
        }
        #[derive(Serialize)]
        struct Outer<'a> {
            error: Inner<'a>,
        }
        serde_json::to_string(&Outer {
            error: Inner {
                kind: self.kind,
                message: &self.message,
            },
        })
        .expect("strings serialise")
    }
}

impl From<eventfile::Error> for ApiError {
    fn from(e: eventfile::Error) -> ApiError {
        let (status, kind) = match e.kind() {
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::ConditionFailed => (StatusCode::CONFLICT, "condition_failed"),
            ErrorKind::DuplicateId => (StatusCode::CONFLICT, "duplicate_id"),
            ErrorKind::StreamDeleted => (StatusCode::GONE, "stream_deleted"),
            ErrorKind::InvalidInput => match e {
                eventfile::Error::EventTooLarge { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
                }
                _ => (StatusCode::BAD_REQUEST, "invalid_input"),
            },
            ErrorKind::Expired => (StatusCode::GONE, "expired"),
            ErrorKind::ReadOnly => (StatusCode::FORBIDDEN, "read_only"),
            ErrorKind::Refused => (StatusCode::UNPROCESSABLE_ENTITY, "refused"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ErrorKind::NotAStore => (StatusCode::INTERNAL_SERVER_ERROR, "not_a_store"),
            ErrorKind::Corrupt => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt"),
            ErrorKind::Io => (StatusCode::INTERNAL_SERVER_ERROR, "io"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        // What the caller sent (names, versions, positions) may be echoed; what the server
        // holds (paths, OS and database messages) goes to the log only.
        let message = if status.is_server_error() {
            log::error!("eventfile-server: {e}");
            match kind {
                "unavailable" => {
                    "the store cannot serve this request now; retry later (appends with the same \
                     event ids or key are recognised as retries)"
                        .to_owned()
                }
                _ => "the store failed; the server's log has the detail".to_owned(),
            }
        } else {
            e.to_string()
        };
        ApiError::new(status, kind, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, self.body()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
