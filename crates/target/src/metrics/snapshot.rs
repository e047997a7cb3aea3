//! A structured copy of every counter ([`Metrics::snapshot`]), for the
//! JSON of `GET /v1/stats`, `ironsan stats`, `ironsan top` and the
//! dashboard. Latency percentiles are estimated from the histogram buckets
//! (linear interpolation inside the bucket holding the rank).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use serde::Serialize;

use super::{Event, Histogram, Metrics, Stats, BUCKETS_US, KINDS};

/// Completed SCSI commands by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CommandCounts {
    /// READ(6/10/12/16).
    pub read: u64,
    /// WRITE and friends.
    pub write: u64,
    /// SYNCHRONIZE CACHE.
    pub sync: u64,
    /// UNMAP, WRITE SAME.
    pub unmap: u64,
    /// Everything else.
    pub other: u64,
    /// The sum of the above.
    pub total: u64,
}

/// A latency histogram summarized.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Commands measured.
    pub count: u64,
    /// Mean, microseconds (0 without commands).
    pub mean_us: u64,
    /// Median estimated from the buckets, microseconds.
    pub p50_us: u64,
    /// 99th percentile estimated from the buckets, microseconds.
    pub p99_us: u64,
}

/// The counters of one LUN, portal or initiator.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StatsSnapshot {
    /// Bytes read by initiators.
    pub read_bytes: u64,
    /// Bytes written by initiators.
    pub write_bytes: u64,
    /// Commands by kind.
    pub commands: CommandCounts,
    /// CHECK CONDITION responses.
    pub errors: u64,
    /// Errors by sense key (`"0x3"`), only keys seen.
    pub errors_by_sense_key: BTreeMap<String, u64>,
    /// Commands in flight.
    pub queue_depth: u64,
    /// Logged-in sessions (portals and initiators).
    pub sessions: u64,
    /// Open TCP connections (portals).
    pub connections: u64,
    /// Successful logins.
    pub logins_succeeded: u64,
    /// Failed logins.
    pub logins_failed: u64,
    /// Logins of an initiator that had a session before.
    pub reconnects: u64,
    /// PDUs with a bad digest.
    pub digest_errors: u64,
    /// Connections dropped for unanswered NOP-In.
    pub nop_timeouts: u64,
    /// READ latency.
    pub read_latency: LatencySummary,
    /// WRITE latency.
    pub write_latency: LatencySummary,
}

/// One LUN's counters.
#[derive(Clone, Debug, Serialize)]
pub struct LunSnapshot {
    /// Target IQN.
    pub target: String,
    /// LUN number.
    pub lun: u64,
    /// The counters.
    #[serde(flatten)]
    pub stats: StatsSnapshot,
}

/// One portal's counters.
#[derive(Clone, Debug, Serialize)]
pub struct PortalSnapshot {
    /// Local address, `127.0.0.1:3260`.
    pub portal: String,
    /// The counters.
    #[serde(flatten)]
    pub stats: StatsSnapshot,
}

/// One initiator's counters (`_other` aggregates those beyond the cap).
#[derive(Clone, Debug, Serialize)]
pub struct InitiatorSnapshot {
    /// Initiator name, lower case.
    pub initiator: String,
    /// The counters.
    #[serde(flatten)]
    pub stats: StatsSnapshot,
}

/// Logins by outcome and reason.
#[derive(Clone, Debug, Serialize)]
pub struct LoginCount {
    /// `success` or `failure`.
    pub outcome: &'static str,
    /// `ok` or the failure's name.
    pub reason: String,
    /// How many.
    pub count: u64,
}

/// Every counter at one moment.
#[derive(Clone, Debug, Serialize)]
pub struct MetricsSnapshot {
    /// Per target LUN.
    pub luns: Vec<LunSnapshot>,
    /// Per portal.
    pub portals: Vec<PortalSnapshot>,
    /// Per initiator.
    pub initiators: Vec<InitiatorSnapshot>,
    /// Logins by outcome and reason.
    pub logins: Vec<LoginCount>,
    /// Anomaly events raised so far, by kind.
    pub anomalies: BTreeMap<String, u64>,
    /// Recent anomaly events, oldest first.
    pub events: Vec<Event>,
    /// The initiator whose commands are traced, if any.
    pub trace: Option<String>,
}

/// The microseconds below which a fraction `q` of the histogram lies.
fn quantile(counts: &[u64], q: f64) -> u64 {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return 0;
    }
    let rank = q * n as f64;
    let mut cum = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        if c > 0 && (cum + c) as f64 >= rank {
            let Some(&upper) = BUCKETS_US.get(i) else {
                // Beyond the last bound: report the bound.
                return BUCKETS_US[BUCKETS_US.len() - 1];
            };
            let lower = if i == 0 { 0 } else { BUCKETS_US[i - 1] };
            let within = ((rank - cum as f64) / c as f64).clamp(0.0, 1.0);
            return lower + ((upper - lower) as f64 * within).round() as u64;
        }
        cum += c;
    }
    BUCKETS_US[BUCKETS_US.len() - 1]
}

