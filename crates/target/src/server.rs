//! Portals, the live target set, the session table and the daemon's lifecycle.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{info, warn};

use crate::audit::Audit;
use crate::budget::MemoryBudget;
use crate::config::{parse_size, AluaStateConfig, Config, Discovery, IscsiSettings, PortalPlace};
use crate::guard::LoginGuard;
use crate::metrics::Metrics;
use crate::targets::{open_luns, Backing, TargetNode};

/// How long a stopping daemon waits for initiators to log out.
const LOGOUT_GRACE: Duration = Duration::from_secs(5);
/// How long a stopping daemon waits for connections to finish after that.
const STOP_BOUND: Duration = Duration::from_secs(10);

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A portal address could not be bound.
    #[error("portal {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// A LUN's backing store could not be opened.
    #[error("{key} ({backing}): {message}")]
    Lun {
        /// Config key of the LUN.
        key: String,
        /// Backing file or volume.
        backing: String,
        /// What went wrong.
        message: String,
    },
    /// The volume pool could not be opened.
    #[error("volume pool {path}: {source}")]
    Pool {
        /// The pool directory.
        path: PathBuf,
        /// The error.
        source: volume::VolumeError,
    },
    /// The data directory is unusable.
    #[error("data_dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The I_T nexus of a session: initiator name, ISID and target.
pub(crate) type SessionKey = (String, [u8; 6], String);

/// What the table keeps of a live session.
pub(crate) struct SessionHandle {
    pub tsih: u16,
    pub ctl: mpsc::UnboundedSender<SessionCtl>,
    pub done: watch::Receiver<bool>,
    pub info: SessionInfo,
}

/// Requests to a running session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionCtl {
    /// A new login of the same initiator port replaces this session: close now.
    Reinstated,
    /// Ask the initiator to log out within `within` (Async Message). With
    /// `enforce`, close the session if it has not by then; without, the
    /// requester decides what to do (a drain that times out changes nothing).
    Logout {
        /// Time the initiator is given.
        within: Duration,
        /// Close the session at the deadline.
        enforce: bool,
    },
    /// Close after telling the initiator why (Async Message: connection will drop).
    Drop,
}

/// Who is logged in where (the management API's session list).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SessionInfo {
    /// Target session identifying handle.
    pub tsih: u16,
    /// Initiator name.
    pub initiator: String,
    /// Initiator session id, hex.
    pub isid: String,
    /// Target name.
    pub target: String,
    /// Initiator address.
    pub peer: String,
    /// Portal the session arrived on.
    pub portal: String,
    /// Login time, seconds since the Unix epoch.
    pub since: u64,
    /// Authentication: `none`, `chap` or `mutual-chap`.
    pub auth: &'static str,
    /// Negotiated keys.
    pub params: BTreeMap<&'static str, String>,
}

/// State shared by every connection.
pub struct Shared {
    settings: RwLock<Arc<IscsiSettings>>,
    discovery: RwLock<Arc<Discovery>>,
    pub(crate) targets: RwLock<Vec<Arc<TargetNode>>>,
    /// The configuration being served (what `config show` prints).
    pub(crate) config: RwLock<Config>,
    portals: Mutex<BTreeMap<String, Portal>>,
    pub(crate) sessions: Mutex<HashMap<SessionKey, SessionHandle>>,
    next_tsih: AtomicU16,
    next_nexus: AtomicU64,
    nexus_ids: Mutex<HashMap<SessionKey, u64>>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) guard: Arc<LoginGuard>,
    pub(crate) audit: Audit,
    pub(crate) budget: Arc<MemoryBudget>,
    connections: AtomicUsize,
    idle: Notify,
    /// Serializes live reconfiguration.
    pub(crate) apply_lock: tokio::sync::Mutex<()>,
    /// Fingerprint of the configuration file the live state grew from.
    pub(crate) live_seed: Mutex<String>,
    /// The volume pool in `data_dir/pool`.
    pub(crate) pool: Arc<volume::Pool>,
    /// Counters for `/metrics`.
    pub(crate) metrics: Arc<Metrics>,
}

/// A listening portal and its accept loop.
struct Portal {
    addr: SocketAddr,
    listener: Arc<TcpListener>,
    task: tokio::task::JoinHandle<()>,
}

