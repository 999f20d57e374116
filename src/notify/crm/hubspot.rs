//! HubSpot: the customer becomes (or updates) a contact, keyed on e-mail, and the lead itself
//! is a note on that contact's timeline.
//!
//! Token: a private app's static access token; there is nothing to refresh, so a 401 is a
//! permanent failure naming the token.
//!
//! Idempotency:
//! - The contact: `POST /crm/v3/objects/contacts/batch/upsert` with `idProperty: email`. E-mail
//!   is the contact's unique key in HubSpot, so a retry updates the same contact. Only the
//!   lead's present values are sent: an existing contact's data is never blanked, and no
//!   placeholder (`(unknown)`) overwrites a real name.
//! - The note: notes have no unique property a private app can upsert on (unique-value
//!   properties exist for contacts, companies, deals, tickets and custom objects only, and
//!   private apps cannot write custom timeline events). So every note carries a marker, the
//!   token `mpl<hex of the notification id>`, and before creating one we search the notes
//!   associated with the contact for that token (`POST /crm/v3/objects/notes/search`); found
//!   means an earlier attempt already created it, and it is delivered.
//!   **Residual race**: HubSpot's search index lags writes by seconds. A note created by an
//!   attempt whose answer was lost, and searched for again within those seconds, would be
//!   created twice. Retries here come at least 30 s apart (the retry schedule), and the claim
//!   keeps two runs off one lead, so this needs a lost answer and a lagging index together.
//!
//! A lead without an e-mail address cannot be a HubSpot contact: the channel records it as
//! `skipped` with that reason (`.edu` customers arrive without personal data; not a failure).
//!
//! Do not contact: HubSpot has no writable do-not-contact contact property (e-mail opt-out goes
//! through the subscriptions API, which needs a subscription id and another scope), so a DNC
//! lead's note begins with the do-not-contact banner and the contact is not subscribed to
//! anything by us.

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::{clean, failure, field, fit, object, prefixed, short};
use crate::lead::Lead;
use crate::notify::message::{html_escape, LeadMessage};
use crate::notify::transport::{send_json, send_request, Answer, DeliveryError, RequestBody, SendOutcome};
use crate::settings::HubSpotSettings;

/// HubSpot's limit on a string property, `hs_note_body` included.
const MAX_PROPERTY: usize = 65_536;
/// The HUBSPOT_DEFINED association type note → contact.
const NOTE_TO_CONTACT: u32 = 202;

pub struct HubSpot {
    settings: HubSpotSettings,
}

/// The token every note of this lead carries: letters and digits only, so HubSpot's tokenizer
/// keeps it whole for `CONTAINS_TOKEN`.
pub fn marker(notification_id: &str) -> String {
    format!("mpl{}", notification_id.chars().filter(char::is_ascii_alphanumeric).collect::<String>().trim_start_matches("lead"))
}

/// The contact's properties: present values only.
pub fn contact(lead: &Lead, email: &str) -> Value {
    let c = &lead.contact;
    object(vec![
        ("email", Some(email.into())),
        ("firstname", field(&c.first_name, MAX_PROPERTY).map(Into::into)),
        ("lastname", field(&c.last_name, MAX_PROPERTY).map(Into::into)),
        ("phone", field(&c.phone, MAX_PROPERTY).map(Into::into)),
        ("company", field(&c.company, MAX_PROPERTY).map(Into::into)),
        ("jobtitle", field(&c.title, MAX_PROPERTY).map(Into::into)),
        ("country", field(&c.country, MAX_PROPERTY).map(Into::into)),
    ])
}

/// The note's body. `hs_note_body` is rich text that HubSpot renders as HTML: every value is
/// escaped, so customer text shows as typed and never becomes markup.
pub fn note_body(msg: &LeadMessage) -> String {
    let mut html = format!("<p><strong>{}</strong></p>", html_escape(&msg.subject));
    for b in msg.banners() {
        html.push_str(&format!("<p><strong>{}</strong></p>", html_escape(b)));
    }
    html.push_str("<p>");
    for (k, v) in &msg.facts {
        html.push_str(&format!("{}: {}<br>", html_escape(k), html_escape(v)));
    }
    // The customer's journey, as every notification tells it.
    if let Some(heading) = msg.history_heading() {
        html.push_str(&format!("</p><p><strong>{}</strong><br>", html_escape(&heading)));
        for line in msg.history_lines() {
            html.push_str(&format!("{}<br>", html_escape(&line)));
        }
    }
    html.push_str("</p>");
    // The marker last, and never cut: a retry finds the note by it. Spaces on both sides, so
    // it is a token of its own however the search splits the text (markup included).
    let tail = format!("<p>Marketplace lead ref: {} </p>", marker(&msg.id));
    fit(&html, MAX_PROPERTY - tail.len()) + &tail
}

