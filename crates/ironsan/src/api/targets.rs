//! Targets, their LUNs and ACL entries, and portals. Every change goes
//! through [`ApiState::change`] (a modified copy of the live configuration,
//! applied by `Control::apply`).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use target::config::{Acl, AuthMode, Config, DigestMode, Lun, Target};
use target::control::Decommission;

use super::error::{from_value, ApiError, JsonBody, PathParams};
use super::{AppState, Params};

/// A target as the API shows it: the `[[target]]` schema, ACL secrets
/// replaced by `has_secret` flags, plus the number of sessions.
#[derive(Serialize)]
pub(crate) struct TargetView {
    iqn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    alias: Option<String>,
    auth: AuthMode,
    digests: DigestMode,
    lun: Vec<Lun>,
    acl: Vec<AclView>,
    sessions: usize,
}

/// An ACL entry without its secrets.
#[derive(Serialize)]
pub(crate) struct AclView {
    initiator: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    chap_user: Option<String>,
    has_secret: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    mutual_user: Option<String>,
    has_mutual_secret: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    luns: Option<Vec<u16>>,
}

impl From<&Acl> for AclView {
    fn from(a: &Acl) -> Self {
        Self {
            initiator: a.initiator.clone(),
            chap_user: a.chap_user.clone(),
            has_secret: a.chap_secret.is_some(),
            mutual_user: a.mutual_user.clone(),
            has_mutual_secret: a.mutual_secret.is_some(),
            luns: a.luns.clone(),
        }
    }
}

fn view(state: &AppState, t: &Target) -> TargetView {
    let sessions = state
        .control
        .sessions()
        .iter()
        .filter(|s| s.target.eq_ignore_ascii_case(&t.iqn))
        .count();
    TargetView {
        iqn: t.iqn.clone(),
        alias: t.alias.clone(),
        auth: t.auth,
        digests: t.digests,
        lun: t.luns.clone(),
        acl: t.acls.iter().map(AclView::from).collect(),
        sessions,
    }
}

/// Index of target `iqn` (case-insensitive) or 404.
pub(crate) fn find_target(cfg: &Config, iqn: &str) -> Result<usize, ApiError> {
    cfg.targets
        .iter()
        .position(|t| t.iqn.eq_ignore_ascii_case(iqn))
        .ok_or_else(|| ApiError::not_found(format!("no target {iqn}")))
}

fn changes_json(changes: Vec<String>) -> Json<Value> {
    Json(json!({ "changes": changes }))
}

fn decommission(q: Option<String>) -> Result<Decommission, ApiError> {
    let p = Params::parse(q.as_deref())?;
    p.only(&["mode", "timeout"])?;
    p.decommission()
}

fn no_params(q: Option<String>) -> Result<(), ApiError> {
    Params::parse(q.as_deref())?.only(&[])
}

/// `GET /v1/targets`
pub(crate) async fn list(State(s): State<AppState>) -> Json<Vec<TargetView>> {
    let cfg = s.control.config();
    Json(cfg.targets.iter().map(|t| view(&s, t)).collect())
}

/// `GET /v1/targets/{iqn}`
pub(crate) async fn show(
    State(s): State<AppState>,
    PathParams(iqn): PathParams<String>,
) -> Result<Json<TargetView>, ApiError> {
    let cfg = s.control.config();
    let t = find_target(&cfg, &iqn)?;
    Ok(Json(view(&s, &cfg.targets[t])))
}

/// `POST /v1/targets`: body in the `[[target]]` schema (usually just
/// `iqn`, `alias`, `auth`, `digests`; LUNs and ACLs have their endpoints).
pub(crate) async fn create(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    no_params(q)?;
    let target: Target = from_value(body)?;
    let mut prefix = String::new();
    let changes = s
        .change(Decommission::Refuse, |cfg| {
            if find_target(cfg, &target.iqn).is_ok() {
                return Err(ApiError::conflict(format!(
                    "target {} exists already",
                    target.iqn
                )));
            }
            prefix = format!("target[{}].", cfg.targets.len());
            cfg.targets.push(target);
            Ok(())
        })
        .await
        .map_err(|e| e.relative_to(&prefix))?;
    Ok((StatusCode::CREATED, changes_json(changes)))
}

