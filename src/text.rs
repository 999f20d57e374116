//! Small text helpers every layer shares. Pure code.

/// `s` cut to at most `max_chars` characters (on a character boundary), with `…` when cut.
pub fn truncate_chars(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// Text from outside (customers, receivers) on one line, safe to render: every character a mail
/// client, terminal or card renderer may break a line at (CR, LF, VT, FF, NEL U+0085,
/// LINE/PARAGRAPH SEPARATOR U+2028/U+2029) and every other control character, terminal escape
/// sequences included, becomes a space, so no value can fake a line of its own
/// (`E-mail: attacker@evil.example`) or drive the terminal. Bidirectional controls are dropped.
pub fn one_line(s: &str) -> String {
    s.chars().filter(|c| !is_bidi_control(*c)).map(|c| if breaks_line(c) { ' ' } else { c }).collect()
}

/// A character that reorders how the text after it is displayed (the Unicode bidirectional
/// embeddings, overrides, isolates and marks): a company name carrying U+202E could make the
/// rest of a subject line or a terminal row read backwards ("Trojan Source"). Right-to-left
/// names display correctly without them.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A character that ends a line somewhere customer text is shown, or any other control character.
pub fn breaks_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Lower-case hex of bytes (digests shown as keys and ids).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_and_hex() {
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcdé", 3), "ab…");
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(one_line("a\u{1b}[2Jb\u{7}\u{2028}c"), "a [2Jb  c");
        assert_eq!(one_line("Acme\u{202E}gnp.exe\u{2066}x\u{2069}\u{200F}"), "Acmegnp.exex");
        assert_eq!(one_line("שלום Contoso"), "שלום Contoso", "right-to-left text itself is kept");
    }
}
