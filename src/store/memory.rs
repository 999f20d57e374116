//! An account's tables in memory, with the Table service's semantics where the application
//! relies on them: ETags that change on every write, `If-Match`, insert conflicts, the
//! service-set `Timestamp` (from an injectable [`Clock`]), rows in key order, `$select`, and paging
//! with continuations. For the logic tests of the notifier, retention and forget; the REST client
//! is tested against Azurite.
//!
//! Written by hand: no crate emulates Azure Tables in process, and this is a map and a counter.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::table::{Continuation, Page, Query, SharedTable, Table};
use super::StoreError;
use crate::clock::Clock;
use crate::entity::{get_str, Entity};
use chrono::SecondsFormat;

type Rows = BTreeMap<(String, String), Stored>;

struct Stored {
    entity: Entity,
    etag: String,
}

#[derive(Default)]
struct Account {
    tables: Mutex<HashMap<String, Rows>>,
    transactions: AtomicU64,
    etags: AtomicU64,
    /// Rows per page when a query sets none (the service's is 1,000; tests set it small to
    /// exercise continuations).
    page_size: AtomicU64,
}

/// One table of an in-memory account. Clones and [`Table::with_table`] siblings share the account.
#[derive(Clone)]
pub struct MemoryTable {
    account: Arc<Account>,
    table: String,
    clock: Clock,
}

impl MemoryTable {
    pub fn new(table: &str, clock: Clock) -> Self {
        let account = Account { page_size: AtomicU64::new(1000), ..Account::default() };
        MemoryTable { account: Arc::new(account), table: table.to_string(), clock }
    }

    /// Makes every query page hold at most `rows` rows.
    pub fn set_page_size(&self, rows: u64) {
        self.account.page_size.store(rows.max(1), Ordering::Relaxed);
    }

    /// The rows of this table, in key order, as stored (for assertions).
    pub fn rows(&self) -> Vec<Entity> {
        self.tables().get(&self.table).map(|rows| rows.values().map(|s| s.entity.clone()).collect()).unwrap_or_default()
    }

    /// Sets a stored row's `Timestamp` (a row "written" at another time, as Microsoft's old
    /// rows are).
    pub fn set_written(&self, pk: &str, rk: &str, at: chrono::DateTime<chrono::Utc>) {
        let mut tables = self.tables();
        if let Some(row) = tables.get_mut(&self.table).and_then(|rows| rows.get_mut(&(pk.to_string(), rk.to_string()))) {
            row.entity.insert("Timestamp".into(), at.to_rfc3339_opts(SecondsFormat::Micros, true).into());
        }
    }

    fn tables(&self) -> MutexGuard<'_, HashMap<String, Rows>> {
        self.account.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn count(&self) {
        self.account.transactions.fetch_add(1, Ordering::Relaxed);
    }

    /// Stamps a write: the service-set `Timestamp` and a fresh ETag.
    fn stamp(&self, mut entity: Entity) -> Stored {
        entity.insert("Timestamp".into(), self.clock.now().to_rfc3339_opts(SecondsFormat::Micros, true).into());
        let etag = format!("W/\"{}\"", self.account.etags.fetch_add(1, Ordering::Relaxed) + 1);
        Stored { entity, etag }
    }

    fn key(entity: &Entity) -> (String, String) {
        (get_str(entity, "PartitionKey").to_string(), get_str(entity, "RowKey").to_string())
    }
}

#[async_trait::async_trait]
impl Table for MemoryTable {
    fn name(&self) -> &str {
        &self.table
    }

    fn with_table(&self, table: &str) -> SharedTable {
        Arc::new(MemoryTable { table: table.to_string(), ..self.clone() })
    }

    fn transactions(&self) -> u64 {
        self.account.transactions.load(Ordering::Relaxed)
    }

    async fn create_table(&self) -> Result<(), StoreError> {
        self.count();
        self.tables().entry(self.table.clone()).or_default();
        Ok(())
    }

    async fn insert(&self, entity: &Entity) -> Result<(), StoreError> {
        self.count();
        let key = Self::key(entity);
        let stored = self.stamp(entity.clone());
        let mut tables = self.tables();
        let rows = tables.entry(self.table.clone()).or_default();
        if rows.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        rows.insert(key, stored);
        Ok(())
    }

    async fn get(&self, pk: &str, rk: &str) -> Result<Option<(Entity, String)>, StoreError> {
        self.count();
        let tables = self.tables();
        let row = tables.get(&self.table).and_then(|rows| rows.get(&(pk.to_string(), rk.to_string())));
        Ok(row.map(|s| (s.entity.clone(), s.etag.clone())))
    }

