//! Whose row is it, and where the address is in it: matching in every encoding the handler
//! stores (plain, `\uXXXX`-escaped JSON, base64 raw payloads) and the redaction of a kept row.

use base64::Engine as _;
use serde_json::Value;

use crate::entity::{get_str, Entity};
use crate::lead::customer::normalise_email;
use crate::lead::Lead;

/// What replaces the address in a row that is kept.
pub const MARKER: &str = "[forgotten address]";

/// Characters of base64 per raw-payload property (as LeadIngest splits them).
const RAW_CHUNK_CHARS: usize = 32 * 1024;
/// UTF-16 units one Table string property holds.
const MAX_STRING_UNITS: usize = 32 * 1024;

// ---------------------------------------------------------------------------------------------
// Finding the address

/// One character of stored text with the bytes it was written as: itself, or a JSON escape.
struct Unit {
    ch: char,
    start: usize,
    end: usize,
}

fn hex4(b: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(b.get(..4)?).ok()?;
    s.chars().all(|c| c.is_ascii_hexdigit()).then(|| u32::from_str_radix(s, 16).ok()).flatten()
}

/// Reads `b` as characters, decoding JSON escapes (`\u0040`, surrogate pairs, `\/`, `\n`…) and
/// UTF-8; a byte that is neither is U+FFFD of its own.
fn units(b: &[u8]) -> Vec<Unit> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            if b[i + 1] == b'u' {
                if let Some(code) = hex4(&b[i + 2..]) {
                    let mut end = i + 6;
                    let mut ch = char::from_u32(code);
                    if (0xD800..0xDC00).contains(&code) && b.get(end..end + 2) == Some(b"\\u") {
                        if let Some(low) = hex4(&b[end + 2..]).filter(|l| (0xDC00..0xE000).contains(l)) {
                            ch = char::from_u32(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00));
                            end += 6;
                        }
                    }
                    out.push(Unit { ch: ch.unwrap_or('\u{FFFD}'), start: i, end });
                    i = end;
                    continue;
                }
            }
            let escaped = match b[i + 1] {
                b'"' => Some('"'),
                b'\\' => Some('\\'),
                b'/' => Some('/'),
                b'b' => Some('\u{8}'),
                b'f' => Some('\u{c}'),
                b'n' => Some('\n'),
                b'r' => Some('\r'),
                b't' => Some('\t'),
                _ => None,
            };
            if let Some(ch) = escaped {
                out.push(Unit { ch, start: i, end: i + 2 });
                i += 2;
                continue;
            }
        }
        let width = match b[i] {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 0,
        };
        let ch = b.get(i..i + width).and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| s.chars().next());
        match ch {
            Some(ch) => {
                out.push(Unit { ch, start: i, end: i + width });
                i += width;
            }
            None => {
                out.push(Unit { ch: '\u{FFFD}', start: i, end: i + 1 });
                i += 1;
            }
        }
    }
    out
}

/// Where `b` holds the normalised `address` as a whole address (byte spans), written in any mix
/// of plain characters and JSON escapes, ASCII case ignored: not as the tail of a longer one
/// (`mjana@…`) nor the head of one with a longer domain (`….com.au`), which are other customers'.
fn find_address(b: &[u8], address: &str) -> Vec<(usize, usize)> {
    let want: Vec<char> = address.chars().collect();
    // Cheap test first: every address has an `@`, plain or escaped.
    if want.is_empty() || !(b.contains(&b'@') || b.windows(2).any(|w| w == b"\\u")) {
        return Vec::new();
    }
    let text = units(b);
    let local_char = |c: char| c.is_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c);
    let domain_char = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    let mut spans = Vec::new();
    let mut at = 0;
    while at + want.len() <= text.len() {
        let same = text[at..at + want.len()].iter().zip(&want).all(|(u, w)| u.ch.eq_ignore_ascii_case(w));
        if same {
            let before = at.checked_sub(1).map(|i| text[i].ch);
            let next = text.get(at + want.len()).map(|u| u.ch);
            let then = text.get(at + want.len() + 1).map(|u| u.ch);
            let longer_domain = next == Some('.') && then.is_some_and(domain_char);
            if before.is_none_or(|c| !local_char(c)) && next.is_none_or(|c| !domain_char(c)) && !longer_domain {
                spans.push((text[at].start, text[at + want.len() - 1].end));
                at += want.len();
                continue;
            }
        }
        at += 1;
    }
    spans
}

/// `text` contains the normalised `address` (see [`find_address`]).
pub fn contains_address(text: &str, address: &str) -> bool {
    !find_address(text.as_bytes(), address).is_empty()
}

