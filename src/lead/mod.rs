//! The lead domain: what Microsoft sends, what it means, and how it becomes a table row.
//! Pure code, no I/O.
//!
//! - this module: [`Lead`], [`Contact`], [`LeadSource`], reading the HTTPS payload, test and DNC
//!   detection, labels in words;
//! - [`row`]: a lead as a table row, written by LeadIngest or by Microsoft itself;
//! - [`key`]: where a lead's row lives (date partition, dedupe row key);
//! - [`charset`]: reading a request body as text (BOM, declared charset, UTF-8).

pub mod charset;
pub mod customer;
pub mod key;
pub mod row;
pub mod words;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub use customer::CustomerId;
pub use key::{date_of_partition_key, partition_key_for, DedupeKey};

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
    pub(crate) fn slots(&mut self) -> [&mut Option<String>; 7] {
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

    pub(crate) fn from_object(obj: &Map<String, Value>) -> Self {
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
}

/// Looks a key up without regard to case (PascalCase and camelCase both occur).
pub(crate) fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// A field as text: strings trimmed, numbers and objects (campaign parameters arrive as JSON)
/// as their JSON text; empty means absent.
pub(crate) fn text(v: Option<&Value>) -> Option<String> {
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
}
