//! `target`, `lun`, `acl`, `session` and `portal` commands.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use super::args::{AclCmd, LunCmd, PortalCmd, SessionCmd, TargetCmd};
use super::client::{seg, Client, DEFAULT_TIMEOUT};
use super::output::{self, age, items, n, s, table};
use super::{changes, done, with_query};

pub(super) fn target(c: &Client, json: bool, cmd: TargetCmd) -> Result<()> {
    match cmd {
        TargetCmd::Create {
            iqn,
            auth,
            digests,
            alias,
        } => {
            let mut body = Map::new();
            body.insert("iqn".into(), json!(iqn));
            for (k, v) in [("auth", auth), ("digests", digests), ("alias", alias)] {
                if let Some(v) = v {
                    body.insert(k.into(), json!(v));
                }
            }
            let v = c.call(
                "POST",
                "/v1/targets",
                Some(&Value::Object(body)),
                DEFAULT_TIMEOUT,
            )?;
            changes(json, &v);
        }
        TargetCmd::List => {
            let v = c.get("/v1/targets")?;
            if json {
                output::json(&v);
                return Ok(());
            }
            let count = |x: &Value, k: &str| {
                x.get(k)
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
                    .to_string()
            };
            let rows: Vec<Vec<String>> = items(&v)
                .iter()
                .map(|x| {
                    vec![
                        s(x, "iqn"),
                        s(x, "auth"),
                        s(x, "digests"),
                        count(x, "lun"),
                        count(x, "acl"),
                        n(x, "sessions").to_string(),
                    ]
                })
                .collect();
            table(
                &["IQN", "AUTH", "DIGESTS", "LUNS", "ACLS", "SESSIONS"],
                &rows,
            );
        }
        TargetCmd::Show { iqn } => {
            let t = c.get(&format!("/v1/targets/{}", seg(&iqn)))?;
            let sessions = c.get("/v1/sessions")?;
            let mine: Vec<&Value> = items(&sessions)
                .iter()
                .filter(|x| s(x, "target").eq_ignore_ascii_case(&s(&t, "iqn")))
                .collect();
            if json {
                let mut t = t.clone();
                t["session_list"] = json!(mine);
                output::json(&t);
                return Ok(());
            }
            println!("target   {}", s(&t, "iqn"));
            if t.get("alias").is_some() {
                println!("alias    {}", s(&t, "alias"));
            }
            println!(
                "auth     {}\ndigests  {}\n",
                s(&t, "auth"),
                s(&t, "digests")
            );
            print_luns(&t);
            println!();
            print_acls(t.get("acl").unwrap_or(&Value::Null));
            println!();
            print_sessions(&mine);
        }
        TargetCmd::Delete { iqn, decom } => {
            let path = with_query(format!("/v1/targets/{}", seg(&iqn)), &decom.query());
            let v = c.call("DELETE", &path, None, decom.bound()?)?;
            changes(json, &v);
        }
    }
    Ok(())
}

fn print_luns(t: &Value) {
    let rows: Vec<Vec<String>> = t
        .get("lun")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|l| {
            let backing = match l.get("volume").and_then(Value::as_str) {
                Some(v) => format!("volume {v}"),
                None => s(l, "file"),
            };
            let mut flags = Vec::new();
            if l.get("read_only").and_then(Value::as_bool) == Some(true) {
                flags.push("ro");
            }
            if l.get("write_cache").and_then(Value::as_bool) == Some(false) {
                flags.push("no-wce");
            }
            vec![
                n(l, "id").to_string(),
                backing,
                s(l, "size"),
                n(l, "block_size").to_string(),
                if flags.is_empty() {
                    "-".into()
                } else {
                    flags.join(",")
                },
            ]
        })
        .collect();
    table(&["LUN", "BACKING", "SIZE", "BLOCK", "FLAGS"], &rows);
}

fn print_acls(acls: &Value) {
    let rows: Vec<Vec<String>> = items(&acls)
        .iter()
        .map(|a| {
            let yes = |k: &str| {
                if a.get(k).and_then(Value::as_bool) == Some(true) {
                    "set".to_string()
                } else {
                    "-".to_string()
                }
            };
            let luns = a
                .get("luns")
                .and_then(Value::as_array)
                .map(|l| l.iter().map(Value::to_string).collect::<Vec<_>>().join(","))
                .unwrap_or_else(|| "all".into());
            vec![
                s(a, "initiator"),
                s(a, "chap_user"),
                yes("has_secret"),
                s(a, "mutual_user"),
                yes("has_mutual_secret"),
                luns,
            ]
        })
        .collect();
    table(
        &[
            "INITIATOR",
            "CHAP_USER",
            "SECRET",
            "MUTUAL_USER",
            "MUTUAL_SECRET",
            "LUNS",
        ],
        &rows,
    );
}

fn print_sessions(list: &[&Value]) {
    let now = crate::api::now_unix();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|x| {
            vec![
                n(x, "tsih").to_string(),
                s(x, "initiator"),
                s(x, "isid"),
                s(x, "target"),
                s(x, "peer"),
                s(x, "portal"),
                s(x, "auth"),
                age(now.saturating_sub(n(x, "since"))),
            ]
        })
        .collect();
    table(
        &[
            "TSIH",
            "INITIATOR",
            "ISID",
            "TARGET",
            "PEER",
            "PORTAL",
            "AUTH",
            "AGE",
        ],
        &rows,
    );
}

