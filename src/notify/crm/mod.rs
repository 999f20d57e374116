//! The CRM channels: each lead becomes a record in the publisher's CRM, idempotently (a retry
//! or a repeat after a lost answer updates or finds the same record, never adds another). One
//! module per CRM; what they share: the OAuth client-credentials token cache and request
//! ([`token`]: one fetch for concurrent sends, refreshed once when the CRM answers 401), the
//! field rules ([`fields`]: cleaning, length limits, fallbacks for required fields), and here the
//! `CrmClient` trait and the classification of HTTP failures.
//!
//! Error texts: a `DeliveryError`'s `summary` (logged) carries only the CRM's error *code* and
//! the status; the CRM's message, which may quote the lead's data back, goes to `answer`, which
//! is stored on the lead's row (`leads status`) and never logged. Tokens and client secrets
//! appear in neither.

pub mod dynamics;
mod fields;
pub mod hubspot;
pub mod marketo;
pub mod salesforce;
mod token;

pub use fields::*;
pub use token::*;

use super::message::LeadMessage;
use super::sender::Sender;
use super::transport::{Answer, DeliveryError, SendOutcome};
use crate::lead::Lead;
use crate::text::{one_line, truncate_chars};

/// The CRM clients the settings turn on, for `leads forget` (which reaches each CRM this app
/// wrote to); the notifier reaches them through the channel registry instead.
pub struct Crms {
    pub dynamics: Option<dynamics::Dynamics>,
    pub salesforce: Option<salesforce::Salesforce>,
    pub hubspot: Option<hubspot::HubSpot>,
    pub marketo: Option<marketo::Marketo>,
}

impl Crms {
    pub fn new(settings: &crate::settings::ChannelSettings) -> Self {
        Crms {
            dynamics: settings.dynamics.clone().map(dynamics::Dynamics::new),
            salesforce: settings.salesforce.clone().map(salesforce::Salesforce::new),
            hubspot: settings.hubspot.clone().map(hubspot::HubSpot::new),
            marketo: settings.marketo.clone().map(marketo::Marketo::new),
        }
    }
}

/// A CRM's own client: one lead in, one record created or updated (idempotently).
#[async_trait::async_trait]
pub trait CrmClient: Send + Sync {
    async fn send(&self, http: &reqwest::Client, lead: &Lead, msg: &LeadMessage) -> SendOutcome;
}

/// A CRM as a channel: its client and the shared HTTP client.
pub struct Crm<C> {
    http: reqwest::Client,
    client: C,
}

impl<C: CrmClient> Crm<C> {
    pub fn new(http: &reqwest::Client, client: C) -> Self {
        Crm { http: http.clone(), client }
    }
}

#[async_trait::async_trait]
impl<C: CrmClient> Sender for Crm<C> {
    async fn send(&self, lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        self.client.send(&self.http, lead, msg).await
    }
}

/// A 2xx whose body could not be read (cut short, not JSON): the call may have worked, and every
/// CRM call here is safe to repeat, so the attempt is retried, never taken as a refusal or as
/// "nothing there".
pub fn unreadable(crm: &str, doing: &str, answer: &Answer) -> SendOutcome {
    SendOutcome::Retry {
        error: DeliveryError {
            summary: format!("{crm}: {doing}: HTTP {} with an answer that could not be read", answer.status),
            answer: Some(body_excerpt(answer)),
        },
        after: None,
    }
}

/// What a CRM call of `leads forget` came to: success (`Delivered`, or `Skipped` for "nothing
/// there") or the error that leaves something behind. Forget reuses the channels' token cache
/// and 401 handling ([`with_token`]), whose calls answer a [`SendOutcome`].
pub fn erase_result(outcome: SendOutcome) -> Result<(), DeliveryError> {
    match outcome {
        SendOutcome::Delivered | SendOutcome::Skipped(_) => Ok(()),
        SendOutcome::Retry { error, .. } | SendOutcome::Permanent(error) => Err(error),
    }
}

/// Retry or permanent, by status, as every HTTP channel does: 408, 429 and 5xx are retried
/// (honouring `Retry-After`), everything else is permanent.
pub fn failure(answer: &Answer, error: DeliveryError) -> SendOutcome {
    if answer.is_transient() {
        SendOutcome::Retry { error, after: answer.retry_after }
    } else {
        SendOutcome::Permanent(error)
    }
}

pub fn prefixed(crm: &str, doing: &str, e: DeliveryError) -> DeliveryError {
    DeliveryError { summary: format!("{crm}: {doing}: {}", e.summary), answer: e.answer }
}

/// An error code fit for a log line: short, one_line, no spaces (it comes from the CRM).
pub fn short(code: &str) -> String {
    truncate_chars(&one_line(code), 60).replace(char::is_whitespace, "_")
}

/// A CRM message fit for the row: one_line, one line, bounded.
pub fn clean(message: &str) -> String {
    truncate_chars(&one_line(message), 300)
}

/// The start of an answer whose shape we do not know, for the row.
pub fn body_excerpt(answer: &Answer) -> String {
    clean(&String::from_utf8_lossy(&answer.body))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::Value;

    /// A CRM's record of a lead full of hostile text (NUL, ESC sequences, bidi overrides, line
    /// breaks where a field is one line) holds none of it: the one check every CRM's `record` passes.
    pub(super) fn assert_hostile_text_is_cleaned(record: fn(&Lead, &LeadMessage) -> Value) {
        let body = serde_json::json!({"LeadSource": "SPZA-PLT|a.b", "UserDetails": {"Email": "jana@contoso.example",
            "FirstName": "Ja\u{0}na\u{1b}[31m", "LastName": "No\u{202E}vák\r\nBcc: x@evil.example", "Company": "\u{2066}Contoso\u{2069}\n",
            "Title": "CEO\u{85}\u{2028}"}, "Description": "line one\r\nline\u{7} two\u{202D}"})
        .to_string();
        let lead = Lead::from_payload(body.as_bytes()).unwrap().0;
        let r = record(&lead, &LeadMessage::new(&lead, "lead_x", "pk", "rk"));
        let forbidden = |c: char| (c.is_control() && c != '\n') || crate::text::is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}');
        for (k, v) in r.as_object().unwrap() {
            let v = v.as_str().unwrap_or_default();
            assert!(!v.contains(forbidden), "{k}: {v:?}");
        }
        for k in ["firstname", "lastname", "companyname", "jobtitle", "subject", "FirstName", "LastName", "Company", "Title"] {
            assert!(!r.get(k).and_then(Value::as_str).unwrap_or_default().contains('\n'), "{k} is one line");
        }
        let description = r.as_object().unwrap().iter().find(|(k, _)| k.eq_ignore_ascii_case("description")).unwrap().1.as_str().unwrap();
        assert!(description.contains("line one  line  two") || description.contains("Description: line one"), "{description}");
    }
}
