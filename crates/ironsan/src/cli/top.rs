//! `ironsan top`: the busiest initiators, LUNs and portals by IOPS and MB/s,
//! computed from two consecutive `/v1/stats` samples, refreshed every
//! `--interval` with plain ANSI escapes (clear screen, cursor home) until
//! Ctrl-C. The terminal is never put in raw mode. `--once` prints one frame
//! (rates over one interval) without escapes; `--json` prints the rates as
//! JSON (one object per line when live).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;

use super::client::Client;
use super::output;
use super::stats::{clock, micros, Sample, Series};

/// Clears the screen and moves the cursor home.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Arguments of `ironsan top`.
#[derive(Args, Debug)]
pub(crate) struct TopArgs {
    /// Time between samples (500ms, 2s, 1m).
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub interval: String,
    /// Print one frame (rates over one interval) and exit.
    #[arg(long)]
    pub once: bool,
    /// Rows per table.
    #[arg(long, default_value_t = 8)]
    pub rows: usize,
}

/// The rates of one series over an interval.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub(crate) struct Rate {
    pub name: String,
    pub iops: f64,
    pub read_mbps: f64,
    pub write_mbps: f64,
    pub sessions: u64,
    pub queue_depth: u64,
    /// Errors of every kind so far.
    pub errors: u64,
    /// Errors during the interval.
    pub new_errors: u64,
    /// Read and write p99 latency so far, microseconds.
    pub p99_us: u64,
}

/// A whole frame.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Frame {
    pub time_ms: u64,
    pub interval_secs: f64,
    pub read_mbps: f64,
    pub write_mbps: f64,
    pub iops: f64,
    pub sessions: u64,
    pub errors: u64,
    pub trace: Option<String>,
    pub initiators: Vec<Rate>,
    pub luns: Vec<Rate>,
    pub portals: Vec<Rate>,
    pub events: Vec<String>,
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Rates of `now` against `before` over `secs`, busiest first.
pub(crate) fn rates(now: &[Series], before: &[Series], secs: f64) -> Vec<Rate> {
    let old: BTreeMap<String, &Series> = before.iter().map(|s| (s.name(), s)).collect();
    let mut out: Vec<Rate> = now
        .iter()
        .map(|s| {
            let name = s.name();
            let p = old.get(&name);
            let d = |f: fn(&Series) -> u64| {
                p.map_or(0, |p| f(s).saturating_sub(f(p))) as f64 / secs.max(1e-3)
            };
            Rate {
                iops: round(d(|x| x.commands.total)),
                read_mbps: round(d(|x| x.read_bytes) / 1e6),
                write_mbps: round(d(|x| x.write_bytes) / 1e6),
                sessions: s.sessions,
                queue_depth: s.queue_depth,
                errors: s.all_errors(),
                new_errors: p.map_or(0, |p| s.all_errors().saturating_sub(p.all_errors())),
                p99_us: s.read_latency.p99_us.max(s.write_latency.p99_us),
                name,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        let busy = |r: &Rate| r.iops + (r.read_mbps + r.write_mbps) * 1000.0;
        busy(b)
            .total_cmp(&busy(a))
            .then(b.sessions.cmp(&a.sessions))
            .then(a.name.cmp(&b.name))
    });
    out
}

/// The frame of two samples.
pub(crate) fn frame(before: &Sample, now: &Sample) -> Frame {
    let secs = now.time_ms.saturating_sub(before.time_ms) as f64 / 1000.0;
    let portals = rates(&now.portals, &before.portals, secs);
    let sum = |f: fn(&Rate) -> f64| round(portals.iter().map(f).sum());
    Frame {
        time_ms: now.time_ms,
        interval_secs: round(secs),
        read_mbps: sum(|r| r.read_mbps),
        write_mbps: sum(|r| r.write_mbps),
        iops: sum(|r| r.iops),
        sessions: now.initiators.iter().map(|s| s.sessions).sum(),
        errors: now.initiators.iter().map(Series::all_errors).sum(),
        trace: now.trace.clone(),
        initiators: rates(&now.initiators, &before.initiators, secs),
        luns: rates(&now.luns, &before.luns, secs),
        portals,
        events: now
            .events
            .iter()
            .rev()
            .take(5)
            .map(|e| format!("{} {} {}", clock(e.at), e.kind, e.detail))
            .collect(),
    }
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let head: String = s.chars().take(n.saturating_sub(1)).collect();
        format!("{head}…")
    }
}

