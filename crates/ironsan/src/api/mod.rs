//! The management API: HTTP/JSON on the Unix socket `data_dir/api.sock`
//! (mode 0600) and, with `[api] listen`, on TCP behind a bearer token.
//! `docs/openapi.yaml` describes every endpoint (served at `/openapi.yaml`).
//!
//! Every change to targets, LUNs, ACLs and portals builds a modified copy of
//! the live configuration and hands it to [`Control::apply`], so validation,
//! refusal of in-use storage, persistence and audit are the same as for
//! `ironsan apply`. Changes are serialized: a read-modify-apply never loses
//! a concurrent one. Request bodies are never logged (they carry secrets).

mod auth;
mod config;
mod error;
mod metrics;
mod pool;
mod sessions;
mod targets;
mod ui;
mod volumes;

use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::Router;
use target::config::Config;
use target::control::{Control, Decommission};
use target::diff::Change;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use volume::Pool;

pub(crate) use error::ApiError;

/// The API socket in `data_dir`.
pub(crate) const SOCKET_FILE: &str = "api.sock";
/// How long the API waits for requests in flight when the daemon stops.
const STOP_BOUND: Duration = Duration::from_secs(2);
/// The default bound of a drain.
pub(crate) const DEFAULT_DRAIN: Duration = Duration::from_secs(60);

/// What the handlers share.
pub(crate) struct ApiState {
    pub control: Control,
    /// The volume pool (the runtime's, in `data_dir/pool`).
    pub pool: Arc<Pool>,
    pub started: Instant,
    pub started_unix: u64,
    /// Serializes read-modify-apply sequences.
    pub changes: tokio::sync::Mutex<()>,
    pub socket: PathBuf,
    pub token: Arc<String>,
    /// The TCP listener, restarted when `[api] listen` changes.
    tcp: Mutex<Option<Listener>>,
}

pub(crate) type AppState = Arc<ApiState>;

struct Listener {
    addr: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ApiState {
    pub fn pool(&self) -> Arc<Pool> {
        self.pool.clone()
    }

    /// Applies a modified copy of the live configuration (made by `edit`
    /// under the change lock) and returns the change lines.
    pub async fn change<F>(
        self: &Arc<Self>,
        how: Decommission,
        edit: F,
    ) -> Result<Vec<String>, ApiError>
    where
        F: FnOnce(&mut Config) -> Result<(), ApiError>,
    {
        let _serial = self.changes.lock().await;
        let mut cfg = self.control.config();
        edit(&mut cfg)?;
        self.apply_locked(cfg, how).await
    }

    /// Applies `cfg`; the caller holds `changes`.
    pub async fn apply_locked(
        self: &Arc<Self>,
        cfg: Config,
        how: Decommission,
    ) -> Result<Vec<String>, ApiError> {
        let changes = self.control.apply(cfg, how).await?;
        if changes
            .iter()
            .any(|c| matches!(c, Change::ChangeSettings { section } if section == "api"))
        {
            self.restart_tcp();
        }
        Ok(changes.iter().map(ToString::to_string).collect())
    }

    /// (Re)starts the TCP listener to match the live `[api] listen`.
    fn restart_tcp(self: &Arc<Self>) {
        let want = self.control.config().api.listen;
        let mut tcp = self.tcp.lock().unwrap_or_else(|p| p.into_inner());
        if tcp.as_ref().map(|l| &l.addr) == want.as_ref() {
            return;
        }
        if let Some(old) = tcp.take() {
            old.stop.send_replace(true);
            info!(addr = %old.addr, "API TCP listener closed");
        }
        if let Some(addr) = want {
            match bind_tcp(self.clone(), &addr) {
                Ok(l) => *tcp = Some(l),
                Err(e) => {
                    warn!(addr = %addr, error = %format!("{e:#}"), "API TCP listener not started")
                }
            }
        }
    }
}

/// Query parameters shared by the endpoints: `mode`, `timeout`, `force`,
/// `dry_run`, `format`.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut out = Vec::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k).ok_or_else(|| ApiError::bad("query", "bad encoding"))?;
            let v = percent_decode(v).ok_or_else(|| ApiError::bad(&k, "bad encoding"))?;
            out.push((k, v));
        }
        Ok(Self(out))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Refuses parameters the endpoint does not know.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) if allowed.is_empty() => Err(ApiError::bad(
                k.as_str(),
                "unknown query parameter (this endpoint takes none)",
            )),
            Some((k, _)) => Err(ApiError::bad(
                k.as_str(),
                format!("unknown query parameter (known: {})", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("false") | Some("0") => Ok(false),
            Some("" | "true" | "1") => Ok(true),
            Some(v) => Err(ApiError::bad(key, format!("{v:?} is not true or false"))),
        }
    }

    /// `mode=refuse|drain|force` with `timeout=60s` for drains.
    pub fn decommission(&self) -> Result<Decommission, ApiError> {
        let timeout = match self.get("timeout") {
            None => DEFAULT_DRAIN,
            Some(t) => parse_duration(t).map_err(|e| ApiError::bad("timeout", e))?,
        };
        match self.get("mode").unwrap_or("refuse") {
            "refuse" => Ok(Decommission::Refuse),
            "drain" => Ok(Decommission::Drain(timeout)),
            "force" => Ok(Decommission::Force),
            m => Err(ApiError::bad(
                "mode",
                format!("{m:?} is not refuse, drain or force"),
            )),
        }
    }
}

