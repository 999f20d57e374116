//! Building and running the application in either [`Mode`]: under the Functions host, or
//! standalone (`handler serve`) with LeadNotify on its schedule in process.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::Utc;
use tokio::net::TcpListener;

use crate::channel_id::ChannelId;
use crate::clock::Clock;
use crate::http::server::{self, Limits};
use crate::http::{app, AppState, Mode};
use crate::inbox::{self, auth::Gate, Inbox};
use crate::notify::new_leads::NewLeads;
use crate::notify::Notifier;
use crate::schedule::Schedule;
use crate::settings::Settings;
use crate::store::SharedTable;

pub struct Application {
    listener: TcpListener,
    state: AppState,
    mode: Mode,
    inbox: Arc<Inbox>,
    schedule: Schedule,
    limits: Limits,
}

impl Application {
    /// Binds the listener first (the host counts the handler as started once it answers), then
    /// prepares the rest.
    pub async fn build(settings: &Settings, addr: SocketAddr, mode: Mode) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let store: SharedTable = Arc::new(settings.storage.client()?);
        // A client of its own, so the notifier's transaction count is its own.
        let notifier = Notifier::new(settings, Arc::new(settings.storage.client()?)).map_err(anyhow::Error::msg)?;
        for bad in &settings.channels.misconfigured {
            if bad.channel == ChannelId::Digest {
                tracing::error!(channel = bad.channel.name(), error = %bad.error, "digest disabled until the setting is fixed (leads and the other channels are unaffected)");
            } else {
                tracing::error!(channel = bad.channel.name(), error = %bad.error, "notification channel disabled: its leads stay pending until the setting is fixed (LeadIngest runs as usual)");
            }
        }
        if notifier.channels().is_empty() && settings.channels.is_empty() {
            tracing::warn!("no notification channel is configured: leads are stored but nobody is told (set NOTIFY_EMAIL_TO, NOTIFY_WEBHOOK_URL, NOTIFY_TEAMS_URL or NOTIFY_SLACK_URL)");
        } else {
            let names: Vec<&str> = notifier.channels().iter().map(|c| c.name()).collect();
            tracing::info!(channels = ?names, digest = settings.channels.digest.is_some(), "notification channels");
        }
        for e in &settings.replaced_by_default {
            // Under the host the timer's schedule is the host's: it refuses this one as well.
            let host_too = matches!(mode, Mode::Host) && e.name == "NOTIFY_SCHEDULE";
            let effect = if host_too {
                "the Functions host reads this setting too and will not run the LeadNotify timer until it is fixed (LeadIngest is unaffected, and notifies right after each lead when NOTIFY_IMMEDIATE is on)"
            } else {
                "LeadNotify uses the default until it is fixed (LeadIngest is unaffected)"
            };
            tracing::error!(error = %e, "{effect}");
        }
        let kick = settings.notify.immediate.then(|| Arc::new(NewLeads::default()));
        let state = AppState { store, notifier: Arc::new(notifier), kick };
        let gate = match mode {
            Mode::Host => Gate::for_host(&settings.inbox),
            Mode::Standalone { .. } => Gate::for_serve(&settings.inbox, addr.ip()),
        };
        if let Gate::Closed(why) = &gate {
            tracing::info!(reason = %why, "the lead inbox (/api/Inbox) is shut");
        }
        let watched = crate::notify::lead_state::watched(&settings.channels);
        let inbox = Arc::new(Inbox::new(state.clone(), gate, watched, Clock::System));
        let limits = match mode {
            Mode::Host => Limits::host(),
            Mode::Standalone { .. } => Limits::standalone(),
        };
        Ok(Application { listener, state, mode, inbox, schedule: settings.notify.schedule.clone(), limits })
    }

    /// Replaces the limits on clients chosen for the mode (`handler serve` flags).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until the process is stopped.
    pub async fn run(self) -> anyhow::Result<()> {
        // Make the table exist early, off the start-up path; inserts create it too if needed.
        let store = self.state.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.create_table().await {
                tracing::warn!(error = %e, "could not create the lead table yet (will retry on the first lead)");
            }
        });
        if let Some(kick) = self.state.kick.clone() {
            tokio::spawn(notify_after_ingest(self.state.notifier.clone(), kick));
        }
        if let Mode::Standalone { .. } = self.mode {
            tokio::spawn(notify_loop(self.state.notifier.clone(), self.schedule));
        }
        tokio::spawn(drop_expired_inbox_days(Arc::downgrade(&self.inbox)));
        // The inbox sits beside the handler's own routes; it imports them, not the other way round.
        let router = app(self.state, &self.mode).merge(inbox::router(self.inbox));
        server::serve(self.listener, router, self.limits, shutdown_signal()).await.context("server error")
    }
}

/// LeadNotify at once after LeadIngest stored a lead (in both modes: under the host too, the
/// handler process lives on between invocations). The timer stays the safety net for what this
/// misses: other instances, Microsoft-written rows, a process that stops.
async fn notify_after_ingest(notifier: Arc<Notifier>, new_leads: Arc<NewLeads>) {
    loop {
        let keys = new_leads.take().await;
        notifier.deliver_new(keys).await;
    }
}

/// The inbox's held days leave memory once past their age, even when no page asks again (an
/// idle instance would otherwise keep rows a forget elsewhere removed). Ends with the inbox.
async fn drop_expired_inbox_days(inbox: std::sync::Weak<Inbox>) {
    let mut every_minute = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every_minute.tick().await;
        match inbox.upgrade() {
            Some(inbox) => inbox.days.drop_expired(),
            None => return,
        }
    }
}

/// LeadNotify without the host: one poll per schedule tick, never two at once.
async fn notify_loop(notifier: Arc<Notifier>, schedule: Schedule) {
    loop {
        let now = Utc::now();
        let Some(next) = schedule.next_after(now) else { return };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        // The run logs its own storage errors; the next tick retries what they left.
        notifier.run_once().await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