fn read<T: ?Sized>(l: &RwLock<Arc<T>>) -> Arc<T> {
    l.read().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Shared {
    /// Protocol settings for new connections.
    pub(crate) fn settings(&self) -> Arc<IscsiSettings> {
        read(&self.settings)
    }

    /// Discovery settings for new logins.
    pub(crate) fn discovery(&self) -> Arc<Discovery> {
        read(&self.discovery)
    }

    /// Replaces the settings new connections and logins use.
    pub(crate) fn set_settings(&self, iscsi: IscsiSettings, discovery: Discovery) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(iscsi);
        *self.discovery.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(discovery);
    }

    /// The bound portal addresses.
    pub(crate) fn portal_addrs(&self) -> Vec<SocketAddr> {
        self.portals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|p| p.addr)
            .collect()
    }

    /// Bound portals with their portal group tags, in configuration order.
    pub(crate) fn portals_with_groups(&self) -> Vec<(SocketAddr, u16)> {
        let cfg = self
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let portals = self.portals.lock().unwrap_or_else(|p| p.into_inner());
        cfg.portals
            .iter()
            .filter_map(|name| {
                portals
                    .get(name)
                    .map(|p| (p.addr, cfg.portal_place(name).group))
            })
            .collect()
    }

    /// Installs the port group table of `cfg` on every logical unit.
    pub(crate) fn apply_alua(&self, cfg: &Config) {
        let groups: Arc<[scsi::AluaGroup]> = cfg
            .alua_groups()
            .into_iter()
            .map(|(id, state, relative_ports)| scsi::AluaGroup {
                id,
                state: match state {
                    AluaStateConfig::ActiveOptimized => scsi::AluaState::ActiveOptimized,
                    AluaStateConfig::ActiveNonOptimized => scsi::AluaState::ActiveNonOptimized,
                    AluaStateConfig::Standby => scsi::AluaState::Standby,
                    AluaStateConfig::Unavailable => scsi::AluaState::Unavailable,
                },
                relative_ports,
            })
            .collect();
        for t in self.targets() {
            for lu in t.view().luns.values() {
                lu.set_alua(groups.clone());
            }
        }
    }

    /// Starts serving a bound listener as portal `name` (its config string).
    pub(crate) fn add_portal(
        self: &Arc<Self>,
        name: String,
        addr: SocketAddr,
        listener: TcpListener,
    ) {
        let listener = Arc::new(listener);
        let task = tokio::spawn(accept_loop(listener.clone(), self.clone(), name.clone()));
        let old = self
            .portals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                name,
                Portal {
                    addr,
                    listener,
                    task,
                },
            );
        if let Some(old) = old {
            old.task.abort();
        }
    }

    /// Stops accepting on portal `name`; its sessions keep running.
    pub(crate) fn remove_portal(&self, name: &str) {
        if let Some(p) = self
            .portals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
        {
            p.task.abort();
            info!(portal = %p.addr, "portal closed");
        }
    }

    /// The listening sockets' descriptors, to hand to a successor process.
    pub(crate) fn listener_fds(&self) -> Vec<(SocketAddr, std::os::fd::RawFd)> {
        use std::os::fd::AsRawFd;
        let portals = self.portals.lock().unwrap_or_else(|p| p.into_inner());
        portals
            .values()
            .map(|p| (p.addr, p.listener.as_raw_fd()))
            .collect()
    }

    /// The target named `name` (names compare case-insensitively).
    pub(crate) fn target(&self, name: &str) -> Option<Arc<TargetNode>> {
        self.targets()
            .into_iter()
            .find(|t| t.iqn.eq_ignore_ascii_case(name))
    }

    /// Every target, as of now.
    pub(crate) fn targets(&self) -> Vec<Arc<TargetNode>> {
        self.targets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A TSIH not used by a live session (never 0).
    pub(crate) fn alloc_tsih(&self) -> u16 {
        loop {
            let t = self.next_tsih.fetch_add(1, Ordering::Relaxed);
            if t == 0 {
                continue;
            }
            let taken = self
                .sessions
                .lock()
                .map(|s| s.values().any(|h| h.tsih == t))
                .unwrap_or(false);
            if !taken {
                return t;
            }
        }
    }

    /// The live sessions of `target` (all targets when `None`).
    pub(crate) fn sessions_of(&self, target: Option<&str>) -> Vec<SessionInfo> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<SessionInfo> = sessions
            .values()
            .filter(|h| target.is_none_or(|t| h.info.target.eq_ignore_ascii_case(t)))
            .map(|h| h.info.clone())
            .collect();
        out.sort_by_key(|i| i.tsih);
        out
    }

    /// A stable identifier for the I_T nexus, reused when the same initiator
    /// port logs in again (so per-nexus SCSI state follows reinstatement).
    pub(crate) fn nexus_id(&self, key: &SessionKey) -> u64 {
        let mut ids = match self.nexus_ids.lock() {
            Ok(ids) => ids,
            Err(p) => p.into_inner(),
        };
        *ids.entry(key.clone())
            .or_insert_with(|| self.next_nexus.fetch_add(1, Ordering::Relaxed))
    }
}