/// Parses `60`, `60s`, `2m` or `500ms`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (examples: 60, 60s, 2m)"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("{text:?} has an unknown unit (use ms, s or m)")),
    };
    if d > Duration::from_secs(3600) {
        return Err(format!("{text:?} is longer than an hour"));
    }
    Ok(d)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

const OPENAPI: &str = include_str!("../../../../docs/openapi.yaml");

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint (see GET /openapi.yaml)")
}

/// Every endpoint.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/openapi.yaml", get(openapi))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/stats", get(metrics::stats))
        .route(
            "/v1/trace",
            get(metrics::show_trace)
                .put(metrics::set_trace)
                .delete(metrics::clear_trace),
        )
        .merge(ui::routes())
        .route("/v1/state", get(sessions::state))
        .route("/v1/health", get(sessions::health))
        .route("/v1/sessions", get(sessions::list))
        .route("/v1/sessions/{tsih}", delete(sessions::drop_session))
        .route("/v1/targets", get(targets::list).post(targets::create))
        .route(
            "/v1/targets/{iqn}",
            get(targets::show).delete(targets::remove),
        )
        .route(
            "/v1/targets/{iqn}/luns/{id}",
            put(targets::map_lun).delete(targets::unmap_lun),
        )
        .route("/v1/targets/{iqn}/acls", get(targets::list_acls))
        .route(
            "/v1/targets/{iqn}/acls/{initiator}",
            get(targets::show_acl)
                .put(targets::put_acl)
                .delete(targets::remove_acl),
        )
        .route(
            "/v1/portals",
            get(targets::list_portals).post(targets::add_portal),
        )
        .route("/v1/portals/{addr}", delete(targets::remove_portal))
        .route("/v1/config", get(config::show).post(config::apply))
        .route("/v1/volumes", get(volumes::list).post(volumes::create))
        .route(
            "/v1/volumes/{name}",
            get(volumes::show)
                .put(volumes::resize)
                .delete(volumes::remove),
        )
        .route(
            "/v1/volumes/{name}/snapshots",
            get(volumes::list_snapshots).post(volumes::create_snapshot),
        )
        .route("/v1/snapshots", get(volumes::all_snapshots))
        .route("/v1/snapshots/{full}", delete(volumes::delete_snapshot))
        .route("/v1/snapshots/{full}/rollback", post(volumes::rollback))
        .route("/v1/snapshots/{full}/clone", post(volumes::clone))
        .route("/v1/pool", get(pool::stats))
        .route("/v1/pool/scrub", post(pool::scrub))
        .fallback(not_found)
        .with_state(state)
}

