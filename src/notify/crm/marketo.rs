//! Marketo Engage: the customer becomes (or updates) a lead, keyed on e-mail
//! (`POST /rest/v1/leads.json`, `createOrUpdate`, `lookupField: email`).
//!
//! Token: the LaunchPoint custom service's client credentials at the Identity endpoint
//! (`{base}/identity/oauth/token`), sent as a form POST so the secret is never in a URL (the
//! docs show GET with query parameters and allow POST). Tokens last an hour; cached until five
//! minutes before.
//!
//! Marketo answers HTTP 200 for most errors, with `success: false` and coded `errors`:
//! 601/602 (token invalid/expired) → one refresh and retry; 604, 606 (100 calls per 20 s), 608,
//! 611, 614, 615 (10 concurrent calls), 713 → retried later; 607 (daily quota) → retried after
//! an hour; anything else is permanent. A record-level `skipped` (`reasons`: 1003 invalid data,
//! 1006 unknown field, …) is permanent too.
//!
//! Idempotency: `createOrUpdate` on e-mail updates the same person on a retry. Marketo
//! documents that *concurrent* upserts of one e-mail may create duplicates, so sends for one
//! e-mail are serialized within the process (two leads of the same customer in one run). Across
//! instances the lead claim already keeps one lead to one sender; two different leads of one
//! customer handled by two instances in the same second remain a (documented) residual.
//!
//! Only the lead's present values are sent, never placeholders, so an existing person's data is
//! not blanked; `leadSource` is not sent either, so an existing person's attribution stays. A
//! lead without an e-mail address is `skipped` with the reason. A DNC lead sets `unsubscribed`
//! and `doNotCall` (with their reason fields); other leads never send them, so nobody who
//! unsubscribed is subscribed again by us.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::{clean, client_credentials, failure, field, object, prefixed, short, with_token, Call, Fetched, TokenCache};
use crate::lead::Lead;
use crate::notify::message::LeadMessage;
use crate::notify::transport::{send_json, send_request, DeliveryError, RequestBody, SendOutcome};
use crate::settings::MarketoSettings;

/// The length of Marketo's standard string fields.
const MAX_FIELD: usize = 255;
const DNC_REASON: &str = "Microsoft commercial marketplace: do-not-contact (DNC) lead";

pub struct Marketo {
    settings: MarketoSettings,
    tokens: TokenCache,
    /// One upsert per e-mail at a time (see the module comment).
    in_flight: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The lead's fields (REST API names), present values only.
pub fn record(lead: &Lead, email: &str) -> Value {
    let c = &lead.contact;
    let dnc = lead.is_do_not_contact();
    object(vec![
        ("email", Some(email.into())),
        ("firstName", field(&c.first_name, MAX_FIELD).map(Into::into)),
        ("lastName", field(&c.last_name, MAX_FIELD).map(Into::into)),
        ("phone", field(&c.phone, MAX_FIELD).map(Into::into)),
        ("company", field(&c.company, MAX_FIELD).map(Into::into)),
        ("title", field(&c.title, MAX_FIELD).map(Into::into)),
        ("country", field(&c.country, MAX_FIELD).map(Into::into)),
        ("unsubscribed", dnc.then_some(Value::Bool(true))),
        ("unsubscribedReason", dnc.then(|| DNC_REASON.into())),
        ("doNotCall", dnc.then_some(Value::Bool(true))),
        ("doNotCallReason", dnc.then(|| DNC_REASON.into())),
    ])
}

/// The address Marketo keys the person on, or why this lead cannot be a Marketo person (then
/// the channel is `skipped` with that reason, not failed: no retry would change it). Marketo's
/// Email Address field takes ASCII addresses only; an internationalised one (`jana@bücher.de`,
/// `ján@…`) is refused as invalid, so it is not sent.
pub fn storable_email(lead: &Lead) -> Result<String, &'static str> {
    let email = super::email(&lead.contact).ok_or("Marketo: the lead has no e-mail address, and Marketo keys leads on it")?;
    if !email.is_ascii() {
        return Err("Marketo: the e-mail address is internationalised (not ASCII), which Marketo's Email Address field cannot store");
    }
    if email.len() > MAX_FIELD {
        return Err("Marketo: the e-mail address is longer than Marketo's Email Address field (255 characters)");
    }
    Ok(email)
}

/// What a Marketo error code means for the attempt.
fn by_code(code: &str, error: DeliveryError) -> Call {
    match code {
        "601" => Call::Unauthorized(error),
        "602" => Call::Expired(error),
        // The 20-second rate window.
        "606" => Call::Done(SendOutcome::Retry { error, after: Some(Duration::from_secs(20)) }),
        "604" | "608" | "611" | "614" | "615" | "713" => Call::Done(SendOutcome::Retry { error, after: None }),
        "607" => Call::Done(SendOutcome::Retry { error, after: Some(Duration::from_secs(60 * 60)) }),
        _ => Call::Done(SendOutcome::Permanent(error)),
    }
}

