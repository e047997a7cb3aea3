//! The declarative configuration file (`ironsan serve --config FILE`).
//!
//! This TOML schema is a permanent interface: later the management API and
//! `ironsan apply` read and write the same document. Unknown keys are errors,
//! so a typo never silently changes behaviour. Every validation error names the
//! key path (`target[0].acl[1].chap_secret`) and the problem.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Minimum CHAP secret length in bytes (RFC 7143 section 12.1.3 recommends 12+ for
/// secrets that are not random).
pub const MIN_CHAP_SECRET_LEN: usize = 12;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML did not parse or did not match the schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with the key and line.
        message: String,
    },
    /// A value is out of its allowed range or inconsistent with another.
    #[error("{path}: {key}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Key path, e.g. `target[0].lun[1].size`.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory for the daemon's state.
    pub data_dir: PathBuf,
    /// Listen addresses (IPv4 `a.b.c.d:port`, IPv6 `[::1]:port`). The
    /// position in this list is the portal's relative target port id.
    pub portals: Vec<String>,
    /// ALUA target port groups; portals in no group form group 1,
    /// active/optimized.
    #[serde(
        default,
        rename = "portal_group",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub portal_groups: Vec<PortalGroup>,
    /// Protocol tuning; defaults suit most deployments.
    #[serde(default)]
    pub iscsi: IscsiSettings,
    /// Discovery (SendTargets) sessions.
    #[serde(default)]
    pub discovery: Discovery,
    /// Login throttling and admission limits.
    #[serde(default)]
    pub security: SecuritySettings,
    /// The management API (`[api]`).
    #[serde(default, skip_serializing_if = "ApiSettings::is_default")]
    pub api: ApiSettings,
    /// Exported targets.
    #[serde(default, rename = "target")]
    pub targets: Vec<Target>,
}

/// The management API. It always listens on the Unix socket
/// `data_dir/api.sock` (mode 0600); `listen` adds a TCP listener whose
/// requests need `Authorization: Bearer` with the token in `data_dir/api.token`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// TCP address such as `127.0.0.1:9260`; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

impl ApiSettings {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if let Some(l) = &self.listen {
            l.parse::<SocketAddr>().map_err(|_| {
                (
                    "api.listen".to_string(),
                    format!("{l:?} is not an address:port (IPv6 as \"[::1]:9260\")"),
                )
            })?;
        }
        Ok(())
    }
}

/// How logins authenticate.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// CHAP, one-way or mutual (the default).
    #[default]
    Chap,
    /// No authentication: any initiator listed in the ACL may log in.
    None,
}

/// Which CRC32C digests a target requires.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DigestMode {
    /// Used when the initiator asks for them.
    #[default]
    Optional,
    /// Header digests required, data digests optional (for initiators such
    /// as libiscsi that implement only header digests).
    Header,
    /// Header and data digests required; logins without both are refused.
    Required,
}

/// Protocol parameters the target offers (RFC 7143 section 13).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IscsiSettings {
    /// Largest data segment the target accepts, in bytes (512..=16777215).
    pub max_recv_data_segment_length: u32,
    /// Largest burst (R2T or Data-In sequence) in bytes.
    pub max_burst_length: u32,
    /// Largest unsolicited burst in bytes.
    pub first_burst_length: u32,
    /// Whether the target accepts immediate data.
    pub immediate_data: bool,
    /// Whether the initiator must wait for an R2T before sending data.
    pub initial_r2t: bool,
    /// Number of R2Ts outstanding per command.
    pub max_outstanding_r2t: u16,
    /// Commands queued per session (the CmdSN window).
    pub queue_depth: u32,
    /// Seconds of silence after which the target pings the initiator (0 = never).
    pub nop_in_interval: u32,
    /// Seconds without an answer to a ping after which the connection is dropped.
    pub nop_in_timeout: u32,
    /// Seconds a login may take from connect to full feature phase.
    pub login_timeout: u32,
    /// Memory all sessions together may hold in command data buffers, such
    /// as `1G`; commands beyond it get TASK SET FULL and are retried.
    pub io_memory: String,
}

