//! Every setting the binary reads, read once at start into typed structs, one per concern:
//! [`StorageSettings`], [`NotifySettings`], [`ChannelSettings`] (and the digest and CRMs in their
//! own files). Each setting is defined once in [`definition`] (name, default, help, validity,
//! secret); the parsers here read names, defaults and ranges from there.
//!
//! Settings come from environment variables because that is how both the Azure Functions host
//! (app settings / `local.settings.json`) and a container hand them over. What a bad value does
//! depends on what it would break:
//! - storage (the account, `LEADS_TABLE`, `STORAGE_RETRY_SECONDS`): the start fails with a message
//!   naming the setting, since nothing can run without the table;
//! - LeadNotify's own (`NOTIFY_MAX_ATTEMPTS`, `NOTIFY_SCHEDULE`, …): replaced by the default and
//!   listed in [`Settings::replaced_by_default`], reported at start: LeadIngest keeps running;
//! - a channel's: that channel is [`Misconfigured`] (its leads stay pending), the rest runs.
//!
//! Secrets are held in `SecretString` so they never reach a log line through `Debug`. Values are
//! parsed into their types here, once; nothing downstream parses a setting again.

mod channels;
mod crm;
pub mod definition;
mod digest;
mod inbox;
mod values;

use std::collections::HashMap;

use secrecy::SecretString;

use channels::{email_from, url_setting, webhook_from};
pub use channels::{EmailSettings, SmtpSecurity, WebhookKey, WebhookSettings};
pub use crm::{DynamicsSettings, HubSpotSettings, MarketoSettings, SalesforceSettings};
use definition::*;
pub use definition::{Setting, Valid};
pub use digest::DigestSettings;
pub use inbox::{InboxAuth, InboxSettings};
pub use values::SettingError;
use values::{bad, flag, number, unresolved};

use crate::channel_id::ChannelId;
use crate::schedule::Schedule;
use crate::store::token::IdentityKind;
use crate::store::{RetryPolicy, StorageAccount};

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

/// Where the leads live.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    pub account: StorageAccount,
    /// How long each table call rides out transient storage failures (`STORAGE_RETRY_SECONDS`).
    pub retry: RetryPolicy,
    /// `LEADS_TABLE`.
    pub table: String,
}

impl StorageSettings {
    /// A REST client for the lead table.
    pub fn client(&self) -> Result<crate::store::TableClient, crate::store::StoreError> {
        crate::store::TableClient::new(self.account.clone(), &self.table, self.retry)
    }
}

/// How LeadNotify runs (its channels are in [`ChannelSettings`]).
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// `NOTIFY_SCHEDULE`: the timer.
    pub schedule: Schedule,
    pub max_attempts: u32,
    pub notify_test_leads: bool,
    pub send_timeout: std::time::Duration,
    pub sweep_every: std::time::Duration,
    /// `NOTIFY_JOURNEY`: link each lead to the customer's earlier leads.
    pub journey: bool,
    /// `NOTIFY_IMMEDIATE`: deliver each new lead in process as soon as LeadIngest stored it.
    pub immediate: bool,
    /// `LEADS_RETENTION_DAYS`: leads older than this are deleted by LeadNotify; `None` keeps
    /// them forever.
    pub retention_days: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub storage: StorageSettings,
    /// `LEADS_INGEST_KEY`: the key of `handler serve`.
    pub ingest_key: Option<SecretString>,
    pub notify: NotifySettings,
    pub channels: ChannelSettings,
    /// Who may open the lead inbox (`INBOX_*`).
    pub inbox: InboxSettings,
    /// LeadNotify settings whose values were invalid and were replaced by their defaults
    /// (reported at start and by `handler settings`; LeadIngest is unaffected).
    pub replaced_by_default: Vec<SettingError>,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingError> {
        Self::from_map(&std::env::vars().collect())
    }

    /// Reads settings from a map (the environment in production, a literal map in unit tests).
    pub fn from_map(env: &HashMap<String, String>) -> Result<Self, SettingError> {
        let get = |name: &str| env.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());

        let account = storage_from(&get)?;
        // The Functions host gives an HTTP request 230 s; a lead must hear 503 well before that,
        // so the retry deadline (plus one attempt's 30 s request timeout) stays far below it.
        let retry = RetryPolicy::with_deadline(std::time::Duration::from_secs(number(&get, &STORAGE_RETRY_SECONDS)?));
        let table = get(LEADS_TABLE.name).unwrap_or_else(|| LEADS_TABLE.default.into());
        if !valid_table_name(&table) {
            return Err(bad(LEADS_TABLE.name, "a table name is 3-63 letters or digits and starts with a letter"));
        }

        // LeadNotify's own settings never stop LeadIngest: an invalid one is replaced by its
        // default and reported, as an invalid channel setting disables only its channel.
        let mut lenient = Lenient { get: &get, replaced: Vec::new() };
        let max_attempts = lenient.number(&NOTIFY_MAX_ATTEMPTS) as u32;
        let send_timeout = std::time::Duration::from_secs(lenient.number(&NOTIFY_SEND_TIMEOUT_SECONDS));
        let sweep_every = std::time::Duration::from_secs(60 * lenient.number(&NOTIFY_SWEEP_MINUTES));
        // Unset (or invalid) keeps leads forever: deleting a publisher's leads must be asked for.
        // Ten years at most, because a larger number is more likely a typo than a policy.
        let retention_days = get(LEADS_RETENTION_DAYS.name).map(|_| lenient.number(&LEADS_RETENTION_DAYS) as u32).filter(|d| *d > 0);
        let notify_test_leads = lenient.flag(&NOTIFY_TEST_LEADS);
        let journey = lenient.flag(&NOTIFY_JOURNEY);
        let immediate = lenient.flag(&NOTIFY_IMMEDIATE);
        let schedule = match get(NOTIFY_SCHEDULE.name).map(|text| Schedule::parse(&text)) {
            Some(Ok(schedule)) => schedule,
            other => {
                if let Some(Err(e)) = other {
                    lenient.replaced.push(bad(NOTIFY_SCHEDULE.name, e));
                }
                Schedule::parse(NOTIFY_SCHEDULE.default).expect("the default schedule is valid NCRONTAB (tested)")
            }
        };
        let replaced_by_default = lenient.replaced;

        Ok(Settings {
            storage: StorageSettings { account, retry, table },
            ingest_key: get(LEADS_INGEST_KEY.name).map(SecretString::from),
            notify: NotifySettings {
                schedule,
                max_attempts,
                notify_test_leads,
                send_timeout,
                sweep_every,
                journey,
                immediate,
                retention_days,
            },
            channels: channels_from(&get),
            inbox: InboxSettings::from_get(&get),
            replaced_by_default,
        })
    }
}

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

/// Reads LeadNotify's own settings: an invalid value is replaced by the setting's default and
/// kept in `replaced`, to be reported, instead of stopping the start.
struct Lenient<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    replaced: Vec<SettingError>,
}

impl Lenient<'_> {
    fn number(&mut self, setting: &Setting) -> u64 {
        number(self.get, setting).unwrap_or_else(|e| {
            self.replaced.push(e);
            setting.default_number()
        })
    }

    fn flag(&mut self, setting: &Setting) -> bool {
        flag(self.get, setting).unwrap_or_else(|e| {
            self.replaced.push(e);
            setting.default_flag()
        })
    }
}

fn valid_table_name(name: &str) -> bool {
    (3..=63).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric()) && name.starts_with(|c: char| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests;
