//! The per-lead channels' settings (e-mail, webhook, Teams, Slack; the CRMs in `crm.rs`, the
//! digest in `digest.rs`). A channel whose settings are present but invalid is not an error for
//! the process: it is listed as [`Misconfigured`], sends nothing, and its leads stay pending.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use super::{
    bad, crm, digest, unresolved, DigestSettings, DynamicsSettings, HubSpotSettings, MarketoSettings, SalesforceSettings, SettingError,
};
use crate::channel_id::ChannelId;

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

/// A comma-separated list of e-mail addresses; empty entries are ignored.
pub(super) fn addresses(name: &'static str, list: &str) -> Result<Vec<String>, SettingError> {
    let to: Vec<String> = list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    match to.iter().find(|a| a.parse::<lettre::Address>().is_err()) {
        Some(badaddr) => Err(bad(name, format!("`{badaddr}` is not an e-mail address"))),
        None => Ok(to),
    }
}

/// Leads and webhook signatures must not travel in clear: `https://` only, except to loopback
/// addresses (local receivers and tests).
pub(super) fn check_url(name: &'static str, value: &str) -> Result<(), SettingError> {
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

pub(super) fn channels_from(get: &dyn Fn(&str) -> Option<String>) -> ChannelSettings {
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

pub(super) fn email_from(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<EmailSettings>, SettingError> {
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
