//! Clustered-hypervisor SCSI through real sessions: COMPARE AND WRITE from
//! two sessions racing on the same blocks, and persistent reservations
//! seen across sessions.

mod common;

use common::{bounded, chap, pattern, TargetOptions, TestTarget, BLOCK, CHAP_SECRET};

/// COMPARE AND WRITE of `blocks` blocks at `lba`.
fn caw(lba: u64, blocks: u8) -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = 0x89;
    cdb[2..10].copy_from_slice(&lba.to_be_bytes());
    cdb[13] = blocks;
    cdb
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_compare_and_write_has_exactly_one_winner_per_round() {
    bounded(async {
        let t = TestTarget::start("caw", TargetOptions::default()).await;
        let mut a = t.login(t.initiator(Some(chap(CHAP_SECRET, None)))).await;
        let mut b = t.login(t.initiator(Some(chap(CHAP_SECRET, None)))).await;
        const LBA: u64 = 64;
        const BLOCKS: u8 = 16;
        let len = usize::from(BLOCKS) * BLOCK as usize;
        let mut current = pattern(1, len);
        let w = a
            .write(0, LBA as u32, &current, BLOCK)
            .await
            .expect("initial write");
        assert!(w.is_good(), "{w:?}");
        let (mut wins_a, mut wins_b) = (0, 0);
        for round in 0..100u32 {
            let mine_a = pattern(1000 + 2 * round, len);
            let mine_b = pattern(1001 + 2 * round, len);
            let data_a = [current.as_slice(), mine_a.as_slice()].concat();
            let data_b = [current.as_slice(), mine_b.as_slice()].concat();
            let (ra, rb) = tokio::join!(
                a.command(0, caw(LBA, BLOCKS), 0, &data_a),
                b.command(0, caw(LBA, BLOCKS), 0, &data_b)
            );
            let (ra, rb) = (ra.expect("CAW a"), rb.expect("CAW b"));
            let winner = match (ra.is_good(), rb.is_good()) {
                (true, false) => {
                    wins_a += 1;
                    assert_eq!(rb.sense_code(), Some((0x0e, 0x1d, 0x00)), "loser: {rb:?}");
                    mine_a
                }
                (false, true) => {
                    wins_b += 1;
                    assert_eq!(ra.sense_code(), Some((0x0e, 0x1d, 0x00)), "loser: {ra:?}");
                    mine_b
                }
                _ => panic!("round {round}: exactly one must win: {ra:?} / {rb:?}"),
            };
            let r = a
                .read(0, LBA as u32, u16::from(BLOCKS), BLOCK)
                .await
                .expect("read back");
            assert_eq!(
                r.data, winner,
                "round {round}: the blocks hold the winner's data, whole"
            );
            current = winner;
        }
        assert_eq!(wins_a + wins_b, 100);
    })
    .await;
}

/// PERSISTENT RESERVE OUT with a 24-byte parameter list.
fn prout(service_action: u8, pr_type: u8) -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = 0x5f;
    cdb[1] = service_action;
    cdb[2] = pr_type;
    cdb[8] = 24;
    cdb
}

fn prout_params(key: u64, sa_key: u64) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_exclusive_reservation_blocks_the_other_session() {
    bounded(async {
        let t = TestTarget::start("pr", TargetOptions::default()).await;
        let mut a = t.login(t.initiator(Some(chap(CHAP_SECRET, None)))).await;
        let mut b = t.login(t.initiator(Some(chap(CHAP_SECRET, None)))).await;
        // Clear the unit attentions of a fresh LU view, if any.
        for c in [&mut a, &mut b] {
            let _ = c.command(0, [0u8; 16], 0, &[]).await;
        }
        let reg = a
            .command(0, prout(0x00, 0), 0, &prout_params(0, 0xaa))
            .await
            .expect("REGISTER");
        assert!(reg.is_good(), "{reg:?}");
        // RESERVE, type 1 = Write Exclusive.
        let res = a
            .command(0, prout(0x01, 1), 0, &prout_params(0xaa, 0))
            .await
            .expect("RESERVE");
        assert!(res.is_good(), "{res:?}");
        let blocked = b
            .write(0, 8, &pattern(9, 512), BLOCK)
            .await
            .expect("write from b");
        assert_eq!(
            blocked.status, 0x18,
            "RESERVATION CONFLICT expected: {blocked:?}"
        );
        let read = b.read(0, 8, 1, BLOCK).await.expect("read from b");
        assert!(
            read.is_good(),
            "reads stay allowed under Write Exclusive: {read:?}"
        );
        let mine = a
            .write(0, 8, &pattern(10, 512), BLOCK)
            .await
            .expect("write from a");
        assert!(mine.is_good(), "{mine:?}");
        // READ KEYS from the other session shows the registration.
        let mut keys = [0u8; 16];
        keys[0] = 0x5e;
        keys[8] = 64;
        let k = b.command(0, keys, 64, &[]).await.expect("READ KEYS");
        assert!(k.is_good(), "{k:?}");
        assert_eq!(&k.data[8..16], &0xaau64.to_be_bytes());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_match_the_workload_per_initiator_portal_and_lun() {
    bounded(async {
        let t = TestTarget::start("metrics", TargetOptions::default()).await;
        let mut c = t.login(t.initiator(Some(chap(CHAP_SECRET, None)))).await;
        let _ = c.command(0, [0u8; 16], 0, &[]).await;
        let before = t.control.metrics().render();
        for i in 0..10u32 {
            let w = c
                .write(0, i * 16, &pattern(i, 8192), BLOCK)
                .await
                .expect("write");
            assert!(w.is_good(), "{w:?}");
        }
        for i in 0..5u32 {
            let r = c.read(0, i * 16, 8, BLOCK).await.expect("read");
            assert!(r.is_good(), "{r:?}");
        }
        let text = t.control.metrics().render();
        assert_ne!(before, text);
        let initiator = common::INITIATOR_IQN.to_ascii_lowercase();
        let portal = t.addr.to_string();
        for labels in [
            format!("initiator=\"{initiator}\""),
            format!("portal=\"{portal}\""),
            format!("target=\"{}\",lun=\"0\"", common::TARGET_IQN),
        ] {
            let prefix = if labels.starts_with("initiator") {
                "initiator"
            } else if labels.starts_with("portal") {
                "portal"
            } else {
                "lun"
            };
            let line = |metric: &str| format!("ironsan_{prefix}_{metric}{{{labels}}}");
            assert!(
                text.contains(&format!("{} 81920", line("write_bytes_total"))),
                "{labels}\n{text}"
            );
            assert!(
                text.contains(&format!("{} 20480", line("read_bytes_total"))),
                "{labels}\n{text}"
            );
            let cmds =
                |kind: &str| format!("ironsan_{prefix}_commands_total{{{labels},kind=\"{kind}\"}}");
            assert!(
                text.contains(&format!("{} 10", cmds("write"))),
                "{labels}\n{text}"
            );
            assert!(
                text.contains(&format!("{} 5", cmds("read"))),
                "{labels}\n{text}"
            );
        }
        assert!(
            text.contains(&format!(
                "ironsan_initiator_sessions{{initiator=\"{initiator}\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains("ironsan_logins_total{outcome=\"success\",reason=\"ok\"} 1"),
            "{text}"
        );
    })
    .await;
}
