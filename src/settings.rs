//! Every setting the binary reads, read once at start into one typed struct.
//!
//! Settings come from environment variables because that is how both the Azure Functions host
//! (app settings / `local.settings.json`) and a container hand them over. A bad value fails the
//! start with a message naming the setting; secrets are held in `SecretString` so they never reach
//! a log line through `Debug`.

use std::collections::HashMap;

use secrecy::{ExposeSecret, SecretString};

use crate::store::StorageAccount;

/// One documented setting: the README's settings table and `handler settings` are generated from
/// this list, and the infra test compares it with the app settings the template sets.
pub struct SettingDoc {
    pub name: &'static str,
    pub default: &'static str,
    pub secret: bool,
    pub help: &'static str,
}

pub const SETTINGS: &[SettingDoc] = &[
    SettingDoc { name: "AzureWebJobsStorage", default: "", secret: true, help: "Storage connection string of the Functions app; `UseDevelopmentStorage=true` means local Azurite. The lead table lives here unless LEADS_STORAGE is set." },
    SettingDoc { name: "LEADS_STORAGE", default: "", secret: true, help: "Optional separate connection string for the lead table (e.g. the account you gave Partner Center's \"Azure Table\" destination)." },
    SettingDoc { name: "LEADS_TABLE", default: "MarketplaceLeads", secret: false, help: "Table that holds the leads; the same name Microsoft writes to with the \"Azure Table\" destination." },
    SettingDoc { name: "LEADS_INGEST_KEY", default: "", secret: true, help: "Key callers must pass as `?code=` in `handler serve` mode (required there). Under the Functions host the function key does this job." },
    SettingDoc { name: "FUNCTIONS_CUSTOMHANDLER_PORT", default: "", secret: false, help: "Port the Functions host tells the handler to listen on (set by the host; you never set it)." },
    SettingDoc { name: "NOTIFY_SCHEDULE", default: "0 */1 * * * *", secret: false, help: "NCRONTAB schedule of LeadNotify (six fields, seconds first)." },
    SettingDoc { name: "NOTIFY_EMAIL_TO", default: "", secret: false, help: "Comma-separated recipients of lead e-mails. E-mail is on when this and SMTP_HOST are set." },
    SettingDoc { name: "NOTIFY_EMAIL_FROM", default: "", secret: false, help: "Sender address of lead e-mails (required when e-mail is on)." },
    SettingDoc { name: "SMTP_HOST", default: "", secret: false, help: "SMTP relay host, e.g. smtp.office365.com, smtp.sendgrid.net, smtp.azurecomm.net." },
    SettingDoc { name: "SMTP_PORT", default: "587", secret: false, help: "SMTP relay port (587 for starttls, 465 for tls)." },
    SettingDoc { name: "SMTP_USERNAME", default: "", secret: false, help: "SMTP user name (no authentication when empty)." },
    SettingDoc { name: "SMTP_PASSWORD", default: "", secret: true, help: "SMTP password or API key." },
    SettingDoc { name: "SMTP_SECURITY", default: "starttls", secret: false, help: "`starttls` (required STARTTLS), `tls` (implicit TLS) or `none` (plain text, local relays only)." },
    SettingDoc { name: "NOTIFY_WEBHOOK_URL", default: "", secret: true, help: "HTTPS URL that receives a Standard Webhooks `lead.created` POST per lead." },
    SettingDoc { name: "NOTIFY_WEBHOOK_SECRET", default: "", secret: true, help: "Signing secret `whsec_<base64>` (required with NOTIFY_WEBHOOK_URL)." },
    SettingDoc { name: "NOTIFY_TEAMS_URL", default: "", secret: true, help: "Teams Workflows \"post to a channel when a webhook request is received\" URL." },
    SettingDoc { name: "NOTIFY_SLACK_URL", default: "", secret: true, help: "Slack incoming-webhook URL." },
    SettingDoc { name: "NOTIFY_MAX_ATTEMPTS", default: "10", secret: false, help: "Attempts per lead and channel before the channel is marked failed (1-50)." },
    SettingDoc { name: "NOTIFY_TEST_LEADS", default: "true", secret: false, help: "Notify Microsoft's `MSFT_TEST` validation leads (marked as tests); `false` skips them." },
    SettingDoc { name: "RUST_LOG", default: "info", secret: false, help: "Log filter (`info`, `debug`, `marketplace_leads=debug`, ...). Contact details are logged only at debug." },
];

#[derive(Debug, thiserror::Error)]
#[error("setting {name}: {problem}")]
pub struct SettingError {
    pub name: &'static str,
    pub problem: String,
}