/// A running target daemon.
pub struct Server {
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
}

/// Listening sockets, bound before the daemon opens its storage.
pub struct Listeners(Vec<(String, SocketAddr, std::net::TcpListener)>);

impl Listeners {
    /// Binds every portal, reusing an inherited socket for an address when
    /// `inherited` has one (taken out of the map; the rest are left to the caller).
    pub fn bind(
        portals: &[String],
        inherited: &mut HashMap<SocketAddr, std::net::TcpListener>,
    ) -> Result<Self, ServerError> {
        let mut out = Vec::new();
        for p in portals {
            let err = |source| ServerError::Bind {
                addr: p.clone(),
                source,
            };
            let want: SocketAddr = p.parse().map_err(|_| {
                err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not an address",
                ))
            })?;
            let l = match inherited.remove(&want) {
                Some(l) => {
                    info!(portal = %want, "listening socket taken over from the previous process");
                    l
                }
                None => std::net::TcpListener::bind(want).map_err(err)?,
            };
            deepen_backlog(&l);
            let addr = l.local_addr().map_err(err)?;
            info!(portal = %addr, "listening");
            out.push((p.clone(), addr, l));
        }
        Ok(Self(out))
    }

    pub(crate) fn into_parts(self) -> Vec<(String, SocketAddr, std::net::TcpListener)> {
        self.0
    }
}

/// Connections a portal's kernel queue holds before they are accepted: a
/// reconnect storm of thousands of initiators must wait there, not be
/// dropped (std's default is 128). The kernel caps it at somaxconn.
const LISTEN_BACKLOG: i32 = 4096;

fn deepen_backlog(l: &std::net::TcpListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: `l` owns a valid listening socket; calling listen(2) again on
    // it only changes the length of its accept queue.
    if unsafe { libc::listen(l.as_raw_fd(), LISTEN_BACKLOG) } != 0 {
        warn!(error = %std::io::Error::last_os_error(), "could not deepen the accept queue");
    }
}

/// Stops a running server from another task or a signal handler.
#[derive(Clone)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    /// Begins a graceful stop.
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

impl Server {
    /// Opens every LUN and binds every portal; nothing is served yet.
    pub async fn bind(cfg: &Config) -> Result<Self, ServerError> {
        let listeners = Listeners::bind(&cfg.portals, &mut HashMap::new())?;
        Self::start(cfg, listeners).await
    }

