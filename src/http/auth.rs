//! The standalone key check (`handler serve`): under the Functions host the host checks the
//! function key; without it, this layer does, before anything else runs.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::error::AppError;

/// Middleware: lets the request through only with the key as `?code=` or `x-functions-key`.
pub async fn require_key(State(expected): State<std::sync::Arc<SecretString>>, req: Request, next: Next) -> Response {
    let from_query = req.uri().query().and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "code").map(|(_, v)| v));
    let from_header = req.headers().get("x-functions-key").and_then(|v| v.to_str().ok());
    let presented = from_query.as_deref().or(from_header).unwrap_or_default();
    if !key_matches(&expected, presented) {
        return AppError::Unauthorized.into_response();
    }
    next.run(req).await
}

/// Compares a presented key with the configured one in constant time.
pub fn key_matches(expected: &SecretString, presented: &str) -> bool {
    // Hash both sides so the comparison does not leak the key's length either.
    let a = sha2::Sha256::digest(expected.expose_secret().as_bytes());
    let b = sha2::Sha256::digest(presented.as_bytes());
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_comparison() {
        let k = SecretString::from("abc123");
        assert!(key_matches(&k, "abc123"));
        assert!(!key_matches(&k, "abc12"));
        assert!(!key_matches(&k, ""));
    }
}
