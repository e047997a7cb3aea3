//! Live reconfiguration and inspection of a running target: the runtime
//! side of the management API and of `ironsan apply`.
//!
//! Every change is a new whole configuration: [`Control::apply`] diffs it
//! against the live one, refuses (or drains, or forces) changes that would
//! pull storage from under logged-in initiators, opens new LUNs and binds
//! new portals before touching anything (so a failure changes nothing),
//! swaps target views atomically, and persists the result (write a
//! temporary file, fsync, rename) so a restart serves the same thing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::Config;
use crate::diff::{diff, Change};
use crate::server::{SessionCtl, SessionInfo, Shared};
use crate::targets::{open_lun, Backing, TargetNode, TargetView};

/// The live configuration's file in `data_dir`.
pub const LIVE_FILE: &str = "live.toml";

/// What to do when a change removes storage that initiators are using.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decommission {
    /// Refuse, naming the sessions.
    Refuse,
    /// Stop new logins to the affected targets, ask their sessions to log
    /// out and wait up to this long; fail if they have not.
    Drain(Duration),
    /// Proceed at once: removed LUNs answer a unit attention, then LOGICAL
    /// UNIT NOT SUPPORTED; sessions of removed targets are asked to log out
    /// and then closed with an Async Message saying so.
    Force,
}

/// Why a change was not applied. Nothing changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The new configuration is invalid.
    #[error("{key}: {problem}")]
    Invalid {
        /// Key path.
        key: String,
        /// Problem.
        problem: String,
    },
    /// The change cannot be made on a running daemon.
    #[error("{0}")]
    Unsupported(String),
    /// Storage in use; `sessions` lists initiator (address) of each.
    #[error("{what} is in use by {sessions}; use drain or force")]
    InUse {
        /// What would be removed.
        what: String,
        /// The sessions using it.
        sessions: String,
    },
    /// A drain did not finish in time.
    #[error("{what}: sessions still logged in after {waited:?}: {sessions}")]
    DrainTimeout {
        /// What was being removed.
        what: String,
        /// How long it waited.
        waited: Duration,
        /// Who is still logged in.
        sessions: String,
    },
    /// A new LUN or portal could not be opened.
    #[error(transparent)]
    Open(#[from] crate::server::ServerError),
    /// The new configuration could not be saved.
    #[error("saving the live configuration: {0}")]
    Persist(std::io::Error),
    /// No such session.
    #[error("no session with TSIH {0}")]
    NoSession(u16),
}

/// Live control of a running server.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

fn describe(sessions: &[SessionInfo]) -> String {
    let names: Vec<String> = sessions
        .iter()
        .map(|s| format!("{} ({})", s.initiator, s.peer))
        .collect();
    names.join(", ")
}

impl Control {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The configuration being served.
    pub fn config(&self) -> Config {
        self.shared
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Logged-in sessions.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.shared.sessions_of(None)
    }

    /// The bound portal addresses (with the real port where 0 was configured).
    pub fn portal_addrs(&self) -> Vec<SocketAddr> {
        self.shared.portal_addrs()
    }

    /// The listening sockets, for a successor process.
    pub fn listener_fds(&self) -> Vec<(SocketAddr, std::os::fd::RawFd)> {
        self.shared.listener_fds()
    }

