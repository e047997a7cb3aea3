//! Loopback integration tests: a real target on 127.0.0.1 driven by the
//! `ironsan-initiator` client, over TCP, with file-backed LUNs.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    bounded, chap, pattern, Client, ClientError, TargetOptions, TestTarget, BLOCK, CHAP_SECRET,
    CLOSE_BOUND, INITIATOR_IQN, MUTUAL_SECRET, TARGET_IQN,
};
use iscsi_proto::initiator::{InitiatorConfig, InitiatorError, InitiatorLogin};
use iscsi_proto::login::LoginStatus;
use iscsi_proto::negotiation::Digest;
use iscsi_proto::pdu::{encode_login_request, Bhs, Opcode, ScsiCommand, TmfFunction, BHS_LEN};

/// Digest mismatch reported as CHECK CONDITION: ABORTED COMMAND, PROTOCOL SERVICE CRC ERROR.
const CRC_ERROR_SENSE: (u8, u8, u8) = (0x0b, 0x47, 0x05);
/// Reject reason: data (payload) digest error.
const REJECT_DATA_DIGEST: u8 = 0x02;
/// A target configuration that answers every write with R2Ts.
const R2T_ONLY: &str = "immediate_data = false\ninitial_r2t = true";

fn expect_login_status(result: Result<(), ClientError>, status: LoginStatus) {
    match result {
        Err(ClientError::Login(InitiatorError::Rejected(s))) => assert_eq!(s, status),
        other => panic!("expected login status {:#06x}, got {other:?}", status.0),
    }
}

/// Writes `data` at `lba` and reads it back, asserting both succeed.
async fn write_and_verify(client: &mut Client, lba: u32, data: &[u8]) -> common::CommandOutcome {
    let w = client.write(0, lba, data, BLOCK).await.expect("write");
    assert_eq!((w.status, w.response), (0, 0), "write failed: {w:?}");
    assert!(w.rejects.is_empty(), "{w:?}");
    let blocks = (data.len() / BLOCK as usize) as u16;
    let r = client.read(0, lba, blocks, BLOCK).await.expect("read");
    assert_eq!(r.status, 0, "read failed: {:?}", r.sense_code());
    assert!(r.data == data, "read back differs from what was written");
    w
}

/// Reads `len` bytes at `lba` and asserts they equal `expected`.
async fn assert_content(client: &mut Client, lba: u32, expected: &[u8]) {
    let blocks = (expected.len() / BLOCK as usize) as u16;
    let r = client.read(0, lba, blocks, BLOCK).await.expect("read");
    assert_eq!(r.status, 0, "read failed: {:?}", r.sense_code());
    assert!(r.data == expected, "unexpected content at LBA {lba}");
}

async fn assert_closed_promptly(client: &mut Client) -> Vec<initiator::Pdu> {
    tokio::time::timeout(CLOSE_BOUND, client.wait_closed())
        .await
        .expect("the target did not close the connection in time")
        .expect("clean close")
}

