//! Login admission and throttling.
//!
//! - Failed logins are counted per initiator name and per source address in a
//!   sliding window; past a threshold the key is locked out for a cool-down.
//!   Attempts during the cool-down are delayed, then refused without their
//!   credentials being checked, so a locked key cannot keep guessing.
//! - Connections that have not sent anything yet are capped per source
//!   address: when a new one exceeds the cap, the oldest silent one from that
//!   address is closed, so idle connections cannot starve a real initiator,
//!   while initiators that do speak are never evicted (the admission ceiling
//!   and the login timeout govern them).
//! - The number of logins in progress is capped; extra logins are answered
//!   "service unavailable" (0x0301) and the initiator retries.
//!
//! Time is passed in, so the policy is tested without sleeping.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::SecuritySettings;

/// How long a connection may stay silent before it can be evicted.
const SILENT_GRACE: Duration = Duration::from_secs(1);

/// What a failure counter is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GuardKey {
    /// An initiator name (lower case).
    Initiator(String),
    /// A source address.
    Address(IpAddr),
}

#[derive(Debug, Default)]
struct Record {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

/// A connection that has not finished logging in.
struct Pending {
    id: u64,
    evict: Arc<Notify>,
    since: Instant,
}

/// Registration of a pending connection; dropping it unregisters.
pub struct PendingLogin {
    guard: Arc<LoginGuard>,
    addr: IpAddr,
    id: u64,
    /// Notified when a newer connection from the same address evicts this one.
    pub evicted: Arc<Notify>,
}

impl PendingLogin {
    /// The connection sent its first PDU: it is no longer a silent one and
    /// cannot be evicted (admission and the login timeout govern it now).
    pub fn spoke(&self) {
        self.forget();
    }

