//! Dynamics 365 / Dataverse: each lead becomes a `lead` row through the Web API.
//!
//! Idempotency: the row's `leadid` is a UUID v5 of the lead's notification id, and the write
//! is `PATCH /api/data/v9.2/leads(<that id>)` with `If-None-Match: *` (create only). A retry
//! after a lost answer hits the same row: Dataverse answers 412 "already exists", which is the
//! proof of the earlier delivery, and a salesperson's edits in between are never overwritten.
//!
//! Token: Microsoft Entra client credentials (`POST {authority}/{tenant}/oauth2/v2.0/token`,
//! scope `https://<org>/.default`), written by hand rather than with `azure_identity`'s
//! `ClientSecretCredential`, for three reasons found when trying it (azure_identity 1.0):
//! it refuses any authority host that is not `https://`, so the loopback tests would need TLS
//! and a CA the binary trusts; its internal token cache has no way to force a refresh, so a
//! 401 with a cached-but-revoked token could not be retried with a new one; and it would add
//! azure_core (which wants reqwest 0.13) plus a transport adapter to the build. The request is
//! the documented form POST, and the shared cache in `crm::mod` refreshes early and on 401.

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::{
    clean, client_credentials, company, failure, field, fit, last_name, multi_line, object, prefixed, short, with_token, Call, Fetched,
    TokenCache,
};
use crate::lead::Lead;
use crate::notify::message::LeadMessage;
use crate::notify::transport::{send_json, send_request, DeliveryError, RequestBody, SendOutcome};
use crate::settings::DynamicsSettings;
use crate::text::one_line;

/// The namespace of our lead ids (UUID v5): fixed forever, or retries would make new rows.
const LEAD_ID_NAMESPACE: uuid::Uuid = uuid::uuid!("6d1f2a8e-0c4b-5b7e-9a53-2f0e8c1d4b67");

/// `leadsourcecode` option 8, "Web", in the default option set.
const LEAD_SOURCE_WEB: u32 = 8;

pub struct Dynamics {
    settings: DynamicsSettings,
    tokens: TokenCache,
}

/// The Dataverse `leadid` of a lead: stable for its notification id.
pub fn lead_id(notification_id: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&LEAD_ID_NAMESPACE, notification_id.as_bytes())
}

/// The `lead` row, with the lengths of the standard columns (MaxLength from the lead table's
/// reference; a longer value would be a 400).
pub fn record(lead: &Lead, msg: &LeadMessage) -> Value {
    let c = &lead.contact;
    let dnc = lead.is_do_not_contact().then_some(Value::Bool(true));
    let description = format!("{}\nMarketplace lead id: {}", msg.plain_text(), msg.id);
    object(vec![
        ("subject", Some(fit(&one_line(&msg.subject), 300).into())),
        ("firstname", field(&c.first_name, 50).map(Into::into)),
        ("lastname", Some(last_name(c, 50).into())),
        ("emailaddress1", super::email_field(c, 100).map(Into::into)),
        ("telephone1", field(&c.phone, 50).map(Into::into)),
        ("companyname", Some(company(c, 100).into())),
        ("jobtitle", field(&c.title, 100).map(Into::into)),
        ("address1_country", field(&c.country, 80).map(Into::into)),
        ("description", Some(fit(&multi_line(&description), 2000).into())),
        ("leadsourcecode", Some(json!(LEAD_SOURCE_WEB))),
        // A DNC lead: the CRM's own flags say so; others leave the defaults alone.
        ("donotemail", dnc.clone()),
        ("donotbulkemail", dnc.clone()),
        ("donotphone", dnc),
    ])
}

impl Dynamics {
    pub fn new(settings: DynamicsSettings) -> Self {
        Dynamics { settings, tokens: TokenCache::default() }
    }

    async fn token(&self, http: &reqwest::Client) -> Result<Fetched, SendOutcome> {
        let s = &self.settings;
        let url = format!("{}/{}/oauth2/v2.0/token", s.authority_host, s.tenant);
        let scope = format!("{}/.default", s.url);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", s.client_id.as_str()),
            ("client_secret", s.client_secret.expose_secret()),
            ("scope", scope.as_str()),
        ];
        client_credentials(http, "Dynamics", &url, &form).await
    }

    /// The Web API address of the `lead` row this app creates for notification `notification_id`.
    fn lead_url(&self, notification_id: &str) -> String {
        format!("{}/api/data/v9.2/leads({})", self.settings.url, lead_id(notification_id))
    }

    pub async fn send(&self, http: &reqwest::Client, lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        let url = self.lead_url(&msg.id);
        let body = record(lead, msg).to_string();
        let call = |token: super::Token| {
            let (url, body) = (url.clone(), body.clone());
            async move {
                let mut headers = web_api_headers(&token);
                // Create only: never overwrite a row a salesperson has worked on since.
                headers.push(("If-None-Match", "*".to_string()));
                let answer = match send_json(http, reqwest::Method::PATCH, &url, &headers, body).await {
                    Ok(a) => a,
                    Err(e) => return Call::Done(SendOutcome::Retry { error: prefixed("Dynamics", "lead", e), after: None }),
                };
                // 412: the row exists, written by an earlier attempt whose answer was lost.
                if answer.is_success() || answer.status == 412 {
                    return Call::Done(SendOutcome::Delivered);
                }
                // {"error":{"code":"0x80040203","message":"…"}}
                let json = answer.json();
                let code = error_code(json.as_ref());
                let message = json.as_ref().and_then(|j| j["error"]["message"].as_str()).map(clean);
                let error = DeliveryError {
                    summary: format!("Dynamics: HTTP {}{}", answer.status, code.map(|c| format!(" {c}")).unwrap_or_default()),
                    answer: Some(message.unwrap_or_else(|| super::body_excerpt(&answer))),
                };
                if answer.status == 401 {
                    return Call::Unauthorized(error);
                }
                Call::Done(failure(&answer, error))
            }
        };
        with_token(
            &self.tokens,
            || self.token(http),
            call,
            "check the application user in the Power Platform admin center (it must exist in this environment with a role that can create leads)",
        )
        .await
    }
}

