//! Counters per target LUN, per portal and per initiator, rendered as
//! OpenMetrics text for Prometheus, and the anomaly detector that turns them
//! into events (reconnect loops, login storms, portal imbalance, rising
//! error rates).
//!
//! Updates are relaxed atomics on `Arc<Stats>` handles that sessions keep,
//! so the I/O path takes no lock. Per-initiator series are capped
//! ([`MAX_INITIATORS`]); initiators beyond the cap are aggregated under
//! `initiator="_other"` so cardinality stays bounded.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod snapshot;
pub use snapshot::{
    CommandCounts, InitiatorSnapshot, LatencySummary, LoginCount, LunSnapshot, MetricsSnapshot,
    PortalSnapshot, StatsSnapshot,
};

/// Distinct initiators with their own series; the rest share `_other`.
pub const MAX_INITIATORS: usize = 256;
/// Latency histogram bucket bounds, microseconds.
const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];
/// Anomaly events kept for `ironsan stats` / `top`.
const EVENTS_KEPT: usize = 64;

/// Command kinds counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// READ(6/10/12/16).
    Read,
    /// WRITE, WRITE AND VERIFY, COMPARE AND WRITE, ORWRITE, WRITE ATOMIC.
    Write,
    /// SYNCHRONIZE CACHE.
    Sync,
    /// UNMAP, WRITE SAME.
    Unmap,
    /// Everything else.
    Other,
}

const KINDS: [(&str, Kind); 5] = [
    ("read", Kind::Read),
    ("write", Kind::Write),
    ("sync", Kind::Sync),
    ("unmap", Kind::Unmap),
    ("other", Kind::Other),
];

impl Kind {
    /// Classifies a CDB by its operation code.
    pub fn of(opcode: u8) -> Self {
        match opcode {
            0x08 | 0x28 | 0xa8 | 0x88 => Self::Read,
            0x0a | 0x2a | 0xaa | 0x8a | 0x2e | 0xae | 0x8e | 0x89 | 0x8b | 0x9c => Self::Write,
            0x35 | 0x91 => Self::Sync,
            0x42 | 0x41 | 0x93 => Self::Unmap,
            _ => Self::Other,
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// The label of a login status in `ironsan_logins_total{reason=...}`.
pub fn login_reason(status: u16) -> &'static str {
    match status {
        0x0000 => "ok",
        0x0201 => "authentication",
        0x0202 => "authorization",
        0x0203 => "target_not_found",
        0x0204 => "target_removed",
        0x0205 => "unsupported_version",
        0x0206 => "too_many_connections",
        0x0207 => "missing_parameter",
        0x0208 | 0x020a => "session",
        0x0209 => "session_type",
        0x0301 => "service_unavailable",
        0x0302 => "out_of_resources",
        0x0300 => "target_error",
        _ => "initiator_error",
    }
}

/// A latency histogram with fixed buckets.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BUCKETS_US.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }
}

/// The counters of one LUN, portal or initiator.
#[derive(Default)]
pub struct Stats {
    /// Bytes read by initiators (Data-In payload).
    pub read_bytes: AtomicU64,
    /// Bytes written by initiators (Data-Out payload).
    pub write_bytes: AtomicU64,
    commands: [AtomicU64; 5],
    errors: [AtomicU64; 16],
    read_latency: Histogram,
    write_latency: Histogram,
    /// Commands accepted and not yet completed.
    pub inflight: AtomicI64,
    /// Logged-in sessions.
    pub sessions: AtomicI64,
    /// Open TCP connections (portals).
    pub connections: AtomicI64,
    /// Successful logins.
    pub logins_ok: AtomicU64,
    /// Failed logins.
    pub logins_failed: AtomicU64,
    /// Logins of an initiator that had a session before.
    pub reconnects: AtomicU64,
    /// PDUs with a bad header or data digest.
    pub digest_errors: AtomicU64,
    /// Connections dropped because the initiator stopped answering NOP-In.
    pub nop_timeouts: AtomicU64,
    /// Sessions that ended (to tell reconnects from first logins).
    sessions_ended: AtomicU64,
}

impl Stats {
    /// Records one completed command.
    pub fn command(&self, kind: Kind, bytes: u64, sense_key: Option<u8>, latency: Duration) {
        self.commands[kind.index()].fetch_add(1, Relaxed);
        match kind {
            Kind::Read => {
                self.read_bytes.fetch_add(bytes, Relaxed);
                self.read_latency.record(latency);
            }
            Kind::Write => {
                self.write_bytes.fetch_add(bytes, Relaxed);
                self.write_latency.record(latency);
            }
            _ => {}
        }
        if let Some(k) = sense_key {
            self.errors[usize::from(k & 0x0f)].fetch_add(1, Relaxed);
        }
    }

