//! Property tests for every parser of outside input: random (and randomly shaped) input, a
//! bounded number of cases per run, so they run in the normal `./scripts/test`.
//!
//! Each property says what must hold for *any* input: nothing panics, and a lead body always
//! ends either as a row the Table service accepts or as a 4xx answer (never a 5xx that makes
//! Microsoft give up on a lead we could have stored).
//!
//! Case counts are explicit (`config`) so the run time is bounded; `PROPTEST_CASES=N` raises
//! them all for a deeper local run. Failures are not persisted (`failure_persistence: None`):
//! proptest prints the shrunk input, and a failure found here becomes a named unit test next to
//! the code it fixes, which says why far better than a seed file would. Seeds are random per run
//! (more ground covered over many CI runs); `PROPTEST_RNG_SEED=<n>` replays one.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body as HttpBody;
use axum::http::Request;
use chrono::{DateTime, Utc};
use marketplace_leads::entity::Entity;
use marketplace_leads::http::envelope::{InvocationRequest, InvocationResponse};
use marketplace_leads::http::{app, AppState, Mode};
use marketplace_leads::ingest::{prepare, IngestError, MAX_BODY_BYTES};
use marketplace_leads::lead::charset::{self, Body};
use marketplace_leads::lead::{DedupeKey, Lead};
use marketplace_leads::notify::message::LeadMessage;
use marketplace_leads::notify::retry_schedule::parse_retry_after;
use marketplace_leads::notify::Notifier;
use marketplace_leads::schedule::Schedule;
use marketplace_leads::settings::Settings;
use marketplace_leads::store::StorageAccount;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

/// A bounded run: `cases` unless `PROPTEST_CASES` asks for more (or fewer).
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { cases },
        failure_persistence: None,
        // Shrinking 32 KiB bodies in a debug build can take a while; a failure is a failure
        // even if its example is not the smallest.
        max_shrink_time: 60_000,
        ..default
    }
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/// The keys the lead parser looks for, in the spellings that occur, and the row's own columns.
const LEAD_KEYS: &[&str] = &[
    "UserDetails",
    "userDetails",
    "LeadSource",
    "leadSource",
    "ActionCode",
    "actionCode",
    "OfferTitle",
    "offerTitle",
    "Description",
    "description",
    "FirstName",
    "firstName",
    "LastName",
    "Email",
    "email",
    "Phone",
    "Country",
    "Company",
    "Title",
    "CustomerInfo",
    "PartitionKey",
    "RowKey",
];

/// A real key with each letter's case flipped at random (`lEaDsOuRcE`): keys match case-blind.
fn case_variant() -> impl Strategy<Value = String> {
    (select(LEAD_KEYS), prop::collection::vec(any::<bool>(), 16)).prop_map(|(k, flips)| {
        k.chars()
            .zip(flips.into_iter().cycle())
            .map(|(c, flip)| if flip { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
            .collect()
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(LEAD_KEYS).prop_map(str::to_string),
        2 => case_variant(),
        2 => "[a-zA-Z_@.]{0,12}",
        1 => any::<String>(),
    ]
}

/// Text as customers (and attackers) type it: anything, plus the values the code reacts to and
/// the characters a table key must not hold.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\PC{0,24}",
        2 => any::<String>(),
        1 => select(&[
            "MSFT_TEST_636573304831318844",
            "SPZA-PLT|contoso.contoso-analytics",
            "AzureMarketplace-INS|a.b|c",
            "DNC",
            "-|",
            "/\\#?",
            "\u{0}\u{1f}\u{7f}\u{9f}",
            "\u{feff}",
            "\"\\",
            "   ",
            "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        ][..])
        .prop_map(str::to_string),
    ]
}

/// A JSON number as it may be written on the wire: the text is kept, so `1e15` stays four bytes
/// (serde would write the same number back as `1000000000000000.0`).
fn number_token() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?(0|[1-9][0-9]{0,2})(\\.[0-9]{1,2})?([eE][+-]?[0-9]{1,3})?",
        "[1-9][0-9]{18,40}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
    ]
}

/// A JSON document kept as written (keys may repeat, numbers keep their spelling), so bodies
/// are exactly what a sender could send.
#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn write(&self, spaced: bool, out: &mut String) {
        let sep = if spaced { ", \n" } else { "," };
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => out.push_str(n),
            J::Str(s) => out.push_str(&Value::String(s.clone()).to_string()),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    item.write(spaced, out);
                }
                out.push(']');
            }
            J::Obj(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push_str(if spaced { " : " } else { ":" });
                    v.write(spaced, out);
                }
                out.push('}');
            }
        }
    }

    fn text(&self, spaced: bool) -> String {
        let mut out = String::new();
        self.write(spaced, &mut out);
        out
    }
}

