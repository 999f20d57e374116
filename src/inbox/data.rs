//! What the inbox reads and changes, and nothing about HTML: the filtered list, one lead with
//! its journey and channels, the chart's counts, "send again", and forget. Every read is bounded:
//! the list and the chart read one date partition per day of their range (at most
//! [`MAX_RANGE_DAYS`]) through the [`DayReader`], which holds closed days for a while, so a
//! page costs at most one table transaction per day shown, whatever the table holds.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Days, NaiveDate, Utc};

use crate::channel_id::ChannelId;
use crate::chart::{self, Counts};
use crate::clock::Clock;
use crate::entity::{get_datetime, get_str, Entity};
use crate::lead::{date_of_partition_key, Lead};
use crate::notify::deliver::LeadOutcome;
use crate::notify::journey::Journey;
use crate::notify::lead_state::{self, column, notification_id, ChannelRecord, Column, LEASE_COLUMN};
use crate::notify::notify_table::NotifyTable;
use crate::notify::Notifier;
use crate::store::{SharedTable, StoreError};
use crate::tools::forget::{self, ForgetPlan, Report};
use crate::tools::list::nth_lead_of_customer;
use crate::tools::{newest_first, LeadFilter, StoredLead};

use super::days::{DayReader, DayRows};

/// Rows per list page: a page is read whole from its range, so this bounds the HTML, not reads.
pub const PAGE_SIZE: usize = 50;
/// The longest date range a list, export or chart reads (one partition read per day).
pub const MAX_RANGE_DAYS: u64 = 366;
/// The list's range when none is asked for.
pub const DEFAULT_RANGE_DAYS: u64 = 30;
/// The chart's period.
pub const CHART_DAYS: u64 = 90;
/// A text search longer than this is cut: nobody types more, and it bounds the work per row.
const MAX_SEARCH_CHARS: usize = 100;

/// The list's filters, as parsed from the query string (see `routes::ListQuery`).
#[derive(Debug, Clone, PartialEq)]
pub struct ListFilter {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub offer: Option<String>,
    pub action: Option<String>,
    pub source: Option<String>,
    pub include_tests: bool,
    /// Matched against company and name, without regard to case.
    pub text: Option<String>,
    /// 1-based.
    pub page: usize,
}

impl ListFilter {
    /// The filter with the range made sane: `to` not before `from`, at most [`MAX_RANGE_DAYS`].
    pub fn bounded(mut self) -> Self {
        if self.to < self.from {
            std::mem::swap(&mut self.to, &mut self.from);
        }
        if let Some(earliest) = self.to.checked_sub_days(Days::new(MAX_RANGE_DAYS - 1)) {
            self.from = self.from.max(earliest);
        }
        self.text = self.text.map(|t| t.chars().take(MAX_SEARCH_CHARS).collect::<String>().trim().to_string()).filter(|t| !t.is_empty());
        self.page = self.page.max(1);
        self
    }

    pub fn default_for(today: NaiveDate) -> Self {
        ListFilter {
            from: today.checked_sub_days(Days::new(DEFAULT_RANGE_DAYS - 1)).unwrap_or(today),
            to: today,
            offer: None,
            action: None,
            source: None,
            include_tests: false,
            text: None,
            page: 1,
        }
    }
}

/// What the list, the export and the chart read of a row: the lead's own columns (LeadIngest's
/// and Microsoft's) and each channel's state, not the raw payload (the bulk of a LeadIngest row),
/// which only the lead page shows.
fn list_columns() -> Vec<String> {
    let lead = [
        "PartitionKey",
        "RowKey",
        "Timestamp",
        "CreatedTime",
        "FirstName",
        "LastName",
        "Email",
        "Phone",
        "Country",
        "Company",
        "Title",
        "CustomerInfo",
        "LeadSource",
        "ActionCode",
        "OfferDisplayName",
        "Description",
        "Parsed",
    ];
    let states = ChannelId::PER_LEAD.into_iter().map(|ch| column(ch, Column::State));
    lead.into_iter().map(str::to_string).chain(states).collect()
}

/// A reader of the date partitions over `leads`, holding closed days (see [`super::days`]).
pub fn day_reader(leads: &SharedTable, clock: Clock) -> DayReader {
    DayReader::new(leads, list_columns(), clock)
}

/// Every lead row whose date partition lies in `from..=to`, one partition per day.
async fn leads_between(days: &DayReader, from: NaiveDate, to: NaiveDate) -> Result<Vec<DayRows>, StoreError> {
    days.between(from, to, MAX_RANGE_DAYS as usize).await
}

fn each(days: &[DayRows]) -> impl Iterator<Item = &StoredLead> {
    days.iter().flat_map(|day| day.iter())
}

