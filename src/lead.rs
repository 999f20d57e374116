//! The lead domain: what Microsoft sends, what it means, and how it becomes a table row.
//! Pure code, no I/O.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::store::{get_datetime, put_datetime, Entity};

/// Largest request body accepted (bytes). A real lead is under 2 KB; at 32 KiB the raw payload
/// still fits one Table string property (64 KiB of UTF-16), so nothing is ever truncated.
pub const MAX_BODY_BYTES: usize = 32 * 1024;

/// The customer's contact details (`UserDetails` / `CustomerInfo`). Every field is optional:
/// `.edu` customers, for one, arrive without personal data.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub country: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
}

/// The seven contact fields with their column names, in Microsoft's order.
const CONTACT_FIELDS: [&str; 7] = ["FirstName", "LastName", "Email", "Phone", "Country", "Company", "Title"];

impl Contact {
    fn slots(&mut self) -> [&mut Option<String>; 7] {
        [&mut self.first_name, &mut self.last_name, &mut self.email, &mut self.phone, &mut self.country, &mut self.company, &mut self.title]
    }

    pub fn fields(&self) -> [(&'static str, Option<&str>); 7] {
        let v = [&self.first_name, &self.last_name, &self.email, &self.phone, &self.country, &self.company, &self.title];
        let mut out = [("", None); 7];
        for (i, name) in CONTACT_FIELDS.iter().enumerate() {
            out[i] = (*name, v[i].as_deref());
        }
        out
    }

    fn from_object(obj: &Map<String, Value>) -> Self {
        let mut c = Contact::default();
        for (slot, name) in c.slots().into_iter().zip(CONTACT_FIELDS) {
            *slot = text(field(obj, name));
        }
        c
    }

    pub fn full_name(&self) -> Option<String> {
        let name = [self.first_name.as_deref(), self.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        (!name.trim().is_empty()).then_some(name)
    }

    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, v)| v.is_none())
    }
}

/// `LeadSource` = `Source-Action|Offer`, e.g. `SPZA-PLT|contoso.contoso-analytics`. The raw
/// string is kept; the parts are best effort because the format is not guaranteed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeadSource {
    pub raw: String,
    pub source: Option<String>,
    pub action: Option<String>,
    pub offer: Option<String>,
}

impl LeadSource {
    pub fn parse(raw: &str) -> Self {
        let raw = raw.trim();
        let (origin, offer) = match raw.split_once('|') {
            Some((o, offer)) => (o, non_empty(offer)),
            None => (raw, None),
        };
        let (source, action) = match origin.split_once('-') {
            Some((s, a)) => (non_empty(s), non_empty(a)),
            None => (non_empty(origin), None),
        };
        LeadSource { raw: raw.to_string(), source, action, offer }
    }
}

/// Where the customer was, by Microsoft's source code.
pub fn source_label(code: &str) -> &str {
    match code.to_ascii_lowercase().as_str() {
        "azuremarketplace" => "Azure Marketplace",
        "azureportal" => "Azure portal",
        "spza" => "AppSource",
        "testdrive" => "Test Drive",
        _ => code,
    }
}

/// What the customer did, by Microsoft's action code.
pub fn action_label(code: &str) -> &str {
    match code.to_ascii_lowercase().as_str() {
        "ins" => "Get it now",
        "plt" => "Contact me",
        "dnc" => "Do not contact",
        "create" => "Purchase",
        "starttestdrive" => "Test drive",
        _ => code,
    }
}

/// One lead, whichever route delivered it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lead {
    pub contact: Contact,
    pub lead_source: LeadSource,
    /// `ActionCode` when sent, else the action inside `LeadSource`.
    pub action_code: Option<String>,
    pub offer_title: Option<String>,
    pub description: Option<String>,
    pub created: Option<DateTime<Utc>>,
    /// False when the JSON object had none of the fields of a lead (stored raw, for a human).
    pub recognised: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is JSON but not an object (a lead is one JSON object)")]
    NotObject,
}

impl Lead {
    /// Reads the JSON an "HTTPS endpoint" destination receives. Keys match without regard to
    /// case; unknown keys are ignored here (the raw payload is stored beside the parsed columns).
    pub fn from_payload(body: &[u8]) -> Result<(Lead, Value), PayloadError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
        let obj = value.as_object().ok_or(PayloadError::NotObject)?;
        let user = field(obj, "UserDetails").and_then(Value::as_object);
        let lead_source = text(field(obj, "LeadSource")).map(|s| LeadSource::parse(&s)).unwrap_or_default();
        let mut lead = Lead {
            contact: user.map(Contact::from_object).unwrap_or_default(),
            action_code: text(field(obj, "ActionCode")).or_else(|| lead_source.action.clone()),
            offer_title: text(field(obj, "OfferTitle")),
            description: text(field(obj, "Description")),
            lead_source,
            created: None,
            recognised: false,
        };
        lead.recognised = user.is_some() || !lead.lead_source.raw.is_empty() || lead.action_code.is_some() || lead.offer_title.is_some();
        Ok((lead, value))
    }

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

    /// Microsoft's validation lead: `MSFT_TEST_<digits>` in the fields.
    pub fn is_test(&self) -> bool {
        let marked = |s: &str| s.to_ascii_uppercase().contains("MSFT_TEST");
        self.contact.fields().iter().filter_map(|(_, v)| *v).any(marked)
            || marked(&self.lead_source.raw)
            || self.action_code.as_deref().is_some_and(marked)
    }

    /// A `DNC` lead is a heads-up that a cross-listed partner was contacted: do not contact.
    pub fn is_do_not_contact(&self) -> bool {
        self.action_code.as_deref().is_some_and(|a| a.eq_ignore_ascii_case("DNC"))
    }

    /// The offer for people: its title, else the id from `LeadSource`.
    pub fn offer(&self) -> Option<&str> {
        self.offer_title.as_deref().or(self.lead_source.offer.as_deref())
    }

    /// The row LeadIngest writes: Microsoft's native columns (so both routes read the same),
    /// flattened contact columns and parsed `LeadSource` parts (so Storage Explorer shows a
    /// readable row), and the raw payload (so unknown fields are never lost).
    pub fn to_entity(&self, key: &DedupeKey, received: DateTime<Utc>, raw_body: &str) -> Entity {
        let mut e = Entity::new();
        let mut put = |name: &str, v: Option<&str>| {
            e.insert(name.to_string(), Value::String(v.unwrap_or_default().to_string()));
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
        e.insert("IsTest".into(), Value::Bool(self.is_test()));
        e.insert("DoNotContact".into(), Value::Bool(self.is_do_not_contact()));
        e.insert("Parsed".into(), Value::Bool(self.recognised));
        put_datetime(&mut e, "CreatedTime", received);
        e
    }
}

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
        let row_key = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        DedupeKey { partition_key: partition_key_for(received.date_naive()), row_key }
    }
}

