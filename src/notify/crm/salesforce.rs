//! Salesforce: each lead becomes a Lead record, upserted by an External ID field.
//!
//! Token: the connected app's OAuth 2.0 client-credentials flow on the org's My Domain
//! (`POST {domain}/services/oauth2/token`); the answer's `instance_url` is where data calls go.
//! Salesforce issues no refresh token and names no lifetime: the token is kept for 30 minutes
//! or until a 401, whichever comes first, then fetched again.
//!
//! Idempotency: `PATCH /services/data/v60.0/sobjects/Lead/<ExternalIdField>/<notification id>`
//! creates the record (201) or updates the one already carrying that id (200/204). The field is
//! a custom text field marked External ID and Unique (README, "CRM channels"), so Salesforce
//! itself refuses a second record with the same id; a retry updates the same one.
//!
//! Not sent: `Country`. Orgs with State and Country picklists reject a free-text value that is
//! not one of their country names, and Microsoft sends ISO codes; the country is in the
//! description instead of failing the lead.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::Value;

use super::{
    clean, client_credentials, company, failure, field, fit, last_name, multi_line, object, prefixed, short, with_token, Call, Fetched,
    TokenCache,
};
use crate::lead::Lead;
use crate::notify::message::LeadMessage;
use crate::notify::transport::{send_json, send_request, DeliveryError, RequestBody, SendOutcome};
use crate::settings::SalesforceSettings;

pub const API_VERSION: &str = "v60.0";

/// After the org's 24-hour API limit is hit (`REQUEST_LIMIT_EXCEEDED`), wait this long.
const DAILY_LIMIT_WAIT: Duration = Duration::from_secs(60 * 60);

pub struct Salesforce {
    settings: SalesforceSettings,
    tokens: TokenCache,
}

/// The Lead's fields, cut to the Field Reference lengths. The external id is in the URL, not
/// here (Salesforce rejects it in the body of an upsert by that field).
pub fn record(lead: &Lead, msg: &LeadMessage) -> Value {
    let c = &lead.contact;
    let dnc = lead.is_do_not_contact().then_some(Value::Bool(true));
    let description = format!("{}\nMarketplace lead id: {}", msg.plain_text(), msg.id);
    object(vec![
        ("FirstName", field(&c.first_name, 40).map(Into::into)),
        ("LastName", Some(last_name(c, 80).into())),
        ("Company", Some(company(c, 255).into())),
        ("Email", super::email_field(c, 80).map(Into::into)),
        ("Phone", field(&c.phone, 40).map(Into::into)),
        ("Title", field(&c.title, 128).map(Into::into)),
        ("Description", Some(fit(&multi_line(&description), 32000).into())),
        // A value of the default LeadSource picklist.
        ("LeadSource", Some("Web".into())),
        ("HasOptedOutOfEmail", dnc.clone()),
        ("DoNotCall", dnc),
    ])
}

impl Salesforce {
    pub fn new(settings: SalesforceSettings) -> Self {
        Salesforce { settings, tokens: TokenCache::default() }
    }

    async fn token(&self, http: &reqwest::Client) -> Result<Fetched, SendOutcome> {
        let s = &self.settings;
        let form =
            [("grant_type", "client_credentials"), ("client_id", s.client_id.as_str()), ("client_secret", s.client_secret.expose_secret())];
        client_credentials(http, "Salesforce", &format!("{}/services/oauth2/token", s.domain), &form).await
    }

    /// Where data calls go: the token's `instance_url` when it is https (or the configured
    /// domain itself), else the configured domain.
    fn instance<'a>(&'a self, token: &'a super::Token) -> &'a str {
        match token.instance_url.as_deref().map(|u| u.trim_end_matches('/')) {
            Some(u) if u.starts_with("https://") || u == self.settings.domain => u,
            _ => &self.settings.domain,
        }
    }

    pub async fn send(&self, http: &reqwest::Client, lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        let body = record(lead, msg).to_string();
        let path = format!("/services/data/{API_VERSION}/sobjects/Lead/{}/{}", self.settings.external_id_field, msg.id);
        let call = |token: super::Token| {
            let url = format!("{}{path}", self.instance(&token));
            let body = body.clone();
            async move {
                let headers = [
                    token.bearer(),
                    ("Accept", "application/json".to_string()),
                    // Salesforce's standard lead duplicate rule matches on e-mail and, by
                    // default, blocks an API save unless told to allow it: a returning customer's
                    // second lead is exactly what the publisher wants to see.
                    ("Sforce-Duplicate-Rule-Header", "allowSave=true".to_string()),
                ];
                let answer = match send_json(http, reqwest::Method::PATCH, &url, &headers, body).await {
                    Ok(a) => a,
                    Err(e) => return Call::Done(SendOutcome::Retry { error: prefixed("Salesforce", "lead upsert", e), after: None }),
                };
                if answer.is_success() {
                    return Call::Done(SendOutcome::Delivered);
                }
                // [{"message":"…","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]}]
                let json = answer.json();
                let first = json.as_ref().and_then(|j| j.as_array()).and_then(|a| a.first()).cloned().unwrap_or(Value::Null);
                let code = first["errorCode"].as_str().map(short);
                let mut error = DeliveryError {
                    summary: format!("Salesforce: HTTP {}{}", answer.status, code.as_deref().map(|c| format!(" {c}")).unwrap_or_default()),
                    answer: Some(first["message"].as_str().map(clean).unwrap_or_else(|| super::body_excerpt(&answer))),
                };
                match (answer.status, code.as_deref()) {
                    (401, _) => Call::Unauthorized(error),
                    (300, _) => {
                        error.summary.push_str(" (several leads carry this marketplace lead id: is the field marked Unique?)");
                        Call::Done(SendOutcome::Permanent(error))
                    }
                    (404, Some("NOT_FOUND")) => {
                        error.summary.push_str(" (does the Lead field named by SALESFORCE_EXTERNAL_ID_FIELD exist, marked External ID?)");
                        Call::Done(SendOutcome::Permanent(error))
                    }
                    (403, Some("REQUEST_LIMIT_EXCEEDED")) => Call::Done(SendOutcome::Retry { error, after: Some(DAILY_LIMIT_WAIT) }),
                    // Another transaction held the record's lock: documented as transient.
                    (_, Some("UNABLE_TO_LOCK_ROW")) => Call::Done(SendOutcome::Retry { error, after: None }),
                    _ => Call::Done(failure(&answer, error)),
                }
            }
        };
        with_token(
            &self.tokens,
            || self.token(http),
            call,
            "check the connected app's Client Credentials Flow run-as user and its permission to create leads",
        )
        .await
    }
}

