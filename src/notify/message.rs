//! What a notification says about a lead, once, for every channel; and the escaping each
//! channel's markup needs. Lead text is typed by customers: every value passes through one of
//! the escapes below before it reaches a markup.

use askama::Template;

use super::journey::{ordinal, CustomerStory};
use crate::lead::words::{country_name, next_step};
use crate::lead::{action_label, source_label, Lead};
use crate::text::{breaks_line, one_line, truncate_chars};

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
    /// The customer's journey, when the lead links to a customer.
    pub story: Option<CustomerStory>,
    /// `mailto:` / `tel:` targets, when the values are plainly an address and a number (and the
    /// lead is not a DNC heads-up, which must never invite contact).
    pub mailto: Option<String>,
    pub tel: Option<String>,
}

impl LeadMessage {
    pub fn new(lead: &Lead, id: &str, partition_key: &str, row_key: &str) -> Self {
        let c = &lead.contact;
        let who = c.company.clone().or_else(|| c.full_name()).unwrap_or_else(|| "(no contact details)".into());
        let offer = lead.offer().unwrap_or("unknown offer").to_string();
        let action = lead.action_code.as_deref().map(action_label).unwrap_or("lead");
        let mut subject = format!("New marketplace lead: {} — {} ({action})", truncate_chars(&who, 60), truncate_chars(&offer, 60));
        if lead.is_do_not_contact() {
            subject = format!("[Do not contact] {subject}");
        }
        if lead.is_test() {
            subject = format!("[Test lead] {subject}");
        }
        let mut facts: Vec<(&'static str, String)> = Vec::new();
        let mut add = |label: &'static str, v: Option<String>| {
            if let Some(v) = v.map(|v| one_line(&v)).filter(|v| !v.trim().is_empty()) {
                facts.push((label, v));
            }
        };
        add("Name", c.full_name());
        add("Company", c.company.clone());
        add("Title", c.title.clone());
        add("E-mail", c.email.clone());
        add("Phone", c.phone.clone());
        add(
            "Country",
            c.country.as_deref().map(|code| match country_name(code) {
                name if name.eq_ignore_ascii_case(code.trim()) => name,
                name => format!("{name} ({})", code.trim()),
            }),
        );
        add("Offer", Some(offer.clone()));
        add("Offer id", lead.lead_source.offer.clone().filter(|o| *o != offer));
        add("Action", lead.action_code.as_deref().map(|a| format!("{} ({a})", action_label(a))));
        add("Next step", lead.action_code.as_deref().map(|a| next_step(a).to_string()));
        add("Source", lead.lead_source.source.as_deref().map(|s| source_label(s).to_string()));
        add("Campaign", lead.campaign());
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
            story: None,
            mailto: c.email.as_deref().filter(|_| !lead.is_do_not_contact()).filter(|e| plain_address(e)).map(str::to_string),
            tel: c.phone.as_deref().filter(|_| !lead.is_do_not_contact()).and_then(dialable),
        }
    }

    /// Adds the customer's journey: a "Customer" fact and the earlier leads.
    pub fn with_story(mut self, story: CustomerStory) -> Self {
        let said = if story.nth_lead == 1 {
            "First lead from this customer".to_string()
        } else {
            format!("Returning customer, {} lead", ordinal(story.nth_lead))
        };
        let at = self.facts.iter().position(|(k, _)| *k == "Offer").unwrap_or(self.facts.len());
        self.facts.insert(at, ("Customer", said));
        self.story = Some(story);
        self
    }

    /// The earlier leads, one line each, newest first: `2026-11-20 · Get it now · Contoso Analytics`.
    pub fn history_lines(&self) -> Vec<String> {
        let Some(story) = &self.story else { return Vec::new() };
        story
            .history
            .iter()
            .map(|p| {
                let date = p.created_time.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "date unknown".into());
                let action = p.action_code.as_deref().map(action_label).unwrap_or("lead");
                let offer = p.offer_title.as_deref().or(p.offer_id.as_deref()).unwrap_or("unknown offer");
                one_line(&format!("{date} · {action} · {}", truncate_chars(offer, 80)))
            })
            .collect()
    }

    /// The heading of the history section, e.g. "Earlier leads (2 of 7)".
    pub fn history_heading(&self) -> Option<String> {
        let story = self.story.as_ref().filter(|s| !s.history.is_empty())?;
        let earlier = story.nth_lead - 1;
        Some(if earlier > story.history.len() {
            format!("Earlier leads from this customer ({} most recent of {earlier})", story.history.len())
        } else {
            "Earlier leads from this customer".to_string()
        })
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
            out.push_str(&format!("{k}: {}\n", one_line(v)));
        }
        if let Some(heading) = self.history_heading() {
            out.push_str(&format!("\n{heading}:\n"));
            for line in self.history_lines() {
                out.push_str(&format!("  - {line}\n"));
            }
        }
        out.push_str(&format!("\nTable row: PartitionKey {} / RowKey {}\n", self.partition_key, self.row_key));
        out
    }

    /// The e-mail's HTML part (`templates/lead_email.html`; askama escapes every value).
    pub fn html(&self) -> String {
        let facts = self
            .facts
            .iter()
            .map(|(name, value)| EmailFact {
                name,
                value,
                // Links only where the value is plainly an address or a number (checked when
                // the message was built).
                link: match (*name, &self.mailto, &self.tel) {
                    ("E-mail", Some(to), _) => Some(format!("mailto:{to}")),
                    ("Phone", _, Some(number)) => Some(format!("tel:{number}")),
                    _ => None,
                },
            })
            .collect();
        let email = LeadEmail {
            subject: &self.subject,
            banners: self.banners(),
            facts,
            history_heading: self.history_heading(),
            history: self.history_lines(),
            partition_key: &self.partition_key,
            row_key: &self.row_key,
        };
        // Rendering plain strings into a fixed template cannot fail; should it ever, the e-mail
        // still goes, as its plain-text part alone (the sender leaves an empty HTML part out).
        email.render().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the lead e-mail's HTML part could not be drawn");
            String::new()
        })
    }
}

