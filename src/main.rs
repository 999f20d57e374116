//! `handler`: the Azure Functions custom handler, its standalone mode, and the lead tools.
//! Only wiring and the command line live here.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use marketplace_leads::notify::Notifier;
use marketplace_leads::serve::Application;
use marketplace_leads::settings::{Settings, SETTINGS};
use marketplace_leads::store::TableClient;
use marketplace_leads::tools::{self, LeadFilter};

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
    },
    /// Post Microsoft's validation lead (MSFT_TEST_<digits>) to a LeadIngest URL and explain the answer.
    SendTestLead {
        /// The full URL, as pasted into Partner Center (…/api/LeadIngest?code=<key>).
        url: String,
    },
    /// Read the lead table.
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
    /// Every lead (newest first) as CSV or JSON, for a CRM import.
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
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Csv,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, None | Some(Command::Serve { .. }));
    init_tracing(if serving { "info" } else { "warn" });
    if let Some(Command::Settings { names }) = &cli.command {
        print_settings(*names);
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
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Option<Command>) -> Result<u8, String> {
    if let Some(Command::SendTestLead { url }) = &command {
        return Ok(tools::send_test_lead(url).await as u8);
    }
    let settings = Settings::from_env().map_err(|e| e.to_string())?;
    match command {
        None => {
            let port = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")
                .map_err(|_| "setting FUNCTIONS_CUSTOMHANDLER_PORT: not set (the Functions host sets it; to run without the host use `handler serve`)".to_string())?
                .parse::<u16>()
                .map_err(|_| "setting FUNCTIONS_CUSTOMHANDLER_PORT: not a port number".to_string())?;
            let app = Application::build(&settings, SocketAddr::from(([127, 0, 0, 1], port)), false).await?;
            tracing::info!(addr = %app.local_addr(), table = %settings.table, "custom handler listening");
            app.run().await?;
        }
        Some(Command::Serve { port, bind }) => {
            let app = Application::build(&settings, SocketAddr::new(bind, port), true).await?;
            let addr = app.local_addr();
            let host = if bind.is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
            tracing::info!(%addr, table = %settings.table, schedule = %settings.schedule, "standalone handler listening");
            println!("LeadIngest: POST http://{host}:{}/api/LeadIngest?code=<LEADS_INGEST_KEY>", addr.port());
            app.run().await?;
        }
        Some(Command::Notify) => {
            let notifier = Notifier::new(&settings, TableClient::new(settings.storage.clone(), &settings.table))?;
            let report = notifier.run_once().await.map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
        }
        Some(Command::Leads { command }) => leads(&settings, command).await?,
        Some(Command::SendTestLead { .. } | Command::Settings { .. }) => {}
    }
    Ok(0)
}

async fn leads(settings: &Settings, command: LeadsCommand) -> Result<(), String> {
    let store = TableClient::new(settings.storage.clone(), &settings.table);
    let filter = |f: &FilterArgs| -> Result<LeadFilter, String> {
        Ok(LeadFilter {
            offer: f.offer.clone(),
            action: f.action.clone(),
            since: f.since.as_deref().map(tools::parse_since).transpose()?,
            include_tests: f.include_tests,
        })
    };
    let stdout = std::io::stdout();
    match command {
        LeadsCommand::List { filter: f, limit } => {
            let mut leads = tools::read_leads(&store, &filter(&f)?).await.map_err(|e| e.to_string())?;
            leads.truncate(limit);
            tools::print_list(&leads, &mut stdout.lock()).map_err(|e| e.to_string())?;
        }
        LeadsCommand::Export { filter: f, format, output } => {
            let leads = tools::read_leads(&store, &filter(&f)?).await.map_err(|e| e.to_string())?;
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?),
                None => Box::new(stdout.lock()),
            };
            match format {
                Format::Csv => tools::write_csv(&leads, &mut out)?,
                Format::Json => tools::write_json(&leads, &mut out)?,
            }
            out.flush().map_err(|e| e.to_string())?;
            if let Some(path) = output {
                eprintln!("{} lead(s) written to {}", leads.len(), path.display());
            }
        }
        LeadsCommand::Status => {
            let all = LeadFilter { include_tests: true, ..Default::default() };
            let leads = tools::read_leads(&store, &all).await.map_err(|e| e.to_string())?;
            let notifier = Notifier::new(settings, store.clone())?;
            tools::print_status(&leads, notifier.channels(), &mut stdout.lock()).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn print_settings(names_only: bool) {
    for s in SETTINGS {
        if names_only {
            println!("{}", s.name);
        } else {
            let default = if s.default.is_empty() { "(none)" } else { s.default };
            let secret = if s.secret { " [secret]" } else { "" };
            println!("{}{secret}\n  default: {default}\n  {}\n", s.name, s.help);
        }
    }
}

fn init_tracing(default_level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // stderr: the Functions host collects it, and stdout stays clean for the tools' output.
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
}
