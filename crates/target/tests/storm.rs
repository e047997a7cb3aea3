//! Login storm: hundreds of sessions from distinct initiators log in at once
//! (CHAP through one `initiator = "*"` ACL) against a target whose admission
//! ceiling is small. The target must defer the excess with 0x0301 SERVICE
//! UNAVAILABLE rather than fail or drop them, every session must end up
//! logged in, doing verified I/O and logging out, and a session already in
//! full feature phase must keep doing I/O without an error throughout.

mod common;

use std::time::{Duration, Instant};

use common::{TargetOptions, TestTarget, TARGET_IQN};
use initiator::load::{chap, run_storm, StormConfig};
use initiator::retry::{login_with_retry, Backoff, LoginError, RetryPolicy};
use iscsi_proto::initiator::{InitiatorConfig, InitiatorLogin};
use iscsi_proto::login::LoginStatus;
use iscsi_proto::pdu::{encode_login_request, parse_login_response, Opcode};

const SESSIONS: usize = 300;
const STORM_USER: &str = "storm";
const STORM_SECRET: &str = "storm-secret-0123";

/// A shared CHAP account for every initiator, a small admission ceiling, and
/// a pending-login cap per address above the storm size (every session comes
/// from 127.0.0.1).
const STORM_CONFIG: &str = r#"
[[target.acl]]
initiator = "*"
chap_user = "storm"
chap_secret = "storm-secret-0123"

[security]
max_logins_in_progress = 16
max_pending_logins_per_address = 1024
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_storm_is_deferred_not_dropped_and_spares_a_live_session() {
    let target = TestTarget::start(
        "storm",
        TargetOptions {
            extra: STORM_CONFIG,
            ..TargetOptions::default()
        },
    )
    .await;
    let mut cfg = StormConfig::new(target.addr, TARGET_IQN);
    cfg.sessions = SESSIONS;
    cfg.io = 1;
    cfg.victim = true;
    cfg.chap = Some(chap(STORM_USER, STORM_SECRET.as_bytes()));
    cfg.timeout = Duration::from_secs(40);
    cfg.op_timeout = Duration::from_secs(10);
    cfg.retry.backoff = Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(200),
    };
    let started = Instant::now();
    let report = run_storm(&cfg).await;
    eprintln!("{report}");
    assert!(started.elapsed() < Duration::from_secs(45), "{report}");

    assert_eq!(report.failed(), 0, "sessions failed:\n{report}");
    assert_eq!(report.succeeded, SESSIONS, "{report}");
    assert_eq!(report.ios, SESSIONS as u64, "{report}");
    // The ceiling of 16 against 300 simultaneous logins must have deferred
    // some of them: the admission control answered 0x0301 and the retries
    // got through.
    assert!(
        report.deferrals > 0 && report.sessions_deferred > 0,
        "no 0x0301 answers: is the admission ceiling applied?\n{report}"
    );
    let victim = report.victim.as_ref().expect("a victim report");
    assert!(victim.logged_in, "{report}");
    assert_eq!(
        victim.error, None,
        "the live session saw an error:\n{report}"
    );
    assert!(victim.commands > 0, "the victim did no I/O:\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_over_the_ceiling_reports_service_unavailable() {
    // A ceiling of one login in progress, held by a connection that sent its
    // first login request and then stalls in the security stage.
    const ONE: &str = r#"
[[target.acl]]
initiator = "*"
chap_user = "storm"
chap_secret = "storm-secret-0123"

[security]
max_logins_in_progress = 1
"#;
    let target = TestTarget::start(
        "storm-one",
        TargetOptions {
            extra: ONE,
            ..TargetOptions::default()
        },
    )
    .await;
    let storm_initiator = |name: &str| {
        let mut c = InitiatorConfig::new(name, Some(TARGET_IQN));
        c.chap = Some(chap(STORM_USER, STORM_SECRET.as_bytes()));
        c
    };
    common::bounded(async {
        let mut holder = target.connect().await;
        let mut hold = InitiatorLogin::new(storm_initiator("iqn.2026-11.org.ironsan.test:holder"));
        let (hdr, data) = hold.start();
        let bhs = encode_login_request(&hdr, data.len() as u32);
        holder.send(&bhs, &data).await.expect("send login");
        let answer = holder.recv().await.expect("first login response");
        assert_eq!(answer.bhs.opcode(), Opcode::LOGIN_RESPONSE);
        let status = parse_login_response(&answer.bhs).status;
        assert_eq!(status, LoginStatus::SUCCESS, "the holder was admitted");

        // A deadline shorter than the first backoff: the 0x0301 is reported
        // instead of retried.
        let policy = RetryPolicy {
            backoff: Backoff {
                initial: Duration::from_secs(10),
                max: Duration::from_secs(10),
            },
            ..RetryPolicy::default()
        };
        let late = storm_initiator("iqn.2026-11.org.ironsan.test:late");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let run = login_with_retry(target.addr, &late, &policy, deadline).await;
        assert_eq!(run.deferrals, 1, "{run:?}");
        match &run.result {
            Err(e @ LoginError::Login(_)) => {
                assert_eq!(e.login_status(), Some(LoginStatus::SERVICE_UNAVAILABLE))
            }
            other => panic!("expected a 0x0301 refusal, got {other:?}"),
        }

        // Once the holder goes away its slot is free again.
        drop(holder);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let run = login_with_retry(target.addr, &late, &RetryPolicy::default(), deadline).await;
        let mut client = run.result.expect("login after the slot is freed");
        assert_eq!(client.logout().await.expect("logout"), 0);
    })
    .await;
}
