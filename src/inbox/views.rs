//! The pages as values: one askama template struct per page (templates in
//! `src/inbox/templates/`, HTML-escaped by askama), and the view models that turn stored leads
//! into display text. Every customer value passes [`inert`] (bidirectional and control characters
//! neutralised, as in notifications) before askama escapes it.

use askama::Template;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::chart::Chart;
use super::data::{ChannelView, JourneyStep, ListFilter, ListPage};
use crate::entity::Entity;
use crate::lead::{action_label, source_label};
use crate::notify::DeliveryState;
use crate::text::{is_bidi_control, one_line, truncate_chars};
use crate::tools::StoredLead;

/// Where the inbox lives, under the host (`/api/<Function>/…`) and `handler serve` alike.
pub const BASE: &str = "/api/Inbox";

/// Customer text made safe to show on one line: control characters become spaces, bidi
/// controls are dropped (askama then escapes the HTML).
pub fn inert(s: &str) -> String {
    one_line(s)
}

/// Customer text that may span lines (a raw payload, a description): newlines stay, other
/// control and bidi characters go.
pub fn inert_lines(s: &str) -> String {
    s.chars().filter(|c| !is_bidi_control(*c)).map(|c| if c != '\n' && crate::text::breaks_line(c) { ' ' } else { c }).collect()
}

/// Inert and cut to `max` characters (list cells).
pub fn clip(s: &str, max: usize) -> String {
    truncate_chars(&inert(s), max)
}

pub fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "-".into())
}

/// The query string that opens one lead: its table keys, never a customer's address.
pub fn lead_query(pk: &str, rk: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new()).append_pair("pk", pk).append_pair("rk", rk).finish()
}

/// What every page shows around its content.
pub struct Frame {
    pub viewer: String,
    pub can_manage: bool,
    /// The CSRF token the page's forms carry.
    pub csrf: String,
    pub base: &'static str,
    /// `handler serve` with a sign-in: the header offers a sign-out button.
    pub can_sign_out: bool,
    /// Signed in by App Service authentication: the header links to its sign-out.
    pub app_service: bool,
}

/// A delivery badge on a list row.
pub struct Badge {
    pub channel: &'static str,
    /// delivered / pending / failed / skipped / unknown: the text and the CSS class.
    pub state: &'static str,
}

pub fn badge_state(state: DeliveryState) -> &'static str {
    state.as_str()
}

pub struct RowView {
    pub link: String,
    pub received: String,
    pub company: String,
    pub name: String,
    pub action: String,
    pub offer: String,
    /// "2nd", "3rd"… for a returning customer.
    pub repeat: Option<String>,
    pub is_test: bool,
    pub badges: Vec<Badge>,
}

impl RowView {
    pub fn new(l: &StoredLead, nth: Option<usize>, channels: &[crate::channel_id::ChannelId]) -> Self {
        let lead = &l.lead;
        RowView {
            link: lead_query(&l.partition_key, &l.row_key),
            received: time(lead.created),
            company: clip(lead.contact.company.as_deref().unwrap_or("-"), 60),
            name: clip(&lead.contact.full_name().unwrap_or_else(|| "-".into()), 60),
            action: clip(lead.action_code.as_deref().map(action_label).unwrap_or("-"), 30),
            offer: clip(lead.offer().unwrap_or("-"), 60),
            repeat: nth.filter(|n| *n > 1).map(crate::notify::journey::ordinal),
            is_test: lead.is_test(),
            badges: super::data::channels_of(&l.entity, channels)
                .iter()
                .map(|c| Badge { channel: c.channel.name(), state: badge_state(c.record.state) })
                .collect(),
        }
    }
}

/// One `<option>` of a filter.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub fn choices(values: &[String], selected: Option<&str>, label: impl Fn(&str) -> String) -> Vec<Choice> {
    values.iter().map(|v| Choice { value: inert(v), label: clip(&label(v), 60), selected: selected == Some(v.as_str()) }).collect()
}

#[derive(Template)]
#[template(path = "list.html")]
pub struct ListTemplate {
    pub frame: Frame,
    pub rows: Vec<RowView>,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub from: String,
    pub to: String,
    pub text: String,
    pub include_tests: bool,
    pub offers: Vec<Choice>,
    pub actions: Vec<Choice>,
    pub sources: Vec<Choice>,
    /// The filter as a query string, for pagination and the export link.
    pub filter_query: String,
    pub prev_query: Option<String>,
    pub next_query: Option<String>,
}

/// The query string of a filter (and page).
pub fn filter_query(f: &ListFilter, page: Option<usize>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("from", &f.from.to_string()).append_pair("to", &f.to.to_string());
    for (name, value) in [("offer", &f.offer), ("action", &f.action), ("source", &f.source), ("q", &f.text)] {
        if let Some(v) = value {
            q.append_pair(name, v);
        }
    }
    if f.include_tests {
        q.append_pair("tests", "1");
    }
    if let Some(p) = page {
        q.append_pair("page", &p.to_string());
    }
    q.finish()
}

