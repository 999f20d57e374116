//! The Azure Table data model as plain data: an entity is a JSON object of properties, typed
//! properties carry an `@odata.type` annotation. Pure code, shared by the lead domain (which maps
//! leads to rows) and the store (which moves rows); neither imports the other for it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// A table entity: property name to JSON value, as the Table service's JSON format has it.
pub type Entity = Map<String, Value>;

/// Puts a DateTime-typed property (RFC 3339, UTC) into an entity.
pub fn put_datetime(entity: &mut Entity, name: &str, at: DateTime<Utc>) {
    entity.insert(name.into(), Value::String(at.to_rfc3339_opts(SecondsFormat::Millis, true)));
    entity.insert(format!("{name}@odata.type"), Value::String("Edm.DateTime".into()));
}

/// Reads a DateTime property written by [`put_datetime`] (or any RFC 3339 string).
pub fn get_datetime(entity: &Entity, name: &str) -> Option<DateTime<Utc>> {
    entity.get(name).and_then(Value::as_str).and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|d| d.with_timezone(&Utc))
}

/// A string property, `""` when absent.
pub fn get_str<'a>(entity: &'a Entity, name: &str) -> &'a str {
    entity.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// Quotes a string literal for an OData `$filter`.
pub fn odata_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_round_trip_and_quoting() {
        let mut e = Entity::new();
        let at = DateTime::parse_from_rfc3339("2026-11-22T10:00:00.123Z").unwrap().with_timezone(&Utc);
        put_datetime(&mut e, "At", at);
        assert_eq!(e["At@odata.type"], "Edm.DateTime");
        assert_eq!(get_datetime(&e, "At"), Some(at));
        assert_eq!(get_str(&e, "Missing"), "");
        assert_eq!(odata_string("it's"), "'it''s'");
    }
}
