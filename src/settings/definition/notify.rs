//! How LeadNotify runs: its timer, retries, sweep, journey, immediate delivery and retention.

use super::{Setting, Valid};

pub const NOTIFY_SCHEDULE: Setting = Setting {
    name: "NOTIFY_SCHEDULE",
    default: "0 */1 * * * *",
    secret: false,
    help: "NCRONTAB schedule of LeadNotify (six fields, seconds first).",
    valid: Valid::Schedule,
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
