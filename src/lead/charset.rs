//! Reading a request body as text: a byte-order mark first, then the `charset` the
//! `Content-Type` declares, else UTF-8. Labels and decoders are those of the WHATWG Encoding
//! Standard (`encoding_rs`), as browsers use them: so `iso-8859-1` reads as windows-1252, its
//! superset, and `utf-16` as UTF-16LE. Pure code.
//!
//! Why decode at all: JSON is UTF-8 by its RFC, but a sender that declares another charset still
//! sent a lead, and refusing it loses the lead (Microsoft does not resend). Decoding is strict:
//! bytes that are malformed in the chosen encoding are never patched over with U+FFFD, because a
//! silently altered name or e-mail is worse than a raw row a human can read; such bodies come
//! back [`Body::Undecodable`] and are stored as they are.

use std::borrow::Cow;

use encoding_rs::Encoding;

/// A request body, as text or as bytes nothing could read.
#[derive(Debug, PartialEq)]
pub enum Body<'a> {
    /// The body as text, and the encoding it was read in.
    Text { text: Cow<'a, str>, encoding: &'static Encoding },
    /// No BOM, declared charset or UTF-8 reads these bytes; `reason` says why, for the row.
    Undecodable { reason: String },
}

/// Reads `bytes` as text: a BOM (UTF-8, UTF-16LE, UTF-16BE) wins over the header, as in the
/// Encoding Standard's "decode"; else the `charset` parameter of `content_type`; else UTF-8.
pub fn decode<'a>(bytes: &'a [u8], content_type: Option<&str>) -> Body<'a> {
    let (encoding, rest, source) = match Encoding::for_bom(bytes) {
        Some((encoding, bom_len)) => (encoding, &bytes[bom_len..], "byte-order mark"),
        None => match content_type.and_then(declared_charset) {
            Some(label) => match Encoding::for_label(label.as_bytes()) {
                Some(encoding) => (encoding, bytes, "declared charset"),
                None => return Body::Undecodable { reason: format!("unknown charset `{}`", shorten(label)) },
            },
            None => (encoding_rs::UTF_8, bytes, "no charset declared, so UTF-8"),
        },
    };
    match encoding.decode_without_bom_handling_and_without_replacement(rest) {
        Some(text) => Body::Text { text, encoding },
        None => Body::Undecodable { reason: format!("not valid {} ({source})", encoding.name()) },
    }
}

/// The `charset` parameter of a `Content-Type` value, unquoted, if there is one.
pub fn declared_charset(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"').trim();
        (name.trim().eq_ignore_ascii_case("charset") && !value.is_empty()).then_some(value)
    })
}

/// A client's label goes into the row's reason: keep it short.
fn shorten(label: &str) -> String {
    label.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8], content_type: Option<&str>) -> (String, &'static str) {
        match decode(bytes, content_type) {
            Body::Text { text, encoding } => (text.into_owned(), encoding.name()),
            Body::Undecodable { reason } => panic!("undecodable: {reason}"),
        }
    }

    fn reason(bytes: &[u8], content_type: Option<&str>) -> String {
        match decode(bytes, content_type) {
            Body::Undecodable { reason } => reason,
            other => panic!("decoded: {other:?}"),
        }
    }

    #[test]
    fn utf8_without_charset_is_borrowed_as_is() {
        let body = "{\"LastName\":\"Novák\"}".as_bytes();
        assert!(matches!(decode(body, None), Body::Text { text: Cow::Borrowed(_), .. }));
        assert_eq!(text(body, Some("application/json")).0, "{\"LastName\":\"Novák\"}");
        assert_eq!(text(body, Some("application/json; charset=UTF-8")).1, "UTF-8");
    }

    #[test]
    fn latin1_declared_is_decoded() {
        // "Müller, Ærø" in ISO-8859-1: one byte per letter.
        let body = b"{\"n\":\"M\xfcller, \xc6r\xf8\"}";
        assert_eq!(text(body, Some("application/json; charset=iso-8859-1")).0, "{\"n\":\"Müller, Ærø\"}");
        assert_eq!(text(body, Some("application/json;charset=\"Latin1\"")).1, "windows-1252", "WHATWG label");
        assert!(reason(body, None).contains("UTF-8"), "undeclared Latin-1 is not guessed at");
    }

    #[test]
    fn byte_order_marks_win_over_the_header() {
        let utf16le: Vec<u8> = [0xff, 0xfe].into_iter().chain("{\"a\":\"ř\"}".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert_eq!(text(&utf16le, Some("application/json; charset=iso-8859-1")), ("{\"a\":\"ř\"}".into(), "UTF-16LE"));
        let utf16be: Vec<u8> = [0xfe, 0xff].into_iter().chain("{}".encode_utf16().flat_map(u16::to_be_bytes)).collect();
        assert_eq!(text(&utf16be, None), ("{}".into(), "UTF-16BE"));
        assert_eq!(text(b"\xef\xbb\xbf{}", Some("text/plain; charset=windows-1252")), ("{}".into(), "UTF-8"), "the BOM is not text");
    }

    #[test]
    fn declared_utf16_without_bom() {
        let body: Vec<u8> = "{}".encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(text(&body, Some("application/json; charset=utf-16be")).0, "{}");
    }

    #[test]
    fn what_nothing_reads_says_why() {
        assert!(reason(b"{\"a\":\"\xff\"}", None).contains("not valid UTF-8"));
        assert!(reason(b"{\"a\":\"\xff\"}", Some("application/json; charset=utf-8")).contains("declared charset"));
        assert_eq!(reason(b"{}", Some("application/json; charset=klingon")), "unknown charset `klingon`");
        // A UTF-16 BOM followed by an odd number of bytes: truncated, not guessed at.
        assert!(reason(&[0xff, 0xfe, 0x7b], None).contains("UTF-16LE"));
        assert_eq!(reason(b"{}", Some(&format!("a/b; charset={}", "x".repeat(100)))).len(), "unknown charset ``".len() + 40);
    }

    #[test]
    fn charset_parameter() {
        assert_eq!(declared_charset("application/json; charset=utf-8"), Some("utf-8"));
        assert_eq!(declared_charset("application/json;CHARSET=\"ISO-8859-1\" ; q=1"), Some("ISO-8859-1"));
        assert_eq!(declared_charset("application/json"), None);
        assert_eq!(declared_charset("application/json; charset="), None);
        assert_eq!(declared_charset("charset=utf-8"), None, "the media type is not a parameter");
    }
}
