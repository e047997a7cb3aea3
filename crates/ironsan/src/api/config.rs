//! The whole live configuration: show it, diff and apply a new one.

use std::path::Path;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use target::config::{Config, ConfigError};
use target::control::Decommission;

use super::error::{quoted_field, ApiError};
use super::{AppState, Params};

/// The live configuration as JSON without secret values: each secret is
/// replaced by a `has_...` flag.
pub(crate) fn redacted(cfg: &Config) -> Value {
    let mut v = serde_json::to_value(cfg).unwrap_or(Value::Null);
    let strip = |obj: &mut serde_json::Map<String, Value>| {
        for (secret, flag) in [
            ("chap_secret", "has_secret"),
            ("mutual_secret", "has_mutual_secret"),
        ] {
            let had = obj.remove(secret).is_some();
            obj.insert(flag.into(), Value::from(had));
        }
    };
    if let Some(d) = v.get_mut("discovery").and_then(Value::as_object_mut) {
        strip(d);
    }
    if let Some(targets) = v.get_mut("target").and_then(Value::as_array_mut) {
        for t in targets {
            if let Some(acls) = t.get_mut("acl").and_then(Value::as_array_mut) {
                for a in acls.iter_mut().filter_map(Value::as_object_mut) {
                    strip(a);
                }
            }
        }
    }
    v
}

/// `GET /v1/config[?format=toml]`: JSON (secrets redacted) or the TOML
/// document `serve --config` and `apply` read, secrets included: the
/// caller is on the 0600 Unix socket or presented the token.
pub(crate) async fn show(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref())?;
    p.only(&["format"])?;
    let cfg = s.control.config();
    match p.get("format").unwrap_or("json") {
        "json" => Ok(Json(redacted(&cfg)).into_response()),
        "toml" => {
            let text = toml::to_string(&cfg).map_err(|e| {
                ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            })?;
            Ok(([(header::CONTENT_TYPE, "application/toml")], text).into_response())
        }
        f => Err(ApiError::bad(
            "format",
            format!("{f:?} is not json or toml"),
        )),
    }
}

fn config_error(e: ConfigError) -> ApiError {
    match e {
        ConfigError::Invalid { key, problem, .. } => ApiError::bad(key, problem),
        ConfigError::Parse { message, .. } => {
            let field = quoted_field(&message).unwrap_or_else(|| "body".into());
            ApiError::bad(field, message)
        }
        ConfigError::Read { source, .. } => ApiError::bad("body", source.to_string()),
    }
}

/// `POST /v1/config?dry_run=true&mode=refuse|drain|force&timeout=60s`:
/// body = a whole configuration (TOML). Returns the changes (made, or that
/// would be made with `dry_run`).
pub(crate) async fn apply(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q.as_deref())?;
    p.only(&["dry_run", "mode", "timeout"])?;
    let dry_run = p.flag("dry_run")?;
    let how: Decommission = p.decommission()?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::bad("body", "is not UTF-8"))?;
    let cfg = Config::parse(text, Path::new("request")).map_err(config_error)?;
    let changes: Vec<String> = if dry_run {
        s.control
            .plan(&cfg)?
            .iter()
            .map(ToString::to_string)
            .collect()
    } else {
        let _serial = s.changes.lock().await;
        s.apply_locked(cfg, how).await?
    };
    Ok(Json(json!({ "dry_run": dry_run, "changes": changes })))
}
