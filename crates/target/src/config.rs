//! The declarative configuration file (`ironsan serve --config FILE`).
//!
//! This TOML schema is a permanent interface: later the management API and
//! `ironsan apply` read and write the same document. Unknown keys are errors,
//! so a typo never silently changes behaviour. Every validation error names the
//! key path (`target[0].acl[1].chap_secret`) and the problem.

use std::collections::HashSet;
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
    /// Connections per source address that may be logging in at once; a new
    /// one beyond this closes the oldest.
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
            max_pending_logins_per_address: 64,
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

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        cfg.validate()
            .map_err(|(key, problem)| ConfigError::Invalid {
                path: path.to_owned(),
                key,
                problem,
            })?;
        Ok(cfg)
    }

    /// The portal addresses, parsed.
    pub fn portal_addrs(&self) -> Vec<SocketAddr> {
        self.portals.iter().filter_map(|p| p.parse().ok()).collect()
    }

    /// Checks every rule a TOML schema cannot express. Errors are (key, problem).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(("data_dir".into(), "must not be empty".into()));
        }
        if self.portals.is_empty() {
            return Err((
                "portals".into(),
                "at least one listen address is required".into(),
            ));
        }
        let mut seen = HashSet::new();
        for (i, p) in self.portals.iter().enumerate() {
            let addr: SocketAddr = p.parse().map_err(|_| {
                (
                    format!("portals[{i}]"),
                    format!("{p:?} is not an address:port (IPv6 as \"[::1]:3260\")"),
                )
            })?;
            if !seen.insert(addr) {
                return Err((format!("portals[{i}]"), format!("{p} is listed twice")));
            }
        }
        let mut group_ids = HashSet::new();
        let mut grouped = HashSet::new();
        for (g, group) in self.portal_groups.iter().enumerate() {
            let key = format!("portal_group[{g}]");
            if group.id == 0 || !group_ids.insert(group.id) {
                return Err((
                    format!("{key}.id"),
                    format!("{} must be unique and at least 1", group.id),
                ));
            }
            for (i, p) in group.portals.iter().enumerate() {
                if !self.portals.contains(p) {
                    return Err((
                        format!("{key}.portals[{i}]"),
                        format!("{p} is not listed in portals"),
                    ));
                }
                if !grouped.insert(p.clone()) {
                    return Err((
                        format!("{key}.portals[{i}]"),
                        format!("{p} is already in another group"),
                    ));
                }
            }
        }
        self.iscsi.validate()?;
        self.security.validate()?;
        self.api.validate()?;
        let min_secret = self.security.min_chap_secret_len;
        self.discovery.validate(min_secret)?;
        let mut iqns = HashSet::new();
        for (t, target) in self.targets.iter().enumerate() {
            let key = format!("target[{t}]");
            target.validate(&key, min_secret)?;
            if !iqns.insert(target.iqn.to_ascii_lowercase()) {
                return Err((
                    format!("{key}.iqn"),
                    format!("{} is defined twice", target.iqn),
                ));
            }
        }
        Ok(())
    }
}

impl IscsiSettings {
    fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, p: &str| Err((format!("iscsi.{k}"), p.to_string()));
        if !(512..=16_777_215).contains(&self.max_recv_data_segment_length) {
            return err(
                "max_recv_data_segment_length",
                "must be between 512 and 16777215",
            );
        }
        if !(512..=16_777_215).contains(&self.max_burst_length) {
            return err("max_burst_length", "must be between 512 and 16777215");
        }
        if !(512..=16_777_215).contains(&self.first_burst_length) {
            return err("first_burst_length", "must be between 512 and 16777215");
        }
        if self.first_burst_length > self.max_burst_length {
            return err("first_burst_length", "must not exceed max_burst_length");
        }
        if self.max_outstanding_r2t == 0 {
            return err("max_outstanding_r2t", "must be at least 1");
        }
        if !(1..=4096).contains(&self.queue_depth) {
            return err("queue_depth", "must be between 1 and 4096");
        }
        match parse_size(&self.io_memory) {
            Ok(n) if n >= 64 << 20 => {}
            Ok(_) => return err("io_memory", "must be at least 64M"),
            Err(p) => return Err(("iscsi.io_memory".into(), p)),
        }
        if self.login_timeout == 0 {
            return err("login_timeout", "must be at least 1 second");
        }
        if self.nop_in_interval > 0 && self.nop_in_timeout == 0 {
            return err(
                "nop_in_timeout",
                "must be at least 1 second when nop_in_interval is set",
            );
        }
        Ok(())
    }
}

