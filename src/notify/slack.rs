//! Slack incoming webhook: `text` (the notification fallback, escaped mrkdwn) and blocks whose
//! lead values are `plain_text`, so customer text is never read as markup.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::message::{slack_escape, LeadMessage};
use super::sender::Sender;
use super::transport::{post_json, SendOutcome};
use crate::lead::Lead;
use crate::text::truncate_chars;

pub fn payload(msg: &LeadMessage) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate_chars(&msg.subject, 150), "emoji": false }
    })];
    for b in msg.banners() {
        blocks.push(json!({ "type": "context", "elements": [{ "type": "plain_text", "text": b, "emoji": false }] }));
    }
    // A section holds at most 10 fields: one section per five facts (label + value each).
    for chunk in msg.facts.chunks(5) {
        let fields: Vec<Value> = chunk
            .iter()
            .flat_map(|(k, v)| {
                [
                    json!({ "type": "mrkdwn", "text": format!("*{k}*") }),
                    json!({ "type": "plain_text", "text": truncate_chars(v, 1900), "emoji": false }),
                ]
            })
            .collect();
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    if let Some(heading) = msg.history_heading() {
        let text = std::iter::once(heading).chain(msg.history_lines().into_iter().map(|l| format!("• {l}"))).collect::<Vec<_>>().join("\n");
        blocks.push(json!({ "type": "section", "text": { "type": "plain_text", "text": truncate_chars(&text, 2900), "emoji": false } }));
    }
    json!({ "text": slack_escape(&msg.subject), "blocks": blocks, "unfurl_links": false, "unfurl_media": false })
}

/// The Slack channel: one message per lead to an incoming-webhook URL.
pub struct Slack {
    http: reqwest::Client,
    url: SecretString,
}

impl Slack {
    pub fn new(http: &reqwest::Client, url: &SecretString) -> Self {
        Slack { http: http.clone(), url: url.clone() }
    }
}

#[async_trait::async_trait]
impl Sender for Slack {
    async fn send(&self, _lead: &Lead, msg: &LeadMessage) -> SendOutcome {
        post_json(&self.http, self.url.expose_secret(), &[], payload(msg).to_string()).await
    }
}