/// `DELETE /v1/targets/{iqn}?mode=refuse|drain|force&timeout=60s`
pub(crate) async fn remove(
    State(s): State<AppState>,
    PathParams(iqn): PathParams<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let how = decommission(q)?;
    let changes = s
        .change(how, |cfg| {
            let t = find_target(cfg, &iqn)?;
            cfg.targets.remove(t);
            Ok(())
        })
        .await?;
    Ok(changes_json(changes))
}

fn parse_lun_id(id: &str) -> Result<u16, ApiError> {
    id.parse::<u16>()
        .ok()
        .filter(|&n| n < 16384)
        .ok_or_else(|| ApiError::bad("id", format!("{id:?} is not a LUN number (0..16383)")))
}

/// Inserts `key: value` (from the path) into a JSON object body; a body
/// that names it differently is refused.
fn with_path_key(mut body: Value, key: &str, value: Value) -> Result<Value, ApiError> {
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad("body", "must be a JSON object"));
    };
    match obj.get(key) {
        Some(v) if *v != value => {
            return Err(ApiError::bad(
                key,
                format!("{v} differs from the {key} in the path ({value})"),
            ))
        }
        _ => {}
    }
    obj.insert(key.to_string(), value);
    Ok(body)
}

/// Replaces the element `matches` finds, or appends `item`; returns its
/// index and whether it is new.
fn upsert<T>(list: &mut Vec<T>, item: T, matches: impl Fn(&T) -> bool) -> (usize, bool) {
    match list.iter().position(matches) {
        Some(i) => {
            list[i] = item;
            (i, false)
        }
        None => {
            list.push(item);
            (list.len() - 1, true)
        }
    }
}

fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// `PUT /v1/targets/{iqn}/luns/{id}`: maps (or replaces) a LUN; body = the
/// `[[target.lun]]` fields. Replacing a LUN in use needs drain or force.
pub(crate) async fn map_lun(
    State(s): State<AppState>,
    PathParams((iqn, id)): PathParams<(String, String)>,
    RawQuery(q): RawQuery,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let how = decommission(q)?;
    let id = parse_lun_id(&id)?;
    let lun: Lun = from_value(with_path_key(body, "id", json!(id))?)?;
    let mut created = false;
    let mut prefix = String::new();
    let changes = s
        .change(how, |cfg| {
            let t = find_target(cfg, &iqn)?;
            let (l, new) = upsert(&mut cfg.targets[t].luns, lun, |l| l.id == id);
            created = new;
            prefix = format!("target[{t}].lun[{l}].");
            Ok(())
        })
        .await
        .map_err(|e| e.relative_to(&prefix))?;
    Ok((created_or_ok(created), changes_json(changes)))
}

/// `DELETE /v1/targets/{iqn}/luns/{id}?mode=...`: unmaps a LUN (and drops
/// it from ACL LUN masks). Refused while sessions use the target unless
/// `mode=drain` or `mode=force`.
pub(crate) async fn unmap_lun(
    State(s): State<AppState>,
    PathParams((iqn, id)): PathParams<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let how = decommission(q)?;
    let id = parse_lun_id(&id)?;
    let changes = s
        .change(how, |cfg| {
            let t = find_target(cfg, &iqn)?;
            let target = &mut cfg.targets[t];
            let l = target
                .luns
                .iter()
                .position(|l| l.id == id)
                .ok_or_else(|| ApiError::not_found(format!("{iqn} has no LUN {id}")))?;
            target.luns.remove(l);
            for acl in &mut target.acls {
                if let Some(mask) = &mut acl.luns {
                    mask.retain(|&m| m != id);
                }
            }
            Ok(())
        })
        .await?;
    Ok(changes_json(changes))
}

/// `GET /v1/targets/{iqn}/acls`
pub(crate) async fn list_acls(
    State(s): State<AppState>,
    PathParams(iqn): PathParams<String>,
) -> Result<Json<Vec<AclView>>, ApiError> {
    let cfg = s.control.config();
    let t = find_target(&cfg, &iqn)?;
    Ok(Json(
        cfg.targets[t].acls.iter().map(AclView::from).collect(),
    ))
}

fn find_acl(t: &Target, initiator: &str) -> Option<usize> {
    t.acls
        .iter()
        .position(|a| a.initiator.eq_ignore_ascii_case(initiator))
}

