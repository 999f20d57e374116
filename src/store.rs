//! The lead table: a small client for the Azure Table REST API (Azure Storage and Azurite).
//!
//! Why not the `azure_data_tables` crate: it is the frozen legacy SDK, and what we need from it is
//! five calls whose exact HTTP matters to us (insert that reports "already exists", point reads
//! that return the ETag, MERGE with `If-Match`, paged queries with continuation tokens, and a count
//! of transactions for the benchmark). Doing them directly on the `reqwest` client we already
//! carry for webhooks keeps the handler small, quick to start, and its failure modes explicit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

/// A table entity: property name to JSON value, as the Table service's JSON format has it.
pub type Entity = Map<String, Value>;

const DEV_ACCOUNT: &str = "devstoreaccount1";
// Azurite's documented, public development key: not a secret.
const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const API_VERSION: &str = "2019-02-02";

/// Where the table service is and how to sign for it, parsed from a connection string.
#[derive(Debug, Clone)]
pub struct StorageAccount {
    pub name: String,
    /// Base URL of the table service, e.g. `https://acct.table.core.windows.net` or
    /// `http://127.0.0.1:10002/devstoreaccount1` (path style, as Azurite uses).
    pub table_endpoint: String,
    credential: Credential,
}

#[derive(Debug, Clone)]
enum Credential {
    SharedKey(SecretString),
    /// A SAS token (without the leading `?`), appended to every request.
    Sas(SecretString),
}

impl StorageAccount {
    /// Parses an Azure Storage connection string. The error never repeats the input, which holds
    /// the account key.
    pub fn from_connection_string(conn: &str) -> Result<Self, String> {
        let mut parts = std::collections::HashMap::new();
        for part in conn.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or("connection string parts look like Name=value")?;
            parts.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        if parts.get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            let host = parts.get("developmentstorageproxyuri").map(|u| u.trim_end_matches('/').to_string());
            let base = host.unwrap_or_else(|| "http://127.0.0.1".into());
            return Ok(StorageAccount {
                name: DEV_ACCOUNT.into(),
                table_endpoint: format!("{base}:10002/{DEV_ACCOUNT}"),
                credential: Credential::SharedKey(DEV_KEY.into()),
            });
        }
        let name = parts.get("accountname").cloned();
        let credential = match (parts.get("accountkey"), parts.get("sharedaccesssignature")) {
            (Some(key), _) => {
                base64::engine::general_purpose::STANDARD.decode(key).map_err(|_| "AccountKey is not base64")?;
                Credential::SharedKey(key.clone().into())
            }
            (None, Some(sas)) => Credential::Sas(sas.trim_start_matches('?').to_string().into()),
            (None, None) => return Err("needs AccountKey or SharedAccessSignature".into()),
        };
        let table_endpoint = match parts.get("tableendpoint") {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => {
                let name = name.as_deref().ok_or("needs AccountName or TableEndpoint")?;
                let protocol = parts.get("defaultendpointsprotocol").map(String::as_str).unwrap_or("https");
                let suffix = parts.get("endpointsuffix").map(String::as_str).unwrap_or("core.windows.net");
                format!("{protocol}://{name}.table.{suffix}")
            }
        };
        let name = match name {
            Some(n) => n,
            None => url::Url::parse(&table_endpoint)
                .ok()
                .and_then(|u| u.host_str().and_then(|h| h.split('.').next()).map(str::to_string))
                .ok_or("cannot tell the account name")?,
        };
        if matches!(credential, Credential::SharedKey(_)) && name.is_empty() {
            return Err("AccountName is empty".into());
        }
        Ok(StorageAccount { name, table_endpoint, credential })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the entity already exists")]
    AlreadyExists,
    #[error("the entity changed since it was read (ETag mismatch)")]
    Changed,
    #[error("not found")]
    NotFound,
    #[error("storage rejected the request: {status} {code}: {message}")]
    Rejected { status: u16, code: String, message: String },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// A client for one table. Cheap to clone; clones share the connection pool and the counter.
#[derive(Clone)]
pub struct TableClient {
    http: reqwest::Client,
    account: Arc<StorageAccount>,
    table: String,
    transactions: Arc<AtomicU64>,
}

/// What a paged query returned.
pub struct QueryResult {
    pub entities: Vec<Entity>,
}

const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

impl TableClient {
    pub fn new(account: StorageAccount, table: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        TableClient { http, account: Arc::new(account), table: table.to_string(), transactions: Arc::default() }
    }

    /// The same account, another table (the notifier's small state table).
    pub fn with_table(&self, table: &str) -> Self {
        TableClient { table: table.to_string(), ..self.clone() }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Requests sent so far by this client and its clones (the benchmark's "transactions").
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    /// Creates the table; an existing table is success.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let body = serde_json::json!({ "TableName": self.table });
        let resp = self.send(Method::POST, "Tables", &[], Some(&body), &[("Prefer", "return-no-content")]).await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::CONFLICT => Ok(()),
            _ => Err(error_from(resp).await),
        }
    }