/// The frame as text.
pub(crate) fn render(f: &Frame, rows: usize) -> String {
    let mut out = format!(
        "ironsan top - {}  every {:.1}s  sessions {}  read {:.1} MB/s  write {:.1} MB/s  IOPS {:.0}  errors {}  trace {}\n",
        clock(f.time_ms / 1000),
        f.interval_secs,
        f.sessions,
        f.read_mbps,
        f.write_mbps,
        f.iops,
        f.errors,
        f.trace.as_deref().unwrap_or("off"),
    );
    for (title, list) in [
        ("INITIATOR", &f.initiators),
        ("LUN", &f.luns),
        ("PORTAL", &f.portals),
    ] {
        out.push('\n');
        let table: Vec<Vec<String>> = list
            .iter()
            .take(rows)
            .map(|r| {
                vec![
                    cut(&r.name, 48),
                    format!("{:.0}", r.iops),
                    format!("{:.2}", r.read_mbps),
                    format!("{:.2}", r.write_mbps),
                    // LUNs have no sessions of their own.
                    if title == "LUN" {
                        "-".into()
                    } else {
                        r.sessions.to_string()
                    },
                    r.queue_depth.to_string(),
                    format!("{} (+{})", r.errors, r.new_errors),
                    if r.p99_us == 0 {
                        "-".into()
                    } else {
                        micros(r.p99_us)
                    },
                ]
            })
            .collect();
        let headers = [
            title,
            "IOPS",
            "READ MB/s",
            "WRITE MB/s",
            "SESS",
            "QD",
            "ERRORS",
            "P99",
        ];
        out.push_str(&output::render(&headers, &table));
        if list.is_empty() {
            out.push_str("(none)\n");
        } else if list.len() > rows {
            out.push_str(&format!("... {} more\n", list.len() - rows));
        }
    }
    out.push_str("\nLATEST EVENTS\n");
    if f.events.is_empty() {
        out.push_str("(none)\n");
    }
    for e in &f.events {
        out.push_str(e);
        out.push('\n');
    }
    out
}

fn sample(c: &Client) -> Result<Sample> {
    Sample::from_value(c.get("/v1/stats")?)
}

fn emit(f: &Frame, json: bool, rows: usize, live: bool) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(stdout, "{}", serde_json::to_string(f)?)?;
    } else if live {
        write!(stdout, "{CLEAR}{}", render(f, rows))?;
    } else {
        write!(stdout, "{}", render(f, rows))?;
    }
    stdout.flush()?;
    Ok(())
}

/// `ironsan top`
pub(crate) fn top(c: &Client, json: bool, a: &TopArgs) -> Result<()> {
    let interval = crate::api::parse_duration(&a.interval).map_err(anyhow::Error::msg)?;
    if interval < Duration::from_millis(100) {
        bail!("--interval must be at least 100ms");
    }
    let mut before = sample(c)?;
    if !a.once && !json {
        println!("{CLEAR}ironsan top: first sample taken, rates in {interval:?} (Ctrl-C quits)");
        std::io::stdout().flush()?;
    }
    loop {
        let started = Instant::now();
        std::thread::sleep(interval);
        let now = match sample(c) {
            Ok(s) => s,
            Err(e) if !a.once => {
                println!(
                    "{}ironsan top: {e:#} (retrying every {interval:?}; Ctrl-C quits)",
                    if json { "" } else { CLEAR }
                );
                std::io::stdout().flush()?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut f = frame(&before, &now);
        if f.interval_secs <= 0.0 {
            f.interval_secs = round(started.elapsed().as_secs_f64());
        }
        emit(&f, json, a.rows, !a.once)?;
        if a.once {
            return Ok(());
        }
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(t: u64, reads: u64, bytes: u64) -> Sample {
        Sample::from_value(json!({
            "time_ms": t,
            "initiators": [
                {"initiator": "iqn.x:busy", "read_bytes": bytes, "sessions": 1,
                 "commands": {"read": reads, "total": reads}},
                {"initiator": "iqn.x:idle", "sessions": 2, "errors": 3}
            ],
            "portals": [{"portal": "127.0.0.1:3260", "read_bytes": bytes,
                         "commands": {"total": reads}, "sessions": 3}],
            "events": [{"at": 60, "kind": "reconnect_loop", "detail": "iqn.x:idle"}]
        }))
        .expect("sample")
    }

    #[test]
    fn rates_come_from_two_samples_busiest_first() {
        let f = frame(&sample(1_000, 100, 0), &sample(3_000, 300, 4_000_000));
        assert_eq!(f.interval_secs, 2.0);
        assert_eq!(f.initiators[0].name, "iqn.x:busy");
        assert_eq!(f.initiators[0].iops, 100.0);
        assert_eq!(f.initiators[0].read_mbps, 2.0);
        assert_eq!(f.initiators[1].errors, 3);
        assert_eq!(f.initiators[1].new_errors, 0);
        assert_eq!((f.iops, f.read_mbps, f.sessions), (100.0, 2.0, 3));
        let text = render(&f, 1);
        assert!(text.contains("iqn.x:busy"), "{text}");
        assert!(text.contains("... 1 more"), "{text}");
        assert!(text.contains("reconnect_loop"), "{text}");
        assert!(!text.contains('\x1b'), "no escapes in a frame itself");
        // A series that appears between samples counts from zero rate.
        let r = rates(&sample(2_000, 1, 1).initiators, &[], 1.0);
        assert_eq!(r.iter().map(|r| r.iops).sum::<f64>(), 0.0);
    }
}
