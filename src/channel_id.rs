//! Which channel: a typed name shared by the settings (which turn channels on, or report them
//! misconfigured) and the notifier (which keeps each channel's state on the lead row). Below
//! both, so neither imports the other for it.

/// A notification channel. The per-lead ones keep state on each lead row; the digest keeps one
/// row per period in the notifier's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelId {
    Email,
    Webhook,
    Teams,
    Slack,
    /// The CRM channels (`notify::crm`): each lead becomes a record in the publisher's CRM.
    Dynamics,
    Salesforce,
    HubSpot,
    Marketo,
    /// One summary per schedule period (`NOTIFY_DIGEST_TO`), not per lead.
    Digest,
}

impl ChannelId {
    /// The per-lead channels, in the order the notifier lists them.
    pub const PER_LEAD: [ChannelId; 8] = [
        ChannelId::Email,
        ChannelId::Webhook,
        ChannelId::Teams,
        ChannelId::Slack,
        ChannelId::Dynamics,
        ChannelId::Salesforce,
        ChannelId::HubSpot,
        ChannelId::Marketo,
    ];

    /// The name in column names (`Notify<Name>State`), logs and `leads status`.
    pub fn name(self) -> &'static str {
        match self {
            ChannelId::Email => "Email",
            ChannelId::Webhook => "Webhook",
            ChannelId::Teams => "Teams",
            ChannelId::Slack => "Slack",
            ChannelId::Dynamics => "Dynamics",
            ChannelId::Salesforce => "Salesforce",
            ChannelId::HubSpot => "HubSpot",
            ChannelId::Marketo => "Marketo",
            ChannelId::Digest => "Digest",
        }
    }
}

impl std::fmt::Display for ChannelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
