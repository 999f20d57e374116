//! Microsoft Teams through a Workflows "post to a channel when a webhook request is received"
//! URL: a `message` whose attachment is an Adaptive Card (version 1.4; Office 365 connectors
//! are retired and payloads without `attachments` fail there).

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::message::{card_escape, LeadMessage};
use super::sender::Sender;
use super::transport::{post_json, SendOutcome};
use crate::lead::Lead;

pub fn card(msg: &LeadMessage) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true,
        "text": card_escape(&msg.subject),
    })];
    for b in msg.banners() {
        body.push(json!({ "type": "TextBlock", "wrap": true, "color": "Warning", "text": card_escape(b) }));
    }
    let facts: Vec<Value> = msg.facts.iter().map(|(k, v)| json!({ "title": k, "value": card_escape(v) })).collect();
    body.push(json!({ "type": "FactSet", "facts": facts }));
    if let Some(heading) = msg.history_heading() {
        body.push(json!({ "type": "TextBlock", "weight": "Bolder", "wrap": true, "spacing": "Medium", "text": card_escape(&heading) }));
        for line in msg.history_lines() {
            body.push(json!({ "type": "TextBlock", "wrap": true, "spacing": "None", "text": format!("\\- {}", card_escape(&line)) }));
        }
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            }
        }]
    })
}

/// The Teams channel: one message per lead to an incoming-webhook URL.
pub struct Teams {
    http: reqwest::Client,
    url: SecretString,
}

impl Teams {
    pub fn new(http: &reqwest::Client, url: &SecretString) -> Self {
        Teams { http: http.clone(), url: url.clone() }
    }
}

#[async_trait::async_trait]
impl Sender for Teams {
    async fn send(&self, _lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        post_json(&self.http, self.url.expose_secret(), &[], card(msg).to_string()).await
    }
}
