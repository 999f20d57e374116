//! Every setting the binary reads, read once at start into one typed struct.
//!
//! Settings come from environment variables because that is how both the Azure Functions host
//! (app settings / `local.settings.json`) and a container hand them over. A bad value fails the
//! start with a message naming the setting; secrets are held in `SecretString` so they never reach
//! a log line through `Debug`. Values are parsed into their types here, once (the schedule, the
//! decoded webhook key); nothing downstream parses a setting again.

mod catalog;
mod crm;
mod digest;
mod inbox;

use std::collections::HashMap;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

pub use catalog::{SettingDoc, SETTINGS};
pub use crm::{DynamicsSettings, HubSpotSettings, MarketoSettings, SalesforceSettings};
pub use digest::{DigestSettings, DEFAULT_DIGEST_SCHEDULE};
pub use inbox::{InboxAuth, InboxSettings};

use crate::channel_id::ChannelId;
use crate::schedule::Schedule;
use crate::store::token::IdentityKind;
use crate::store::{RetryPolicy, StorageAccount};

#[derive(Debug, Clone, thiserror::Error)]
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
    /// The signing key, decoded from `whsec_<base64>`.
    pub key: WebhookKey,
}

/// A Standard Webhooks signing key (the bytes behind `whsec_<base64>`).
#[derive(Debug)]
pub struct WebhookKey(SecretSlice<u8>);

impl Clone for WebhookKey {
    fn clone(&self) -> Self {
        WebhookKey(self.0.expose_secret().to_vec().into())
    }
}

