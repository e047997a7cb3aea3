//! Login storms: many sessions logging in at once, each doing a little I/O
//! and logging out, optionally with one long-lived "victim" session doing
//! I/O throughout, to see whether the storm disturbs established sessions.
//!
//! [`run_storm`] is the whole experiment; the `ironsan-load` binary is a
//! command line around it, and the target's storm test calls it directly.
//!
//! I/O layout on the logical unit, in 4 KiB slots ([`IO_SIZE`]): storm
//! session `i` writes and read-verifies slots `i * io .. (i + 1) * io`; the
//! last [`VICTIM_SLOTS`] slots belong to the victim. The data of every slot
//! is derived from a per-run random salt and the slot number, so a read that
//! returns another slot's data, or a previous run's, fails verification.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use iscsi_proto::chap::{ChapAlgorithm, Secret};
use iscsi_proto::initiator::{InitiatorChap, InitiatorConfig, InitiatorError};
use iscsi_proto::login::LoginStatus;
use iscsi_proto::pdu::lun_to_sam;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{read10, write10, Client, ClientError, CommandOutcome};
use crate::retry::{jitter_seed, login_with_retry, LoginError, RetryPolicy};
use crate::wire::FrameError;

/// Bytes of one I/O: one write and one verifying read of this size.
pub const IO_SIZE: usize = 4096;
/// Slots at the end of the logical unit reserved for the victim session.
pub const VICTIM_SLOTS: u64 = 64;
/// How often a command is resent after a UNIT ATTENTION.
const UNIT_ATTENTION_RETRIES: u32 = 4;

/// What a storm does.
#[derive(Clone, Debug)]
pub struct StormConfig {
    /// The target portal.
    pub addr: SocketAddr,
    /// TargetName to log in to.
    pub target: String,
    /// Logical unit number for I/O (encoded into the SAM LUN field here).
    pub lun: u64,
    /// Sessions started at once, each from its own initiator name.
    pub sessions: usize,
    /// 4 KiB write + read-verify pairs per storm session (0: login/logout only).
    pub io: u32,
    /// CHAP credentials shared by every session (one `initiator = "*"` ACL).
    pub chap: Option<InitiatorChap>,
    /// Initiator names are `{prefix}:s{index}` and `{prefix}:victim`.
    pub initiator_prefix: String,
    /// Keep one session doing I/O during the storm and report its latency.
    pub victim: bool,
    /// Bound of the whole storm, victim included.
    pub timeout: Duration,
    /// Login retries and the bound of each connect + login attempt.
    pub retry: RetryPolicy,
    /// Bound of each command and of logout.
    pub op_timeout: Duration,
}

impl StormConfig {
    /// A storm of 100 sessions with one I/O each, no CHAP, no victim, 60 s bound.
    pub fn new(addr: SocketAddr, target: impl Into<String>) -> Self {
        Self {
            addr,
            target: target.into(),
            lun: 0,
            sessions: 100,
            io: 1,
            chap: None,
            initiator_prefix: "iqn.2026-11.org.ironsan.load".into(),
            victim: false,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            op_timeout: Duration::from_secs(10),
        }
    }

    fn initiator(&self, suffix: &str, isid: u32) -> InitiatorConfig {
        let name = format!("{}:{suffix}", self.initiator_prefix);
        let mut cfg = InitiatorConfig::new(&name, Some(&self.target));
        let n = isid.to_be_bytes();
        // Random-format ISID (T = 10b), distinct per session.
        cfg.isid = [0x80, 0x4c, n[0], n[1], n[2], n[3]];
        cfg.chap = self.chap.clone();
        cfg
    }
}

/// One-way CHAP credentials offering every algorithm the codec knows.
pub fn chap(user: &str, secret: &[u8]) -> InitiatorChap {
    InitiatorChap {
        user: user.to_owned(),
        secret: Secret::new(secret.to_vec()),
        mutual: None,
        algorithms: ChapAlgorithm::ALL.to_vec(),
    }
}

/// Latency percentiles (nearest rank) of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl Latency {
    /// Percentiles of `samples` (reordered in place); `None` when empty.
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        samples.sort_unstable();
        let n = samples.len();
        let rank = |p: usize| samples[(n * p).div_ceil(100).clamp(1, n) - 1];
        let max = *samples.last()?;
        Some(Self {
            count: n,
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max,
        })
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}  p90 {}  p99 {}  max {}  (n={})",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max),
            self.count
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// What the victim session saw.
#[derive(Clone, Debug, Default)]
pub struct VictimReport {
    /// Whether it logged in at all.
    pub logged_in: bool,
    /// Commands (writes and verifying reads) completed.
    pub commands: u64,
    /// Latency of those commands.
    pub latency: Option<Latency>,
    /// The first error, which also ended its I/O.
    pub error: Option<String>,
}