    fn forget(&self) {
        let mut pending = lock(&self.guard.pending);
        if let Some(q) = pending.get_mut(&self.addr) {
            q.retain(|p| p.id != self.id);
            if q.is_empty() {
                pending.remove(&self.addr);
            }
        }
    }
}

impl Drop for PendingLogin {
    fn drop(&mut self) {
        self.forget();
    }
}

/// A login slot under the admission ceiling; dropping it frees the slot.
pub struct LoginSlot(Arc<LoginGuard>);

impl Drop for LoginSlot {
    fn drop(&mut self) {
        self.0.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Shared login policy state.
pub struct LoginGuard {
    cfg: std::sync::RwLock<SecuritySettings>,
    records: Mutex<HashMap<GuardKey, Record>>,
    pending: Mutex<HashMap<IpAddr, VecDeque<Pending>>>,
    next_id: AtomicU64,
    in_progress: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LoginGuard {
    /// A guard applying `cfg`.
    pub fn new(cfg: SecuritySettings) -> Arc<Self> {
        Arc::new(Self {
            cfg: std::sync::RwLock::new(cfg),
            records: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            in_progress: AtomicUsize::new(0),
        })
    }

    fn cfg(&self) -> SecuritySettings {
        self.cfg.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the policy (live reconfiguration); counters are kept.
    pub fn set_config(&self, cfg: SecuritySettings) {
        *self.cfg.write().unwrap_or_else(|p| p.into_inner()) = cfg;
    }

    /// The delay before a locked-out attempt is refused.
    pub fn refusal_delay(&self) -> Duration {
        Duration::from_millis(self.cfg().lockout_delay_ms)
    }

    /// Registers a new connection from `addr`; may evict the oldest pending
    /// connection from the same address.
    pub fn connection(self: &Arc<Self>, addr: IpAddr) -> PendingLogin {
        self.connection_at(addr, Instant::now())
    }

    /// [`connection`](Self::connection) at a given time.
    pub fn connection_at(self: &Arc<Self>, addr: IpAddr, now: Instant) -> PendingLogin {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let evicted = Arc::new(Notify::new());
        let mut pending = lock(&self.pending);
        let q = pending.entry(addr).or_default();
        q.push_back(Pending {
            id,
            evict: evicted.clone(),
            since: now,
        });
        // Over the cap, the oldest silent connections go, but only those
        // silent for a while: in a reconnect storm connections arrive faster
        // than their first PDU is read, and those are about to speak.
        let cap = self.cfg().max_pending_logins_per_address.max(1);
        while q.len() > cap
            && q.front()
                .is_some_and(|p| now.duration_since(p.since) >= SILENT_GRACE)
        {
            if let Some(old) = q.pop_front() {
                old.evict.notify_one();
            }
        }
        PendingLogin {
            guard: self.clone(),
            addr,
            id,
            evicted,
        }
    }

    /// Takes a login slot, or `None` when the ceiling is reached.
    pub fn admit(self: &Arc<Self>) -> Option<LoginSlot> {
        let n = self.in_progress.fetch_add(1, Ordering::AcqRel);
        if n >= self.cfg().max_logins_in_progress {
            self.in_progress.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(LoginSlot(self.clone()))
    }

    /// Whether `key` is locked out at `now`.
    pub fn locked(&self, key: &GuardKey, now: Instant) -> bool {
        lock(&self.records)
            .get(key)
            .and_then(|r| r.locked_until)
            .is_some_and(|until| now < until)
    }

    /// Counts a failed login; returns true when this failure locks the key out.
    pub fn failure(&self, key: GuardKey, now: Instant) -> bool {
        let cfg = self.cfg();
        let threshold = match key {
            GuardKey::Initiator(_) => cfg.max_login_failures,
            GuardKey::Address(_) => cfg.max_login_failures_per_address,
        };
        let window = Duration::from_secs(cfg.login_failure_window);
        let mut records = lock(&self.records);
        // Bound the table: forget keys whose failures are all stale.
        if records.len() > 65_536 {
            records.retain(|_, r| {
                r.locked_until.is_some_and(|u| now < u)
                    || r.failures
                        .back()
                        .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        let r = records.entry(key).or_default();
        while r
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            r.failures.pop_front();
        }
        r.failures.push_back(now);
        if r.failures.len() >= threshold.max(1) && r.locked_until.is_none_or(|u| now >= u) {
            r.locked_until = Some(now + Duration::from_secs(cfg.lockout));
            r.failures.clear();
            return true;
        }
        false
    }

    /// A successful login clears the initiator's failure count (not the address's).
    pub fn success(&self, key: &GuardKey) {
        if let Some(r) = lock(&self.records).get_mut(key) {
            r.failures.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Arc<LoginGuard> {
        LoginGuard::new(SecuritySettings {
            max_login_failures: 3,
            max_login_failures_per_address: 10,
            login_failure_window: 60,
            lockout: 300,
            max_pending_logins_per_address: 2,
            max_logins_in_progress: 2,
            ..SecuritySettings::default()
        })
    }

    #[test]
    fn locks_out_after_threshold_and_recovers_after_cool_down() {
        let g = guard();
        let t0 = Instant::now();
        let key = GuardKey::Initiator("iqn.x".into());
        assert!(!g.failure(key.clone(), t0));
        assert!(!g.failure(key.clone(), t0));
        assert!(g.failure(key.clone(), t0));
        assert!(g.locked(&key, t0 + Duration::from_secs(299)));
        assert!(!g.locked(&key, t0 + Duration::from_secs(300)));
        assert!(!g.locked(&GuardKey::Initiator("iqn.y".into()), t0));
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let g = guard();
        let t0 = Instant::now();
        let key = GuardKey::Initiator("iqn.x".into());
        g.failure(key.clone(), t0);
        g.failure(key.clone(), t0);
        assert!(!g.failure(key.clone(), t0 + Duration::from_secs(61)));
        assert!(!g.locked(&key, t0 + Duration::from_secs(61)));
    }

    #[test]
    fn success_resets_the_initiator_count() {
        let g = guard();
        let t0 = Instant::now();
        let key = GuardKey::Initiator("iqn.x".into());
        g.failure(key.clone(), t0);
        g.failure(key.clone(), t0);
        g.success(&key);
        assert!(!g.failure(key, t0));
    }

    #[test]
    fn pending_connections_evict_the_oldest_silent_one() {
        use std::future::Future;
        let notified = |n: &Arc<Notify>| {
            let fut = n.notified();
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let mut fut = std::pin::pin!(fut);
            // A stored permit makes the first poll ready.
            fut.as_mut().poll(&mut cx).is_ready()
        };
        let g = guard();
        let addr: IpAddr = "127.0.0.1".parse().expect("ip");
        let t0 = Instant::now();
        let a = g.connection_at(addr, t0);
        let b = g.connection_at(addr, t0);
        // A burst over the cap (2): young connections are about to speak
        // and are kept.
        let c = g.connection_at(addr, t0);
        assert!(!notified(&a.evicted));
        // Later, over the cap, the oldest silent ones go.
        let d = g.connection_at(addr, t0 + Duration::from_secs(2));
        assert!(notified(&a.evicted) && notified(&b.evicted));
        assert!(!notified(&c.evicted));
        // One that spoke is no longer counted and never evicted.
        c.spoke();
        let _e = g.connection_at(addr, t0 + Duration::from_secs(3));
        let _f = g.connection_at(addr, t0 + Duration::from_secs(3));
        assert!(notified(&d.evicted));
        assert!(!notified(&c.evicted));
        drop((a, b, d));
        assert_eq!(lock(&g.pending).get(&addr).map(VecDeque::len), Some(2));
    }

    #[test]
    fn admission_ceiling() {
        let g = guard();
        let a = g.admit();
        let b = g.admit();
        assert!(a.is_some() && b.is_some());
        assert!(g.admit().is_none());
        drop(a);
        assert!(g.admit().is_some());
    }
}