impl Marketo {
    pub fn new(settings: MarketoSettings) -> Self {
        Marketo { settings, tokens: TokenCache::default(), in_flight: Default::default() }
    }

    async fn token(&self, http: &reqwest::Client) -> Result<Fetched, SendOutcome> {
        let s = &self.settings;
        let form =
            [("grant_type", "client_credentials"), ("client_id", s.client_id.as_str()), ("client_secret", s.client_secret.expose_secret())];
        client_credentials(http, "Marketo", &format!("{}/identity/oauth/token", s.base_url), &form).await
    }

    fn lock_for(&self, email: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        // Forget the e-mails nobody is sending for, so the map stays small.
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(email.to_ascii_lowercase()).or_default().clone()
    }

    pub async fn send(&self, http: &reqwest::Client, lead: &Lead, _msg: &LeadMessage) -> SendOutcome {
        let email = match storable_email(lead) {
            Ok(email) => email,
            Err(reason) => return SendOutcome::Skipped(DeliveryError::new(reason)),
        };
        let lock = self.lock_for(&email);
        let _one_at_a_time = lock.lock().await;
        let url = format!("{}/rest/v1/leads.json", self.settings.base_url);
        let body = json!({"action": "createOrUpdate", "lookupField": "email", "input": [record(lead, &email)]}).to_string();
        let call = |token: super::Token| {
            let (url, body) = (url.clone(), body.clone());
            async move {
                let headers = [token.bearer(), ("Accept", "application/json".to_string())];
                let answer = match send_json(http, reqwest::Method::POST, &url, &headers, body).await {
                    Ok(a) => a,
                    Err(e) => return Call::Done(SendOutcome::Retry { error: prefixed("Marketo", "lead sync", e), after: None }),
                };
                let json = answer.json();
                let Some(json) = json.filter(|_| answer.is_success()) else {
                    if answer.is_success() {
                        return Call::Done(super::unreadable("Marketo", "lead sync", &answer));
                    }
                    let error =
                        DeliveryError { summary: format!("Marketo: HTTP {}", answer.status), answer: Some(super::body_excerpt(&answer)) };
                    if answer.status == 401 {
                        return Call::Unauthorized(error);
                    }
                    return Call::Done(failure(&answer, error));
                };
                if json["success"] != Value::Bool(true) {
                    // {"success":false,"errors":[{"code":"602","message":"Access token expired"}]}
                    let e = &json["errors"][0];
                    let code =
                        e["code"].as_str().map(str::to_string).or_else(|| e["code"].as_u64().map(|c| c.to_string())).unwrap_or_default();
                    let error = DeliveryError {
                        summary: format!("Marketo: error {}", short(&code)),
                        answer: Some(e["message"].as_str().map(clean).unwrap_or_else(|| super::body_excerpt(&answer))),
                    };
                    return by_code(&code, error);
                }
                let result = &json["result"][0];
                match result["status"].as_str() {
                    Some("created" | "updated") => Call::Done(SendOutcome::Delivered),
                    status => {
                        // {"status":"skipped","reasons":[{"code":"1003","message":"…"}]}
                        let reason = &result["reasons"][0];
                        let code = reason["code"].as_str().map(short).unwrap_or_default();
                        Call::Done(SendOutcome::Permanent(DeliveryError {
                            summary: format!("Marketo: lead {} {code}", short(status.unwrap_or("not synced"))),
                            answer: reason["message"].as_str().map(clean),
                        }))
                    }
                }
            }
        };
        with_token(&self.tokens, || self.token(http), call, "check the LaunchPoint service's API-only user and its role (Read-Write Lead)")
            .await
    }
}

#[async_trait::async_trait]
impl super::CrmClient for Marketo {
    async fn send(&self, http: &reqwest::Client, lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        Marketo::send(self, http, lead, msg).await
    }
}