/// The handlers' state for a running server.
pub(crate) fn new_state(control: Control, token: String, socket: PathBuf) -> AppState {
    Arc::new(ApiState {
        pool: control.pool(),
        control,
        started: Instant::now(),
        started_unix: now_unix(),
        changes: tokio::sync::Mutex::new(()),
        socket,
        token: Arc::new(token),
        tcp: Mutex::new(None),
    })
}

/// The TCP flavour of the router: every request needs the bearer token
/// (but the dashboard's static files, see [`ui`]).
pub(crate) fn tcp_router(state: AppState) -> Router {
    router(state.clone()).layer(axum::middleware::from_fn_with_state(
        state.token.clone(),
        ui::token_unless_static,
    ))
}

/// The running API.
pub(crate) struct Api {
    state: AppState,
    unix_stop: watch::Sender<bool>,
    unix_task: JoinHandle<()>,
    socket_ino: Option<(u64, u64)>,
}

/// Binds a TCP listener with the token check.
fn bind_tcp(state: AppState, addr: &str) -> Result<Listener> {
    let sa: SocketAddr = addr
        .parse()
        .with_context(|| format!("[api] listen {addr:?} is not an address"))?;
    let std = std::net::TcpListener::bind(sa).with_context(|| format!("binding {addr}"))?;
    std.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std)?;
    let app = tcp_router(state);
    let (stop, mut rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            warn!(error = %e, "API TCP listener failed");
        }
    });
    info!(addr = %addr, "API listening on TCP (bearer token required)");
    Ok(Listener {
        addr: addr.to_string(),
        stop,
        task,
    })
}

/// Binds `path` with mode 0600, replacing a stale socket.
fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    // SAFETY: umask only changes this process's file creation mask; the
    // socket is then created without group or other permissions at all.
    let old = unsafe { libc::umask(0o177) };
    let bound = tokio::net::UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let listener = bound.with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))?;
    Ok(listener)
}

impl Api {
    /// Starts the API of a running server.
    pub async fn start(control: Control) -> Result<Self> {
        let cfg = control.config();
        let token = auth::load_or_create_token(&cfg.data_dir)?;
        let socket = cfg.data_dir.join(SOCKET_FILE);
        let listener = bind_unix(&socket)?;
        let socket_ino = std::fs::metadata(&socket).ok().map(|m| (m.dev(), m.ino()));
        let state = new_state(control, token, socket.clone());
        if let Some(addr) = &cfg.api.listen {
            let l = bind_tcp(state.clone(), addr)?;
            *state.tcp.lock().unwrap_or_else(|p| p.into_inner()) = Some(l);
        }
        let app = router(state.clone());
        let (unix_stop, mut rx) = watch::channel(false);
        let unix_task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                warn!(error = %e, "API socket failed");
            }
        });
        info!(socket = %socket.display(), "API listening");
        Ok(Self {
            state,
            unix_stop,
            unix_task,
            socket_ino,
        })
    }

    /// Stops the listeners (requests in flight get a short bound) and
    /// removes the socket if it is still ours.
    pub async fn stop(self) {
        self.unix_stop.send_replace(true);
        let tcp = self
            .state
            .tcp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let mut tasks = vec![self.unix_task];
        if let Some(l) = tcp {
            l.stop.send_replace(true);
            tasks.push(l.task);
        }
        for mut t in tasks {
            if tokio::time::timeout(STOP_BOUND, &mut t).await.is_err() {
                t.abort();
            }
        }
        let ours = std::fs::metadata(&self.state.socket)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.socket_ino {
            let _ = std::fs::remove_file(&self.state.socket);
        }
    }
}

#[cfg(test)]
mod tests;
