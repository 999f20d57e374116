//! The one error type of the HTTP edge. Clients get a clear JSON message; the causes of 5xx
//! answers are logged here, when the response is made, and never shown to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::ingest::IngestError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("request body not received in time")]
    RequestTimeout,
    #[error("method {0} not allowed: POST the lead as JSON")]
    MethodNotAllowed(String),
    #[error("missing or wrong key: pass it as ?code=<key> or the x-functions-key header")]
    Unauthorized,
    #[error("lead not stored: storage unavailable, retry later")]
    Storage(#[source] StoreError),
}

impl From<IngestError> for AppError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::TooLarge { limit } => AppError::PayloadTooLarge { limit },
            IngestError::Invalid(why) => AppError::BadRequest(why),
            IngestError::Storage(cause) => AppError::Storage(cause),
        }
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            AppError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Storage(StoreError::Rejected { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Storage(cause) = &self {
            tracing::error!(error = %cause, "lead not stored");
        }
        let mut resp = (self.status(), axum::Json(serde_json::json!({ "error": self.to_string() }))).into_response();
        match self {
            AppError::MethodNotAllowed(_) => {
                resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            // The rest of the body may still be on its way: nothing after it on this connection
            // can be trusted to start a new request, so the server closes it once the body is
            // drained (or, for a timeout, at once).
            AppError::PayloadTooLarge { .. } | AppError::RequestTimeout => {
                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}