    /// The counters behind `/metrics`.
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        self.shared.metrics.clone()
    }

    /// The volume pool.
    pub fn pool(&self) -> Arc<volume::Pool> {
        self.shared.pool.clone()
    }

    /// Records an event in the audit log.
    pub fn audit(&self, event: &str, fields: &[(&str, &str)]) {
        self.shared.audit.record(event, fields);
    }

    /// Validates `new` and lists the changes applying it would make.
    pub fn plan(&self, new: &Config) -> Result<Vec<Change>, ControlError> {
        new.validate()
            .map_err(|(key, problem)| ControlError::Invalid { key, problem })?;
        let changes = diff(&self.config(), new);
        if changes.contains(&Change::ChangeDataDir) {
            return Err(ControlError::Unsupported(
                "data_dir cannot change on a running daemon (stop it, move the directory, start it)".into(),
            ));
        }
        Ok(changes)
    }

    /// Asks a session to log out (or closes it at once with `force`).
    pub fn drop_session(&self, tsih: u16, force: bool) -> Result<(), ControlError> {
        let sessions = self
            .shared
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let h = sessions
            .values()
            .find(|h| h.tsih == tsih)
            .ok_or(ControlError::NoSession(tsih))?;
        let _ = h.ctl.send(if force {
            SessionCtl::Drop
        } else {
            SessionCtl::Logout {
                within: crate::server::logout_grace(),
                enforce: true,
            }
        });
        Ok(())
    }

    /// Applies `new` live. Returns the changes made.
    pub async fn apply(&self, new: Config, how: Decommission) -> Result<Vec<Change>, ControlError> {
        let _serial = self.shared.apply_lock.lock().await;
        let changes = self.plan(&new)?;
        if changes.is_empty() {
            return Ok(changes);
        }
        let affected = destructive_targets(&changes);
        let what = changes
            .iter()
            .filter(|c| {
                matches!(
                    c,
                    Change::RemoveTarget { .. } | Change::UnmapLun { .. } | Change::RemapLun { .. }
                )
            })
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let users = self.users(&affected);
        if !users.is_empty() {
            match how {
                Decommission::Refuse => {
                    return Err(ControlError::InUse {
                        what,
                        sessions: describe(&users),
                    });
                }
                Decommission::Drain(bound) => self.drain(&affected, &what, bound).await?,
                Decommission::Force => {}
            }
        }
        // Open everything new first: a failure here leaves the daemon untouched.
        let opened = match self.open_new(&new, &changes) {
            Ok(o) => o,
            Err(e) => {
                self.set_draining(&affected, false);
                return Err(e);
            }
        };
        self.swap(&new, &changes, opened);
        self.set_draining(&affected, false);
        if how == Decommission::Force {
            self.evict_removed_targets(&changes);
        }
        for c in &changes {
            let text = c.to_string();
            info!(change = %text, "configuration change applied");
            self.shared
                .audit
                .record("config_change", &[("change", &text)]);
        }
        self.persist(&new)?;
        Ok(changes)
    }

    fn users(&self, targets: &BTreeSet<String>) -> Vec<SessionInfo> {
        self.shared
            .sessions_of(None)
            .into_iter()
            .filter(|s| targets.contains(&s.target.to_ascii_lowercase()))
            .collect()
    }

    fn set_draining(&self, targets: &BTreeSet<String>, on: bool) {
        for t in self.shared.targets() {
            if targets.contains(&t.iqn.to_ascii_lowercase()) {
                t.draining.store(on, Ordering::Release);
            }
        }
    }

    async fn drain(
        &self,
        targets: &BTreeSet<String>,
        what: &str,
        bound: Duration,
    ) -> Result<(), ControlError> {
        self.set_draining(targets, true);
        {
            let sessions = self
                .shared
                .sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for h in sessions
                .values()
                .filter(|h| targets.contains(&h.info.target.to_ascii_lowercase()))
            {
                let _ = h.ctl.send(SessionCtl::Logout {
                    within: bound,
                    enforce: false,
                });
            }
        }
        let deadline = Instant::now() + bound;
        loop {
            let users = self.users(targets);
            if users.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.set_draining(targets, false);
                return Err(ControlError::DrainTimeout {
                    what: what.into(),
                    waited: bound,
                    sessions: describe(&users),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens new and remapped LUNs and binds new portals.
    fn open_new(&self, new: &Config, changes: &[Change]) -> Result<Opened, ControlError> {
        let mut opened = Opened::default();
        for c in changes {
            match c {
                Change::MapLun { target, lun } | Change::RemapLun { target, lun } => {
                    let Some((key, spec)) = find_lun(new, target, *lun) else {
                        continue;
                    };
                    let backing = Backing {
                        data_dir: &new.data_dir,
                        pool: &self.shared.pool,
                    };
                    let lu = open_lun(&key, target, spec, &backing)?;
                    opened
                        .luns
                        .insert((target.to_ascii_lowercase(), u64::from(*lun)), lu);
                }
                Change::AddPortal { portal } => {
                    let listeners = crate::server::Listeners::bind(
                        std::slice::from_ref(portal),
                        &mut HashMap::new(),
                    )?;
                    opened.portals.extend(listeners.into_parts());
                }
                _ => {}
            }
        }
        Ok(opened)
    }

    fn swap(&self, new: &Config, changes: &[Change], mut opened: Opened) {
        let old_nodes: BTreeMap<String, Arc<TargetNode>> = self
            .shared
            .targets()
            .into_iter()
            .map(|t| (t.iqn.to_ascii_lowercase(), t))
            .collect();
        let mut nodes = Vec::new();
        for spec in &new.targets {
            let key = spec.iqn.to_ascii_lowercase();
            let mut luns = BTreeMap::new();
            let old_view = old_nodes.get(&key).map(|n| n.view());
            for l in &spec.luns {
                let id = u64::from(l.id);
                let lu = opened
                    .luns
                    .remove(&(key.clone(), id))
                    .or_else(|| old_view.as_ref().and_then(|v| v.luns.get(&id).cloned()));
                if let Some(lu) = lu {
                    luns.insert(id, lu);
                }
            }
            match old_nodes.get(&key) {
                Some(node) => {
                    node.replace(TargetView {
                        spec: spec.clone(),
                        luns,
                    });
                    nodes.push(node.clone());
                }
                None => nodes.push(TargetNode::new(spec.clone(), luns)),
            }
        }
        // Initiators of a target whose LUN set changed are told so.
        for c in changes {
            if let Change::MapLun { target, .. } | Change::UnmapLun { target, .. } = c {
                if let Some(node) = nodes.iter().find(|n| n.iqn.eq_ignore_ascii_case(target)) {
                    for lu in node.view().luns.values() {
                        lu.report_luns_changed();
                    }
                }
            }
        }
        *self
            .shared
            .targets
            .write()
            .unwrap_or_else(|p| p.into_inner()) = nodes;
        self.shared
            .set_settings(new.iscsi.clone(), new.discovery.clone());
        self.shared.guard.set_config(new.security.clone());
        for (name, addr, l) in opened.portals {
            match l
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(l))
            {
                Ok(l) => self.shared.add_portal(name, addr, l),
                Err(e) => warn!(portal = %addr, error = %e, "could not start the new portal"),
            }
        }
        for c in changes {
            if let Change::RemovePortal { portal } = c {
                self.shared.remove_portal(portal);
            }
        }
        *self
            .shared
            .config
            .write()
            .unwrap_or_else(|p| p.into_inner()) = new.clone();
    }

    /// Sessions of targets that no longer exist: logout request now, then a
    /// close with a reason once the grace period is over.
    fn evict_removed_targets(&self, changes: &[Change]) {
        let gone: BTreeSet<String> = changes
            .iter()
            .filter_map(|c| match c {
                Change::RemoveTarget { target } => Some(target.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        let handles: Vec<_> = {
            let sessions = self
                .shared
                .sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            sessions
                .values()
                .filter(|h| gone.contains(&h.info.target.to_ascii_lowercase()))
                .map(|h| h.ctl.clone())
                .collect()
        };
        for ctl in handles {
            let _ = ctl.send(SessionCtl::Logout {
                within: crate::server::logout_grace(),
                enforce: true,
            });
            tokio::spawn(async move {
                tokio::time::sleep(crate::server::logout_grace()).await;
                let _ = ctl.send(SessionCtl::Drop);
            });
        }
    }

    fn persist(&self, cfg: &Config) -> Result<(), ControlError> {
        let seed = self
            .shared
            .live_seed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        write_live(&cfg.data_dir, cfg, &seed).map_err(ControlError::Persist)
    }

    /// Sets the fingerprint of the configuration file the live state grew
    /// from (see [`startup_config`]).
    pub fn set_seed(&self, seed: String) {
        *self
            .shared
            .live_seed
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = seed;
    }
}

/// New LUNs and listeners, opened before the swap.
#[derive(Default)]
struct Opened {
    luns: HashMap<(String, u64), Arc<scsi::LogicalUnit>>,
    portals: Vec<(String, SocketAddr, std::net::TcpListener)>,
}

/// A LUN of `cfg` with its key path for error messages.
fn find_lun<'a>(
    cfg: &'a Config,
    target: &str,
    lun: u16,
) -> Option<(String, &'a crate::config::Lun)> {
    cfg.targets
        .iter()
        .enumerate()
        .filter(|(_, t)| t.iqn.eq_ignore_ascii_case(target))
        .find_map(|(t, spec)| {
            let (l, ls) = spec.luns.iter().enumerate().find(|(_, ls)| ls.id == lun)?;
            Some((format!("target[{t}].lun[{l}]"), ls))
        })
}

/// Targets that lose LUNs or disappear.
fn destructive_targets(changes: &[Change]) -> BTreeSet<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::RemoveTarget { target }
            | Change::UnmapLun { target, .. }
            | Change::RemapLun { target, .. } => Some(target.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Fingerprint of a configuration file's bytes.
pub fn seed_of(bytes: &[u8]) -> String {
    format!("{:08x}-{}", iscsi_proto::digest::crc32c(bytes), bytes.len())
}

/// Writes `data_dir/live.toml` atomically: temporary file, fsync, rename,
/// fsync of the directory. Mode 0600: it holds CHAP secrets.
pub fn write_live(data_dir: &Path, cfg: &Config, seed: &str) -> std::io::Result<()> {
    let text = toml::to_string(cfg).map_err(std::io::Error::other)?;
    let path = data_dir.join(LIVE_FILE);
    let tmp = data_dir.join(format!("{LIVE_FILE}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    writeln!(
        f,
        "# ironsan live configuration, written on every change. seed: {seed}"
    )?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(data_dir)?.sync_all()
}

/// The configuration to serve at start-up. The file given on the command
/// line seeds the live state; changes made through the API are saved in
/// `data_dir/live.toml` with the seed's fingerprint. If the file has not
/// changed since, the live state wins (a restart serves exactly what was
/// running); if an administrator edited the file, the file wins.
pub fn startup_config(path: &Path) -> Result<(Config, String), crate::config::ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| crate::config::ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let seed = seed_of(&bytes);
    let file = Config::parse(&String::from_utf8_lossy(&bytes), path)?;
    let live_path: PathBuf = file.data_dir.join(LIVE_FILE);
    let Ok(text) = std::fs::read_to_string(&live_path) else {
        return Ok((file, seed));
    };
    let marker = format!("seed: {seed}");
    if text.lines().next().is_some_and(|l| l.ends_with(&marker)) {
        let live = Config::parse(&text, &live_path)?;
        info!(file = %live_path.display(), "serving the live configuration saved by the last change");
        return Ok((live, seed));
    }
    warn!(file = %path.display(), "the configuration file changed since the last live change; serving the file");
    Ok((file, seed))
}