    /// Inserts a new entity. `AlreadyExists` when its keys are taken; creates the table when it
    /// is missing and tries once more.
    pub async fn insert(&self, entity: &Entity) -> Result<(), StoreError> {
        let body = Value::Object(entity.clone());
        for first in [true, false] {
            let resp = self.send(Method::POST, &self.table, &[], Some(&body), &[("Prefer", "return-no-content")]).await?;
            if resp.status().is_success() {
                return Ok(());
            }
            match error_from(resp).await {
                StoreError::NotFound if first => self.create_table().await?,
                StoreError::Rejected { status: 409, .. } => return Err(StoreError::AlreadyExists),
                e => return Err(e),
            }
        }
        Err(StoreError::NotFound)
    }

    /// Reads one entity with its ETag; `None` when it does not exist.
    pub async fn get(&self, pk: &str, rk: &str) -> Result<Option<(Entity, String)>, StoreError> {
        let resp = self.send(Method::GET, &entity_path(&self.table, pk, rk), &[], None, &[]).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(error_from(resp).await);
        }
        let etag = header(&resp, "etag");
        let entity: Entity = resp.json().await.map_err(|e| StoreError::Unavailable(format!("bad entity JSON: {e}")))?;
        Ok(Some((entity, etag)))
    }

    /// Merges `props` into an existing entity only if it still has `etag`; returns the new ETag.
    pub async fn merge(&self, pk: &str, rk: &str, props: &Entity, etag: &str) -> Result<String, StoreError> {
        let body = Value::Object(props.clone());
        let method = Method::from_bytes(b"MERGE").map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let resp = self.send(method, &entity_path(&self.table, pk, rk), &[], Some(&body), &[("If-Match", etag)]).await?;
        match resp.status() {
            s if s.is_success() => Ok(header(&resp, "etag")),
            StatusCode::PRECONDITION_FAILED => Err(StoreError::Changed),
            StatusCode::NOT_FOUND => Err(StoreError::NotFound),
            _ => Err(error_from(resp).await),
        }
    }

    /// Inserts or replaces an entity unconditionally (the notifier's cursor row).
    pub async fn upsert(&self, entity: &Entity) -> Result<(), StoreError> {
        let pk = entity.get("PartitionKey").and_then(Value::as_str).unwrap_or_default();
        let rk = entity.get("RowKey").and_then(Value::as_str).unwrap_or_default();
        let body = Value::Object(entity.clone());
        for first in [true, false] {
            let resp = self.send(Method::PUT, &entity_path(&self.table, pk, rk), &[], Some(&body), &[]).await?;
            if resp.status().is_success() {
                return Ok(());
            }
            match error_from(resp).await {
                StoreError::NotFound if first => self.create_table().await?,
                e => return Err(e),
            }
        }
        Err(StoreError::NotFound)
    }

    /// Runs a query, following continuation tokens (an empty page may still carry one), up to
    /// `limit` entities. A missing table reads as empty.
    pub async fn query(&self, filter: Option<&str>, select: Option<&str>, limit: usize) -> Result<QueryResult, StoreError> {
        let mut entities = Vec::new();
        let mut next: Option<(String, Option<String>)> = None;
        loop {
            let mut params: Vec<(&str, String)> = Vec::new();
            if let Some(f) = filter {
                params.push(("$filter", f.to_string()));
            }
            if let Some(s) = select {
                params.push(("$select", s.to_string()));
            }
            if let Some((pk, rk)) = &next {
                params.push(("NextPartitionKey", pk.clone()));
                if let Some(rk) = rk {
                    params.push(("NextRowKey", rk.clone()));
                }
            }
            let path = format!("{}()", self.table);
            let resp = self.send(Method::GET, &path, &params, None, &[]).await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(QueryResult { entities });
            }
            if !resp.status().is_success() {
                return Err(error_from(resp).await);
            }
            let next_pk = resp.headers().get("x-ms-continuation-NextPartitionKey").and_then(|v| v.to_str().ok()).map(str::to_string);
            let next_rk = resp.headers().get("x-ms-continuation-NextRowKey").and_then(|v| v.to_str().ok()).map(str::to_string);
            #[derive(serde::Deserialize)]
            struct Page {
                value: Vec<Entity>,
            }
            let page: Page = resp.json().await.map_err(|e| StoreError::Unavailable(format!("bad query JSON: {e}")))?;
            entities.extend(page.value);
            match next_pk {
                Some(pk) if entities.len() < limit => next = Some((pk, next_rk)),
                _ => break,
            }
        }
        entities.truncate(limit);
        Ok(QueryResult { entities })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Result<reqwest::Response, StoreError> {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(method = %method, path, "table request");
        let base = &self.account.table_endpoint;
        let mut url = format!("{base}/{path}");
        let mut query: Vec<String> =
            params.iter().map(|(k, v)| format!("{}={}", utf8_percent_encode(k, KEY_ENCODE), utf8_percent_encode(v, KEY_ENCODE))).collect();
        if let Credential::Sas(sas) = &self.account.credential {
            query.push(sas.expose_secret().to_string());
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let content_type = if body.is_some() { "application/json" } else { "" };
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("x-ms-date", &date)
            .header("x-ms-version", API_VERSION)
            .header("DataServiceVersion", "3.0;NetFx")
            .header("MaxDataServiceVersion", "3.0;NetFx")
            .header("Accept", "application/json;odata=minimalmetadata");
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            let bytes = serde_json::to_vec(b).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            req = req.header("Content-Type", content_type).body(bytes);
        }
        if let Credential::SharedKey(key) = &self.account.credential {
            // SharedKey for the Table service: VERB, Content-MD5, Content-Type, Date, and the
            // canonical resource `/<account><url path>` (the path already holds the account name
            // for path-style emulator URLs, so Azurite's resource names it twice, as it expects).
            let url_path = url::Url::parse(&url).map(|u| u.path().to_string()).unwrap_or_default();
            let to_sign = format!("{}\n\n{}\n{}\n/{}{}", method.as_str(), content_type, date, self.account.name, url_path);
            let key = base64::engine::general_purpose::STANDARD.decode(key.expose_secret()).unwrap_or_default();
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            mac.update(to_sign.as_bytes());
            let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            req = req.header("Authorization", format!("SharedKey {}:{}", self.account.name, sig));
        }
        req.send().await.map_err(|e| StoreError::Unavailable(describe_reqwest(&e)))
    }
}