/// Microsoft's partition key for a date: `9:2F28:2F2018` for 28 September 2018.
pub fn partition_key_for(date: NaiveDate) -> String {
    format!("{}:2F{}:2F{}", date.month(), date.day(), date.year())
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

/// Looks a key up without regard to case (PascalCase and camelCase both occur).
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// A field as text: strings trimmed, numbers and objects (campaign parameters arrive as JSON)
/// as their JSON text; empty means absent.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => non_empty(s),
        other => Some(other.to_string()),
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Lead {
        Lead::from_payload(v.to_string().as_bytes()).unwrap().0
    }

    #[test]
    fn lead_source_parts() {
        let s = LeadSource::parse("AzureMarketplace-INS|publisher.offer");
        assert_eq!(
            (s.source.as_deref(), s.action.as_deref(), s.offer.as_deref()),
            (Some("AzureMarketplace"), Some("INS"), Some("publisher.offer"))
        );
        let split = LeadSource::parse("AzureMarketplace");
        assert_eq!((split.source.as_deref(), split.action, split.offer), (Some("AzureMarketplace"), None, None));
        let odd = LeadSource::parse("SPZA-PLT|Contoso Analytics|extra");
        assert_eq!(odd.offer.as_deref(), Some("Contoso Analytics|extra"));
        assert_eq!(LeadSource::parse("").source, None);
    }

    #[test]
    fn pascal_and_camel_case_read_the_same() {
        let a =
            parse(json!({"UserDetails": {"FirstName": "Jana", "Email": "j@x.example"}, "LeadSource": "SPZA-PLT|c.o", "OfferTitle": "O"}));
        let b =
            parse(json!({"userDetails": {"firstName": "Jana", "email": "j@x.example"}, "leadSource": "SPZA-PLT|c.o", "offerTitle": "O"}));
        assert_eq!(a, b);
        assert_eq!(a.action_code.as_deref(), Some("PLT"));
        assert!(a.recognised);
    }

    #[test]
    fn split_source_and_action() {
        let l = parse(json!({"LeadSource": "AzureMarketplace", "ActionCode": "INS"}));
        assert_eq!(l.action_code.as_deref(), Some("INS"));
        assert_eq!(l.lead_source.source.as_deref(), Some("AzureMarketplace"));
    }

    #[test]
    fn test_and_dnc_flags() {
        let t = parse(json!({"UserDetails": {"Email": "MSFT_TEST_636573304831318844@test.com"}}));
        assert!(t.is_test());
        let dnc = parse(json!({"LeadSource": "SPZA-DNC|a.b"}));
        assert!(dnc.is_do_not_contact() && !dnc.is_test());
    }

    #[test]
    fn unknown_shape_and_bad_input() {
        assert!(!parse(json!({"hello": "world"})).recognised);
        assert_eq!(Lead::from_payload(b"[1,2]").unwrap_err(), PayloadError::NotObject);
        assert!(matches!(Lead::from_payload(b"{nope").unwrap_err(), PayloadError::NotJson(_)));
    }

    #[test]
    fn description_object_is_kept_as_json_text() {
        let l = parse(json!({"LeadSource": "SPZA-INS|a.b", "Description": {"mktcmpid": "spring"}}));
        assert_eq!(l.description.as_deref(), Some(r#"{"mktcmpid":"spring"}"#));
    }

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
    fn native_table_row_reads_like_an_ingested_one() {
        let native: Entity = serde_json::from_str(include_str!("../tests/fixtures/table-native-entity.json")).unwrap();
        let l = Lead::from_entity(&native);
        assert_eq!(l.contact.company.as_deref(), Some("Northwind Lda"));
        assert_eq!(l.action_code.as_deref(), Some("INS"));
        assert_eq!(l.offer(), Some("Northwind SaaS"));
        assert!(l.created.is_some());

        let at = Utc::now();
        let (ingested, raw) = Lead::from_payload(include_bytes!("../tests/fixtures/https-lead.json")).unwrap();
        let back = Lead::from_entity(&ingested.to_entity(&DedupeKey::new(&raw, at), at, &raw.to_string()));
        assert_eq!(back.contact, ingested.contact);
        assert_eq!(back.lead_source, ingested.lead_source);
        assert_eq!(back.offer(), Some("Contoso Analytics"));
    }
}