fn read_secret(inline: Option<String>, file: Option<PathBuf>) -> Result<Option<String>> {
    match (inline, file) {
        (Some(s), _) => Ok(Some(s)),
        (None, Some(f)) => {
            let text =
                std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
            let line = text.lines().next().unwrap_or_default().to_string();
            if line.is_empty() {
                bail!("{}: the first line is empty", f.display());
            }
            Ok(Some(line))
        }
        (None, None) => Ok(None),
    }
}

pub(super) fn lun(c: &Client, json: bool, cmd: LunCmd) -> Result<()> {
    match cmd {
        LunCmd::Map {
            iqn,
            id,
            file,
            size,
            volume,
            block_size,
            read_only,
            no_write_cache,
            decom,
        } => {
            let mut body = Map::new();
            if let Some(f) = file {
                // The daemon resolves paths itself: send an absolute one.
                let abs = std::path::absolute(&f)
                    .with_context(|| format!("resolving {}", f.display()))?;
                body.insert("file".into(), json!(abs));
            }
            if let Some(v) = size {
                body.insert("size".into(), json!(v));
            }
            if let Some(v) = volume {
                body.insert("volume".into(), json!(v));
            }
            if let Some(b) = block_size {
                body.insert("block_size".into(), json!(b));
            }
            if read_only {
                body.insert("read_only".into(), json!(true));
            }
            if no_write_cache {
                body.insert("write_cache".into(), json!(false));
            }
            let path = with_query(
                format!("/v1/targets/{}/luns/{id}", seg(&iqn)),
                &decom.query(),
            );
            let v = c.call("PUT", &path, Some(&Value::Object(body)), decom.bound()?)?;
            changes(json, &v);
        }
        LunCmd::Unmap { iqn, id, decom } => {
            let path = with_query(
                format!("/v1/targets/{}/luns/{id}", seg(&iqn)),
                &decom.query(),
            );
            let v = c.call("DELETE", &path, None, decom.bound()?)?;
            changes(json, &v);
        }
    }
    Ok(())
}

pub(super) fn acl(c: &Client, json: bool, cmd: AclCmd) -> Result<()> {
    match cmd {
        AclCmd::Add {
            iqn,
            initiator,
            chap_user,
            chap_secret,
            chap_secret_file,
            mutual_user,
            mutual_secret,
            mutual_secret_file,
            luns,
        } => {
            let mut body = Map::new();
            let fields = [
                ("chap_user", chap_user),
                ("chap_secret", read_secret(chap_secret, chap_secret_file)?),
                ("mutual_user", mutual_user),
                (
                    "mutual_secret",
                    read_secret(mutual_secret, mutual_secret_file)?,
                ),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    body.insert(k.into(), json!(v));
                }
            }
            if let Some(l) = luns {
                body.insert("luns".into(), json!(l));
            }
            let path = format!("/v1/targets/{}/acls/{}", seg(&iqn), seg(&initiator));
            let v = c.call("PUT", &path, Some(&Value::Object(body)), DEFAULT_TIMEOUT)?;
            changes(json, &v);
        }
        AclCmd::Remove { iqn, initiator } => {
            let path = format!("/v1/targets/{}/acls/{}", seg(&iqn), seg(&initiator));
            let v = c.call("DELETE", &path, None, DEFAULT_TIMEOUT)?;
            changes(json, &v);
        }
        AclCmd::List { iqn } => {
            let v = c.get(&format!("/v1/targets/{}/acls", seg(&iqn)))?;
            if json {
                output::json(&v);
            } else {
                print_acls(&v);
            }
        }
    }
    Ok(())
}

pub(super) fn session(c: &Client, json: bool, cmd: SessionCmd) -> Result<()> {
    match cmd {
        SessionCmd::List => {
            let v = c.get("/v1/sessions")?;
            if json {
                output::json(&v);
            } else {
                let list: Vec<&Value> =
                    v.as_array().map(|a| a.iter().collect()).unwrap_or_default();
                print_sessions(&list);
            }
        }
        SessionCmd::Drop { tsih, force } => {
            let q = if force { "?force=true" } else { "" };
            let v = c.call(
                "DELETE",
                &format!("/v1/sessions/{tsih}{q}"),
                None,
                DEFAULT_TIMEOUT,
            )?;
            done(json, &v, &format!("session {tsih}: {}", s(&v, "action")));
        }
    }
    Ok(())
}

pub(super) fn portal(c: &Client, json: bool, cmd: PortalCmd) -> Result<()> {
    match cmd {
        PortalCmd::Add { addr } => {
            let body = json!({ "address": addr });
            let v = c.call("POST", "/v1/portals", Some(&body), DEFAULT_TIMEOUT)?;
            changes(json, &v);
        }
        PortalCmd::Remove { addr } => {
            let v = c.call(
                "DELETE",
                &format!("/v1/portals/{}", seg(&addr)),
                None,
                DEFAULT_TIMEOUT,
            )?;
            changes(json, &v);
        }
        PortalCmd::List => {
            let v = c.get("/v1/portals")?;
            if json {
                output::json(&v);
                return Ok(());
            }
            let col = |k: &str| -> Vec<String> {
                v.get(k)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let rows: Vec<Vec<String>> = col("portals")
                .into_iter()
                .map(|p| vec![p, "configured".into()])
                .chain(
                    col("listening")
                        .into_iter()
                        .map(|p| vec![p, "listening".into()]),
                )
                .collect();
            table(&["ADDRESS", "STATE"], &rows);
        }
    }
    Ok(())
}
