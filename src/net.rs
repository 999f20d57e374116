//! Describing network errors for operators: reqwest's own `Display` hides the cause ("error
//! sending request" without "connection refused"), so the cause chain is kept; query strings
//! (SAS tokens, function keys) are redacted.

/// A reqwest client builder for every HTTPS client of the handler (storage, tokens, channels,
/// `send-test-lead`): it trusts the system's certificate store, or, when `SSL_CERT_FILE` is set,
/// the certificates in that file (a private CA, or Azurite's self-signed certificate on a
/// laptop), which replaces the store as it does for OpenSSL (rustls-native-certs reads it
/// too; the SMTP channel gets it that way). A file that cannot be read is reported, not ignored.
pub fn client_builder() -> Result<reqwest::ClientBuilder, String> {
    let builder = reqwest::Client::builder();
    let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) else { return Ok(builder) };
    let pem = std::fs::read(&path).map_err(|e| format!("SSL_CERT_FILE {}: {e}", path.to_string_lossy()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("SSL_CERT_FILE {}: {e}", path.to_string_lossy()))?;
    Ok(certs.into_iter().fold(builder, |b, c| b.add_root_certificate(c)))
}

/// A reqwest error with its cause chain, any URL's query string replaced by `?…`.
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    redact_query(&text)
}

/// Never echo a query string: SAS tokens and function keys travel there. Only the query itself
/// is cut (up to the next space, quote or bracket), so the cause that follows it stays.
pub fn redact_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_query = false;
    for c in text.chars() {
        if in_query {
            if c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>') {
                in_query = false;
                out.push(c);
            }
        } else if c == '?' {
            in_query = true;
            out.push_str("?…");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_go_the_cause_stays() {
        let text = "error sending request for url (http://127.0.0.1:1/t()?sig=SECRET&se=1): connection refused";
        let shown = redact_query(text);
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.ends_with("): connection refused"), "{shown}");
    }
}