/// The outcome of a storm.
#[derive(Clone, Debug, Default)]
pub struct StormReport {
    /// Storm sessions started.
    pub sessions: usize,
    /// Sessions that logged in, did their I/O and logged out.
    pub succeeded: usize,
    /// Sessions that logged in (whatever happened next).
    pub logged_in: usize,
    /// Failed sessions by reason.
    pub failures: BTreeMap<String, usize>,
    /// Login answers 0x0301 SERVICE UNAVAILABLE that were retried.
    pub deferrals: u64,
    /// Sessions that got at least one 0x0301.
    pub sessions_deferred: usize,
    /// Early transport failures retried (with `retry_closed`).
    pub reconnects: u64,
    /// Login latency of the sessions that logged in, from their first
    /// connect to the final login response, retries and backoff included.
    pub login_latency: Option<Latency>,
    /// Verified 4 KiB write + read pairs of the storm sessions.
    pub ios: u64,
    /// Start of the storm to the end of its last session.
    pub wall: Duration,
    /// Start of the storm to its last successful login.
    pub login_span: Duration,
    /// The victim, when there was one.
    pub victim: Option<VictimReport>,
}

impl StormReport {
    /// Sessions that failed.
    pub fn failed(&self) -> usize {
        self.failures.values().sum()
    }

    /// Successful logins per second over [`login_span`](Self::login_span).
    pub fn logins_per_sec(&self) -> f64 {
        let span = self.login_span.as_secs_f64();
        if span > 0.0 {
            self.logged_in as f64 / span
        } else {
            0.0
        }
    }

    /// The report as one JSON object (durations in milliseconds).
    pub fn to_json(&self) -> String {
        fn lat(l: &Option<Latency>) -> String {
            match l {
                None => "null".into(),
                Some(l) => format!(
                    "{{\"count\":{},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
                    l.count,
                    l.p50.as_secs_f64() * 1e3,
                    l.p90.as_secs_f64() * 1e3,
                    l.p99.as_secs_f64() * 1e3,
                    l.max.as_secs_f64() * 1e3
                ),
            }
        }
        let failures: Vec<String> = self
            .failures
            .iter()
            .map(|(k, v)| format!("{}:{v}", json_str(k)))
            .collect();
        let victim = match &self.victim {
            None => "null".into(),
            Some(v) => format!(
                "{{\"logged_in\":{},\"commands\":{},\"latency\":{},\"error\":{}}}",
                v.logged_in,
                v.commands,
                lat(&v.latency),
                v.error.as_deref().map_or("null".into(), json_str)
            ),
        };
        format!(
            "{{\"sessions\":{},\"succeeded\":{},\"logged_in\":{},\"failed\":{},\"failures\":{{{}}},\
             \"deferrals\":{},\"sessions_deferred\":{},\"reconnects\":{},\"login_latency\":{},\
             \"ios\":{},\"wall_s\":{:.3},\"login_span_s\":{:.3},\"logins_per_sec\":{:.1},\"victim\":{}}}",
            self.sessions,
            self.succeeded,
            self.logged_in,
            self.failed(),
            failures.join(","),
            self.deferrals,
            self.sessions_deferred,
            self.reconnects,
            lat(&self.login_latency),
            self.ios,
            self.wall.as_secs_f64(),
            self.login_span.as_secs_f64(),
            self.logins_per_sec(),
            victim
        )
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl fmt::Display for StormReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sessions         {} started, {} succeeded, {} failed",
            self.sessions,
            self.succeeded,
            self.failed()
        )?;
        for (reason, n) in &self.failures {
            writeln!(f, "  failed         {n:>6}  {reason}")?;
        }
        writeln!(
            f,
            "0x0301 retries   {} (in {} sessions); reconnects {}",
            self.deferrals, self.sessions_deferred, self.reconnects
        )?;
        match &self.login_latency {
            Some(l) => writeln!(f, "login latency    {l}")?,
            None => writeln!(f, "login latency    -")?,
        }
        writeln!(
            f,
            "logins/s         {:.1} ({} logins in {:.3} s)",
            self.logins_per_sec(),
            self.logged_in,
            self.login_span.as_secs_f64()
        )?;
        writeln!(f, "I/O              {} verified 4 KiB write+read", self.ios)?;
        writeln!(f, "wall time        {:.3} s", self.wall.as_secs_f64())?;
        if let Some(v) = &self.victim {
            let lat = v.latency.map_or_else(|| "-".to_owned(), |l| l.to_string());
            writeln!(
                f,
                "victim           {} commands, {lat}; {}",
                v.commands,
                v.error.as_deref().unwrap_or("no error")
            )?;
        }
        Ok(())
    }
}