/// The leads the filter keeps, newest first (the `leads list` filter, plus source and text).
pub fn apply<'a>(all: impl Iterator<Item = &'a StoredLead>, filter: &ListFilter) -> Vec<&'a StoredLead> {
    let by_tools =
        LeadFilter { offer: filter.offer.clone(), action: filter.action.clone(), since: None, include_tests: filter.include_tests };
    let wanted_source = filter.source.as_deref().map(str::to_lowercase);
    let wanted_text = filter.text.as_deref().map(str::to_lowercase);
    let mut kept: Vec<&StoredLead> = all
        .filter(|l| by_tools.keeps(l))
        .filter(|l| wanted_source.as_deref().is_none_or(|s| l.lead.lead_source.source.as_deref().is_some_and(|v| v.to_lowercase() == s)))
        .filter(|l| {
            wanted_text.as_deref().is_none_or(|t| {
                let c = &l.lead.contact;
                [c.company.clone(), c.full_name()].into_iter().flatten().any(|v| v.to_lowercase().contains(t))
            })
        })
        .collect();
    kept.sort_by(|a, b| newest_first(a, b));
    kept
}

/// One page of the list and what the page needs around it.
pub struct ListPage {
    pub rows: Vec<StoredLead>,
    /// Leads matching the filter in all pages.
    pub total: usize,
    pub pages: usize,
    /// Each lead's place in its customer's journey within the range read (2 and up: a repeat).
    pub nth: HashMap<(String, String), usize>,
    /// Offers, actions and sources seen in the range, for the filter choices.
    pub offers: Vec<String>,
    pub actions: Vec<String>,
    pub sources: Vec<String>,
}

pub async fn list_page(days: &DayReader, filter: &ListFilter) -> Result<ListPage, StoreError> {
    let all = leads_between(days, filter.from, filter.to).await?;
    let distinct = |pick: &dyn Fn(&Lead) -> Option<&str>| {
        let values: BTreeSet<&str> = each(&all).filter_map(|l| pick(&l.lead)).collect();
        values.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let offers = distinct(&|l| l.offer());
    let actions = distinct(&|l| l.action_code.as_deref());
    let sources = distinct(&|l| l.lead_source.source.as_deref());
    let matching = apply(each(&all), filter);
    let total = matching.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let rows: Vec<StoredLead> = matching.into_iter().skip((filter.page.min(pages) - 1) * PAGE_SIZE).take(PAGE_SIZE).cloned().collect();
    // Only the shown rows' places are kept; they are counted over the whole range.
    let shown: HashSet<(&str, &str)> = rows.iter().map(|l| (l.partition_key.as_str(), l.row_key.as_str())).collect();
    let mut nth = nth_lead_of_customer(each(&all));
    nth.retain(|(pk, rk), _| shown.contains(&(pk.as_str(), rk.as_str())));
    Ok(ListPage { rows, total, pages, nth, offers, actions, sources })
}

/// Every lead the filter keeps, for the CSV export (every page, not just one).
pub async fn export_rows(days: &DayReader, filter: &ListFilter) -> Result<Vec<StoredLead>, StoreError> {
    let all = leads_between(days, filter.from, filter.to).await?;
    Ok(apply(each(&all), filter).into_iter().cloned().collect())
}

/// One channel's state on a lead, as the lead page shows it.
pub struct ChannelView {
    pub channel: ChannelId,
    pub record: ChannelRecord,
    pub delivered_at: Option<DateTime<Utc>>,
    pub resent_by: Option<String>,
    pub resent_at: Option<DateTime<Utc>>,
}

/// The channels to show on a lead: those the settings watch, then any other with state stored
/// on the row (a channel turned off since).
pub fn channels_of(row: &Entity, watched: &[ChannelId]) -> Vec<ChannelView> {
    let mut channels: Vec<ChannelId> = watched.to_vec();
    for ch in ChannelId::PER_LEAD {
        if !channels.contains(&ch) && row.contains_key(&column(ch, Column::State)) {
            channels.push(ch);
        }
    }
    channels
        .into_iter()
        .map(|ch| ChannelView {
            channel: ch,
            record: ChannelRecord::read(row, ch),
            delivered_at: get_datetime(row, &column(ch, Column::DeliveredAt)),
            resent_by: Some(get_str(row, &column(ch, Column::ResentBy)).to_string()).filter(|s| !s.is_empty()),
            resent_at: get_datetime(row, &column(ch, Column::ResentAt)),
        })
        .collect()
}

/// One earlier or later lead of the same customer, as the journey index has it.
pub struct JourneyStep {
    pub partition_key: String,
    pub row_key: String,
    pub created: Option<DateTime<Utc>>,
    pub action_code: Option<String>,
    pub offer: Option<String>,
    pub this_lead: bool,
}

/// The customer's leads, oldest first, from the journey index (one partition read). Empty when
/// the lead names no customer (no e-mail address, a test lead) or journeys are off.
pub async fn journey_of(store: &SharedTable, lead: &Lead, pk: &str, rk: &str) -> Result<Vec<JourneyStep>, StoreError> {
    let Some(customer) = lead.customer_id() else { return Ok(Vec::new()) };
    let this_id = notification_id(pk, rk);
    let mut steps: Vec<JourneyStep> = Journey::new(store)
        .entries(&customer)
        .await?
        .iter()
        .map(|e| {
            let non_empty = |name: &str| Some(get_str(e, name).to_string()).filter(|s| !s.is_empty());
            JourneyStep {
                partition_key: get_str(e, "LeadPartitionKey").to_string(),
                row_key: get_str(e, "LeadRowKey").to_string(),
                created: get_datetime(e, "CreatedTime"),
                action_code: non_empty("ActionCode"),
                offer: non_empty("OfferTitle").or_else(|| non_empty("OfferId")),
                this_lead: get_str(e, "RowKey") == this_id,
            }
        })
        .collect();
    steps.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.row_key.cmp(&b.row_key)));
    Ok(steps)
}

