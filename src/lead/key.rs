//! Where a lead's row lives: Microsoft's date partition and a row key that is the same for the
//! same delivery, so a retry finds its row taken and is answered as already stored. Pure code.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::text::hex;

/// Where a lead's row lives. The same delivery repeated maps to the same keys, so a retry
/// finds its row taken and is answered as already stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeKey {
    /// Microsoft's own partitioning: the date, `M/D/YYYY` with `/` written `:2F`.
    pub partition_key: String,
    /// First 128 bits of SHA-256 over the payload with keys lower-cased and sorted.
    pub row_key: String,
}

impl DedupeKey {
    pub fn new(payload: &Value, received: DateTime<Utc>) -> Self {
        let mut canonical = String::new();
        write_canonical(payload, &mut canonical);
        let digest = Sha256::digest(canonical.as_bytes());
        let row_key = hex(&digest[..16]);
        DedupeKey { partition_key: partition_key_for(received.date_naive()), row_key }
    }

    /// The key of a body no encoding reads, kept as bytes: the same bytes sent again map to the
    /// same row. A prefix keeps these hashes apart from those of parsed payloads.
    pub fn for_bytes(body: &[u8], received: DateTime<Utc>) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"raw-bytes\0");
        hasher.update(body);
        let row_key = hex(&hasher.finalize()[..16]);
        DedupeKey { partition_key: partition_key_for(received.date_naive()), row_key }
    }
}

/// Microsoft's partition key for a date: `9:2F28:2F2018` for 28 September 2018.
pub fn partition_key_for(date: NaiveDate) -> String {
    format!("{}:2F{}:2F{}", date.month(), date.day(), date.year())
}

/// The date of a partition key in Microsoft's format (`9:2F28:2F2018`), if it is one: the
/// inverse of [`partition_key_for`].
pub fn date_of_partition_key(pk: &str) -> Option<NaiveDate> {
    let mut parts = pk.split(":2F").map(|p| p.parse::<u32>().ok());
    let (m, d, y) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() {
        return None;
    }
    NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, &Value)> = m.iter().map(|(k, v)| (k.to_lowercase(), v)).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (k, v) in entries {
                out.push_str(&Value::String(k).to_string());
                out.push(':');
                write_canonical(v, out);
                out.push(',');
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                write_canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dedupe_key_ignores_key_case_and_order() {
        let at = DateTime::parse_from_rfc3339("2018-09-28T17:04:11Z").unwrap().with_timezone(&Utc);
        let a = DedupeKey::new(&json!({"LeadSource": "x", "UserDetails": {"Email": "a"}}), at);
        let b = DedupeKey::new(&json!({"userDetails": {"email": "a"}, "leadSource": "x"}), at);
        let c = DedupeKey::new(&json!({"userDetails": {"email": "b"}, "leadSource": "x"}), at);
        assert_eq!(a, b);
        assert_ne!(a.row_key, c.row_key);
        assert_eq!(a.partition_key, "9:2F28:2F2018");
        assert_eq!(a.row_key.len(), 32);
    }

    #[test]
    fn raw_bytes_key_is_stable_per_body() {
        let at = DateTime::parse_from_rfc3339("2018-09-28T17:04:11Z").unwrap().with_timezone(&Utc);
        let a = DedupeKey::for_bytes(b"\xff{", at);
        assert_eq!(a, DedupeKey::for_bytes(b"\xff{", at));
        assert_ne!(a.row_key, DedupeKey::for_bytes(b"\xff}", at).row_key);
        assert_eq!((a.partition_key.as_str(), a.row_key.len()), ("9:2F28:2F2018", 32));
    }

    #[test]
    fn partition_dates() {
        assert_eq!(date_of_partition_key("11:2F22:2F2026"), NaiveDate::from_ymd_opt(2026, 11, 22));
        for not_a_date in ["", "13:2F1:2F2026", "1:2F1", "1:2F1:2F2026:2F1", "a:2Fb:2Fc"] {
            assert_eq!(date_of_partition_key(not_a_date), None, "{not_a_date}");
        }
    }
}
