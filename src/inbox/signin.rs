//! `handler serve` with `INBOX_KEY`: the sign-in form, signing in (a session cookie) and out.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::{self, Gate, CSRF_COOKIE, SESSION_COOKIE};
use super::page::{html, pairs, refused, Inbox, Shared};
use super::views::*;

pub(super) async fn signin_form(State(inbox): Shared, headers: HeaderMap) -> Response {
    match &inbox.gate {
        Gate::SignIn { .. } => signin_page(&inbox, &headers, false),
        // Nothing to sign in to: the inbox itself says who may look.
        _ => (StatusCode::SEE_OTHER, [(header::LOCATION, BASE)]).into_response(),
    }
}

fn signin_page(inbox: &Inbox, headers: &HeaderMap, wrong_key: bool) -> Response {
    let (csrf, new) = auth::csrf_token(headers);
    let status = if wrong_key { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    let mut resp = html(status, SignInTemplate { csrf: csrf.clone(), wrong_key, base: BASE });
    if new {
        inbox.set_cookie(&mut resp, &auth::set_cookie(CSRF_COOKIE, &csrf, inbox.gate.secure_cookies(), None));
    }
    resp
}

pub(super) async fn signin(State(inbox): Shared, headers: HeaderMap, body: Bytes) -> Response {
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

pub(super) async fn signout(State(inbox): Shared, headers: HeaderMap, body: Bytes) -> Response {
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