fn j_leaf() -> impl Strategy<Value = J> {
    prop_oneof![Just(J::Null), any::<bool>().prop_map(J::Bool), number_token().prop_map(J::Num), text().prop_map(J::Str),]
}

/// Nested JSON with lead keys (any case) among random ones.
fn j_value() -> impl Strategy<Value = J> {
    j_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(J::Arr),
            prop::collection::vec((key(), inner), 0..6).prop_map(J::Obj),
        ]
    })
}

/// Something shaped like a lead: the real keys (any case), values of any JSON type.
fn j_lead() -> impl Strategy<Value = J> {
    let user = prop::collection::vec((key(), j_value()), 0..8).prop_map(J::Obj);
    (
        prop::option::of((prop_oneof![Just("UserDetails".to_string()), case_variant()], prop_oneof![3 => user, 1 => j_value()])),
        prop::collection::vec((key(), j_value()), 0..6),
    )
        .prop_map(|(user, mut rest)| {
            if let Some(user) = user {
                rest.insert(0, user);
            }
            J::Obj(rest)
        })
}

/// Values whose JSON text, as the row keeps it, is longer than on the wire: numbers serde writes
/// out in full, and characters escaped once more inside `CustomerInfo`.
fn j_growing() -> impl Strategy<Value = J> {
    prop_oneof![
        select(&["0.1e10", "1e15", "9E15", "1e+9", "5e-7", "-0.0e0"][..]).prop_map(|n| J::Num(n.to_string())),
        select(&["\"", "\\", "\u{1}", "\u{7f}", "\u{2028}", "</script>"][..]).prop_map(|s| J::Str(s.to_string())),
    ]
}

/// A lead whose one field repeats a small value until the body is 18-33 KiB: near the body limit,
/// where a value that grows when re-serialised (numbers, escaped quotes) could outgrow a Table
/// property.
fn j_stretched() -> impl Strategy<Value = J> {
    let fields = &["FirstName", "Company", "Email", "Title", "Description", "LeadSource", "ActionCode", "OfferTitle", "Unknown"][..];
    let elem = prop_oneof![3 => j_growing(), 1 => j_leaf(), 1 => j_value()];
    (select(fields), elem, 18_000usize..MAX_BODY_BYTES + 1_000, any::<bool>()).prop_map(|(field, elem, target, nested)| {
        let len = elem.text(false).len() + 1;
        let mut repeated = J::Arr(vec![elem; (target / len).max(1)]);
        if nested {
            repeated = J::Arr(vec![repeated]);
        }
        let entries = match field {
            "FirstName" | "Company" | "Email" | "Title" => vec![
                ("UserDetails".to_string(), J::Obj(vec![(field.to_string(), repeated)])),
                ("LeadSource".to_string(), J::Str("SPZA-INS|a.b".into())),
            ],
            _ => vec![(field.to_string(), repeated)],
        };
        J::Obj(entries)
    })
}

/// A serde `Value` of any shape (for envelopes and table columns).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6).prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// Labels `encoding_rs` knows (WHATWG), some it does not, and spellings of both.
const CHARSET_LABELS: &[&str] = &[
    "utf-8",
    "UTF-8",
    "utf8",
    "utf-16",
    "utf-16le",
    "UTF-16BE",
    "iso-8859-1",
    "latin1",
    "windows-1252",
    "iso-8859-2",
    "koi8-r",
    "shift_jis",
    "euc-jp",
    "iso-2022-jp",
    "gb18030",
    "gbk",
    "big5",
    "euc-kr",
    "x-user-defined",
    "replacement",
    "iso-2022-kr",
    "klingon",
    "",
    "\"utf-8\"",
];