impl Default for IscsiSettings {
    fn default() -> Self {
        Self {
            max_recv_data_segment_length: 128 * 1024,
            max_burst_length: 1024 * 1024,
            first_burst_length: 256 * 1024,
            immediate_data: true,
            initial_r2t: false,
            max_outstanding_r2t: 8,
            queue_depth: 128,
            nop_in_interval: 10,
            nop_in_timeout: 30,
            login_timeout: 15,
            io_memory: "1G".into(),
        }
    }
}

/// An ALUA target port group: a set of portals sharing one access state.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortalGroup {
    /// Target port group id, also the iSCSI portal group tag (1..65535).
    pub id: u16,
    /// Member portals (as listed in `portals`).
    pub portals: Vec<String>,
    /// Access state reported to initiators.
    #[serde(default)]
    pub state: AluaStateConfig,
}

/// ALUA access state of a port group (SPC-4 5.16).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum AluaStateConfig {
    /// Full performance path.
    #[default]
    #[serde(rename = "active/optimized")]
    ActiveOptimized,
    /// Usable, not preferred.
    #[serde(rename = "active/non-optimized")]
    ActiveNonOptimized,
    /// Reachable, serves only inquiry-type commands.
    #[serde(rename = "standby")]
    Standby,
    /// Reachable, refuses media access.
    #[serde(rename = "unavailable")]
    Unavailable,
}

/// Where a portal sits in the port layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortalPlace {
    /// Relative target port id (1-based position in `portals`).
    pub relative_port: u16,
    /// Target port group id / portal group tag.
    pub group: u16,
}

impl Config {
    /// The relative port and group of portal `name`.
    pub fn portal_place(&self, name: &str) -> PortalPlace {
        let index = self.portals.iter().position(|p| p == name).unwrap_or(0);
        let group = self
            .portal_groups
            .iter()
            .find(|g| g.portals.iter().any(|p| p == name))
            .map(|g| g.id)
            .unwrap_or(1);
        PortalPlace {
            relative_port: u16::try_from(index + 1).unwrap_or(u16::MAX),
            group,
        }
    }

    /// Every port group with its state and relative ports (the implicit
    /// group 1 included when some portal belongs to no group).
    pub fn alua_groups(&self) -> Vec<(u16, AluaStateConfig, Vec<u16>)> {
        let mut groups: Vec<(u16, AluaStateConfig, Vec<u16>)> = self
            .portal_groups
            .iter()
            .map(|g| (g.id, g.state, Vec::new()))
            .collect();
        for p in &self.portals {
            let place = self.portal_place(p);
            match groups.iter_mut().find(|g| g.0 == place.group) {
                Some(g) => g.2.push(place.relative_port),
                None => groups.push((
                    place.group,
                    AluaStateConfig::ActiveOptimized,
                    vec![place.relative_port],
                )),
            }
        }
        groups
    }
}

/// Login throttling, lockout and admission control.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySettings {
    /// Minimum CHAP secret length in bytes (at least 12).
    pub min_chap_secret_len: usize,
    /// Failed logins of one initiator name within the window that lock it out.
    pub max_login_failures: usize,
    /// Failed logins from one source address within the window that lock it out.
    pub max_login_failures_per_address: usize,
    /// Window for counting failures, in seconds.
    pub login_failure_window: u64,
    /// Cool-down of a locked-out initiator or address, in seconds.
    pub lockout: u64,
    /// Delay before a locked-out attempt is refused, in milliseconds.
    pub lockout_delay_ms: u64,
    /// Connections per source address that may be open without having sent
    /// anything; a new one beyond this closes the oldest silent one.
    pub max_pending_logins_per_address: usize,
    /// Logins in progress at once; more are answered "service unavailable".
    pub max_logins_in_progress: usize,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            min_chap_secret_len: MIN_CHAP_SECRET_LEN,
            max_login_failures: 10,
            max_login_failures_per_address: 100,
            login_failure_window: 60,
            lockout: 300,
            lockout_delay_ms: 1000,
            max_pending_logins_per_address: 256,
            max_logins_in_progress: 4096,
        }
    }
}

