//! `ironsan-load`: a login storm against one iSCSI target.
//!
//! Opens `--sessions` sessions at once, each from its own initiator name,
//! logs them in (retrying 0x0301 SERVICE UNAVAILABLE with jittered backoff),
//! does `--io` verified 4 KiB write + read pairs per session, logs out, and
//! reports successes, failures by reason, retries, login latency
//! percentiles, wall time and logins per second. `--victim` keeps one
//! session doing I/O through the storm and reports its latency and errors.
//!
//! Everything is bounded: each attempt by `--attempt-timeout`, each command
//! by `--op-timeout`, the whole run by `--timeout`. Traffic goes only to the
//! one address given.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use initiator::load::{chap, run_storm, StormConfig};
use initiator::retry::{Backoff, RetryPolicy};

/// Login storm against an iSCSI target, with I/O and latency percentiles.
#[derive(Debug, Parser)]
#[command(name = "ironsan-load", version)]
struct Args {
    /// Target portal (address:port).
    #[arg(long, default_value = "127.0.0.1:3260")]
    addr: SocketAddr,
    /// TargetName (IQN) to log in to.
    #[arg(long)]
    target: String,
    /// Logical unit for I/O (tgtd exports its first disk as LUN 1).
    #[arg(long, default_value_t = 0)]
    lun: u64,
    /// Sessions started at once, each from a distinct initiator name.
    #[arg(long, default_value_t = 100)]
    sessions: usize,
    /// Verified 4 KiB write + read pairs per session (0: login and logout only).
    #[arg(long, default_value_t = 1)]
    io: u32,
    /// Keep one victim session doing I/O during the storm; report its latency.
    #[arg(long)]
    victim: bool,
    /// CHAP user shared by all sessions (target ACL `initiator = "*"`).
    #[arg(long, requires = "chap_secret")]
    chap_user: Option<String>,
    /// CHAP secret (prefer the environment variable over the command line).
    #[arg(long, env = "IRONSAN_LOAD_CHAP_SECRET", hide_env_values = true)]
    chap_secret: Option<String>,
    /// Initiator names are PREFIX:s<n> and PREFIX:victim.
    #[arg(long, default_value = "iqn.2026-11.org.ironsan.load")]
    initiator_prefix: String,
    /// Bound of the whole run (e.g. 60s, 500ms, 2m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    /// Bound of one connect + login attempt.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    attempt_timeout: Duration,
    /// Bound of each command and of logout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    op_timeout: Duration,
    /// First backoff after a 0x0301 answer (doubles per retry, jittered).
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    backoff: Duration,
    /// Largest backoff.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    backoff_max: Duration,
    /// Also retry connections that fail or close before any login response.
    #[arg(long)]
    retry_closed: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// `60s`, `500ms`, `2m` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Raises the soft open-file limit to the hard limit: every session is a
/// socket. Returns the soft limit in force afterwards.
fn raise_nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we own; the pointer is valid.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the rlimit we own; the pointer is valid.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    Some(lim.rlim_cur)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let needed = args.sessions as u64 + 64;
    match raise_nofile_limit() {
        Some(limit) if limit < needed => eprintln!(
            "ironsan-load: warning: open-file limit {limit} is below the {needed} sockets \
             this storm needs; expect connect failures (raise `ulimit -Hn`)"
        ),
        None => eprintln!("ironsan-load: warning: could not read the open-file limit"),
        _ => {}
    }
    let mut cfg = StormConfig::new(args.addr, args.target);
    cfg.lun = args.lun;
    cfg.sessions = args.sessions;
    cfg.io = args.io;
    cfg.victim = args.victim;
    cfg.initiator_prefix = args.initiator_prefix;
    cfg.timeout = args.timeout;
    cfg.op_timeout = args.op_timeout;
    cfg.retry = RetryPolicy {
        attempt_timeout: args.attempt_timeout,
        backoff: Backoff {
            initial: args.backoff,
            max: args.backoff_max,
        },
        retry_closed: args.retry_closed,
    };
    cfg.chap = match (&args.chap_user, &args.chap_secret) {
        (Some(user), Some(secret)) => Some(chap(user, secret.as_bytes())),
        (None, None) => None,
        _ => {
            eprintln!("ironsan-load: --chap-user and --chap-secret go together");
            return ExitCode::from(2);
        }
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ironsan-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // run_storm bounds itself by cfg.timeout; the outer bound is a backstop.
    let bound = cfg.timeout + Duration::from_secs(5);
    let report = runtime.block_on(async { tokio::time::timeout(bound, run_storm(&cfg)).await });
    let Ok(report) = report else {
        eprintln!("ironsan-load: the storm did not finish within {bound:?}");
        return ExitCode::FAILURE;
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    let victim_ok = report
        .victim
        .as_ref()
        .is_none_or(|v| v.logged_in && v.error.is_none());
    if report.failed() == 0 && victim_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
        let a = Args::try_parse_from(["ironsan-load", "--target", "iqn.t", "--sessions", "5"])
            .expect("parses");
        assert_eq!((a.sessions, a.io, a.victim), (5, 1, false));
        assert!(
            Args::try_parse_from(["ironsan-load", "--target", "t", "--chap-user", "u"]).is_err()
        );
    }
}