fn bad(name: &'static str, problem: impl Into<String>) -> SettingError {
    SettingError { name, problem: problem.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    StartTls,
    Tls,
    None,
}

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub to: Vec<String>,
    pub from: String,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub security: SmtpSecurity,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: SecretString,
    /// `whsec_<base64>`, checked at start.
    pub secret: SecretString,
}

#[derive(Debug, Clone, Default)]
pub struct ChannelSettings {
    pub email: Option<EmailSettings>,
    pub webhook: Option<WebhookSettings>,
    pub teams: Option<SecretString>,
    pub slack: Option<SecretString>,
}

impl ChannelSettings {
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.webhook.is_none() && self.teams.is_none() && self.slack.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub storage: StorageAccount,
    pub table: String,
    pub ingest_key: Option<SecretString>,
    pub schedule: String,
    pub channels: ChannelSettings,
    pub max_attempts: u32,
    pub notify_test_leads: bool,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingError> {
        Self::from_map(&std::env::vars().collect())
    }

    /// Reads settings from a map (the environment in production, a literal map in unit tests).
    pub fn from_map(env: &HashMap<String, String>) -> Result<Self, SettingError> {
        let get = |name: &str| env.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());

        let (storage_name, connection) = match get("LEADS_STORAGE") {
            Some(c) => ("LEADS_STORAGE", c),
            None => match get("AzureWebJobsStorage") {
                Some(c) => ("AzureWebJobsStorage", c),
                None => {
                    return Err(bad("AzureWebJobsStorage", "not set (set it or LEADS_STORAGE; `UseDevelopmentStorage=true` for Azurite)"))
                }
            },
        };
        let storage = StorageAccount::from_connection_string(&connection).map_err(|e| bad(storage_name, e))?;

        let table = get("LEADS_TABLE").unwrap_or_else(|| "MarketplaceLeads".into());
        if !valid_table_name(&table) {
            return Err(bad("LEADS_TABLE", "a table name is 3-63 letters or digits and starts with a letter"));
        }

        let schedule = get("NOTIFY_SCHEDULE").unwrap_or_else(|| "0 */1 * * * *".into());
        crate::schedule::Schedule::parse(&schedule).map_err(|e| bad("NOTIFY_SCHEDULE", e))?;

        let max_attempts = match get("NOTIFY_MAX_ATTEMPTS") {
            None => 10,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=50).contains(n))
                .ok_or_else(|| bad("NOTIFY_MAX_ATTEMPTS", "a whole number from 1 to 50"))?,
        };
        let notify_test_leads = match get("NOTIFY_TEST_LEADS").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("true") | Some("1") | Some("yes") => true,
            Some("false") | Some("0") | Some("no") => false,
            Some(_) => return Err(bad("NOTIFY_TEST_LEADS", "`true` or `false`")),
        };

        Ok(Settings {
            storage,
            table,
            ingest_key: get("LEADS_INGEST_KEY").map(SecretString::from),
            schedule,
            channels: channels_from(&get)?,
            max_attempts,
            notify_test_leads,
        })
    }
}