/// `GET /v1/targets/{iqn}/acls/{initiator}` (secrets are never returned)
pub(crate) async fn show_acl(
    State(s): State<AppState>,
    PathParams((iqn, initiator)): PathParams<(String, String)>,
) -> Result<Json<AclView>, ApiError> {
    let cfg = s.control.config();
    let t = &cfg.targets[find_target(&cfg, &iqn)?];
    let a = find_acl(t, &initiator)
        .ok_or_else(|| ApiError::not_found(format!("{iqn} has no ACL entry for {initiator}")))?;
    Ok(Json(AclView::from(&t.acls[a])))
}

/// `PUT /v1/targets/{iqn}/acls/{initiator}`: adds or replaces an entry;
/// body = the `[[target.acl]]` fields (secrets are write-only).
pub(crate) async fn put_acl(
    State(s): State<AppState>,
    PathParams((iqn, initiator)): PathParams<(String, String)>,
    RawQuery(q): RawQuery,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    no_params(q)?;
    let acl: Acl = from_value(with_path_key(body, "initiator", json!(initiator))?)?;
    let mut created = false;
    let mut prefix = String::new();
    let changes = s
        .change(Decommission::Refuse, |cfg| {
            let t = find_target(cfg, &iqn)?;
            let (a, new) = upsert(&mut cfg.targets[t].acls, acl, |a| {
                a.initiator.eq_ignore_ascii_case(&initiator)
            });
            created = new;
            prefix = format!("target[{t}].acl[{a}].");
            Ok(())
        })
        .await
        .map_err(|e| e.relative_to(&prefix))?;
    Ok((created_or_ok(created), changes_json(changes)))
}

/// `DELETE /v1/targets/{iqn}/acls/{initiator}`: new logins of that
/// initiator are refused; its sessions keep running (drop them with
/// `DELETE /v1/sessions/{tsih}`).
pub(crate) async fn remove_acl(
    State(s): State<AppState>,
    PathParams((iqn, initiator)): PathParams<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    no_params(q)?;
    let changes = s
        .change(Decommission::Refuse, |cfg| {
            let t = find_target(cfg, &iqn)?;
            let a = find_acl(&cfg.targets[t], &initiator).ok_or_else(|| {
                ApiError::not_found(format!("{iqn} has no ACL entry for {initiator}"))
            })?;
            cfg.targets[t].acls.remove(a);
            Ok(())
        })
        .await?;
    Ok(changes_json(changes))
}

/// `GET /v1/portals`: configured addresses and the bound sockets.
pub(crate) async fn list_portals(State(s): State<AppState>) -> Json<Value> {
    let listening: Vec<String> = s
        .control
        .portal_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    Json(json!({ "portals": s.control.config().portals, "listening": listening }))
}

/// Body of `POST /v1/portals`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortalBody {
    address: String,
}

/// `POST /v1/portals` `{"address": "127.0.0.1:3261"}`
pub(crate) async fn add_portal(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    JsonBody(body): JsonBody<PortalBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    no_params(q)?;
    let mut prefix = String::new();
    let changes = s
        .change(Decommission::Refuse, |cfg| {
            if cfg.portals.contains(&body.address) {
                return Err(ApiError::conflict(format!(
                    "portal {} exists already",
                    body.address
                )));
            }
            prefix = format!("portals[{}]", cfg.portals.len());
            cfg.portals.push(body.address);
            Ok(())
        })
        .await
        .map_err(|e| {
            if e.field.as_deref() == Some(prefix.as_str()) {
                ApiError {
                    field: Some("address".into()),
                    ..e
                }
            } else {
                e
            }
        })?;
    Ok((StatusCode::CREATED, changes_json(changes)))
}

/// `DELETE /v1/portals/{addr}`: stops listening there; sessions that came
/// in through it keep running.
pub(crate) async fn remove_portal(
    State(s): State<AppState>,
    PathParams(addr): PathParams<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    no_params(q)?;
    let changes = s
        .change(Decommission::Refuse, |cfg| {
            let i = cfg
                .portals
                .iter()
                .position(|p| *p == addr)
                .ok_or_else(|| ApiError::not_found(format!("no portal {addr}")))?;
            cfg.portals.remove(i);
            Ok(())
        })
        .await?;
    Ok(changes_json(changes))
}
