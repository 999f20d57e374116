//! The HTTP edge: one router for both run modes, merged here from small routers.
//!
//! - `GET /` is the host's readiness probe (any answer counts).
//! - [`ingest`]: `/api/LeadIngest`, proxied by the host or keyed in `handler serve` ([`auth`]).
//! - [`envelope`]: the invocation envelopes at `/LeadIngest` and `/LeadNotify`, served only
//!   under the host: standalone there is no host to check keys, so the keyed route is the only
//!   way in.
//! - [`error`]: the one error type and how it becomes an answer.
//! - [`server`]: the accept loop: timeouts, header size, connection caps, readable early answers.

pub mod auth;
pub mod envelope;
pub mod error;
pub mod ingest;
pub mod server;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use secrecy::SecretString;

use crate::notify::Notifier;
use crate::store::SharedTable;

/// How the binary runs.
pub enum Mode {
    /// Under the Azure Functions host, which checks function keys and drives the timer.
    Host,
    /// `handler serve`: no host, so callers must present `key`, and the timer runs in process.
    Standalone { key: SecretString },
}

/// What every request handler needs.
#[derive(Clone)]
pub struct AppState {
    pub store: SharedTable,
    pub notifier: Arc<Notifier>,
    /// Wakes the in-process LeadNotify run after a lead is stored (`NOTIFY_IMMEDIATE`).
    pub kick: Option<Arc<crate::notify::new_leads::NewLeads>>,
}

impl AppState {
    /// Stores one lead and, when it is new, hands its key to the immediate path.
    pub async fn ingest(&self, body: &[u8], content_type: Option<&str>) -> Result<crate::ingest::Stored, crate::ingest::IngestError> {
        let result = crate::ingest::ingest(&self.store, body, content_type).await;
        if let (Ok(stored), Some(kick)) = (&result, &self.kick) {
            if !stored.duplicate {
                kick.push(&stored.partition_key, &stored.row_key);
            }
        }
        result
    }
}

/// The whole router for `mode`.
pub fn app(state: AppState, mode: &Mode) -> Router {
    let readiness = Router::new().route("/", get(|| async { "marketplace-leads handler" }));
    let lead_ingest = Router::new().route("/api/LeadIngest", ingest::route());
    let router = match mode {
        Mode::Host => readiness.merge(lead_ingest).merge(envelope::routes()),
        Mode::Standalone { key } => {
            let keyed = lead_ingest.route_layer(axum::middleware::from_fn_with_state(Arc::new(key.clone()), auth::require_key));
            readiness.merge(keyed)
        }
    };
    router.with_state(state)
}

#[cfg(test)]
mod tests {
    //! Routing, in process with `oneshot`: nothing here reaches storage (it points at a closed
    //! port), so these cover the answers given before any write. End-to-end lives in tests/.
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::http::StatusCode;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    fn state() -> AppState {
        let env = [(
            "AzureWebJobsStorage".to_string(),
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:1/devstoreaccount1"
                .to_string(),
        )];
        let settings = crate::settings::Settings::from_map(&env.into_iter().collect()).unwrap();
        let store: SharedTable = Arc::new(crate::store::MemoryTable::new(&settings.storage.table, crate::clock::Clock::System));
        let notifier = Arc::new(Notifier::new(&settings, store.clone()).unwrap());
        AppState { store, notifier, kick: None }
    }

    fn mode(standalone: bool) -> Mode {
        if standalone {
            Mode::Standalone { key: SecretString::from("k") }
        } else {
            Mode::Host
        }
    }

    async fn call(standalone: bool, req: Request<Body>) -> (StatusCode, Value) {
        let resp = app(state(), &mode(standalone)).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    fn post(uri: &str, body: impl Into<Body>) -> Request<Body> {
        Request::post(uri).header("content-type", "application/json").body(body.into()).unwrap()
    }

    #[tokio::test]
    async fn readiness_probe_answers() {
        let resp = app(state(), &Mode::Host).oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn answers_before_any_write() {
        let (s, body) = call(false, Request::get("/api/LeadIngest").body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert!(body["error"].as_str().unwrap().contains("POST"));
        let put = Request::put("/api/LeadIngest").body(Body::from("{}")).unwrap();
        let resp = app(state(), &Mode::Host).oneshot(put).await.unwrap();
        assert_eq!(resp.headers()["allow"], "POST");
        assert_eq!(call(false, post("/api/LeadIngest", "[1]")).await.0, StatusCode::BAD_REQUEST);
        assert_eq!(call(false, post("/api/LeadIngest", "x".repeat(40_000))).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn standalone_needs_the_key_and_has_no_envelopes() {
        assert_eq!(call(true, post("/api/LeadIngest", "{}")).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(true, post("/api/LeadIngest?code=nope", "{}")).await.0, StatusCode::UNAUTHORIZED);
        // The key is checked before anything else: a wrong key learns nothing about the route.
        assert_eq!(call(true, Request::get("/api/LeadIngest").body(Body::empty()).unwrap()).await.0, StatusCode::UNAUTHORIZED);
        // With the right key (query or header), the request reaches ingest (here: a 400).
        assert_eq!(call(true, post("/api/LeadIngest?code=k", "[1]")).await.0, StatusCode::BAD_REQUEST);
        let with_header = Request::post("/api/LeadIngest").header("x-functions-key", "k").body(Body::from("[1]")).unwrap();
        assert_eq!(call(true, with_header).await.0, StatusCode::BAD_REQUEST);
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
