//! The CRM channels' settings. Each CRM is on when any of its own settings is set (the optional
//! base-URL overrides alone do not turn it on); a missing or invalid one makes that CRM
//! `Misconfigured`, never a start failure.

use secrecy::SecretString;

use super::definition::{DYNAMICS_AUTHORITY_HOST, HUBSPOT_BASE_URL, SALESFORCE_EXTERNAL_ID_FIELD};
use super::values::{bad, check_url, unresolved, SettingError};

type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Dynamics 365 / Dataverse: Entra client credentials, then the Web API.
#[derive(Debug, Clone)]
pub struct DynamicsSettings {
    /// The environment's URL, `https://<org>.crm.dynamics.com`, without a trailing slash.
    pub url: String,
    pub tenant: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// `https://login.microsoftonline.com` unless a sovereign cloud (or a test) says otherwise.
    pub authority_host: String,
}

/// Salesforce: a connected app's client-credentials flow, then an upsert by external id.
#[derive(Debug, Clone)]
pub struct SalesforceSettings {
    /// The My Domain URL, `https://<name>.my.salesforce.com`.
    pub domain: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// API name of the Lead's External ID + Unique text field holding our notification id.
    pub external_id_field: String,
}

/// HubSpot: a private app's static access token.
#[derive(Debug, Clone)]
pub struct HubSpotSettings {
    pub token: SecretString,
    pub base_url: String,
}

/// Marketo: a LaunchPoint custom service's client credentials.
#[derive(Debug, Clone)]
pub struct MarketoSettings {
    /// `https://<munchkin-id>.mktorest.com`: `/identity` and `/rest` hang below it.
    pub base_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
}

/// Reads a group of settings: `None` when none of `names` is set; the first missing one is an
/// error when some are; every value is checked for an unresolved Key Vault reference.
fn group(get: Get, names: &[&'static str]) -> Result<Option<Vec<String>>, SettingError> {
    for name in names {
        unresolved(name, get(name).as_deref())?;
    }
    if names.iter().all(|n| get(n).is_none()) {
        return Ok(None);
    }
    let set = names.iter().find(|n| get(n).is_some()).copied().unwrap_or_default();
    names.iter().map(|n| get(n).ok_or_else(|| bad(n, format!("required when {set} is set")))).collect::<Result<Vec<_>, _>>().map(Some)
}

/// An https base URL (http only to loopback), reduced to scheme, host and port.
fn base_url(name: &'static str, value: &str) -> Result<String, SettingError> {
    unresolved(name, Some(value))?;
    check_url(name, value)?;
    let u = url::Url::parse(value).map_err(|_| bad(name, "not an https URL"))?;
    if !matches!(u.path(), "" | "/") || u.query().is_some() {
        return Err(bad(name, "give the base URL only (scheme and host), without a path"));
    }
    Ok(u.origin().ascii_serialization())
}

fn optional_base(get: Get, name: &'static str, default: &str) -> Result<String, SettingError> {
    base_url(name, &get(name).unwrap_or_else(|| default.to_string()))
}

pub(super) fn dynamics_from(get: Get) -> Result<Option<DynamicsSettings>, SettingError> {
    let Some(v) = group(get, &["DYNAMICS_URL", "DYNAMICS_TENANT_ID", "DYNAMICS_CLIENT_ID", "DYNAMICS_CLIENT_SECRET"])? else {
        return Ok(None);
    };
    let [url, tenant, client_id, secret] = <[String; 4]>::try_from(v).map_err(|_| bad("DYNAMICS_URL", "incomplete"))?;
    // The tenant goes into the token URL's path: a GUID or a domain name, nothing else.
    if tenant.is_empty() || !tenant.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
        return Err(bad("DYNAMICS_TENANT_ID", "the directory (tenant) id, a GUID, or its domain name"));
    }
    Ok(Some(DynamicsSettings {
        url: base_url("DYNAMICS_URL", &url)?,
        tenant,
        client_id,
        client_secret: secret.into(),
        authority_host: optional_base(get, DYNAMICS_AUTHORITY_HOST.name, DYNAMICS_AUTHORITY_HOST.default)?,
    }))
}