fn content_type() -> impl Strategy<Value = Option<String>> {
    let structured = (
        select(&["application/json", "text/plain", "", "application/json; q=1", "*/*"][..]),
        select(&[";", "; ", " ;\t", ";;"][..]),
        select(&["charset", "CHARSET", "Charset ", "char-set"][..]),
        select(CHARSET_LABELS),
        select(&["", "\""][..]),
        select(&["", "; boundary=x", ";charset=utf-16"][..]),
    )
        .prop_map(|(mt, sep, name, label, q, rest)| format!("{mt}{sep}{name}={q}{label}{q}{rest}"));
    prop_oneof![2 => Just(None), 3 => structured.prop_map(Some), 1 => any::<String>().prop_map(Some)]
}

/// `text` in the encoding `label` names, perhaps behind a BOM. Characters the encoding lacks
/// become `&#N;` (as `encoding_rs` does for forms); UTF-16 is written by hand because
/// `encoding_rs` encodes it as UTF-8 (the web never sends UTF-16).
fn encoded(text: &str, label: &str, bom: bool) -> Vec<u8> {
    let Some(encoding) = encoding_rs::Encoding::for_label(label.as_bytes()) else {
        return text.as_bytes().to_vec();
    };
    let units = || text.encode_utf16();
    let (prefix, bytes): (&[u8], Vec<u8>) = if encoding == encoding_rs::UTF_16LE {
        (&[0xff, 0xfe], units().flat_map(u16::to_le_bytes).collect())
    } else if encoding == encoding_rs::UTF_16BE {
        (&[0xfe, 0xff], units().flat_map(u16::to_be_bytes).collect())
    } else {
        (&[0xef, 0xbb, 0xbf], encoding.encode(text).0.into_owned())
    };
    if bom {
        [prefix, &bytes].concat()
    } else {
        bytes
    }
}

/// A request body and its `Content-Type`: random bytes, lead-shaped JSON (compact or spaced),
/// and JSON in a declared (or wrongly declared) charset.
fn body_and_content_type() -> impl Strategy<Value = (Vec<u8>, Option<String>)> {
    let bytes = prop::collection::vec(any::<u8>(), 0..512);
    let json = (prop_oneof![3 => j_lead(), 1 => j_value()], any::<bool>()).prop_map(|(j, spaced)| j.text(spaced).into_bytes());
    let in_charset = (j_lead(), select(CHARSET_LABELS), any::<bool>(), any::<bool>(), select(CHARSET_LABELS)).prop_map(
        |(j, label, bom, declare_same, other)| {
            let body = encoded(&j.text(false), label, bom);
            let declared = if declare_same { label } else { other };
            (body, Some(format!("application/json; charset={declared}")))
        },
    );
    prop_oneof![
        2 => (bytes, content_type()),
        4 => (json, content_type()),
        2 => in_charset,
    ]
}

/// A receive time anywhere from year 1 to 9999 (chrono's partition keys for all of them).
fn now() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        3 => 1_600_000_000i64..2_000_000_000,
        1 => -62_135_596_800i64..253_402_300_799,
    ]
    .prop_map(|secs| DateTime::from_timestamp(secs, 0).unwrap_or_default())
}

/// `v` with every object key lower-cased, or `None` when two keys of one object would collide.
fn lower_keys(v: &Value) -> Option<Value> {
    Some(match v {
        Value::Object(m) => lower_object(m, lower_keys)?,
        Value::Array(items) => Value::Array(items.iter().map(lower_keys).collect::<Option<_>>()?),
        other => other.clone(),
    })
}

/// A lead payload with only the keys the parser looks up lower-cased (the lead's and those of
/// `UserDetails`): other values are read as their JSON text, so they must stay as they are.
fn lower_lead_keys(payload: &Value) -> Option<Value> {
    let Value::Object(m) = payload else { return Some(payload.clone()) };
    let mut out = Map::new();
    for (k, v) in m {
        let k = k.to_lowercase();
        let v = match v {
            Value::Object(user) if k == "userdetails" => lower_object(user, |v| Some(v.clone()))?,
            other => other.clone(),
        };
        if out.insert(k, v).is_some() {
            return None;
        }
    }
    Some(Value::Object(out))
}

