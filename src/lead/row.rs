//! A lead as a table row: the row LeadIngest writes and the rows Microsoft writes itself (its
//! "Azure Table" destination) read back alike. Pure code.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{text, Contact, DedupeKey, Lead, LeadSource};
use crate::entity::{get_datetime, put_datetime, Entity};

impl Lead {
    /// Reads a table row, written by LeadIngest or by Microsoft itself (native columns only,
    /// contact details as a JSON string in `CustomerInfo`).
    pub fn from_entity(e: &Entity) -> Lead {
        let mut contact = Contact::from_object(e);
        if let Some(info) = e.get("CustomerInfo").and_then(Value::as_str) {
            if let Ok(Value::Object(info)) = serde_json::from_str::<Value>(info) {
                let native = Contact::from_object(&info);
                for (slot, value) in contact.slots().into_iter().zip(native.fields()) {
                    if slot.is_none() {
                        *slot = value.1.map(str::to_string);
                    }
                }
            }
        }
        let lead_source = text(e.get("LeadSource")).map(|s| LeadSource::parse(&s)).unwrap_or_default();
        let created = get_datetime(e, "CreatedTime").or_else(|| get_datetime(e, "Timestamp"));
        Lead {
            contact,
            action_code: text(e.get("ActionCode")).or_else(|| lead_source.action.clone()),
            offer_title: text(e.get("OfferDisplayName")),
            description: text(e.get("Description")),
            lead_source,
            created,
            recognised: e.get("Parsed").and_then(Value::as_bool).unwrap_or(true),
        }
    }

    /// The row LeadIngest writes: Microsoft's native columns (so both routes read the same),
    /// flattened contact columns and parsed `LeadSource` parts (so Storage Explorer shows a
    /// readable row), and the raw payload (so unknown fields are never lost).
    ///
    /// A value that is not a string is kept as its JSON text, which can be longer than it was
    /// on the wire (`0.1e10` is written back `1000000000.0`, quotes get escaped again inside
    /// `CustomerInfo`). So a body under the limit can still make a column longer than a Table
    /// property holds, and storage would refuse the whole row. Such a column is cut to fit and
    /// named in `Truncated`; the raw payload always fits whole, so nothing is lost.
    pub fn to_entity(&self, key: &DedupeKey, received: DateTime<Utc>, raw_body: &str) -> Entity {
        let mut e = Entity::new();
        let mut truncated = Vec::new();
        let mut put = |name: &str, v: Option<&str>| {
            let v = v.unwrap_or_default();
            let kept = fit_table_string(v);
            if kept.len() < v.len() {
                truncated.push(name.to_string());
            }
            e.insert(name.to_string(), Value::String(kept.to_string()));
        };
        put("PartitionKey", Some(&key.partition_key));
        put("RowKey", Some(&key.row_key));
        put("LeadSource", Some(&self.lead_source.raw));
        put("ActionCode", self.action_code.as_deref());
        put("OfferDisplayName", self.offer_title.as_deref());
        put("Description", self.description.as_deref());
        let info: Map<String, Value> =
            self.contact.fields().iter().map(|(k, v)| (k.to_string(), Value::String(v.unwrap_or_default().to_string()))).collect();
        put("CustomerInfo", Some(&Value::Object(info).to_string()));
        for (name, value) in self.contact.fields() {
            put(name, value);
        }
        put("Source", self.lead_source.source.as_deref());
        put("Action", self.action_code.as_deref());
        put("Offer", self.lead_source.offer.as_deref());
        put("RawPayload", Some(raw_body));
        put("ReceivedBy", Some("LeadIngest"));
        if !truncated.is_empty() {
            e.insert("Truncated".into(), Value::String(truncated.join(",")));
        }
        e.insert("IsTest".into(), Value::Bool(self.is_test()));
        e.insert("DoNotContact".into(), Value::Bool(self.is_do_not_contact()));
        e.insert("Parsed".into(), Value::Bool(self.recognised));
        put_datetime(&mut e, "CreatedTime", received);
        e
    }

    /// The row for a body no encoding reads: an unrecognised lead (`Parsed=false`) whose
    /// `RawPayload` is the base64 of the bytes (`RawEncoding=base64`), with `RawReason` saying
    /// why, so a human can still read it and nothing is lost.
    pub fn undecodable_entity(key: &DedupeKey, received: DateTime<Utc>, body: &[u8], reason: &str) -> Entity {
        let mut e = Lead::default().to_entity(key, received, "");
        let b64 = base64::engine::general_purpose::STANDARD.encode(body);
        // A Table string holds 32 Ki UTF-16 units; base64 of the largest body is longer, so the
        // rest goes on in `RawPayload2` (the split falls on a 4-character boundary, so each part
        // decodes alone and their concatenation is the whole).
        let (first, rest) = b64.split_at(b64.len().min(RAW_CHUNK_CHARS));
        e.insert("RawPayload".into(), Value::String(first.to_string()));
        if !rest.is_empty() {
            e.insert("RawPayload2".into(), Value::String(rest.to_string()));
        }
        e.insert("RawEncoding".into(), Value::String("base64".into()));
        e.insert("RawReason".into(), Value::String(reason.to_string()));
        e
    }
}