/// A short, low-cardinality reason for a client error (reports group by it).
pub fn client_reason(e: &ClientError) -> String {
    if e.is_connection_closed() {
        return "connection closed by target".into();
    }
    match e {
        ClientError::Login(InitiatorError::Rejected(s)) => status_reason(*s),
        ClientError::Login(InitiatorError::MutualAuthFailed) => {
            "target failed mutual authentication".into()
        }
        ClientError::Login(_) | ClientError::Protocol(_) => "protocol error".into(),
        ClientError::Io(e) | ClientError::Frame(FrameError::Io(e)) => format!("{:?}", e.kind()),
        ClientError::Frame(FrameError::HeaderDigest) => "header digest error".into(),
        ClientError::Frame(_) => "oversized PDU".into(),
        ClientError::DataDigest(_) => "data digest error".into(),
    }
}

fn status_reason(s: LoginStatus) -> String {
    let name = match s {
        LoginStatus::AUTH_FAILURE => " authentication failure",
        LoginStatus::AUTHORIZATION_FAILURE => " authorization failure",
        LoginStatus::NOT_FOUND => " target not found",
        LoginStatus::TOO_MANY_CONNECTIONS => " too many connections",
        LoginStatus::TARGET_ERROR => " target error",
        LoginStatus::SERVICE_UNAVAILABLE => " service unavailable",
        LoginStatus::OUT_OF_RESOURCES => " out of resources",
        _ => "",
    };
    format!("status {:#06x}{name}", s.0)
}

fn login_reason(e: &LoginError) -> String {
    match e {
        LoginError::Connect(e) => format!("connect: {:?}", e.kind()),
        LoginError::Timeout(_) => "login: timed out".into(),
        LoginError::Login(c) => format!("login: {}", client_reason(c)),
        LoginError::Deadline => "login: deadline".into(),
    }
}

fn outcome_reason(what: &str, out: &CommandOutcome) -> String {
    if out.response != 0 {
        return format!("{what}: response {:#04x}", out.response);
    }
    match out.sense_code() {
        Some((k, asc, ascq)) => format!(
            "{what}: status {:#04x} sense {k:x}/{asc:02x}/{ascq:02x}",
            out.status
        ),
        None => format!("{what}: status {:#04x}", out.status),
    }
}

/// Runs `fut` bounded by `bound`, mapping errors to reasons.
async fn op<T>(
    what: &str,
    bound: Duration,
    fut: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, String> {
    match tokio::time::timeout(bound, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {}", client_reason(&e))),
        Err(_) => Err(format!("{what}: timed out")),
    }
}

/// The logical unit's size in 4 KiB slots and its block size.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    block_size: u32,
    slots: u64,
}

async fn geometry(client: &mut Client, lun: u64, bound: Duration) -> Result<Geometry, String> {
    for _ in 0..UNIT_ATTENTION_RETRIES {
        match op("read capacity", bound, client.read_capacity(lun)).await? {
            Ok(cap) => {
                let bs = cap.block_size as usize;
                if bs > IO_SIZE || !IO_SIZE.is_multiple_of(bs) {
                    return Err(format!("block size {bs} does not divide {IO_SIZE}"));
                }
                return Ok(Geometry {
                    block_size: cap.block_size,
                    slots: cap.blocks.saturating_mul(u64::from(cap.block_size)) / IO_SIZE as u64,
                });
            }
            Err(out) if out.is_unit_attention() => continue,
            Err(out) => return Err(outcome_reason("read capacity", &out)),
        }
    }
    Err("read capacity: unit attention persists".into())
}

