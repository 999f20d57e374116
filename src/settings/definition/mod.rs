//! Every setting the binary reads, each defined once (one file per concern below): its name, default, help, what a valid value
//! is, and whether it is a secret. The parsers (`settings/mod.rs`, `crm.rs`, `digest.rs`) read
//! names, defaults and ranges from here; `handler settings` prints [`ALL`]; the docs test checks
//! that the README's settings table lists each one with this default; the infra test compares
//! them with the app settings the template sets.

/// What a valid value is (the parser enforces it; `handler settings` and the tests read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Valid {
    /// Free text (a connection string, a name, an id).
    Text,
    /// A whole number in `min..=max`.
    Number { min: u64, max: u64 },
    /// `true` or `false` (also `1`/`0`, `yes`/`no`).
    Flag,
    /// One of these words, any case.
    OneOf(&'static [&'static str]),
    /// NCRONTAB, six fields.
    Schedule,
    /// Comma-separated e-mail addresses.
    Addresses,
    /// `https://` (plain `http://` only to loopback).
    HttpsUrl,
    /// An Azure table name.
    TableName,
}

/// One setting's definition.
#[derive(Debug)]
pub struct Setting {
    pub name: &'static str,
    /// The value used when the setting is unset (`""`: none).
    pub default: &'static str,
    pub secret: bool,
    pub help: &'static str,
    pub valid: Valid,
}

impl Setting {
    /// The default of a number setting (0 when it has none).
    pub fn default_number(&self) -> u64 {
        self.default.parse().unwrap_or(0)
    }

    /// The range of a number setting.
    pub fn range(&self) -> std::ops::RangeInclusive<u64> {
        match self.valid {
            Valid::Number { min, max } => min..=max,
            _ => 0..=u64::MAX,
        }
    }

    /// The default of a flag setting.
    pub fn default_flag(&self) -> bool {
        self.default == "true"
    }
}

mod channels;
mod crm;
mod host;
mod notify;

pub use channels::*;
pub use crm::*;
pub use host::*;
pub use notify::*;

/// Every setting, in the order `handler settings` prints them.
pub const ALL: &[&Setting] = &[
    &AZURE_WEB_JOBS_STORAGE,
    &LEADS_STORAGE,
    &AZURE_WEB_JOBS_STORAGE_ACCOUNT_NAME,
    &AZURE_WEB_JOBS_STORAGE_TABLE_SERVICE_URI,
    &AZURE_WEB_JOBS_STORAGE_CREDENTIAL,
    &AZURE_WEB_JOBS_STORAGE_CLIENT_ID,
    &LEADS_STORAGE_ACCOUNT_NAME,
    &LEADS_STORAGE_TABLE_SERVICE_URI,
    &LEADS_STORAGE_CREDENTIAL,
    &LEADS_STORAGE_CLIENT_ID,
    &LEADS_TABLE,
    &STORAGE_RETRY_SECONDS,
    &LEADS_INGEST_KEY,
    &INBOX_KEY,
    &INBOX_AUTH,
    &INBOX_TENANT_ID,
    &WEBSITE_AUTH_ENABLED,
    &FUNCTIONS_CUSTOMHANDLER_PORT,
    &NOTIFY_SCHEDULE,
    &NOTIFY_EMAIL_TO,
    &NOTIFY_EMAIL_FROM,
    &SMTP_HOST,
    &SMTP_PORT,
    &SMTP_USERNAME,
    &SMTP_PASSWORD,
    &SMTP_SECURITY,
    &NOTIFY_DIGEST_TO,
    &NOTIFY_DIGEST_DELAY_SECONDS,
    &NOTIFY_DIGEST_SCHEDULE,
    &NOTIFY_WEBHOOK_URL,
    &NOTIFY_WEBHOOK_SECRET,
    &NOTIFY_TEAMS_URL,
    &NOTIFY_SLACK_URL,
    &DYNAMICS_URL,
    &DYNAMICS_TENANT_ID,
    &DYNAMICS_CLIENT_ID,
    &DYNAMICS_CLIENT_SECRET,
    &DYNAMICS_AUTHORITY_HOST,
    &SALESFORCE_DOMAIN,
    &SALESFORCE_CLIENT_ID,
    &SALESFORCE_CLIENT_SECRET,
    &SALESFORCE_EXTERNAL_ID_FIELD,
    &HUBSPOT_TOKEN,
    &HUBSPOT_BASE_URL,
    &MARKETO_BASE_URL,
    &MARKETO_CLIENT_ID,
    &MARKETO_CLIENT_SECRET,
    &NOTIFY_MAX_ATTEMPTS,
    &NOTIFY_TEST_LEADS,
    &NOTIFY_SEND_TIMEOUT_SECONDS,
    &NOTIFY_SWEEP_MINUTES,
    &NOTIFY_JOURNEY,
    &NOTIFY_IMMEDIATE,
    &LEADS_RETENTION_DAYS,
    &SSL_CERT_FILE,
    &RUST_LOG,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_valid_under_its_own_rule() {
        for s in ALL {
            if s.default.is_empty() {
                continue;
            }
            match s.valid {
                Valid::Number { min, max } => {
                    let n: u64 = s.default.parse().unwrap_or_else(|_| panic!("{}: default is not a number", s.name));
                    assert!((min..=max).contains(&n), "{}", s.name);
                }
                Valid::Flag => assert!(matches!(s.default, "true" | "false"), "{}", s.name),
                Valid::OneOf(words) => assert!(words.contains(&s.default), "{}", s.name),
                Valid::Schedule => assert!(crate::schedule::Schedule::parse(s.default).is_ok(), "{}", s.name),
                Valid::HttpsUrl => assert!(s.default.starts_with("https://"), "{}", s.name),
                Valid::TableName | Valid::Text | Valid::Addresses => {}
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
