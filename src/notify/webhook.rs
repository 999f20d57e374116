//! Generic webhook, signed per Standard Webhooks v1: `webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::json;

use super::message::LeadMessage;
use super::sender::Sender;
use super::transport::{post_json, SendOutcome};
use crate::lead::Lead;
use crate::settings::WebhookSettings;

/// The contact fields, with the customer's stable id (a hash of the normalised e-mail address;
/// `null` for test leads and leads without an address).
fn customer(lead: &Lead, msg: &LeadMessage) -> serde_json::Value {
    let mut c = serde_json::to_value(&lead.contact).unwrap_or_else(|_| json!({}));
    if let Some(obj) = c.as_object_mut() {
        let id = msg.story.as_ref().map(|s| s.id.to_string()).or_else(|| lead.customer_id().map(|c| c.to_string()));
        obj.insert("id".into(), json!(id));
    }
    c
}

/// The `webhook-signature` value for one message.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    // HMAC accepts keys of any length; an error here is impossible.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// The event body: `{"type":"lead.created","timestamp":…,"data":{…}}`.
pub fn payload(lead: &Lead, msg: &LeadMessage) -> serde_json::Value {
    json!({
        "type": "lead.created",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {
            "id": msg.id,
            "partitionKey": msg.partition_key,
            "rowKey": msg.row_key,
            "customer": customer(lead, msg),
            "history": msg.story.as_ref().map(|s| s.history.clone()).unwrap_or_default(),
            "leadNumber": msg.story.as_ref().map(|s| s.nth_lead),
            "nextStep": lead.action_code.as_deref().map(crate::lead::words::next_step),
            "campaign": lead.campaign(),
            "leadSource": lead.lead_source.raw,
            "source": lead.lead_source.source,
            "actionCode": lead.action_code,
            "offerId": lead.lead_source.offer,
            "offerTitle": lead.offer_title,
            "description": lead.description,
            "createdTime": lead.created.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            "isTest": lead.is_test(),
            "doNotContact": lead.is_do_not_contact(),
        }
    })
}

/// The webhook channel: the lead as JSON, signed per Standard Webhooks.
pub struct Webhook {
    http: reqwest::Client,
    cfg: WebhookSettings,
}

impl Webhook {
    pub fn new(http: &reqwest::Client, cfg: &WebhookSettings) -> Self {
        Webhook { http: http.clone(), cfg: cfg.clone() }
    }
}

#[async_trait::async_trait]
impl Sender for Webhook {
    async fn send(&self, lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        let body = payload(lead, msg).to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(self.cfg.key.expose_secret(), &msg.id, timestamp, &body);
        let headers = [("webhook-id", msg.id.clone()), ("webhook-timestamp", timestamp.to_string()), ("webhook-signature", signature)];
        post_json(&self.http, self.cfg.url.expose_secret(), &headers, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_spec_example() {
        // The example from the Standard Webhooks specification.
        let key = crate::settings::WebhookKey::decode("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let key = key.expose_secret();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
