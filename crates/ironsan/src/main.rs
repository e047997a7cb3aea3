//! `ironsan`: the iSCSI SAN target daemon and its command line.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use target::config::Config;
use target::Server;
use tracing::info;

mod demo;

/// ironsan: an iSCSI SAN target.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the target daemon.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, short, required_unless_present = "demo", conflicts_with = "demo")]
        config: Option<PathBuf>,
        /// Start a demo target: a local data directory, one 1 GiB LUN and generated CHAP credentials.
        #[arg(long)]
        demo: bool,
        /// Data directory for --demo.
        #[arg(long, default_value = "demo-data", requires = "demo")]
        data_dir: PathBuf,
        /// Listen address for --demo.
        #[arg(long, default_value = "127.0.0.1:3260", requires = "demo")]
        portal: String,
        /// Log format.
        #[arg(long, value_enum, default_value = "human")]
        log_format: LogFormat,
    },
    /// Print the access matrix of a configuration: which initiator reaches
    /// which LUN of which target, and how it authenticates.
    Audit {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check a configuration file and exit.
    Validate {
        /// Configuration file (TOML).
        config: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IRONSAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ironsan: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Validate { config } => {
            Config::load(&config)?;
            println!("{}: ok", config.display());
            Ok(())
        }
        Command::Audit { config, json } => {
            let cfg = load(&config)?;
            let matrix = target::audit::access_matrix(&cfg);
            if json {
                println!("{}", serde_json::to_string_pretty(&matrix)?);
            } else {
                println!("{:<40} {:<40} {:<12} {:<5} LUNS", "TARGET", "INITIATOR", "AUTH", "DIGEST");
                for a in &matrix {
                    let luns: Vec<String> = a.luns.iter().map(u16::to_string).collect();
                    let digest = if a.digests_required { "req" } else { "opt" };
                    println!("{:<40} {:<40} {:<12} {:<5} {}", a.target, a.initiator, a.auth, digest, luns.join(","));
                }
                println!("discovery sessions: auth {:?}", cfg.discovery.auth);
            }
            Ok(())
        }
        Command::Serve {
            config,
            demo,
            data_dir,
            portal,
            log_format,
        } => {
            init_logging(log_format);
            let (cfg, banner) = if demo {
                let (cfg, banner) = demo::prepare(&data_dir, &portal)?;
                (cfg, Some(banner))
            } else {
                let path = config.context("--config is required")?;
                (load(&path)?, None)
            };
            serve(cfg, banner)
        }
    }
}

fn load(path: &Path) -> Result<Config> {
    Ok(Config::load(path)?)
}

fn serve(cfg: Config, banner: Option<String>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ironsan")
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let server = Server::bind(&cfg).await?;
        if let Some(banner) = banner {
            println!("{banner}");
        }
        let stop = server.shutdown_handle();
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("signal received; stopping");
            stop.shutdown();
        });
        server.run().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the daemon can still be stopped by SIGKILL.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
