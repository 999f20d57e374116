//! The Table service's REST calls used here: create table, list tables, insert, point read,
//! MERGE with `If-Match`, upsert, delete, and paged query. Every request is counted (the benchmark's
//! "transactions"), retries included. Each call rides out transient failures under the client's
//! [`RetryPolicy`]; what a retried write means is said at each call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::account::{Credential, StorageAccount};
use super::retry::RetryPolicy;
use super::table::{Continuation, Page, Query, SharedTable, Table};
use super::StoreError;
use crate::entity::{get_str, Entity};
use crate::net::describe_reqwest;

const API_VERSION: &str = "2019-02-02";
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A client for one table. Cheap to clone; clones share the connection pool and the counter.
#[derive(Clone)]
pub struct TableClient {
    http: reqwest::Client,
    account: Arc<StorageAccount>,
    table: String,
    transactions: Arc<AtomicU64>,
    retry: RetryPolicy,
}

impl TableClient {
    /// A client for `table`; every call retries transient failures under `retry`.
    pub fn new(account: StorageAccount, table: &str, retry: RetryPolicy) -> Result<Self, StoreError> {
        let http = crate::net::client_builder()
            .map_err(StoreError::Credential)?
            .connect_timeout(Duration::from_secs(5))
            .timeout(super::retry::REQUEST_TIMEOUT)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build the HTTP client: {}", describe_reqwest(&e))))?;
        Ok(TableClient { http, account: Arc::new(account), table: table.to_string(), transactions: Arc::default(), retry })
    }

    /// Creates the table; an existing table is success (so a retry whose first attempt landed
    /// is success too).
    pub async fn create_table(&self) -> Result<(), StoreError> {
        self.retry.run("create table", |_| self.create_table_once()).await
    }

