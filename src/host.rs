//! The Azure Functions custom-handler protocol, and the routes of both run modes.
//!
//! Under the Functions host:
//! - `GET /` is the host's readiness probe (any answer counts).
//! - LeadIngest uses HTTP proxying (`enableProxyingHttpRequest`): the host checks the function
//!   key, then forwards the raw request to `/api/LeadIngest?code=…`. We chose proxying because the
//!   handler then sees the real status codes and body limits, exactly like `handler serve`, and
//!   the host's base64 trap for string outputs cannot touch it.
//! - With proxying off the host POSTs an invocation envelope to `/LeadIngest`; that works too:
//!   the client's status goes into the `res` output and the host always gets 200 (a non-2xx
//!   answer to the host fails the invocation and drops its outputs).
//! - LeadNotify (timer) always arrives as an envelope at `/LeadNotify`.
//!
//! In `handler serve` mode there is no host: the envelope routes are not mounted, and the handler
//! checks the `?code=` key of `/api/LeadIngest` itself.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::AppError;
use crate::ingest;
use crate::lead::MAX_BODY_BYTES;
use crate::notify::Notifier;
use crate::settings::key_matches;
use crate::store::TableClient;

/// What every request handler needs.
#[derive(Clone)]
pub struct AppState {
    pub store: TableClient,
    pub notifier: Arc<Notifier>,
    /// `Some` in `handler serve` mode, where no host checks the function key for us.
    pub ingest_key: Option<Arc<SecretString>>,
}

/// The whole router: readiness, the proxied HTTP function, and (under the host) the envelope
/// endpoints.
pub fn app(state: AppState) -> Router {
    let router = Router::new().route("/", get(|| async { "marketplace-leads handler" })).route("/api/LeadIngest", any(lead_ingest_proxied));
    // Envelopes come only from the host, which has already checked the function key. Standalone
    // there is no host, so they are not served: the keyed route is the only way in.
    let router = if state.ingest_key.is_none() {
        router.route("/LeadIngest", post(lead_ingest_envelope)).route("/LeadNotify", post(lead_notify_envelope))
    } else {
        router
    };
    // Envelopes carry the body as a JSON string: allow room for escaping.
    router.layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES * 8)).with_state(state)
}

#[derive(Deserialize)]
struct KeyQuery {
    code: Option<String>,
}

async fn lead_ingest_proxied(State(state): State<AppState>, Query(q): Query<KeyQuery>, req: Request) -> Response {
    if req.method() != Method::POST {
        return AppError::MethodNotAllowed(req.method().to_string()).into_response();
    }
    if let Some(expected) = &state.ingest_key {
        let presented = q.code.as_deref().or_else(|| header_str(req.headers(), "x-functions-key")).unwrap_or_default();
        if !key_matches(expected, presented) {
            return AppError::Unauthorized.into_response();
        }
    }
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return AppError::PayloadTooLarge { limit: MAX_BODY_BYTES }.into_response(),
    };
    let (status, body) = ingest::response(ingest::ingest(&state.store, &body).await);
    (status, Json(body)).into_response()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

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

async fn lead_ingest_envelope(State(state): State<AppState>, Json(inv): Json<InvocationRequest>) -> Json<InvocationResponse> {
    // The trigger binding is named `req` in our function.json; accept any single binding.
    let req_value = inv.data.get("req").or_else(|| inv.data.values().next()).cloned().unwrap_or(Value::Null);
    let req: HttpTriggerData = serde_json::from_value(req_value).unwrap_or_default();
    let result = if !req.method.is_empty() && !req.method.eq_ignore_ascii_case("POST") {
        Err(AppError::MethodNotAllowed(req.method.clone()))
    } else {
        // The host passes the body as a string; some versions pass JSON bodies already parsed.
        let body: Bytes = match req.body {
            Value::Null => Bytes::new(),
            Value::String(s) => Bytes::from(s),
            other => Bytes::from(other.to_string()),
        };
        ingest::ingest(&state.store, &body).await
    };
    let (status, body) = ingest::response(result);
    let mut outputs = Map::new();
    // An object, never a bare string: the host would base64-decode a string that looks like it.
    outputs.insert(
        "res".into(),
        json!({
            "statusCode": status.as_u16().to_string(),
            "body": body.to_string(),
            "headers": { "Content-Type": "application/json" },
        }),
    );
    let logs = vec![format!("LeadIngest answered {}", status.as_u16())];
    Json(InvocationResponse { outputs, logs, return_value: Value::Null })
}

