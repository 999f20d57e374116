//! `handler`: the Azure Functions custom handler, its standalone mode, and the lead tools.
//! Only wiring and the command line live here.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use clap::{Parser, Subcommand, ValueEnum};
use marketplace_leads::app::Application;
use marketplace_leads::channel_id::ChannelId;
use marketplace_leads::http::server::Limits;
use marketplace_leads::http::Mode;
use marketplace_leads::notify::digest_message::MAX_PERIOD_DAYS;
use marketplace_leads::notify::lead_state::configured;
use marketplace_leads::notify::notify_table::NotifyTable;
use marketplace_leads::notify::Notifier;
use marketplace_leads::settings::definition::{Valid, ALL as SETTINGS};
use marketplace_leads::settings::Settings;
use marketplace_leads::store::SharedTable;
use marketplace_leads::tools::{self, digest_status, export, forget, list, status, test_lead, LeadFilter};

#[derive(Parser)]
#[command(name = "handler", version, about = "Microsoft commercial-marketplace leads: store every lead, tell the publisher at once.")]
#[command(
    long_about = "With no command: the Azure Functions custom handler (listens on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT).\nSettings come from the environment; `handler settings` lists them."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run standalone without the Functions host: LeadIngest at /api/LeadIngest?code=<LEADS_INGEST_KEY>
    /// and LeadNotify on NOTIFY_SCHEDULE.
    Serve {
        /// Port to listen on.
        #[arg(long, default_value_t = 7071)]
        port: u16,
        /// Address to listen on (0.0.0.0 in a container).
        #[arg(long, default_value = "127.0.0.1")]
        bind: IpAddr,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Post Microsoft's validation lead (MSFT_TEST_<digits>) to a LeadIngest URL and explain the answer.
    SendTestLead {
        /// The full URL, as pasted into Partner Center (…/api/LeadIngest?code=<key>).
        url: String,
    },
    /// Read the lead table; forget a customer on request.
    Leads {
        #[command(subcommand)]
        command: LeadsCommand,
    },
    /// Run one LeadNotify poll now and print what it did as JSON.
    Notify,
    /// List every setting the handler reads, with its default.
    Settings {
        /// Print only the names, one per line.
        #[arg(long)]
        names: bool,
    },
}

/// Limits on clients of `handler serve` (under the Functions host the defaults apply, without
/// the per-peer cap).
#[derive(clap::Args, Clone)]
struct LimitArgs {
    /// Seconds a client has to send a request's headers; also how long an idle kept-alive
    /// connection stays open.
    #[arg(long, value_name = "SECONDS", default_value_t = Limits::DEFAULT_HEADER_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Seconds a client has to send a whole request body, counted from its headers.
    #[arg(long, value_name = "SECONDS", default_value_t = Limits::DEFAULT_BODY_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout: u64,
    /// Open connections at most; beyond it new ones are closed at once (also kept under the
    /// open-file limit).
    #[arg(long, value_name = "N", default_value_t = Limits::DEFAULT_MAX_CONNECTIONS, value_parser = parse_count)]
    max_connections: usize,
    /// Open connections from one address (IPv6: one /64) at most, loopback included; at most
    /// half of --max-connections. Raise it behind a reverse proxy on the same machine.
    #[arg(long, value_name = "N", default_value_t = Limits::DEFAULT_MAX_CONNECTIONS_PER_PEER, value_parser = parse_count)]
    max_connections_per_peer: usize,
}

impl LimitArgs {
    fn to_limits(&self) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(self.header_timeout),
            body_timeout: Duration::from_secs(self.body_timeout),
            max_connections: self.max_connections,
            max_connections_per_peer: Some(self.max_connections_per_peer),
        }
    }
}

fn parse_count(s: &str) -> Result<usize, String> {
    s.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| "a whole number of at least 1".to_string())
}