pub(super) fn salesforce_from(get: Get) -> Result<Option<SalesforceSettings>, SettingError> {
    let Some(v) = group(get, &["SALESFORCE_DOMAIN", "SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET"])? else {
        return Ok(None);
    };
    let [domain, client_id, secret] = <[String; 3]>::try_from(v).map_err(|_| bad("SALESFORCE_DOMAIN", "incomplete"))?;
    let field = get(SALESFORCE_EXTERNAL_ID_FIELD.name).unwrap_or_else(|| SALESFORCE_EXTERNAL_ID_FIELD.default.into());
    // It goes into the URL path: a custom field's API name and nothing else.
    let valid = field.strip_suffix("__c").is_some_and(|stem| {
        stem.starts_with(|c: char| c.is_ascii_alphabetic()) && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if !valid {
        return Err(bad("SALESFORCE_EXTERNAL_ID_FIELD", "the API name of a custom field, e.g. MarketplaceLeadId__c"));
    }
    Ok(Some(SalesforceSettings {
        domain: base_url("SALESFORCE_DOMAIN", &domain)?,
        client_id,
        client_secret: secret.into(),
        external_id_field: field,
    }))
}

pub(super) fn hubspot_from(get: Get) -> Result<Option<HubSpotSettings>, SettingError> {
    unresolved("HUBSPOT_TOKEN", get("HUBSPOT_TOKEN").as_deref())?;
    let Some(token) = get("HUBSPOT_TOKEN") else {
        return Ok(None);
    };
    Ok(Some(HubSpotSettings { token: token.into(), base_url: optional_base(get, HUBSPOT_BASE_URL.name, HUBSPOT_BASE_URL.default)? }))
}

pub(super) fn marketo_from(get: Get) -> Result<Option<MarketoSettings>, SettingError> {
    let Some(v) = group(get, &["MARKETO_BASE_URL", "MARKETO_CLIENT_ID", "MARKETO_CLIENT_SECRET"])? else {
        return Ok(None);
    };
    let [base, client_id, secret] = <[String; 3]>::try_from(v).map_err(|_| bad("MARKETO_BASE_URL", "incomplete"))?;
    Ok(Some(MarketoSettings { base_url: base_url("MARKETO_BASE_URL", &base)?, client_id, client_secret: secret.into() }))
}

#[cfg(test)]
mod tests {
    use super::super::{ChannelSettings, Settings};
    use std::collections::HashMap;

    fn channels(pairs: &[(&str, &str)]) -> ChannelSettings {
        let mut env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        env.insert("AzureWebJobsStorage".into(), "UseDevelopmentStorage=true".into());
        Settings::from_map(&env).expect("a bad CRM setting never fails the start").channels
    }

    #[test]
    fn complete_crm_settings_turn_their_channel_on() {
        let c = channels(&[
            ("DYNAMICS_URL", "https://contoso.crm4.dynamics.com/"),
            ("DYNAMICS_TENANT_ID", "contoso.onmicrosoft.com"),
            ("DYNAMICS_CLIENT_ID", "id"),
            ("DYNAMICS_CLIENT_SECRET", "s"),
            ("SALESFORCE_DOMAIN", "https://acme.my.salesforce.com"),
            ("SALESFORCE_CLIENT_ID", "id"),
            ("SALESFORCE_CLIENT_SECRET", "s"),
            ("HUBSPOT_TOKEN", "pat-na1-x"),
            ("MARKETO_BASE_URL", "https://123-ABC-456.mktorest.com"),
            ("MARKETO_CLIENT_ID", "id"),
            ("MARKETO_CLIENT_SECRET", "s"),
        ]);
        assert!(c.misconfigured.is_empty(), "{:?}", c.misconfigured);
        let d = c.dynamics.unwrap();
        assert_eq!(d.url, "https://contoso.crm4.dynamics.com");
        assert_eq!(d.authority_host, "https://login.microsoftonline.com");
        assert_eq!(c.salesforce.unwrap().external_id_field, "MarketplaceLeadId__c");
        assert_eq!(c.hubspot.unwrap().base_url, "https://api.hubapi.com");
        assert!(c.marketo.is_some());
    }

    #[test]
    fn bad_crm_settings_misconfigure_that_channel_only() {
        for (pairs, channel, setting) in [
            (vec![("DYNAMICS_URL", "https://contoso.crm.dynamics.com")], "Dynamics", "DYNAMICS_TENANT_ID"),
            (
                vec![
                    ("DYNAMICS_URL", "http://contoso.crm.dynamics.com"),
                    ("DYNAMICS_TENANT_ID", "t"),
                    ("DYNAMICS_CLIENT_ID", "i"),
                    ("DYNAMICS_CLIENT_SECRET", "s"),
                ],
                "Dynamics",
                "DYNAMICS_URL",
            ),
            (
                vec![
                    ("SALESFORCE_DOMAIN", "https://acme.my.salesforce.com"),
                    ("SALESFORCE_CLIENT_ID", "i"),
                    ("SALESFORCE_CLIENT_SECRET", "s"),
                    ("SALESFORCE_EXTERNAL_ID_FIELD", "Id/../x"),
                ],
                "Salesforce",
                "SALESFORCE_EXTERNAL_ID_FIELD",
            ),
            (vec![("HUBSPOT_TOKEN", "@Microsoft.KeyVault(SecretUri=https://v/secrets/x)")], "HubSpot", "HUBSPOT_TOKEN"),
            (vec![("MARKETO_CLIENT_SECRET", "s")], "Marketo", "MARKETO_BASE_URL"),
        ] {
            let c = channels(&pairs);
            assert_eq!(c.misconfigured.len(), 1, "{pairs:?}");
            assert_eq!(c.misconfigured[0].channel.name(), channel);
            assert_eq!(c.misconfigured[0].error.name, setting, "{pairs:?}");
            assert!(!c.misconfigured[0].error.to_string().contains("s\""), "no secret echoed");
        }
    }
}