    /// Commands of `kind` completed so far.
    pub fn commands(&self, kind: Kind) -> u64 {
        self.commands[kind.index()].load(Relaxed)
    }

    /// Errors (CHECK CONDITION) so far.
    pub fn errors_total(&self) -> u64 {
        self.errors.iter().map(|e| e.load(Relaxed)).sum()
    }

    fn total_commands(&self) -> u64 {
        self.commands.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// A session of this initiator ended.
    pub fn session_ended(&self) {
        self.sessions.fetch_sub(1, Relaxed);
        self.sessions_ended.fetch_add(1, Relaxed);
    }
}

/// An anomaly the detector noticed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// `reconnect_loop`, `login_storm`, `portal_imbalance` or `error_rate`.
    pub kind: &'static str,
    /// Human readable detail.
    pub detail: String,
}

/// Every counter of the daemon.
#[derive(Default)]
pub struct Metrics {
    luns: Mutex<BTreeMap<(String, u64), Arc<Stats>>>,
    portals: Mutex<BTreeMap<String, Arc<Stats>>>,
    initiators: Mutex<BTreeMap<String, Arc<Stats>>>,
    logins_by_reason: Mutex<BTreeMap<(&'static str, String), u64>>,
    anomalies: Mutex<BTreeMap<&'static str, u64>>,
    events: Mutex<VecDeque<Event>>,
    /// The initiator whose every command is traced (off when `None`).
    trace: RwLock<Option<String>>,
    detector: Mutex<Detector>,
}

fn get(map: &Mutex<BTreeMap<String, Arc<Stats>>>, key: &str, cap: Option<usize>) -> Arc<Stats> {
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = m.get(key) {
        return s.clone();
    }
    let key = match cap {
        Some(cap) if m.len() >= cap => "_other".to_string(),
        _ => key.to_string(),
    };
    m.entry(key).or_default().clone()
}

impl Metrics {
    /// The counters of LUN `lun` of `target`.
    pub fn lun(&self, target: &str, lun: u64) -> Arc<Stats> {
        let mut m = self.luns.lock().unwrap_or_else(|p| p.into_inner());
        m.entry((target.to_string(), lun)).or_default().clone()
    }

    /// The counters of a portal.
    pub fn portal(&self, portal: &str) -> Arc<Stats> {
        get(&self.portals, portal, None)
    }

    /// The counters of an initiator (or of `_other` beyond the cap).
    pub fn initiator(&self, name: &str) -> Arc<Stats> {
        get(
            &self.initiators,
            &name.to_ascii_lowercase(),
            Some(MAX_INITIATORS),
        )
    }

    /// Counts a login outcome (`reason` is "ok" or the failure's name).
    pub fn login(&self, initiator: &str, portal: &str, reason: &str) {
        let ok = reason == "ok";
        let (i, p) = (self.initiator(initiator), self.portal(portal));
        for s in [&i, &p] {
            if ok { &s.logins_ok } else { &s.logins_failed }.fetch_add(1, Relaxed);
        }
        if ok {
            i.sessions.fetch_add(1, Relaxed);
            p.sessions.fetch_add(1, Relaxed);
            if i.sessions_ended.load(Relaxed) > 0 {
                i.reconnects.fetch_add(1, Relaxed);
            }
        }
        let outcome = if ok { "success" } else { "failure" };
        *self
            .logins_by_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((outcome, reason.to_string()))
            .or_default() += 1;
        let mut d = self.detector.lock().unwrap_or_else(|p| p.into_inner());
        d.logins.push_back(Instant::now());
        if ok {
            d.reconnects
                .entry(initiator.to_ascii_lowercase())
                .or_default()
                .push_back(Instant::now());
        }
    }

    /// Sets (or clears) the initiator whose commands are traced.
    pub fn set_trace(&self, initiator: Option<String>) {
        *self.trace.write().unwrap_or_else(|p| p.into_inner()) =
            initiator.map(|i| i.to_ascii_lowercase());
    }

    /// Whether `initiator`'s commands are traced.
    pub fn traced(&self, initiator: &str) -> bool {
        self.trace
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(initiator))
    }

