//! The inbox's URLs (all under [`BASE`]), each one: admit the viewer, read or change through
//! [`data`], render a page. The lead page, the changes and the sign-in live in files of their
//! own ([`lead_page`], [`changes`], [`signin`]); what they share with the pages here is below. Every answer carries the security headers ([`secure_headers`]);
//! every failure is a page of its own, never a stack trace; logs name lead keys, never people.
//!
//! | URL | What |
//! |---|---|
//! | `GET /api/Inbox` | the list (filters and page in the query) |
//! | `GET /api/Inbox/lead?pk=&rk=` | one lead |
//! | `POST /api/Inbox/lead/send-again` | one channel of one lead, sent again (Leads.Manage) |
//! | `GET/POST /api/Inbox/forget` | forget this lead's customer: confirmation, then removal (Leads.Manage) |
//! | `GET /api/Inbox/chart?offer=` | leads per day |
//! | `GET /api/Inbox/export.csv` | the filtered list as CSV |
//! | `GET/POST /api/Inbox/signin`, `POST /api/Inbox/signout` | `handler serve` with `INBOX_KEY` |
//! | `GET /api/Inbox/style.css` | the stylesheet |

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::NaiveDate;

use super::data::{self, ListFilter, CHART_DAYS};
use super::page::{non_empty, pairs, refused, Inbox, Shared};
use super::views::{self, *};
use super::{changes, chart, lead_page, signin};

/// The Content-Security-Policy of every inbox answer: nothing but the inbox's own stylesheet,
/// forms that post to itself, no framing; no script at all.
pub const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("style.css");
/// Form bodies are a few small fields.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The inbox's routes, with their state; merged beside the handler's own routes.
pub fn router(inbox: Arc<Inbox>) -> Router {
    Router::new()
        .route(BASE, get(list))
        .route(&format!("{BASE}/"), get(list))
        .route(&format!("{BASE}/style.css"), get(stylesheet))
        .route(&format!("{BASE}/lead"), get(lead_page::lead))
        .route(&format!("{BASE}/lead/send-again"), post(changes::send_again))
        .route(&format!("{BASE}/forget"), get(changes::forget_confirm).post(changes::forget))
        .route(&format!("{BASE}/chart"), get(chart_page))
        .route(&format!("{BASE}/export.csv"), get(export))
        .route(&format!("{BASE}/signin"), get(signin::signin_form).post(signin::signin))
        .route(&format!("{BASE}/signout"), post(signin::signout))
        .route(&format!("{BASE}/{{*rest}}"), get(not_found).post(not_found))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(inbox)
}

/// Headers on every answer: the CSP, no sniffing, no framing, no referrer, no caching (pages hold
/// personal data).
async fn secure_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The list's filter from its query; what is missing or unreadable takes its default.
fn list_filter(q: &HashMap<String, String>, today: NaiveDate) -> ListFilter {
    let default = ListFilter::default_for(today);
    let date = |name: &str| non_empty(q, name).and_then(|d| d.parse::<NaiveDate>().ok());
    ListFilter {
        from: date("from").unwrap_or(default.from),
        to: date("to").unwrap_or(default.to),
        offer: non_empty(q, "offer"),
        action: non_empty(q, "action"),
        source: non_empty(q, "source"),
        include_tests: q.get("tests").is_some_and(|v| v == "1" || v == "on"),
        text: non_empty(q, "q"),
        page: non_empty(q, "page").and_then(|p| p.parse().ok()).unwrap_or(1),
    }
    .bounded()
}

async fn list(State(inbox): Shared, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let a = match inbox.admit(&headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let filter = list_filter(&pairs(query.unwrap_or_default().as_bytes()), inbox.today());
    match data::list_page(&inbox.days, &filter).await {
        Ok(page) => {
            let t = ListTemplate::new(inbox.frame(&a), &filter, page, &inbox.watched);
            inbox.page(&a, StatusCode::OK, t)
        }
        Err(e) => inbox.storage_failed(&a, "read the leads", &e),
    }
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], STYLESHEET).into_response()
}

async fn chart_page(State(inbox): Shared, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let a = match inbox.admit(&headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let offer = non_empty(&pairs(query.unwrap_or_default().as_bytes()), "offer");
    match data::chart_data(&inbox.days, inbox.today(), offer.as_deref()).await {
        Ok(d) => {
            let t = ChartTemplate {
                frame: inbox.frame(&a),
                chart: chart::layout(&d),
                offers: views::choices(&d.offers, offer.as_deref(), |v| v.to_string()),
                offer: offer.as_deref().map(inert),
                days: CHART_DAYS,
            };
            inbox.page(&a, StatusCode::OK, t)
        }
        Err(e) => inbox.storage_failed(&a, "read the leads for the chart", &e),
    }
}

async fn export(State(inbox): Shared, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let a = match inbox.admit(&headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let filter = list_filter(&pairs(query.unwrap_or_default().as_bytes()), inbox.today());
    let rows = match data::export_rows(&inbox.days, &filter).await {
        Ok(rows) => rows,
        Err(e) => return inbox.storage_failed(&a, "read the leads for the export", &e),
    };
    let mut csv = Vec::new();
    if let Err(e) = crate::tools::export::write_csv(&rows, &mut csv) {
        return inbox.storage_failed(&a, "write the CSV", &e);
    }
    let name = format!("attachment; filename=\"leads-{}-{}.csv\"", filter.from, filter.to);
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, name)], csv).into_response()
}

async fn not_found() -> Response {
    refused(StatusCode::NOT_FOUND, "Not found", "The inbox has no such page.")
}