impl WebhookKey {
    /// Decodes `whsec_<base64>` (the prefix is optional, as in the spec's libraries).
    pub fn decode(secret: &str) -> Result<Self, String> {
        let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| "expected whsec_<base64>".to_string())?;
        if key.len() < 16 {
            return Err("the key is shorter than 16 bytes".into());
        }
        Ok(WebhookKey(key.into()))
    }

    pub fn expose_secret(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

/// The notification channels. A channel whose settings are present but invalid is not an error
/// for the process (intake must run whenever storage does): it is listed in `misconfigured`,
/// sends nothing, and its leads stay pending until the setting is fixed.
#[derive(Debug, Clone, Default)]
pub struct ChannelSettings {
    pub email: Option<EmailSettings>,
    pub webhook: Option<WebhookSettings>,
    pub teams: Option<SecretString>,
    pub slack: Option<SecretString>,
    /// The daily digest (`NOTIFY_DIGEST_TO`): not a per-lead channel, but misconfigured the same way.
    pub digest: Option<DigestSettings>,
    pub dynamics: Option<DynamicsSettings>,
    pub salesforce: Option<SalesforceSettings>,
    pub hubspot: Option<HubSpotSettings>,
    pub marketo: Option<MarketoSettings>,
    pub misconfigured: Vec<Misconfigured>,
}

/// A channel turned off by an invalid setting.
#[derive(Debug, Clone)]
pub struct Misconfigured {
    pub channel: ChannelId,
    pub error: SettingError,
}

impl ChannelSettings {
    pub fn is_empty(&self) -> bool {
        self.email.is_none()
            && self.webhook.is_none()
            && self.teams.is_none()
            && self.slack.is_none()
            && self.digest.is_none()
            && self.dynamics.is_none()
            && self.salesforce.is_none()
            && self.hubspot.is_none()
            && self.marketo.is_none()
            && self.misconfigured.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub storage: StorageAccount,
    /// How long each table call rides out transient storage failures (`STORAGE_RETRY_SECONDS`).
    pub storage_retry: RetryPolicy,
    pub table: String,
    pub ingest_key: Option<SecretString>,
    pub schedule: Schedule,
    pub channels: ChannelSettings,
    pub max_attempts: u32,
    pub notify_test_leads: bool,
    pub send_timeout: std::time::Duration,
    pub sweep_every: std::time::Duration,
    /// `NOTIFY_JOURNEY`: link each lead to the customer's earlier leads.
    pub journey: bool,
    /// `NOTIFY_IMMEDIATE`: run LeadNotify in process as soon as LeadIngest stored a lead.
    pub immediate: bool,
    /// `LEADS_RETENTION_DAYS`: leads older than this are deleted by LeadNotify; `None` keeps
    /// them forever.
    pub retention_days: Option<u32>,
    /// LeadNotify settings whose values were invalid and were replaced by their defaults
    /// (reported at start and by `handler settings`; LeadIngest is unaffected).
    pub ignored: Vec<SettingError>,
    /// Who may open the lead inbox (`INBOX_*`).
    pub inbox: InboxSettings,
}

/// `NOTIFY_SCHEDULE` when unset: every minute.
pub const DEFAULT_SCHEDULE: &str = "0 */1 * * * *";

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingError> {
        Self::from_map(&std::env::vars().collect())
    }

    /// Reads settings from a map (the environment in production, a literal map in unit tests).
    pub fn from_map(env: &HashMap<String, String>) -> Result<Self, SettingError> {
        let get = |name: &str| env.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());

        let storage = storage_from(&get)?;

        let storage_retry = RetryPolicy::with_deadline(std::time::Duration::from_secs(number(
            &get,
            "STORAGE_RETRY_SECONDS",
            RetryPolicy::DEFAULT_DEADLINE.as_secs(),
            0..=MAX_STORAGE_RETRY_SECONDS,
        )?));

        let table = get("LEADS_TABLE").unwrap_or_else(|| "MarketplaceLeads".into());
        if !valid_table_name(&table) {
            return Err(bad("LEADS_TABLE", "a table name is 3-63 letters or digits and starts with a letter"));
        }

        // LeadNotify's own settings never stop LeadIngest: an invalid one is replaced by its
        // default and reported, as an invalid channel setting disables only its channel.
        let mut lenient = Lenient { get: &get, ignored: Vec::new() };
        let max_attempts = lenient.number("NOTIFY_MAX_ATTEMPTS", 10, 1..=50) as u32;
        let send_timeout = std::time::Duration::from_secs(lenient.number("NOTIFY_SEND_TIMEOUT_SECONDS", 30, 5..=120));
        let sweep_every = std::time::Duration::from_secs(60 * lenient.number("NOTIFY_SWEEP_MINUTES", 15, 0..=1440));
        // Unset (or invalid) keeps leads forever: deleting a publisher's leads must be asked for.
        // Ten years at most, because a larger number is more likely a typo than a policy.
        let retention_days =
            get("LEADS_RETENTION_DAYS").map(|_| lenient.number("LEADS_RETENTION_DAYS", 0, 1..=3650) as u32).filter(|d| *d > 0);
        let notify_test_leads = lenient.flag("NOTIFY_TEST_LEADS", true);
        let journey = lenient.flag("NOTIFY_JOURNEY", true);
        let immediate = lenient.flag("NOTIFY_IMMEDIATE", true);
        let schedule = match get("NOTIFY_SCHEDULE").map(|text| Schedule::parse(&text)) {
            Some(Ok(schedule)) => schedule,
            other => {
                if let Some(Err(e)) = other {
                    lenient.ignored.push(bad("NOTIFY_SCHEDULE", e));
                }
                Schedule::parse(DEFAULT_SCHEDULE).expect("the default schedule is valid NCRONTAB")
            }
        };
        let ignored = lenient.ignored;

        Ok(Settings {
            storage,
            storage_retry,
            table,
            ingest_key: get("LEADS_INGEST_KEY").map(SecretString::from),
            schedule,
            channels: channels_from(&get),
            max_attempts,
            notify_test_leads,
            send_timeout,
            sweep_every,
            journey,
            immediate,
            retention_days,
            ignored,
            inbox: InboxSettings::from_get(&get),
        })
    }
}

/// The Functions host gives an HTTP request 230 s; a lead must hear 503 well before that, so the
/// retry deadline (plus one attempt's 30 s request timeout) stays far below it.
const MAX_STORAGE_RETRY_SECONDS: u64 = 60;