    async fn create_table_once(&self) -> Result<(), StoreError> {
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
    ///
    /// A retry (after an attempt ended `Unavailable`) that finds the keys taken returns `Ok`:
    /// the earlier attempt may have been written with its answer lost, and that is by far the
    /// likelier story than a concurrent insert of the same keys in those few seconds. Either way
    /// the row is there, once; keys that hash the content (as the lead's do) make both stories
    /// the same lead. On the first attempt `AlreadyExists` is unambiguous and returned.
    pub async fn insert(&self, entity: &Entity) -> Result<(), StoreError> {
        let body = Value::Object(entity.clone());
        let body = &body;
        self.retry
            .run("insert", |attempt| async move {
                match self.insert_once(body).await {
                    Err(StoreError::AlreadyExists) if attempt.is_retry() => {
                        tracing::info!(
                            table = %self.table,
                            attempt = attempt.number,
                            "insert retry found its row: an earlier attempt landed and its answer was lost"
                        );
                        Ok(())
                    }
                    other => other,
                }
            })
            .await
    }

    async fn insert_once(&self, body: &Value) -> Result<(), StoreError> {
        for first in [true, false] {
            let resp = self.send(Method::POST, &self.table, &[], Some(body), &[("Prefer", "return-no-content")]).await?;
            if resp.status().is_success() {
                return Ok(());
            }
            match error_from(resp).await {
                StoreError::NotFound if first => self.create_table_once().await?,
                // Only this code means the row is there; any other 409 (say, a table being
                // deleted) is a refusal.
                StoreError::Rejected { status: 409, code, .. } if code == "EntityAlreadyExists" => return Err(StoreError::AlreadyExists),
                e => return Err(e),
            }
        }
        Err(StoreError::NotFound)
    }

    /// Reads one entity with its ETag; `None` when it does not exist.
    pub async fn get(&self, pk: &str, rk: &str) -> Result<Option<(Entity, String)>, StoreError> {
        self.retry.run("get", |_| self.get_once(pk, rk)).await
    }

    async fn get_once(&self, pk: &str, rk: &str) -> Result<Option<(Entity, String)>, StoreError> {
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

    /// Deletes an entity (any version: `If-Match: *`). Deleting what is already gone is success,
    /// so a retry after an unheard first attempt, or two deleters, agree.
    pub async fn delete(&self, pk: &str, rk: &str) -> Result<(), StoreError> {
        self.remove(pk, rk).await.map(|_| ())
    }

    /// [`delete`](Self::delete), saying whether the entity was there: `false` when it was gone
    /// already (or a retried attempt finds what its unheard first attempt deleted: counts built
    /// on this may come out low after a blip, never high).
    pub async fn remove(&self, pk: &str, rk: &str) -> Result<bool, StoreError> {
        self.retry.run("delete", |_| self.delete_once(pk, rk)).await
    }

    async fn delete_once(&self, pk: &str, rk: &str) -> Result<bool, StoreError> {
        let resp = self.send(Method::DELETE, &entity_path(&self.table, pk, rk), &[], None, &[("If-Match", "*")]).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(error_from(resp).await),
        }
    }

    /// Merges `props` into an existing entity only if it still has `etag`; returns the new ETag.
    ///
    /// A retry whose earlier attempt landed unheard finds the ETag moved on and returns
    /// `Changed`, as if someone else had written: callers already treat that as "not ours", which
    /// costs at most a repeat after the claim expires, never a lost write.
    pub async fn merge(&self, pk: &str, rk: &str, props: &Entity, etag: &str) -> Result<String, StoreError> {
        let body = Value::Object(props.clone());
        let body = &body;
        self.retry.run("merge", |_| self.merge_once(pk, rk, body, etag)).await
    }

    async fn merge_once(&self, pk: &str, rk: &str, body: &Value, etag: &str) -> Result<String, StoreError> {
        let method = Method::from_bytes(b"MERGE").map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let resp = self.send(method, &entity_path(&self.table, pk, rk), &[], Some(body), &[("If-Match", etag)]).await?;
        match resp.status() {
            s if s.is_success() => Ok(header(&resp, "etag")),
            StatusCode::PRECONDITION_FAILED => Err(StoreError::Changed),
            StatusCode::NOT_FOUND => Err(StoreError::NotFound),
            _ => Err(error_from(resp).await),
        }
    }

    /// Inserts or replaces an entity unconditionally (the notifier's cursor row); repeating it
    /// is harmless, so retries need no care.
    pub async fn upsert(&self, entity: &Entity) -> Result<(), StoreError> {
        let path = entity_path(&self.table, get_str(entity, "PartitionKey"), get_str(entity, "RowKey"));
        let body = Value::Object(entity.clone());
        let (path, body) = (&path, &body);
        self.retry.run("upsert", |_| self.upsert_once(path, body)).await
    }

    async fn upsert_once(&self, path: &str, body: &Value) -> Result<(), StoreError> {
        for first in [true, false] {
            let resp = self.send(Method::PUT, path, &[], Some(body), &[]).await?;
            if resp.status().is_success() {
                return Ok(());
            }
            match error_from(resp).await {
                StoreError::NotFound if first => self.create_table_once().await?,
                e => return Err(e),
            }
        }
        Err(StoreError::NotFound)
    }

    /// The names of every table in the account, following continuation tokens (for checks that
    /// must see the whole account, like proving a forgotten customer is gone everywhere).
    pub async fn list_tables(&self) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let from = next.as_deref();
            let (page, more) = self.retry.run("list tables", |_| self.list_tables_page(from)).await?;
            names.extend(page);
            match more {
                Some(n) => next = Some(n),
                None => return Ok(names),
            }
        }
    }

    async fn list_tables_page(&self, from: Option<&str>) -> Result<(Vec<String>, Option<String>), StoreError> {
        let params: Vec<(&str, String)> = from.map(|n| vec![("NextTableName", n.to_string())]).unwrap_or_default();
        let resp = self.send(Method::GET, "Tables", &params, None, &[]).await?;
        if !resp.status().is_success() {
            return Err(error_from(resp).await);
        }
        let next = optional_header(&resp, "x-ms-continuation-NextTableName");
        #[derive(serde::Deserialize)]
        struct Table {
            #[serde(rename = "TableName")]
            name: String,
        }
        #[derive(serde::Deserialize)]
        struct Body {
            value: Vec<Table>,
        }
        let body: Body = resp.json().await.map_err(|e| StoreError::Unavailable(format!("bad table list JSON: {e}")))?;
        Ok((body.value.into_iter().map(|t| t.name).collect(), next))
    }

    /// One page of a query, retried on its own so a blip midway does not start a scan over;
    /// an empty page when the table does not exist.
    async fn query_page_retried(&self, query: &Query, from: Option<&Continuation>) -> Result<Page, StoreError> {
        let page = self.retry.run("query", |_| self.query_page_once(query, from)).await?;
        Ok(page.unwrap_or(Page { entities: Vec::new(), next: None }))
    }

    /// One page of a query; `None` when the table does not exist.
    async fn query_page_once(&self, query: &Query, from: Option<&Continuation>) -> Result<Option<Page>, StoreError> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(f) = &query.filter {
            params.push(("$filter", f.to_odata()));
        }
        if let Some(s) = query.select_text() {
            params.push(("$select", s));
        }
        if let Some(n) = query.page_size {
            params.push(("$top", n.min(1000).to_string()));
        }
        if let Some(c) = from {
            params.push(("NextPartitionKey", c.partition_key.clone()));
            if let Some(rk) = &c.row_key {
                params.push(("NextRowKey", rk.clone()));
            }
        }
        let path = format!("{}()", self.table);
        let resp = self.send(Method::GET, &path, &params, None, &[]).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(error_from(resp).await);
        }
        let next = optional_header(&resp, "x-ms-continuation-NextPartitionKey")
            .map(|partition_key| Continuation { partition_key, row_key: optional_header(&resp, "x-ms-continuation-NextRowKey") });
        #[derive(serde::Deserialize)]
        struct Body {
            value: Vec<Entity>,
        }
        // A body cut short by a dropped connection is transient like the drop itself.
        let body: Body = resp.json().await.map_err(|e| StoreError::Unavailable(format!("bad query JSON: {e}")))?;
        Ok(Some(Page { entities: body.value, next }))
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
        match &self.account.credential {
            Credential::SharedKey(key) => {
                let url_path = url::Url::parse(&url).map(|u| u.path().to_string()).unwrap_or_default();
                req = req.header("Authorization", key.authorization(&self.account.name, method.as_str(), content_type, &date, &url_path));
            }
            Credential::Bearer { source, setting } => {
                let token = source.bearer().await.map_err(|e| StoreError::Credential(format!("{setting}: {e}")))?;
                let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                    .map_err(|_| StoreError::Credential(format!("{setting}: the token is not a valid header value")))?;
                value.set_sensitive(true);
                req = req.header("Authorization", value);
            }
            Credential::Sas(_) => {}
        }
        req.send().await.map_err(|e| StoreError::Unavailable(describe_reqwest(&e)))
    }
}