fn lower_object(m: &Map<String, Value>, value: impl Fn(&Value) -> Option<Value>) -> Option<Value> {
    let mut out = Map::new();
    for (k, v) in m {
        if out.insert(k.to_lowercase(), value(v)?).is_some() {
            return None;
        }
    }
    Some(Value::Object(out))
}

// ---------------------------------------------------------------------------------------------
// What the Table service accepts
// ---------------------------------------------------------------------------------------------

/// UTF-16 units in one string property: 64 KiB of UTF-16. The Azure docs give the limit in
/// bytes; Azurite refuses `value.length > 32 * 1024`, and `ingest::MAX_BODY_BYTES` and the raw
/// payload chunks are sized to it.
const MAX_STRING_UNITS: usize = 32 * 1024;
/// 255 properties per entity, three of them the system's (PartitionKey, RowKey, Timestamp).
const MAX_PROPERTIES: usize = 252;

/// Holds when the Table service would accept `entity` as a row (rather than answer 400, which
/// LeadIngest could only pass on as a 5xx).
fn assert_storable(entity: &Entity) -> Result<(), TestCaseError> {
    for name in ["PartitionKey", "RowKey"] {
        let key = entity.get(name).and_then(Value::as_str);
        prop_assert!(key.is_some_and(|k| !k.is_empty()), "{name} missing: {key:?}");
        let key = key.unwrap_or_default();
        prop_assert!(key.len() <= 1024, "{name} longer than 1 KiB");
        prop_assert!(
            !key.chars().any(|c| matches!(c, '/' | '\\' | '#' | '?') || c.is_control()),
            "{name} {key:?} has a forbidden character"
        );
    }
    prop_assert!(entity.len() <= MAX_PROPERTIES, "{} properties", entity.len());
    for (name, value) in entity {
        prop_assert!(!name.is_empty() && name.chars().count() <= 255, "property name {name:?}");
        match value {
            Value::String(s) => {
                let units = s.encode_utf16().count();
                prop_assert!(units <= MAX_STRING_UNITS, "{name} is {units} UTF-16 units");
            }
            Value::Bool(_) | Value::Number(_) => {}
            other => prop_assert!(false, "{name} is not a Table type: {other}"),
        }
    }
    Ok(())
}

