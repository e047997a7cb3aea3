//! `pool` commands: `status` and `scrub` through the API of the running
//! daemon, `check` offline on the data directory (the daemon must be
//! stopped: the pool's lock tells).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use volume::{CheckReport, ErrorKind, Pool};

use super::client::{seg, Client};
use super::output::{self, bytes, n, s};

/// How long a scrub may take (it reads every data block of the pool).
const SCRUB_BOUND: Duration = Duration::from_secs(24 * 3600);

#[derive(Subcommand, Debug)]
pub(crate) enum PoolCmd {
    /// Space and metadata counters of the pool in data_dir/pool.
    Status,
    /// Verify every data block of VOLUME (and the snapshots it reads
    /// through) or of the whole pool, and the metadata, while the daemon
    /// serves. Exit 1 when damage is found.
    Scrub {
        /// Only this volume.
        volume: Option<String>,
    },
    /// Check the pool offline (stop the daemon first): metadata structure,
    /// every block's checksum, leaked blocks. Exit 1 when damage is found
    /// (with --repair: when damage remains after the repair).
    Check {
        /// Truncate a damaged log at the last good transaction, drop
        /// orphaned layers, reclaim unreferenced blocks and rewrite the
        /// checkpoints. Damaged data blocks cannot be repaired.
        #[arg(long)]
        repair: bool,
        #[command(flatten)]
        source: DataDir,
    },
}

/// Where the pool is: the daemon's configuration or its data directory.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub(crate) struct DataDir {
    /// The daemon's configuration file (its data_dir holds the pool).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The daemon's data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// `pool status` and `pool scrub`; returns the exit code.
pub(super) fn online(c: &Client, json: bool, cmd: PoolCmd) -> Result<u8> {
    match cmd {
        PoolCmd::Status => {
            let v = c.get("/v1/pool")?;
            if json {
                output::json(&v);
            } else {
                status(&v);
            }
            Ok(0)
        }
        PoolCmd::Scrub { volume } => {
            let path = match &volume {
                Some(v) => format!("/v1/pool/scrub?volume={}", seg(v)),
                None => "/v1/pool/scrub".into(),
            };
            let r = c.call("POST", &path, None, SCRUB_BOUND)?;
            let damaged = r
                .get("damaged")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let meta = r
                .get("metadata_errors")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if json {
                output::json(&r);
            } else {
                scrub_text(&r, damaged, meta);
            }
            Ok(if damaged + meta == 0 { 0 } else { 1 })
        }
        PoolCmd::Check { source, repair } => check(json, repair, &source),
    }
}

fn status(v: &Value) {
    println!("pool {}", s(v, "dir"));
    println!(
        "allocated {} (volumes use {}), data file {} ({} on disk, high water {}, {} free runs)",
        bytes(n(v, "allocated_bytes")),
        bytes(n(v, "volumes_used_bytes")),
        bytes(n(v, "data_file_bytes")),
        bytes(n(v, "data_file_disk_bytes")),
        bytes(n(v, "high_water_bytes")),
        n(v, "free_runs")
    );
    println!(
        "log {}, checkpoint at seq {}",
        bytes(n(v, "log_bytes")),
        n(v, "checkpoint_seq")
    );
}

fn damage_line(d: &Value) -> String {
    let vis: Vec<&str> = d
        .get("visible_in")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let last = n(d, "lba") + n(d, "blocks").max(1) - 1;
    format!(
        "damaged: {} LBA {}-{} (physical block {}): {}{}",
        s(d, "object"),
        n(d, "lba"),
        last,
        n(d, "phys"),
        s(d, "detail"),
        if vis.is_empty() {
            String::new()
        } else {
            format!("; read by {}", vis.join(", "))
        }
    )
}

