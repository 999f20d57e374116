//! The notifier's logic in process: the real intake and the real run over the in-memory table,
//! a hand-moved clock and channels that answer as each test says. The Azurite, SMTP, HTTP and
//! CRM suites under `tests/` check the real parts; these check the decisions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use super::lead_state::{column, ChannelRecord, Column, DeliveryState};
use super::message::LeadMessage;
use super::notify_table::{DigestRow, NotifyTable, SweepCursor};
use super::registry::Registry;
use super::sender::Sender;
use super::transport::{DeliveryError, SendOutcome};
use super::Notifier;
use crate::channel_id::ChannelId;
use crate::clock::Clock;
use crate::entity::{put_datetime, Entity};
use crate::ingest::ingest_at;
use crate::lead::CustomerId;
use crate::settings::Settings;
use crate::store::{MemoryTable, Query, SharedTable, Table};

/// A channel that records what it was asked to send and answers from a script (then
/// `Delivered`).
#[derive(Clone, Default)]
struct Scripted {
    sent: Arc<Mutex<Vec<String>>>,
    answers: Arc<Mutex<Vec<SendOutcome>>>,
}

impl Scripted {
    fn answering(answers: Vec<SendOutcome>) -> Self {
        Scripted { answers: Arc::new(Mutex::new(answers)), ..Scripted::default() }
    }

    fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Sender for Scripted {
    async fn send(&self, _lead: &crate::lead::Lead, msg: &LeadMessage) -> SendOutcome {
        self.sent.lock().unwrap().push(msg.id.clone());
        let mut answers = self.answers.lock().unwrap();
        if answers.is_empty() {
            SendOutcome::Delivered
        } else {
            answers.remove(0)
        }
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn settings(extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("AzureWebJobsStorage".into(), "UseDevelopmentStorage=true".into());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    Settings::from_map(&env).unwrap()
}

struct World {
    clock: Clock,
    leads: MemoryTable,
}

impl World {
    fn new(now: &str) -> Self {
        let clock = Clock::manual(at(now));
        World { leads: MemoryTable::new("Leads", clock.clone()), clock }
    }

    fn shared(&self) -> SharedTable {
        Arc::new(self.leads.clone())
    }

    fn notifier(&self, extra: &[(&str, &str)], channels: Registry) -> Notifier {
        Notifier::with_parts(&settings(extra), self.shared(), channels, self.clock.clone())
    }

    /// A lead through the real intake, written now.
    async fn lead(&self, email: &str, company: &str) -> (String, String) {
        let body = serde_json::json!({
            "UserDetails": {"FirstName": "Jana", "LastName": "Novák", "Email": email, "Company": company, "Country": "CZ"},
            "LeadSource": "SPZA-PLT|contoso.analytics",
            "ActionCode": "PLT",
            "OfferTitle": "Contoso Analytics",
        });
        let stored = ingest_at(&self.shared(), body.to_string().as_bytes(), Some("application/json"), self.clock.now()).await.unwrap();
        (stored.partition_key, stored.row_key)
    }

    /// A row as Microsoft might write it, with keys of its own.
    async fn odd_row(&self, pk: &str, rk: &str, created: &str) {
        let mut e = Entity::new();
        e.insert("PartitionKey".into(), pk.into());
        e.insert("RowKey".into(), rk.into());
        e.insert("LeadSource".into(), "AzureMarketplace-GetItNow|contoso.analytics".into());
        e.insert("CustomerInfo".into(), r#"{"FirstName":"Bob","Email":"bob@fabrikam.example","Company":"Fabrikam"}"#.into());
        put_datetime(&mut e, "CreatedTime", at(created));
        self.leads.insert(&e).await.unwrap();
    }

    async fn row(&self, key: &(String, String)) -> Option<Entity> {
        self.leads.get(&key.0, &key.1).await.unwrap().map(|(e, _)| e)
    }

    async fn state(&self, key: &(String, String), ch: ChannelId) -> DeliveryState {
        ChannelRecord::read(&self.row(key).await.unwrap(), ch).state
    }
}

/// A digest period's row as the digest writes it, in the given state.
async fn put_digest_row(state: &NotifyTable, start: DateTime<Utc>, end: DateTime<Utc>, word: &str) {
    let period = DigestRow::unclaimed(start, end, 0, false);
    let mut row = period.new_entity(Entity::new(), "<id>");
    row.insert("State".into(), word.into());
    state.table().insert(&row).await.unwrap();
}

fn webhook(sender: &Scripted) -> Registry {
    Registry::new(std::time::Duration::from_secs(5)).with(ChannelId::Webhook, sender.clone())
}

#[tokio::test]
async fn a_new_lead_is_delivered_once_by_key_however_many_runs_look() {
    let world = World::new("2026-12-06T10:00:00Z");
    let sender = Scripted::default();
    let a = world.notifier(&[], webhook(&sender));
    let b = world.notifier(&[], webhook(&sender));
    let key = world.lead("jana@contoso.example", "Contoso").await;
    let before = world.leads.transactions();
    let report = a.deliver_new(vec![key.clone()]).await;
    assert_eq!((report.delivered, report.partitions_read, report.sweep_rows_read), (1, 0, 0), "by key, no scan");
    assert!(world.leads.transactions() - before <= 8, "a handful of calls, not a scan");
    b.run_once().await;
    a.run_once().await;
    assert_eq!(sender.sent().len(), 1, "delivered once");
    assert_eq!(world.state(&key, ChannelId::Webhook).await, DeliveryState::Delivered);
}

#[tokio::test]
async fn a_live_lease_keeps_other_runs_off_until_it_expires() {
    let world = World::new("2026-12-06T10:00:00Z");
    let sender = Scripted::default();
    let notifier = world.notifier(&[], webhook(&sender));
    let key = world.lead("jana@contoso.example", "Contoso").await;
    // A run that claimed the lead and died before recording.
    let mut lease = Entity::new();
    put_datetime(&mut lease, "NotifyLeaseUntil", world.clock.now() + Duration::minutes(4));
    world.leads.merge(&key.0, &key.1, &lease, "*").await.unwrap();
    let report = notifier.run_once().await;
    assert_eq!((report.delivered, sender.sent().len()), (0, 0), "the lease holds");
    world.clock.advance(Duration::minutes(5));
    notifier.run_once().await;
    assert_eq!(sender.sent().len(), 1, "sent once the lease expired");
}

#[tokio::test]
async fn failures_retry_on_schedule_then_give_up() {
    let world = World::new("2026-12-06T10:00:00Z");
    let retry = || SendOutcome::Retry { error: DeliveryError::new("503"), after: None };
    let sender = Scripted::answering(vec![retry(), retry(), retry()]);
    let notifier = world.notifier(&[("NOTIFY_MAX_ATTEMPTS", "3")], webhook(&sender));
    let key = world.lead("jana@contoso.example", "Contoso").await;
    notifier.run_once().await;
    assert_eq!(world.state(&key, ChannelId::Webhook).await, DeliveryState::Pending);
    notifier.run_once().await;
    assert_eq!(sender.sent().len(), 1, "not before the retry time");
    world.clock.advance(Duration::seconds(40));
    notifier.run_once().await;
    assert_eq!(sender.sent().len(), 2);
    world.clock.advance(Duration::minutes(2));
    notifier.run_once().await;
    assert_eq!(sender.sent().len(), 3);
    let row = world.row(&key).await.unwrap();
    assert_eq!(ChannelRecord::read(&row, ChannelId::Webhook).state, DeliveryState::Failed, "the last attempt allowed");
    assert_eq!(row[&column(ChannelId::Webhook, Column::LastError)], "503");
}

#[tokio::test]
async fn the_sweep_finds_odd_keys_in_slices_without_holding_up_a_new_lead() {
    let world = World::new("2026-12-06T10:00:00Z");
    let sender = Scripted::default();
    let notifier = world.notifier(&[], webhook(&sender));
    world.odd_row("northwind", "1", "2026-12-06T09:59:00Z").await;
    let report = notifier.run_once().await;
    assert!(report.swept);
    assert_eq!(sender.sent().len(), 1, "the odd key is notified");

    // A big backfill: the sweep reads it over several runs, resuming where it stopped.
    world.clock.advance(Duration::minutes(20));
    for i in 0..(super::run::SWEEP_SLICE_ROWS * 2 + 10) {
        let mut e = Entity::new();
        e.insert("PartitionKey".into(), "backfill".into());
        e.insert("RowKey".into(), format!("{i:06}").into());
        e.insert("NotifyWebhookState".into(), "delivered".into());
        world.leads.insert(&e).await.unwrap();
    }
    world.odd_row("zzz-late", "1", "2026-12-06T10:20:00Z").await;
    let first = notifier.run_once().await;
    assert_eq!(first.sweep_rows_read as usize, super::run::SWEEP_SLICE_ROWS, "one slice per run");
    // A new lead meanwhile goes at once, by key.
    let key = world.lead("new@contoso.example", "Contoso").await;
    assert_eq!(notifier.deliver_new(vec![key]).await.delivered, 1);
    let mut runs = 1;
    while sender.sent().len() < 3 {
        notifier.run_once().await;
        runs += 1;
        assert!(runs < 6, "the pass completes");
    }
    assert_eq!(runs, 3, "three slices");
}

#[tokio::test]
async fn retention_deletes_what_nothing_will_send_and_never_a_row_written_recently() {
    let world = World::new("2026-12-06T10:00:00Z");
    let sender = Scripted::default();
    let delivered_before_slack = world.lead("a@contoso.example", "Contoso").await;
    world.notifier(&[], webhook(&sender)).run_once().await;
    // Rows from before the deployment: never seen by the notifier.
    world.odd_row("old", "1", "2025-01-01T00:00:00Z").await;
    world.leads.set_written("old", "1", at("2025-01-01T00:00:00Z"));
    // A row written now that claims to be from 2001.
    world.odd_row("liar", "1", "2001-01-01T00:00:00Z").await;

    world.clock.advance(Duration::days(400));
    // The timer has run all along: its cursors are recent.
    let now = world.clock.now();
    let state = NotifyTable::beside(&world.shared());
    state.set_date_cursor(now.date_naive() - Duration::days(1)).await.unwrap();
    let recent = SweepCursor { from: Some(now - Duration::minutes(5)), last_pass: Some(now), ..SweepCursor::default() };
    state.set_sweep_cursor(&recent).await.unwrap();
    world.odd_row("liar2", "1", "2001-01-01T00:00:00Z").await;
    let both = Registry::new(std::time::Duration::from_secs(5))
        .with(ChannelId::Webhook, sender.clone())
        .with(ChannelId::Slack, Scripted::default());
    let notifier = world.notifier(&[("LEADS_RETENTION_DAYS", "365")], both);
    let report = notifier.run_once().await;
    assert!(world.row(&delivered_before_slack).await.is_none(), "pending on Slack only in name: deleted");
    assert!(world.row(&("old".into(), "1".into())).await.is_none(), "older than the deployment: deleted");
    assert!(world.row(&("liar".into(), "1".into())).await.is_none(), "written 400 days ago: deleted");
    assert!(world.row(&("liar2".into(), "1".into())).await.is_some(), "written today, whatever CreatedTime says");
    assert_eq!(report.retention_deleted, 3);
}

#[tokio::test]
async fn retention_keeps_a_lead_whose_send_is_still_due() {
    let world = World::new("2026-12-06T10:00:00Z");
    let key = world.lead("a@contoso.example", "Contoso").await;
    world.clock.advance(Duration::days(2));
    world.leads.set_written(&key.0, &key.1, world.clock.now() - Duration::days(2));
    // The webhook's setting is broken: its leads stay pending until it is fixed.
    let broken = Registry::new(std::time::Duration::from_secs(5)).with_misconfigured(ChannelId::Webhook);
    let report = world.notifier(&[("LEADS_RETENTION_DAYS", "1")], broken).run_once().await;
    assert_eq!(report.retention_kept_pending, 1);
    assert!(world.row(&key).await.is_some());
    let state = NotifyTable::beside(&world.shared());
    assert_eq!(state.leads_changed_version().await.unwrap(), None, "nothing removed, nothing said");
    // Past the give-up limit nothing will send it: it goes, and the inbox is told.
    world.clock.advance(Duration::days(40));
    let broken = Registry::new(std::time::Duration::from_secs(5)).with_misconfigured(ChannelId::Webhook);
    let report = world.notifier(&[("LEADS_RETENTION_DAYS", "1")], broken).run_once().await;
    assert_eq!(report.retention_deleted, 1);
    assert!(state.leads_changed_version().await.unwrap().is_some(), "the marker moved");
}

#[tokio::test]
async fn retention_waits_for_a_configured_digest_that_has_listed_nothing() {
    let world = World::new("2026-12-06T10:00:00Z");
    let key = world.lead("a@contoso.example", "Contoso").await;
    world.clock.advance(Duration::days(3));
    world.leads.set_written(&key.0, &key.1, world.clock.now() - Duration::days(3));
    // The digest is configured but its relay setting is broken: it cannot send.
    let extra = [("LEADS_RETENTION_DAYS", "1"), ("NOTIFY_DIGEST_TO", "team@contoso.example"), ("SMTP_PORT", "abc")];
    let notifier = world.notifier(&extra, Registry::new(std::time::Duration::from_secs(5)));
    let report = notifier.run_once().await;
    assert!(report.retention_waiting, "says so");
    assert!(world.row(&key).await.is_some(), "kept until a digest lists it");

    // A digest sent for an earlier period lists nothing that arrived after it: still kept.
    let state = NotifyTable::beside(&world.shared());
    let now = world.clock.now();
    put_digest_row(&state, now - Duration::days(12), now - Duration::days(5), "delivered").await;
    let report = notifier.run_once().await;
    assert!(!report.retention_waiting);
    assert_eq!(report.retention_kept_for_digest, 1, "arrived after the last digest sent: not listed yet");
    assert!(world.row(&key).await.is_some());

    // Once a digest covering it has been sent, it goes.
    put_digest_row(&state, now - Duration::days(5), now - Duration::hours(1), "delivered").await;
    world.clock.advance(Duration::days(1));
    let report = notifier.run_once().await;
    assert!(!report.retention_waiting);
    assert!(world.row(&key).await.is_none());
}

#[tokio::test]
async fn digest_listing_stops_at_the_oldest_pending_period() {
    let world = World::new("2026-12-06T10:00:00Z");
    let state = NotifyTable::beside(&world.shared());
    let now = world.clock.now();
    for (start, end, word) in [(-72, -48, "delivered"), (-48, -24, "pending"), (-24, -1, "delivered")] {
        put_digest_row(&state, now + Duration::hours(start), now + Duration::hours(end), word).await;
    }
    let listed = state.digest_listed_until(now - Duration::days(30), now).await.unwrap();
    assert_eq!(listed, Some(now - Duration::hours(48)), "the pending period's leads are not listed yet");
    assert_eq!(state.last_digest_end(now - Duration::days(30), now).await.unwrap(), Some(now - Duration::hours(1)));
}

#[tokio::test]
async fn journey_indexes_each_lead_before_any_is_sent() {
    let world = World::new("2026-12-06T10:00:00Z");
    let sender = Scripted::default();
    let notifier = world.notifier(&[], webhook(&sender));
    world.lead("jana@contoso.example", "Contoso").await;
    world.clock.advance(Duration::minutes(1));
    world.lead("jana@contoso.example", "Contoso Two").await;
    notifier.run_once().await;
    let customer = CustomerId::for_email("jana@contoso.example").unwrap();
    let index = world.leads.with_table("LeadsCustomers").query(&Query::partition(customer.as_str()), usize::MAX).await.unwrap();
    assert_eq!(index.len(), 2);
    assert_eq!(sender.sent().len(), 2);
}

#[tokio::test]
async fn the_digest_finds_every_lead_of_its_period_whatever_its_keys() {
    let world = World::new("2026-12-06T10:00:00Z");
    let start = world.clock.now();
    world.clock.advance(Duration::minutes(10));
    let dated = world.lead("a@contoso.example", "Contoso").await;
    world.odd_row("northwind", "1", "2026-12-06T10:11:00Z").await;
    world.odd_row("20261206", "1", "2026-12-06T10:12:00Z").await;
    // Outside the period: before its start, and after its end.
    world.odd_row("early", "1", "2026-12-06T09:59:00Z").await;
    world.clock.advance(Duration::minutes(10));
    let end = world.clock.now();
    world.clock.advance(Duration::minutes(1));
    world.odd_row("late", "1", "2026-12-06T10:21:00Z").await;
    let found = super::discovery::Discovery::new(&world.shared()).arrived_between(start, end).await.unwrap();
    let mut keys: Vec<(String, String)> = found.iter().map(super::discovery::key_of).collect();
    keys.sort();
    let mut want = vec![dated, ("northwind".into(), "1".into()), ("20261206".into(), "1".into())];
    want.sort();
    assert_eq!(keys, want, "each once, odd keys included, nothing outside the period");
}