/// The classification of one body: a storable row, or a 4xx-class refusal that is right for it.
fn check_prepare(body: &[u8], content_type: Option<&str>, now: DateTime<Utc>) -> Result<(), TestCaseError> {
    match prepare(body, content_type, now) {
        Ok(row) => {
            assert_storable(&row.entity)?;
            prop_assert_eq!(row.entity.get("PartitionKey").and_then(Value::as_str), Some(row.key.partition_key.as_str()));
            prop_assert_eq!(row.entity.get("RowKey").and_then(Value::as_str), Some(row.key.row_key.as_str()));
        }
        Err(IngestError::TooLarge { limit }) => prop_assert!(body.len() > limit, "{} bytes refused as too large", body.len()),
        Err(IngestError::Invalid(why)) => {
            // Only bodies that are no JSON object are refused (no bytes at all, whatever the
            // charset, is none): an unreadable or unknown one is kept for a human instead.
            if body.is_empty() {
                return Ok(());
            }
            match charset::decode(body, content_type) {
                Body::Text { text, .. } => {
                    prop_assert!(text.trim().is_empty() || Lead::from_payload(text.as_bytes()).is_err(), "a JSON object refused: {why}")
                }
                Body::Undecodable { reason } => prop_assert!(false, "undecodable body refused ({reason}) instead of stored raw: {why}"),
            }
        }
        Err(e @ IngestError::Storage(_)) => prop_assert!(false, "prepare touched storage: {e}"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1. Lead payloads: charset, Lead::from_payload, DedupeKey::new, Lead::to_entity, ingest::prepare
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(1000))]

    /// Any bytes through the parser and, when they parse, into a row: no panic, and the row
    /// (keyed by the payload) is one the table takes.
    #[test]
    fn payload_parser_takes_any_bytes(body in prop::collection::vec(any::<u8>(), 0..1024), now in now()) {
        if let Ok((lead, payload)) = Lead::from_payload(&body) {
            let key = DedupeKey::new(&payload, now);
            prop_assert_eq!(key.row_key.len(), 32);
            assert_storable(&lead.to_entity(&key, now, &String::from_utf8_lossy(&body)))?;
        }
    }

    /// Lead-shaped JSON, any value types, keys in any case: parsed, keyed the same whatever
    /// the key case, and stored.
    #[test]
    fn lead_json_always_becomes_a_row(lead in j_lead(), spaced in any::<bool>(), now in now()) {
        let text = lead.text(spaced);
        match Lead::from_payload(text.as_bytes()) {
            Ok((parsed, payload)) => {
                let key = DedupeKey::new(&payload, now);
                assert_storable(&parsed.to_entity(&key, now, &text))?;
                // Keys match whatever their case: the payload with its keys lower-cased reads
                // as the same lead and dedupes to the same row.
                if let Some(lowered) = lower_keys(&payload) {
                    prop_assert_eq!(&DedupeKey::new(&lowered, now), &key);
                }
                // (Only when the payload survives being written and read again: serde_json's
                // default float parsing can land one ulp off on the way back.)
                let round_trips = serde_json::from_str::<Value>(&payload.to_string()).is_ok_and(|again| again == payload);
                if let Some(lowered) = lower_lead_keys(&payload).filter(|_| round_trips) {
                    let again = Lead::from_payload(lowered.to_string().as_bytes()).map(|(l, _)| l);
                    prop_assert_eq!(again.as_ref(), Ok(&parsed));
                }
            }
            // Only numbers beyond f64 make well-formed JSON unreadable to serde_json.
            Err(e) => prop_assert!(e.to_string().contains("number out of range"), "{e}"),
        }
        check_prepare(text.as_bytes(), Some("application/json"), now)?;
    }

    /// The whole pure path of LeadIngest, for any body and any `Content-Type`: a storable row
    /// or a 4xx refusal (`TooLarge` only above the limit, `Invalid` only for no JSON object).
    #[test]
    fn ingest_stores_or_refuses_with_4xx((body, content_type) in body_and_content_type(), now in now()) {
        check_prepare(&body, content_type.as_deref(), now)?;
    }
}

