//! The client subcommands and their arguments (clap).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::client::{seg, DEFAULT_TIMEOUT};

/// Where the API is and how output looks (valid after any subcommand).
#[derive(Args, Clone, Debug)]
pub(crate) struct ApiArgs {
    /// The daemon's API: its Unix socket, or http://HOST:PORT (with --token).
    #[arg(
        long,
        global = true,
        env = "IRONSAN_API",
        default_value = "/var/lib/ironsan/api.sock"
    )]
    pub api: String,
    /// Bearer token for a TCP API (the content of data_dir/api.token).
    #[arg(long, global = true, env = "IRONSAN_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
}

/// What to do when the change removes storage initiators are using.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct Decom {
    /// Ask the sessions using it to log out and wait for them.
    #[arg(long, conflicts_with = "force")]
    pub drain: bool,
    /// How long --drain waits (60s, 2m).
    #[arg(long, requires = "drain", value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Proceed at once: initiators get a UNIT ATTENTION, then LOGICAL UNIT
    /// NOT SUPPORTED; sessions of removed targets are logged out.
    #[arg(long)]
    pub force: bool,
}

impl Decom {
    pub fn query(&self) -> String {
        if self.force {
            "mode=force".into()
        } else if self.drain {
            let t = self.timeout.as_deref().unwrap_or("60s");
            format!("mode=drain&timeout={}", seg(t))
        } else {
            String::new()
        }
    }

    /// How long the request may take.
    pub fn bound(&self) -> Result<Duration> {
        let drain = match (&self.timeout, self.drain) {
            (Some(t), _) => crate::api::parse_duration(t).map_err(anyhow::Error::msg)?,
            (None, true) => crate::api::DEFAULT_DRAIN,
            (None, false) => Duration::ZERO,
        };
        Ok(DEFAULT_TIMEOUT + drain)
    }
}

/// The client subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum ClientCommand {
    /// Volumes of the pool (thin, with snapshots and clones).
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Snapshots of volumes (VOLUME@SNAPSHOT).
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// The volume pool: status, online scrub, offline check and repair.
    #[command(subcommand)]
    Pool(super::pool::PoolCmd),
    /// iSCSI targets.
    #[command(subcommand)]
    Target(TargetCmd),
    /// Logical units of a target.
    #[command(subcommand)]
    Lun(LunCmd),
    /// Who may log into a target.
    #[command(subcommand)]
    Acl(AclCmd),
    /// Logged-in initiators.
    #[command(subcommand)]
    Session(SessionCmd),
    /// Listen addresses.
    #[command(subcommand)]
    Portal(PortalCmd),
    /// The live configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Make the daemon serve a configuration file: prints the changes, then applies them.
    Apply {
        /// Configuration file (TOML, the schema of `serve --config`).
        #[arg(short, long)]
        file: PathBuf,
        /// Only print the changes.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        decom: Decom,
    },
    /// One Nagios-style status line; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Check,
    /// The daemon's version, uptime and counts.
    Status,
    /// Counters per initiator, portal and LUN, and recent anomaly events.
    Stats,
    /// Live view of the busiest initiators, LUNs and portals (Ctrl-C quits).
    Top(super::top::TopArgs),
    /// Per-command trace of one initiator, switched on and off at run time.
    #[command(subcommand)]
    Trace(super::stats::TraceCmd),
}

