//! The per-lead channels' settings (e-mail, webhook, Teams, Slack; the CRMs in `crm.rs`, the
//! digest in `digest.rs`). A channel whose settings are present but invalid is not an error for
//! the process: it is listed as [`Misconfigured`], sends nothing, and its leads stay pending.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use super::values::{addresses, bad, check_url, unresolved, SettingError};

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

pub(super) fn webhook_from(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<WebhookSettings>, SettingError> {
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

pub(super) fn url_setting(get: &dyn Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<SecretString>, SettingError> {
    match get(name) {
        None => Ok(None),
        Some(url) => {
            unresolved(name, Some(&url))?;
            check_url(name, &url)?;
            Ok(Some(url.into()))
        }
    }
}