fn entity_path(table: &str, pk: &str, rk: &str) -> String {
    let quote = |k: &str| utf8_percent_encode(&k.replace('\'', "''"), KEY_ENCODE).to_string();
    format!("{table}(PartitionKey='{}',RowKey='{}')", quote(pk), quote(rk))
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// A reqwest error with its cause chain (reqwest's own Display hides "connection refused").
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    // Never echo a query string: SAS tokens and function keys travel there.
    match text.find('?') {
        Some(i) => format!("{}…", &text[..i]),
        None => text,
    }
}

async fn error_from(resp: reqwest::Response) -> StoreError {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    let err = parsed.as_ref().and_then(|v| v.get("odata.error"));
    let code = err.and_then(|e| e.get("code")).and_then(Value::as_str).unwrap_or_default().to_string();
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(|m| m.get("value").or(Some(m)))
        .and_then(Value::as_str)
        .unwrap_or(status.canonical_reason().unwrap_or(""))
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    if status == StatusCode::NOT_FOUND {
        return StoreError::NotFound;
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT {
        return StoreError::Unavailable(format!("{status} {code}"));
    }
    StoreError::Rejected { status: status.as_u16(), code, message }
}

/// Puts a DateTime-typed property (RFC 3339, UTC) into an entity.
pub fn put_datetime(entity: &mut Entity, name: &str, at: chrono::DateTime<chrono::Utc>) {
    entity.insert(name.into(), Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
    entity.insert(format!("{name}@odata.type"), Value::String("Edm.DateTime".into()));
}

/// Reads a DateTime property written by [`put_datetime`] (or any RFC 3339 string).
pub fn get_datetime(entity: &Entity, name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    entity
        .get(name)
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&chrono::Utc))
}

/// Quotes a string literal for an OData `$filter`.
pub fn odata_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_storage_expands_to_azurite() {
        let a = StorageAccount::from_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(a.name, "devstoreaccount1");
        assert_eq!(a.table_endpoint, "http://127.0.0.1:10002/devstoreaccount1");
    }

    #[test]
    fn azure_connection_string() {
        let a = StorageAccount::from_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=leadsacct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(a.table_endpoint, "https://leadsacct.table.core.windows.net");
        let e = StorageAccount::from_connection_string("AccountName=x;AccountKey=%%%notbase64").unwrap_err();
        assert!(!e.contains("notbase64"));
    }

    #[test]
    fn explicit_table_endpoint_for_azurite_on_another_port() {
        let a = StorageAccount::from_connection_string(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};TableEndpoint=http://127.0.0.1:12345/devstoreaccount1;"
        ))
        .unwrap();
        assert_eq!(a.table_endpoint, "http://127.0.0.1:12345/devstoreaccount1");
    }

    #[test]
    fn keys_are_quoted_and_encoded() {
        assert_eq!(entity_path("T", "9:2F28:2F2018", "o'k"), "T(PartitionKey='9%3A2F28%3A2F2018',RowKey='o%27%27k')");
        assert_eq!(odata_string("it's"), "'it''s'");
    }
}
