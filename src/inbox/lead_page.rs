//! `GET /api/Inbox/lead?pk=&rk=`: one lead as stored, with its journey and each channel's state.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::data;
use super::page::{lead_keys, pairs, Shared};
use super::views::{self, *};
use crate::lead::words::next_step;
use crate::lead::{action_label, source_label, Lead};
use crate::notify::lead_state::notification_id;

pub(super) async fn lead(State(inbox): Shared, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let a = match inbox.admit(&headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let (pk, rk) = match lead_keys(&inbox, &a, &pairs(query.unwrap_or_default().as_bytes())) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let row = match inbox.app.store.get(&pk, &rk).await {
        Ok(Some((row, _))) => row,
        Ok(None) => {
            return inbox.message(
                &a,
                StatusCode::NOT_FOUND,
                "No such lead",
                vec!["It may have been forgotten or removed by retention.".into()],
                None,
            )
        }
        Err(e) => return inbox.storage_failed(&a, "read the lead", &e),
    };
    let lead = Lead::from_entity(&row);
    let (journey, journey_note) = match data::journey_of(&inbox.app.store, &lead, &pk, &rk).await {
        Ok(steps) if steps.is_empty() && lead.customer_id().is_some() => {
            (Vec::new(), Some("Not in the journey index yet: LeadNotify adds each lead when it handles it.".to_string()))
        }
        Ok(steps) if steps.is_empty() => (Vec::new(), Some("This lead names no customer (no e-mail address, or a test lead).".to_string())),
        Ok(steps) => (steps.iter().map(views::JourneyRow::new).collect(), None),
        Err(e) => {
            tracing::warn!(partition_key = %pk, row_key = %rk, error = %e, "inbox: journey unavailable");
            (Vec::new(), Some("The customer's journey could not be read just now.".to_string()))
        }
    };
    let active = inbox.app.notifier.channels();
    let channels = data::channels_of(&row, &inbox.watched).iter().map(|c| ChannelRow::new(c, &active)).collect();
    let raw = ["RawPayload", "RawPayload2"].iter().map(|c| crate::entity::get_str(&row, c)).collect::<String>();
    let t = LeadTemplate {
        frame: inbox.frame(&a),
        title: clip(
            &lead.contact.company.clone().or_else(|| lead.contact.full_name()).unwrap_or_else(|| "Lead without a name".into()),
            120,
        ),
        is_test: lead.is_test(),
        unparsed: !lead.recognised,
        summary: summary(&lead),
        stored: stored_fields(&row),
        raw_payload: (!raw.is_empty()).then(|| inert_lines(&raw)),
        journey,
        journey_note,
        channels,
        notification_id: notification_id(&pk, &rk),
        has_email: lead.contact.email.is_some(),
        pk: inert(&pk),
        rk: inert(&rk),
    };
    inbox.page(&a, StatusCode::OK, t)
}

/// The lead's fields for people, in the order a notification shows them.
fn summary(lead: &Lead) -> Vec<Field> {
    let c = &lead.contact;
    let offer = match (lead.offer_title.as_deref(), lead.lead_source.offer.as_deref()) {
        (Some(t), Some(id)) if t != id => Some(format!("{t} ({id})")),
        (t, id) => t.or(id).map(str::to_string),
    };
    let action = lead.action_code.as_deref().map(|a| format!("{} ({a})", action_label(a)));
    [
        ("Received", Some(views::time(lead.created))),
        ("Name", c.full_name()),
        ("Company", c.company.clone()),
        ("Title", c.title.clone()),
        ("E-mail", c.email.clone()),
        ("Phone", c.phone.clone()),
        ("Country", c.country.clone()),
        ("Action", action),
        ("Next step", lead.action_code.as_deref().map(|a| next_step(a).to_string())),
        ("Offer", offer),
        ("Source", lead.lead_source.source.as_deref().map(|s| source_label(s).to_string())),
        ("Campaign", lead.campaign()),
        ("Description", lead.description.clone()),
        ("LeadSource as sent", Some(lead.lead_source.raw.clone()).filter(|s| !s.is_empty())),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| Field { name: name.into(), value: inert_lines(&v) }))
    .collect()
}