fn entity_path(table: &str, pk: &str, rk: &str) -> String {
    let quote = |k: &str| utf8_percent_encode(&k.replace('\'', "''"), KEY_ENCODE).to_string();
    format!("{table}(PartitionKey='{}',RowKey='{}')", quote(pk), quote(rk))
}

fn optional_header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    optional_header(resp, name).unwrap_or_default()
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

#[async_trait::async_trait]
impl Table for TableClient {
    fn name(&self) -> &str {
        &self.table
    }

    fn with_table(&self, table: &str) -> SharedTable {
        Arc::new(TableClient { table: table.to_string(), ..self.clone() })
    }

    fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    async fn create_table(&self) -> Result<(), StoreError> {
        TableClient::create_table(self).await
    }

    async fn insert(&self, entity: &Entity) -> Result<(), StoreError> {
        TableClient::insert(self, entity).await
    }

    async fn get(&self, pk: &str, rk: &str) -> Result<Option<(Entity, String)>, StoreError> {
        TableClient::get(self, pk, rk).await
    }

    async fn remove(&self, pk: &str, rk: &str) -> Result<bool, StoreError> {
        TableClient::remove(self, pk, rk).await
    }

    async fn merge(&self, pk: &str, rk: &str, props: &Entity, etag: &str) -> Result<String, StoreError> {
        TableClient::merge(self, pk, rk, props, etag).await
    }

    async fn upsert(&self, entity: &Entity) -> Result<(), StoreError> {
        TableClient::upsert(self, entity).await
    }

    async fn query_page(&self, query: &Query, from: Option<&Continuation>) -> Result<Page, StoreError> {
        self.query_page_retried(query, from).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_quoted_and_encoded() {
        assert_eq!(entity_path("T", "9:2F28:2F2018", "o'k"), "T(PartitionKey='9%3A2F28%3A2F2018',RowKey='o%27%27k')");
    }
}
