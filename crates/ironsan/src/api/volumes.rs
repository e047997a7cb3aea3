//! Volumes and snapshots of the pool in `data_dir/pool`. Pool operations
//! may fsync, so they run on blocking threads.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use target::config::{parse_size, Config};
use target::control::Decommission;
use volume::{ObjectKind, Pool, VolumeInfo};

use super::error::{ApiError, JsonBody, PathParams};
use super::sessions::lun_volume;
use super::{AppState, Params};

/// Runs a pool operation on a blocking thread.
async fn blocking<T: Send + 'static>(
    pool: Arc<Pool>,
    op: impl FnOnce(&Pool) -> Result<T, volume::VolumeError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || op(&pool))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

/// A size as `"10G"` or a byte count.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn bytes(&self) -> Result<u64, ApiError> {
        match self {
            Size::Bytes(n) => Ok(*n),
            Size::Text(t) => parse_size(t).map_err(|e| ApiError::bad("size", e)),
        }
    }
}

/// Body of `POST /v1/volumes`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateVolume {
    name: String,
    size: Size,
    #[serde(default = "default_block_size")]
    block_size: u32,
}

fn default_block_size() -> u32 {
    512
}

/// Body of `PUT /v1/volumes/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResizeVolume {
    size: Size,
}

/// Body of snapshot creation and clones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Named {
    name: String,
}

fn split_full(full: &str) -> Result<(String, String), ApiError> {
    match full.split_once('@') {
        Some((v, s)) if !v.is_empty() && !s.is_empty() => Ok((v.to_string(), s.to_string())),
        _ => Err(ApiError::bad(
            "snapshot",
            format!("{full:?} is not VOLUME@SNAPSHOT"),
        )),
    }
}

/// LUNs (target, id) that export `volume`.
pub(crate) fn luns_using(cfg: &Config, volume: &str) -> Vec<(String, u16)> {
    cfg.targets
        .iter()
        .flat_map(|t| {
            t.luns
                .iter()
                .filter(|l| lun_volume(l).as_deref() == Some(volume))
                .map(|l| (t.iqn.clone(), l.id))
        })
        .collect()
}

fn mapped_by(cfg: &Config, name: &str) -> Vec<String> {
    luns_using(cfg, name)
        .into_iter()
        .map(|(t, id)| format!("{t} LUN {id}"))
        .collect()
}

fn with_mappings(cfg: &Config, v: &VolumeInfo) -> Value {
    let mut out = serde_json::to_value(v).unwrap_or(Value::Null);
    if let Some(o) = out.as_object_mut() {
        o.insert("mapped_by".into(), json!(mapped_by(cfg, &v.name)));
    }
    out
}

/// `GET /v1/volumes`
pub(crate) async fn list(State(s): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    let pool = s.pool();
    let cfg = s.control.config();
    let infos = blocking(pool, |p| Ok(p.list())).await?;
    Ok(Json(
        infos
            .iter()
            .filter(|v| v.kind == ObjectKind::Volume)
            .map(|v| with_mappings(&cfg, v))
            .collect(),
    ))
}

/// `GET /v1/volumes/{name}`
pub(crate) async fn show(
    State(s): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let pool = s.pool();
    let cfg = s.control.config();
    let n = name.clone();
    let info = blocking(pool, move |p| Ok(p.info(&n))).await?;
    match info {
        Some(v) if v.kind == ObjectKind::Volume => Ok(Json(with_mappings(&cfg, &v))),
        _ => Err(ApiError::not_found(format!("no volume {name}"))),
    }
}

/// `POST /v1/volumes` `{"name": "db", "size": "10G", "block_size": 512}`
pub(crate) async fn create(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    JsonBody(body): JsonBody<CreateVolume>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    Params::parse(q.as_deref())?.only(&[])?;
    let pool = s.pool();
    let size = body.size.bytes()?;
    if body.block_size != 512 && body.block_size != 4096 {
        return Err(ApiError::bad("block_size", "must be 512 or 4096"));
    }
    let name = body.name.clone();
    blocking(pool, move |p| p.create_volume(&name, size, body.block_size)).await?;
    s.control.audit(
        "volume_create",
        &[("volume", &body.name), ("size", &size.to_string())],
    );
    Ok((StatusCode::CREATED, Json(json!({ "volume": body.name }))))
}

/// `PUT /v1/volumes/{name}[?force=true]` `{"size": "20G"}`: grows, or
/// shrinks with `force` (data past the new end is discarded).
pub(crate) async fn resize(
    State(s): State<AppState>,
    PathParams(name): PathParams<String>,
    RawQuery(q): RawQuery,
    JsonBody(body): JsonBody<ResizeVolume>,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q.as_deref())?;
    p.only(&["force"])?;
    let force = p.flag("force")?;
    let pool = s.pool();
    let size = body.size.bytes()?;
    let n = name.clone();
    blocking(pool, move |p| p.resize_volume(&n, size, force)).await?;
    s.control.audit(
        "volume_resize",
        &[("volume", &name), ("size", &size.to_string())],
    );
    Ok(Json(json!({ "volume": name, "size": size })))
}