/// `{"status":"error","message":"…","category":"VALIDATION_ERROR",…}` as a `DeliveryError`.
fn error(doing: &str, answer: &Answer) -> DeliveryError {
    let json = answer.json();
    let category = json.as_ref().and_then(|j| j["category"].as_str().or(j["errorType"].as_str())).map(short);
    let mut summary = format!("HubSpot: {doing}: HTTP {}{}", answer.status, category.map(|c| format!(" {c}")).unwrap_or_default());
    match answer.status {
        401 => summary.push_str(" (the private app's access token is wrong or was rotated: set HUBSPOT_TOKEN)"),
        403 => summary.push_str(" (the private app lacks a scope: crm.objects.contacts.read and .write)"),
        _ => {}
    }
    DeliveryError {
        summary,
        answer: Some(json.as_ref().and_then(|j| j["message"].as_str()).map(clean).unwrap_or_else(|| super::body_excerpt(answer))),
    }
}

impl HubSpot {
    pub fn new(settings: HubSpotSettings) -> Self {
        HubSpot { settings }
    }

    async fn post(&self, http: &reqwest::Client, path: &str, body: Value, doing: &str) -> Result<Answer, SendOutcome> {
        let headers =
            [("Authorization", format!("Bearer {}", self.settings.token.expose_secret())), ("Accept", "application/json".to_string())];
        let answer = send_json(http, reqwest::Method::POST, &format!("{}{path}", self.settings.base_url), &headers, body.to_string())
            .await
            .map_err(|e| SendOutcome::Retry { error: prefixed("HubSpot", doing, e), after: None })?;
        if answer.is_success() {
            Ok(answer)
        } else if answer.status == 409 {
            // Two leads of one customer upserting the same e-mail at once: the next attempt
            // finds the contact.
            Err(SendOutcome::Retry { error: error(doing, &answer), after: None })
        } else {
            Err(failure(&answer, error(doing, &answer)))
        }
    }

    pub async fn send(&self, http: &reqwest::Client, lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        match self.deliver(http, lead, msg).await {
            Ok(()) => SendOutcome::Delivered,
            Err(outcome) => outcome,
        }
    }

