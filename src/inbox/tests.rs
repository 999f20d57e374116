//! The inbox in process: its router called with `oneshot` over the in-memory table, a manual
//! clock and a channel that records what it sends. The browser suite (tests/inbox_browser.rs)
//! drives the real binary; these check the answers one by one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use tower::ServiceExt;

use super::auth::Gate;
use super::page::Inbox;
use super::routes::{router, CSP};
use crate::channel_id::ChannelId;
use crate::clock::Clock;
use crate::http::AppState;
use crate::ingest::ingest_at;
use crate::notify::message::LeadMessage;
use crate::notify::transport::{DeliveryError, SendOutcome};
use crate::notify::Notifier;
use crate::notify::{Registry, Sender};
use crate::settings::{InboxSettings, Settings};
use crate::store::{MemoryTable, SharedTable, Table};

/// A channel that records the notification ids it sent, and refuses them once told to.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>, Arc<AtomicBool>);

#[async_trait::async_trait]
impl Sender for Recorder {
    async fn send(&self, _lead: &crate::lead::Lead, msg: &LeadMessage) -> SendOutcome {
        self.0.lock().unwrap().push(msg.id.clone());
        if self.1.load(Ordering::Relaxed) {
            return SendOutcome::Permanent(DeliveryError::new("HTTP 410 Gone"));
        }
        SendOutcome::Delivered
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z").unwrap().with_timezone(&Utc)
}

struct World {
    leads: MemoryTable,
    clock: Clock,
    sent: Recorder,
    notifier: Arc<Notifier>,
}

impl World {
    fn new() -> Self {
        let clock = Clock::manual(now());
        let leads = MemoryTable::new("Leads", clock.clone());
        let env: HashMap<String, String> = [("AzureWebJobsStorage".to_string(), "UseDevelopmentStorage=true".to_string())].into();
        let settings = Settings::from_map(&env).unwrap();
        let sent = Recorder::default();
        let registry = Registry::new(std::time::Duration::from_secs(5)).with(ChannelId::Webhook, sent.clone());
        let shared: SharedTable = Arc::new(leads.clone());
        let notifier = Arc::new(Notifier::with_parts(&settings, shared, registry, clock.clone()));
        World { leads, clock, sent, notifier }
    }

    fn app(&self, gate: Gate) -> Router {
        let store: SharedTable = Arc::new(self.leads.clone());
        let state = AppState { store, notifier: self.notifier.clone(), kick: None };
        router(Arc::new(Inbox::new(state, gate, vec![ChannelId::Webhook], self.clock.clone())))
    }

    async fn lead(&self, company: &str, email: &str) -> (String, String) {
        let body = serde_json::json!({
            "UserDetails": {"FirstName": "Jana", "LastName": "Novák", "Email": email, "Company": company},
            "LeadSource": "SPZA-PLT|contoso.analytics", "ActionCode": "PLT", "OfferTitle": "Contoso Analytics",
        });
        let shared: SharedTable = Arc::new(self.leads.clone());
        let stored = ingest_at(&shared, body.to_string().as_bytes(), Some("application/json"), self.clock.now()).await.unwrap();
        (stored.partition_key, stored.row_key)
    }
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).header("host", "127.0.0.1:7071").body(Body::empty()).unwrap()
}