/// `DELETE /v1/volumes/{name}?mode=refuse|drain|force&timeout=60s`: a
/// volume exported as a LUN is refused (naming the LUNs and sessions);
/// with drain or force its LUNs are unmapped first, as `lun unmap` does.
pub(crate) async fn remove(
    State(s): State<AppState>,
    PathParams(name): PathParams<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q.as_deref())?;
    p.only(&["mode", "timeout"])?;
    let how = p.decommission()?;
    let pool = s.pool();
    let _serial = s.changes.lock().await;
    let mut cfg = s.control.config();
    let users = luns_using(&cfg, &name);
    let mut changes = Vec::new();
    if !users.is_empty() {
        if how == Decommission::Refuse {
            let targets: Vec<&str> = users.iter().map(|(t, _)| t.as_str()).collect();
            let sessions: Vec<String> = s
                .control
                .sessions()
                .iter()
                .filter(|x| targets.iter().any(|t| t.eq_ignore_ascii_case(&x.target)))
                .map(|x| format!("{} ({})", x.initiator, x.peer))
                .collect();
            let in_use = if sessions.is_empty() {
                String::new()
            } else {
                format!(" and in use by {}", sessions.join(", "))
            };
            return Err(ApiError::conflict(format!(
                "volume {name} is mapped as {}{in_use}; unmap it first, or use drain or force",
                mapped_by(&cfg, &name).join(", ")
            )));
        }
        for t in &mut cfg.targets {
            let gone: Vec<u16> = t
                .luns
                .iter()
                .filter(|l| lun_volume(l).as_deref() == Some(name.as_str()))
                .map(|l| l.id)
                .collect();
            t.luns.retain(|l| !gone.contains(&l.id));
            for acl in &mut t.acls {
                if let Some(mask) = &mut acl.luns {
                    mask.retain(|m| !gone.contains(m));
                }
            }
        }
        changes = s.apply_locked(cfg, how).await?;
    }
    // Commands in flight on the unmapped LUNs may hold the volume a moment.
    let mut tries = if changes.is_empty() { 1 } else { 30 };
    loop {
        let n = name.clone();
        match blocking(pool.clone(), move |p| p.delete_volume(&n)).await {
            Err(e) if e.status == StatusCode::CONFLICT && tries > 1 => {
                tries -= 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => break other?,
        }
    }
    s.control.audit("volume_delete", &[("volume", &name)]);
    Ok(Json(json!({ "volume": name, "changes": changes })))
}

fn snapshots_of(infos: Vec<VolumeInfo>, volume: Option<&str>) -> Vec<VolumeInfo> {
    infos
        .into_iter()
        .filter(|v| v.kind == ObjectKind::Snapshot && volume.is_none_or(|n| v.volume == n))
        .collect()
}

/// `GET /v1/volumes/{name}/snapshots`
pub(crate) async fn list_snapshots(
    State(s): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<Vec<VolumeInfo>>, ApiError> {
    let pool = s.pool();
    let infos = blocking(pool, |p| Ok(p.list())).await?;
    if !infos
        .iter()
        .any(|v| v.kind == ObjectKind::Volume && v.name == name)
    {
        return Err(ApiError::not_found(format!("no volume {name}")));
    }
    Ok(Json(snapshots_of(infos, Some(&name))))
}

/// `GET /v1/snapshots`
pub(crate) async fn all_snapshots(
    State(s): State<AppState>,
) -> Result<Json<Vec<VolumeInfo>>, ApiError> {
    let pool = s.pool();
    let infos = blocking(pool, |p| Ok(p.list())).await?;
    Ok(Json(snapshots_of(infos, None)))
}

/// `POST /v1/volumes/{name}/snapshots` `{"name": "nightly"}`
pub(crate) async fn create_snapshot(
    State(s): State<AppState>,
    PathParams(volume): PathParams<String>,
    JsonBody(body): JsonBody<Named>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let pool = s.pool();
    let (v, n) = (volume.clone(), body.name.clone());
    blocking(pool, move |p| p.create_snapshot(&v, &n)).await?;
    let full = format!("{volume}@{}", body.name);
    s.control.audit("snapshot_create", &[("snapshot", &full)]);
    Ok((StatusCode::CREATED, Json(json!({ "snapshot": full }))))
}

/// `DELETE /v1/snapshots/{vol}@{snap}`
pub(crate) async fn delete_snapshot(
    State(s): State<AppState>,
    PathParams(full): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let (v, n) = split_full(&full)?;
    let pool = s.pool();
    blocking(pool, move |p| p.delete_snapshot(&v, &n)).await?;
    s.control.audit("snapshot_delete", &[("snapshot", &full)]);
    Ok(Json(json!({ "snapshot": full })))
}

/// `POST /v1/snapshots/{vol}@{snap}/rollback`: discards what was written
/// since (the latest snapshot only); safe while the volume is exported.
pub(crate) async fn rollback(
    State(s): State<AppState>,
    PathParams(full): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let (v, n) = split_full(&full)?;
    let pool = s.pool();
    blocking(pool, move |p| p.rollback(&v, &n)).await?;
    s.control.audit("snapshot_rollback", &[("snapshot", &full)]);
    Ok(Json(json!({ "snapshot": full })))
}

/// `POST /v1/snapshots/{vol}@{snap}/clone` `{"name": "new-volume"}`
pub(crate) async fn clone(
    State(s): State<AppState>,
    PathParams(full): PathParams<String>,
    JsonBody(body): JsonBody<Named>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (v, n) = split_full(&full)?;
    let pool = s.pool();
    let new = body.name.clone();
    blocking(pool, move |p| p.clone_snapshot(&v, &n, &new)).await?;
    s.control.audit(
        "volume_clone",
        &[("snapshot", &full), ("volume", &body.name)],
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({ "volume": body.name, "origin": full })),
    ))
}
