//! Building and running the application in either mode: under the Functions host, or standalone
//! (`handler serve`) with LeadNotify on its schedule.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::host::{app, AppState};
use crate::notify::Notifier;
use crate::schedule::Schedule;
use crate::settings::Settings;
use crate::store::TableClient;

pub struct Application {
    listener: TcpListener,
    state: AppState,
    schedule: Option<Schedule>,
}

impl Application {
    /// Binds the listener first (the host counts the handler as started once it answers), then
    /// prepares the rest. `standalone` adds the key check and the in-process timer.
    pub async fn build(settings: &Settings, addr: SocketAddr, standalone: bool) -> Result<Self, String> {
        let listener = TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let store = TableClient::new(settings.storage.clone(), &settings.table);
        let notifier = Notifier::new(settings, TableClient::new(settings.storage.clone(), &settings.table))?;
        if notifier.channels().is_empty() {
            tracing::warn!("no notification channel is configured: leads are stored but nobody is told (set NOTIFY_EMAIL_TO, NOTIFY_WEBHOOK_URL, NOTIFY_TEAMS_URL or NOTIFY_SLACK_URL)");
        } else {
            let names: Vec<&str> = notifier.channels().iter().map(|c| c.name()).collect();
            tracing::info!(channels = ?names, "notification channels");
        }
        let ingest_key = if standalone {
            let key: &SecretString =
                settings.ingest_key.as_ref().ok_or("setting LEADS_INGEST_KEY: required by `handler serve` (callers pass it as ?code=)")?;
            Some(Arc::new(key.clone()))
        } else {
            None
        };
        let schedule = if standalone { Some(Schedule::parse(&settings.schedule)?) } else { None };
        let state = AppState { store, notifier: Arc::new(notifier), ingest_key };
        Ok(Application { listener, state, schedule })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until the process is stopped.
    pub async fn run(self) -> Result<(), String> {
        // Make the table exist early, off the start-up path; inserts create it too if needed.
        let store = self.state.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.create_table().await {
                tracing::warn!(error = %e, "could not create the lead table yet (will retry on the first lead)");
            }
        });
        if let Some(schedule) = self.schedule {
            tokio::spawn(notify_loop(self.state.notifier.clone(), schedule));
        }
        axum::serve(self.listener, app(self.state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| format!("server error: {e}"))
    }
}

/// LeadNotify without the host: one poll per schedule tick, never two at once.
async fn notify_loop(notifier: Arc<Notifier>, schedule: Schedule) {
    loop {
        let now = Utc::now();
        let Some(next) = schedule.next_after(now) else { return };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        if let Err(e) = notifier.run_once().await {
            tracing::error!(error = %e, "LeadNotify poll failed; the next tick retries");
        }
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