fn post(uri: &str, form: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::post(uri).header("host", "127.0.0.1:7071").header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    r.body(Body::from(form.to_string())).unwrap()
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

#[tokio::test]
async fn the_list_escapes_customer_text_and_carries_the_csp() {
    let w = World::new();
    w.lead("<script>alert(1)</script>\u{202E}evil", "jana@contoso.example").await;
    let (status, headers, body) = call(&w.app(Gate::Local), get("/api/Inbox")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-security-policy"], CSP);
    assert!(!CSP.contains("script-src"), "no script source at all: default-src 'none' covers it");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(body.contains("&#60;script&#62;alert(1)&#60;/script&#62;evil"), "escaped, bidi control dropped: {body}");
    assert!(!body.contains("<script>"));
    assert!(!body.contains('\u{202E}'));
    assert!(!body.contains("jana@contoso.example"), "no address on the list page");
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("inbox_csrf=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
}

#[tokio::test]
async fn the_page_size_is_bounded() {
    let w = World::new();
    for i in 0..(super::data::PAGE_SIZE + 5) {
        w.lead(&format!("Company {i}"), &format!("c{i}@contoso.example")).await;
    }
    let app = w.app(Gate::Local);
    let (_, _, first) = call(&app, get("/api/Inbox")).await;
    assert_eq!(first.matches("<tr>\n  <td><a href=").count(), super::data::PAGE_SIZE);
    assert!(first.contains("page 1 of 2"));
    let (_, _, second) = call(&app, get("/api/Inbox?page=2")).await;
    assert_eq!(second.matches("<tr>\n  <td><a href=").count(), 5);
    // Asking for a huge page number shows the last page, not an empty one or an error.
    let (status, _, last) = call(&app, get("/api/Inbox?page=999999")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(last.contains("page 2 of 2"));
}

#[tokio::test]
async fn refusals() {
    let w = World::new();
    // Forged principal headers with App Service authentication not configured: refused.
    let principal = base64::engine::general_purpose::STANDARD.encode(
        serde_json::json!({"claims": [{"typ": "tid", "val": "t1"}, {"typ": "roles", "val": "Leads.Manage"}], "role_typ": "roles"})
            .to_string(),
    );
    let forged = || {
        Request::get("/api/Inbox")
            .header("X-MS-CLIENT-PRINCIPAL", &principal)
            .header("X-MS-CLIENT-PRINCIPAL-IDP", "aad")
            .header("X-MS-CLIENT-PRINCIPAL-NAME", "mallory")
            .body(Body::empty())
            .unwrap()
    };
    let shut = Gate::for_host(&InboxSettings::from_get(&|_| None));
    let (status, headers, body) = call(&w.app(shut), forged()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["content-security-policy"], CSP, "refusals carry the CSP too");
    assert!(body.contains("App Service authentication"), "{body}");
    // With authentication on, the same principal from another tenant is refused; ours is let in.
    let open = Gate::AppService { tenant_id: "t2".into() };
    assert_eq!(call(&w.app(open), forged()).await.0, StatusCode::FORBIDDEN);
    let ours = Gate::AppService { tenant_id: "t1".into() };
    let (status, _, body) = call(&w.app(ours), forged()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("mallory"));
    assert!(body.contains("/.auth/logout?post_logout_redirect_uri=/api/Inbox"), "App Service sign-out offered: {body}");
    // No sign-in under serve with a key: off to the sign-in form.
    let keyed = Gate::SignIn { key: "k".to_string().into(), sessions: Default::default(), secure_cookies: false };
    let (status, headers, _) = call(&w.app(keyed), get("/api/Inbox")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/api/Inbox/signin");
    // A read-only principal cannot change anything, even with a good CSRF token.
    let reader = base64::engine::general_purpose::STANDARD
        .encode(serde_json::json!({"claims": [{"typ": "tid", "val": "t1"}, {"typ": "roles", "val": "Leads.Read"}]}).to_string());
    let key = w.lead("Contoso", "jana@contoso.example").await;
    let token = "t".repeat(43);
    let req = Request::post("/api/Inbox/lead/send-again")
        .header("X-MS-CLIENT-PRINCIPAL", &reader)
        .header("X-MS-CLIENT-PRINCIPAL-IDP", "aad")
        .header("cookie", format!("inbox_csrf={token}"))
        .body(Body::from(form(&[("csrf", &token), ("pk", &key.0), ("rk", &key.1), ("channel", "Webhook")])))
        .unwrap();
    let (status, _, body) = call(&w.app(Gate::AppService { tenant_id: "t1".into() }), req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("Leads.Manage"));
    assert!(w.sent.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn changes_need_their_csrf_token() {
    let w = World::new();
    let key = w.lead("Contoso", "jana@contoso.example").await;
    let app = w.app(Gate::Local);
    let fields = [("pk", key.0.as_str()), ("rk", key.1.as_str()), ("channel", "Webhook")];
    let (status, _, _) = call(&app, post("/api/Inbox/lead/send-again", &form(&fields), None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no token at all");
    let token = "a".repeat(43);
    let mut with_token = fields.to_vec();
    with_token.push(("csrf", &token));
    let (status, _, _) = call(&app, post("/api/Inbox/lead/send-again", &form(&with_token), None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a token without its cookie");
    let wrong_cookie = format!("inbox_csrf={}", "b".repeat(43));
    let (status, _, _) = call(&app, post("/api/Inbox/lead/send-again", &form(&with_token), Some(&wrong_cookie))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a token that is not the cookie's");
    let (status, _, _) = call(&app, post("/api/Inbox/forget", &form(&with_token), None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(w.sent.0.lock().unwrap().is_empty());
    assert!(w.leads.get(&key.0, &key.1).await.unwrap().is_some(), "nothing forgotten");
}

#[tokio::test]
async fn send_again_resends_with_the_same_id_and_records_who() {
    let w = World::new();
    let key = w.lead("Contoso", "jana@contoso.example").await;
    w.notifier.deliver_lead(&key.0, &key.1).await.unwrap();
    assert_eq!(w.sent.0.lock().unwrap().len(), 1);
    let app = w.app(Gate::Local);
    let token = "c".repeat(43);
    let cookie = format!("inbox_csrf={token}");
    let fields = [("csrf", token.as_str()), ("pk", &key.0), ("rk", &key.1), ("channel", "Webhook")];
    let (status, _, body) = call(&app, post("/api/Inbox/lead/send-again", &form(&fields), Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("delivered the lead again"), "{body}");
    let sent = w.sent.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1], "the same notification id, so receivers de-duplicate");
    let (row, _) = w.leads.get(&key.0, &key.1).await.unwrap().unwrap();
    assert_eq!(row["NotifyWebhookResentBy"], "local user");
    assert_eq!(row["NotifyWebhookState"], "delivered");
    // The lead page shows it.
    let (_, _, page) = call(&app, get(&format!("/api/Inbox/lead?{}", super::views::lead_query(&key.0, &key.1)))).await;
    assert!(page.contains("by local user"), "{page}");
}

#[tokio::test]
async fn forget_confirms_then_removes_through_the_forget_tool() {
    let w = World::new();
    let key = w.lead("Contoso", "jana@contoso.example").await;
    let other = w.lead("Fabrikam", "bob@fabrikam.example").await;
    let app = w.app(Gate::Local);
    let (status, _, confirm) = call(&app, get(&format!("/api/Inbox/forget?{}", super::views::lead_query(&key.0, &key.1)))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("1 row(s)") && confirm.contains("<strong>delete</strong>"), "{confirm}");
    assert!(!confirm.contains("<strong>redact</strong>"), "no other row names her: {confirm}");
    assert!(!confirm.contains("jana@contoso.example"), "the address is not shown");
    assert!(w.leads.get(&key.0, &key.1).await.unwrap().is_some(), "the confirmation changes nothing");
    let token = "d".repeat(43);
    let fields = [("csrf", token.as_str()), ("pk", &key.0), ("rk", &key.1)];
    let (status, _, done) = call(&app, post("/api/Inbox/forget", &form(&fields), Some(&format!("inbox_csrf={token}")))).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done.contains("Deleted 1 lead row(s)"), "{done}");
    assert!(w.leads.get(&key.0, &key.1).await.unwrap().is_none());
    assert!(w.leads.get(&other.0, &other.1).await.unwrap().is_some(), "other customers stay");
}

#[tokio::test]
async fn export_is_formula_safe_and_the_chart_has_its_numbers() {
    let w = World::new();
    w.lead("=HYPERLINK(\"http://evil.example\")", "jana@contoso.example").await;
    let app = w.app(Gate::Local);
    let (status, headers, csv) = call(&app, get("/api/Inbox/export.csv")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment"));
    assert!(csv.contains("'=HYPERLINK"), "{csv}");
    let (status, _, chart) = call(&app, get("/api/Inbox/chart")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(chart.contains("<svg") && chart.contains("<title id=\"chart-title\">"));
    assert!(chart.contains("<td>2026-12-06</td><td>1</td><td>1</td>"), "{chart}");
    let (status, _, _) = call(&app, get("/api/Inbox/nothing-here")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The list after the leads' day has closed (three days on), and the table transactions a
/// second page costs.
#[tokio::test]
async fn closed_days_are_held_and_a_customer_forgotten_elsewhere_leaves_the_next_page() {
    let w = World::new();
    w.lead("Wingtip", "jana@contoso.example").await;
    w.lead("Fabrikam", "bob@fabrikam.example").await;
    w.clock.advance(chrono::TimeDelta::days(3));
    let app = w.app(Gate::Local);
    let (_, _, first) = call(&app, get("/api/Inbox")).await;
    assert!(first.contains("Wingtip") && first.contains("Fabrikam"), "{first}");
    let before = w.leads.transactions();
    let (_, _, again) = call(&app, get("/api/Inbox")).await;
    assert!(again.contains("Wingtip"));
    assert_eq!(w.leads.transactions() - before, 3, "the marker, today's and yesterday's partitions: the 28 closed days are held");

    // `handler leads forget` run elsewhere, on the same table: the held day goes with the marker.
    let table: SharedTable = Arc::new(w.leads.clone());
    let plan = crate::tools::forget::plan(&table, "jana@contoso.example").await.unwrap();
    crate::tools::forget::execute(&table, &plan, None).await.unwrap();
    let (_, _, after) = call(&app, get("/api/Inbox")).await;
    assert!(!after.contains("Wingtip"), "a forgotten customer is not shown from memory: {after}");
    assert!(after.contains("Fabrikam"));
    let (_, _, csv) = call(&app, get("/api/Inbox/export.csv")).await;
    assert!(!csv.contains("Wingtip") && csv.contains("Fabrikam"), "nor exported: {csv}");

    // A forget interrupted after deleting (the row gone, nothing told), then run again: the
    // second run finds nothing to remove and still tells, so the held copy goes.
    let fabrikam = crate::tools::forget::plan(&table, "bob@fabrikam.example").await.unwrap();
    for row in &fabrikam.rows {
        table.remove(&row.partition_key, &row.row_key).await.unwrap();
    }
    let (_, _, held) = call(&app, get("/api/Inbox")).await;
    assert!(held.contains("Fabrikam"), "nothing told yet: the held copy");
    let again = crate::tools::forget::plan(&table, "bob@fabrikam.example").await.unwrap();
    assert!(again.rows.is_empty());
    crate::tools::forget::execute(&table, &again, None).await.unwrap();
    let (_, _, after) = call(&app, get("/api/Inbox")).await;
    assert!(!after.contains("Fabrikam"), "{after}");
}

#[tokio::test]
async fn a_held_day_is_read_again_when_old_or_changed_here() {
    let w = World::new();
    let key = w.lead("Wingtip", "jana@contoso.example").await;
    w.clock.advance(chrono::TimeDelta::days(3));
    let app = w.app(Gate::Local);
    let (_, _, first) = call(&app, get("/api/Inbox")).await;
    assert!(first.contains("Webhook: pending"), "{first}");

    // LeadNotify delivers it meanwhile: the held day shows it within its age.
    w.notifier.deliver_lead(&key.0, &key.1).await.unwrap();
    let (_, _, held) = call(&app, get("/api/Inbox")).await;
    assert!(held.contains("Webhook: pending"), "still the held copy: {held}");
    w.clock.advance(super::days::CLOSED_DAY_MAX_AGE);
    let (_, _, aged) = call(&app, get("/api/Inbox")).await;
    assert!(aged.contains("Webhook: delivered"), "read again once old: {aged}");

    // Send again through the inbox moves the marker: the row's new state shows on the next page.
    let shared: SharedTable = Arc::new(w.leads.clone());
    shared.merge(&key.0, &key.1, &crate::notify::lead_state::send_again(ChannelId::Webhook, "x", w.clock.now()), "*").await.unwrap();
    let (_, _, stale) = call(&app, get("/api/Inbox")).await;
    assert!(stale.contains("Webhook: delivered"), "a change made elsewhere waits for the age: {stale}");
    let token = "e".repeat(43);
    let fields = [("csrf", token.as_str()), ("pk", &key.0), ("rk", &key.1), ("channel", "Webhook")];
    w.sent.1.store(true, Ordering::Relaxed);
    let (status, _, body) = call(&app, post("/api/Inbox/lead/send-again", &form(&fields), Some(&format!("inbox_csrf={token}")))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, fresh) = call(&app, get("/api/Inbox")).await;
    assert!(fresh.contains("Webhook: failed"), "dropped by send again: {fresh}");
}
