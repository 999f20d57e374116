//! The CRM channels: Dynamics 365, Salesforce, HubSpot, Marketo.

use super::{Setting, Valid};

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
