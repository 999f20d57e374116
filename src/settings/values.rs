//! The checks every settings parser shares, at the bottom of `settings/`: the error type, numbers
//! and flags by their definition, e-mail address lists, https URLs, unresolved Key Vault
//! references.

use super::definition::Setting;

#[derive(Debug, Clone, thiserror::Error)]
#[error("setting {name}: {problem}")]
pub struct SettingError {
    pub name: &'static str,
    pub problem: String,
}

pub(super) fn bad(name: &'static str, problem: impl Into<String>) -> SettingError {
    SettingError { name, problem: problem.into() }
}

/// A `true`/`false` setting, its default when unset.
pub(super) fn flag(get: &dyn Fn(&str) -> Option<String>, setting: &Setting) -> Result<bool, SettingError> {
    let name = setting.name;
    match get(name).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(setting.default_flag()),
        Some("true") | Some("1") | Some("yes") => Ok(true),
        Some("false") | Some("0") | Some("no") => Ok(false),
        Some(_) => Err(bad(name, "`true` or `false`")),
    }
}

/// A whole number setting within its range, its default when unset.
pub(super) fn number(get: &dyn Fn(&str) -> Option<String>, setting: &Setting) -> Result<u64, SettingError> {
    let range = setting.range();
    match get(setting.name) {
        None => Ok(setting.default_number()),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| bad(setting.name, format!("a whole number from {} to {}", range.start(), range.end()))),
    }
}

/// App Service hands an app setting whose Key Vault reference it cannot resolve (the vault's
/// role assignment still propagating, a typo) to the app as its literal text.
pub(super) fn unresolved(name: &'static str, value: Option<&str>) -> Result<(), SettingError> {
    match value {
        Some(v) if v.starts_with("@Microsoft.KeyVault(") => Err(bad(
            name,
            "is an unresolved Key Vault reference: the app could not read the secret (check the vault's role assignment for the app's identity, and the secret's name)",
        )),
        _ => Ok(()),
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
