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

use askama::Template;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::NaiveDate;

use super::auth::{self, Gate, Refusal, Viewer, CSRF_COOKIE};
use super::data::{self, ListFilter, CHART_DAYS};
use super::days::DayReader;
use super::views::{self, *};
use super::{changes, chart, lead_page, signin};
use crate::channel_id::ChannelId;
use crate::clock::Clock;
use crate::http::AppState;

/// The Content-Security-Policy of every inbox answer: nothing but the inbox's own stylesheet,
/// forms that post to itself, no framing; no script at all.
pub const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("style.css");
/// Form bodies are a few small fields.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// What the inbox's handlers share.
pub struct Inbox {
    pub app: AppState,
    pub gate: Gate,
    /// The channels whose state the notifier keeps (configured, then misconfigured).
    pub watched: Vec<ChannelId>,
    pub clock: Clock,
    /// The list's, the export's and the chart's reads.
    pub days: DayReader,
}

impl Inbox {
    pub fn new(app: AppState, gate: Gate, watched: Vec<ChannelId>, clock: Clock) -> Self {
        let days = data::day_reader(&app.store, clock.clone());
        Inbox { app, gate, watched, clock, days }
    }
}

pub(super) type Shared = State<Arc<Inbox>>;
/// The answer that ends a request early (a refusal, a page saying what is missing); boxed, as
/// a response is large and the happy path should not carry its size.
pub(super) type Refused = Box<Response>;

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

/// A viewer let in, and the CSRF token their page's forms carry.
pub(super) struct Admitted {
    pub(super) viewer: Viewer,
    csrf: String,
    /// The token is new: the answer sets its cookie.
    new_csrf: bool,
}

impl Inbox {
    /// Who is asking, or the answer that refuses them.
    pub(super) fn admit(&self, headers: &HeaderMap) -> Result<Admitted, Refused> {
        let viewer = self.gate.viewer(headers).map_err(|r| Box::new(self.refusal(r)))?;
        let (csrf, new_csrf) = match auth::cookie(headers, CSRF_COOKIE).filter(|c| c.len() >= 32) {
            Some(c) => (c.to_string(), false),
            None => (auth::random_token(), true),
        };
        Ok(Admitted { viewer, csrf, new_csrf })
    }

    /// Like [`admit`](Self::admit), for a change: the form's CSRF token must match, and the
    /// viewer must hold Leads.Manage.
    pub(super) fn admit_change(&self, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<Admitted, Refused> {
        let admitted = self.admit(headers)?;
        if !auth::csrf_ok(headers, form.get("csrf").map(String::as_str)) {
            return Err(Box::new(refused(
                StatusCode::FORBIDDEN,
                "Change refused",
                "This form was not sent from this inbox page (its CSRF token is missing or wrong). Reload the page and try again.",
            )));
        }
        if !admitted.viewer.can_manage {
            return Err(Box::new(refused(
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Sending again and forgetting need the Leads.Manage role.",
            )));
        }
        Ok(admitted)
    }

    fn refusal(&self, r: Refusal) -> Response {
        match r {
            Refusal::SignInNeeded => (StatusCode::SEE_OTHER, [(header::LOCATION, format!("{BASE}/signin"))]).into_response(),
            Refusal::Forbidden(why) => refused(StatusCode::FORBIDDEN, "The inbox is not open to you", &why),
        }
    }

    pub(super) fn frame(&self, a: &Admitted) -> Frame {
        let can_sign_out = matches!(self.gate, Gate::SignIn { .. });
        let app_service = matches!(self.gate, Gate::AppService { .. });
        Frame {
            viewer: a.viewer.name.clone(),
            can_manage: a.viewer.can_manage,
            csrf: a.csrf.clone(),
            base: BASE,
            can_sign_out,
            app_service,
        }
    }

    /// A page with status 200, setting the CSRF cookie when it is new.
    pub(super) fn page(&self, a: &Admitted, status: StatusCode, t: impl Template) -> Response {
        let mut resp = html(status, t);
        if a.new_csrf {
            self.set_cookie(&mut resp, &auth::set_cookie(CSRF_COOKIE, &a.csrf, self.gate.secure_cookies(), None));
        }
        resp
    }

    pub(super) fn set_cookie(&self, resp: &mut Response, value: &str) {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }

    pub(super) fn message(&self, a: &Admitted, status: StatusCode, title: &str, lines: Vec<String>, back: Option<String>) -> Response {
        self.page(a, status, MessageTemplate { frame: self.frame(a), title: title.into(), lines, back })
    }

    /// The page for a storage failure: logged with its cause, shown without it.
    pub(super) fn storage_failed(&self, a: &Admitted, what: &str, e: &dyn std::fmt::Display) -> Response {
        tracing::error!(error = %e, "inbox: {what}");
        self.message(
            a,
            StatusCode::SERVICE_UNAVAILABLE,
            "Storage unavailable",
            vec![format!("Could not {what}. Try again in a moment.")],
            None,
        )
    }

    pub(super) fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }
}

pub(super) fn html(status: StatusCode, t: impl Template) -> Response {
    match t.render() {
        Ok(body) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "inbox: a page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "The page could not be drawn.")
                .into_response()
        }
    }
}

pub(super) fn refused(status: StatusCode, title: &str, reason: &str) -> Response {
    html(status, RefusedTemplate { title: title.into(), reason: reason.into(), base: BASE })
}

/// The query string or form body as name → value (the last value of a repeated name wins).
pub(super) fn pairs(raw: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

pub(super) fn non_empty(q: &HashMap<String, String>, name: &str) -> Option<String> {
    q.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
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

/// The keys of the lead a request names, or the page that says it named none.
pub(super) fn lead_keys(inbox: &Inbox, a: &Admitted, q: &HashMap<String, String>) -> Result<(String, String), Refused> {
    match (q.get("pk"), q.get("rk")) {
        (Some(pk), Some(rk)) if !pk.is_empty() && !rk.is_empty() => Ok((pk.clone(), rk.clone())),
        _ => Err(Box::new(inbox.message(a, StatusCode::BAD_REQUEST, "Which lead?", vec!["The link names no lead.".into()], None))),
    }
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