#[derive(clap::Args, Clone)]
struct FilterArgs {
    /// Only offers whose id or title contains this text.
    #[arg(long)]
    offer: Option<String>,
    /// Only this action code (INS, PLT, DNC, Create, StartTestDrive).
    #[arg(long)]
    action: Option<String>,
    /// Only leads received at or after this date (2026-11-01) or time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Include Microsoft's MSFT_TEST validation leads.
    #[arg(long)]
    include_tests: bool,
}

impl FilterArgs {
    fn to_filter(&self) -> anyhow::Result<LeadFilter> {
        Ok(LeadFilter {
            offer: self.offer.clone(),
            action: self.action.clone(),
            since: self.since.as_deref().map(tools::parse_since).transpose().map_err(anyhow::Error::msg)?,
            include_tests: self.include_tests,
        })
    }
}

#[derive(Subcommand)]
enum LeadsCommand {
    /// Leads, newest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Show at most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Every lead as CSV or JSON, for a CRM import (streamed in the table's order, not sorted).
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
        /// Write to this file instead of stdout.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Notification state per channel, with every failure.
    Status,
    /// One customer's leads, oldest first, whichever route brought them.
    Journey {
        /// The customer's e-mail address (matched trimmed, ASCII case ignored).
        email: String,
    },
    /// Put every lead already in the table into the customer-journey index, so customers whose
    /// leads predate LeadNotify (or this version) are recognised as returning. Safe to repeat.
    Reindex,
    /// Remove one customer's personal data on request (GDPR Art. 17).
    ///
    /// Deletes the lead rows whose own customer address is the given one (the Email column,
    /// Microsoft's CustomerInfo, or an unparsed payload's email field), with their journey-index
    /// entries. Other customers' leads that merely mention the address are kept, with the address
    /// replaced by "[forgotten address]" (plain, JSON-escaped or base64-encoded), as in the
    /// notifier's state rows. Addresses match trimmed and ASCII-case-insensitively only.
    ///
    /// With the CRM settings of LeadNotify present, it also deletes what this app created there
    /// (the Dynamics 365 lead row, the Salesforce Lead, the HubSpot notes) and lists the HubSpot
    /// contact and Marketo person it created or updated, with their ids and how to erase them;
    /// --erase-crm-people erases those too. Not touched: Microsoft's copy in Partner Center,
    /// notifications already sent, exports, other customers' CRM records that mention the address.
    ///
    /// Lists every row as "delete" or "redact" first and asks. Exit code 1 when anything is left
    /// (a CRM down, a refusal), named in the output; running it again finishes the job.
    Forget {
        /// The customer's e-mail address (matched trimmed, ASCII case ignored).
        email: String,
        /// Remove without asking (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
        /// Also erase the people this app created or updated in CRMs (HubSpot contact, with
        /// HubSpot's GDPR delete; Marketo person), which may hold your own history with them.
        #[arg(long)]
        erase_crm_people: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Csv,
    Json,
}

fn main() -> ExitCode {
    // An empty SSL_CERT_FILE (an app setting left blank) means unset, as in `net::client_builder`;
    // the system-store loader would otherwise read the path "" and trust nothing. Done before
    // any thread exists.
    if std::env::var_os("SSL_CERT_FILE").is_some_and(|v| v.is_empty()) {
        std::env::remove_var("SSL_CERT_FILE");
    }
    let cli = Cli::parse();
    let serving = matches!(cli.command, None | Some(Command::Serve { .. }));
    init_tracing(if serving { "info" } else { "warn" });
    if let Some(Command::Settings { names }) = &cli.command {
        print_settings(*names);
        if !names {
            print_channel_status();
        }
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Option<Command>) -> anyhow::Result<u8> {
    if let Some(Command::SendTestLead { url }) = &command {
        return Ok(test_lead::send_test_lead(url).await as u8);
    }
    let settings = Settings::from_env()?;
    match command {
        None => {
            let port = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")
                .map_err(|_| anyhow!("setting FUNCTIONS_CUSTOMHANDLER_PORT: not set (the Functions host sets it; to run without the host use `handler serve`)"))?
                .parse::<u16>()
                .map_err(|_| anyhow!("setting FUNCTIONS_CUSTOMHANDLER_PORT: not a port number"))?;
            let app = Application::build(&settings, SocketAddr::from(([127, 0, 0, 1], port)), Mode::Host).await?;
            tracing::info!(addr = %app.local_addr(), table = %settings.storage.table, "custom handler listening");
            app.run().await?;
        }
        Some(Command::Serve { port, bind, limits }) => {
            let key = settings
                .ingest_key
                .clone()
                .ok_or_else(|| anyhow!("setting LEADS_INGEST_KEY: required by `handler serve` (callers pass it as ?code=)"))?;
            let app =
                Application::build(&settings, SocketAddr::new(bind, port), Mode::Standalone { key }).await?.with_limits(limits.to_limits());
            let addr = app.local_addr();
            let host = if bind.is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
            tracing::info!(%addr, table = %settings.storage.table, schedule = %settings.notify.schedule, "standalone handler listening");
            println!("LeadIngest: POST http://{host}:{}/api/LeadIngest?code=<LEADS_INGEST_KEY>", addr.port());
            println!("Lead inbox: http://{host}:{}/api/Inbox", addr.port());
            app.run().await?;
        }
        Some(Command::Notify) => {
            for e in &settings.replaced_by_default {
                tracing::error!(error = %e, "invalid setting: its default is used");
            }
            let notifier = Notifier::new(&settings, Arc::new(settings.storage.client()?)).map_err(anyhow::Error::msg)?;
            let report = notifier.run_once().await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.errors > 0 {
                return Ok(1);
            }
        }
        Some(Command::Leads { command }) => leads(&settings, command).await?,
        Some(Command::SendTestLead { .. } | Command::Settings { .. }) => {}
    }
    Ok(0)
}

async fn leads(settings: &Settings, command: LeadsCommand) -> anyhow::Result<()> {
    let store: SharedTable = Arc::new(settings.storage.client()?);
    let stdout = std::io::stdout();
    match command {
        LeadsCommand::List { filter, limit } => {
            let all = tools::read_leads(&store, &LeadFilter { include_tests: true, ..Default::default() }).await?;
            let mut leads = tools::filter_leads(all.clone(), &filter.to_filter()?);
            leads.truncate(limit);
            list::print_list(&leads, &all, &mut stdout.lock())?;
        }
        LeadsCommand::Journey { email } => {
            let all = tools::read_leads(&store, &LeadFilter { include_tests: true, ..Default::default() }).await?;
            tools::journey::print_journey(&email, &all, &mut stdout.lock())?;
        }
        LeadsCommand::Export { filter, format, output } => {
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(private_file(path).with_context(|| path.display().to_string())?),
                None => Box::new(stdout.lock()),
            };
            let format = match format {
                Format::Csv => export::ExportFormat::Csv,
                Format::Json => export::ExportFormat::Json,
            };
            let mut writer = export::ExportWriter::new(format, &mut out)?;
            let mut pages = tools::query::LeadPages::new(&filter.to_filter()?);
            while let Some(page) = pages.next(&store).await? {
                writer.write(&page)?;
            }
            let written = writer.finish()?;
            if let Some(path) = output {
                eprintln!("{written} lead(s) written to {}", path.display());
            }
        }
        LeadsCommand::Status => {
            let all = LeadFilter { include_tests: true, ..Default::default() };
            let leads = tools::read_leads(&store, &all).await?;
            let channels = &settings.channels;
            status::print_status(
                &leads,
                &marketplace_leads::notify::lead_state::watched(channels),
                &channels.misconfigured,
                &mut stdout.lock(),
            )?;
            let now = chrono::Utc::now();
            let notify_table = NotifyTable::beside(&store);
            let digests = digest_status::read_recent(notify_table.table(), now).await?;
            let digest_configured = channels.digest.is_some() || channels.misconfigured.iter().any(|m| m.channel == ChannelId::Digest);
            digest_status::print_digest_status(&digests, digest_configured, &mut stdout.lock())?;
            if let (true, Some(days)) = (digest_configured, settings.notify.retention_days) {
                let since = now - chrono::Duration::days(MAX_PERIOD_DAYS as i64 + 1);
                if notify_table.digest_listed_until(since, now).await?.is_none() {
                    writeln!(
                        stdout.lock(),
                        "Retention WAITS: no digest has been sent in the last {} days, and LEADS_RETENTION_DAYS={days} deletes no lead a digest has not listed",
                        MAX_PERIOD_DAYS + 1
                    )?;
                }
            }
        }
        LeadsCommand::Reindex => {
            let mut pages = tools::query::LeadPages::new(&LeadFilter { include_tests: true, ..Default::default() });
            let mut done = tools::reindex::Reindexed::default();
            while let Some(page) = pages.next(&store).await? {
                done.add(tools::reindex::reindex(&store, &page).await?);
            }
            println!(
                "{} lead(s) of {} customer(s) in the journey index; {} lead(s) link to no one (test leads, no e-mail address)",
                done.indexed,
                done.customers.len(),
                done.unlinked
            );
            if !settings.notify.journey {
                eprintln!("note: NOTIFY_JOURNEY is false here, so notifications do not use the index");
            }
        }
        LeadsCommand::Forget { email, yes, erase_crm_people } => {
            let crms = marketplace_leads::notify::crm::Crms::new(&settings.channels);
            let http = marketplace_leads::notify::transport::http_client(std::time::Duration::from_secs(30)).map_err(anyhow::Error::msg)?;
            let options = forget::Options { yes, crm: Some(forget::CrmAccess { http, crms: &crms, erase_people: erase_crm_people }) };
            forget::forget(&store, &email, options, &mut stdout.lock()).await?
        }
    }
    Ok(())
}

/// Creates (or truncates) a file only its owner can read: an export holds customers' personal
/// data, and the umask would otherwise leave it world-readable.
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        // `mode` applies to new files only; an existing file is narrowed too.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    options.open(path)
}