/// The counts the chart draws: per day, per action (`""` for none), for one offer or all.
pub struct ChartData {
    /// Buckets: the days, oldest first; series: action codes (most frequent first).
    pub counts: Counts<NaiveDate>,
    /// Every offer seen in the period, for the switch.
    pub offers: Vec<String>,
}

/// Leads per day over the [`CHART_DAYS`] ending `today`, test leads left out.
pub async fn chart_data(days: &DayReader, today: NaiveDate, offer: Option<&str>) -> Result<ChartData, StoreError> {
    let from = today.checked_sub_days(Days::new(CHART_DAYS - 1)).unwrap_or(today);
    let read = leads_between(days, from, today).await?;
    let leads: Vec<&StoredLead> = each(&read).filter(|l| !l.lead.is_test()).collect();
    let offers: BTreeSet<&str> = leads.iter().filter_map(|l| l.lead.offer()).collect();
    let offers: Vec<String> = offers.into_iter().map(str::to_string).collect();
    let chart_days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= today).collect();
    let items = leads.iter().filter(|l| offer.is_none_or(|o| l.lead.offer() == Some(o))).filter_map(|l| {
        // The day it arrived: its creation time, else the date of its partition.
        let day = l.lead.created.map(|t| t.date_naive()).or_else(|| date_of_partition_key(&l.partition_key))?;
        Some((day, l.lead.action_code.clone().unwrap_or_default()))
    });
    Ok(ChartData { counts: chart::count(chart_days, items), offers })
}

/// Why "send again" did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SendAgainError {
    #[error("this lead no longer exists")]
    Gone,
    #[error("this lead is being delivered right now; try again in a minute")]
    Busy,
    #[error("that channel is not configured, so nothing could send it")]
    NotConfigured,
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
}

/// Puts one channel of one lead back to pending with the same notification id (so receivers
/// de-duplicate), records who asked and when, then delivers the lead now through the notifier's
/// one unit of work, and moves the "leads changed" marker so held copies are read again.
pub async fn send_again(
    store: &SharedTable,
    notifier: &Notifier,
    pk: &str,
    rk: &str,
    channel: ChannelId,
    who: &str,
    now: DateTime<Utc>,
) -> Result<LeadOutcome, SendAgainError> {
    if !notifier.channels().contains(&channel) {
        return Err(SendAgainError::NotConfigured);
    }
    let (row, etag) = store.get(pk, rk).await?.ok_or(SendAgainError::Gone)?;
    if get_datetime(&row, LEASE_COLUMN).is_some_and(|t| t > now) {
        return Err(SendAgainError::Busy);
    }
    // ETag-guarded: a run that claimed the lead since we read it wins, and we say so.
    match store.merge(pk, rk, &lead_state::send_again(channel, who, now), &etag).await {
        Ok(_) => {}
        Err(StoreError::Changed) => return Err(SendAgainError::Busy),
        Err(StoreError::NotFound) => return Err(SendAgainError::Gone),
        Err(e) => return Err(e.into()),
    }
    let outcome = notifier.deliver_lead(pk, rk).await;
    // Told after the delivery's own writes, so every instance's next page shows the new state.
    if let Err(e) = NotifyTable::beside(store).mark_leads_changed(now).await {
        tracing::warn!(error = %e, partition_key = %pk, row_key = %rk, "inbox: could not mark the change; older days may show the old state for two minutes");
    }
    Ok(outcome?)
}

/// Why forget could not be planned from a lead.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error("this lead no longer exists")]
    Gone,
    #[error(
        "this lead carries no e-mail address, so there is no customer to forget by address (use `handler leads forget` with the address)"
    )]
    NoAddress,
    #[error("{0}")]
    Plan(String),
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
}

/// What forgetting the customer of lead `pk`/`rk` would remove: the same plan as
/// `handler leads forget <address>`, found from the lead so the address never travels in a URL.
pub async fn plan_forget(store: &SharedTable, pk: &str, rk: &str) -> Result<ForgetPlan, ForgetError> {
    let (row, _) = store.get(pk, rk).await?.ok_or(ForgetError::Gone)?;
    let email = Lead::from_entity(&row).contact.email.ok_or(ForgetError::NoAddress)?;
    forget::plan(store, &email).await.map_err(ForgetError::Plan)
}

/// Removes what the plan lists: `handler leads forget`'s own code. The CRMs are left to that
/// command (it holds their credentials where it runs); each deleted lead is remembered in the
/// journey index until it has run, and the report says so.
pub async fn execute_forget(store: &SharedTable, plan: &ForgetPlan) -> Result<Report, StoreError> {
    forget::execute(store, plan, None).await
}