/// Deterministic content of `slot` for this run.
fn slot_data(salt: u64, slot: u64) -> Vec<u8> {
    let mut x = (salt ^ slot.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
    let mut out = Vec::with_capacity(IO_SIZE);
    while out.len() < IO_SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Writes `slot` and reads it back; records each command's latency.
async fn write_verify(
    client: &mut Client,
    lun: u64,
    geo: Geometry,
    slot: u64,
    data: &[u8],
    bound: Duration,
    samples: &mut Vec<Duration>,
) -> Result<(), String> {
    let per_slot = (IO_SIZE / geo.block_size as usize) as u64;
    let lba = u32::try_from(slot * per_slot).map_err(|_| "LBA beyond WRITE(10)".to_owned())?;
    let blocks = per_slot as u16;
    let mut budget = UNIT_ATTENTION_RETRIES;
    let write = ("write", write10(lba, blocks), 0, data);
    good_command(client, lun, bound, &mut budget, samples, write).await?;
    let read = ("read", read10(lba, blocks), IO_SIZE as u32, &[][..]);
    let out = good_command(client, lun, bound, &mut budget, samples, read).await?;
    if out.data != data {
        return Err("verify: data read back differs".into());
    }
    Ok(())
}

/// Runs `(what, cdb, read_len, data)` on `lun`, reissuing it after a unit
/// attention while `budget` lasts; records its latency when it succeeds.
async fn good_command(
    client: &mut Client,
    lun: u64,
    bound: Duration,
    budget: &mut u32,
    samples: &mut Vec<Duration>,
    (what, cdb, read_len, data): (&str, [u8; 16], u32, &[u8]),
) -> Result<CommandOutcome, String> {
    loop {
        let t = Instant::now();
        let out = op(what, bound, client.command(lun, cdb, read_len, data)).await?;
        if out.is_unit_attention() && *budget > 0 {
            *budget -= 1;
            continue;
        }
        if !out.is_good() {
            return Err(outcome_reason(what, &out));
        }
        samples.push(t.elapsed());
        return Ok(out);
    }
}

async fn logout(client: &mut Client, bound: Duration) -> Result<(), String> {
    match op("logout", bound, client.logout()).await? {
        0 => Ok(()),
        code => Err(format!("logout: response {code}")),
    }
}

/// What one storm session went through.
#[derive(Debug, Default)]
struct SessionOutcome {
    login: Option<Duration>,
    login_at: Option<Instant>,
    deferrals: u32,
    reconnects: u32,
    ios: u64,
    error: Option<String>,
}

struct Shared {
    cfg: StormConfig,
    deadline: Instant,
    salt: u64,
}

async fn storm_session(
    shared: Arc<Shared>,
    index: usize,
    mut go: watch::Receiver<bool>,
) -> SessionOutcome {
    let mut out = SessionOutcome::default();
    if go.wait_for(|g| *g).await.is_err() {
        out.error = Some("not started".into());
        return out;
    }
    let cfg = &shared.cfg;
    let init = cfg.initiator(&format!("s{index}"), index as u32 + 1);
    let t0 = Instant::now();
    let run = login_with_retry(cfg.addr, &init, &cfg.retry, shared.deadline).await;
    out.deferrals = run.deferrals;
    out.reconnects = run.reconnects;
    let mut client = match run.result {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(login_reason(&e));
            return out;
        }
    };
    out.login = Some(t0.elapsed());
    out.login_at = Some(Instant::now());
    let mut ios = 0u64;
    let work = async {
        if cfg.io > 0 {
            let geo = geometry(&mut client, lun_to_sam(cfg.lun), cfg.op_timeout).await?;
            let mut samples = Vec::new();
            for j in 0..u64::from(cfg.io) {
                let slot = index as u64 * u64::from(cfg.io) + j;
                if slot >= geo.slots.saturating_sub(VICTIM_SLOTS) {
                    return Err(format!(
                        "logical unit too small: {} slots of 4 KiB",
                        geo.slots
                    ));
                }
                let data = slot_data(shared.salt, slot);
                write_verify(
                    &mut client,
                    lun_to_sam(cfg.lun),
                    geo,
                    slot,
                    &data,
                    cfg.op_timeout,
                    &mut samples,
                )
                .await?;
                ios += 1;
            }
        }
        logout(&mut client, cfg.op_timeout).await
    };
    match tokio::time::timeout_at(shared.deadline, work).await {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => out.error = Some(reason),
        Err(_) => out.error = Some("deadline during I/O or logout".into()),
    }
    out.ios = ios;
    out
}

async fn victim(
    shared: Arc<Shared>,
    ready: oneshot::Sender<()>,
    stop: watch::Receiver<bool>,
) -> VictimReport {
    let mut report = VictimReport::default();
    let cfg = &shared.cfg;
    let init = cfg.initiator("victim", 0);
    let run = login_with_retry(cfg.addr, &init, &cfg.retry, shared.deadline).await;
    let mut client = match run.result {
        Ok(c) => c,
        Err(e) => {
            report.error = Some(format!("victim {}", login_reason(&e)));
            return report;
        }
    };
    report.logged_in = true;
    let mut samples = Vec::new();
    let io = async {
        let geo = geometry(&mut client, lun_to_sam(cfg.lun), cfg.op_timeout).await?;
        if geo.slots < VICTIM_SLOTS {
            return Err(format!(
                "logical unit too small: {} slots of 4 KiB",
                geo.slots
            ));
        }
        let _ = ready.send(());
        let mut k = 0u64;
        while !*stop.borrow() {
            let slot = geo.slots - 1 - k % VICTIM_SLOTS;
            let data = slot_data(shared.salt, slot);
            write_verify(
                &mut client,
                lun_to_sam(cfg.lun),
                geo,
                slot,
                &data,
                cfg.op_timeout,
                &mut samples,
            )
            .await?;
            k += 1;
        }
        Ok(())
    };
    report.error = match tokio::time::timeout_at(shared.deadline, io).await {
        Ok(Ok(())) => None,
        Ok(Err(reason)) => Some(reason),
        Err(_) => Some("deadline during I/O".into()),
    };
    report.commands = samples.len() as u64;
    report.latency = Latency::of(&mut samples);
    if report.error.is_none() {
        let bye = tokio::time::timeout_at(shared.deadline, logout(&mut client, cfg.op_timeout));
        report.error = match bye.await {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some(reason),
            Err(_) => Some("logout: deadline".into()),
        };
    }
    report
}

/// Runs a storm: optionally logs the victim in first, then starts every
/// storm session at once and waits for all of them (bounded by
/// `cfg.timeout`), then stops the victim.
pub async fn run_storm(cfg: &StormConfig) -> StormReport {
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        deadline: Instant::now() + cfg.timeout,
        salt: jitter_seed(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let victim_task = if cfg.victim {
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(victim(shared.clone(), ready_tx, stop_rx));
        // The storm starts once the victim is doing I/O (or has failed).
        let _ = tokio::time::timeout_at(shared.deadline, ready_rx).await;
        Some(task)
    } else {
        None
    };

    let (go_tx, go_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for index in 0..cfg.sessions {
        tasks.spawn(storm_session(shared.clone(), index, go_rx.clone()));
    }
    let start = Instant::now();
    let _ = go_tx.send(true);

    let mut report = StormReport {
        sessions: cfg.sessions,
        ..StormReport::default()
    };
    let mut latencies = Vec::with_capacity(cfg.sessions);
    let mut last_login = start;
    while let Some(joined) = tasks.join_next().await {
        let out = joined.unwrap_or_else(|e| SessionOutcome {
            error: Some(format!("session task failed: {e}")),
            ..SessionOutcome::default()
        });
        report.deferrals += u64::from(out.deferrals);
        report.reconnects += u64::from(out.reconnects);
        if out.deferrals > 0 {
            report.sessions_deferred += 1;
        }
        if let (Some(l), Some(at)) = (out.login, out.login_at) {
            report.logged_in += 1;
            latencies.push(l);
            last_login = last_login.max(at);
        }
        report.ios += out.ios;
        match out.error {
            None => report.succeeded += 1,
            Some(reason) => *report.failures.entry(reason).or_default() += 1,
        }
    }
    report.wall = start.elapsed();
    report.login_span = last_login - start;
    report.login_latency = Latency::of(&mut latencies);

    let _ = stop_tx.send(true);
    if let Some(task) = victim_task {
        report.victim = Some(task.await.unwrap_or_else(|e| VictimReport {
            error: Some(format!("victim task failed: {e}")),
            ..VictimReport::default()
        }));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut s: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let l = Latency::of(&mut s).expect("samples");
        assert_eq!(l.count, 100);
        assert_eq!(l.p50, Duration::from_millis(50));
        assert_eq!(l.p90, Duration::from_millis(90));
        assert_eq!(l.p99, Duration::from_millis(99));
        assert_eq!(l.max, Duration::from_millis(100));
        let mut one = vec![Duration::from_millis(7)];
        let l = Latency::of(&mut one).expect("one sample");
        assert_eq!((l.p50, l.p99, l.max), (one[0], one[0], one[0]));
        assert!(Latency::of(&mut []).is_none());
    }

    #[test]
    fn slot_data_differs_by_slot_and_salt() {
        assert_eq!(slot_data(1, 2).len(), IO_SIZE);
        assert_eq!(slot_data(1, 2), slot_data(1, 2));
        assert_ne!(slot_data(1, 2), slot_data(1, 3));
        assert_ne!(slot_data(1, 2), slot_data(2, 2));
    }

    #[test]
    fn report_json_escapes_reasons() {
        let mut r = StormReport {
            sessions: 2,
            succeeded: 1,
            ..StormReport::default()
        };
        r.failures.insert("login: \"x\"\n".into(), 1);
        let j = r.to_json();
        assert!(j.contains(r#""login: \"x\"\u000a":1"#), "{j}");
        assert!(j.contains("\"failed\":1"));
        assert!(j.contains("\"victim\":null"));
    }
}