    async fn deliver(&self, http: &reqwest::Client, lead: &Lead, msg: &LeadMessage) -> Result<(), SendOutcome> {
        let Some(email) = super::email(&lead.contact) else {
            return Err(SendOutcome::Skipped(DeliveryError::new(
                "HubSpot: the lead has no e-mail address, and HubSpot keys contacts on it",
            )));
        };

        // 1. The contact, created or updated by e-mail.
        let upsert = json!({"inputs": [{"idProperty": "email", "id": email, "properties": contact(lead, &email)}]});
        let answer = self.post(http, "/crm/v3/objects/contacts/batch/upsert", upsert, "contact upsert").await?;
        let Some(json) = answer.json() else { return Err(super::unreadable("HubSpot", "contact upsert", &answer)) };
        let Some(contact_id) = json["results"][0]["id"].as_str().map(str::to_string) else {
            // 207 Multi-Status: the batch answered, the one input failed.
            let message = json["errors"][0]["message"].as_str().map(clean);
            return Err(SendOutcome::Permanent(DeliveryError {
                summary: format!("HubSpot: contact upsert: HTTP {} without a contact id", answer.status),
                answer: Some(message.unwrap_or_else(|| super::body_excerpt(&answer))),
            }));
        };

        // 2. The note, unless an earlier attempt created it already.
        let marker = marker(&msg.id);
        let search = json!({
            "filterGroups": [{"filters": [
                {"propertyName": "associations.contact", "operator": "EQ", "value": contact_id},
                {"propertyName": "hs_note_body", "operator": "CONTAINS_TOKEN", "value": marker},
            ]}],
            // Ids only: the filter is exact, and a note's body can be 64 KiB.
            "properties": ["hs_object_id"],
            "limit": 1,
        });
        let answer = self.post(http, "/crm/v3/objects/notes/search", search, "note search").await?;
        // An answer we cannot read must not pass for "no such note": that would add a second.
        let Some(found) = answer.json() else { return Err(super::unreadable("HubSpot", "note search", &answer)) };
        if found["total"].as_u64().is_some_and(|t| t > 0) || found["results"].as_array().is_some_and(|r| !r.is_empty()) {
            return Ok(());
        }
        let timestamp = lead.created.unwrap_or_else(chrono::Utc::now).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let note = json!({
            "properties": {"hs_timestamp": timestamp, "hs_note_body": note_body(msg)},
            "associations": [{"to": {"id": contact_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}]}],
        });
        self.post(http, "/crm/v3/objects/notes", note, "note").await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl super::CrmClient for HubSpot {
    async fn send(&self, http: &reqwest::Client, lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        HubSpot::send(self, http, lead, msg).await
    }
}

/// `leads forget` in HubSpot: the notes this app created (found by their marker) are deleted;
/// the contact, which this app only created or updated (it may hold a salesperson's work and
/// the customer's other history), is found by e-mail and erased only on request, with HubSpot's
/// own GDPR delete.
impl HubSpot {
    async fn request(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, DeliveryError> {
        let headers =
            [("Authorization", format!("Bearer {}", self.settings.token.expose_secret())), ("Accept", "application/json".to_string())];
        let url = format!("{}{path}", self.settings.base_url);
        let body = body.map_or(RequestBody::None, |b| RequestBody::Json(b.to_string()));
        send_request(http, method, &url, &headers, body).await.map_err(|e| prefixed("HubSpot", path, e))
    }

    /// Deletes the notes carrying the marker of the lead `notification_id`
    /// (`POST /crm/v3/objects/notes/search`, then `DELETE /crm/v3/objects/notes/<id>`). The
    /// count deleted. HubSpot's search index lags writes by seconds: a note created that
    /// recently may be missed (run forget again later).
    pub async fn erase_notes(&self, http: &reqwest::Client, notification_id: &str) -> Result<usize, DeliveryError> {
        let search = json!({
            "filterGroups": [{"filters": [{"propertyName": "hs_note_body", "operator": "CONTAINS_TOKEN", "value": marker(notification_id)}]}],
            "properties": ["hs_object_id"],
            "limit": 100,
        });
        let answer = self.request(http, reqwest::Method::POST, "/crm/v3/objects/notes/search", Some(search)).await?;
        if !answer.is_success() {
            return Err(error("note search", &answer));
        }
        let Some(found) = answer.json() else { return Err(DeliveryError::new("HubSpot: note search: an answer that could not be read")) };
        let mut removed = 0;
        for id in found["results"].as_array().into_iter().flatten().filter_map(|r| r["id"].as_str()) {
            if !id.chars().all(|c| c.is_ascii_digit()) {
                return Err(DeliveryError::new("HubSpot: note search answered an odd id"));
            }
            let answer = self.request(http, reqwest::Method::DELETE, &format!("/crm/v3/objects/notes/{id}"), None).await?;
            match answer.status {
                200..=299 => removed += 1,
                404 => {}
                _ => return Err(error("note delete", &answer)),
            }
        }
        Ok(removed)
    }

    /// The id of the contact with this e-mail (`GET /crm/v3/objects/contacts/<email>?idProperty=email`),
    /// `None` when there is none.
    pub async fn find_contact(&self, http: &reqwest::Client, email: &str) -> Result<Option<String>, DeliveryError> {
        let path = format!(
            "/crm/v3/objects/contacts/{}?idProperty=email",
            url::form_urlencoded::byte_serialize(email.as_bytes()).collect::<String>()
        );
        let answer = self.request(http, reqwest::Method::GET, &path, None).await?;
        match answer.status {
            404 => Ok(None),
            200..=299 => answer
                .json()
                .and_then(|j| j["id"].as_str().map(str::to_string))
                .map(Some)
                .ok_or_else(|| DeliveryError::new("HubSpot: contact read: an answer without an id")),
            _ => Err(error("contact read", &answer)),
        }
    }

    /// Erases a contact with HubSpot's GDPR delete (`POST /crm/v3/objects/contacts/gdpr-delete`,
    /// `{"objectId": <id>}`), by id: by e-mail, HubSpot would block-list an address it does not
    /// find.
    pub async fn gdpr_delete_contact(&self, http: &reqwest::Client, contact_id: &str) -> Result<(), DeliveryError> {
        let body = json!({"objectId": contact_id});
        let answer = self.request(http, reqwest::Method::POST, "/crm/v3/objects/contacts/gdpr-delete", Some(body)).await?;
        if answer.is_success() {
            Ok(())
        } else {
            Err(error("contact GDPR delete", &answer))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_one_alphanumeric_token() {
        assert_eq!(marker("lead_0123abcd"), "mpl0123abcd");
    }

    #[test]
    fn the_note_escapes_customer_text_and_carries_the_marker() {
        let lead = Lead::from_payload(
            br#"{"LeadSource":"SPZA-INS|a.b","UserDetails":{"Email":"a@b.example","Company":"<img src=x onerror=alert(1)>"}}"#,
        )
        .unwrap()
        .0;
        let msg = LeadMessage::new(&lead, "lead_00ff", "pk", "rk");
        let body = note_body(&msg);
        assert!(!body.contains("<img") && body.contains("&lt;img"));
        assert!(body.contains("mpl00ff"));
        let c = contact(&lead, "a@b.example");
        assert_eq!(c["company"], "<img src=x onerror=alert(1)>");
        assert!(c.get("lastname").is_none(), "no placeholder overwrites a real contact's name");
    }

    #[test]
    fn a_note_cut_to_hubspots_limit_keeps_its_marker() {
        // Escaping makes a quote six characters: a 32 KiB description of quotes is far over 64 Ki.
        let payload = json!({"LeadSource": "SPZA-INS|a.b", "UserDetails": {"Email": "a@b.example"}, "Description": "\"".repeat(30_000)});
        let lead = Lead::from_payload(payload.to_string().as_bytes()).unwrap().0;
        let body = note_body(&LeadMessage::new(&lead, "lead_00ff", "pk", "rk"));
        let units = body.encode_utf16().count();
        assert!(units <= MAX_PROPERTY && units > MAX_PROPERTY - 100, "cut to the limit: {units}");
        assert!(body.ends_with("<p>Marketplace lead ref: mpl00ff </p>"), "{}", &body[body.len() - 80..]);
    }
}
