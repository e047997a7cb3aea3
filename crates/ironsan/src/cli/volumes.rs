//! `volume` and `snapshot` commands.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::args::{SnapshotCmd, VolumeCmd};
use super::client::{seg, Client, DEFAULT_TIMEOUT};
use super::output::{self, bytes, items, joined_or_dash, n, s, table};
use super::{done, with_query};

pub(super) fn volume(c: &Client, json: bool, cmd: VolumeCmd) -> Result<()> {
    match cmd {
        VolumeCmd::Create {
            name,
            size,
            block_size,
        } => {
            let body = json!({ "name": name, "size": size, "block_size": block_size });
            let v = c.call("POST", "/v1/volumes", Some(&body), DEFAULT_TIMEOUT)?;
            done(json, &v, &format!("created volume {name}"));
        }
        VolumeCmd::List => {
            let v = c.get("/v1/volumes")?;
            if json {
                output::json(&v);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = items(&v)
                .iter()
                .map(|x| {
                    vec![
                        s(x, "name"),
                        bytes(n(x, "logical_bytes")),
                        bytes(n(x, "used_bytes")),
                        bytes(n(x, "referenced_bytes")),
                        s(x, "origin"),
                        joined_or_dash(x, "mapped_by"),
                    ]
                })
                .collect();
            table(
                &["NAME", "SIZE", "USED", "REFER", "ORIGIN", "MAPPED"],
                &rows,
            );
        }
        VolumeCmd::Resize { name, size, force } => {
            let q = if force { "?force=true" } else { "" };
            let path = format!("/v1/volumes/{}{q}", seg(&name));
            let v = c.call(
                "PUT",
                &path,
                Some(&json!({ "size": size })),
                DEFAULT_TIMEOUT,
            )?;
            done(json, &v, &format!("resized volume {name} to {size}"));
        }
        VolumeCmd::Delete { name, decom } => {
            let path = with_query(format!("/v1/volumes/{}", seg(&name)), &decom.query());
            let v = c.call("DELETE", &path, None, decom.bound()?)?;
            if !json {
                for l in v
                    .get("changes")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    println!("{}", l.as_str().unwrap_or_default());
                }
            }
            done(json, &v, &format!("deleted volume {name}"));
        }
        VolumeCmd::Clone { snapshot, name } => {
            let path = format!("/v1/snapshots/{}/clone", seg(&snapshot));
            let v = c.call(
                "POST",
                &path,
                Some(&json!({ "name": name })),
                DEFAULT_TIMEOUT,
            )?;
            done(json, &v, &format!("created volume {name} from {snapshot}"));
        }
    }
    Ok(())
}

fn split_snapshot(full: &str) -> Result<(&str, &str)> {
    match full.split_once('@') {
        Some((v, s)) if !v.is_empty() && !s.is_empty() => Ok((v, s)),
        _ => bail!("{full:?} is not VOLUME@SNAPSHOT"),
    }
}

pub(super) fn snapshot(c: &Client, json: bool, cmd: SnapshotCmd) -> Result<()> {
    match cmd {
        SnapshotCmd::Create { snapshot } => {
            let (vol, snap) = split_snapshot(&snapshot)?;
            let path = format!("/v1/volumes/{}/snapshots", seg(vol));
            let v = c.call(
                "POST",
                &path,
                Some(&json!({ "name": snap })),
                DEFAULT_TIMEOUT,
            )?;
            done(json, &v, &format!("created snapshot {snapshot}"));
        }
        SnapshotCmd::List { volume } => {
            let path = match &volume {
                Some(vol) => format!("/v1/volumes/{}/snapshots", seg(vol)),
                None => "/v1/snapshots".into(),
            };
            let v = c.get(&path)?;
            if json {
                output::json(&v);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = items(&v)
                .iter()
                .map(|x| {
                    vec![
                        s(x, "name"),
                        bytes(n(x, "logical_bytes")),
                        bytes(n(x, "used_bytes")),
                        bytes(n(x, "referenced_bytes")),
                        joined_or_dash(x, "clones"),
                    ]
                })
                .collect();
            table(&["NAME", "SIZE", "USED", "REFER", "CLONES"], &rows);
        }
        SnapshotCmd::Delete { snapshot } => {
            split_snapshot(&snapshot)?;
            let path = format!("/v1/snapshots/{}", seg(&snapshot));
            let v = c.call("DELETE", &path, None, DEFAULT_TIMEOUT)?;
            done(json, &v, &format!("deleted snapshot {snapshot}"));
        }
        SnapshotCmd::Rollback { snapshot } => {
            split_snapshot(&snapshot)?;
            let path = format!("/v1/snapshots/{}/rollback", seg(&snapshot));
            let v = c.call("POST", &path, None, DEFAULT_TIMEOUT)?;
            done(json, &v, &format!("rolled back to {snapshot}"));
        }
    }
    Ok(())
}
