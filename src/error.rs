//! The one error type of the HTTP edge. Clients get a clear JSON message; 5xx causes are logged
//! here and never shown to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("method {0} not allowed: POST the lead as JSON")]
    MethodNotAllowed(String),
    #[error("missing or wrong key: pass it as ?code=<key> or the x-functions-key header")]
    Unauthorized,
    #[error("lead not stored: storage unavailable, retry later")]
    Storage(#[source] StoreError),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Storage(StoreError::Rejected { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON body a client sees.
    pub fn body(&self) -> serde_json::Value {
        if let AppError::Storage(cause) = self {
            tracing::error!(error = %cause, "lead not stored");
        }
        serde_json::json!({ "error": self.to_string() })
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), axum::Json(self.body())).into_response();
        if let AppError::MethodNotAllowed(_) = self {
            resp.headers_mut().insert(axum::http::header::ALLOW, axum::http::HeaderValue::from_static("POST"));
        }
        resp
    }
}
