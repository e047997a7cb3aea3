//! `ironsan stats` (the counters of `GET /v1/stats` as tables) and `ironsan
//! trace set|clear|show` (the per-initiator command trace). The sample types
//! here are shared with `ironsan top`.

use anyhow::Result;
use clap::Subcommand;
use serde::Deserialize;
use serde_json::{json, Value};

use super::client::{Client, DEFAULT_TIMEOUT};
use super::output::{self, bytes};

/// Commands by kind.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Commands {
    pub read: u64,
    pub write: u64,
    pub sync: u64,
    pub unmap: u64,
    pub other: u64,
    pub total: u64,
}

/// A latency summary.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// The counters of one initiator, portal or LUN.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Series {
    pub initiator: Option<String>,
    pub portal: Option<String>,
    pub target: Option<String>,
    pub lun: Option<u64>,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub commands: Commands,
    pub errors: u64,
    pub queue_depth: u64,
    pub sessions: u64,
    pub connections: u64,
    pub logins_succeeded: u64,
    pub logins_failed: u64,
    pub reconnects: u64,
    pub digest_errors: u64,
    pub nop_timeouts: u64,
    pub read_latency: Latency,
    pub write_latency: Latency,
}

impl Series {
    /// The series' key: initiator name, portal address or `IQN/LUN`.
    pub fn name(&self) -> String {
        if let Some(i) = &self.initiator {
            return i.clone();
        }
        if let Some(p) = &self.portal {
            return p.clone();
        }
        format!(
            "{}/{}",
            self.target.as_deref().unwrap_or("-"),
            self.lun.unwrap_or(0)
        )
    }

    /// Every kind of error: SCSI errors, digest errors, NOP timeouts, failed logins.
    pub fn all_errors(&self) -> u64 {
        self.errors + self.digest_errors + self.nop_timeouts + self.logins_failed
    }
}

/// An anomaly event.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EventRow {
    pub at: u64,
    pub kind: String,
    pub detail: String,
}

/// One answer of `GET /v1/stats`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Sample {
    pub time_ms: u64,
    pub initiators: Vec<Series>,
    pub portals: Vec<Series>,
    pub luns: Vec<Series>,
    pub events: Vec<EventRow>,
    pub trace: Option<String>,
}

impl Sample {
    /// Parses the JSON of `/v1/stats`.
    pub fn from_value(v: Value) -> Result<Self> {
        serde_json::from_value(v)
            .map_err(|e| anyhow::anyhow!("unexpected answer from /v1/stats: {e}"))
    }
}

/// The per-initiator trace.
#[derive(Subcommand, Debug)]
pub(crate) enum TraceCmd {
    /// Log every SCSI command of INITIATOR (CDB, status, sense, bytes,
    /// latency) under the tracing target `trace`, at info level (e.g.
    /// IRONSAN_LOG=warn,trace=info); replaces the previous choice.
    Set { initiator: String },
    /// Stop tracing.
    Clear,
    /// The traced initiator, if any.
    Show,
}

/// Microseconds, short: `80us`, `2.5ms`, `1.0s`.
pub(crate) fn micros(us: u64) -> String {
    match us {
        0..=999 => format!("{us}us"),
        1_000..=999_999 => format!("{:.1}ms", us as f64 / 1e3),
        _ => format!("{:.1}s", us as f64 / 1e6),
    }
}

fn lat(l: &Latency, p99: bool) -> String {
    if l.count == 0 {
        "-".into()
    } else if p99 {
        micros(l.p99_us)
    } else {
        micros(l.p50_us)
    }
}

/// The I/O columns shared by the three tables.
fn io_cells(s: &Series) -> Vec<String> {
    vec![
        bytes(s.read_bytes),
        bytes(s.write_bytes),
        s.commands.read.to_string(),
        s.commands.write.to_string(),
        (s.commands.sync + s.commands.unmap + s.commands.other).to_string(),
        s.errors.to_string(),
        s.queue_depth.to_string(),
        format!(
            "{}/{}",
            lat(&s.read_latency, false),
            lat(&s.read_latency, true)
        ),
        format!(
            "{}/{}",
            lat(&s.write_latency, false),
            lat(&s.write_latency, true)
        ),
    ]
}

const IO_HEADERS: [&str; 9] = [
    "READ",
    "WRITTEN",
    "READS",
    "WRITES",
    "OTHER",
    "ERRORS",
    "QD",
    "READ P50/P99",
    "WRITE P50/P99",
];