    async fn remove(&self, pk: &str, rk: &str) -> Result<bool, StoreError> {
        self.count();
        let mut tables = self.tables();
        Ok(tables.get_mut(&self.table).and_then(|rows| rows.remove(&(pk.to_string(), rk.to_string()))).is_some())
    }

    async fn merge(&self, pk: &str, rk: &str, props: &Entity, etag: &str) -> Result<String, StoreError> {
        self.count();
        let mut tables = self.tables();
        let Some(row) = tables.get_mut(&self.table).and_then(|rows| rows.get_mut(&(pk.to_string(), rk.to_string()))) else {
            return Err(StoreError::NotFound);
        };
        if etag != "*" && etag != row.etag {
            return Err(StoreError::Changed);
        }
        let mut entity = row.entity.clone();
        for (k, v) in props {
            entity.insert(k.clone(), v.clone());
        }
        *row = self.stamp(entity);
        Ok(row.etag.clone())
    }

    async fn upsert(&self, entity: &Entity) -> Result<(), StoreError> {
        self.count();
        let stored = self.stamp(entity.clone());
        self.tables().entry(self.table.clone()).or_default().insert(Self::key(entity), stored);
        Ok(())
    }

    async fn query_page(&self, query: &Query, from: Option<&Continuation>) -> Result<Page, StoreError> {
        self.count();
        let limit = query.page_size.map_or(self.account.page_size.load(Ordering::Relaxed), u64::from) as usize;
        let tables = self.tables();
        let Some(rows) = tables.get(&self.table) else { return Ok(Page { entities: Vec::new(), next: None }) };
        let start = from.map(|c| (c.partition_key.clone(), c.row_key.clone().unwrap_or_default()));
        let mut matching = rows
            .range(start.unwrap_or_default()..)
            .filter(|(_, s)| query.filter.as_ref().is_none_or(|f| f.matches(&s.entity)))
            .map(|(key, s)| (key, query.project(&s.entity)));
        let entities: Vec<Entity> = matching.by_ref().take(limit).map(|(_, e)| e).collect();
        let next = matching.next().map(|((pk, rk), _)| Continuation { partition_key: pk.clone(), row_key: Some(rk.clone()) });
        Ok(Page { entities, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::table::{Filter, Pages};

    fn row(pk: &str, rk: &str) -> Entity {
        let mut e = Entity::new();
        e.insert("PartitionKey".into(), pk.into());
        e.insert("RowKey".into(), rk.into());
        e
    }

    #[tokio::test]
    async fn behaves_as_the_service_does_where_callers_rely_on_it() {
        let t = MemoryTable::new("T", Clock::System);
        t.insert(&row("a", "1")).await.unwrap();
        assert!(matches!(t.insert(&row("a", "1")).await, Err(StoreError::AlreadyExists)));
        let (_, etag) = t.get("a", "1").await.unwrap().unwrap();
        let next = t.merge("a", "1", &row("a", "1"), &etag).await.unwrap();
        assert_ne!(next, etag);
        assert!(matches!(t.merge("a", "1", &Entity::new(), &etag).await, Err(StoreError::Changed)));
        assert!(matches!(t.merge("b", "1", &Entity::new(), "*").await, Err(StoreError::NotFound)));
        assert!(t.remove("a", "1").await.unwrap());
        assert!(!t.remove("a", "1").await.unwrap());
        assert!(t.with_table("Other").query(&Query::all(), usize::MAX).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn pages_follow_continuations_in_key_order() {
        let t = MemoryTable::new("T", Clock::System);
        t.set_page_size(2);
        for i in 0..5 {
            t.insert(&row(&format!("p{}", i % 2), &i.to_string())).await.unwrap();
        }
        let mut pages = Pages::new(Query::all().select(&["RowKey"]));
        let mut seen = Vec::new();
        while let Some(page) = pages.next(&t).await.unwrap() {
            assert!(page.len() <= 2);
            seen.extend(page.iter().map(|e| get_str(e, "RowKey").to_string()));
            assert!(page.iter().all(|e| e.len() == 1), "only the selected column");
        }
        assert_eq!(seen, ["0", "2", "4", "1", "3"]);
        let p1 = t.query(&Query::filter(Filter::eq("PartitionKey", "p1")), usize::MAX).await.unwrap();
        assert_eq!(p1.len(), 2);
    }
}
