//! Daemon state, health (for `ironsan check`) and sessions.

use std::path::PathBuf;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use target::config::{Config, Lun};
use target::server::SessionInfo;

use super::error::{ApiError, PathParams};
use super::{AppState, Params};

/// The backing file of a LUN, if it has one.
pub(crate) fn lun_file(lun: &Lun) -> Option<PathBuf> {
    lun.file.clone()
}

/// The pool volume backing a LUN, if any (`volume = "NAME"`).
pub(crate) fn lun_volume(lun: &Lun) -> Option<String> {
    lun.volume.clone()
}

fn lun_count(cfg: &Config) -> usize {
    cfg.targets.iter().map(|t| t.luns.len()).sum()
}

/// `GET /v1/state`
pub(crate) async fn state(State(s): State<AppState>) -> Json<Value> {
    let cfg = s.control.config();
    let sessions = s.control.sessions().len();
    let volumes = s
        .pool
        .list()
        .iter()
        .filter(|v| matches!(v.kind, volume::ObjectKind::Volume))
        .count();
    let listening: Vec<String> = s
        .control
        .portal_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "started": s.started_unix,
        "uptime_secs": s.started.elapsed().as_secs(),
        "data_dir": cfg.data_dir,
        "targets": cfg.targets.len(),
        "luns": lun_count(&cfg),
        "acls": cfg.targets.iter().map(|t| t.acls.len()).sum::<usize>(),
        "sessions": sessions,
        "portals": cfg.portals,
        "listening": listening,
        "volumes": volumes,
        "api": { "socket": s.socket, "tcp": cfg.api.listen },
    }))
}

/// One finding of the health check.
#[derive(Serialize)]
struct Problem {
    /// `warning` or `critical`.
    severity: &'static str,
    message: String,
}

/// `GET /v1/health`: what `ironsan check` reports. Only conditions the
/// daemon can observe: portals not listening, LUN backing files or volumes
/// gone, checksum errors on volumes.
pub(crate) async fn health(State(s): State<AppState>) -> Json<Value> {
    let cfg = s.control.config();
    let mut problems = Vec::new();
    let mut add = |severity, message| problems.push(Problem { severity, message });
    let listening = s.control.portal_addrs().len();
    if listening == 0 {
        add("critical", "no portal is listening".to_string());
    } else if listening < cfg.portals.len() {
        add(
            "warning",
            format!("{listening} of {} portals are listening", cfg.portals.len()),
        );
    }
    let infos = s.pool.list();
    for t in &cfg.targets {
        for l in &t.luns {
            if let Some(f) = lun_file(l) {
                if std::fs::metadata(&f).is_err() {
                    add(
                        "critical",
                        format!(
                            "LUN {} of {}: backing file {} is gone",
                            l.id,
                            t.iqn,
                            f.display()
                        ),
                    );
                }
            }
            if let Some(v) = lun_volume(l) {
                if !infos.iter().any(|i| i.name == v) {
                    add(
                        "critical",
                        format!("LUN {} of {}: volume {v} does not exist", l.id, t.iqn),
                    );
                }
            }
        }
    }
    for v in infos.iter().filter(|v| v.checksum_errors > 0) {
        add(
            "warning",
            format!("volume {}: {} checksum errors", v.name, v.checksum_errors),
        );
    }
    let status = if problems.iter().any(|p| p.severity == "critical") {
        "critical"
    } else if problems.is_empty() {
        "ok"
    } else {
        "warning"
    };
    Json(json!({
        "status": status,
        "problems": problems,
        "targets": cfg.targets.len(),
        "luns": lun_count(&cfg),
        "sessions": s.control.sessions().len(),
        "portals": listening,
    }))
}

/// `GET /v1/sessions`
pub(crate) async fn list(State(s): State<AppState>) -> Json<Vec<SessionInfo>> {
    Json(s.control.sessions())
}

/// `DELETE /v1/sessions/{tsih}[?force=true]`: asks the initiator to log
/// out (Async Message), or with `force` closes the session at once.
pub(crate) async fn drop_session(
    State(s): State<AppState>,
    PathParams(tsih): PathParams<String>,
    RawQuery(q): RawQuery,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let p = Params::parse(q.as_deref())?;
    p.only(&["force"])?;
    let force = p.flag("force")?;
    let tsih: u16 = tsih
        .parse()
        .map_err(|_| ApiError::bad("tsih", format!("{tsih:?} is not a TSIH (0..65535)")))?;
    s.control.drop_session(tsih, force)?;
    let action = if force { "closed" } else { "logout requested" };
    s.control.audit(
        "session_drop",
        &[("tsih", &tsih.to_string()), ("action", action)],
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "tsih": tsih, "action": action })),
    ))
}