// 1. Authentication.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_without_chap_to_chap_target_fails() {
    bounded(async {
        let t = TestTarget::start("nochap", TargetOptions::default()).await;
        let mut c = t.connect().await;
        expect_login_status(c.login(t.initiator(None)).await, LoginStatus::AUTH_FAILURE);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_wrong_chap_secret_fails() {
    bounded(async {
        let t = TestTarget::start("badchap", TargetOptions::default()).await;
        let mut c = t.connect().await;
        let cfg = t.initiator(Some(chap("not-the-right-secret", None)));
        expect_login_status(c.login(cfg).await, LoginStatus::AUTH_FAILURE);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_chap_login_succeeds() {
    bounded(async {
        let t = TestTarget::start("chap", TargetOptions::default()).await;
        let mut c = t.login(t.initiator(Some(chap(CHAP_SECRET, None)))).await;
        assert_ne!(c.tsih, 0);
        write_and_verify(&mut c, 0, &pattern(1, 4096)).await;
        assert_eq!(c.logout().await.expect("logout"), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_chap_login_verifies_the_target() {
    bounded(async {
        let t = TestTarget::start("mutual", TargetOptions::default()).await;
        // The client checks the target's CHAP_N/CHAP_R against the mutual secret.
        let mut c = t
            .login(t.initiator(Some(chap(CHAP_SECRET, Some(MUTUAL_SECRET)))))
            .await;
        write_and_verify(&mut c, 8, &pattern(2, 2048)).await;
        // A client expecting another mutual secret refuses the target's answer.
        let mut impostor = t.connect().await;
        let cfg = t.initiator(Some(chap(CHAP_SECRET, Some("some-other-secret"))));
        match impostor.login(cfg).await {
            Err(ClientError::Login(InitiatorError::MutualAuthFailed)) => {}
            other => panic!("mutual CHAP with a wrong secret: {other:?}"),
        }
        assert_eq!(c.logout().await.expect("logout"), 0);
    })
    .await;
}

// 2. Digests and the three ways write data arrives.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_immediate_unsolicited_and_solicited_writes_read_back() {
    bounded(async {
        let t = TestTarget::start("digests", TargetOptions::default()).await;
        let mut cfg = t.initiator_with_digests();
        // Small Data-In PDUs: every read spans many digest-checked PDUs.
        cfg.offer.max_recv_data_segment_length = 16384;
        let mut c = t.login(cfg).await;
        assert_eq!(
            (
                c.params.header_digest.as_str(),
                c.params.data_digest.as_str()
            ),
            ("CRC32C", "CRC32C")
        );
        assert!(c.params.immediate_data && !c.params.initial_r2t);

        // Fits in immediate data: no Data-Out at all.
        let w = write_and_verify(&mut c, 0, &pattern(3, 8 * BLOCK as usize)).await;
        assert_eq!((w.immediate, w.data_outs, w.r2ts), (4096, 0, 0));

        // Larger than FirstBurstLength: immediate data, unsolicited Data-Out
        // up to the first burst, then R2T-solicited Data-Out.
        let big = pattern(4, 512 * 1024);
        let w = write_and_verify(&mut c, 64, &big).await;
        assert!(w.immediate > 0, "{w:?}");
        assert!(w.r2ts >= 1 && w.data_outs >= 2, "{w:?}");
        // Reading both again in one command crosses the two writes.
        let r = c.read(0, 0, 64 + 1024, BLOCK).await.expect("read");
        assert_eq!(r.status, 0);
        assert!(r.data[64 * BLOCK as usize..] == big[..]);
        assert_eq!(c.logout().await.expect("logout"), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_r2t_only_writes_read_back() {
    bounded(async {
        let opts = TargetOptions {
            iscsi: "immediate_data = false\ninitial_r2t = true\n\
                    max_burst_length = 65536\nfirst_burst_length = 65536",
            ..TargetOptions::default()
        };
        let t = TestTarget::start("r2t", opts).await;
        let mut c = t.login(t.initiator_with_digests()).await;
        assert!(!c.params.immediate_data && c.params.initial_r2t);
        let data = pattern(5, 256 * 1024);
        let w = write_and_verify(&mut c, 16, &data).await;
        // MaxBurstLength 64 KiB: four R2Ts, no unsolicited data.
        assert_eq!((w.immediate, w.r2ts), (0, 4), "{w:?}");
        assert_eq!(c.logout().await.expect("logout"), 0);
    })
    .await;
}

// 3. Data digest errors.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_data_out_digest_is_rejected_and_session_survives() {
    bounded(async {
        let opts = TargetOptions {
            iscsi: R2T_ONLY,
            ..TargetOptions::default()
        };
        let t = TestTarget::start("dd-dataout", opts).await;
        let mut c = t.login(t.initiator_with_digests()).await;
        let before = pattern(6, 256 * 1024);
        write_and_verify(&mut c, 100, &before).await;

        // Two Data-Out PDUs answer the R2T; the first one's digest is wrong.
        c.corrupt_next_data_digest();
        let w = c
            .write(0, 100, &pattern(7, 256 * 1024), BLOCK)
            .await
            .expect("write");
        assert_eq!(w.rejects, vec![REJECT_DATA_DIGEST], "{w:?}");
        assert_eq!(w.status, 2, "CHECK CONDITION expected: {w:?}");
        assert_eq!(w.sense_code(), Some(CRC_ERROR_SENSE), "{w:?}");
        assert!(w.r2ts >= 1, "{w:?}");

        // The failed write changed nothing and the session keeps working.
        assert_content(&mut c, 100, &before).await;
        write_and_verify(&mut c, 100, &pattern(8, 4096)).await;
        assert_eq!(c.logout().await.expect("logout"), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_immediate_data_digest_is_rejected_and_session_survives() {
    bounded(async {
        let t = TestTarget::start("dd-immediate", TargetOptions::default()).await;
        let mut c = t.login(t.initiator_with_digests()).await;
        let before = pattern(9, 4096);
        write_and_verify(&mut c, 200, &before).await;

        c.corrupt_next_data_digest();
        let w = c
            .write(0, 200, &pattern(10, 4096), BLOCK)
            .await
            .expect("write");
        assert_eq!(w.immediate, 4096);
        assert_eq!(w.rejects, vec![REJECT_DATA_DIGEST], "{w:?}");
        assert_eq!(w.status, 2, "CHECK CONDITION expected: {w:?}");
        assert_eq!(w.sense_code(), Some(CRC_ERROR_SENSE), "{w:?}");

        assert_content(&mut c, 200, &before).await;
        write_and_verify(&mut c, 200, &pattern(11, 4096)).await;
        assert_eq!(c.logout().await.expect("logout"), 0);
    })
    .await;
}

// 4. Bad input.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_opcode_is_rejected_and_session_continues() {
    bounded(async {
        let t = TestTarget::start("opcode", TargetOptions::default()).await;
        let mut c = t.login(t.initiator_with_digests()).await;
        let mut bhs = Bhs::new(Opcode(0x1c));
        bhs.0[0] |= 0x40;
        bhs.0[1] = 0x80;
        let itt = c.next_itt();
        bhs.set_u32(16, itt);
        bhs.set_u32(24, c.cmd_sn());
        c.send(&bhs, &[]).await.expect("send");
        let reject = c.recv_response().await.expect("reject");
        assert_eq!(reject.bhs.opcode(), Opcode::REJECT);
        assert!(
            matches!(reject.byte(2), 0x04 | 0x05),
            "reason {:#x}",
            reject.byte(2)
        );
        // The Reject carries the offending header.
        assert_eq!(reject.data.len(), BHS_LEN);
        assert_eq!(reject.data[..], bhs.0[..]);

        assert_eq!(
            c.ping(b"still there?").await.expect("ping"),
            b"still there?"
        );
        write_and_verify(&mut c, 0, &pattern(12, 1024)).await;
        assert_eq!(c.logout().await.expect("logout"), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_data_segment_closes_connection() {
    bounded(async {
        let t = TestTarget::start("bigdsl", TargetOptions::default()).await;
        let mut c = t.login(t.initiator_with_digests()).await;
        let mut bhs = ScsiCommand {
            immediate: false,
            final_bit: true,
            read: false,
            write: true,
            attr: 1,
            lun: 0,
            itt: c.next_itt(),
            edtl: 16 << 20,
            cmd_sn: c.cmd_sn(),
            exp_stat_sn: c.exp_stat_sn(),
            cdb: initiator::write10(0, 32768),
        }
        .encode();
        bhs.set_data_segment_len(16 << 20);
        assert!(bhs.data_segment_len() > c.params.target_max_recv_data_segment_length);
        // Only the header: the target must give up without waiting for 16 MiB.
        c.send_header_only(&bhs).await.expect("send");
        let seen = assert_closed_promptly(&mut c).await;
        assert!(
            seen.iter().all(|p| p.bhs.opcode() != Opcode::SCSI_RESPONSE),
            "{seen:?}"
        );
        // The daemon keeps serving.
        let mut again = t.login(t.initiator(Some(chap(CHAP_SECRET, None)))).await;
        assert_eq!(again.ping(b"ok").await.expect("ping"), b"ok");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_login_pdu_closes_connection() {
    bounded(async {
        let t = TestTarget::start("biglogin", TargetOptions::default()).await;
        let mut c = t.connect().await;
        let (hdr, _) = InitiatorLogin::new(t.initiator(Some(chap(CHAP_SECRET, None)))).start();
        let bhs = encode_login_request(&hdr, 16 << 20);
        c.send_header_only(&bhs).await.expect("send");
        let seen = assert_closed_promptly(&mut c).await;
        assert!(seen.is_empty(), "no login response expected: {seen:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_do_not_disturb_a_busy_session() {
    bounded(async {
        let t = TestTarget::start("busy", TargetOptions::default()).await;
        let mut busy = t.login(t.initiator_with_digests()).await;
        let stop = Arc::new(AtomicBool::new(false));
        let io = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut rounds = 0u32;
                while rounds < 10 || !stop.load(Ordering::Acquire) {
                    let lba = (rounds % 64) * 16;
                    write_and_verify(&mut busy, lba, &pattern(100 + rounds, 8192)).await;
                    rounds += 1;
                }
                assert_eq!(busy.logout().await.expect("logout"), 0);
                rounds
            }
        });
        // Eight failures: below the lockout threshold (ten per initiator name).
        for _ in 0..4 {
            let mut bad = t.connect().await;
            let cfg = t.initiator(Some(chap("wrong-secret-wrong", None)));
            expect_login_status(bad.login(cfg).await, LoginStatus::AUTH_FAILURE);
            assert_closed_promptly(&mut bad).await;
            let mut none = t.connect().await;
            expect_login_status(
                none.login(t.initiator(None)).await,
                LoginStatus::AUTH_FAILURE,
            );
        }
        stop.store(true, Ordering::Release);
        let rounds = io.await.expect("the busy session's I/O");
        assert!(rounds >= 10);
        // A good login still works afterwards.
        let mut late = t.login(t.initiator(Some(chap(CHAP_SECRET, None)))).await;
        write_and_verify(&mut late, 2000, &pattern(13, 4096)).await;
    })
    .await;
}

// 5. Discovery.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_send_targets_lists_target_and_portal() {
    bounded(async {
        let t = TestTarget::start("discovery", TargetOptions::default()).await;
        // Discovery authenticates with the initiator's ACL credentials by default.
        let mut anonymous = t.connect().await;
        expect_login_status(
            anonymous
                .login(InitiatorConfig::new(INITIATOR_IQN, None))
                .await,
            LoginStatus::AUTH_FAILURE,
        );
        let mut stranger = t.connect().await;
        expect_login_status(
            stranger
                .login(InitiatorConfig::new(
                    "iqn.2026-11.org.example:stranger",
                    None,
                ))
                .await,
            LoginStatus::AUTHORIZATION_FAILURE,
        );
        let mut c = t.connect().await;
        let mut cfg = InitiatorConfig::new(INITIATOR_IQN, None);
        cfg.chap = Some(chap(CHAP_SECRET, None));
        c.login(cfg).await.expect("discovery login");
        let pairs = c.text("SendTargets=All").await.expect("SendTargets");
        let expected = vec![
            ("TargetName".to_owned(), TARGET_IQN.to_owned()),
            (
                "TargetAddress".to_owned(),
                format!("127.0.0.1:{},1", t.addr.port()),
            ),
        ];
        assert_eq!(pairs, expected);
        assert_eq!(c.logout().await.expect("logout"), 0);
    })
    .await;
}

// 6. Session reinstatement.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_isid_login_reinstates_the_session() {
    bounded(async {
        let t = TestTarget::start("reinstate", TargetOptions::default()).await;
        let cfg = t.initiator(Some(chap(CHAP_SECRET, None)));
        let mut first = t.login(cfg.clone()).await;
        let data = pattern(14, 4096);
        write_and_verify(&mut first, 300, &data).await;

        let mut second = t.login(cfg).await;
        assert_ne!(
            second.tsih, first.tsih,
            "a reinstated session gets a new TSIH"
        );
        assert_closed_promptly(&mut first).await;
        assert_content(&mut second, 300, &data).await;
        assert_eq!(second.logout().await.expect("logout"), 0);
    })
    .await;
}

// 7. NOP-Out and Logout.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nop_out_ping_is_echoed_and_logout_closes() {
    bounded(async {
        let t = TestTarget::start("nop", TargetOptions::default()).await;
        let mut c = t.login(t.initiator_with_digests()).await;
        // 37 bytes: the padding and the data digest must both be right.
        let payload = pattern(15, 37);
        assert_eq!(c.ping(&payload).await.expect("ping"), payload);
        assert_eq!(c.ping(&[]).await.expect("empty ping"), Vec::<u8>::new());
        assert_eq!(c.logout().await.expect("logout"), 0);
        let after = assert_closed_promptly(&mut c).await;
        assert!(
            after.is_empty(),
            "nothing after the logout response: {after:?}"
        );
    })
    .await;
}

// 8. Task management.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_management_lun_reset_and_abort_unknown_task() {
    bounded(async {
        let t = TestTarget::start("tmf", TargetOptions::default()).await;
        let mut c = t.login(t.initiator(Some(chap(CHAP_SECRET, None)))).await;
        write_and_verify(&mut c, 0, &pattern(16, 4096)).await;

        let reset = c
            .task_mgmt(TmfFunction::LOGICAL_UNIT_RESET, 0, 0xffff_ffff, 0)
            .await
            .expect("LUN RESET");
        assert_eq!(reset, 0, "FUNCTION COMPLETE expected");

        // An ITT never used, referring to a CmdSN already completed.
        let done_sn = c.cmd_sn().wrapping_sub(1);
        let abort = c
            .task_mgmt(TmfFunction::ABORT_TASK, 0, 0x00de_ad00, done_sn)
            .await
            .expect("ABORT TASK");
        assert_eq!(abort, 1, "TASK DOES NOT EXIST expected");

        let missing = c
            .task_mgmt(
                TmfFunction::LOGICAL_UNIT_RESET,
                iscsi_proto::pdu::lun_to_sam(7),
                0xffff_ffff,
                0,
            )
            .await
            .expect("LUN RESET of an unmapped LUN");
        assert_eq!(missing, 2, "LUN DOES NOT EXIST expected");

        // The reset left a unit attention for every nexus, this one too (SAM-5 6.6).
        let tur = c
            .command(0, [0u8; 16], 0, &[])
            .await
            .expect("TEST UNIT READY");
        assert_eq!(tur.sense_code(), Some((0x06, 0x29, 0x03)), "{tur:?}");
        write_and_verify(&mut c, 0, &pattern(17, 4096)).await;
        assert_eq!(c.logout().await.expect("logout"), 0);
    })
    .await;
}

// 9. Graceful stop.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_asks_initiators_to_log_out() {
    bounded(async {
        let mut t = TestTarget::start("stop", TargetOptions::default()).await;
        let mut c = t.login(t.initiator_with_digests()).await;
        write_and_verify(&mut c, 0, &pattern(18, 4096)).await;

        t.shutdown();
        let msg = tokio::time::timeout(Duration::from_secs(5), c.recv_response())
            .await
            .expect("no Async Message after shutdown")
            .expect("Async Message");
        assert_eq!(msg.bhs.opcode(), Opcode::ASYNC_MESSAGE);
        assert_eq!(msg.byte(36), 1, "AsyncEvent 1: logout requested");

        assert_eq!(c.logout().await.expect("logout"), 0);
        assert_closed_promptly(&mut c).await;
        assert!(
            t.stopped_within(Duration::from_secs(10)).await,
            "run() did not return after the last initiator logged out"
        );
    })
    .await;
}

// 10. Security: lockout after repeated failures, floods of idle connections.

const OTHER_IQN: &str = "iqn.2026-11.org.example:other";
const OTHER_ACL: &str = r#"
[[target.acl]]
initiator = "iqn.2026-11.org.example:other"
chap_user = "other"
chap_secret = "other-secret-123"

[security]
lockout_delay_ms = 20
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_lock_out_that_initiator_only() {
    bounded(async {
        let opts = TargetOptions {
            extra: OTHER_ACL,
            ..TargetOptions::default()
        };
        let t = TestTarget::start("lockout", opts).await;
        for _ in 0..20 {
            let mut bad = t.connect().await;
            let cfg = t.initiator(Some(chap("wrong-secret-wrong", None)));
            expect_login_status(bad.login(cfg).await, LoginStatus::AUTH_FAILURE);
        }
        // Locked out: even the right secret is refused during the cool-down.
        let mut right = t.connect().await;
        expect_login_status(
            right
                .login(t.initiator(Some(chap(CHAP_SECRET, None))))
                .await,
            LoginStatus::AUTH_FAILURE,
        );
        // Another initiator from the same address logs in and does I/O.
        let mut other = t
            .login(t.other_initiator(OTHER_IQN, "other", "other-secret-123"))
            .await;
        write_and_verify(&mut other, 8, &pattern(7, 4096)).await;
        assert_eq!(other.logout().await.expect("logout"), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_flood_does_not_block_a_real_initiator() {
    bounded(async {
        let t = TestTarget::start("flood", TargetOptions::default()).await;
        let mut idle = Vec::new();
        for _ in 0..500 {
            idle.push(
                tokio::net::TcpStream::connect(t.addr)
                    .await
                    .expect("connect"),
            );
        }
        let mut c =
            tokio::time::timeout(Duration::from_secs(10), t.login(t.initiator_with_digests()))
                .await
                .expect("login while 500 idle connections are open");
        write_and_verify(&mut c, 0, &pattern(3, 16384)).await;
        assert_eq!(c.logout().await.expect("logout"), 0);
        drop(idle);
    })
    .await;
}

// 11. Required digests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_digests_refuse_logins_without_them() {
    bounded(async {
        let opts = TargetOptions {
            digests: "required",
            ..TargetOptions::default()
        };
        let t = TestTarget::start("digests-required", opts).await;
        // An initiator that will not do data digests is refused.
        let mut header_only = t.initiator(Some(chap(CHAP_SECRET, None)));
        header_only.offer.header_digest = vec![Digest::Crc32c];
        header_only.offer.data_digest = vec![Digest::None];
        let mut c = t.connect().await;
        expect_login_status(c.login(header_only).await, LoginStatus::INITIATOR_ERROR);
        // One that offers both (in either order) gets them.
        let mut both = t.initiator(Some(chap(CHAP_SECRET, None)));
        both.offer.header_digest = vec![Digest::None, Digest::Crc32c];
        both.offer.data_digest = vec![Digest::None, Digest::Crc32c];
        let mut c = t.login(both).await;
        write_and_verify(&mut c, 16, &pattern(5, 8192)).await;
        assert_eq!(c.logout().await.expect("logout"), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_digest_mode_accepts_header_only_initiators() {
    bounded(async {
        let opts = TargetOptions {
            digests: "header",
            ..TargetOptions::default()
        };
        let t = TestTarget::start("digests-header", opts).await;
        let mut none = t.initiator(Some(chap(CHAP_SECRET, None)));
        none.offer.header_digest = vec![Digest::None];
        none.offer.data_digest = vec![Digest::None];
        let mut c = t.connect().await;
        expect_login_status(c.login(none).await, LoginStatus::INITIATOR_ERROR);
        let mut header_only = t.initiator(Some(chap(CHAP_SECRET, None)));
        header_only.offer.header_digest = vec![Digest::None, Digest::Crc32c];
        header_only.offer.data_digest = vec![Digest::None];
        let mut c = t.login(header_only).await;
        write_and_verify(&mut c, 32, &pattern(6, 4096)).await;
    })
    .await;
}

// 12. CHAP reflection: an initiator that sends back the target's own
// challenge as its mutual challenge is refused (RFC 7143 section 12.1.3).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflected_chap_challenge_is_refused() {
    use iscsi_proto::chap::ChapAlgorithm;
    use iscsi_proto::login::{LoginRequestHeader, Stage};
    use iscsi_proto::pdu::{encode_login_request, parse_login_response};
    use iscsi_proto::text::{decode_binary, encode_hex, parse_text};

    bounded(async {
        let t = TestTarget::start("reflect", TargetOptions::default()).await;
        let mut c = t.connect().await;
        let hdr = |transit: bool| LoginRequestHeader {
            transit,
            cont: false,
            csg: Stage(0),
            nsg: Stage(1),
            version_max: 0,
            version_min: 0,
            isid: [0x80, 0, 0, 0, 0, 0x42],
            tsih: 0,
            itt: 1,
            cid: 0,
            cmd_sn: 1,
            exp_stat_sn: 0,
        };
        let send = |text: String, transit: bool| {
            let h = hdr(transit);
            (encode_login_request(&h, text.len() as u32), text)
        };
        let first = format!(
            "InitiatorName={}\0TargetName={}\0SessionType=Normal\0AuthMethod=CHAP\0",
            common::INITIATOR_IQN,
            common::TARGET_IQN
        );
        for text in [first, "CHAP_A=5\0".to_string()] {
            let (bhs, data) = send(text, false);
            c.send(&bhs, data.as_bytes()).await.expect("send login");
            let r = c.recv().await.expect("login response");
            assert_eq!(
                parse_login_response(&r.bhs).status.0,
                0,
                "login step refused early"
            );
            if data.starts_with("CHAP_A") {
                let keys: Vec<(String, String)> = parse_text(&r.data)
                    .expect("text")
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let get = |k: &str| {
                    keys.iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone())
                        .expect(k)
                };
                let id: u8 = get("CHAP_I").parse().expect("CHAP_I");
                let challenge = decode_binary(&get("CHAP_C")).expect("CHAP_C");
                let response = ChapAlgorithm::MD5
                    .hash(id, CHAP_SECRET.as_bytes(), &challenge)
                    .expect("MD5");
                // The right response, but the target's own challenge sent back.
                let text = format!(
                    "CHAP_N={}\0CHAP_R={}\0CHAP_I={id}\0CHAP_C={}\0",
                    common::CHAP_USER,
                    encode_hex(&response),
                    encode_hex(&challenge)
                );
                let (bhs, data) = send(text, true);
                c.send(&bhs, data.as_bytes())
                    .await
                    .expect("send CHAP response");
                let r = c.recv().await.expect("final login response");
                assert_eq!(
                    parse_login_response(&r.bhs).status,
                    LoginStatus::AUTH_FAILURE
                );
            }
        }
    })
    .await;
}