    /// The traced initiator, if any.
    pub fn trace_target(&self) -> Option<String> {
        self.trace.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Recent anomaly events, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn raise(&self, kind: &'static str, detail: String) {
        tracing::warn!(target: "anomaly", kind, %detail, "anomaly");
        *self
            .anomalies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind)
            .or_default() += 1;
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut ev = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if ev.len() >= EVENTS_KEPT {
            ev.pop_front();
        }
        ev.push_back(Event { at, kind, detail });
    }

    /// Runs the anomaly checks; call periodically (every few seconds).
    pub fn detect(&self, now: Instant) {
        let mut found = Vec::new();
        {
            let mut d = self.detector.lock().unwrap_or_else(|p| p.into_inner());
            d.check(self, now, &mut found);
        }
        for (kind, detail) in found {
            self.raise(kind, detail);
        }
    }
}

/// Thresholds and sliding state of the anomaly detector.
#[derive(Default)]
struct Detector {
    logins: VecDeque<Instant>,
    reconnects: BTreeMap<String, VecDeque<Instant>>,
    /// Previous (commands, errors) per initiator, for the error-rate delta.
    last_errors: BTreeMap<String, (u64, u64)>,
    /// Previous bytes per portal, for the imbalance delta.
    last_portal_bytes: BTreeMap<String, u64>,
    storm_active: bool,
}

/// Logins per second (over the window) that make a storm.
const STORM_LOGINS_PER_SEC: usize = 100;
/// Logins of one initiator within the window that make a reconnect loop.
const RECONNECT_LOOP: usize = 5;
/// The sliding window.
const WINDOW: Duration = Duration::from_secs(60);

impl Detector {
    fn check(&mut self, m: &Metrics, now: Instant, found: &mut Vec<(&'static str, String)>) {
        let cutoff = now.checked_sub(WINDOW);
        let stale = |t: &Instant| cutoff.is_some_and(|c| *t < c);
        while self.logins.front().is_some_and(stale) {
            self.logins.pop_front();
        }
        // Login storm: the recent second-by-second rate over the last 10 s.
        let recent = self
            .logins
            .iter()
            .filter(|t| now.duration_since(**t) < Duration::from_secs(10))
            .count();
        let storm = recent >= STORM_LOGINS_PER_SEC * 10;
        if storm && !self.storm_active {
            found.push(("login_storm", format!("{recent} logins in the last 10 s")));
        }
        self.storm_active = storm;
        for (initiator, times) in self.reconnects.iter_mut() {
            while times.front().is_some_and(stale) {
                times.pop_front();
            }
            if times.len() >= RECONNECT_LOOP {
                found.push((
                    "reconnect_loop",
                    format!("{initiator} logged in {} times in 60 s", times.len()),
                ));
                times.clear();
            }
        }
        self.reconnects.retain(|_, t| !t.is_empty());
        // Rising error rate: more than 5% of an initiator's commands since the
        // last check failed, with at least 20 failures.
        let initiators: Vec<(String, Arc<Stats>)> = m
            .initiators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, s) in initiators {
            let (cmds, errs) = (s.total_commands(), s.errors_total());
            let (pc, pe) = self
                .last_errors
                .insert(name.clone(), (cmds, errs))
                .unwrap_or((cmds, errs));
            let (dc, de) = (cmds.saturating_sub(pc), errs.saturating_sub(pe));
            if de >= 20 && de * 20 > dc {
                found.push((
                    "error_rate",
                    format!("{name}: {de} errors in {dc} commands"),
                ));
            }
        }
        // Portal imbalance: with two or more portals busy since the last
        // check, one carried more than 90% of the bytes.
        let portals: Vec<(String, u64)> = m
            .portals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.read_bytes.load(Relaxed) + v.write_bytes.load(Relaxed),
                )
            })
            .collect();
        let deltas: Vec<(String, u64)> = portals
            .into_iter()
            .map(|(k, b)| {
                let prev = self.last_portal_bytes.insert(k.clone(), b).unwrap_or(b);
                (k, b.saturating_sub(prev))
            })
            .collect();
        let total: u64 = deltas.iter().map(|d| d.1).sum();
        let connected = deltas.len();
        if connected >= 2 && total >= 64 << 20 {
            if let Some((busiest, b)) = deltas.iter().max_by_key(|d| d.1) {
                if b * 10 > total * 9 {
                    found.push((
                        "portal_imbalance",
                        format!("{busiest} carried {}% of {total} bytes", b * 100 / total),
                    ));
                }
            }
        }
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One labelled family of [`Stats`].
fn render_family(
    out: &mut String,
    prefix: &str,
    labels: &[(String, Arc<Stats>)],
    with_io: bool,
    with_sessions: bool,
) {
    type Get = fn(&Stats) -> u64;
    let load = |a: &AtomicU64| a.load(Relaxed);
    if with_io {
        let counters: [(&str, &str, Get); 2] = [
            ("read_bytes", "Bytes read by initiators", |s| {
                s.read_bytes.load(Relaxed)
            }),
            ("write_bytes", "Bytes written by initiators", |s| {
                s.write_bytes.load(Relaxed)
            }),
        ];
        for (name, help, f) in counters {
            let _ = writeln!(
                out,
                "# TYPE ironsan_{prefix}_{name} counter\n# HELP ironsan_{prefix}_{name} {help}."
            );
            for (l, s) in labels {
                let _ = writeln!(out, "ironsan_{prefix}_{name}_total{{{l}}} {}", f(s));
            }
        }
        let _ = writeln!(out, "# TYPE ironsan_{prefix}_commands counter\n# HELP ironsan_{prefix}_commands SCSI commands completed, by kind.");
        for (l, s) in labels {
            for (kind, k) in KINDS {
                let _ = writeln!(
                    out,
                    "ironsan_{prefix}_commands_total{{{l},kind=\"{kind}\"}} {}",
                    s.commands(k)
                );
            }
        }
        let _ = writeln!(out, "# TYPE ironsan_{prefix}_errors counter\n# HELP ironsan_{prefix}_errors CHECK CONDITION responses, by sense key.");
        for (l, s) in labels {
            for (key, c) in s.errors.iter().enumerate() {
                let n = load(c);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "ironsan_{prefix}_errors_total{{{l},sense_key=\"{key:#x}\"}} {n}"
                    );
                }
            }
        }
        for (which, pick) in [("read", 0usize), ("write", 1)] {
            let _ = writeln!(
                out,
                "# TYPE ironsan_{prefix}_{which}_latency_seconds histogram"
            );
            for (l, s) in labels {
                let h = if pick == 0 {
                    &s.read_latency
                } else {
                    &s.write_latency
                };
                let mut cum = 0;
                for (i, b) in BUCKETS_US.iter().enumerate() {
                    cum += load(&h.counts[i]);
                    let le = *b as f64 / 1e6;
                    let _ = writeln!(
                        out,
                        "ironsan_{prefix}_{which}_latency_seconds_bucket{{{l},le=\"{le}\"}} {cum}"
                    );
                }
                cum += load(&h.counts[BUCKETS_US.len()]);
                let _ = writeln!(
                    out,
                    "ironsan_{prefix}_{which}_latency_seconds_bucket{{{l},le=\"+Inf\"}} {cum}"
                );
                let _ = writeln!(
                    out,
                    "ironsan_{prefix}_{which}_latency_seconds_count{{{l}}} {cum}"
                );
                let sum = load(&h.sum_us) as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "ironsan_{prefix}_{which}_latency_seconds_sum{{{l}}} {sum}"
                );
            }
        }
        let _ = writeln!(out, "# TYPE ironsan_{prefix}_queue_depth gauge\n# HELP ironsan_{prefix}_queue_depth Commands in flight.");
        for (l, s) in labels {
            let _ = writeln!(
                out,
                "ironsan_{prefix}_queue_depth{{{l}}} {}",
                s.inflight.load(Relaxed).max(0)
            );
        }
    }
    if with_sessions {
        type Gauge = fn(&Stats) -> i64;
        let gauges: [(&str, Gauge); 2] = [
            ("sessions", |s| s.sessions.load(Relaxed)),
            ("connections", |s| s.connections.load(Relaxed)),
        ];
        for (name, f) in gauges {
            let _ = writeln!(out, "# TYPE ironsan_{prefix}_{name} gauge");
            for (l, s) in labels {
                let _ = writeln!(out, "ironsan_{prefix}_{name}{{{l}}} {}", f(s).max(0));
            }
        }
        let counters: [(&str, Get); 5] = [
            ("logins_succeeded", |s| s.logins_ok.load(Relaxed)),
            ("logins_failed", |s| s.logins_failed.load(Relaxed)),
            ("reconnects", |s| s.reconnects.load(Relaxed)),
            ("digest_errors", |s| s.digest_errors.load(Relaxed)),
            ("nop_timeouts", |s| s.nop_timeouts.load(Relaxed)),
        ];
        for (name, f) in counters {
            let _ = writeln!(out, "# TYPE ironsan_{prefix}_{name} counter");
            for (l, s) in labels {
                let _ = writeln!(out, "ironsan_{prefix}_{name}_total{{{l}}} {}", f(s));
            }
        }
    }
}

