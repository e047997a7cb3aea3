//! `ironsan`: the iSCSI SAN target daemon and its command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use target::config::Config;
use target::Server;
use tracing::info;

mod api;
mod cli;
mod demo;
mod upgrade;

/// ironsan: an iSCSI SAN target.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    api: cli::ApiArgs,
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
    },
    /// Hand the running daemon over to a new process (after an upgrade of
    /// the binary, for example) without initiators seeing errors.
    Restart {
        /// The daemon's configuration file (its data_dir holds the pid file).
        #[arg(long, short)]
        config: PathBuf,
        /// How long to wait for the new process to take over.
        #[arg(long, default_value = "60")]
        timeout_secs: u64,
    },
    /// Check a configuration file and exit.
    Validate {
        /// Configuration file (TOML).
        config: PathBuf,
    },
    #[command(flatten)]
    Client(cli::ClientCommand),
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
    let result = match cli.command {
        Command::Client(cmd) => cli::run(&cli.api, cmd),
        other => run(other, cli.api.json).map(|()| 0),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("ironsan: {}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command, json: bool) -> Result<()> {
    match command {
        Command::Client(_) => Ok(()),
        Command::Validate { config } => {
            Config::load(&config)?;
            println!("{}: ok", config.display());
            Ok(())
        }
        Command::Audit { config } => {
            let cfg = load(&config)?;
            let matrix = target::audit::access_matrix(&cfg);
            if json {
                println!("{}", serde_json::to_string_pretty(&matrix)?);
            } else {
                println!(
                    "{:<40} {:<40} {:<12} {:<5} LUNS",
                    "TARGET", "INITIATOR", "AUTH", "DIGEST"
                );
                for a in &matrix {
                    let luns: Vec<String> = a.luns.iter().map(u16::to_string).collect();
                    let digest = if a.digests_required { "req" } else { "opt" };
                    println!(
                        "{:<40} {:<40} {:<12} {:<5} {}",
                        a.target,
                        a.initiator,
                        a.auth,
                        digest,
                        luns.join(",")
                    );
                }
                println!("discovery sessions: auth {:?}", cfg.discovery.auth);
            }
            Ok(())
        }
        Command::Restart {
            config,
            timeout_secs,
        } => {
            let cfg = load(&config)?;
            upgrade::restart(
                &cfg.data_dir.join(PID_FILE),
                Duration::from_secs(timeout_secs),
            )
        }
        Command::Serve {
            config,
            demo,
            data_dir,
            portal,
            log_format,
        } => {
            init_logging(log_format);
            let (path, banner) = if demo {
                let (path, banner) = demo::prepare(&data_dir, &portal)?;
                (path, Some(banner))
            } else {
                (config.context("--config is required")?, None)
            };
            let (cfg, seed) = target::control::startup_config(&path)?;
            check_permissions(&path, &cfg);
            serve(cfg, seed, banner)
        }
    }
}

fn load(path: &Path) -> Result<Config> {
    Ok(Config::load(path)?)
}

/// The file holds CHAP secrets: nobody but the owner should read it.
fn check_permissions(path: &Path, cfg: &Config) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        let has_secrets = cfg
            .targets
            .iter()
            .any(|t| t.acls.iter().any(|a| a.chap_secret.is_some()))
            || cfg.discovery.chap_secret.is_some();
        if has_secrets && mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{mode:o}"),
                "the configuration holds CHAP secrets but is readable by others; run chmod 600"
            );
        }
    }
}

/// The daemon's pid file in `data_dir`, for `ironsan restart`.
const PID_FILE: &str = "ironsan.pid";
/// How long a new process may take to adopt the sockets.
const TAKEOVER_BOUND: Duration = Duration::from_secs(30);

fn serve(cfg: Config, seed: String, banner: Option<String>) -> Result<()> {
    // Remember how we were started: a restart runs the binary now at this
    // path (possibly a new release) with the same arguments.
    let exe = std::env::current_exe().context("locating the ironsan binary")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut inherited = upgrade::inherited();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ironsan")
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        // Handlers first: from the moment a portal accepts connections, a
        // SIGTERM must stop the daemon cleanly.
        let mut signals = Signals::register()?;
        let listeners = target::server::Listeners::bind(&cfg.portals, &mut inherited.listeners)?;
        if inherited.is_successor() {
            inherited.signal_ready();
            info!("took over the listening sockets; waiting for the previous process to drain");
            inherited.wait_for_predecessor(Duration::from_secs(120));
        }
        let server = Server::start(&cfg, listeners).await?;
        let control = server.control();
        control.set_seed(seed);
        let api = api::Api::start(control.clone()).await?;
        write_pid_file(&cfg.data_dir.join(PID_FILE))?;
        upgrade::sd_notify(&format!("READY=1\nMAINPID={}", std::process::id()));
        if let Some(banner) = banner {
            println!("{banner}");
        }
        let stop = server.shutdown_handle();
        tokio::spawn(async move {
            loop {
                match signals.next().await {
                    Signal::Stop => {
                        info!("signal received; stopping");
                        break;
                    }
                    Signal::Restart => {
                        info!(exe = %exe.display(), "restart requested; starting the new process");
                        let spawned = upgrade::spawn(&exe, &args, &control.listener_fds())
                            .and_then(|s| s.wait_ready(TAKEOVER_BOUND));
                        match spawned {
                            Ok(pid) => {
                                info!(pid, "the new process has the sockets; draining sessions");
                                break;
                            }
                            Err(e) => tracing::error!(error = %format!("{e:#}"), "restart failed; still serving"),
                        }
                    }
                }
            }
            stop.shutdown();
        });
        server.run().await;
        // A successor has written its own pid by now; remove only ours.
        let pid_file = cfg.data_dir.join(PID_FILE);
        let ours = std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&pid_file);
        }
        api.stop().await;
        Ok(())
    })
}

fn write_pid_file(path: &Path) -> Result<()> {
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()))
}

enum Signal {
    Stop,
    Restart,
}

/// The signals the daemon handles, registered before it serves anything so
/// that an early SIGTERM still stops it cleanly.
struct Signals([tokio::signal::unix::Signal; 4]);

impl Signals {
    fn register() -> Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let get = |k| signal(k).context("installing signal handlers");
        Ok(Self([
            get(SignalKind::terminate())?,
            get(SignalKind::interrupt())?,
            get(SignalKind::user_defined2())?,
            get(SignalKind::hangup())?,
        ]))
    }

    /// SIGTERM/SIGINT stop; SIGUSR2/SIGHUP hand over to a new process.
    async fn next(&mut self) -> Signal {
        let [term, int, usr2, hup] = &mut self.0;
        tokio::select! {
            _ = term.recv() => Signal::Stop,
            _ = int.recv() => Signal::Stop,
            _ = usr2.recv() => Signal::Restart,
            _ = hup.recv() => Signal::Restart,
        }
    }
}

/// An error and its causes on one line, skipping causes whose text an outer
/// message already includes (library errors often show their source).
fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