fn summarize(h: &Histogram) -> LatencySummary {
    let counts: Vec<u64> = h.counts.iter().map(|c| c.load(Relaxed)).collect();
    let count: u64 = counts.iter().sum();
    let sum = h.sum_us.load(Relaxed);
    LatencySummary {
        count,
        mean_us: sum.checked_div(count).unwrap_or(0),
        p50_us: quantile(&counts, 0.50),
        p99_us: quantile(&counts, 0.99),
    }
}

fn nonneg(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Stats {
    /// A copy of these counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut commands = CommandCounts::default();
        for (name, k) in KINDS {
            let n = self.commands(k);
            match name {
                "read" => commands.read = n,
                "write" => commands.write = n,
                "sync" => commands.sync = n,
                "unmap" => commands.unmap = n,
                _ => commands.other = n,
            }
            commands.total += n;
        }
        let errors_by_sense_key = self
            .errors
            .iter()
            .enumerate()
            .map(|(k, c)| (format!("{k:#x}"), c.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        StatsSnapshot {
            read_bytes: self.read_bytes.load(Relaxed),
            write_bytes: self.write_bytes.load(Relaxed),
            commands,
            errors: self.errors_total(),
            errors_by_sense_key,
            queue_depth: nonneg(self.inflight.load(Relaxed)),
            sessions: nonneg(self.sessions.load(Relaxed)),
            connections: nonneg(self.connections.load(Relaxed)),
            logins_succeeded: self.logins_ok.load(Relaxed),
            logins_failed: self.logins_failed.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            digest_errors: self.digest_errors.load(Relaxed),
            nop_timeouts: self.nop_timeouts.load(Relaxed),
            read_latency: summarize(&self.read_latency),
            write_latency: summarize(&self.write_latency),
        }
    }
}

fn copy<K: Clone, V: Clone>(m: &std::sync::Mutex<BTreeMap<K, V>>) -> Vec<(K, V)> {
    m.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Metrics {
    /// Every counter, structured (the JSON behind `ironsan stats`).
    pub fn snapshot(&self) -> MetricsSnapshot {
        let luns = copy(&self.luns)
            .into_iter()
            .map(
                |((target, lun), s): ((String, u64), Arc<Stats>)| LunSnapshot {
                    target,
                    lun,
                    stats: s.snapshot(),
                },
            )
            .collect();
        let portals = copy(&self.portals)
            .into_iter()
            .map(|(portal, s)| PortalSnapshot {
                portal,
                stats: s.snapshot(),
            })
            .collect();
        let initiators = copy(&self.initiators)
            .into_iter()
            .map(|(initiator, s)| InitiatorSnapshot {
                initiator,
                stats: s.snapshot(),
            })
            .collect();
        let logins = copy(&self.logins_by_reason)
            .into_iter()
            .map(|((outcome, reason), count)| LoginCount {
                outcome,
                reason,
                count,
            })
            .collect();
        let anomalies = copy(&self.anomalies)
            .into_iter()
            .map(|(k, n)| (k.to_string(), n))
            .collect();
        MetricsSnapshot {
            luns,
            portals,
            initiators,
            logins,
            anomalies,
            events: self.events(),
            trace: self.trace_target(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::Kind;
    use super::*;

    #[test]
    fn snapshot_counts_and_estimates_percentiles() {
        let m = Metrics::default();
        let s = m.initiator("IQN.2026-11.org.example:H");
        for _ in 0..99 {
            s.command(Kind::Read, 4096, None, Duration::from_micros(80));
        }
        s.command(Kind::Read, 4096, None, Duration::from_millis(40));
        s.command(Kind::Write, 512, Some(0x05), Duration::from_micros(300));
        s.command(Kind::Sync, 0, None, Duration::from_micros(10));
        let snap = m.snapshot();
        let i = &snap.initiators[0];
        assert_eq!(i.initiator, "iqn.2026-11.org.example:h");
        assert_eq!(i.stats.read_bytes, 100 * 4096);
        assert_eq!(i.stats.write_bytes, 512);
        assert_eq!(
            (
                i.stats.commands.read,
                i.stats.commands.write,
                i.stats.commands.sync
            ),
            (100, 1, 1)
        );
        assert_eq!(i.stats.commands.total, 102);
        assert_eq!(i.stats.errors, 1);
        assert_eq!(i.stats.errors_by_sense_key.get("0x5"), Some(&1));
        let r = &i.stats.read_latency;
        assert_eq!(r.count, 100);
        // 99 samples in (50, 100] µs: the median lies inside that bucket.
        assert!((50..=100).contains(&r.p50_us), "{r:?}");
        // The 99th is the 99th sample, still in that bucket; the mean sees the outlier.
        assert!((50..=100).contains(&r.p99_us), "{r:?}");
        assert_eq!(r.mean_us, (99 * 80 + 40_000) / 100);
        assert_eq!(
            quantile(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3], 0.5),
            1_000_000
        );
        assert_eq!(quantile(&[0; 15], 0.99), 0);
        let json = serde_json::to_value(&snap).unwrap_or_default();
        assert_eq!(json["initiators"][0]["read_bytes"], 409_600);
        assert_eq!(json["initiators"][0]["commands"]["write"], 1);
    }
}
