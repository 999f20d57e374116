//! What every inbox page shares: the [`Inbox`] state, admitting a viewer (and, for a change,
//! checking its CSRF token and role), and answering with a page, a message or a refusal. The
//! handlers (`routes`, `lead_page`, `changes`, `signin`) stand on this; it knows none of them.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;

use super::auth::{self, Gate, Refusal, Viewer, CSRF_COOKIE};
use super::data;
use super::days::DayReader;
use super::views::*;
use crate::channel_id::ChannelId;
use crate::clock::Clock;
use crate::http::AppState;

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
        let (csrf, new_csrf) = auth::csrf_token(headers);
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

/// The keys of the lead a request names, or the page that says it named none.
pub(super) fn lead_keys(inbox: &Inbox, a: &Admitted, q: &HashMap<String, String>) -> Result<(String, String), Refused> {
    match (q.get("pk"), q.get("rk")) {
        (Some(pk), Some(rk)) if !pk.is_empty() && !rk.is_empty() => Ok((pk.clone(), rk.clone())),
        _ => Err(Box::new(inbox.message(a, StatusCode::BAD_REQUEST, "Which lead?", vec!["The link names no lead.".into()], None))),
    }
}