proptest! {
    // Near-limit bodies are 16-34 KiB each: fewer of them.
    #![proptest_config(config(150))]

    /// Bodies near the 32 KiB limit whose values grow when written back as JSON text still fit
    /// the Table's property limit (or are refused 413 when over the body limit).
    #[test]
    fn near_limit_bodies_fit_the_table(lead in j_stretched(), spaced in any::<bool>(), now in now()) {
        let text = lead.text(spaced);
        check_prepare(text.as_bytes(), Some("application/json"), now)?;
        if text.len() <= MAX_BODY_BYTES && Lead::from_payload(text.as_bytes()).is_ok() {
            prop_assert!(prepare(text.as_bytes(), None, now).is_ok());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The host's invocation envelope
// ---------------------------------------------------------------------------------------------

/// An `AppState` whose storage is a closed loopback port, with no retries: every write fails at
/// once with a connection error (503), so nothing is stored and nothing waits.
fn closed_storage_state() -> AppState {
    static STATE: OnceLock<AppState> = OnceLock::new();
    STATE
        .get_or_init(|| {
            let env = [
                (
                    "AzureWebJobsStorage",
                    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:1/devstoreaccount1",
                ),
                ("STORAGE_RETRY_SECONDS", "0"),
            ];
            let settings = Settings::from_map(&env.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).expect("settings");
            let store: marketplace_leads::store::SharedTable = Arc::new(settings.storage.client().expect("table client"));
            let notifier = Arc::new(Notifier::new(&settings, store.clone()).expect("notifier"));
            AppState { store, notifier, kick: None }
        })
        .clone()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"))
}

/// What the host may POST to `/LeadIngest`: well-formed envelopes with odd methods, bodies and
/// extra fields, arbitrary JSON, and bytes that are not JSON at all.
fn envelope_request() -> impl Strategy<Value = (Vec<u8>, &'static str)> {
    let method = prop_oneof![
        6 => select(&["POST", "post", ""][..]).prop_map(Value::from),
        1 => select(&["GET", "PUT", "OPTIONS"][..]).prop_map(Value::from),
        1 => text().prop_map(Value::String),
        1 => json_value(),
    ];
    let body = prop_oneof![
        4 => (j_lead(), any::<bool>()).prop_map(|(j, spaced)| Value::String(j.text(spaced))),
        1 => text().prop_map(Value::String),
        1 => json_value(),
    ];
    let body_key = prop_oneof![6 => Just("Body"), 1 => Just("body")];
    let trigger = (method, body, prop::option::of(json_value()), body_key).prop_map(|(method, body, headers, body_key)| {
        let mut t = Map::new();
        t.insert("Method".into(), method);
        t.insert(body_key.into(), body);
        if let Some(h) = headers {
            t.insert("Headers".into(), h);
        }
        Value::Object(t)
    });
    let object = || prop::collection::vec((key(), json_value()), 0..4).prop_map(|m| Value::Object(m.into_iter().collect()));
    // `Data` and `Metadata` are mostly objects, as the host sends them; anything else is a 422.
    let envelope = (
        prop_oneof![Just("req".to_string()), key()],
        prop_oneof![6 => trigger, 1 => json_value()],
        prop_oneof![4 => object(), 1 => json_value()],
        prop::collection::vec((key(), json_value()), 0..3),
        prop::option::weighted(0.1, json_value()),
    )
        .prop_map(|(binding, trigger, metadata, extra, odd_data)| {
            let mut data = Map::new();
            data.insert(binding, trigger);
            data.extend(extra);
            json!({"Data": odd_data.unwrap_or(Value::Object(data)), "Metadata": metadata}).to_string().into_bytes()
        });
    prop_oneof![
        8 => envelope.prop_map(|b| (b, "application/json")),
        1 => json_value().prop_map(|v| (v.to_string().into_bytes(), "application/json")),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(|b| (b, "application/json")),
        1 => json_value().prop_map(|v| (v.to_string().into_bytes(), "text/plain")),
    ]
}

proptest! {
    #![proptest_config(config(1000))]

    /// serde into the envelope types never panics, whatever the JSON.
    #[test]
    fn envelope_types_read_any_json(v in json_value(), s in any::<String>()) {
        let _ = serde_json::from_value::<InvocationRequest>(v.clone());
        let _ = serde_json::from_value::<InvocationResponse>(v.clone());
        let _ = serde_json::from_str::<InvocationRequest>(&v.to_string());
        let _ = serde_json::from_str::<InvocationRequest>(&s);
    }
}

proptest! {
    // One in-process request per case.
    #![proptest_config(config(400))]

    /// The host always gets 200 with an object `res` whose status is a 4xx or the storage 503
    /// (storage is a closed port here), or a 4xx from the JSON extractor when the envelope
    /// itself is not JSON of the envelope's shape. Never another 5xx: that would fail the
    /// invocation and drop the client's answer.
    #[test]
    fn envelope_route_always_answers_the_host((body, content_type) in envelope_request()) {
        let request = Request::post("/LeadIngest").header("content-type", content_type).body(HttpBody::from(body.clone()));
        let request = request.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (status, reply) = runtime().block_on(async {
            let resp = app(closed_storage_state(), &Mode::Host).oneshot(request).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            Ok::<_, TestCaseError>((status, bytes))
        })?;
        if status.is_client_error() {
            // Only the extractor refuses the host, and only an envelope that is not one.
            prop_assert!(serde_json::from_slice::<InvocationRequest>(&body).is_err() || content_type != "application/json", "{status}");
            return Ok(());
        }
        prop_assert_eq!(status.as_u16(), 200);
        let reply: Value = serde_json::from_slice(&reply).map_err(|e| TestCaseError::fail(format!("reply is not JSON: {e}")))?;
        let res = &reply["Outputs"]["res"];
        prop_assert!(res.is_object(), "res is not an object: {reply}");
        let code: u16 = res["statusCode"].as_str().and_then(|c| c.parse().ok()).unwrap_or_default();
        prop_assert!((400..500).contains(&code) || code == 503, "res statusCode {code}: {reply}");
        prop_assert!(res["body"].is_string(), "{reply}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Connection strings
// ---------------------------------------------------------------------------------------------

const CONNECTION_KEYS: &[&str] = &[
    "AccountName",
    "accountname",
    "ACCOUNTKEY",
    "SharedAccessSignature",
    "TableEndpoint",
    "DefaultEndpointsProtocol",
    "EndpointSuffix",
    "UseDevelopmentStorage",
    "DevelopmentStorageProxyUri",
    "BlobEndpoint",
];

fn connection_value() -> impl Strategy<Value = String> {
    prop_oneof![
        select(
            &[
                "true",
                "TRUE",
                "false",
                "https",
                "http",
                "",
                "devstoreaccount1",
                "a2V5",
                "http://127.0.0.1:10002/acct",
                "https://x.table.core.windows.net/",
                "?sv=1&sig=x",
                "core.windows.net",
                "=",
                "==",
                " "
            ][..]
        )
        .prop_map(str::to_string),
        "[^;]{0,24}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn connection_string_takes_any_text(s in any::<String>()) {
        let _ = StorageAccount::from_connection_string(&s);
    }

    /// Connection-string-shaped text with an account key somewhere: an error never repeats the
    /// key (errors reach logs and the terminal), and neither does the account's Debug form.
    #[test]
    fn connection_string_errors_never_show_the_key(
        parts in prop::collection::vec((prop_oneof![select(CONNECTION_KEYS).prop_map(str::to_string), key()], connection_value()), 0..6),
        secret in "[A-Za-z0-9+/=%!@~]{12,48}",
        at in any::<prop::sample::Index>(),
        key_name in select(&["AccountKey", "accountkey", " AccountKey ", "ACCOUNTKEY"][..]),
        trailing in any::<bool>(),
    ) {
        let mut parts: Vec<String> = parts.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.insert(at.index(parts.len() + 1), format!("{key_name}= {secret}"));
        let mut conn = parts.join(";");
        if trailing {
            conn.push(';');
        }
        match StorageAccount::from_connection_string(&conn) {
            Err(e) => prop_assert!(!e.contains(&secret), "the error shows the key: {e}"),
            Ok(account) => prop_assert!(!format!("{account:?}").contains(&secret), "Debug shows the key"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. NCRONTAB
// ---------------------------------------------------------------------------------------------
//
// src/schedule.rs already checks random text (20,000 strings from the cron alphabet) and random
// well-formed expressions against a brute-force model. What neither reaches is well-shaped
// fields with out-of-range parts: numbers past u32/u64, zero and huge steps, names and odd
// tokens in ranges. This property adds those.

fn cron_atom() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u32..70).prop_map(|n| n.to_string()),
        1 => any::<u32>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => "[0-9]{15,30}",
        1 => select(&["*", "?", "L", "W", "#", "jan", "DEC", "Mon", "sunday", "SAT", "7", "-1", "+1", "0x1f", "1.5", "١"][..]).prop_map(str::to_string),
        1 => "\\PC{1,4}".prop_map(|s| s.split_whitespace().collect::<String>()),
    ]
}

fn cron_field() -> impl Strategy<Value = String> {
    let item = (cron_atom(), prop::option::of(cron_atom()), prop::option::of(cron_atom())).prop_map(|(a, b, step)| {
        let mut s = a;
        if let Some(b) = b {
            s = format!("{s}-{b}");
        }
        if let Some(step) = step {
            s = format!("{s}/{step}");
        }
        s
    });
    prop::collection::vec(item, 1..4).prop_map(|items| items.join(","))
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn ncrontab_fields_with_any_tokens(fields in prop::collection::vec(cron_field(), 6), secs in 0i64..4_102_444_800) {
        let expr = fields.join(" ");
        if let Ok(schedule) = Schedule::parse(&expr) {
            let t = DateTime::from_timestamp(secs, 0).unwrap_or_default();
            if let Some(next) = schedule.next_after(t) {
                prop_assert!(next > t, "{expr}: {next} is not after {t}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Retry-After
// ---------------------------------------------------------------------------------------------

/// The HTTP-date range `httpdate` reads and writes: 1970 to the end of 9999.
const LAST_HTTP_DATE: u64 = 253_402_300_799;

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn retry_after_takes_any_text(s in any::<String>(), now in 0..LAST_HTTP_DATE) {
        let _ = parse_retry_after(&s, UNIX_EPOCH + Duration::from_secs(now));
    }

    /// delay-seconds: that many seconds, leading zeros and surrounding spaces allowed.
    #[test]
    fn retry_after_digits_are_seconds(n in any::<u64>(), zeros in 0usize..3, pad in select(&["", " ", "\t", "  "][..]), now in 0..LAST_HTTP_DATE) {
        let value = format!("{pad}{}{n}{pad}", "0".repeat(zeros));
        prop_assert_eq!(parse_retry_after(&value, UNIX_EPOCH + Duration::from_secs(now)), Some(Duration::from_secs(n)));
    }

    /// Digits past u64 (more than 584 billion years): no panic, and no delay is made up.
    #[test]
    fn retry_after_huge_digits(s in "[1-9][0-9]{20,40}") {
        prop_assert_eq!(parse_retry_after(&s, SystemTime::now()), None);
    }

    /// An HTTP-date: the time until then (zero when past), to the second.
    #[test]
    fn retry_after_dates_round_trip(at in 0..LAST_HTTP_DATE, now in 0..LAST_HTTP_DATE) {
        let (at, now) = (UNIX_EPOCH + Duration::from_secs(at), UNIX_EPOCH + Duration::from_secs(now));
        let value = httpdate::fmt_http_date(at);
        prop_assert_eq!(parse_retry_after(&value, now), Some(at.duration_since(now).unwrap_or(Duration::ZERO)), "{}", value);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Rows read back (Microsoft's own rows: CustomerInfo is a JSON string it wrote)
// ---------------------------------------------------------------------------------------------

const ROW_COLUMNS: &[&str] = &[
    "CustomerInfo",
    "FirstName",
    "LastName",
    "Email",
    "Company",
    "LeadSource",
    "ActionCode",
    "OfferDisplayName",
    "Description",
    "CreatedTime",
    "Timestamp",
    "Parsed",
    "RawPayload",
    "PartitionKey",
    "RowKey",
];

/// What a `CustomerInfo` column may hold: any text, JSON of any shape (numbers past f64 and
/// u64 as written), contact objects with odd-typed fields, and nesting past serde's limit.
fn customer_info() -> impl Strategy<Value = String> {
    let contact_keys = &["FirstName", "lastname", "EMAIL", "Phone", "Country", "Company", "Title", "x"][..];
    let odd_contact =
        prop::collection::vec((select(contact_keys).prop_map(str::to_string), j_value()), 0..8).prop_map(|e| J::Obj(e).text(false));
    prop_oneof![
        2 => any::<String>(),
        2 => j_value().prop_map(|j| j.text(false)),
        3 => odd_contact,
        1 => (1usize..3000, select(&["[", "{\"a\":", "[{\"FirstName\":"][..])).prop_map(|(depth, open)| open.repeat(depth)),
        1 => (1usize..300).prop_map(|depth| format!("{}1{}", "[".repeat(depth), "]".repeat(depth))),
    ]
}

fn table_row() -> impl Strategy<Value = Entity> {
    let column = prop_oneof![3 => select(ROW_COLUMNS).prop_map(str::to_string), 1 => key()];
    (customer_info(), prop::collection::vec((column, json_value()), 0..10), any::<bool>()).prop_map(|(info, columns, info_last)| {
        let mut e = Entity::new();
        if !info_last {
            e.insert("CustomerInfo".into(), Value::String(info.clone()));
        }
        e.extend(columns);
        if info_last {
            e.insert("CustomerInfo".into(), Value::String(info));
        }
        e
    })
}

proptest! {
    #![proptest_config(config(700))]

    /// Any row reads back as a lead without panicking, and the lead can be told about (the
    /// notification text is built from it next).
    #[test]
    fn rows_read_back_whatever_they_hold(row in table_row()) {
        let lead = Lead::from_entity(&row);
        let _ = (lead.is_test(), lead.is_do_not_contact(), lead.offer(), lead.contact.full_name());
        let message = LeadMessage::new(&lead, "lead_x", "1:2F1:2F2026", "r");
        prop_assert!(!message.subject.is_empty());
    }
}
