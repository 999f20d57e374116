//! The inbox's changes (Leads.Manage, CSRF-checked): "send again" on one channel of one lead,
//! and forget the lead's customer (a confirmation page, then the removal).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::data::{self, SendAgainError};
use super::page::{lead_keys, pairs, refused, Admitted, Inbox, Refused, Shared};
use super::views::{self, *};
use crate::channel_id::ChannelId;
use crate::notify::deliver::LeadOutcome;

/// A change to one lead: the viewer admitted for changes (CSRF token, Leads.Manage) and the
/// keys of the lead the form names.
fn admit_change_on_lead(
    inbox: &Inbox,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(Admitted, (String, String)), Refused> {
    let a = inbox.admit_change(headers, form)?;
    let keys = lead_keys(inbox, &a, form)?;
    Ok((a, keys))
}

pub(super) async fn send_again(State(inbox): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let form = pairs(&body);
    let (a, (pk, rk)) = match admit_change_on_lead(&inbox, &headers, &form) {
        Ok(admitted) => admitted,
        Err(r) => return *r,
    };
    let back = Some(format!("/lead?{}", lead_query(&pk, &rk)));
    let Some(channel) = form.get("channel").and_then(|c| ChannelId::PER_LEAD.into_iter().find(|ch| ch.name() == c)) else {
        return inbox.message(&a, StatusCode::BAD_REQUEST, "Which channel?", vec!["The form names no known channel.".into()], back);
    };
    tracing::info!(partition_key = %pk, row_key = %rk, channel = channel.name(), "inbox: send again");
    let outcome = data::send_again(&inbox.app.store, &inbox.app.notifier, &pk, &rk, channel, &a.viewer.name, inbox.clock.now()).await;
    let (status, lines) = match outcome {
        Ok(LeadOutcome::Done(t)) if t.delivered > 0 => {
            (StatusCode::OK, vec![format!("{channel} delivered the lead again, with the same notification id.")])
        }
        Ok(LeadOutcome::Done(t)) if t.failed > 0 => {
            (StatusCode::OK, vec![format!("{channel} refused the lead; see its last error on the lead page.")])
        }
        Ok(LeadOutcome::Done(t)) if t.skipped > 0 => {
            (StatusCode::OK, vec![format!("{channel} skipped the lead: test leads are not sent (NOTIFY_TEST_LEADS=false).")])
        }
        Ok(_) => (StatusCode::OK, vec![format!("{channel} is pending again; LeadNotify retries it on its next run.")]),
        Err(SendAgainError::Storage(e)) => return inbox.storage_failed(&a, "send the lead again", &e),
        Err(e) => (StatusCode::CONFLICT, vec![e.to_string()]),
    };
    inbox.message(&a, status, "Send again", lines, back)
}

pub(super) async fn forget_confirm(State(inbox): Shared, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let a = match inbox.admit(&headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    if !a.viewer.can_manage {
        return refused(StatusCode::FORBIDDEN, "Not allowed", "Forgetting a customer needs the Leads.Manage role.");
    }
    let (pk, rk) = match lead_keys(&inbox, &a, &pairs(query.unwrap_or_default().as_bytes())) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    match data::plan_forget(&inbox.app.store, &pk, &rk).await {
        Ok(plan) => {
            let leads = plan
                .rows
                .iter()
                .map(|row| ForgetRow {
                    what: if row.delete { "delete" } else { "redact" }.to_string(),
                    created: views::time(row.created),
                    action: clip(&row.action, 30),
                    offer: clip(&row.offer, 60),
                    company: clip(&row.company, 60),
                })
                .collect();
            let t = ForgetTemplate {
                frame: inbox.frame(&a),
                pk: inert(&pk),
                rk: inert(&rk),
                customer: plan.customer.to_string(),
                leads,
                index_entries: plan.index_entries,
                state_rows: plan.state_rows,
                table: inbox.app.store.name().to_string(),
            };
            inbox.page(&a, StatusCode::OK, t)
        }
        Err(data::ForgetError::Storage(e)) => inbox.storage_failed(&a, "read what forget would remove", &e),
        Err(e) => inbox.message(&a, StatusCode::CONFLICT, "Nothing to forget", vec![e.to_string()], None),
    }
}

pub(super) async fn forget(State(inbox): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let form = pairs(&body);
    let (a, (pk, rk)) = match admit_change_on_lead(&inbox, &headers, &form) {
        Ok(admitted) => admitted,
        Err(r) => return *r,
    };
    // Planned again, not taken from the page: what goes is what is stored now.
    let plan = match data::plan_forget(&inbox.app.store, &pk, &rk).await {
        Ok(plan) => plan,
        Err(data::ForgetError::Storage(e)) => return inbox.storage_failed(&a, "read what forget would remove", &e),
        Err(e) => return inbox.message(&a, StatusCode::CONFLICT, "Nothing to forget", vec![e.to_string()], None),
    };
    tracing::info!(customer = %plan.customer, "inbox: forget");
    match data::execute_forget(&inbox.app.store, &plan).await {
        Ok(report) => {
            let mut lines = vec![format!(
                "Deleted {} lead row(s) and {} journey-index entr(y/ies); replaced the address in {} other customer(s)' row(s) and {} notifier state row(s).",
                report.deleted, report.index_removed, report.redacted, report.state_redacted
            )];
            lines.extend(report.left.iter().cloned());
            lines.push("Microsoft's own copy of these leads (Partner Center → Referrals) is not touched: remove it there.".into());
            inbox.message(&a, StatusCode::OK, "Customer forgotten", lines, None)
        }
        Err(e) => inbox.storage_failed(&a, "finish forgetting (run it again: every step is idempotent)", &e),
    }
}