#[derive(Subcommand, Debug)]
pub(crate) enum VolumeCmd {
    /// Create a thin volume.
    Create {
        name: String,
        /// Size such as 10G.
        #[arg(long)]
        size: String,
        /// Logical block size: 512 or 4096.
        #[arg(long, default_value = "512")]
        block_size: u32,
    },
    /// List volumes.
    List,
    /// Grow a volume (shrink with --force: data past the new end is lost).
    Resize {
        name: String,
        #[arg(long)]
        size: String,
        /// Allow shrinking.
        #[arg(long)]
        force: bool,
    },
    /// Delete a volume and its snapshots.
    Delete {
        name: String,
        #[command(flatten)]
        decom: Decom,
    },
    /// New volume from a snapshot (O(1), shares blocks until written).
    Clone {
        /// VOLUME@SNAPSHOT
        snapshot: String,
        /// Name of the new volume.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum SnapshotCmd {
    /// Take a snapshot: VOLUME@SNAPSHOT.
    Create { snapshot: String },
    /// List snapshots (of one volume).
    List { volume: Option<String> },
    /// Delete a snapshot.
    Delete { snapshot: String },
    /// Discard what was written since the (latest) snapshot.
    Rollback { snapshot: String },
}

#[derive(Subcommand, Debug)]
pub(crate) enum TargetCmd {
    /// Create a target (add LUNs with `lun map`, initiators with `acl add`).
    Create {
        iqn: String,
        /// chap (default) or none.
        #[arg(long)]
        auth: Option<String>,
        /// optional (default), header or required.
        #[arg(long)]
        digests: Option<String>,
        /// TargetAlias.
        #[arg(long)]
        alias: Option<String>,
    },
    /// List targets.
    List,
    /// One target with its LUNs, ACL entries and sessions.
    Show { iqn: String },
    /// Delete a target.
    Delete {
        iqn: String,
        #[command(flatten)]
        decom: Decom,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum LunCmd {
    /// Map a file or a volume as LUN ID (replaces an existing LUN ID).
    #[command(group(clap::ArgGroup::new("backing").required(true).args(["file", "volume"])))]
    Map {
        iqn: String,
        id: u16,
        /// Backing file (created sparse when missing; needs --size then).
        #[arg(long, conflicts_with = "volume")]
        file: Option<PathBuf>,
        /// Size such as 10G (with --file).
        #[arg(long, requires = "file")]
        size: Option<String>,
        /// Pool volume.
        #[arg(long)]
        volume: Option<String>,
        /// Logical block size: 512 or 4096.
        #[arg(long)]
        block_size: Option<u32>,
        /// Export read-only.
        #[arg(long)]
        read_only: bool,
        /// Advertise no volatile write cache (every write durable).
        #[arg(long)]
        no_write_cache: bool,
        #[command(flatten)]
        decom: Decom,
    },
    /// Unmap LUN ID.
    Unmap {
        iqn: String,
        id: u16,
        #[command(flatten)]
        decom: Decom,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AclCmd {
    /// Let INITIATOR (or "*") log into IQN.
    Add {
        iqn: String,
        initiator: String,
        #[arg(long)]
        chap_user: Option<String>,
        /// CHAP secret (visible to other users in the process list: prefer --chap-secret-file).
        #[arg(long, conflicts_with = "chap_secret_file")]
        chap_secret: Option<String>,
        /// File whose first line is the CHAP secret.
        #[arg(long)]
        chap_secret_file: Option<PathBuf>,
        /// Mutual CHAP: the name the target answers with.
        #[arg(long)]
        mutual_user: Option<String>,
        #[arg(long, conflicts_with = "mutual_secret_file")]
        mutual_secret: Option<String>,
        #[arg(long)]
        mutual_secret_file: Option<PathBuf>,
        /// LUN masking: the LUN ids this initiator sees (all when omitted).
        #[arg(long, value_delimiter = ',')]
        luns: Option<Vec<u16>>,
    },
    /// Remove an entry (sessions keep running; drop them with `session drop`).
    Remove { iqn: String, initiator: String },
    /// List the entries of a target (secrets are never shown).
    List { iqn: String },
}

#[derive(Subcommand, Debug)]
pub(crate) enum SessionCmd {
    /// List sessions.
    List,
    /// Ask a session to log out (close it at once with --force).
    Drop {
        tsih: u16,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum PortalCmd {
    /// Listen on ADDR (IPv6 as [::1]:3260).
    Add { addr: String },
    /// Stop listening on ADDR (its sessions keep running).
    Remove { addr: String },
    /// Configured and listening addresses.
    List,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ConfigCmd {
    /// The live configuration as TOML (secrets included: `apply` takes it back).
    Show,
}
