//! Storage, intake and the process: where the leads live, `handler serve`'s key, TLS trust, logs.

use super::{Setting, Valid};

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
pub const INBOX_KEY: Setting = Setting {
    name: "INBOX_KEY",
    default: "",
    secret: true,
    help: "Sign-in key of the lead inbox (/api/Inbox) under `handler serve`: with it the inbox asks for the key and keeps a session cookie; without it the inbox opens only when serve listens on loopback. Not used under the Functions host.",
    valid: Valid::Text,
};
pub const INBOX_AUTH: Setting = Setting {
    name: "INBOX_AUTH",
    default: "",
    secret: false,
    help: "`appservice`: App Service built-in authentication (Microsoft Entra ID) is in front of the app, so the inbox trusts its X-MS-CLIENT-PRINCIPAL header. Set by the template together with the authentication settings; unset, the inbox is shut under the Functions host.",
    valid: Valid::OneOf(&["appservice"]),
};
pub const INBOX_TENANT_ID: Setting = Setting {
    name: "INBOX_TENANT_ID",
    default: "",
    secret: false,
    help: "Microsoft Entra tenant (directory) id whose signed-in users may open the inbox (required with INBOX_AUTH=appservice); roles Leads.Read and Leads.Manage decide what they may do.",
    valid: Valid::Text,
};
pub const WEBSITE_AUTH_ENABLED: Setting = Setting {
    name: "WEBSITE_AUTH_ENABLED",
    default: "",
    secret: false,
    help: "Injected by App Service when its built-in authentication is on (never set it yourself): the inbox under the host opens only when it is `True` and INBOX_AUTH=appservice.",
    valid: Valid::Text,
};
