//! Connecting and logging in with retries, as a real initiator does when a
//! target asks it to come back later.
//!
//! A target under a login storm answers some logins with status 0x0301
//! SERVICE UNAVAILABLE and closes the connection; the initiator is expected
//! to retry. [`login_with_retry`] does so with exponential backoff and
//! "equal jitter" (half the delay fixed, half random) so that refused
//! initiators do not come back in lockstep. Every attempt is bounded in
//! time, and so is the whole run.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use iscsi_proto::initiator::InitiatorConfig;
use iscsi_proto::login::LoginStatus;
use tokio::time::Instant;

use crate::client::{Client, ClientError};

/// Exponential backoff with jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub initial: Duration,
    /// Ceiling of the delay (before jitter).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(20),
            max: Duration::from_secs(1),
        }
    }
}

impl Backoff {
    /// The delay before retry number `retry` (0-based): `initial * 2^retry`
    /// capped at `max`, of which the upper half is replaced by a random
    /// fraction. `random` is any uniformly distributed value.
    pub fn delay(&self, retry: u32, random: u64) -> Duration {
        let full = self
            .initial
            .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
            .min(self.max);
        let half = full / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let extra = if nanos == 0 { 0 } else { random % (nanos + 1) };
        half + Duration::from_nanos(extra)
    }
}

/// A random `u64` for jitter, from the standard library's per-process
/// random hash keys (no extra dependency; not for cryptography).
pub fn jitter_seed() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// How [`login_with_retry`] behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Bound of one attempt: TCP connect plus the whole login exchange.
    pub attempt_timeout: Duration,
    /// Backoff between attempts.
    pub backoff: Backoff,
    /// Also retry when the connection fails before any login response
    /// (refused, reset, or closed by the target, e.g. because it evicted a
    /// pending login). Off: such failures are final.
    pub retry_closed: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            retry_closed: false,
        }
    }
}

/// Why logging in failed for good.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The TCP connection could not be opened.
    #[error("connect: {0}")]
    Connect(io::Error),
    /// One attempt (connect and login) took longer than its bound.
    #[error("attempt timed out after {0:?}")]
    Timeout(Duration),
    /// The login failed: refused with a status, closed, or broken.
    #[error("login: {0}")]
    Login(ClientError),
    /// The overall deadline passed while waiting to retry.
    #[error("deadline passed before a retry")]
    Deadline,
}

impl LoginError {
    /// The status of a refused login.
    pub fn login_status(&self) -> Option<LoginStatus> {
        match self {
            Self::Login(e) => e.login_status(),
            _ => None,
        }
    }
}

/// What [`login_with_retry`] went through.
#[derive(Debug)]
pub struct LoginRun {
    /// The logged-in client, or the final error.
    pub result: Result<Client, LoginError>,
    /// Logins answered 0x0301 SERVICE UNAVAILABLE and retried.
    pub deferrals: u32,
    /// Connections that failed before a login response and were retried
    /// (only with [`RetryPolicy::retry_closed`]).
    pub reconnects: u32,
}

/// One attempt: connect and log in, bounded by `bound`.
async fn attempt(
    addr: SocketAddr,
    cfg: &InitiatorConfig,
    bound: Duration,
) -> Result<Client, LoginError> {
    let run = async {
        let mut client = Client::connect(addr).await.map_err(LoginError::Connect)?;
        client.login(cfg.clone()).await.map_err(LoginError::Login)?;
        Ok(client)
    };
    tokio::time::timeout(bound, run)
        .await
        .unwrap_or(Err(LoginError::Timeout(bound)))
}

/// Whether `e` is a transport failure before the login got an answer.
fn retryable_transport(e: &LoginError) -> bool {
    match e {
        LoginError::Connect(_) => true,
        LoginError::Login(c) => c.is_connection_closed(),
        _ => false,
    }
}

/// Connects to `addr` and logs in with `cfg`, retrying 0x0301 answers (and,
/// with `retry_closed`, early transport failures) with jittered backoff
/// until `deadline`. Each attempt is bounded by `policy.attempt_timeout`
/// and never runs past `deadline`.
pub async fn login_with_retry(
    addr: SocketAddr,
    cfg: &InitiatorConfig,
    policy: &RetryPolicy,
    deadline: Instant,
) -> LoginRun {
    let mut run = LoginRun {
        result: Err(LoginError::Deadline),
        deferrals: 0,
        reconnects: 0,
    };
    let mut retry = 0u32;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return run;
        }
        let bound = policy.attempt_timeout.min(left);
        match attempt(addr, cfg, bound).await {
            Ok(client) => {
                run.result = Ok(client);
                return run;
            }
            Err(e) => {
                if e.login_status() == Some(LoginStatus::SERVICE_UNAVAILABLE) {
                    run.deferrals += 1;
                } else if policy.retry_closed && retryable_transport(&e) {
                    run.reconnects += 1;
                } else {
                    run.result = Err(e);
                    return run;
                }
                let pause = policy.backoff.delay(retry, jitter_seed());
                retry = retry.saturating_add(1);
                if Instant::now() + pause >= deadline {
                    // Report what actually happened rather than a bare deadline.
                    run.result = Err(e);
                    return run;
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters_within_bounds() {
        let b = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
        };
        assert_eq!(b.delay(0, 0), Duration::from_millis(5));
        assert_eq!(b.delay(1, 0), Duration::from_millis(10));
        assert_eq!(b.delay(3, 0), Duration::from_millis(40));
        assert_eq!(b.delay(10, 0), Duration::from_millis(50));
        assert_eq!(b.delay(1000, 0), Duration::from_millis(50));
        for r in [1, 12345, u64::MAX, jitter_seed()] {
            let d = b.delay(2, r);
            assert!(
                d >= Duration::from_millis(20) && d <= Duration::from_millis(40),
                "{d:?}"
            );
        }
    }

    #[test]
    fn jitter_varies() {
        let seeds: std::collections::HashSet<u64> = (0..16).map(|_| jitter_seed()).collect();
        assert!(seeds.len() > 1);
    }

    #[tokio::test]
    async fn refused_connection_fails_without_retry_by_default() {
        // A port nobody listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("ephemeral port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let cfg = InitiatorConfig::new("iqn.2026-11.org.ironsan.test:x", Some("iqn.t"));
        let deadline = Instant::now() + Duration::from_secs(5);
        let run = login_with_retry(addr, &cfg, &RetryPolicy::default(), deadline).await;
        assert!(matches!(run.result, Err(LoginError::Connect(_))), "{run:?}");
        assert_eq!((run.deferrals, run.reconnects), (0, 0));

        let policy = RetryPolicy {
            retry_closed: true,
            ..RetryPolicy::default()
        };
        let deadline = Instant::now() + Duration::from_millis(300);
        let run = login_with_retry(addr, &cfg, &policy, deadline).await;
        assert!(run.result.is_err());
        assert!(run.reconnects >= 1, "{run:?}");
        assert!(Instant::now() < deadline + Duration::from_millis(200));
    }
}
