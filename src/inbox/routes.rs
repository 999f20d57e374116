//! The inbox's URLs (all under [`BASE`]), each one: admit the viewer, read or change through
//! [`data`], render a page. Every answer carries the security headers ([`secure_headers`]);
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
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::NaiveDate;

use super::auth::{self, Gate, Refusal, Viewer, CSRF_COOKIE, SESSION_COOKIE};
use super::chart;
use super::data::{self, ListFilter, SendAgainError, CHART_DAYS};
use super::days::DayReader;
use super::views::{self, *};
use crate::channel_id::ChannelId;
use crate::clock::Clock;
use crate::http::AppState;
use crate::lead::words::next_step;
use crate::lead::{action_label, source_label, Lead};
use crate::notify::deliver::LeadOutcome;
use crate::notify::lead_state::notification_id;

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

type Shared = State<Arc<Inbox>>;
/// The answer that ends a request early (a refusal, a page saying what is missing); boxed, as
/// a response is large and the happy path should not carry its size.
type Refused = Box<Response>;

/// The inbox's routes, with their state; merged beside the handler's own routes.
pub fn router(inbox: Arc<Inbox>) -> Router {
    Router::new()
        .route(BASE, get(list))
        .route(&format!("{BASE}/"), get(list))
        .route(&format!("{BASE}/style.css"), get(stylesheet))
        .route(&format!("{BASE}/lead"), get(lead))
        .route(&format!("{BASE}/lead/send-again"), post(send_again))
        .route(&format!("{BASE}/forget"), get(forget_confirm).post(forget))
        .route(&format!("{BASE}/chart"), get(chart_page))
        .route(&format!("{BASE}/export.csv"), get(export))
        .route(&format!("{BASE}/signin"), get(signin_form).post(signin))
        .route(&format!("{BASE}/signout"), post(signout))
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
struct Admitted {
    viewer: Viewer,
    csrf: String,
    /// The token is new: the answer sets its cookie.
    new_csrf: bool,
}

impl Inbox {
    /// Who is asking, or the answer that refuses them.
    fn admit(&self, headers: &HeaderMap) -> Result<Admitted, Refused> {
        let viewer = self.gate.viewer(headers).map_err(|r| Box::new(self.refusal(r)))?;
        let (csrf, new_csrf) = match auth::cookie(headers, CSRF_COOKIE).filter(|c| c.len() >= 32) {
            Some(c) => (c.to_string(), false),
            None => (auth::random_token(), true),
        };
        Ok(Admitted { viewer, csrf, new_csrf })
    }

    /// Like [`admit`](Self::admit), for a change: the form's CSRF token must match, and the
    /// viewer must hold Leads.Manage.
    fn admit_change(&self, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<Admitted, Refused> {
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

    fn frame(&self, a: &Admitted) -> Frame {
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
    fn page(&self, a: &Admitted, status: StatusCode, t: impl Template) -> Response {
        let mut resp = html(status, t);
        if a.new_csrf {
            self.set_cookie(&mut resp, &auth::set_cookie(CSRF_COOKIE, &a.csrf, self.gate.secure_cookies(), None));
        }
        resp
    }

    fn set_cookie(&self, resp: &mut Response, value: &str) {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }

    fn message(&self, a: &Admitted, status: StatusCode, title: &str, lines: Vec<String>, back: Option<String>) -> Response {
        self.page(a, status, MessageTemplate { frame: self.frame(a), title: title.into(), lines, back })
    }

    /// The page for a storage failure: logged with its cause, shown without it.
    fn storage_failed(&self, a: &Admitted, what: &str, e: &dyn std::fmt::Display) -> Response {
        tracing::error!(error = %e, "inbox: {what}");
        self.message(
            a,
            StatusCode::SERVICE_UNAVAILABLE,
            "Storage unavailable",
            vec![format!("Could not {what}. Try again in a moment.")],
            None,
        )
    }

    fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }
}

fn html(status: StatusCode, t: impl Template) -> Response {
    match t.render() {
        Ok(body) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "inbox: a page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "The page could not be drawn.")
                .into_response()
        }
    }
}

fn refused(status: StatusCode, title: &str, reason: &str) -> Response {
    html(status, RefusedTemplate { title: title.into(), reason: reason.into(), base: BASE })
}

/// The query string or form body as name → value (the last value of a repeated name wins).
fn pairs(raw: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

fn non_empty(q: &HashMap<String, String>, name: &str) -> Option<String> {
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
fn lead_keys(inbox: &Inbox, a: &Admitted, q: &HashMap<String, String>) -> Result<(String, String), Refused> {
    match (q.get("pk"), q.get("rk")) {
        (Some(pk), Some(rk)) if !pk.is_empty() && !rk.is_empty() => Ok((pk.clone(), rk.clone())),
        _ => Err(Box::new(inbox.message(a, StatusCode::BAD_REQUEST, "Which lead?", vec!["The link names no lead.".into()], None))),
    }
}

async fn lead(State(inbox): Shared, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let a = match inbox.admit(&headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let (pk, rk) = match lead_keys(&inbox, &a, &pairs(query.unwrap_or_default().as_bytes())) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let row = match inbox.app.store.get(&pk, &rk).await {
        Ok(Some((row, _))) => row,
        Ok(None) => {
            return inbox.message(
                &a,
                StatusCode::NOT_FOUND,
                "No such lead",
                vec!["It may have been forgotten or removed by retention.".into()],
                None,
            )
        }
        Err(e) => return inbox.storage_failed(&a, "read the lead", &e),
    };
    let lead = Lead::from_entity(&row);
    let (journey, journey_note) = match data::journey_of(&inbox.app.store, &lead, &pk, &rk).await {
        Ok(steps) if steps.is_empty() && lead.customer_id().is_some() => {
            (Vec::new(), Some("Not in the journey index yet: LeadNotify adds each lead when it handles it.".to_string()))
        }
        Ok(steps) if steps.is_empty() => (Vec::new(), Some("This lead names no customer (no e-mail address, or a test lead).".to_string())),
        Ok(steps) => (steps.iter().map(views::JourneyRow::new).collect(), None),
        Err(e) => {
            tracing::warn!(partition_key = %pk, row_key = %rk, error = %e, "inbox: journey unavailable");
            (Vec::new(), Some("The customer's journey could not be read just now.".to_string()))
        }
    };
    let active = inbox.app.notifier.channels();
    let channels = data::channels_of(&row, &inbox.watched).iter().map(|c| ChannelRow::new(c, &active)).collect();
    let raw = ["RawPayload", "RawPayload2"].iter().map(|c| crate::entity::get_str(&row, c)).collect::<String>();
    let t = LeadTemplate {
        frame: inbox.frame(&a),
        title: clip(
            &lead.contact.company.clone().or_else(|| lead.contact.full_name()).unwrap_or_else(|| "Lead without a name".into()),
            120,
        ),
        is_test: lead.is_test(),
        unparsed: !lead.recognised,
        summary: summary(&lead),
        stored: stored_fields(&row),
        raw_payload: (!raw.is_empty()).then(|| inert_lines(&raw)),
        journey,
        journey_note,
        channels,
        notification_id: notification_id(&pk, &rk),
        has_email: lead.contact.email.is_some(),
        pk: inert(&pk),
        rk: inert(&rk),
    };
    inbox.page(&a, StatusCode::OK, t)
}

/// The lead's fields for people, in the order a notification shows them.
fn summary(lead: &Lead) -> Vec<Field> {
    let c = &lead.contact;
    let offer = match (lead.offer_title.as_deref(), lead.lead_source.offer.as_deref()) {
        (Some(t), Some(id)) if t != id => Some(format!("{t} ({id})")),
        (t, id) => t.or(id).map(str::to_string),
    };
    let action = lead.action_code.as_deref().map(|a| format!("{} ({a})", action_label(a)));
    [
        ("Received", Some(views::time(lead.created))),
        ("Name", c.full_name()),
        ("Company", c.company.clone()),
        ("Title", c.title.clone()),
        ("E-mail", c.email.clone()),
        ("Phone", c.phone.clone()),
        ("Country", c.country.clone()),
        ("Action", action),
        ("Next step", lead.action_code.as_deref().map(|a| next_step(a).to_string())),
        ("Offer", offer),
        ("Source", lead.lead_source.source.as_deref().map(|s| source_label(s).to_string())),
        ("Campaign", lead.campaign()),
        ("Description", lead.description.clone()),
        ("LeadSource as sent", Some(lead.lead_source.raw.clone()).filter(|s| !s.is_empty())),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| Field { name: name.into(), value: inert_lines(&v) }))
    .collect()
}

async fn send_again(State(inbox): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let form = pairs(&body);
    let a = match inbox.admit_change(&headers, &form) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let (pk, rk) = match lead_keys(&inbox, &a, &form) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let back = Some(format!("/lead?{}", lead_query(&pk, &rk)));
    let Some(channel) = form.get("channel").and_then(|c| ChannelId::PER_LEAD.into_iter().find(|ch| ch.name() == c)) else {
        return inbox.message(&a, StatusCode::BAD_REQUEST, "Which channel?", vec!["The form names no known channel.".into()], back);
    };
    tracing::info!(partition_key = %pk, row_key = %rk, channel = channel.name(), "inbox: send again");
    let outcome = data::send_again(&inbox.app.store, &inbox.app.notifier, &pk, &rk, channel, &a.viewer.name, inbox.clock.now()).await;
    // Whatever came of it, the row may have changed: its day is read again on the next page.
    inbox.days.changed(&pk);
    let (status, lines) = match outcome {
        Ok(LeadOutcome::Done(t)) if t.delivered > 0 => {
            (StatusCode::OK, vec![format!("{channel} delivered the lead again, with the same notification id.")])
        }
        Ok(LeadOutcome::Done(t)) if t.failed > 0 => {
            (StatusCode::OK, vec![format!("{channel} refused the lead; see its last error on the lead page.")])
        }
        Ok(LeadOutcome::Done(t)) if t.skipped > 0 => {
            (StatusCode::OK, vec![format!("{channel} skipped the lead: test leads are not sent (NOTIFY_TEST_LEADS=false).")])
        }
        Ok(_) => (StatusCode::OK, vec![format!("{channel} is pending again; LeadNotify retries it on its next run.")]),
        Err(SendAgainError::Storage(e)) => return inbox.storage_failed(&a, "send the lead again", &e),
        Err(e) => (StatusCode::CONFLICT, vec![e.to_string()]),
    };
    inbox.message(&a, status, "Send again", lines, back)
}

async fn forget_confirm(State(inbox): Shared, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let a = match inbox.admit(&headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    if !a.viewer.can_manage {
        return refused(StatusCode::FORBIDDEN, "Not allowed", "Forgetting a customer needs the Leads.Manage role.");
    }
    let (pk, rk) = match lead_keys(&inbox, &a, &pairs(query.unwrap_or_default().as_bytes())) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    match data::plan_forget(&inbox.app.store, &pk, &rk).await {
        Ok(plan) => {
            let leads = plan
                .rows
                .iter()
                .map(|row| ForgetRow {
                    what: if row.delete { "delete" } else { "redact" }.to_string(),
                    created: views::time(row.created),
                    action: clip(&row.action, 30),
                    offer: clip(&row.offer, 60),
                    company: clip(&row.company, 60),
                })
                .collect();
            let t = ForgetTemplate {
                frame: inbox.frame(&a),
                pk: inert(&pk),
                rk: inert(&rk),
                customer: plan.customer.to_string(),
                leads,
                index_entries: plan.index_entries,
                state_rows: plan.state_rows,
                table: inbox.app.store.name().to_string(),
            };
            inbox.page(&a, StatusCode::OK, t)
        }
        Err(data::ForgetError::Storage(e)) => inbox.storage_failed(&a, "read what forget would remove", &e),
        Err(e) => inbox.message(&a, StatusCode::CONFLICT, "Nothing to forget", vec![e.to_string()], None),
    }
}

async fn forget(State(inbox): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let form = pairs(&body);
    let a = match inbox.admit_change(&headers, &form) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let (pk, rk) = match lead_keys(&inbox, &a, &form) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    // Planned again, not taken from the page: what goes is what is stored now.
    let plan = match data::plan_forget(&inbox.app.store, &pk, &rk).await {
        Ok(plan) => plan,
        Err(data::ForgetError::Storage(e)) => return inbox.storage_failed(&a, "read what forget would remove", &e),
        Err(e) => return inbox.message(&a, StatusCode::CONFLICT, "Nothing to forget", vec![e.to_string()], None),
    };
    tracing::info!(customer = %plan.customer, "inbox: forget");
    match data::execute_forget(&inbox.app.store, &plan).await {
        Ok(report) => {
            let mut lines = vec![format!(
                "Deleted {} lead row(s) and {} journey-index entr(y/ies); replaced the address in {} other customer(s)' row(s) and {} notifier state row(s).",
                report.deleted, report.index_removed, report.redacted, report.state_redacted
            )];
            lines.extend(report.left.iter().cloned());
            lines.push("Microsoft's own copy of these leads (Partner Center → Referrals) is not touched: remove it there.".into());
            inbox.message(&a, StatusCode::OK, "Customer forgotten", lines, None)
        }
        Err(e) => inbox.storage_failed(&a, "finish forgetting (run it again: every step is idempotent)", &e),
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

async fn signin_form(State(inbox): Shared, headers: HeaderMap) -> Response {
    match &inbox.gate {
        Gate::SignIn { .. } => signin_page(&inbox, &headers, false),
        // Nothing to sign in to: the inbox itself says who may look.
        _ => (StatusCode::SEE_OTHER, [(header::LOCATION, BASE)]).into_response(),
    }
}

fn signin_page(inbox: &Inbox, headers: &HeaderMap, wrong_key: bool) -> Response {
    let (csrf, new) = match auth::cookie(headers, CSRF_COOKIE).filter(|c| c.len() >= 32) {
        Some(c) => (c.to_string(), false),
        None => (auth::random_token(), true),
    };
    let status = if wrong_key { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    let mut resp = html(status, SignInTemplate { csrf: csrf.clone(), wrong_key, base: BASE });
    if new {
        inbox.set_cookie(&mut resp, &auth::set_cookie(CSRF_COOKIE, &csrf, inbox.gate.secure_cookies(), None));
    }
    resp
}

async fn signin(State(inbox): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let Gate::SignIn { key, sessions, secure_cookies } = &inbox.gate else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, BASE)]).into_response();
    };
    let form = pairs(&body);
    if !auth::csrf_ok(&headers, form.get("csrf").map(String::as_str)) {
        return refused(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            "This form was not sent from the inbox's sign-in page. Reload it and try again.",
        );
    }
    if !crate::http::auth::key_matches(key, form.get("key").map(String::as_str).unwrap_or_default()) {
        tracing::warn!("inbox: sign-in with a wrong key");
        // Slows guessing down; the key is compared in constant time either way.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        return signin_page(&inbox, &headers, true);
    }
    let token = sessions.start();
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, BASE)]).into_response();
    inbox.set_cookie(&mut resp, &auth::set_cookie(SESSION_COOKIE, &token, *secure_cookies, Some(auth::Sessions::lifetime())));
    resp
}

async fn signout(State(inbox): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let form = pairs(&body);
    if !auth::csrf_ok(&headers, form.get("csrf").map(String::as_str)) {
        return refused(StatusCode::FORBIDDEN, "Sign-out refused", "This form was not sent from this inbox page.");
    }
    if let (Gate::SignIn { sessions, .. }, Some(token)) = (&inbox.gate, auth::cookie(&headers, SESSION_COOKIE)) {
        sessions.end(token);
    }
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, format!("{BASE}/signin"))]).into_response();
    inbox.set_cookie(&mut resp, &auth::set_cookie(SESSION_COOKIE, "", inbox.gate.secure_cookies(), Some(std::time::Duration::ZERO)));
    resp
}

async fn not_found() -> Response {
    refused(StatusCode::NOT_FOUND, "Not found", "The inbox has no such page.")
}
