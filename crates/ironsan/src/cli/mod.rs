//! The command line as a client of the management API (noun-verb):
//! `ironsan target create IQN`, `ironsan lun map IQN 0 --volume db`, ...
//! Read commands print tables, or the API's JSON with `--json`. Exit codes:
//! 0 ok, 1 failed, 2 usage; `check` uses the Nagios codes 0-3.

mod args;
mod client;
mod output;
mod pool;
mod stats;
mod targets;
mod top;
mod volumes;

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

pub(crate) use args::{ApiArgs, ClientCommand};
use args::{ConfigCmd, Decom};
use client::{Client, ClientError, Endpoint, DEFAULT_TIMEOUT};
use output::{age, n, s};

/// Runs a client command; returns the exit code.
pub(crate) fn run(args: &ApiArgs, cmd: ClientCommand) -> Result<u8> {
    if let ClientCommand::Pool(pool::PoolCmd::Check { repair, source }) = &cmd {
        // Offline: works on the data directory, not through the API.
        return pool::check(args.json, *repair, source);
    }
    let endpoint = Endpoint::parse(&args.api).map_err(anyhow::Error::msg)?;
    if matches!(endpoint, Endpoint::Tcp(_)) && args.token.is_none() {
        bail!("a TCP API needs --token or IRONSAN_API_TOKEN (the content of data_dir/api.token)");
    }
    let c = Client::new(endpoint, args.token.clone());
    let json = args.json;
    match cmd {
        ClientCommand::Check => return Ok(check(&c, json)),
        ClientCommand::Status => status(&c, json)?,
        ClientCommand::Stats => stats::stats(&c, json)?,
        ClientCommand::Top(a) => top::top(&c, json, &a)?,
        ClientCommand::Trace(t) => stats::trace(&c, json, t)?,
        ClientCommand::Volume(v) => volumes::volume(&c, json, v)?,
        ClientCommand::Snapshot(v) => volumes::snapshot(&c, json, v)?,
        ClientCommand::Pool(v) => return pool::online(&c, json, v),
        ClientCommand::Target(v) => targets::target(&c, json, v)?,
        ClientCommand::Lun(v) => targets::lun(&c, json, v)?,
        ClientCommand::Acl(v) => targets::acl(&c, json, v)?,
        ClientCommand::Session(v) => targets::session(&c, json, v)?,
        ClientCommand::Portal(v) => targets::portal(&c, json, v)?,
        ClientCommand::Config(ConfigCmd::Show) => {
            if json {
                output::json(&c.get("/v1/config")?);
            } else {
                let resp = c.request("GET", "/v1/config?format=toml", None, DEFAULT_TIMEOUT)?;
                if resp.status != 200 {
                    return Err(client::json_of(resp)
                        .err()
                        .map_or_else(|| anyhow::anyhow!("unexpected answer"), anyhow::Error::new));
                }
                print!("{}", String::from_utf8_lossy(&resp.body));
            }
        }
        ClientCommand::Apply {
            file,
            dry_run,
            decom,
        } => apply(&c, json, &file, dry_run, &decom)?,
    }
    Ok(0)
}

fn with_query(path: String, q: &str) -> String {
    if q.is_empty() {
        path
    } else {
        format!("{path}?{q}")
    }
}

/// Prints the change lines of a mutation's answer.
fn changes(json: bool, v: &Value) {
    if json {
        output::json(v);
        return;
    }
    let lines: Vec<&str> = v
        .get("changes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if lines.is_empty() {
        println!("no changes");
    }
    for l in lines {
        println!("{l}");
    }
}

fn done(json: bool, v: &Value, text: &str) {
    if json {
        output::json(v);
    } else {
        println!("{text}");
    }
}

fn check(c: &Client, json: bool) -> u8 {
    let h = match c.get("/v1/health") {
        Ok(h) => h,
        Err(e) => {
            println!("IRONSAN UNKNOWN - {e}");
            return 3;
        }
    };
    let (label, code) = match h.get("status").and_then(Value::as_str) {
        Some("ok") => ("OK", 0),
        Some("warning") => ("WARNING", 1),
        Some("critical") => ("CRITICAL", 2),
        _ => ("UNKNOWN", 3),
    };
    if json {
        output::json(&h);
        return code;
    }
    let problems: Vec<String> = h
        .get("problems")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|p| s(p, "message")).collect())
        .unwrap_or_default();
    let (targets, sessions, luns) = (n(&h, "targets"), n(&h, "sessions"), n(&h, "luns"));
    let plural = |k: u64, w: &str| format!("{k} {w}{}", if k == 1 { "" } else { "s" });
    let mut summary = format!(
        "{}, {}",
        plural(targets, "target"),
        plural(sessions, "session")
    );
    if !problems.is_empty() {
        summary = format!("{} - {summary}", problems.join("; "));
    }
    println!(
        "IRONSAN {label} - {summary} | sessions={sessions} targets={targets} luns={luns} problems={}",
        problems.len()
    );
    code
}

fn status(c: &Client, json: bool) -> Result<()> {
    let st = c.get("/v1/state")?;
    if json {
        output::json(&st);
        return Ok(());
    }
    println!(
        "ironsan {} (pid {}), up {}",
        s(&st, "version"),
        n(&st, "pid"),
        age(n(&st, "uptime_secs"))
    );
    println!(
        "{} targets, {} LUNs, {} ACL entries, {} sessions",
        n(&st, "targets"),
        n(&st, "luns"),
        n(&st, "acls"),
        n(&st, "sessions")
    );
    println!(
        "portals: {} (listening on {})",
        output::joined(&st, "portals"),
        output::joined(&st, "listening")
    );
    match st.get("volumes").and_then(Value::as_u64) {
        Some(v) => println!("volumes: {v}"),
        None => println!("volume pool: {}", s(&st, "pool")),
    }
    Ok(())
}

fn apply(c: &Client, json: bool, file: &Path, dry_run: bool, decom: &Decom) -> Result<()> {
    let text = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let post = |q: &str, bound| -> Result<Value, ClientError> {
        let resp = c.request(
            "POST",
            &format!("/v1/config?{q}"),
            Some(("application/toml", &text)),
            bound,
        )?;
        client::json_of(resp)
    };
    let plan = post("dry_run=true", DEFAULT_TIMEOUT)?;
    let lines: Vec<String> = plan
        .get("changes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if dry_run || lines.is_empty() {
        changes(json, &plan);
        return Ok(());
    }
    if !json {
        for l in &lines {
            println!("{l}");
        }
    }
    let q = decom.query();
    let done = post(&q, decom.bound()?)?;
    if json {
        output::json(&done);
    } else {
        let n = done
            .get("changes")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        eprintln!("applied {n} change{}", if n == 1 { "" } else { "s" });
    }
    Ok(())
}