fn channels_from(get: &dyn Fn(&str) -> Option<String>) -> Result<ChannelSettings, SettingError> {
    let email = match (get("NOTIFY_EMAIL_TO"), get("SMTP_HOST")) {
        (None, None) => None,
        (None, Some(_)) => return Err(bad("NOTIFY_EMAIL_TO", "SMTP_HOST is set but there is nobody to send to")),
        (Some(_), None) => return Err(bad("SMTP_HOST", "NOTIFY_EMAIL_TO is set but no SMTP relay is")),
        (Some(to), Some(host)) => {
            let to: Vec<String> = to.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            if let Some(badaddr) = to.iter().find(|a| a.parse::<lettre::Address>().is_err()) {
                return Err(bad("NOTIFY_EMAIL_TO", format!("`{badaddr}` is not an e-mail address")));
            }
            let from = get("NOTIFY_EMAIL_FROM").ok_or_else(|| bad("NOTIFY_EMAIL_FROM", "required when e-mail is on"))?;
            if from.parse::<lettre::message::Mailbox>().is_err() {
                return Err(bad("NOTIFY_EMAIL_FROM", "not an e-mail address"));
            }
            let security = match get("SMTP_SECURITY").as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("starttls") => SmtpSecurity::StartTls,
                Some("tls") => SmtpSecurity::Tls,
                Some("none") => SmtpSecurity::None,
                Some(_) => return Err(bad("SMTP_SECURITY", "one of `starttls`, `tls`, `none`")),
            };
            let port = match get("SMTP_PORT") {
                None => {
                    if security == SmtpSecurity::Tls {
                        465
                    } else {
                        587
                    }
                }
                Some(p) => p.parse().map_err(|_| bad("SMTP_PORT", "a port number"))?,
            };
            Some(EmailSettings {
                to,
                from,
                host,
                port,
                username: get("SMTP_USERNAME"),
                password: get("SMTP_PASSWORD").map(SecretString::from),
                security,
            })
        }
    };

    let webhook = match (get("NOTIFY_WEBHOOK_URL"), get("NOTIFY_WEBHOOK_SECRET")) {
        (None, None) => None,
        (None, Some(_)) => return Err(bad("NOTIFY_WEBHOOK_URL", "NOTIFY_WEBHOOK_SECRET is set but no URL")),
        (Some(_), None) => return Err(bad("NOTIFY_WEBHOOK_SECRET", "required with NOTIFY_WEBHOOK_URL (whsec_<base64>)")),
        (Some(url), Some(secret)) => {
            check_url("NOTIFY_WEBHOOK_URL", &url)?;
            crate::notify::webhook::decode_secret(&secret).map_err(|e| bad("NOTIFY_WEBHOOK_SECRET", e))?;
            Some(WebhookSettings { url: url.into(), secret: secret.into() })
        }
    };
    let url_setting = |name: &'static str| -> Result<Option<SecretString>, SettingError> {
        match get(name) {
            None => Ok(None),
            Some(url) => {
                check_url(name, &url)?;
                Ok(Some(url.into()))
            }
        }
    };
    Ok(ChannelSettings { email, webhook, teams: url_setting("NOTIFY_TEAMS_URL")?, slack: url_setting("NOTIFY_SLACK_URL")? })
}

fn check_url(name: &'static str, value: &str) -> Result<(), SettingError> {
    match url::Url::parse(value) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(()),
        // Never echo the value: these URLs carry tokens.
        _ => Err(bad(name, "not an http(s) URL")),
    }
}

fn valid_table_name(name: &str) -> bool {
    (3..=63).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric()) && name.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// Compares a presented key with the configured one in constant time.
pub fn key_matches(expected: &SecretString, presented: &str) -> bool {
    use sha2::Digest;
    use subtle::ConstantTimeEq;
    // Hash both sides so the comparison does not leak the key's length either.
    let a = sha2::Sha256::digest(expected.expose_secret().as_bytes());
    let b = sha2::Sha256::digest(presented.as_bytes());
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_with_development_storage() {
        let s = Settings::from_map(&env(&[("AzureWebJobsStorage", "UseDevelopmentStorage=true")])).unwrap();
        assert_eq!(s.table, "MarketplaceLeads");
        assert_eq!(s.max_attempts, 10);
        assert!(s.notify_test_leads);
        assert!(s.channels.is_empty());
    }

    #[test]
    fn missing_storage_names_the_setting() {
        let e = Settings::from_map(&env(&[])).unwrap_err();
        assert_eq!(e.name, "AzureWebJobsStorage");
    }

    #[test]
    fn bad_values_name_their_setting() {
        let base = [("AzureWebJobsStorage", "UseDevelopmentStorage=true")];
        for (name, value) in [
            ("LEADS_TABLE", "bad-name"),
            ("NOTIFY_MAX_ATTEMPTS", "0"),
            ("NOTIFY_TEST_LEADS", "maybe"),
            ("NOTIFY_SCHEDULE", "every minute"),
            ("NOTIFY_SLACK_URL", "not a url"),
            ("NOTIFY_WEBHOOK_SECRET", "whsec_abc"),
        ] {
            let mut m = env(&base);
            m.insert(name.into(), value.into());
            if name == "NOTIFY_WEBHOOK_SECRET" {
                m.insert("NOTIFY_WEBHOOK_URL".into(), "https://hooks.example/x".into());
            }
            let e = Settings::from_map(&m).unwrap_err();
            assert_eq!(e.name, name, "{value}");
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let s = Settings::from_map(&env(&[
            ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
            ("NOTIFY_SLACK_URL", "https://hooks.slack.example/services/T0/B0/SECRETTOKEN"),
            ("LEADS_INGEST_KEY", "topsecretkey"),
        ]))
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("SECRETTOKEN") && !shown.contains("topsecretkey"), "{shown}");
        assert!(!shown.contains("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq"), "{shown}");
    }

    #[test]
    fn key_comparison() {
        let k = SecretString::from("abc123");
        assert!(key_matches(&k, "abc123"));
        assert!(!key_matches(&k, "abc12"));
        assert!(!key_matches(&k, ""));
    }
}
