//! Every setting the binary reads, each defined once: its name, default, help, what a valid value
//! is, and whether it is a secret. The parsers (`settings/mod.rs`, `crm.rs`, `digest.rs`) read
//! names, defaults and ranges from here; `handler settings` prints [`ALL`]; the docs test checks
//! that the README's settings table lists each one with this default; the infra test compares
//! them with the app settings the template sets.

/// What a valid value is (the parser enforces it; `handler settings` and the tests read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Valid {
    /// Free text (a connection string, a name, an id).
    Text,
    /// A whole number in `min..=max`.
    Number { min: u64, max: u64 },
    /// `true` or `false` (also `1`/`0`, `yes`/`no`).
    Flag,
    /// One of these words, any case.
    OneOf(&'static [&'static str]),
    /// NCRONTAB, six fields.
    Schedule,
    /// Comma-separated e-mail addresses.
    Addresses,
    /// `https://` (plain `http://` only to loopback).
    HttpsUrl,
    /// An Azure table name.
    TableName,
}

/// One setting's definition.
#[derive(Debug)]
pub struct Setting {
    pub name: &'static str,
    /// The value used when the setting is unset (`""`: none).
    pub default: &'static str,
    pub secret: bool,
    pub help: &'static str,
    pub valid: Valid,
}

impl Setting {
    /// The default of a number setting (0 when it has none).
    pub fn default_number(&self) -> u64 {
        self.default.parse().unwrap_or(0)
    }

    /// The range of a number setting.
    pub fn range(&self) -> std::ops::RangeInclusive<u64> {
        match self.valid {
            Valid::Number { min, max } => min..=max,
            _ => 0..=u64::MAX,
        }
    }

    /// The default of a flag setting.
    pub fn default_flag(&self) -> bool {
        self.default == "true"
    }
}