/// One row of the e-mail's table of facts.
struct EmailFact<'a> {
    name: &'a str,
    value: &'a str,
    link: Option<String>,
}

#[derive(Template)]
#[template(path = "lead_email.html")]
struct LeadEmail<'a> {
    subject: &'a str,
    banners: Vec<&'static str>,
    facts: Vec<EmailFact<'a>>,
    history_heading: Option<String>,
    history: Vec<String>,
    partition_key: &'a str,
    row_key: &'a str,
}

/// An e-mail address made only of the characters addresses usually have: safe to put in a
/// `mailto:` link as it is.
fn plain_address(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._%+-".contains(c);
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && local.chars().all(ok)
                && domain.chars().all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
        }
        None => false,
    }
}

/// A `tel:` target: the digits of a phone number written with the usual separators, with its
/// leading `+`; `None` for anything else.
fn dialable(s: &str) -> Option<String> {
    let s = s.trim();
    if !s.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
        return None;
    }
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= 5).then(|| if s.starts_with('+') { format!("+{digits}") } else { digits })
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
        out.push(if breaks_line(ch) { ' ' } else { ch });
    }
    out
}

/// Makes text safe for a mail header: no CR/LF (header injection), Unicode line breaks or other
/// control characters.
pub fn header_safe(s: &str) -> String {
    one_line(s)
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
    fn unicode_line_breaks_cannot_fake_lines() {
        let body = serde_json::json!({
            "UserDetails": {"Company": "Acme\u{2028}E-mail: attacker@evil.example", "LastName": "A\u{2029}B\u{85}C\u{b}D\u{c}E"},
            "LeadSource": "SPZA-PLT|x.y"
        });
        let m = LeadMessage::new(&Lead::from_payload(body.to_string().as_bytes()).unwrap().0, "id", "pk", "rk");
        let text = m.plain_text();
        assert!(!text.lines().any(|l| l.starts_with("E-mail: attacker")), "{text}");
        for c in ['\u{2028}', '\u{2029}', '\u{85}', '\u{b}', '\u{c}'] {
            assert!(!text.contains(c) && !m.subject.contains(c) && !card_escape(&m.facts[0].1).contains(c));
        }
    }

    #[test]
    fn a_huge_company_keeps_the_subject_short() {
        let body = serde_json::json!({"UserDetails": {"Company": "x".repeat(3000)}, "LeadSource": "SPZA-PLT|x.y"});
        let m = LeadMessage::new(&Lead::from_payload(body.to_string().as_bytes()).unwrap().0, "id", "pk", "rk");
        assert!(m.subject.chars().count() < 200, "{}", m.subject.len());
        assert!(m.plain_text().contains(&"x".repeat(3000)), "the full text is in the body");
    }

    #[test]
    fn links_only_for_plain_values_and_never_for_dnc() {
        let body = |email: &str, phone: &str, action: &str| {
            serde_json::json!({"UserDetails": {"Email": email, "Phone": phone}, "LeadSource": format!("SPZA-{action}|x.y")}).to_string()
        };
        let m = LeadMessage::new(
            &Lead::from_payload(body("jana@contoso.example", "+420 601 234 567", "PLT").as_bytes()).unwrap().0,
            "id",
            "pk",
            "rk",
        );
        let html = m.html();
        assert!(html.contains("href=\"mailto:jana@contoso.example\"") && html.contains("href=\"tel:+420601234567\""), "{html}");
        let evil = LeadMessage::new(
            &Lead::from_payload(body("a@b.example\"><script>", "javascript:alert(1)", "PLT").as_bytes()).unwrap().0,
            "id",
            "pk",
            "rk",
        );
        assert!(evil.mailto.is_none() && evil.tel.is_none() && !evil.html().contains("<script>"));
        let dnc =
            LeadMessage::new(&Lead::from_payload(body("jana@contoso.example", "+420 601", "DNC").as_bytes()).unwrap().0, "id", "pk", "rk");
        assert!(!dnc.html().contains("mailto:") && !dnc.html().contains("tel:"));
        assert!(dnc.plain_text().contains("No action"));
    }

    #[test]
    fn the_story_is_told_newest_first_and_escaped() {
        use crate::lead::CustomerId;
        use crate::notify::journey::PastLead;
        let at = |d: &str| Some(chrono::DateTime::parse_from_rfc3339(d).unwrap().with_timezone(&chrono::Utc));
        let story = CustomerStory {
            id: CustomerId::for_email("a@b.example").unwrap(),
            nth_lead: 3,
            history: vec![
                PastLead {
                    id: "lead_2".into(),
                    created_time: at("2026-11-20T10:00:00Z"),
                    action_code: Some("INS".into()),
                    offer_id: None,
                    offer_title: Some("<b>Evil</b>\u{2028}Offer".into()),
                },
                PastLead {
                    id: "lead_1".into(),
                    created_time: at("2026-11-01T10:00:00Z"),
                    action_code: Some("PLT".into()),
                    offer_id: Some("c.o".into()),
                    offer_title: None,
                },
            ],
        };
        let m = LeadMessage::new(&hostile(), "id", "pk", "rk").with_story(story);
        assert!(m.facts.iter().any(|(k, v)| *k == "Customer" && v == "Returning customer, 3rd lead"));
        let text = m.plain_text();
        let first = text.find("2026-11-20 · Get it now").unwrap();
        assert!(first < text.find("2026-11-01 · Contact me · c.o").unwrap(), "{text}");
        assert!(!text.contains('\u{2028}'));
        let html = m.html();
        assert!(html.contains("&#60;b&#62;Evil&#60;/b&#62;") && !html.contains("<b>Evil"), "{html}");
    }

    #[test]
    fn html_is_escaped() {
        let html = LeadMessage::new(&hostile(), "id", "pk", "rk").html();
        assert!(!html.contains("<script>") && html.contains("&#60;script&#62;"), "{html}");
        assert!(!html.contains("<b>"));
        assert!(html
            .contains("<th style=\"text-align:left;padding:4px 12px 4px 0;color:#555;font-weight:600;vertical-align:top\">Company</th>"));
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
