//! LeadIngest: one lead in, one row written, then the answer.

use axum::http::StatusCode;
use serde_json::json;

use crate::error::AppError;
use chrono::Timelike;

use crate::lead::{partition_key_for, DedupeKey, Lead, MAX_BODY_BYTES};
use crate::store::{StoreError, TableClient};

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

/// Parses and stores one lead. Returns only after the row is durably written (or found to be
/// there already); every error leaves the table unchanged.
#[tracing::instrument(name = "lead_ingest", skip_all, fields(bytes = body.len()))]
pub async fn ingest(store: &TableClient, body: &[u8]) -> Result<Stored, AppError> {
    ingest_at(store, body, chrono::Utc::now()).await
}

/// [`ingest`] at a given time (tests use it to cross midnight).
pub async fn ingest_at(store: &TableClient, body: &[u8], now: chrono::DateTime<chrono::Utc>) -> Result<Stored, AppError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(AppError::PayloadTooLarge { limit: MAX_BODY_BYTES });
    }
    let text = std::str::from_utf8(body).map_err(|_| AppError::BadRequest("body is not UTF-8 text".into()))?;
    if text.trim().is_empty() {
        return Err(AppError::BadRequest("body is empty: POST the lead as a JSON object".into()));
    }
    let (lead, payload) = Lead::from_payload(body).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let key = DedupeKey::new(&payload, now);
    let entity = lead.to_entity(&key, now, text);

    let mut partition_key = key.partition_key.clone();
    let duplicate = if let Some(earlier) = retry_of_yesterdays_lead(store, &key, now).await? {
        partition_key = earlier;
        true
    } else {
        match store.insert(&entity).await {
            Ok(()) => false,
            Err(StoreError::AlreadyExists) => true,
            Err(e) => return Err(AppError::Storage(e)),
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
    if !lead.recognised {
        tracing::warn!(row_key = %stored.row_key, "lead JSON has none of the known fields: stored raw (RawPayload) for a human to read");
    }
    Ok(stored)
}

/// Rows are partitioned by the UTC date, so a retry that crosses midnight would land in a new
/// partition. In the first minutes of a day, look for the same row in yesterday's partition.
/// Returns yesterday's partition key when the lead is there.
async fn retry_of_yesterdays_lead(
    store: &TableClient,
    key: &DedupeKey,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<String>, AppError> {
    const WINDOW_SECONDS: u32 = 15 * 60;
    if now.num_seconds_from_midnight() >= WINDOW_SECONDS {
        return Ok(None);
    }
    let yesterday = partition_key_for(now.date_naive() - chrono::Days::new(1));
    let found = store.get(&yesterday, &key.row_key).await.map_err(AppError::Storage)?;
    Ok(found.map(|_| yesterday))
}

/// The HTTP answer for an ingest result: 201 when written, 200 when it was already there.
pub fn response(result: Result<Stored, AppError>) -> (StatusCode, serde_json::Value) {
    match result {
        Ok(s) => {
            let status = if s.duplicate { StatusCode::OK } else { StatusCode::CREATED };
            let body = json!({
                "status": if s.duplicate { "duplicate" } else { "stored" },
                "partitionKey": s.partition_key,
                "rowKey": s.row_key,
                "test": s.test,
                "parsed": s.recognised,
            });
            (status, body)
        }
        Err(e) => (e.status(), e.body()),
    }
}