fn session_cells(s: &Series) -> Vec<String> {
    // Connections are counted per portal only.
    let conns = if s.portal.is_some() {
        s.connections.to_string()
    } else {
        "-".into()
    };
    let mut cells = vec![s.sessions.to_string(), conns];
    let rest: Vec<String> = [
        s.logins_succeeded,
        s.logins_failed,
        s.reconnects,
        s.digest_errors,
        s.nop_timeouts,
    ]
    .iter()
    .map(u64::to_string)
    .collect();
    cells.extend(rest);
    cells
}

const SESSION_HEADERS: [&str; 7] = [
    "SESSIONS",
    "CONNS",
    "LOGINS",
    "FAILED",
    "RECONNECTS",
    "DIGEST-ERR",
    "NOP-TIMEOUTS",
];

/// `HH:MM:SS` (UTC) of Unix seconds.
pub(crate) fn clock(secs: u64) -> String {
    let d = secs % 86_400;
    format!("{:02}:{:02}:{:02}Z", d / 3600, d / 60 % 60, d % 60)
}

fn print_stats(st: &Sample) {
    let mut first = true;
    let mut section = |title: &str| {
        if !first {
            println!();
        }
        first = false;
        println!("{title}");
    };
    section("I/O");
    let mut headers = vec!["INITIATOR/PORTAL/LUN"];
    headers.extend(IO_HEADERS);
    let mut rows = Vec::new();
    for s in st.initiators.iter().chain(&st.portals).chain(&st.luns) {
        let mut r = vec![s.name()];
        r.extend(io_cells(s));
        rows.push(r);
    }
    output::table(&headers, &rows);
    section("Sessions");
    let mut headers = vec!["INITIATOR/PORTAL"];
    headers.extend(SESSION_HEADERS);
    let rows: Vec<Vec<String>> = st
        .initiators
        .iter()
        .chain(&st.portals)
        .map(|s| {
            let mut r = vec![s.name()];
            r.extend(session_cells(s));
            r
        })
        .collect();
    output::table(&headers, &rows);
    section("Anomaly events");
    if st.events.is_empty() {
        println!("none");
    } else {
        let rows: Vec<Vec<String>> = st
            .events
            .iter()
            .map(|e| vec![clock(e.at), e.kind.clone(), e.detail.clone()])
            .collect();
        output::table(&["TIME", "KIND", "DETAIL"], &rows);
    }
    println!();
    println!("trace: {}", st.trace.as_deref().unwrap_or("off"));
}

/// `ironsan stats`
pub(crate) fn stats(c: &Client, json: bool) -> Result<()> {
    let v = c.get("/v1/stats")?;
    if json {
        output::json(&v);
        return Ok(());
    }
    print_stats(&Sample::from_value(v)?);
    Ok(())
}

/// `ironsan trace set|clear|show`
pub(crate) fn trace(c: &Client, json: bool, cmd: TraceCmd) -> Result<()> {
    let v = match cmd {
        TraceCmd::Set { initiator } => c.call(
            "PUT",
            "/v1/trace",
            Some(&json!({ "initiator": initiator })),
            DEFAULT_TIMEOUT,
        )?,
        TraceCmd::Clear => c.call("DELETE", "/v1/trace", None, DEFAULT_TIMEOUT)?,
        TraceCmd::Show => c.get("/v1/trace")?,
    };
    if json {
        output::json(&v);
    } else {
        match v.get("initiator").and_then(Value::as_str) {
            Some(i) => println!("tracing {i}"),
            None => println!("trace off"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse_leniently_and_name_their_series() {
        let v = json!({
            "time_ms": 5,
            "initiators": [{"initiator": "iqn.x:h", "read_bytes": 4096,
                            "commands": {"read": 1, "total": 1}, "future_field": 1}],
            "luns": [{"target": "iqn.x:t", "lun": 2}],
            "events": [{"at": 3661, "kind": "login_storm", "detail": "d"}]
        });
        let s = Sample::from_value(v).expect("parses");
        assert_eq!(s.initiators[0].name(), "iqn.x:h");
        assert_eq!(s.luns[0].name(), "iqn.x:t/2");
        assert_eq!(s.initiators[0].commands.read, 1);
        assert_eq!(clock(s.events[0].at), "01:01:01Z");
        assert_eq!(micros(80), "80us");
        assert_eq!(micros(2500), "2.5ms");
        assert_eq!(micros(1_500_000), "1.5s");
        assert!(Sample::from_value(json!({"initiators": 3})).is_err());
    }
}