impl Metrics {
    /// OpenMetrics text of every counter (without the final `# EOF`, so
    /// callers can append more families).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let luns: Vec<(String, Arc<Stats>)> = self
            .luns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((t, l), s)| (format!("target=\"{}\",lun=\"{l}\"", esc(t)), s.clone()))
            .collect();
        render_family(&mut out, "lun", &luns, true, false);
        let portals: Vec<(String, Arc<Stats>)> = self
            .portals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(p, s)| (format!("portal=\"{}\"", esc(p)), s.clone()))
            .collect();
        render_family(&mut out, "portal", &portals, true, true);
        let initiators: Vec<(String, Arc<Stats>)> = self
            .initiators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(i, s)| (format!("initiator=\"{}\"", esc(i)), s.clone()))
            .collect();
        render_family(&mut out, "initiator", &initiators, true, true);
        let _ = writeln!(
            out,
            "# TYPE ironsan_logins counter\n# HELP ironsan_logins Logins by outcome and reason."
        );
        for ((outcome, reason), n) in self
            .logins_by_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "ironsan_logins_total{{outcome=\"{outcome}\",reason=\"{}\"}} {n}",
                esc(reason)
            );
        }
        let _ = writeln!(
            out,
            "# TYPE ironsan_anomalies counter\n# HELP ironsan_anomalies Anomaly events by kind."
        );
        for kind in [
            "reconnect_loop",
            "login_storm",
            "portal_imbalance",
            "error_rate",
        ] {
            let n = self
                .anomalies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(kind)
                .copied()
                .unwrap_or(0);
            let _ = writeln!(out, "ironsan_anomalies_total{{kind=\"{kind}\"}} {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = Metrics::default();
        let s = m.lun("iqn.x", 0);
        s.command(Kind::Read, 4096, None, Duration::from_micros(80));
        s.command(Kind::Write, 512, Some(0x03), Duration::from_millis(2));
        let text = m.render();
        assert!(
            text.contains("ironsan_lun_read_bytes_total{target=\"iqn.x\",lun=\"0\"} 4096"),
            "{text}"
        );
        assert!(text
            .contains("ironsan_lun_commands_total{target=\"iqn.x\",lun=\"0\",kind=\"write\"} 1"));
        assert!(text
            .contains("ironsan_lun_errors_total{target=\"iqn.x\",lun=\"0\",sense_key=\"0x3\"} 1"));
        assert!(text.contains(
            "ironsan_lun_read_latency_seconds_bucket{target=\"iqn.x\",lun=\"0\",le=\"0.0001\"} 1"
        ));
    }

    #[test]
    fn initiator_cardinality_is_capped() {
        let m = Metrics::default();
        for i in 0..MAX_INITIATORS + 10 {
            m.initiator(&format!("iqn.2026-11.org.example:h{i}"))
                .read_bytes
                .fetch_add(1, Relaxed);
        }
        let other = m.initiator("iqn.2026-11.org.example:late");
        assert_eq!(other.read_bytes.load(Relaxed), 10);
        assert_eq!(
            m.initiators.lock().map(|x| x.len()).unwrap_or(0),
            MAX_INITIATORS + 1
        );
    }

    #[test]
    fn detects_reconnect_loops_and_error_rates() {
        let m = Metrics::default();
        for _ in 0..RECONNECT_LOOP {
            m.login("iqn.2026-11.org.example:loop", "127.0.0.1:3260", "ok");
        }
        let s = m.initiator("iqn.2026-11.org.example:bad");
        for _ in 0..30 {
            s.command(Kind::Read, 0, Some(0x03), Duration::ZERO);
        }
        m.detect(Instant::now());
        let kinds: Vec<&str> = m.events().iter().map(|e| e.kind).collect();
        assert!(kinds.contains(&"reconnect_loop"), "{kinds:?}");
        // The first check only takes the baseline for error rates.
        for _ in 0..30 {
            s.command(Kind::Read, 0, Some(0x03), Duration::ZERO);
        }
        m.detect(Instant::now());
        let kinds: Vec<&str> = m.events().iter().map(|e| e.kind).collect();
        assert!(kinds.contains(&"error_rate"), "{kinds:?}");
    }
}
