//! The custom-handler invocation envelope: the host POSTs `/<FunctionName>` with
//! `{"Data":{<binding>:…},"Metadata":{…}}` and expects `{"Outputs","Logs","ReturnValue"}` back,
//! always with HTTP 200 (a non-2xx answer fails the invocation and drops its outputs).
//!
//! - `/LeadIngest`, when HTTP proxying is off: the client's status goes into the `res` output
//!   object (never a bare string, which the host would base64-decode if it looked like base64).
//! - `/LeadNotify`: the timer; a failed poll answers 500 so the host records a failed run.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::AppError;
use super::ingest::answer;
use super::AppState;
use crate::ingest::MAX_BODY_BYTES;

/// The invocation the host POSTs to `/<FunctionName>`.
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationRequest {
    #[serde(default)]
    pub data: Map<String, Value>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// What the handler answers the host (always with HTTP 200).
#[derive(Debug, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationResponse {
    pub outputs: Map<String, Value>,
    pub logs: Vec<String>,
    pub return_value: Value,
}

/// The HTTP trigger's `req` binding inside an envelope.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct HttpTriggerData {
    #[serde(default)]
    method: String,
    #[serde(default)]
    body: Value,
}

/// The envelope routes; mounted only under the host, which has already checked the key.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/LeadIngest", post(lead_ingest))
        .route("/LeadNotify", post(lead_notify))
        // Envelopes carry the body as a JSON string: allow room for escaping.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES * 8))
}

async fn lead_ingest(State(state): State<AppState>, Json(inv): Json<InvocationRequest>) -> Json<InvocationResponse> {
    // The trigger binding is named `req` in our function.json; accept any single binding.
    let req_value = inv.data.get("req").or_else(|| inv.data.values().next()).cloned().unwrap_or(Value::Null);
    let req: HttpTriggerData = serde_json::from_value(req_value).unwrap_or_default();
    let resp = if !req.method.is_empty() && !req.method.eq_ignore_ascii_case("POST") {
        AppError::MethodNotAllowed(req.method.clone()).into_response()
    } else {
        // The host passes the body as a string; some versions pass JSON bodies already parsed.
        let body: Bytes = match req.body {
            Value::Null => Bytes::new(),
            Value::String(s) => Bytes::from(s),
            other => Bytes::from(other.to_string()),
        };
        // The host has already read the request body into a string (text, whatever charset the
        // request declared), so its UTF-8 bytes are what we read: applying the request's
        // `Content-Type` charset again would garble it. A BOM the string kept is still honoured.
        answer(state.ingest(&body, None).await)
    };
    // The same answer as the proxied route, moved into the `res` output.
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap_or_default();
    let mut outputs = Map::new();
    outputs.insert(
        "res".into(),
        json!({
            "statusCode": status.as_u16().to_string(),
            "body": String::from_utf8_lossy(&body),
            "headers": { "Content-Type": "application/json" },
        }),
    );
    let logs = vec![format!("LeadIngest answered {}", status.as_u16())];
    Json(InvocationResponse { outputs, logs, return_value: Value::Null })
}

async fn lead_notify(State(state): State<AppState>, Json(inv): Json<InvocationRequest>) -> Response {
    let past_due = inv.data.values().find_map(|t| t.get("IsPastDue")).and_then(Value::as_bool).unwrap_or(false);
    let report = state.notifier.run_once().await;
    // The host stores each line in Application Insights: a run that did nothing says nothing
    // (a one-minute timer is 43,000 runs a month).
    let logs = if report.is_idle() && !past_due { Vec::new() } else { vec![format!("LeadNotify: {report} (past due: {past_due})")] };
    let body = Json(InvocationResponse { outputs: Map::new(), logs, return_value: Value::Null });
    if report.errors > 0 {
        // Everything the run could record is recorded; a storage error still makes it a failed
        // invocation, so the host (and its alerts) see it. The next tick retries.
        (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
    } else {
        body.into_response()
    }
}
