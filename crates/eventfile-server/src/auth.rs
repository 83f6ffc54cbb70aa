//! The bearer token: with one set, every request but `GET /health` must carry
//! `Authorization: Bearer TOKEN`, or is answered 401 before anything else runs.
//!
//! This module owns the comparison, which takes the same time wherever the given token first
//! differs (it runs over the whole secret whatever is sent), so that response times do not
//! reveal the token a byte at a time. It never logs a token.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::Shared;

/// Compares `given` with `secret` in time that depends on the secret's length only.
pub(crate) fn same_token(given: &[u8], secret: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != secret.len());
    for (i, s) in secret.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(g ^ s);
    }
    std::hint::black_box(diff) == 0
}

pub(crate) async fn require_token(
    State(state): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let Some(secret) = state.options.token.as_deref() else {
        return next.run(request).await;
    };
    if request.method() == Method::GET && request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or(b"");
    if same_token(given, secret.as_bytes()) {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this server needs `Authorization: Bearer TOKEN` with its token",
        )
        .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::same_token;

    #[test]
    fn compares_whole_tokens() {
        assert!(same_token(b"s3cret", b"s3cret"));
        assert!(!same_token(b"s3cre", b"s3cret"));
        assert!(!same_token(b"s3cretX", b"s3cret"));
        assert!(!same_token(b"", b"s3cret"));
        assert!(!same_token(b"S3cret", b"s3cret"));
    }
}