/// Characters of base64 per Table string property: 32 Ki (the property limit, 64 KiB of UTF-16),
/// a multiple of 4.
const RAW_CHUNK_CHARS: usize = 32 * 1024;

/// UTF-16 units one Table string property holds: 64 KiB.
const MAX_STRING_UNITS: usize = 32 * 1024;

/// The longest prefix of `s` (whole characters) that fits one Table string property.
fn fit_table_string(s: &str) -> &str {
    // Every char is at least one UTF-16 unit: short strings need no counting.
    if s.len() <= MAX_STRING_UNITS {
        return s;
    }
    let mut units = 0;
    for (at, c) in s.char_indices() {
        units += c.len_utf16();
        if units > MAX_STRING_UNITS {
            return &s[..at];
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_table_row_reads_like_an_ingested_one() {
        let native: Entity = serde_json::from_str(include_str!("../../tests/fixtures/table-native-entity.json")).unwrap();
        let l = Lead::from_entity(&native);
        assert_eq!(l.contact.company.as_deref(), Some("Northwind Lda"));
        assert_eq!(l.action_code.as_deref(), Some("INS"));
        assert_eq!(l.offer(), Some("Northwind SaaS"));
        assert!(l.created.is_some());

        let at = Utc::now();
        let (ingested, raw) = Lead::from_payload(include_bytes!("../../tests/fixtures/https-lead.json")).unwrap();
        let back = Lead::from_entity(&ingested.to_entity(&DedupeKey::new(&raw, at), at, &raw.to_string()));
        assert_eq!(back.contact, ingested.contact);
        assert_eq!(back.lead_source, ingested.lead_source);
        assert_eq!(back.offer(), Some("Contoso Analytics"));
    }

    #[test]
    fn columns_that_grow_past_the_table_limit_are_cut_to_fit() {
        // Found by tests/properties.rs: `0.1e10` (6 bytes) is written back `1000000000.0`, so
        // this 32 KiB body made FirstName and CustomerInfo too long for one Table property.
        let body = format!(r#"{{"UserDetails":{{"FirstName":[{}]}},"LeadSource":"SPZA-INS|a.b"}}"#, vec!["0.1e10"; 4_600].join(","));
        assert!(body.len() <= 32 * 1024);
        let at = Utc::now();
        let (lead, raw) = Lead::from_payload(body.as_bytes()).unwrap();
        let e = lead.to_entity(&DedupeKey::new(&raw, at), at, &body);
        for (name, value) in &e {
            assert!(value.as_str().map_or(0, |s| s.encode_utf16().count()) <= MAX_STRING_UNITS, "{name}");
        }
        assert_eq!(e["Truncated"], "CustomerInfo,FirstName");
        assert_eq!(e["RawPayload"], body.as_str(), "the body is kept whole");
        assert!(e["FirstName"].as_str().unwrap().starts_with("[1000000000.0,"));
        // A row without cuts has no `Truncated`; a cut never splits a character.
        assert!(!Lead::default().to_entity(&DedupeKey::new(&raw, at), at, "{}").contains_key("Truncated"));
        let wide = "é".repeat(MAX_STRING_UNITS) + "😀";
        assert_eq!(fit_table_string(&wide), "é".repeat(MAX_STRING_UNITS));
        let astral = "😀".repeat(MAX_STRING_UNITS / 2 + 1);
        assert_eq!(fit_table_string(&astral).encode_utf16().count(), MAX_STRING_UNITS);
    }

    #[test]
    fn undecodable_bodies_are_kept_whole_in_base64() {
        let at = Utc::now();
        let small = Lead::undecodable_entity(&DedupeKey::for_bytes(b"\xff", at), at, b"\xff", "not valid UTF-8");
        assert_eq!((small["RawPayload"].as_str(), small["RawEncoding"].as_str()), (Some("/w=="), Some("base64")));
        assert_eq!(small["Parsed"], false);
        assert!(!small.contains_key("RawPayload2"));
        assert!(!Lead::from_entity(&small).recognised);

        let body: Vec<u8> = (0..32 * 1024).map(|i| (i % 251) as u8).collect();
        let big = Lead::undecodable_entity(&DedupeKey::for_bytes(&body, at), at, &body, "x");
        let (a, b) = (big["RawPayload"].as_str().unwrap(), big["RawPayload2"].as_str().unwrap());
        assert!(a.chars().count() <= RAW_CHUNK_CHARS && b.chars().count() <= RAW_CHUNK_CHARS);
        let engine = base64::engine::general_purpose::STANDARD;
        assert_eq!([engine.decode(a).unwrap(), engine.decode(b).unwrap()].concat(), body);
    }
}