async fn lead_notify_envelope(State(state): State<AppState>, Json(inv): Json<InvocationRequest>) -> Response {
    let past_due = inv.data.values().find_map(|t| t.get("IsPastDue")).and_then(Value::as_bool).unwrap_or(false);
    match state.notifier.run_once().await {
        Ok(report) => {
            let logs = vec![format!("LeadNotify: {report} (past due: {past_due})")];
            Json(InvocationResponse { outputs: Map::new(), logs, return_value: Value::Null }).into_response()
        }
        Err(e) => {
            // A failed poll is a failed invocation: the host logs it and the next tick retries.
            tracing::error!(error = %e, "LeadNotify poll failed");
            let body = InvocationResponse { logs: vec![format!("LeadNotify failed: {e}")], ..Default::default() };
            (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    //! Routing, in process with `oneshot`: nothing here reaches storage (it points at a closed
    //! port), so these cover the answers given before any write. End-to-end lives in tests/.
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn state(standalone: bool) -> AppState {
        let env = [(
            "AzureWebJobsStorage".to_string(),
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:1/devstoreaccount1"
                .to_string(),
        )];
        let settings = crate::settings::Settings::from_map(&env.into_iter().collect()).unwrap();
        let store = TableClient::new(settings.storage.clone(), &settings.table);
        let notifier = Arc::new(Notifier::new(&settings, store.clone()).unwrap());
        let ingest_key = standalone.then(|| Arc::new(SecretString::from("k")));
        AppState { store, notifier, ingest_key }
    }

    async fn call(standalone: bool, req: Request<Body>) -> (StatusCode, Value) {
        let resp = app(state(standalone)).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    fn post(uri: &str, body: impl Into<Body>) -> Request<Body> {
        Request::post(uri).header("content-type", "application/json").body(body.into()).unwrap()
    }

    #[tokio::test]
    async fn readiness_probe_answers() {
        let resp = app(state(false)).oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn answers_before_any_write() {
        let (s, body) = call(false, Request::get("/api/LeadIngest").body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert!(body["error"].as_str().unwrap().contains("POST"));
        assert_eq!(call(false, post("/api/LeadIngest", "[1]")).await.0, StatusCode::BAD_REQUEST);
        assert_eq!(call(false, post("/api/LeadIngest", "x".repeat(40_000))).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn standalone_needs_the_key_and_has_no_envelopes() {
        assert_eq!(call(true, post("/api/LeadIngest", "{}")).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(true, post("/api/LeadIngest?code=nope", "{}")).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(true, post("/LeadIngest", "{}")).await.0, StatusCode::NOT_FOUND);
        assert_eq!(call(true, post("/LeadNotify", "{}")).await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn envelopes_always_answer_the_host_200() {
        let env = json!({"Data": {"req": {"Method": "GET", "Body": ""}}, "Metadata": {}});
        let (s, reply) = call(false, post("/LeadIngest", env.to_string())).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(reply["Outputs"]["res"]["statusCode"], "405");
        // No channel configured: the timer runs, does nothing, and says so.
        let timer = json!({"Data": {"timer": {"IsPastDue": true}}, "Metadata": {}});
        let (s, reply) = call(false, post("/LeadNotify", timer.to_string())).await;
        assert_eq!(s, StatusCode::OK);
        assert!(reply["Logs"][0].as_str().unwrap().contains("past due: true"));
    }
}