impl ListTemplate {
    pub fn new(frame: Frame, f: &ListFilter, page: ListPage, channels: &[crate::channel_id::ChannelId]) -> Self {
        let current = f.page.min(page.pages);
        ListTemplate {
            rows: page
                .rows
                .iter()
                .map(|l| RowView::new(l, page.nth.get(&(l.partition_key.clone(), l.row_key.clone())).copied(), channels))
                .collect(),
            total: page.total,
            page: current,
            pages: page.pages,
            from: f.from.to_string(),
            to: f.to.to_string(),
            text: f.text.as_deref().map(inert).unwrap_or_default(),
            include_tests: f.include_tests,
            offers: choices(&page.offers, f.offer.as_deref(), |v| v.to_string()),
            actions: choices(&page.actions, f.action.as_deref(), |v| action_label(v).to_string()),
            sources: choices(&page.sources, f.source.as_deref(), |v| source_label(v).to_string()),
            filter_query: filter_query(f, None),
            prev_query: (current > 1).then(|| filter_query(f, Some(current - 1))),
            next_query: (current < page.pages).then(|| filter_query(f, Some(current + 1))),
            frame,
        }
    }
}

/// A labelled value on the lead page.
pub struct Field {
    pub name: String,
    pub value: String,
}

pub struct ChannelRow {
    pub channel: &'static str,
    pub state: &'static str,
    pub raw_state: String,
    pub attempts: u32,
    pub last_error: String,
    pub next_attempt: String,
    pub delivered_at: String,
    pub resent: String,
    /// Whether "send again" is offered (the channel sends in this process).
    pub can_send: bool,
}

impl ChannelRow {
    pub fn new(c: &ChannelView, active: &[crate::channel_id::ChannelId]) -> Self {
        let pending = c.record.state == DeliveryState::Pending;
        ChannelRow {
            channel: c.channel.name(),
            state: badge_state(c.record.state),
            raw_state: c.record.raw_state.as_deref().map(|s| clip(s, 40)).unwrap_or_default(),
            attempts: c.record.attempts,
            last_error: c.record.last_error.as_deref().map(|e| clip(e, 2_000)).unwrap_or_default(),
            next_attempt: if pending { time(c.record.next_attempt) } else { "-".into() },
            delivered_at: time(c.delivered_at),
            resent: match (&c.resent_by, c.resent_at) {
                (Some(by), at) => format!("{} by {}", time(at), clip(by, 120)),
                _ => String::new(),
            },
            can_send: active.contains(&c.channel),
        }
    }
}

pub struct JourneyRow {
    pub link: String,
    pub created: String,
    pub action: String,
    pub offer: String,
    pub this_lead: bool,
}

impl JourneyRow {
    pub fn new(s: &JourneyStep) -> Self {
        JourneyRow {
            link: lead_query(&s.partition_key, &s.row_key),
            created: time(s.created),
            action: clip(s.action_code.as_deref().map(action_label).unwrap_or("-"), 30),
            offer: clip(s.offer.as_deref().unwrap_or("-"), 60),
            this_lead: s.this_lead,
        }
    }
}

#[derive(Template)]
#[template(path = "lead.html")]
pub struct LeadTemplate {
    pub frame: Frame,
    pub pk: String,
    pub rk: String,
    pub title: String,
    pub is_test: bool,
    pub unparsed: bool,
    pub summary: Vec<Field>,
    pub stored: Vec<Field>,
    pub raw_payload: Option<String>,
    pub journey: Vec<JourneyRow>,
    pub journey_note: Option<String>,
    pub channels: Vec<ChannelRow>,
    pub notification_id: String,
    pub has_email: bool,
}

/// Every stored column of a row for the "as stored" table: type annotations and the raw payload
/// (shown on its own) left out.
pub fn stored_fields(row: &Entity) -> Vec<Field> {
    let mut fields: Vec<Field> = row
        .iter()
        .filter(|(k, _)| !k.contains("@odata") && !k.starts_with("odata.") && !k.starts_with("RawPayload"))
        .map(|(k, v)| Field {
            name: inert(k),
            value: match v {
                Value::String(s) => inert_lines(s),
                other => other.to_string(),
            },
        })
        .collect();
    fields.sort_by(|a, b| a.name.cmp(&b.name));
    fields
}

#[derive(Template)]
#[template(path = "chart.html")]
pub struct ChartTemplate {
    pub frame: Frame,
    pub chart: Chart,
    pub offers: Vec<Choice>,
    pub offer: Option<String>,
    pub days: u64,
}

/// One lead row a forget removes, as the confirmation shows it: date, offer, action only.
pub struct ForgetRow {
    /// `delete` (the customer's own lead) or `redact` (another customer's row naming them).
    pub what: String,
    pub created: String,
    pub action: String,
    pub offer: String,
    pub company: String,
}

#[derive(Template)]
#[template(path = "forget.html")]
pub struct ForgetTemplate {
    pub frame: Frame,
    pub pk: String,
    pub rk: String,
    pub customer: String,
    pub leads: Vec<ForgetRow>,
    pub index_entries: usize,
    pub state_rows: usize,
    pub table: String,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessageTemplate {
    pub frame: Frame,
    pub title: String,
    pub lines: Vec<String>,
    pub back: Option<String>,
}

#[derive(Template)]
#[template(path = "refused.html")]
pub struct RefusedTemplate {
    pub title: String,
    pub reason: String,
    pub base: &'static str,
}

#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignInTemplate {
    pub csrf: String,
    pub wrong_key: bool,
    pub base: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_text_is_inert() {
        assert_eq!(inert("Acme\u{202E}gnp.exe\nx"), "Acmegnp.exe x");
        assert_eq!(inert_lines("a\nb\u{1b}[2J\u{2066}"), "a\nb [2J");
        assert_eq!(clip(&"x".repeat(100), 10).chars().count(), 10);
        assert_eq!(lead_query("9:2F1:2F2026", "a&b"), "pk=9%3A2F1%3A2F2026&rk=a%26b");
    }
}
