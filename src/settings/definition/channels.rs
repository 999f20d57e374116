//! The e-mail relay, the digest, the webhook and the chat channels.

use super::{Setting, Valid};

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
pub const SMTP_PASSWORD: Setting =
    Setting { name: "SMTP_PASSWORD", default: "", secret: true, help: "SMTP password or API key.", valid: Valid::Text };
pub const NOTIFY_SLACK_URL: Setting =
    Setting { name: "NOTIFY_SLACK_URL", default: "", secret: true, help: "Slack incoming-webhook URL.", valid: Valid::HttpsUrl };