impl Discovery {
    fn validate(&self, min_secret: usize) -> Result<(), (String, String)> {
        if self.auth == DiscoveryAuth::Chap {
            match (&self.chap_user, &self.chap_secret) {
                (Some(u), Some(s)) => {
                    check_chap_user(u).map_err(|p| ("discovery.chap_user".to_string(), p))?;
                    check_secret(s, min_secret)
                        .map_err(|p| ("discovery.chap_secret".to_string(), p))?;
                }
                _ => {
                    return Err((
                        "discovery".into(),
                        "auth = \"chap\" needs chap_user and chap_secret".into(),
                    ))
                }
            }
        }
        Ok(())
    }
}

impl Target {
    fn validate(&self, key: &str, min_secret: usize) -> Result<(), (String, String)> {
        check_iscsi_name(&self.iqn).map_err(|p| (format!("{key}.iqn"), p))?;
        let mut ids = HashSet::new();
        for (l, lun) in self.luns.iter().enumerate() {
            let lkey = format!("{key}.lun[{l}]");
            if lun.id >= 16384 {
                return Err((format!("{lkey}.id"), "must be below 16384".into()));
            }
            if !ids.insert(lun.id) {
                return Err((
                    format!("{lkey}.id"),
                    format!("LUN {} is defined twice", lun.id),
                ));
            }
            match (&lun.file, &lun.volume) {
                (Some(f), None) if f.as_os_str().is_empty() => {
                    return Err((format!("{lkey}.file"), "must not be empty".into()));
                }
                (Some(_), None) => {}
                (None, Some(v)) => {
                    check_volume_name(v).map_err(|p| (format!("{lkey}.volume"), p))?
                }
                (Some(_), Some(_)) => {
                    return Err((lkey, "give either file or volume, not both".into()));
                }
                (None, None) => {
                    return Err((
                        lkey,
                        "needs a backing: file = \"PATH\" or volume = \"NAME\"".into(),
                    ));
                }
            }
            if lun.block_size != 512 && lun.block_size != 4096 {
                return Err((format!("{lkey}.block_size"), "must be 512 or 4096".into()));
            }
            if let Some(size) = &lun.size {
                let bytes = parse_size(size).map_err(|p| (format!("{lkey}.size"), p))?;
                if bytes == 0 || bytes % u64::from(lun.block_size) != 0 {
                    return Err((
                        format!("{lkey}.size"),
                        format!(
                            "{size} is not a positive multiple of the {}-byte block size",
                            lun.block_size
                        ),
                    ));
                }
            }
        }
        let mut initiators = HashSet::new();
        for (a, acl) in self.acls.iter().enumerate() {
            let akey = format!("{key}.acl[{a}]");
            if acl.initiator != "*" {
                check_iscsi_name(&acl.initiator).map_err(|p| (format!("{akey}.initiator"), p))?;
            }
            if !initiators.insert(acl.initiator.to_ascii_lowercase()) {
                return Err((
                    format!("{akey}.initiator"),
                    format!("{} is listed twice", acl.initiator),
                ));
            }
            acl.validate(&akey, self.auth, min_secret)?;
            if let Some(luns) = &acl.luns {
                for (i, id) in luns.iter().enumerate() {
                    if !ids.contains(id) {
                        return Err((
                            format!("{akey}.luns[{i}]"),
                            format!("LUN {id} is not defined in this target"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Acl {
    fn validate(
        &self,
        key: &str,
        auth: AuthMode,
        min_secret: usize,
    ) -> Result<(), (String, String)> {
        match (&self.chap_user, &self.chap_secret) {
            (Some(u), Some(s)) => {
                check_chap_user(u).map_err(|p| (format!("{key}.chap_user"), p))?;
                check_secret(s, min_secret).map_err(|p| (format!("{key}.chap_secret"), p))?;
            }
            (None, None) if auth == AuthMode::None => {}
            (None, None) => return Err((
                format!("{key}.chap_user"),
                "the target uses auth = \"chap\": every ACL entry needs chap_user and chap_secret \
                     (an initiator name alone is not a credential)"
                    .into(),
            )),
            (Some(_), None) => {
                return Err((
                    format!("{key}.chap_secret"),
                    "is required with chap_user".into(),
                ))
            }
            (None, Some(_)) => {
                return Err((
                    format!("{key}.chap_user"),
                    "is required with chap_secret".into(),
                ))
            }
        }
        match (&self.mutual_user, &self.mutual_secret) {
            (None, None) => {}
            (Some(u), Some(s)) => {
                if self.chap_secret.is_none() {
                    return Err((
                        format!("{key}.mutual_user"),
                        "mutual CHAP needs chap_user and chap_secret too".into(),
                    ));
                }
                check_chap_user(u).map_err(|p| (format!("{key}.mutual_user"), p))?;
                check_secret(s, min_secret).map_err(|p| (format!("{key}.mutual_secret"), p))?;
                if Some(s) == self.chap_secret.as_ref() {
                    return Err((
                        format!("{key}.mutual_secret"),
                        "must differ from chap_secret (a shared secret allows reflection attacks)"
                            .into(),
                    ));
                }
            }
            (Some(_), None) => {
                return Err((
                    format!("{key}.mutual_secret"),
                    "is required with mutual_user".into(),
                ))
            }
            (None, Some(_)) => {
                return Err((
                    format!("{key}.mutual_user"),
                    "is required with mutual_secret".into(),
                ))
            }
        }
        Ok(())
    }
}

fn check_chap_user(user: &str) -> Result<(), String> {
    if user.is_empty() || user.len() > 255 {
        return Err("must be 1 to 255 characters".into());
    }
    if user.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn check_secret(secret: &str, min_len: usize) -> Result<(), String> {
    if secret.len() < min_len {
        return Err(format!("must be at least {min_len} bytes long"));
    }
    if secret.len() > 255 {
        return Err("must be at most 255 bytes long".into());
    }
    Ok(())
}

/// Checks a volume name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn check_volume_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a volume name (1-64 of A-Z a-z 0-9 . _ -)"
        ))
    }
}

/// Checks an iSCSI name against RFC 7143 section 4.2.7: `iqn.` names with a
/// date and a reversed domain, `eui.` with 16 hex digits, `naa.` with 16 or 32.
pub fn check_iscsi_name(name: &str) -> Result<(), String> {
    if name.len() > 223 {
        return Err(format!("{name:?} is longer than 223 bytes"));
    }
    let lower = name.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("iqn.") {
        let bytes = rest.as_bytes();
        let date_ok = bytes.len() > 8
            && bytes[..4].iter().all(u8::is_ascii_digit)
            && bytes[4] == b'-'
            && bytes[5..7].iter().all(u8::is_ascii_digit)
            && bytes[7] == b'.';
        if !date_ok {
            return Err(format!(
                "{name:?} is not iqn.YYYY-MM.reversed.domain[:identifier]"
            ));
        }
        let month = (bytes[5] - b'0') * 10 + (bytes[6] - b'0');
        if !(1..=12).contains(&month) {
            return Err(format!("{name:?} has an invalid month"));
        }
        let ok = rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if !ok {
            return Err(format!(
                "{name:?} may contain only a-z, 0-9, '.', '-' and ':'"
            ));
        }
        return Ok(());
    }
    for (prefix, lens) in [("eui.", &[16usize][..]), ("naa.", &[16, 32][..])] {
        if let Some(hex) = lower.strip_prefix(prefix) {
            if lens.contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Ok(());
            }
            return Err(format!(
                "{name:?} needs {lens:?} hex digits after {prefix:?}"
            ));
        }
    }
    Err(format!(
        "{name:?} is not an iSCSI name (iqn., eui. or naa.)"
    ))
}

/// Parses a size such as `10G`, `512MiB`, `1t` or `4096` (bytes). Suffixes are
/// binary: K = 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 10G, 512M, 1T, 1048576)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        "p" | "pb" | "pib" => 50,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit (use K, M, G, T or P)"
            ))
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
data_dir = "/var/lib/ironsan"
portals  = ["127.0.0.1:3260", "[::1]:3260"]
[[target]]
iqn  = "iqn.2026-11.org.example:vm1"
[[target.lun]]
id   = 0
file = "/srv/lun0.img"
size = "10G"
[[target.acl]]
initiator     = "iqn.1993-08.org.debian:01:host1"
chap_user     = "host1"
chap_secret   = "at-least-12-chars"
mutual_user   = "target1"
mutual_secret = "another-12-chars"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    fn problem(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn documented_example_parses() {
        let cfg = parse(GOOD).expect("valid");
        assert_eq!(cfg.targets[0].auth, AuthMode::Chap);
        assert_eq!(cfg.targets[0].luns[0].size.as_deref(), Some("10G"));
        assert_eq!(cfg.portal_addrs().len(), 2);
        assert_eq!(cfg.discovery.auth, DiscoveryAuth::Acl);
    }

    #[test]
    fn errors_name_file_key_and_problem() {
        let e = problem(&GOOD.replace("at-least-12-chars", "short"));
        assert!(
            e.contains("test.toml")
                && e.contains("target[0].acl[0].chap_secret")
                && e.contains("12"),
            "{e}"
        );
        let e = problem(&GOOD.replace("\"10G\"", "\"10X\""));
        assert!(
            e.contains("target[0].lun[0].size") && e.contains("unknown unit"),
            "{e}"
        );
        let e = problem(&GOOD.replace("iqn.2026-11.org.example:vm1", "vm1"));
        assert!(e.contains("target[0].iqn"), "{e}");
        let e = problem(&GOOD.replace("127.0.0.1:3260\",", "127.0.0.1\","));
        assert!(e.contains("portals[0]"), "{e}");
        let e = problem(&GOOD.replace("another-12-chars", "at-least-12-chars"));
        assert!(e.contains("mutual_secret"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = problem(&GOOD.replace("size = \"10G\"", "size = \"10G\"\nsise = 1"));
        assert!(e.contains("sise"), "{e}");
    }

    #[test]
    fn chap_target_refuses_iqn_only_acl() {
        let text = GOOD
            .replace("chap_user     = \"host1\"\n", "")
            .replace("chap_secret   = \"at-least-12-chars\"\n", "")
            .replace("mutual_user   = \"target1\"\n", "")
            .replace("mutual_secret = \"another-12-chars\"\n", "");
        let e = problem(&text);
        assert!(e.contains("chap_user"), "{e}");
        let open = text.replace(
            "iqn  = \"iqn.2026-11.org.example:vm1\"",
            "iqn = \"iqn.2026-11.org.example:vm1\"\nauth = \"none\"",
        );
        parse(&open).expect("auth none allows name-only ACLs");
    }

    #[test]
    fn duplicate_lun_ids_are_refused() {
        let text = format!("{GOOD}\n[[target.lun]]\nid = 0\nfile = \"/srv/x.img\"\n");
        assert!(problem(&text).contains("defined twice"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1t"), Ok(1 << 40));
        assert!(parse_size("10X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999P").is_err());
    }

    #[test]
    fn iscsi_names() {
        assert!(check_iscsi_name("iqn.2026-11.org.example:vm1").is_ok());
        assert!(check_iscsi_name("iqn.1993-08.org.debian:01:abcdef").is_ok());
        assert!(check_iscsi_name("eui.02004567A425678D").is_ok());
        assert!(check_iscsi_name("naa.52004567BA64678D").is_ok());
        assert!(check_iscsi_name("iqn.2026-13.org.example").is_err());
        assert!(check_iscsi_name("iqn.2026-11.org.exa mple").is_err());
        assert!(check_iscsi_name("eui.123").is_err());
        assert!(check_iscsi_name("host1").is_err());
    }

    #[test]
    fn api_section() {
        let cfg = parse(&format!("{GOOD}\n[api]\nlisten = \"127.0.0.1:9260\"\n")).expect("valid");
        assert_eq!(cfg.api.listen.as_deref(), Some("127.0.0.1:9260"));
        let text = toml::to_string(&cfg).expect("serializes");
        assert_eq!(parse(&text).expect("reparses"), cfg);
        let e = problem(&format!("{GOOD}\n[api]\nlisten = \"localhost\"\n"));
        assert!(e.contains("api.listen"), "{e}");
        let e = problem(&format!("{GOOD}\n[api]\nlisen = \"127.0.0.1:1\"\n"));
        assert!(e.contains("lisen"), "{e}");
        assert!(!toml::to_string(&parse(GOOD).expect("valid"))
            .expect("ser")
            .contains("[api]"));
    }

    #[test]
    fn round_trips_through_toml() {
        let cfg = parse(GOOD).expect("valid");
        let text = toml::to_string(&cfg).expect("serializes");
        assert_eq!(parse(&text).expect("reparses"), cfg);
    }
}