pub const AZURE_WEB_JOBS_STORAGE: Setting = Setting {
    name: "AzureWebJobsStorage",
    default: "",
    secret: true,
    help: "Storage connection string of the Functions app; `UseDevelopmentStorage=true` means local Azurite. The lead table lives here unless LEADS_STORAGE is set. Or use the keyless AzureWebJobsStorage__accountName form below.",
    valid: Valid::Text,
};
pub const LEADS_STORAGE: Setting = Setting {
    name: "LEADS_STORAGE",
    default: "",
    secret: true,
    help:
        "Optional separate connection string for the lead table (e.g. the account you gave Partner Center's \"Azure Table\" destination).",
    valid: Valid::Text,
};
pub const AZURE_WEB_JOBS_STORAGE_ACCOUNT_NAME: Setting = Setting {
    name: "AzureWebJobsStorage__accountName",
    default: "",
    secret: false,
    help: "Keyless (identity-based) connection to the Functions app's storage (the lead table lives here unless LEADS_STORAGE is set): the storage account name; the handler then signs in with Microsoft Entra ID (no key anywhere).",
    valid: Valid::Text,
};
pub const AZURE_WEB_JOBS_STORAGE_TABLE_SERVICE_URI: Setting = Setting {
    name: "AzureWebJobsStorage__tableServiceUri",
    default: "",
    secret: false,
    help: "Keyless connection: the Table service URL instead of the account name (https only), e.g. https://acct.table.core.windows.net.",
    valid: Valid::Text,
};
pub const AZURE_WEB_JOBS_STORAGE_CREDENTIAL: Setting = Setting {
    name: "AzureWebJobsStorage__credential",
    default: "",
    secret: false,
    help: "`managedidentity`: tokens from the app's managed identity only. Unset: the managed identity when the platform provides one, else your `az login` (the lead tools on a laptop); `azurecli` forces the latter.",
    valid: Valid::Text,
};
pub const AZURE_WEB_JOBS_STORAGE_CLIENT_ID: Setting = Setting {
    name: "AzureWebJobsStorage__clientId",
    default: "",
    secret: false,
    help: "Client id of a user-assigned managed identity (unset: the system-assigned one).",
    valid: Valid::Text,
};
pub const LEADS_STORAGE_ACCOUNT_NAME: Setting = Setting {
    name: "LEADS_STORAGE__accountName",
    default: "",
    secret: false,
    help: "Keyless (identity-based) connection to the lead table's own account: the storage account name; the handler then signs in with Microsoft Entra ID (no key anywhere).",
    valid: Valid::Text,
};
pub const LEADS_STORAGE_TABLE_SERVICE_URI: Setting = Setting {
    name: "LEADS_STORAGE__tableServiceUri",
    default: "",
    secret: false,
    help: "Keyless connection: the Table service URL instead of the account name (https only), e.g. https://acct.table.core.windows.net.",
    valid: Valid::Text,
};
pub const LEADS_STORAGE_CREDENTIAL: Setting = Setting {
    name: "LEADS_STORAGE__credential",
    default: "",
    secret: false,
    help: "`managedidentity`: tokens from the app's managed identity only. Unset: the managed identity when the platform provides one, else your `az login` (the lead tools on a laptop); `azurecli` forces the latter.",
    valid: Valid::Text,
};
pub const LEADS_STORAGE_CLIENT_ID: Setting = Setting {
    name: "LEADS_STORAGE__clientId",
    default: "",
    secret: false,
    help: "Client id of a user-assigned managed identity (unset: the system-assigned one).",
    valid: Valid::Text,
};
pub const LEADS_TABLE: Setting = Setting {
    name: "LEADS_TABLE",
    default: "MarketplaceLeads",
    secret: false,
    help: "Table that holds the leads; the same name Microsoft writes to with the \"Azure Table\" destination.",
    valid: Valid::TableName,
};
pub const STORAGE_RETRY_SECONDS: Setting = Setting {
    name: "STORAGE_RETRY_SECONDS",
    default: "10",
    secret: false,
    help: "How long one table call retries transient storage failures (connection errors, timeouts, 5xx, 408, 429) with jittered backoff before LeadIngest answers 503 (0-60; 0 = no retries).",
    valid: Valid::Number { min: 0, max: 60 },
};
pub const LEADS_INGEST_KEY: Setting = Setting {
    name: "LEADS_INGEST_KEY",
    default: "",
    secret: true,
    help: "Key callers must pass as `?code=` in `handler serve` mode (required there). Under the Functions host the function key does this job.",
    valid: Valid::Text,
};
pub const FUNCTIONS_CUSTOMHANDLER_PORT: Setting = Setting {
    name: "FUNCTIONS_CUSTOMHANDLER_PORT",
    default: "",
    secret: false,
    help: "Port the Functions host tells the handler to listen on (set by the host; you never set it).",
    valid: Valid::Text,
};
pub const NOTIFY_SCHEDULE: Setting = Setting {
    name: "NOTIFY_SCHEDULE",
    default: "0 */1 * * * *",
    secret: false,
    help: "NCRONTAB schedule of LeadNotify (six fields, seconds first).",
    valid: Valid::Schedule,
};
pub const NOTIFY_EMAIL_TO: Setting = Setting {
    name: "NOTIFY_EMAIL_TO",
    default: "",
    secret: false,
    help: "Comma-separated recipients of lead e-mails. E-mail is on when this and SMTP_HOST are set.",
    valid: Valid::Addresses,
};
pub const NOTIFY_EMAIL_FROM: Setting = Setting {
    name: "NOTIFY_EMAIL_FROM",
    default: "",
    secret: false,
    help: "Sender address of lead e-mails (required when e-mail is on).",
    valid: Valid::Addresses,
};
pub const SMTP_HOST: Setting = Setting {
    name: "SMTP_HOST",
    default: "",
    secret: false,
    help: "SMTP relay host, e.g. smtp.office365.com, smtp.sendgrid.net, smtp.azurecomm.net.",
    valid: Valid::Text,
};
pub const SMTP_PORT: Setting = Setting {
    name: "SMTP_PORT",
    default: "587",
    secret: false,
    help: "SMTP relay port (587 for starttls, 465 for tls).",
    valid: Valid::Number { min: 1, max: 65535 },
};
pub const SMTP_USERNAME: Setting = Setting {
    name: "SMTP_USERNAME",
    default: "",
    secret: false,
    help: "SMTP user name (no authentication when empty).",
    valid: Valid::Text,
};
pub const SMTP_PASSWORD: Setting =
    Setting { name: "SMTP_PASSWORD", default: "", secret: true, help: "SMTP password or API key.", valid: Valid::Text };