#[async_trait::async_trait]
impl super::CrmClient for Dynamics {
    async fn send(&self, http: &reqwest::Client, lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        Dynamics::send(self, http, lead, msg).await
    }
}

impl Dynamics {
    /// `leads forget`: deletes the `lead` row this app created for the lead `notification_id`
    /// (`DELETE /api/data/v9.2/leads(<leadid>)`; the id is ours, see [`lead_id`]). `Ok(true)`
    /// when deleted, `Ok(false)` when there is none (never created, or already deleted).
    pub async fn erase_lead(&self, http: &reqwest::Client, notification_id: &str) -> Result<bool, DeliveryError> {
        let url = self.lead_url(notification_id);
        let removed = std::sync::atomic::AtomicBool::new(false);
        let call = |token: super::Token| {
            let (url, removed) = (url.clone(), &removed);
            async move {
                let headers = web_api_headers(&token);
                let answer = match send_request(http, reqwest::Method::DELETE, &url, &headers, RequestBody::None).await {
                    Ok(a) => a,
                    Err(e) => return Call::Done(SendOutcome::Retry { error: prefixed("Dynamics", "lead delete", e), after: None }),
                };
                if answer.is_success() {
                    removed.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Call::Done(SendOutcome::Delivered);
                }
                // 404: `lead With Id = … Does Not Exist`.
                if answer.status == 404 {
                    return Call::Done(SendOutcome::Delivered);
                }
                let code = error_code(answer.json().as_ref());
                let error = DeliveryError {
                    summary: format!("Dynamics: lead delete: HTTP {}{}", answer.status, code.map(|c| format!(" {c}")).unwrap_or_default()),
                    answer: Some(super::body_excerpt(&answer)),
                };
                if answer.status == 401 {
                    return Call::Unauthorized(error);
                }
                Call::Done(failure(&answer, error))
            }
        };
        let outcome =
            with_token(&self.tokens, || self.token(http), call, "check the application user's role (it must be able to delete leads)")
                .await;
        super::erase_result(outcome)?;
        Ok(removed.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// The headers of every Dataverse Web API call.
fn web_api_headers(token: &super::Token) -> Vec<(&'static str, String)> {
    vec![
        token.bearer(),
        ("Accept", "application/json".to_string()),
        ("OData-MaxVersion", "4.0".to_string()),
        ("OData-Version", "4.0".to_string()),
    ]
}

/// The short code of a Web API error (`{"error":{"code":"0x80040203",…}}`).
fn error_code(json: Option<&serde_json::Value>) -> Option<String> {
    json.and_then(|j| j["error"]["code"].as_str()).map(short).filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lead_id_is_a_stable_v5_uuid() {
        let a = lead_id("lead_0123456789abcdef01234567");
        assert_eq!(a, lead_id("lead_0123456789abcdef01234567"));
        assert_ne!(a, lead_id("lead_0123456789abcdef01234568"));
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn the_row_fits_the_columns_and_flags_dnc() {
        let body = br#"{"LeadSource":"SPZA-DNC|a.b","ActionCode":"DNC","UserDetails":{"FirstName":"Jana","Company":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}"#;
        let lead = Lead::from_payload(body).unwrap().0;
        let msg = LeadMessage::new(&lead, "lead_x", "pk", "rk");
        let r = record(&lead, &msg);
        assert_eq!(r["lastname"], "(unknown)");
        assert_eq!(r["companyname"].as_str().unwrap().len(), 100);
        assert_eq!(r["donotemail"], true);
        assert_eq!(r["donotphone"], true);
        assert!(r.get("emailaddress1").is_none());
        assert!(r["description"].as_str().unwrap().contains("Marketplace lead id: lead_x"));
    }

    #[test]
    fn customer_text_reaches_the_record_cleaned_like_notifications() {
        super::super::tests::assert_hostile_text_is_cleaned(record);
    }
}