fn scrub_text(r: &Value, damaged: usize, meta: usize) {
    println!(
        "scrubbed {} objects, {} blocks ({}) in {} ms",
        n(r, "objects_scanned"),
        n(r, "blocks_scanned"),
        bytes(n(r, "bytes_scanned")),
        n(r, "elapsed_ms")
    );
    for d in r
        .get("damaged")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        println!("{}", damage_line(d));
    }
    for m in r
        .get("metadata_errors")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        println!("metadata: {}", m.as_str().unwrap_or_default());
    }
    if damaged + meta == 0 {
        println!("clean");
    } else {
        println!("{damaged} damaged block range(s), {meta} metadata error(s)");
    }
}

/// The daemon's pid, if its pid file names a live process.
fn daemon_pid(data_dir: &Path) -> Option<u32> {
    let pid: i32 = std::fs::read_to_string(data_dir.join("ironsan.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: signal 0 only checks that the process exists.
    (pid > 0 && unsafe { libc::kill(pid, 0) } == 0).then_some(pid as u32)
}

/// `pool check`: offline, on the data directory. Returns the exit code.
pub(super) fn check(json: bool, repair: bool, src: &DataDir) -> Result<u8> {
    let data_dir = match (&src.config, &src.data_dir) {
        (Some(c), _) => {
            target::config::Config::load(c)
                .with_context(|| format!("reading {}", c.display()))?
                .data_dir
        }
        (None, Some(d)) => d.clone(),
        (None, None) => bail!("give --config FILE or --data-dir DIR"),
    };
    let dir = data_dir.join("pool");
    if !["ckpt.0", "ckpt.1"].iter().any(|f| dir.join(f).exists()) {
        bail!("no volume pool in {}", dir.display());
    }
    let run = |repair: bool| -> Result<CheckReport> {
        Pool::check(&dir, repair).map_err(|e| match e.kind() {
            ErrorKind::InUse => {
                let who = daemon_pid(&data_dir).map_or_else(
                    || "the daemon (or another process) holds its lock".to_string(),
                    |p| format!("the daemon is running (pid {p}) and holds its lock"),
                );
                anyhow::anyhow!(
                    "cannot check {} offline: {who}; stop the daemon first, \
                     or use `ironsan pool scrub` for an online check",
                    dir.display()
                )
            }
            ErrorKind::Corrupt => {
                anyhow::anyhow!("{}: the pool's metadata cannot be read: {e}", dir.display())
            }
            _ => anyhow::Error::new(e).context(format!("checking {}", dir.display())),
        })
    };
    let first = run(repair)?;
    let after = if repair && !first.is_clean() {
        Some(run(false)?)
    } else {
        None
    };
    let clean = after.as_ref().unwrap_or(&first).is_clean();
    if json {
        let mut v = serde_json::to_value(&first).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert("pool".into(), json!(dir.display().to_string()));
            o.insert("clean".into(), json!(clean));
            if let Some(a) = &after {
                o.insert(
                    "after_repair".into(),
                    serde_json::to_value(a).unwrap_or(Value::Null),
                );
            }
        }
        output::json(&v);
    } else {
        check_text(&dir, &first, repair);
        if let Some(a) = &after {
            println!("after repair:");
            check_text(&dir, a, false);
        }
        println!("{}", if clean { "clean" } else { "damage found" });
    }
    Ok(if clean { 0 } else { 1 })
}

fn check_text(dir: &Path, r: &CheckReport, repair: bool) {
    println!(
        "pool {}: {} volumes, {} snapshots, {} layers, {} referenced blocks, {} verified",
        dir.display(),
        r.volumes,
        r.snapshots,
        r.layers,
        r.referenced_blocks,
        r.blocks_verified
    );
    for e in &r.errors {
        println!("error: {e}");
    }
    for d in &r.damaged {
        let v = serde_json::to_value(d).unwrap_or(Value::Null);
        println!("{}", damage_line(&v));
    }
    for note in &r.notes {
        println!("note: {note}");
    }
    if r.unreferenced_blocks > 0 {
        println!(
            "{} unreferenced blocks ({}){}",
            r.unreferenced_blocks,
            bytes(r.unreferenced_blocks * 4096),
            if repair {
                ""
            } else {
                ": reclaimed by --repair"
            }
        );
    }
    for x in &r.repairs {
        println!("repaired: {x}");
    }
}