pub const SMTP_SECURITY: Setting = Setting {
    name: "SMTP_SECURITY",
    default: "starttls",
    secret: false,
    help: "`starttls` (required STARTTLS), `tls` (implicit TLS) or `none` (plain text, local relays only).",
    valid: Valid::OneOf(&["starttls", "tls", "none"]),
};
pub const NOTIFY_DIGEST_TO: Setting = Setting {
    name: "NOTIFY_DIGEST_TO",
    default: "",
    secret: false,
    help: "Comma-separated recipients of the daily digest: one e-mail per period summarising its leads (counts by offer and action, then the list). Uses the SMTP_* settings and NOTIFY_EMAIL_FROM of the e-mail channel; works with or without NOTIFY_EMAIL_TO.",
    valid: Valid::Addresses,
};
pub const NOTIFY_DIGEST_DELAY_SECONDS: Setting = Setting {
    name: "NOTIFY_DIGEST_DELAY_SECONDS",
    default: "120",
    secret: false,
    help: "How long after each digest tick its digest is sent (0-3600): leads created just before the tick may still be on their way into the table (a LeadIngest insert riding out a storage blip, a row Microsoft writes late), and waiting means none falls between two digests.",
    valid: Valid::Number { min: 0, max: 3600 },
};
pub const NOTIFY_DIGEST_SCHEDULE: Setting = Setting {
    name: "NOTIFY_DIGEST_SCHEDULE",
    default: "0 0 8 * * *",
    secret: false,
    help: "NCRONTAB schedule (six fields, UTC) of the digest: each tick ends a period, (previous tick, this tick], whose digest the first LeadNotify run after NOTIFY_DIGEST_DELAY_SECONDS sends (08:00 UTC daily by default).",
    valid: Valid::Schedule,
};
pub const NOTIFY_WEBHOOK_URL: Setting = Setting {
    name: "NOTIFY_WEBHOOK_URL",
    default: "",
    secret: true,
    help: "HTTPS URL that receives a Standard Webhooks `lead.created` POST per lead.",
    valid: Valid::HttpsUrl,
};
pub const NOTIFY_WEBHOOK_SECRET: Setting = Setting {
    name: "NOTIFY_WEBHOOK_SECRET",
    default: "",
    secret: true,
    help: "Signing secret `whsec_<base64>` (required with NOTIFY_WEBHOOK_URL).",
    valid: Valid::Text,
};
pub const NOTIFY_TEAMS_URL: Setting = Setting {
    name: "NOTIFY_TEAMS_URL",
    default: "",
    secret: true,
    help: "Teams Workflows \"post to a channel when a webhook request is received\" URL.",
    valid: Valid::HttpsUrl,
};
pub const NOTIFY_SLACK_URL: Setting =
    Setting { name: "NOTIFY_SLACK_URL", default: "", secret: true, help: "Slack incoming-webhook URL.", valid: Valid::HttpsUrl };
