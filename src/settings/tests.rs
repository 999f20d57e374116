//! Parsing every setting: defaults, bad values and what each one turns off.

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn defaults_with_development_storage() {
    let s = Settings::from_map(&env(&[("AzureWebJobsStorage", "UseDevelopmentStorage=true")])).unwrap();
    assert_eq!(s.storage.table, "MarketplaceLeads");
    assert_eq!(s.notify.max_attempts, 10);
    assert_eq!(s.storage.retry.deadline, std::time::Duration::from_secs(10));
    assert!(s.notify.notify_test_leads);
    assert!(s.channels.is_empty());
    assert_eq!(s.notify.retention_days, None, "leads are kept forever unless a retention is set");
    let kept = Settings::from_map(&env(&[("AzureWebJobsStorage", "UseDevelopmentStorage=true"), ("LEADS_RETENTION_DAYS", "730")]));
    assert_eq!(kept.unwrap().notify.retention_days, Some(730));
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
    assert!(defaults.replaced_by_default.is_empty());
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
        let names: Vec<&str> = s.replaced_by_default.iter().map(|e| e.name).collect();
        assert_eq!(names, [name], "{value}");
        assert_eq!(
            (
                s.notify.max_attempts,
                s.notify.send_timeout,
                s.notify.sweep_every,
                s.notify.notify_test_leads,
                s.notify.journey,
                s.notify.immediate,
                s.notify.retention_days
            ),
            (10, defaults.notify.send_timeout, defaults.notify.sweep_every, true, true, true, None),
            "{name}={value}: the default, and never a deletion"
        );
        assert_eq!(s.notify.schedule.to_string(), defaults.notify.schedule.to_string());
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
    let loopback =
        Settings::from_map(&env(&[("AzureWebJobsStorage", "UseDevelopmentStorage=true"), ("NOTIFY_SLACK_URL", "http://127.0.0.1:9/x")]))
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
