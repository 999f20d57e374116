//! What a CRM field may hold: customer text cleaned as notifications clean it, cut to the CRM's
//! length (counted as it counts), and the fallbacks for fields a CRM requires.

use serde_json::Value;

use crate::lead::Contact;
use crate::text::one_line;

/// `s` cut to `max` UTF-16 code units: CRM limits count .NET/Java string lengths, where a
/// character outside the BMP counts two. Longer values are cut, never rejected.
pub fn fit(s: &str, max: usize) -> String {
    let mut units = 0;
    let mut out = String::new();
    for c in s.chars() {
        units += c.len_utf16();
        if units > max {
            break;
        }
        out.push(c);
    }
    out
}

/// A present, non-blank value, cleaned as notifications clean customer text ([`one_line`]:
/// control characters, NUL and terminal escapes included, and line breaks become spaces;
/// bidirectional controls are dropped), then cut to `max`. Every one-line CRM field goes
/// through here.
pub fn field(v: &Option<String>, max: usize) -> Option<String> {
    let cleaned = one_line(v.as_deref()?);
    let s = cleaned.trim();
    (!s.is_empty()).then(|| fit(s, max))
}

/// Text for a multi-line CRM field (a description): line breaks stay (CR LF and lone CR become
/// LF), every other control character becomes a space and bidirectional controls are dropped,
/// as in [`one_line`].
pub fn multi_line(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n").split('\n').map(one_line).collect::<Vec<_>>().join("\n")
}

/// The text for a required last name when the lead has none (`.edu` customers arrive without
/// personal data).
pub const UNKNOWN: &str = "(unknown)";

/// A required last name: the lead's, else [`UNKNOWN`].
pub fn last_name(c: &Contact, max: usize) -> String {
    field(&c.last_name, max).unwrap_or_else(|| UNKNOWN.to_string())
}

/// A required company: the lead's, else the e-mail's domain, else [`UNKNOWN`].
pub fn company(c: &Contact, max: usize) -> String {
    field(&c.company, max)
        .or_else(|| {
            let email = one_line(c.email.as_deref()?);
            let domain = email.trim().rsplit_once('@')?.1.trim().to_string();
            (!domain.is_empty()).then(|| fit(&domain, max))
        })
        .unwrap_or_else(|| UNKNOWN.to_string())
}

/// The lead's e-mail when it looks like one (the e-mail-keyed CRMs need it as the key). An
/// address with a control or bidirectional character in it is none: cleaning it would make it
/// another address.
pub fn email(c: &Contact) -> Option<String> {
    let e = c.email.as_deref()?.trim();
    let (local, domain) = e.split_once('@')?;
    let odd = |ch: char| ch.is_whitespace() || crate::text::breaks_line(ch) || crate::text::is_bidi_control(ch);
    (!local.is_empty() && domain.contains('.') && !e.contains(odd)).then(|| e.to_string())
}

/// The lead's e-mail for a CRM field of `max` characters: a plausible address that fits, else
/// none (a cut address is a wrong one, and the CRMs reject malformed ones, failing the lead).
pub fn email_field(c: &Contact, max: usize) -> Option<String> {
    email(c).filter(|e| e.encode_utf16().count() <= max)
}

/// A JSON object with the present values only.
pub fn object(pairs: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(pairs.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_counts_utf16_units_and_never_splits_a_character() {
        assert_eq!(fit("abc", 2), "ab");
        assert_eq!(fit("a😀b", 2), "a");
        assert_eq!(fit("a😀b", 3), "a😀");
        assert_eq!(fit("Novák", 50), "Novák");
    }

    #[test]
    fn required_fields_fall_back() {
        let mut c = Contact::default();
        assert_eq!(last_name(&c, 80), "(unknown)");
        assert_eq!(company(&c, 80), "(unknown)");
        c.email = Some("ana@northwind.example".into());
        assert_eq!(company(&c, 80), "northwind.example");
        c.company = Some("  ".into());
        assert_eq!(company(&c, 80), "northwind.example");
        c.company = Some("Northwind".into());
        c.last_name = Some("x".repeat(100));
        assert_eq!(company(&c, 80), "Northwind");
        assert_eq!(last_name(&c, 80).len(), 80);
        assert_eq!(email(&c).as_deref(), Some("ana@northwind.example"));
        c.email = Some("not an address".into());
        assert_eq!(email(&c), None);
    }

    #[test]
    fn an_address_that_does_not_fit_is_left_out_not_cut() {
        let mut c = Contact { email: Some(format!("{}@northwind.example", "a".repeat(70))), ..Contact::default() };
        assert_eq!(email_field(&c, 80), None);
        assert!(email_field(&c, 100).is_some());
        c.email = Some("not an address".into());
        assert_eq!(email_field(&c, 100), None);
    }
}
