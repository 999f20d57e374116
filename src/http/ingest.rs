//! `/api/LeadIngest`, the URL a publisher pastes into Partner Center. Under the host it arrives
//! proxied (`enableProxyingHttpRequest`: the raw request, after the host checked the function
//! key); in `handler serve` the key layer in front of it checks the key.
//!
//! A body over the limit is answered 413 as soon as that is known (from `Content-Length`, or
//! when the bytes read pass the limit); the server then discards the rest of it, so the client
//! can finish sending and read the answer (see `server`).

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Json;
use serde_json::json;

use super::error::AppError;
use super::server::is_body_timeout;
use super::AppState;
use crate::ingest::{IngestError, Stored, MAX_BODY_BYTES};

/// POST only (anything else is 405 with `Allow: POST`), body capped at [`MAX_BODY_BYTES`].
pub fn route() -> MethodRouter<AppState> {
    post(lead_ingest).fallback(method_not_allowed).layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn lead_ingest(State(state): State<AppState>, req: Request) -> Response {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return AppError::PayloadTooLarge { limit: MAX_BODY_BYTES }.into_response();
    }
    // Its charset parameter says how to read the body; a value that is not visible ASCII says
    // nothing usable, and the body is then read as UTF-8 (or by its BOM).
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = match Bytes::from_request(req, &()).await {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return AppError::PayloadTooLarge { limit: MAX_BODY_BYTES }.into_response()
        }
        Err(rejection) if is_body_timeout(&rejection) => return AppError::RequestTimeout.into_response(),
        Err(rejection) => return AppError::BadRequest(rejection.body_text()).into_response(),
    };
    answer(state.ingest(&body, content_type.as_deref()).await)
}

async fn method_not_allowed(method: Method) -> Response {
    AppError::MethodNotAllowed(method.to_string()).into_response()
}

/// The HTTP answer for an ingest result: 201 when written, 200 when it was already there.
pub fn answer(result: Result<Stored, IngestError>) -> Response {
    match result {
        Ok(s) => {
            let status = if s.duplicate { StatusCode::OK } else { StatusCode::CREATED };
            let body = json!({
                "status": if s.duplicate { "duplicate" } else { "stored" },
                "partitionKey": s.partition_key,
                "rowKey": s.row_key,
                "test": s.test,
                "parsed": s.recognised,
            });
            (status, Json(body)).into_response()
        }
        Err(e) => AppError::from(e).into_response(),
    }
}
