//! Who a lead is from, across leads: one customer produces several leads over time (Get it now,
//! Contact me, a purchase), through either route. Leads are linked by the normalised e-mail
//! address; the link key is a hash, so no address ever appears in a table key. Pure code.

use sha2::{Digest, Sha256};

use super::Lead;
use crate::text::hex;

/// A customer's stable id: `cus_` and 128 bits of SHA-256 over the normalised address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomerId(String);

impl CustomerId {
    pub fn for_email(email: &str) -> Option<Self> {
        let normalised = normalise_email(email)?;
        Some(CustomerId(format!("cus_{}", hex(&Sha256::digest(normalised.as_bytes())[..16]))))
    }

    /// The id versions before this one gave the address: they folded case with Unicode's
    /// `to_lowercase`, which maps look-alikes together (the Kelvin sign U+212A to `k`), so two
    /// customers could share one journey partition. Differs from [`CustomerId::for_email`] only
    /// for an address with a non-ASCII letter that has a lower case. Existing index entries stay
    /// under the old key until `leads reindex` re-files them (it writes every lead under its
    /// new key) or `leads forget` reads both; see README, "Personal data".
    pub fn legacy_for_email(email: &str) -> Option<Self> {
        normalise_email(email)?;
        let folded = email.trim().to_lowercase();
        Some(CustomerId(format!("cus_{}", hex(&Sha256::digest(folded.as_bytes())[..16]))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CustomerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Trimmed and ASCII-case-folded, nothing else folded (`Kate@` written with the Kelvin sign
/// U+212A is another address than `kate@`); `None` when it is not an address at all.
pub fn normalise_email(email: &str) -> Option<String> {
    let e = email.trim().to_ascii_lowercase();
    let (local, domain) = e.split_once('@')?;
    (!local.is_empty() && domain.contains('.') && !e.chars().any(char::is_whitespace)).then_some(e)
}

impl Lead {
    /// The customer this lead links to. Test leads and leads without an e-mail address (`.edu`
    /// customers arrive without personal data) link to no one.
    pub fn customer_id(&self) -> Option<CustomerId> {
        if self.is_test() {
            return None;
        }
        self.contact.email.as_deref().and_then(CustomerId::for_email)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_address_however_written_is_one_customer() {
        let a = CustomerId::for_email("Jana.Novak@Contoso.example").unwrap();
        assert_eq!(Some(a.clone()), CustomerId::for_email("  jana.novak@contoso.example "));
        assert_ne!(Some(a.clone()), CustomerId::for_email("jana@contoso.example"));
        assert!(a.as_str().starts_with("cus_") && a.as_str().len() == 36 && !a.as_str().contains('@'));
        for not_an_address in ["", "   ", "jana", "@contoso.example", "jana@localhost", "ja na@x.example"] {
            assert_eq!(CustomerId::for_email(not_an_address), None, "{not_an_address:?}");
        }
    }

    #[test]
    fn only_ascii_case_is_folded() {
        let kate = CustomerId::for_email("kate@contoso.example").unwrap();
        let kelvin = CustomerId::for_email("\u{212A}ate@contoso.example").unwrap();
        assert_ne!(kate, kelvin, "the Kelvin sign is not the letter k");
        assert_eq!(Some(kate.clone()), CustomerId::for_email(" KATE@Contoso.EXAMPLE"));
        assert_eq!(normalise_email("\u{212A}ATE@X.example").as_deref(), Some("\u{212A}ate@x.example"));
        assert_ne!(CustomerId::for_email("\u{130}lknur@x.example"), CustomerId::for_email("i\u{307}lknur@x.example"));
        // The old key folded both together; for ASCII addresses old and new keys are the same.
        assert_eq!(CustomerId::legacy_for_email("\u{212A}ate@contoso.example"), Some(kate.clone()));
        assert_eq!(CustomerId::legacy_for_email("Kate@contoso.example"), Some(kate));
    }

    #[test]
    fn test_leads_and_leads_without_email_link_to_no_one() {
        let lead = |body: &str| Lead::from_payload(body.as_bytes()).unwrap().0;
        assert!(lead(r#"{"UserDetails":{"Email":"a@b.example"},"LeadSource":"SPZA-INS|x.y"}"#).customer_id().is_some());
        assert!(lead(r#"{"UserDetails":{"Email":"MSFT_TEST_1@test.com"},"LeadSource":"SPZA-INS|x.y"}"#).customer_id().is_none());
        assert!(lead(r#"{"UserDetails":{"Company":"Some University"},"LeadSource":"SPZA-INS|x.y"}"#).customer_id().is_none());
    }
}
