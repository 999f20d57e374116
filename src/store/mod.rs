//! The lead table: a small client for the Azure Table REST API (Azure Storage and Azurite).
//!
//! Why not the `azure_data_tables` crate: it is the frozen legacy SDK, and what we need from it is
//! five calls whose exact HTTP matters to us (insert that reports "already exists", point reads
//! that return the ETag, MERGE with `If-Match`, paged queries with continuation tokens, and a count
//! of transactions for the benchmark). Doing them directly on `reqwest` keeps the handler small,
//! quick to start, and its failure modes explicit.
//!
//! - [`account`]: connection strings and request signing.
//! - [`client`]: the REST calls.
//! - [`token`]: Entra ID tokens for keyless accounts.
//! - [`table`]: the [`Table`] trait every caller uses, typed queries and paging.
//! - [`memory`]: the in-memory table the logic tests run against.
//! - [`retry`]: how a call rides out transient failures (bounded, jittered backoff).

pub mod account;
pub mod client;
pub mod memory;
pub mod retry;
pub mod table;
pub mod token;

pub use crate::entity::Entity;
pub use account::StorageAccount;
pub use client::TableClient;
pub use memory::MemoryTable;
pub use retry::RetryPolicy;
pub use table::{Continuation, Filter, Op, Pages, Query, SharedTable, Table};

/// What a table call came to, when it is not success. Callers branch on these.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An insert found its keys taken (`409 EntityAlreadyExists`).
    #[error("the entity already exists")]
    AlreadyExists,
    #[error("the entity changed since it was read (ETag mismatch)")]
    Changed,
    #[error("not found")]
    NotFound,
    /// The service answered and refused: retrying the same request will not help.
    #[error("storage rejected the request: {status} {code}: {message}")]
    Rejected { status: u16, code: String, message: String },
    /// No token for a keyless account (the message names the setting at fault). Not retried
    /// here: the token source has already retried.
    #[error("no storage credential: {0}")]
    Credential(String),
    /// No answer, or a transient one (5xx, 408, 429): worth retrying.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}
