//! What a notification says about a lead, once, for every channel; and the escaping each
//! channel's markup needs. Lead text is typed by customers: every value passes through one of
//! the escapes below before it reaches a markup.

use crate::lead::{action_label, source_label, Lead};

/// The facts of a lead, as plain (unescaped) text. Channels escape when they render.
pub struct LeadMessage {
    /// Stable per lead (webhook-id, e-mail Message-ID): the receiver's idempotency key.
    pub id: String,
    pub subject: String,
    pub is_test: bool,
    pub do_not_contact: bool,
    /// (label, value) pairs, present values only, in reading order.
    pub facts: Vec<(&'static str, String)>,
    pub partition_key: String,
    pub row_key: String,
}

impl LeadMessage {
    pub fn new(lead: &Lead, id: &str, partition_key: &str, row_key: &str) -> Self {
        let c = &lead.contact;
        let who = c.company.clone().or_else(|| c.full_name()).unwrap_or_else(|| "(no contact details)".into());
        let offer = lead.offer().unwrap_or("unknown offer").to_string();
        let action = lead.action_code.as_deref().map(action_label).unwrap_or("lead");
        let mut subject = format!("New marketplace lead: {who} — {offer} ({action})");
        if lead.is_do_not_contact() {
            subject = format!("[Do not contact] {subject}");
        }
        if lead.is_test() {
            subject = format!("[Test lead] {subject}");
        }
        let mut facts: Vec<(&'static str, String)> = Vec::new();
        let mut add = |label: &'static str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
                facts.push((label, v));
            }
        };
        add("Name", c.full_name());
        add("Company", c.company.clone());
        add("Title", c.title.clone());
        add("E-mail", c.email.clone());
        add("Phone", c.phone.clone());
        add("Country", c.country.clone());
        add("Offer", Some(offer.clone()));
        add("Offer id", lead.lead_source.offer.clone().filter(|o| *o != offer));
        add("Action", lead.action_code.as_deref().map(|a| format!("{} ({a})", action_label(a))));
        add("Source", lead.lead_source.source.as_deref().map(|s| source_label(s).to_string()));
        add("Description", lead.description.clone());
        add("Received", lead.created.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()));
        LeadMessage {
            id: id.to_string(),
            subject: header_safe(&subject),
            is_test: lead.is_test(),
            do_not_contact: lead.is_do_not_contact(),
            facts,
            partition_key: partition_key.to_string(),
            row_key: row_key.to_string(),
        }
    }

    /// Warnings to show above the facts.
    pub fn banners(&self) -> Vec<&'static str> {
        let mut b = Vec::new();
        if self.is_test {
            b.push("Test lead: Microsoft sent this to validate your lead destination. No customer is waiting.");
        }
        if self.do_not_contact {
            b.push("Do not contact: a heads-up that the customer contacted a cross-listed partner.");
        }
        b
    }

    pub fn plain_text(&self) -> String {
        let mut out = String::new();
        for b in self.banners() {
            out.push_str(b);
            out.push_str("\n\n");
        }
        for (k, v) in &self.facts {
            out.push_str(&format!("{k}: {}\n", v.replace(['\r', '\n'], " ")));
        }
        out.push_str(&format!("\nTable row: PartitionKey {} / RowKey {}\n", self.partition_key, self.row_key));
        out
    }

    pub fn html(&self) -> String {
        let mut rows = String::new();
        for (k, v) in &self.facts {
            rows.push_str(&format!(
                "<tr><th style=\"text-align:left;padding:4px 12px 4px 0;color:#555;font-weight:600;vertical-align:top\">{}</th><td style=\"padding:4px 0\">{}</td></tr>\n",
                html_escape(k),
                html_escape(v)
            ));
        }
        let banners: String = self
            .banners()
            .iter()
            .map(|b| format!("<p style=\"background:#fff4ce;border-left:4px solid #f2c811;padding:8px 12px\">{}</p>\n", html_escape(b)))
            .collect();
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body style=\"font-family:Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;color:#201f1e;max-width:640px\">\n<h2 style=\"font-size:18px;color:#0f6cbd\">{title}</h2>\n{banners}<table style=\"border-collapse:collapse\">\n{rows}</table>\n<p style=\"color:#777;font-size:12px\">Table row: PartitionKey {pk} / RowKey {rk}</p>\n</body></html>\n",
            title = html_escape(&self.subject),
            pk = html_escape(&self.partition_key),
            rk = html_escape(&self.row_key),
        )
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for Slack mrkdwn: Slack's own rule is `&`, `<`, `>`.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Escapes text for Adaptive Card `TextBlock` markdown: backslash before every character the
/// card markdown gives meaning to, so a name cannot become a link, emphasis or a list.
pub fn card_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '\\' | '*' | '_' | '[' | ']' | '(' | ')' | '`' | '~' | '#' | '>' | '<' | '!' | '|' | '-' | '+') {
            out.push('\\');
        }
        out.push(if ch == '\r' || ch == '\n' { ' ' } else { ch });
    }
    out
}

/// Makes text safe for a mail header: no CR/LF (header injection) or other control characters.
pub fn header_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::Lead;

    fn hostile() -> Lead {
        let body = serde_json::json!({
            "UserDetails": {"FirstName": "<script>alert(1)</script>", "LastName": "[click](https://evil.example)",
                            "Company": "Evil\r\nBcc: victim@example.com", "Email": "a@b.example"},
            "LeadSource": "SPZA-PLT|x.y", "OfferTitle": "*bold* & <b>"
        });
        Lead::from_payload(body.to_string().as_bytes()).unwrap().0
    }

    #[test]
    fn subject_has_no_line_breaks() {
        let m = LeadMessage::new(&hostile(), "id", "pk", "rk");
        assert!(!m.subject.contains('\n') && !m.subject.contains('\r'), "{}", m.subject);
        assert!(m.subject.contains("(Contact me)"));
    }

    #[test]
    fn html_is_escaped() {
        let html = LeadMessage::new(&hostile(), "id", "pk", "rk").html();
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
        assert!(!html.contains("<b>"));
    }

    #[test]
    fn markdown_escapes() {
        assert_eq!(card_escape("[x](y)"), "\\[x\\]\\(y\\)");
        assert_eq!(slack_escape("<http://a|b> & c"), "&lt;http://a|b&gt; &amp; c");
        assert_eq!(header_safe("a\r\nb"), "a  b");
    }

    #[test]
    fn test_and_dnc_leads_say_so() {
        let t = Lead::from_payload(include_bytes!("../../tests/fixtures/https-lead-test.json")).unwrap().0;
        let m = LeadMessage::new(&t, "id", "pk", "rk");
        assert!(m.subject.starts_with("[Test lead]"));
        let dnc = Lead::from_payload(br#"{"LeadSource":"SPZA-DNC|a.b","UserDetails":{"Company":"C"}}"#).unwrap().0;
        assert!(LeadMessage::new(&dnc, "id", "pk", "rk").subject.contains("Do not contact"));
    }
}
