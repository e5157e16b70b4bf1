//! The `cairn` command line (clap): `cairn serve` runs the host; `deploy`, `versions`,
//! `activate`, `rollback` and `status` drive a running host's admin API ([`admin`]).
//! `main.rs` only calls [`run`], so other binaries (the examples launcher) can run the same CLI.

pub mod admin;

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::Config;
use crate::config::LogFormat;
use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Cairn: event-sourced domain logic in sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API with the plugins of a directory loaded.
    Serve(ServeArgs),
    /// Talk to a running host's admin API.
    #[command(flatten)]
    Admin(admin::AdminCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// A TOML config file (its keys are those of `CAIRN_*` variables, lowercase).
    #[arg(long, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory: SQLite database and compiled components [default: ./.cairn].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Directory of `.wasm` plugins to load [default: ./.cairn/plugins].
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// A PostgreSQL URL (`postgres://...`) to share with other hosts [default: SQLite in the data
    /// directory; also `CAIRN_DATABASE_URL`].
    #[arg(long)]
    database: Option<String>,
    /// Log format [default: text].
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

/// Parses `args` (program name first) and runs the command until it ends (`serve`: until SIGTERM or SIGINT, then a
/// graceful shutdown; a second signal exits at once).
pub fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<()> {
    let cli = Cli::parse_from(args);
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> Result<()> {
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Admin(command) => {
            let output = admin::execute(command).await?;
            print!("{output}");
            return Ok(());
        }
    };
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(data) = args.data {
        config.data_dir = data;
    }
    if let Some(plugins) = args.plugins {
        config.plugins_dir = plugins;
    }
    if let Some(url) = args.database {
        config.database.url = Some(url);
    }
    if let Some(format) = args.log_format {
        config.log_format = format;
    }
    init_logging(config.log_format);
    let host = crate::start(&config).await?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let signal = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    let grace = std::time::Duration::from_millis(config.http.shutdown_grace_ms);
    tracing::info!(signal, ?grace, "shutting down: no new connections, in-flight requests finish");
    // A second signal: exit at once.
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    });
    host.shutdown().await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
