//! One table, whatever holds it: the calls the application makes on a table, as a trait with two
//! implementations, the REST [`TableClient`](super::TableClient) (Azure Storage, Azurite) and the
//! in-memory [`MemoryTable`](super::MemoryTable) the logic tests run against.
//!
//! Queries are typed ([`Query`], [`Filter`]), not OData strings: the REST client renders them
//! as `$filter` text, the memory table evaluates them, and both read the same value. Paging is
//! explicit ([`Table::query_page`], [`Pages`]) so a job over a whole table holds one page at a time.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::StoreError;
use crate::entity::{get_datetime, get_str, odata_string, Entity};

/// A shared handle on one table.
pub type SharedTable = Arc<dyn Table>;

/// The table calls the application makes. Every call rides out transient failures inside (REST)
/// and answers with a [`StoreError`] callers can branch on.
#[async_trait::async_trait]
pub trait Table: Send + Sync {
    fn name(&self) -> &str;
    /// The same account (or memory), another table; clones share the transaction counter.
    fn with_table(&self, table: &str) -> SharedTable;
    /// Requests sent so far by this handle and its siblings (the benchmark's "transactions").
    fn transactions(&self) -> u64;
    /// Creates the table; an existing one is success.
    async fn create_table(&self) -> Result<(), StoreError>;
    /// Inserts a new entity; `AlreadyExists` when its keys are taken (see `TableClient::insert`
    /// for what a retried insert means).
    async fn insert(&self, entity: &Entity) -> Result<(), StoreError>;
    /// One entity and its ETag; `None` when absent.
    async fn get(&self, pk: &str, rk: &str) -> Result<Option<(Entity, String)>, StoreError>;
    /// Deletes an entity whatever its version; `false` when it was already gone.
    async fn remove(&self, pk: &str, rk: &str) -> Result<bool, StoreError>;
    /// Merges `props` only if the entity still has `etag` (`*`: any); the new ETag.
    async fn merge(&self, pk: &str, rk: &str, props: &Entity, etag: &str) -> Result<String, StoreError>;
    /// Inserts or replaces unconditionally.
    async fn upsert(&self, entity: &Entity) -> Result<(), StoreError>;
    /// One page of a query, from `from` (the previous page's `next`). A missing table is empty.
    async fn query_page(&self, query: &Query, from: Option<&Continuation>) -> Result<Page, StoreError>;

    /// Every entity the query matches, up to `limit`. For small results only (a partition, the
    /// state rows); a job over the whole table pages with [`Pages`].
    async fn query(&self, query: &Query, limit: usize) -> Result<Vec<Entity>, StoreError> {
        let mut entities = Vec::new();
        let mut pages = Pages::new(query.clone());
        while let Some(page) = pages.next(self).await? {
            entities.extend(page);
            if entities.len() >= limit {
                break;
            }
        }
        entities.truncate(limit);
        Ok(entities)
    }
}

/// Walks a query page by page: one page in memory at a time.
pub struct Pages {
    query: Query,
    next: Option<Continuation>,
    done: bool,
}

impl Pages {
    pub fn new(query: Query) -> Self {
        Pages { query, next: None, done: false }
    }

    /// Resumes where an earlier walk stopped (a stored continuation).
    pub fn resume(query: Query, from: Option<Continuation>) -> Self {
        Pages { query, next: from, done: false }
    }

    /// The next page (possibly empty while more follow), `None` when the query is done.
    pub async fn next<T: Table + ?Sized>(&mut self, table: &T) -> Result<Option<Vec<Entity>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = table.query_page(&self.query, self.next.as_ref()).await?;
        self.done = page.next.is_none();
        self.next = page.next;
        Ok(Some(page.entities))
    }

    /// Where the walk stands: the continuation of the page `next` would read.
    pub fn position(&self) -> Option<&Continuation> {
        self.next.as_ref()
    }
}

/// Where the next page of a query starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuation {
    pub partition_key: String,
    pub row_key: Option<String>,
}

pub struct Page {
    pub entities: Vec<Entity>,
    pub next: Option<Continuation>,
}

/// A query: which rows, which columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub filter: Option<Filter>,
    /// `None`: every column.
    pub select: Option<Vec<String>>,
    /// Rows per page at most (the service's own cap is 1,000).
    pub page_size: Option<u32>,
}

impl Query {
    pub fn all() -> Self {
        Query::default()
    }

    pub fn filter(filter: Filter) -> Self {
        Query { filter: Some(filter), ..Query::default() }
    }

    pub fn partition(pk: &str) -> Self {
        Query::filter(Filter::eq("PartitionKey", pk))
    }

    pub fn select<S: AsRef<str>>(mut self, columns: &[S]) -> Self {
        self.select = Some(columns.iter().map(|c| c.as_ref().to_string()).collect());
        self
    }