fn print_settings(names_only: bool) {
    for s in SETTINGS {
        if names_only {
            println!("{}", s.name);
        } else {
            let default = if s.default.is_empty() { "(none)" } else { s.default };
            let secret = if s.secret { " [secret]" } else { "" };
            let valid = match s.valid {
                Valid::Number { min, max } => format!("\n  valid: a whole number from {min} to {max}"),
                Valid::Flag => "\n  valid: true or false".to_string(),
                Valid::OneOf(words) => format!("\n  valid: {}", words.join(", ")),
                _ => String::new(),
            };
            println!("{}{secret}\n  default: {default}{valid}\n  {}\n", s.name, s.help);
        }
    }
}

/// What the current environment turns on, so a publisher sees a misconfigured channel here too.
fn print_channel_status() {
    match Settings::from_env() {
        Err(e) => println!("Current environment: {e}"),
        Ok(settings) => {
            let on: Vec<&str> = configured(&settings.channels).iter().map(|c| c.name()).collect();
            println!("Current environment: channels on: {}", if on.is_empty() { "none".to_string() } else { on.join(", ") });
            for e in &settings.replaced_by_default {
                println!("  {} MISCONFIGURED: {e} (LeadNotify uses the default until this is fixed)", e.name);
            }
            if let Some(digest) = &settings.channels.digest {
                println!("  Digest on, schedule `{}`", digest.schedule);
            }
            for bad in &settings.channels.misconfigured {
                println!("  {} MISCONFIGURED: {} (its leads stay pending until this is fixed)", bad.channel, bad.error);
            }
        }
    }
}

fn init_tracing(default_level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // stderr: the Functions host collects it, and stdout stays clean for the tools' output.
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
}