    /// Opens every LUN and starts from already bound portals (for a process
    /// that took its listening sockets over from its predecessor).
    pub async fn start(cfg: &Config, listeners: Listeners) -> Result<Self, ServerError> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(|source| ServerError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        })?;
        let pool_dir = cfg.data_dir.join("pool");
        let pool = volume::Pool::open_or_create(&pool_dir, volume::PoolOptions::default())
            .map_err(|source| ServerError::Pool {
                path: pool_dir.clone(),
                source,
            })?;
        let pool = Arc::new(pool);
        let backing = Backing {
            data_dir: &cfg.data_dir,
            pool: &pool,
        };
        let targets = cfg
            .targets
            .iter()
            .enumerate()
            .map(|(t, target)| {
                Ok(TargetNode::new(
                    target.clone(),
                    open_luns(&format!("target[{t}]"), target, &backing)?,
                ))
            })
            .collect::<Result<Vec<_>, ServerError>>()?;
        let (shutdown_tx, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            settings: RwLock::new(Arc::new(cfg.iscsi.clone())),
            discovery: RwLock::new(Arc::new(cfg.discovery.clone())),
            targets: RwLock::new(targets),
            config: RwLock::new(cfg.clone()),
            portals: Mutex::new(BTreeMap::new()),
            sessions: Mutex::new(HashMap::new()),
            next_tsih: AtomicU16::new(1),
            next_nexus: AtomicU64::new(1),
            nexus_ids: Mutex::new(HashMap::new()),
            shutdown,
            guard: LoginGuard::new(cfg.security.clone()),
            audit: Audit::open(&cfg.data_dir),
            budget: MemoryBudget::new(parse_size(&cfg.iscsi.io_memory).unwrap_or(1 << 30)),
            connections: AtomicUsize::new(0),
            idle: Notify::new(),
            apply_lock: tokio::sync::Mutex::new(()),
            live_seed: Mutex::new(String::new()),
            pool,
            metrics: Arc::new(Metrics::default()),
        });
        // The anomaly detector looks at the counters every few seconds.
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let Some(shared) = weak.upgrade() else { return };
                shared.metrics.detect(std::time::Instant::now());
            }
        });
        shared.apply_alua(cfg);
        for (name, addr, l) in listeners.0 {
            let l = l
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(l))
                .map_err(|source| ServerError::Bind {
                    addr: addr.to_string(),
                    source,
                })?;
            shared.add_portal(name, addr, l);
        }
        Ok(Self {
            shared,
            shutdown_tx,
        })
    }

    /// The bound portal addresses (with real ports when 0 was configured).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.shared.portal_addrs()
    }

    /// A handle for live reconfiguration and inspection.
    pub fn control(&self) -> crate::control::Control {
        crate::control::Control::new(self.shared.clone())
    }

    /// A handle that stops the server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown_tx.clone())
    }

    /// Serves until shut down, then asks initiators to log out, waits for
    /// connections within a bound and flushes every logical unit.
    pub async fn run(self) {
        let Self {
            shared,
            shutdown_tx,
        } = self;
        let mut stop = shutdown_tx.subscribe();
        let _ = stop.wait_for(|s| *s).await;
        info!("stopping: no new connections, asking initiators to log out");
        let names: Vec<String> = shared
            .portals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for name in names {
            shared.remove_portal(&name);
        }
        let drained = tokio::time::timeout(LOGOUT_GRACE + STOP_BOUND, async {
            while shared.connections.load(Ordering::Acquire) > 0 {
                let idle = shared.idle.notified();
                if shared.connections.load(Ordering::Acquire) == 0 {
                    break;
                }
                idle.await;
            }
        })
        .await;
        if drained.is_err() {
            warn!(
                connections = shared.connections.load(Ordering::Acquire),
                "connections still open at the stop bound; closing them"
            );
        }
        let data_dir = shared
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .data_dir
            .clone();
        for t in shared.targets() {
            for (lun, lu) in &t.view().luns {
                if let Err(e) = lu.flush() {
                    warn!(target = %t.iqn, lun, error = %e, "flush at stop failed");
                }
                if let Err(e) = crate::targets::save_for_restart(&data_dir, lu) {
                    warn!(target = %t.iqn, lun, error = %e, "could not hand reservations over");
                }
            }
        }
        if let Err(e) = shared.pool.flush() {
            warn!(error = %e, "flushing the volume pool at stop failed");
        }
        info!("stopped");
    }
}

/// Time initiators get to log out when the daemon stops.
pub(crate) fn logout_grace() -> Duration {
    LOGOUT_GRACE
}

async fn accept_loop(listener: Arc<TcpListener>, shared: Arc<Shared>, portal: String) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                shared.connections.fetch_add(1, Ordering::AcqRel);
                let place = shared
                    .config
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .portal_place(&portal);
                tokio::spawn(async move {
                    serve(&shared, stream, peer, place).await;
                    if shared.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
                        shared.idle.notify_waiters();
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and similar: back off, never spin.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr, place: PortalPlace) {
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let _ = stream.set_nodelay(true);
    let portal = shared.metrics.portal(&local.to_string());
    portal
        .connections
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::session::run_connection(shared.clone(), stream, peer, local, place).await;
    portal
        .connections
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}
