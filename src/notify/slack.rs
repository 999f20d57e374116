//! Slack incoming webhook: `text` (the notification fallback, escaped mrkdwn) and blocks whose
//! lead values are `plain_text`, so customer text is never read as markup.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::message::{slack_escape, LeadMessage};
use super::{post_json, SendOutcome};

pub fn payload(msg: &LeadMessage) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate(&msg.subject, 150), "emoji": false }
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
                    json!({ "type": "plain_text", "text": truncate(v, 1900), "emoji": false }),
                ]
            })
            .collect();
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    json!({ "text": slack_escape(&msg.subject), "blocks": blocks, "unfurl_links": false, "unfurl_media": false })
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max_chars - 1).collect();
    t.push('…');
    t
}

pub async fn send(http: &reqwest::Client, url: &SecretString, msg: &LeadMessage) -> SendOutcome {
    post_json(http, url.expose_secret(), &[], payload(msg).to_string()).await
}