/// `leads forget` in Marketo: the person this app created or updated (keyed on e-mail; it may
/// hold the customer's whole marketing history) is found and listed, and deleted only on request
/// (`POST /rest/v1/leads/delete.json`).
impl Marketo {
    /// Runs one authenticated Marketo call for forget; `Ok` with the `result` array.
    async fn forget_call(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
        doing: &'static str,
    ) -> Result<Vec<Value>, DeliveryError> {
        let result = std::sync::Mutex::new(Vec::new());
        let call = |token: super::Token| {
            let (url, body, result) = (url.clone(), body.clone(), &result);
            let method = method.clone();
            async move {
                let headers = [token.bearer(), ("Accept", "application/json".to_string())];
                let body = body.map_or(RequestBody::None, |b| RequestBody::Json(b.to_string()));
                let answer = match send_request(http, method, &url, &headers, body).await {
                    Ok(a) => a,
                    Err(e) => return Call::Done(SendOutcome::Retry { error: prefixed("Marketo", doing, e), after: None }),
                };
                let Some(json) = answer.json().filter(|_| answer.is_success()) else {
                    if answer.is_success() {
                        return Call::Done(super::unreadable("Marketo", doing, &answer));
                    }
                    let error = DeliveryError {
                        summary: format!("Marketo: {doing}: HTTP {}", answer.status),
                        answer: Some(super::body_excerpt(&answer)),
                    };
                    return if answer.status == 401 { Call::Unauthorized(error) } else { Call::Done(failure(&answer, error)) };
                };
                if json["success"] != Value::Bool(true) {
                    let e = &json["errors"][0];
                    let code =
                        e["code"].as_str().map(str::to_string).or_else(|| e["code"].as_u64().map(|c| c.to_string())).unwrap_or_default();
                    let error = DeliveryError {
                        summary: format!("Marketo: {doing}: error {}", short(&code)),
                        answer: e["message"].as_str().map(clean),
                    };
                    return by_code(&code, error);
                }
                *result.lock().unwrap_or_else(|p| p.into_inner()) = json["result"].as_array().cloned().unwrap_or_default();
                Call::Done(SendOutcome::Delivered)
            }
        };
        let outcome = with_token(&self.tokens, || self.token(http), call, "check the API-only user's role (Read-Write Lead)").await;
        super::erase_result(outcome)?;
        Ok(result.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    /// The ids of the people with this e-mail (`GET /rest/v1/leads.json?filterType=email&filterValues=…&fields=id`).
    pub async fn find_people(&self, http: &reqwest::Client, email: &str) -> Result<Vec<u64>, DeliveryError> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("filterType", "email")
            .append_pair("filterValues", email)
            .append_pair("fields", "id")
            .finish();
        let url = format!("{}/rest/v1/leads.json?{query}", self.settings.base_url);
        let result = self.forget_call(http, reqwest::Method::GET, url, None, "lead lookup").await?;
        Ok(result.iter().filter_map(|r| r["id"].as_u64()).collect())
    }

    /// Deletes people by id (`POST /rest/v1/leads/delete.json`); every one must come back
    /// `deleted` (or be gone already: 1004 "lead not found").
    pub async fn delete_people(&self, http: &reqwest::Client, ids: &[u64]) -> Result<(), DeliveryError> {
        if ids.is_empty() {
            return Ok(());
        }
        let body = json!({"input": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()});
        let url = format!("{}/rest/v1/leads/delete.json", self.settings.base_url);
        let result = self.forget_call(http, reqwest::Method::POST, url, Some(body), "lead delete").await?;
        for r in &result {
            let not_found = r["reasons"][0]["code"].as_str() == Some("1004");
            if r["status"] != "deleted" && !not_found {
                return Err(DeliveryError {
                    summary: format!("Marketo: lead delete: {}", short(r["status"].as_str().unwrap_or("no status"))),
                    answer: r["reasons"][0]["message"].as_str().map(clean),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_address_marketo_cannot_store_skips_the_lead_with_the_reason() {
        // Nothing listens on port 9: a skip never reaches the network.
        let marketo = Marketo::new(MarketoSettings {
            base_url: "http://127.0.0.1:9".into(),
            client_id: "id".into(),
            client_secret: "s".to_string().into(),
        });
        let http = reqwest::Client::new();
        for (email, why) in [("ján@contoso.example", "internationalised"), ("jana@bücher.example", "internationalised"), ("", "no e-mail")]
        {
            let body = json!({"LeadSource": "SPZA-INS|a.b", "UserDetails": {"Email": email}}).to_string();
            let lead = Lead::from_payload(body.as_bytes()).unwrap().0;
            match marketo.send(&http, &lead, &LeadMessage::new(&lead, "lead_x", "pk", "rk")).await {
                SendOutcome::Skipped(e) => assert!(e.summary.contains(why), "{email}: {}", e.summary),
                other => panic!("{email}: {other:?}"),
            }
        }
    }

    #[test]
    fn customer_text_reaches_marketo_cleaned() {
        let body = json!({"LeadSource": "SPZA-INS|a.b", "UserDetails": {"Email": "a@b.example",
            "Company": "Evil\u{0}\u{1b}[2J\r\nCorp\u{202E}", "FirstName": "\u{2066}Jana\u{2069}\u{7}"}})
        .to_string();
        let lead = Lead::from_payload(body.as_bytes()).unwrap().0;
        let r = record(&lead, "a@b.example");
        assert_eq!((r["company"].as_str(), r["firstName"].as_str()), (Some("Evil  [2J  Corp"), Some("Jana")));
    }

    #[test]
    fn dnc_sets_the_flags_and_others_never_send_them() {
        let dnc =
            Lead::from_payload(br#"{"LeadSource":"SPZA-DNC|a.b","ActionCode":"DNC","UserDetails":{"Email":"a@b.example"}}"#).unwrap().0;
        let r = record(&dnc, "a@b.example");
        assert_eq!(r["unsubscribed"], true);
        assert_eq!(r["doNotCall"], true);
        let plain = Lead::from_payload(br#"{"LeadSource":"SPZA-INS|a.b","UserDetails":{"Email":"a@b.example"}}"#).unwrap().0;
        let r = record(&plain, "a@b.example");
        assert!(r.get("unsubscribed").is_none() && r.get("lastName").is_none());
    }
}