#[async_trait::async_trait]
impl super::CrmClient for Salesforce {
    async fn send(&self, http: &reqwest::Client, lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        Salesforce::send(self, http, lead, msg).await
    }
}

impl Salesforce {
    /// `leads forget`: deletes the Lead records this app created for the lead `notification_id`:
    /// found by a SOQL query on the external-id field (`GET …/query?q=SELECT Id FROM Lead WHERE
    /// <field> = '<id>'`, unambiguous where a 404 by external id could also mean a missing
    /// field), each deleted by its Id (`DELETE …/sobjects/Lead/<Id>`, 204). The count deleted.
    pub async fn erase_lead(&self, http: &reqwest::Client, notification_id: &str) -> Result<usize, DeliveryError> {
        // The id is `lead_` and hex (ours): nothing to escape in the SOQL literal, checked anyway.
        if !notification_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(DeliveryError::new("Salesforce: not a notification id"));
        }
        let soql = format!("SELECT Id FROM Lead WHERE {} = '{notification_id}'", self.settings.external_id_field);
        let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("q", &soql).finish();
        let removed = std::sync::atomic::AtomicUsize::new(0);
        let call = |token: super::Token| {
            let base = self.instance(&token).to_string();
            let (query, removed) = (query.clone(), &removed);
            async move {
                let headers = [token.bearer(), ("Accept", "application/json".to_string())];
                let url = format!("{base}/services/data/{API_VERSION}/query?{query}");
                let answer = match send_request(http, reqwest::Method::GET, &url, &headers, RequestBody::None).await {
                    Ok(a) => a,
                    Err(e) => return Call::Done(SendOutcome::Retry { error: prefixed("Salesforce", "lead query", e), after: None }),
                };
                if !answer.is_success() {
                    return refused("lead query", &answer);
                }
                let Some(json) = answer.json() else { return Call::Done(super::unreadable("Salesforce", "lead query", &answer)) };
                let ids: Vec<String> =
                    json["records"].as_array().into_iter().flatten().filter_map(|r| r["Id"].as_str().map(str::to_string)).collect();
                for id in ids {
                    if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                        return Call::Done(SendOutcome::Permanent(DeliveryError::new("Salesforce: lead query answered an odd Id")));
                    }
                    let url = format!("{base}/services/data/{API_VERSION}/sobjects/Lead/{id}");
                    let answer = match send_request(http, reqwest::Method::DELETE, &url, &headers, RequestBody::None).await {
                        Ok(a) => a,
                        Err(e) => return Call::Done(SendOutcome::Retry { error: prefixed("Salesforce", "lead delete", e), after: None }),
                    };
                    // 404 ENTITY_IS_DELETED / NOT_FOUND: gone already.
                    if answer.is_success() {
                        removed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else if answer.status != 404 {
                        return refused("lead delete", &answer);
                    }
                }
                Call::Done(SendOutcome::Delivered)
            }
        };
        let outcome =
            with_token(&self.tokens, || self.token(http), call, "check the run-as user's permission to read and delete leads").await;
        super::erase_result(outcome)?;
        Ok(removed.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// A Salesforce refusal (`[{"message","errorCode"}]`) of a forget call.
fn refused(doing: &str, answer: &crate::notify::transport::Answer) -> Call {
    let json = answer.json();
    let code = json.as_ref().and_then(|j| j[0]["errorCode"].as_str()).map(short);
    let error = DeliveryError {
        summary: format!("Salesforce: {doing}: HTTP {}{}", answer.status, code.map(|c| format!(" {c}")).unwrap_or_default()),
        answer: Some(super::body_excerpt(answer)),
    };
    if answer.status == 401 {
        Call::Unauthorized(error)
    } else {
        Call::Done(failure(answer, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_fields_are_always_there_and_cut_to_length() {
        let lead = Lead::from_payload(br#"{"LeadSource":"SPZA-INS|a.b","UserDetails":{"Email":"ana@northwind.example","FirstName":"An\u00e1 with a first name much longer than forty characters"}}"#).unwrap().0;
        let r = record(&lead, &LeadMessage::new(&lead, "lead_x", "pk", "rk"));
        assert_eq!(r["LastName"], "(unknown)");
        assert_eq!(r["Company"], "northwind.example");
        assert_eq!(r["FirstName"].as_str().unwrap().chars().count(), 40);
        assert!(r.get("DoNotCall").is_none() && r.get("MarketplaceLeadId__c").is_none());
    }

    #[test]
    fn customer_text_reaches_the_record_cleaned_like_notifications() {
        super::super::tests::assert_hostile_text_is_cleaned(record);
    }
}
