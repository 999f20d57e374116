//! LeadIngest: one lead in, one row written, then the answer. Returns a domain result; the HTTP
//! edge (`http`) turns it into a status code.
//!
//! The body is read as text per its BOM or declared charset (`lead::charset`); a body nothing
//! reads is stored raw (base64) rather than refused, like JSON of an unknown shape. Transient
//! storage failures are retried inside the table calls (`store::retry`) before any 503.

use chrono::{DateTime, Timelike, Utc};

use crate::entity::Entity;
use crate::lead::charset::{self, Body};
use crate::lead::{partition_key_for, DedupeKey, Lead, PayloadError};
use crate::store::{SharedTable, StoreError};

/// Largest request body accepted (bytes). A real lead is under 2 KB; at 32 KiB the raw payload
/// still fits one Table string property (64 KiB of UTF-16), so it is never truncated (parsed
/// columns that outgrow it are: see `Lead::to_entity`).
pub const MAX_BODY_BYTES: usize = 32 * 1024;

/// A lead that is safely in the table.
#[derive(Debug)]
pub struct Stored {
    pub partition_key: String,
    pub row_key: String,
    /// The same delivery was already stored (a retry): nothing new was written.
    pub duplicate: bool,
    pub test: bool,
    pub recognised: bool,
}

/// Why a lead was not stored. Every one of these leaves the table unchanged.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0}")]
    Invalid(String),
    #[error("lead not stored: storage unavailable, retry later")]
    Storage(#[source] StoreError),
}

impl From<PayloadError> for IngestError {
    fn from(e: PayloadError) -> Self {
        IngestError::Invalid(e.to_string())
    }
}

/// Parses and stores one lead; `content_type` is the request's `Content-Type` (its charset
/// is honoured). Returns only after the row is durably written (or found to be there already);
/// every error leaves the table unchanged.
#[tracing::instrument(name = "lead_ingest", skip_all, fields(bytes = body.len()))]
pub async fn ingest(store: &SharedTable, body: &[u8], content_type: Option<&str>) -> Result<Stored, IngestError> {
    ingest_at(store, body, content_type, Utc::now()).await
}

/// [`ingest`] at a given time (tests use it to cross midnight).
pub async fn ingest_at(store: &SharedTable, body: &[u8], content_type: Option<&str>, now: DateTime<Utc>) -> Result<Stored, IngestError> {
    let PreparedRow { lead, key, entity } = prepare(body, content_type, now)?;
    store_row(store, lead, key, &entity, now).await
}

/// A lead ready to be written: what [`prepare`] made of a request body.
#[derive(Debug)]
pub struct PreparedRow {
    pub lead: Lead,
    pub key: DedupeKey,
    pub entity: Entity,
}

/// Everything ingest decides before it touches storage, as a pure function (so it can be
/// tested on arbitrary input without a table): a row to write, or why the body is refused.
/// Never returns [`IngestError::Storage`].
pub fn prepare(body: &[u8], content_type: Option<&str>, now: DateTime<Utc>) -> Result<PreparedRow, IngestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(IngestError::TooLarge { limit: MAX_BODY_BYTES });
    }
    if body.is_empty() {
        return Err(IngestError::Invalid("body is empty: POST the lead as a JSON object".into()));
    }
    let row = match charset::decode(body, content_type) {
        Body::Text { text, encoding } => {
            if text.trim().is_empty() {
                return Err(IngestError::Invalid("body is empty: POST the lead as a JSON object".into()));
            }
            let (lead, payload) = Lead::from_payload(text.as_bytes())?;
            let key = DedupeKey::new(&payload, now);
            let mut entity = lead.to_entity(&key, now, &text);
            if encoding != encoding_rs::UTF_8 {
                // RawPayload holds the decoded text; this says what the bytes were.
                entity.insert("BodyCharset".into(), encoding.name().into());
            }
            PreparedRow { lead, key, entity }
        }
        Body::Undecodable { reason } => {
            // Unreadable is not bad input: it may well be a lead. Keep the bytes for a human.
            tracing::warn!(%reason, "lead body is not readable text: stored raw (RawPayload, base64)");
            let key = DedupeKey::for_bytes(body, now);
            let entity = Lead::undecodable_entity(&key, now, body, &reason);
            PreparedRow { lead: Lead::default(), key, entity }
        }
    };
    Ok(row)
}

async fn store_row(store: &SharedTable, lead: Lead, key: DedupeKey, entity: &Entity, now: DateTime<Utc>) -> Result<Stored, IngestError> {
    let mut partition_key = key.partition_key.clone();
    let duplicate = if let Some(earlier) = retry_of_yesterdays_lead(store, &key, now).await? {
        partition_key = earlier;
        true
    } else {
        // `insert` retries transient failures; when a retry finds the row taken it reports
        // success (most likely our own earlier attempt landed unheard), so that lead is answered
        // 201 "stored". Only an attempt that found the row on its first try is a duplicate, 200.
        match store.insert(entity).await {
            Ok(()) => false,
            Err(StoreError::AlreadyExists) => true,
            Err(e) => return Err(IngestError::Storage(e)),
        }
    };
    let stored = Stored { partition_key, row_key: key.row_key, duplicate, test: lead.is_test(), recognised: lead.recognised };
    // Contact details are personal data: only at debug level.
    tracing::info!(
        partition_key = %stored.partition_key,
        row_key = %stored.row_key,
        source = lead.lead_source.source.as_deref().unwrap_or("-"),
        action = lead.action_code.as_deref().unwrap_or("-"),
        offer = lead.offer().unwrap_or("-"),
        test = stored.test,
        duplicate,
        "lead stored"
    );
    tracing::debug!(contact = ?lead.contact, "lead contact");
    if !lead.recognised && !entity.contains_key("RawEncoding") {
        tracing::warn!(row_key = %stored.row_key, "lead JSON has none of the known fields: stored raw (RawPayload) for a human to read");
    }
    Ok(stored)
}

/// Rows are partitioned by the UTC date, so a retry that crosses midnight would land in a new
/// partition. In the first minutes of a day, look for the same row in yesterday's partition.
/// Returns yesterday's partition key when the lead is there.
async fn retry_of_yesterdays_lead(store: &SharedTable, key: &DedupeKey, now: DateTime<Utc>) -> Result<Option<String>, IngestError> {
    const WINDOW_SECONDS: u32 = 15 * 60;
    if now.num_seconds_from_midnight() >= WINDOW_SECONDS {
        return Ok(None);
    }
    let yesterday = partition_key_for(now.date_naive() - chrono::Days::new(1));
    let found = store.get(&yesterday, &key.row_key).await.map_err(IngestError::Storage)?;
    Ok(found.map(|_| yesterday))
}
