//! The volume pool itself: counters and the online scrub. Both run on
//! blocking threads (a scrub reads every data block and may take long; the
//! async runtime keeps serving meanwhile).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use volume::{Pool, PoolStats, ScrubReport};

use super::error::ApiError;
use super::{AppState, Params};

async fn blocking<T: Send + 'static>(
    pool: Arc<Pool>,
    op: impl FnOnce(&Pool) -> Result<T, volume::VolumeError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || op(&pool))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

/// `GET /v1/pool`: space and metadata counters of `data_dir/pool`.
pub(crate) async fn stats(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    Params::parse(q.as_deref())?.only(&[])?;
    let pool = s.pool();
    let (st, dir, used): (PoolStats, String, u64) = blocking(pool, |p| {
        let used = p
            .list()
            .iter()
            .filter(|v| v.kind == volume::ObjectKind::Volume)
            .map(|v| v.used_bytes)
            .sum();
        Ok((p.stats(), p.dir().display().to_string(), used))
    })
    .await?;
    let mut out = serde_json::to_value(st).unwrap_or(Value::Null);
    if let Some(o) = out.as_object_mut() {
        o.insert("dir".into(), json!(dir));
        o.insert("volumes_used_bytes".into(), json!(used));
    }
    Ok(Json(out))
}

/// `POST /v1/pool/scrub[?volume=NAME]`: verifies every data block (of one
/// volume and the snapshots it reads through, or of the whole pool) and
/// the metadata files. Damage is part of the answer (200), not an error.
pub(crate) async fn scrub(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<ScrubReport>, ApiError> {
    let params = Params::parse(q.as_deref())?;
    params.only(&["volume"])?;
    let volume = match params.get("volume") {
        Some("") => return Err(ApiError::bad("volume", "empty volume name")),
        Some(v) => Some(v.to_string()),
        None => None,
    };
    let pool = s.pool();
    let report = blocking(pool, move |p| p.scrub(volume.as_deref())).await?;
    Ok(Json(report))
}