impl SecuritySettings {
    fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, p: &str| Err((format!("security.{k}"), p.to_string()));
        if !(MIN_CHAP_SECRET_LEN..=255).contains(&self.min_chap_secret_len) {
            return err("min_chap_secret_len", "must be between 12 and 255");
        }
        if self.max_login_failures == 0 || self.max_login_failures_per_address == 0 {
            return err("max_login_failures", "must be at least 1");
        }
        if self.login_failure_window == 0 {
            return err("login_failure_window", "must be at least 1 second");
        }
        if self.max_pending_logins_per_address == 0 || self.max_logins_in_progress == 0 {
            return err(
                "max_pending_logins_per_address",
                "limits must be at least 1",
            );
        }
        Ok(())
    }
}

/// Discovery session settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    /// How discovery sessions authenticate.
    #[serde(default)]
    pub auth: DiscoveryAuth,
    /// CHAP account for discovery sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chap_user: Option<String>,
    /// CHAP secret for discovery sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chap_secret: Option<String>,
}

impl Default for Discovery {
    fn default() -> Self {
        Self {
            auth: DiscoveryAuth::Acl,
            chap_user: None,
            chap_secret: None,
        }
    }
}

/// How discovery sessions authenticate.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryAuth {
    /// With the credentials of the initiator's ACL entries (the default): an
    /// initiator discovers only what it could log into, proving it first.
    #[default]
    Acl,
    /// With the dedicated `chap_user` / `chap_secret` of this section.
    Chap,
    /// No authentication (targets are still filtered by initiator name).
    None,
}

/// One iSCSI target.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// iSCSI qualified name (`iqn.YYYY-MM.reversed.domain[:suffix]`) or `eui.` name.
    pub iqn: String,
    /// Human readable alias sent as TargetAlias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Authentication mode.
    #[serde(default)]
    pub auth: AuthMode,
    /// Digest policy.
    #[serde(default)]
    pub digests: DigestMode,
    /// Logical units.
    #[serde(default, rename = "lun")]
    pub luns: Vec<Lun>,
    /// Who may log in.
    #[serde(default, rename = "acl")]
    pub acls: Vec<Acl>,
}

/// One logical unit.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Lun {
    /// LUN number (0..16383).
    pub id: u16,
    /// Backing file; created sparse when missing. Exactly one of `file` and `volume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Backing volume of the pool in `data_dir/pool`; created when missing and
    /// `size` is given. Exactly one of `file` and `volume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// Size such as `10G`, `512M` or a byte count; required when the file or volume is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Logical block size: 512 (default) or 4096.
    #[serde(default = "default_block_size")]
    pub block_size: u32,
    /// Advertise a volatile write cache (WCE=1). With `false` every write is durable before its response.
    #[serde(default = "default_true")]
    pub write_cache: bool,
    /// Export read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Unit serial number; derived from the target and LUN when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

fn default_block_size() -> u32 {
    512
}

fn default_true() -> bool {
    true
}

/// One access control entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    /// Initiator name, or `*` for any.
    pub initiator: String,
    /// CHAP user name the initiator authenticates with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chap_user: Option<String>,
    /// CHAP secret (at least 12 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chap_secret: Option<String>,
    /// User name the target answers mutual CHAP with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutual_user: Option<String>,
    /// Secret the target answers mutual CHAP with; must differ from chap_secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutual_secret: Option<String>,
    /// LUN masking: the LUN ids this initiator sees (all when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub luns: Option<Vec<u16>>,
}

impl Acl {
    /// Whether this entry lets its initiator see LUN `id`.
    pub fn sees(&self, id: u64) -> bool {
        self.luns
            .as_ref()
            .is_none_or(|l| l.iter().any(|&x| u64::from(x) == id))
    }
}

#[path = "config_validate.rs"]
mod validate;
pub use validate::{check_iscsi_name, check_volume_name, parse_size};

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