/// `b` with every span replaced by the marker; `short` cuts each marker to the span's length in
/// characters, so the text never grows (for a value at the property's limit).
fn replace_spans(b: &[u8], spans: &[(usize, usize)], short: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut from = 0;
    for &(start, end) in spans {
        out.extend_from_slice(&b[from..start]);
        let marker = if short { &MARKER[..MARKER.len().min(end - start)] } else { MARKER };
        out.extend_from_slice(marker.as_bytes());
        from = end;
    }
    out.extend_from_slice(&b[from..]);
    out
}

/// `text` with the address replaced by [`MARKER`], `None` when it does not contain it.
pub fn redact_text(text: &str, address: &str) -> Option<String> {
    let spans = find_address(text.as_bytes(), address);
    if spans.is_empty() {
        return None;
    }
    // Spans fall on character boundaries and the marker is ASCII: still UTF-8.
    let full = String::from_utf8_lossy(&replace_spans(text.as_bytes(), &spans, false)).into_owned();
    if full.encode_utf16().count() <= MAX_STRING_UNITS {
        return Some(full);
    }
    Some(String::from_utf8_lossy(&replace_spans(text.as_bytes(), &spans, true)).into_owned())
}

// ---------------------------------------------------------------------------------------------
// Whose row it is, and what happens to it

/// A row's raw payload as bytes: base64-decoded when LeadIngest stored it so.
fn raw_bytes(row: &Entity) -> Option<Vec<u8>> {
    let first = get_str(row, "RawPayload");
    if get_str(row, "RawEncoding").eq_ignore_ascii_case("base64") {
        let b64 = format!("{first}{}", get_str(row, "RawPayload2"));
        return base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()).ok();
    }
    (!first.is_empty()).then(|| first.as_bytes().to_vec())
}

/// The first string under a key named `email` (any ASCII case, any depth) of a JSON value.
fn email_field(v: &Value) -> Option<&str> {
    match v {
        Value::Object(map) => map
            .iter()
            .find(|(k, v)| k.eq_ignore_ascii_case("email") && v.is_string())
            .and_then(|(_, v)| v.as_str())
            .or_else(|| map.values().find_map(email_field)),
        Value::Array(items) => items.iter().find_map(email_field),
        _ => None,
    }
}

/// The row's own customer address, as written: the parsed e-mail (LeadIngest's column, else
/// Microsoft's `CustomerInfo`), else, for a row nobody could parse, its raw payload's `email`.
pub fn own_address(row: &Entity) -> Option<String> {
    let lead = Lead::from_entity(row);
    if let Some(email) = lead.contact.email {
        return Some(email);
    }
    if lead.recognised {
        return None;
    }
    let raw = raw_bytes(row)?;
    let json: Value = serde_json::from_str(&String::from_utf8_lossy(&raw)).ok()?;
    email_field(&json).map(str::to_string)
}

/// Whether the row is the lead of the customer with the normalised `address`.
pub fn is_own(row: &Entity, address: &str) -> bool {
    own_address(row).as_deref().and_then(normalise_email).as_deref() == Some(address)
}

/// The properties to write so `row` no longer holds the address (empty when it holds none):
/// every string property containing it, and a base64 raw payload re-encoded.
pub fn redaction(row: &Entity, address: &str) -> Entity {
    let mut props = Entity::new();
    for (k, v) in row {
        if matches!(k.as_str(), "PartitionKey" | "RowKey" | "Timestamp") || k.starts_with("odata.") || k.contains("@odata.") {
            continue;
        }
        if let Some(redacted) = v.as_str().and_then(|s| redact_text(s, address)) {
            props.insert(k.clone(), Value::String(redacted));
        }
    }
    if get_str(row, "RawEncoding").eq_ignore_ascii_case("base64") {
        if let Some(bytes) = raw_bytes(row) {
            let spans = find_address(&bytes, address);
            if !spans.is_empty() {
                let engine = base64::engine::general_purpose::STANDARD;
                let mut b64 = engine.encode(replace_spans(&bytes, &spans, false));
                if b64.len() > 2 * RAW_CHUNK_CHARS {
                    b64 = engine.encode(replace_spans(&bytes, &spans, true));
                }
                let (first, rest) = b64.split_at(b64.len().min(RAW_CHUNK_CHARS));
                props.insert("RawPayload".into(), Value::String(first.to_string()));
                if !rest.is_empty() || row.contains_key("RawPayload2") {
                    props.insert("RawPayload2".into(), Value::String(rest.to_string()));
                }
            }
        }
    }
    props
}

/// What forget does with one lead row.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Not this customer's and no mention of the address.
    Keep,
    /// This customer's lead.
    Delete,
    /// Another customer's lead mentioning the address: these properties are written.
    Redact(Entity),
}

pub fn judge(row: &Entity, address: &str) -> Verdict {
    if is_own(row, address) {
        return Verdict::Delete;
    }
    let props = redaction(row, address);
    if props.is_empty() {
        Verdict::Keep
    } else {
        Verdict::Redact(props)
    }
}

// ---------------------------------------------------------------------------------------------
// The plan
