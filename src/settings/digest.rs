//! The daily digest's settings: `NOTIFY_DIGEST_TO` and `NOTIFY_DIGEST_SCHEDULE`, plus the relay
//! of the e-mail channel.
//!
//! The digest shares the e-mail channel's relay and sender (`SMTP_*`, `NOTIFY_EMAIL_FROM`) rather
//! than having its own: a publisher has one relay, and two copies of its password would drift.
//! The shared settings are parsed by the same code as the e-mail channel's, but validated for each
//! on its own: a bad `SMTP_PORT` disables both (each with its ERROR naming the setting), while a bad
//! `NOTIFY_DIGEST_TO`, `NOTIFY_DIGEST_SCHEDULE` or `NOTIFY_DIGEST_DELAY_SECONDS` disables the digest only, and a bad
//! `NOTIFY_EMAIL_TO` the per-lead e-mail only. Either may be on without the other.

use super::channels::{email_from, EmailSettings};
use super::definition::{NOTIFY_DIGEST_DELAY_SECONDS, NOTIFY_DIGEST_SCHEDULE};
use super::values::{addresses, bad, number, unresolved, SettingError};
use crate::schedule::Schedule;

#[derive(Debug, Clone)]
pub struct DigestSettings {
    /// The relay and sender of the e-mail channel, with the digest's recipients as `to`.
    pub email: EmailSettings,
    /// When a period ends.
    pub schedule: Schedule,
    /// How long after a tick its digest waits (`NOTIFY_DIGEST_DELAY_SECONDS`): leads created
    /// before the tick may still be on their way into the table (a LeadIngest insert riding out
    /// a storage blip, a row Microsoft writes a little after creating the lead).
    pub delay: std::time::Duration,
}

/// `None` when `NOTIFY_DIGEST_TO` is unset (a schedule alone turns nothing on: the sample
/// settings carry the default schedule).
pub(super) fn digest_from(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<DigestSettings>, SettingError> {
    unresolved("NOTIFY_DIGEST_TO", get("NOTIFY_DIGEST_TO").as_deref())?;
    let Some(to) = get("NOTIFY_DIGEST_TO") else { return Ok(None) };
    if addresses("NOTIFY_DIGEST_TO", &to)?.is_empty() {
        return Err(bad("NOTIFY_DIGEST_TO", "no address in the list"));
    }
    if get("SMTP_HOST").is_none() {
        return Err(bad("SMTP_HOST", "NOTIFY_DIGEST_TO is set but no SMTP relay is (the digest uses the SMTP_* settings)"));
    }
    let text = get(NOTIFY_DIGEST_SCHEDULE.name).unwrap_or_else(|| NOTIFY_DIGEST_SCHEDULE.default.into());
    let schedule = Schedule::parse(&text).map_err(|e| bad("NOTIFY_DIGEST_SCHEDULE", e))?;
    if schedule.next_after(chrono::Utc::now()).is_none() {
        return Err(bad("NOTIFY_DIGEST_SCHEDULE", format!("`{text}` never comes round (no such date)")));
    }
    let delay = std::time::Duration::from_secs(number(get, &NOTIFY_DIGEST_DELAY_SECONDS)?);
    // The e-mail channel's parser with the digest's recipients in place of NOTIFY_EMAIL_TO, so
    // the relay settings mean exactly the same for both.
    let with_digest_to = |name: &str| if name == "NOTIFY_EMAIL_TO" { Some(to.clone()) } else { get(name) };
    let email = email_from(&with_digest_to)?
        .ok_or_else(|| bad("SMTP_HOST", "NOTIFY_DIGEST_TO is set but no SMTP relay is (the digest uses the SMTP_* settings)"))?;
    Ok(Some(DigestSettings { email, schedule, delay }))
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        m.insert("AzureWebJobsStorage".into(), "UseDevelopmentStorage=true".into());
        Settings::from_map(&m).unwrap()
    }

    const RELAY: [(&str, &str); 3] = [("SMTP_HOST", "127.0.0.1"), ("SMTP_SECURITY", "none"), ("NOTIFY_EMAIL_FROM", "leads@example.com")];

    #[test]
    fn digest_alone_needs_no_per_lead_email() {
        let mut pairs = RELAY.to_vec();
        pairs.push(("NOTIFY_DIGEST_TO", "boss@example.com, sales@example.com"));
        let s = settings(&pairs);
        let d = s.channels.digest.expect("digest on");
        assert_eq!(d.email.to, ["boss@example.com", "sales@example.com"]);
        assert_eq!(d.schedule.to_string(), super::NOTIFY_DIGEST_SCHEDULE.default);
        assert_eq!(d.delay.as_secs(), super::NOTIFY_DIGEST_DELAY_SECONDS.default_number());
        assert!(s.channels.email.is_none() && s.channels.misconfigured.is_empty(), "{:?}", s.channels.misconfigured);
    }

    #[test]
    fn a_bad_digest_setting_disables_the_digest_only() {
        for (name, value) in [
            ("NOTIFY_DIGEST_TO", "not an address"),
            ("NOTIFY_DIGEST_TO", " , "),
            ("NOTIFY_DIGEST_SCHEDULE", "daily"),
            ("NOTIFY_DIGEST_SCHEDULE", "0 0 0 31 2 *"),
            ("NOTIFY_DIGEST_DELAY_SECONDS", "3601"),
            ("NOTIFY_DIGEST_DELAY_SECONDS", "2m"),
            ("NOTIFY_DIGEST_TO", "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/s/)"),
        ] {
            let mut pairs = RELAY.to_vec();
            pairs.extend([("NOTIFY_EMAIL_TO", "a@example.com"), ("NOTIFY_DIGEST_TO", "boss@example.com"), (name, value)]);
            let s = settings(&pairs);
            assert!(s.channels.digest.is_none(), "{name}={value}");
            assert!(s.channels.email.is_some(), "per-lead e-mail stays on: {name}={value}");
            let bad: Vec<(&str, &str)> = s.channels.misconfigured.iter().map(|m| (m.channel.name(), m.error.name)).collect();
            assert_eq!(bad, [("Digest", name)], "{value}");
        }
    }

    #[test]
    fn shared_relay_settings_are_checked_for_both() {
        let mut pairs = RELAY.to_vec();
        pairs.extend([("NOTIFY_EMAIL_TO", "a@example.com"), ("NOTIFY_DIGEST_TO", "boss@example.com"), ("SMTP_PORT", "smtp")]);
        let s = settings(&pairs);
        let bad: Vec<(&str, &str)> = s.channels.misconfigured.iter().map(|m| (m.channel.name(), m.error.name)).collect();
        assert_eq!(bad, [("Email", "SMTP_PORT"), ("Digest", "SMTP_PORT")]);

        let s = settings(&[("NOTIFY_DIGEST_TO", "boss@example.com")]);
        assert_eq!(s.channels.misconfigured[0].error.name, "SMTP_HOST");
    }
}