pub const DYNAMICS_URL: Setting = Setting {
    name: "DYNAMICS_URL",
    default: "",
    secret: false,
    help: "Dynamics 365 / Dataverse environment URL, e.g. https://contoso.crm.dynamics.com. The Dynamics channel is on when this, DYNAMICS_TENANT_ID, DYNAMICS_CLIENT_ID and DYNAMICS_CLIENT_SECRET are set.",
    valid: Valid::HttpsUrl,
};
pub const DYNAMICS_TENANT_ID: Setting = Setting {
    name: "DYNAMICS_TENANT_ID",
    default: "",
    secret: false,
    help: "Microsoft Entra directory (tenant) id of the app registration.",
    valid: Valid::Text,
};
pub const DYNAMICS_CLIENT_ID: Setting = Setting {
    name: "DYNAMICS_CLIENT_ID",
    default: "",
    secret: false,
    help: "Application (client) id of the app registration that is the environment's application user.",
    valid: Valid::Text,
};
pub const DYNAMICS_CLIENT_SECRET: Setting = Setting {
    name: "DYNAMICS_CLIENT_SECRET",
    default: "",
    secret: true,
    help: "Client secret of that app registration.",
    valid: Valid::Text,
};
pub const DYNAMICS_AUTHORITY_HOST: Setting = Setting {
    name: "DYNAMICS_AUTHORITY_HOST",
    default: "https://login.microsoftonline.com",
    secret: false,
    help: "Entra token endpoint host (sovereign clouds: https://login.microsoftonline.us, …).",
    valid: Valid::HttpsUrl,
};
pub const SALESFORCE_DOMAIN: Setting = Setting {
    name: "SALESFORCE_DOMAIN",
    default: "",
    secret: false,
    help: "Salesforce My Domain URL, e.g. https://acme.my.salesforce.com. The Salesforce channel is on when this, SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET are set.",
    valid: Valid::HttpsUrl,
};
pub const SALESFORCE_CLIENT_ID: Setting = Setting {
    name: "SALESFORCE_CLIENT_ID",
    default: "",
    secret: false,
    help: "Consumer key of the connected app (Client Credentials Flow enabled).",
    valid: Valid::Text,
};
pub const SALESFORCE_CLIENT_SECRET: Setting = Setting {
    name: "SALESFORCE_CLIENT_SECRET",
    default: "",
    secret: true,
    help: "Consumer secret of the connected app.",
    valid: Valid::Text,
};
pub const SALESFORCE_EXTERNAL_ID_FIELD: Setting = Setting {
    name: "SALESFORCE_EXTERNAL_ID_FIELD",
    default: "MarketplaceLeadId__c",
    secret: false,
    help: "API name of the Lead text field marked External ID and Unique that holds the lead's notification id (the upsert key).",
    valid: Valid::Text,
};
pub const HUBSPOT_TOKEN: Setting = Setting {
    name: "HUBSPOT_TOKEN",
    default: "",
    secret: true,
    help: "Access token of a HubSpot private app with crm.objects.contacts.read and .write. The HubSpot channel is on when it is set.",
    valid: Valid::Text,
};
pub const HUBSPOT_BASE_URL: Setting = Setting {
    name: "HUBSPOT_BASE_URL",
    default: "https://api.hubapi.com",
    secret: false,
    help: "HubSpot API base URL (change only for tests).",
    valid: Valid::HttpsUrl,
};
pub const MARKETO_BASE_URL: Setting = Setting {
    name: "MARKETO_BASE_URL",
    default: "",
    secret: false,
    help: "Marketo base URL, e.g. https://123-ABC-456.mktorest.com (the REST endpoint without /rest). The Marketo channel is on when this, MARKETO_CLIENT_ID and MARKETO_CLIENT_SECRET are set.",
    valid: Valid::HttpsUrl,
};
pub const MARKETO_CLIENT_ID: Setting = Setting {
    name: "MARKETO_CLIENT_ID",
    default: "",
    secret: false,
    help: "Client id of the LaunchPoint custom service.",
    valid: Valid::Text,
};
pub const MARKETO_CLIENT_SECRET: Setting = Setting {
    name: "MARKETO_CLIENT_SECRET",
    default: "",
    secret: true,
    help: "Client secret of the LaunchPoint custom service.",
    valid: Valid::Text,
};
pub const NOTIFY_MAX_ATTEMPTS: Setting = Setting {
    name: "NOTIFY_MAX_ATTEMPTS",
    default: "10",
    secret: false,
    help: "Attempts per lead and channel before the channel is marked failed (1-50).",
    valid: Valid::Number { min: 1, max: 50 },
};
pub const NOTIFY_TEST_LEADS: Setting = Setting {
    name: "NOTIFY_TEST_LEADS",
    default: "true",
    secret: false,
    help: "Notify Microsoft's `MSFT_TEST` validation leads (marked as tests); `false` skips them.",
    valid: Valid::Flag,
};
pub const NOTIFY_SEND_TIMEOUT_SECONDS: Setting = Setting {
    name: "NOTIFY_SEND_TIMEOUT_SECONDS",
    default: "30",
    secret: false,
    help: "Hard deadline of one send on one channel: the whole SMTP conversation, or one HTTP request including reading the answer (5-120). A timeout counts as a failed attempt and is retried.",
    valid: Valid::Number { min: 5, max: 120 },
};
pub const NOTIFY_SWEEP_MINUTES: Setting = Setting {
    name: "NOTIFY_SWEEP_MINUTES",
    default: "15",
    secret: false,
    help: "How often LeadNotify also sweeps the whole table for rows not yet notified whatever their keys (Microsoft-written rows with an unexpected PartitionKey): the bound on how late such a lead can be. 0 sweeps on every run (0-1440).",
    valid: Valid::Number { min: 0, max: 1440 },
};
pub const NOTIFY_JOURNEY: Setting = Setting {
    name: "NOTIFY_JOURNEY",
    default: "true",
    secret: false,
    help: "Link each lead to the customer's earlier leads (by e-mail address, hashed) in the index table `<LEADS_TABLE>Customers`, and tell the story in every notification; `false` turns it off.",
    valid: Valid::Flag,
};
pub const NOTIFY_IMMEDIATE: Setting = Setting {
    name: "NOTIFY_IMMEDIATE",
    default: "true",
    secret: false,
    help: "Run LeadNotify in process as soon as LeadIngest has stored a lead (bursts coalesce, never two runs at once); the timer stays as the safety net. `false`: the timer alone.",
    valid: Valid::Flag,
};
pub const LEADS_RETENTION_DAYS: Setting = Setting {
    name: "LEADS_RETENTION_DAYS",
    default: "",
    secret: false,
    help: "Delete leads older than this many days (arrived and last written that long ago), with their journey-index entries, once a day in LeadNotify; a lead a send will still be attempted for, or not yet listed by a configured digest, is kept. Unset (or invalid) keeps leads forever (1-3650).",
    valid: Valid::Number { min: 1, max: 3650 },
};
pub const SSL_CERT_FILE: Setting = Setting {
    name: "SSL_CERT_FILE",
    default: "",
    secret: false,
    help: "PEM file of the certificate authorities every TLS connection trusts (storage, tokens, SMTP, webhooks, CRMs) instead of the system store, as for OpenSSL: a private CA, or Azurite's self-signed certificate. Include the public roots too if you still need them.",
    valid: Valid::Text,
};
pub const RUST_LOG: Setting = Setting {
    name: "RUST_LOG",
    default: "info",
    secret: false,
    help: "Log filter (`info`, `debug`, `marketplace_leads=debug`, ...); `info` when serving, `warn` for the lead tools. Contact details are logged only at debug.",
    valid: Valid::Text,
};
/// Every setting, in the order `handler settings` prints them.
pub const ALL: &[&Setting] = &[
    &AZURE_WEB_JOBS_STORAGE,
    &LEADS_STORAGE,
    &AZURE_WEB_JOBS_STORAGE_ACCOUNT_NAME,
    &AZURE_WEB_JOBS_STORAGE_TABLE_SERVICE_URI,
    &AZURE_WEB_JOBS_STORAGE_CREDENTIAL,
    &AZURE_WEB_JOBS_STORAGE_CLIENT_ID,
    &LEADS_STORAGE_ACCOUNT_NAME,
    &LEADS_STORAGE_TABLE_SERVICE_URI,
    &LEADS_STORAGE_CREDENTIAL,
    &LEADS_STORAGE_CLIENT_ID,
    &LEADS_TABLE,
    &STORAGE_RETRY_SECONDS,
    &LEADS_INGEST_KEY,
    &FUNCTIONS_CUSTOMHANDLER_PORT,
    &NOTIFY_SCHEDULE,
    &NOTIFY_EMAIL_TO,
    &NOTIFY_EMAIL_FROM,
    &SMTP_HOST,
    &SMTP_PORT,
    &SMTP_USERNAME,
    &SMTP_PASSWORD,
    &SMTP_SECURITY,
    &NOTIFY_DIGEST_TO,
    &NOTIFY_DIGEST_DELAY_SECONDS,
    &NOTIFY_DIGEST_SCHEDULE,
    &NOTIFY_WEBHOOK_URL,
    &NOTIFY_WEBHOOK_SECRET,
    &NOTIFY_TEAMS_URL,
    &NOTIFY_SLACK_URL,
    &DYNAMICS_URL,
    &DYNAMICS_TENANT_ID,
    &DYNAMICS_CLIENT_ID,
    &DYNAMICS_CLIENT_SECRET,
    &DYNAMICS_AUTHORITY_HOST,
    &SALESFORCE_DOMAIN,
    &SALESFORCE_CLIENT_ID,
    &SALESFORCE_CLIENT_SECRET,
    &SALESFORCE_EXTERNAL_ID_FIELD,
    &HUBSPOT_TOKEN,
    &HUBSPOT_BASE_URL,
    &MARKETO_BASE_URL,
    &MARKETO_CLIENT_ID,
    &MARKETO_CLIENT_SECRET,
    &NOTIFY_MAX_ATTEMPTS,
    &NOTIFY_TEST_LEADS,
    &NOTIFY_SEND_TIMEOUT_SECONDS,
    &NOTIFY_SWEEP_MINUTES,
    &NOTIFY_JOURNEY,
    &NOTIFY_IMMEDIATE,
    &LEADS_RETENTION_DAYS,
    &SSL_CERT_FILE,
    &RUST_LOG,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_valid_under_its_own_rule() {
        for s in ALL {
            if s.default.is_empty() {
                continue;
            }
            match s.valid {
                Valid::Number { min, max } => {
                    let n: u64 = s.default.parse().unwrap_or_else(|_| panic!("{}: default is not a number", s.name));
                    assert!((min..=max).contains(&n), "{}", s.name);
                }
                Valid::Flag => assert!(matches!(s.default, "true" | "false"), "{}", s.name),
                Valid::OneOf(words) => assert!(words.contains(&s.default), "{}", s.name),
                Valid::Schedule => assert!(crate::schedule::Schedule::parse(s.default).is_ok(), "{}", s.name),
                Valid::HttpsUrl => assert!(s.default.starts_with("https://"), "{}", s.name),
                Valid::TableName | Valid::Text | Valid::Addresses => {}
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