/// The lead table's account: `LEADS_STORAGE`, else `AzureWebJobsStorage`; each as a connection
/// string, or as the Functions identity-based settings (`<NAME>__tableServiceUri` or
/// `<NAME>__accountName`, with `__credential=managedidentity` and `__clientId` for a
/// user-assigned identity). Without `__credential` the token comes from the managed identity
/// when the platform provides one, else from `az login` (the lead tools on a laptop).
fn storage_from(get: &dyn Fn(&str) -> Option<String>) -> Result<StorageAccount, SettingError> {
    for name in STORAGE_PREFIXES {
        if let Some(connection) = get(name) {
            unresolved(name, Some(&connection))?;
            return StorageAccount::from_connection_string(&connection).map_err(|e| bad(name, e));
        }
        let setting = |part: &str| get(&format!("{name}__{part}"));
        let endpoint = match (setting("tableServiceUri"), setting("accountName")) {
            (Some(uri), _) => uri,
            (None, Some(account)) => format!("https://{account}.table.core.windows.net"),
            (None, None) => continue,
        };
        let client_id = setting("clientId");
        let kind = match setting("credential").as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("managedidentity") => IdentityKind::ManagedIdentity { client_id },
            Some("azurecli") => IdentityKind::AzureCli,
            None => IdentityKind::Auto { client_id },
            Some(_) => return Err(bad(credential_setting(name), "`managedidentity` (or `azurecli` for the lead tools), or unset")),
        };
        return StorageAccount::with_identity(name, &endpoint, kind).map_err(|e| bad(name, e));
    }
    Err(bad(
        "AzureWebJobsStorage",
        "not set: set a connection string (`UseDevelopmentStorage=true` for Azurite) or the identity-based AzureWebJobsStorage__accountName (or LEADS_STORAGE / LEADS_STORAGE__accountName)",
    ))
}

/// Where the lead table's account may be configured, in order of precedence.
const STORAGE_PREFIXES: [&str; 2] = ["LEADS_STORAGE", "AzureWebJobsStorage"];

fn credential_setting(prefix: &str) -> &'static str {
    if prefix == "LEADS_STORAGE" {
        "LEADS_STORAGE__credential"
    } else {
        "AzureWebJobsStorage__credential"
    }
}

/// A comma-separated list of e-mail addresses; empty entries are ignored.
fn addresses(name: &'static str, list: &str) -> Result<Vec<String>, SettingError> {
    let to: Vec<String> = list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    match to.iter().find(|a| a.parse::<lettre::Address>().is_err()) {
        Some(badaddr) => Err(bad(name, format!("`{badaddr}` is not an e-mail address"))),
        None => Ok(to),
    }
}

/// A `true`/`false` setting, `default` when unset.
fn flag(get: &dyn Fn(&str) -> Option<String>, name: &'static str, default: bool) -> Result<bool, SettingError> {
    match get(name).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true") | Some("1") | Some("yes") => Ok(true),
        Some("false") | Some("0") | Some("no") => Ok(false),
        Some(_) => Err(bad(name, "`true` or `false`")),
    }
}

/// Reads LeadNotify's own settings: an invalid value is replaced by the setting's default and
/// kept in `ignored`, to be reported, instead of stopping the start.
struct Lenient<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    ignored: Vec<SettingError>,
}

impl Lenient<'_> {
    fn number(&mut self, name: &'static str, default: u64, range: std::ops::RangeInclusive<u64>) -> u64 {
        number(self.get, name, default, range).unwrap_or_else(|e| {
            self.ignored.push(e);
            default
        })
    }

    fn flag(&mut self, name: &'static str, default: bool) -> bool {
        flag(self.get, name, default).unwrap_or_else(|e| {
            self.ignored.push(e);
            default
        })
    }
}

/// A whole number setting within `range`, `default` when unset.
pub(super) fn number(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, SettingError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| bad(name, format!("a whole number from {} to {}", range.start(), range.end()))),
    }
}

fn channels_from(get: &dyn Fn(&str) -> Option<String>) -> ChannelSettings {
    fn keep<T>(misconfigured: &mut Vec<Misconfigured>, channel: ChannelId, result: Result<Option<T>, SettingError>) -> Option<T> {
        result.unwrap_or_else(|error| {
            misconfigured.push(Misconfigured { channel, error });
            None
        })
    }
    let mut bad = Vec::new();
    ChannelSettings {
        email: keep(&mut bad, ChannelId::Email, email_from(get)),
        webhook: keep(&mut bad, ChannelId::Webhook, webhook_from(get)),
        teams: keep(&mut bad, ChannelId::Teams, url_setting(get, "NOTIFY_TEAMS_URL")),
        slack: keep(&mut bad, ChannelId::Slack, url_setting(get, "NOTIFY_SLACK_URL")),
        digest: keep(&mut bad, ChannelId::Digest, digest::digest_from(get)),
        dynamics: keep(&mut bad, ChannelId::Dynamics, crm::dynamics_from(get)),
        salesforce: keep(&mut bad, ChannelId::Salesforce, crm::salesforce_from(get)),
        hubspot: keep(&mut bad, ChannelId::HubSpot, crm::hubspot_from(get)),
        marketo: keep(&mut bad, ChannelId::Marketo, crm::marketo_from(get)),
        misconfigured: bad,
    }
}