    pub fn page_size(mut self, rows: u32) -> Self {
        self.page_size = Some(rows);
        self
    }

    /// The `$select` text.
    pub fn select_text(&self) -> Option<String> {
        self.select.as_ref().map(|s| s.join(","))
    }

    /// What an entity read by this query holds: only the selected columns.
    pub fn project(&self, entity: &Entity) -> Entity {
        match &self.select {
            None => entity.clone(),
            Some(columns) => columns.iter().filter_map(|c| entity.get(c).map(|v| (c.clone(), v.clone()))).collect(),
        }
    }
}

/// A comparison's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ge,
    Gt,
    Lt,
    Le,
}

impl Op {
    fn odata(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ge => "ge",
            Op::Gt => "gt",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }

    fn holds(self, order: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Eq => order == Equal,
            Op::Ge => order != Less,
            Op::Gt => order == Greater,
            Op::Lt => order == Less,
            Op::Le => order != Greater,
        }
    }
}

/// A literal in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Time(DateTime<Utc>),
}

/// A `$filter`, as a value both implementations read the same way.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare { column: String, op: Op, value: Literal },
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

impl Filter {
    pub fn text(column: &str, op: Op, value: &str) -> Self {
        Filter::Compare { column: column.into(), op, value: Literal::Text(value.into()) }
    }

    pub fn eq(column: &str, value: &str) -> Self {
        Filter::text(column, Op::Eq, value)
    }

    pub fn time(column: &str, op: Op, at: DateTime<Utc>) -> Self {
        Filter::Compare { column: column.into(), op, value: Literal::Time(at) }
    }

    pub fn and(self, other: Filter) -> Self {
        match self {
            Filter::And(mut all) => {
                all.push(other);
                Filter::And(all)
            }
            one => Filter::And(vec![one, other]),
        }
    }

    pub fn or(self, other: Filter) -> Self {
        Filter::Or(vec![self, other])
    }

    /// The OData text the Table service reads.
    pub fn to_odata(&self) -> String {
        match self {
            Filter::Compare { column, op, value: Literal::Text(s) } => format!("{column} {} {}", op.odata(), odata_string(s)),
            Filter::Compare { column, op, value: Literal::Time(t) } => {
                format!("{column} {} datetime'{}'", op.odata(), t.to_rfc3339_opts(SecondsFormat::Millis, true))
            }
            Filter::And(all) => all.iter().map(|f| format!("({})", f.to_odata())).collect::<Vec<_>>().join(" and "),
            Filter::Or(any) => any.iter().map(|f| format!("({})", f.to_odata())).collect::<Vec<_>>().join(" or "),
        }
    }

    /// Whether `entity` matches, as the Table service decides: a comparison with an absent
    /// property, or one of another type, is false.
    pub fn matches(&self, entity: &Entity) -> bool {
        match self {
            Filter::Compare { column, op, value: Literal::Text(s) } => match entity.get(column) {
                Some(Value::String(v)) => op.holds(v.as_str().cmp(s.as_str())),
                _ => false,
            },
            Filter::Compare { column, op, value: Literal::Time(t) } => {
                let typed = get_str(entity, &format!("{column}@odata.type")) == "Edm.DateTime" || column == "Timestamp";
                typed && get_datetime(entity, column).is_some_and(|v| op.holds(v.cmp(t)))
            }
            Filter::And(all) => all.iter().all(|f| f.matches(entity)),
            Filter::Or(any) => any.iter().any(|f| f.matches(entity)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::put_datetime;

    #[test]
    fn filters_render_as_odata_and_evaluate_alike() {
        let at = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z").unwrap().with_timezone(&Utc);
        let f = Filter::eq("PartitionKey", "it's").and(Filter::time("Timestamp", Op::Ge, at).or(Filter::eq("State", "pending")));
        assert_eq!(
            f.to_odata(),
            "(PartitionKey eq 'it''s') and ((Timestamp ge datetime'2026-12-06T10:00:00.000Z') or (State eq 'pending'))"
        );
        let mut e = Entity::new();
        e.insert("PartitionKey".into(), "it's".into());
        e.insert("Timestamp".into(), "2026-12-06T10:00:01Z".into());
        assert!(f.matches(&e));
        e.insert("Timestamp".into(), "2026-12-06T09:59:59Z".into());
        assert!(!f.matches(&e));
        e.insert("State".into(), "pending".into());
        assert!(f.matches(&e));
        // A time compared with an untyped string property does not match, as in the service.
        let mut untyped = Entity::new();
        untyped.insert("CreatedTime".into(), "2001-01-01T00:00:00Z".into());
        assert!(!Filter::time("CreatedTime", Op::Lt, at).matches(&untyped));
        put_datetime(&mut untyped, "CreatedTime", at - chrono::Duration::days(1));
        assert!(Filter::time("CreatedTime", Op::Lt, at).matches(&untyped));
    }
}
