//! The inbox's settings: who may open it. Read leniently: a wrong value never stops LeadIngest,
//! it keeps the inbox shut (fail closed) and says why on the inbox's refusal page.

use secrecy::SecretString;

/// How the inbox knows who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxAuth {
    /// `INBOX_AUTH` unset: under the Functions host the inbox is shut; `handler serve` decides
    /// by its bind address and `INBOX_KEY`.
    Unset,
    /// `INBOX_AUTH=appservice`: App Service built-in authentication (Microsoft Entra ID) is in
    /// front of the app; the template sets it together with the authentication settings.
    AppService,
    /// Any other value: the inbox stays shut until it is fixed.
    Invalid(String),
}

#[derive(Debug, Clone)]
pub struct InboxSettings {
    pub auth: InboxAuth,
    /// `INBOX_TENANT_ID`: the only Microsoft Entra tenant whose users are let in.
    pub tenant_id: Option<String>,
    /// `WEBSITE_AUTH_ENABLED`, injected by the platform (never set by hand): whether App Service
    /// authentication is really on. Without it, principal headers could come from anyone.
    pub platform_auth_enabled: bool,
    /// `INBOX_KEY`: the sign-in key of the inbox under `handler serve`.
    pub key: Option<SecretString>,
}

impl InboxSettings {
    pub fn from_get(get: &dyn Fn(&str) -> Option<String>) -> Self {
        let auth = match get("INBOX_AUTH") {
            None => InboxAuth::Unset,
            Some(v) if v.eq_ignore_ascii_case("appservice") => InboxAuth::AppService,
            Some(v) => InboxAuth::Invalid(v),
        };
        InboxSettings {
            auth,
            tenant_id: get("INBOX_TENANT_ID").map(|t| t.to_ascii_lowercase()),
            platform_auth_enabled: get("WEBSITE_AUTH_ENABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            key: get("INBOX_KEY").map(SecretString::from),
        }
    }
}