fn email_from(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<EmailSettings>, SettingError> {
    for name in ["NOTIFY_EMAIL_TO", "NOTIFY_EMAIL_FROM", "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_SECURITY"] {
        unresolved(name, get(name).as_deref())?;
    }
    let email = match (get("NOTIFY_EMAIL_TO"), get("SMTP_HOST")) {
        (None, None) => None,
        // The relay may serve the digest alone.
        (None, Some(_)) if get("NOTIFY_DIGEST_TO").is_some() => None,
        (None, Some(_)) => return Err(bad("NOTIFY_EMAIL_TO", "SMTP_HOST is set but there is nobody to send to")),
        (Some(_), None) => return Err(bad("SMTP_HOST", "NOTIFY_EMAIL_TO is set but no SMTP relay is")),
        (Some(to), Some(host)) => {
            let to = addresses("NOTIFY_EMAIL_TO", &to)?;
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
    Ok(email)
}

fn webhook_from(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<WebhookSettings>, SettingError> {
    unresolved("NOTIFY_WEBHOOK_URL", get("NOTIFY_WEBHOOK_URL").as_deref())?;
    unresolved("NOTIFY_WEBHOOK_SECRET", get("NOTIFY_WEBHOOK_SECRET").as_deref())?;
    let webhook = match (get("NOTIFY_WEBHOOK_URL"), get("NOTIFY_WEBHOOK_SECRET")) {
        (None, None) => None,
        (None, Some(_)) => return Err(bad("NOTIFY_WEBHOOK_URL", "NOTIFY_WEBHOOK_SECRET is set but no URL")),
        (Some(_), None) => return Err(bad("NOTIFY_WEBHOOK_SECRET", "required with NOTIFY_WEBHOOK_URL (whsec_<base64>)")),
        (Some(url), Some(secret)) => {
            check_url("NOTIFY_WEBHOOK_URL", &url)?;
            let key = WebhookKey::decode(&secret).map_err(|e| bad("NOTIFY_WEBHOOK_SECRET", e))?;
            Some(WebhookSettings { url: url.into(), key })
        }
    };
    Ok(webhook)
}

fn url_setting(get: &dyn Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<SecretString>, SettingError> {
    match get(name) {
        None => Ok(None),
        Some(url) => {
            unresolved(name, Some(&url))?;
            check_url(name, &url)?;
            Ok(Some(url.into()))
        }
    }
}

/// App Service hands an app setting whose Key Vault reference it cannot resolve (the vault's
/// role assignment still propagating, a typo) to the app as its literal text.
fn unresolved(name: &'static str, value: Option<&str>) -> Result<(), SettingError> {
    match value {
        Some(v) if v.starts_with("@Microsoft.KeyVault(") => Err(bad(
            name,
            "is an unresolved Key Vault reference: the app could not read the secret (check the vault's role assignment for the app's identity, and the secret's name)",
        )),
        _ => Ok(()),
    }
}

/// Leads and webhook signatures must not travel in clear: `https://` only, except to loopback
/// addresses (local receivers and tests).
fn check_url(name: &'static str, value: &str) -> Result<(), SettingError> {
    let Ok(u) = url::Url::parse(value) else {
        // Never echo the value: these URLs carry tokens.
        return Err(bad(name, "not an https URL"));
    };
    let loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match u.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(bad(name, "must be https:// (plain http:// is allowed only to loopback addresses)")),
        _ => Err(bad(name, "not an https URL")),
    }
}

fn valid_table_name(name: &str) -> bool {
    (3..=63).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric()) && name.starts_with(|c: char| c.is_ascii_alphabetic())
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
        assert_eq!(s.storage_retry.deadline, std::time::Duration::from_secs(10));
        assert!(s.notify_test_leads);
        assert!(s.channels.is_empty());
        assert_eq!(s.retention_days, None, "leads are kept forever unless a retention is set");
        let kept = Settings::from_map(&env(&[("AzureWebJobsStorage", "UseDevelopmentStorage=true"), ("LEADS_RETENTION_DAYS", "730")]));
        assert_eq!(kept.unwrap().retention_days, Some(730));
    }

    #[test]
    fn missing_storage_names_the_setting() {
        let e = Settings::from_map(&env(&[])).unwrap_err();
        assert_eq!(e.name, "AzureWebJobsStorage");
    }

    #[test]
    fn bad_values_name_their_setting() {
        let base = [("AzureWebJobsStorage", "UseDevelopmentStorage=true")];
        for (name, value) in [("LEADS_TABLE", "bad-name"), ("STORAGE_RETRY_SECONDS", "61"), ("STORAGE_RETRY_SECONDS", "1.5")] {
            let mut m = env(&base);
            m.insert(name.into(), value.into());
            let e = Settings::from_map(&m).unwrap_err();
            assert_eq!(e.name, name, "{value}");
        }
    }

    #[test]
    fn a_bad_leadnotify_setting_falls_back_to_its_default_and_is_reported() {
        let base = [("AzureWebJobsStorage", "UseDevelopmentStorage=true")];
        let defaults = Settings::from_map(&env(&base)).unwrap();
        assert!(defaults.ignored.is_empty());
        for (name, value) in [
            ("NOTIFY_MAX_ATTEMPTS", "0"),
            ("NOTIFY_SEND_TIMEOUT_SECONDS", "1"),
            ("NOTIFY_SWEEP_MINUTES", "-5"),
            ("NOTIFY_TEST_LEADS", "maybe"),
            ("NOTIFY_JOURNEY", "sometimes"),
            ("NOTIFY_IMMEDIATE", "later"),
            ("NOTIFY_SCHEDULE", "every minute"),
            ("NOTIFY_SCHEDULE", "*/5 * * * *"),
            ("LEADS_RETENTION_DAYS", "0"),
            ("LEADS_RETENTION_DAYS", "3651"),
        ] {
            let mut m = env(&base);
            m.insert(name.into(), value.into());
            let s = Settings::from_map(&m).unwrap_or_else(|e| panic!("{name}={value} stopped the handler: {e}"));
            let names: Vec<&str> = s.ignored.iter().map(|e| e.name).collect();
            assert_eq!(names, [name], "{value}");
            assert_eq!(
                (s.max_attempts, s.send_timeout, s.sweep_every, s.notify_test_leads, s.journey, s.immediate, s.retention_days),
                (10, defaults.send_timeout, defaults.sweep_every, true, true, true, None),
                "{name}={value}: the default, and never a deletion"
            );
            assert_eq!(s.schedule.to_string(), defaults.schedule.to_string());
        }
    }

    #[test]
    fn a_bad_channel_setting_disables_that_channel_only() {
        let base = [("AzureWebJobsStorage", "UseDevelopmentStorage=true"), ("NOTIFY_TEAMS_URL", "https://teams.example/x")];
        for (name, value, channel) in [
            ("NOTIFY_SLACK_URL", "not a url", "Slack"),
            ("NOTIFY_SLACK_URL", "http://hooks.slack.example/services/T0", "Slack"),
            ("NOTIFY_WEBHOOK_SECRET", "whsec_abc", "Webhook"),
            ("NOTIFY_WEBHOOK_SECRET", "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/s/)", "Webhook"),
            ("SMTP_PASSWORD", "@Microsoft.KeyVault(VaultName=v;SecretName=smtp)", "Email"),
        ] {
            let mut m = env(&base);
            m.insert(name.into(), value.into());
            match channel {
                "Webhook" => m.insert("NOTIFY_WEBHOOK_URL".into(), "https://hooks.example/x".into()),
                "Email" => m.insert("NOTIFY_EMAIL_TO".into(), "a@b.example".into()),
                _ => None,
            };
            let s = Settings::from_map(&m).unwrap();
            assert_eq!(s.channels.misconfigured.len(), 1, "{name}={value}");
            let bad = &s.channels.misconfigured[0];
            assert_eq!((bad.channel.name(), bad.error.name), (channel, name), "{value}");
            assert!(!bad.error.to_string().contains("hooks.slack.example"), "values are not echoed");
            assert!(s.channels.teams.is_some(), "the other channels stay on");
        }
        let loopback = Settings::from_map(&env(&[
            ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
            ("NOTIFY_SLACK_URL", "http://127.0.0.1:9/x"),
        ]))
        .unwrap();
        assert!(loopback.channels.slack.is_some() && loopback.channels.misconfigured.is_empty());
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
    fn webhook_secrets() {
        assert!(WebhookKey::decode("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(WebhookKey::decode("whsec_not*base64").is_err());
        assert!(WebhookKey::decode("whsec_YWJj").is_err());
    }
}
