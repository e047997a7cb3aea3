#![allow(clippy::unwrap_used)]
//! Crash consistency: drop the pool without flushing at random points,
//! damage the log tail, reopen, and check that every write acknowledged by
//! a completed flush (or FUA) reads back exactly. Also a real `kill -9` of
//! a child process in the middle of a write/flush loop.

mod common;

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use volume::{Pool, PoolOptions};

const BS: usize = 4096;
const BLOCKS: u64 = 256;

fn stamp(lba: u64, gen: u64) -> Vec<u8> {
    let mut b = pattern(lba * 1_000_003 + gen, BS);
    b[..8].copy_from_slice(&gen.to_le_bytes());
    b[8..16].copy_from_slice(&lba.to_le_bytes());
    b
}

#[test]
fn drop_without_flush_and_damaged_log_tail() {
    let mut rng = Rng(0xC0FFEE);
    let t = TempDir::new("crash");
    // Small checkpoint threshold so checkpoints happen during the run too.
    let opts = PoolOptions {
        checkpoint_log_bytes: 64 << 10,
        ..opts()
    };
    drop(Pool::create_with(&t.pool(), opts.clone()).unwrap());
    {
        let p = Pool::open_with(&t.pool(), opts.clone()).unwrap();
        p.create_volume("v", BLOCKS * BS as u64, BS as u32).unwrap();
    }
    // Durable model: lba -> generation (0 = never written / zeros).
    let mut durable: HashMap<u64, u64> = HashMap::new();
    let mut gen = 0u64;
    for round in 0..40 {
        let pool = Pool::open_with(&t.pool(), opts.clone()).unwrap();
        let dev = pool.device("v").unwrap();
        // Everything durable before must be there.
        for lba in 0..BLOCKS {
            let mut b = vec![0u8; BS];
            dev.read_blocks(lba, &mut b).unwrap();
            let want = durable
                .get(&lba)
                .map_or_else(|| vec![0u8; BS], |&g| stamp(lba, g));
            if b != want {
                let mut g = [0u8; 8];
                g.copy_from_slice(&b[..8]);
                panic!(
                    "round {round}: lba {lba} has gen {} want {:?}",
                    u64::from_le_bytes(g),
                    durable.get(&lba)
                );
            }
        }
        let mut pending: HashMap<u64, u64> = HashMap::new();
        let ops = 20 + rng.below(200);
        let mut log_len_at_flush = pool.stats().log_bytes;
        for _ in 0..ops {
            gen += 1;
            let lba = rng.below(BLOCKS);
            let mut fua = rng.below(20) == 0;
            if rng.below(10) == 0 {
                fua = false;
                dev.unmap(lba, 1).unwrap();
                pending.insert(lba, 0);
            } else {
                dev.write_blocks(lba, &stamp(lba, gen), fua).unwrap();
                pending.insert(lba, gen);
            }
            if fua || rng.below(15) == 0 {
                if !fua {
                    dev.flush().unwrap();
                }
                for (l, g) in pending.drain() {
                    if g == 0 {
                        durable.remove(&l);
                    } else {
                        durable.insert(l, g);
                    }
                }
                log_len_at_flush = pool.stats().log_bytes;
            }
        }
        drop(dev);
        drop(pool); // crash: pending writes are not flushed
                    // Damage the log beyond the last acknowledged commit.
        let wal = t.pool().join("wal");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&wal)
            .unwrap();
        let len = f.metadata().unwrap().len();
        match rng.below(4) {
            0 if len > log_len_at_flush => {
                // Torn tail: cut in the middle of frames written after the flush.
                f.set_len(log_len_at_flush + rng.below(len - log_len_at_flush))
                    .unwrap();
            }
            1 => {
                // Garbage after the end (a torn append of a frame header).
                f.write_all_at(&pattern(gen, 1 + rng.below(100) as usize), len)
                    .unwrap();
            }
            2 => {
                // Zeros after the end (extended but never written).
                f.set_len(len + 4096).unwrap();
            }
            _ => {}
        }
        // Every pending write may or may not have survived; adopt what the
        // pool says after verifying it is one of the two.
        let pool = Pool::open_with(&t.pool(), opts.clone()).unwrap();
        let dev = pool.device("v").unwrap();
        for (lba, g) in pending {
            let mut b = vec![0u8; BS];
            dev.read_blocks(lba, &mut b).unwrap();
            let old = durable
                .get(&lba)
                .map_or_else(|| vec![0u8; BS], |&og| stamp(lba, og));
            let new = if g == 0 { vec![0u8; BS] } else { stamp(lba, g) };
            assert!(
                b == old || b == new,
                "round {round}: lba {lba} is neither old nor new"
            );
            if b == new {
                if g == 0 {
                    durable.remove(&lba);
                } else {
                    durable.insert(lba, g);
                }
            }
        }
        // Make the adopted state durable for the next round's strict check.
        dev.flush().unwrap();
        drop(dev);
        drop(pool);
        if round % 10 == 9 {
            let r = Pool::check(&t.pool(), false).unwrap();
            assert!(r.is_clean(), "round {round}: {r:?}");
        }
    }
    let r = Pool::check(&t.pool(), true).unwrap();
    assert!(r.is_clean(), "{r:?}");
}

/// Not a test by itself: the child side of `kill_9_during_writes`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("IRONSAN_VOLUME_CRASH_CHILD") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let pool = Pool::open_with(&dir.join("pool"), opts()).unwrap();
    let dev = pool.device("v").unwrap();
    let progress = dir.join("progress");
    let mut gen = 0u64;
    loop {
        gen += 1;
        for lba in 0..64u64 {
            dev.write_blocks(lba, &stamp(lba, gen), lba == 7).unwrap();
        }
        dev.flush().unwrap();
        // Record the generation only after its flush returned.
        let tmp = dir.join("progress.tmp");
        std::fs::write(&tmp, gen.to_le_bytes()).unwrap();
        std::fs::rename(&tmp, &progress).unwrap();
    }
}

#[test]
fn kill_9_during_writes() {
    let t = TempDir::new("kill9");
    {
        let p = create(&t.pool());
        p.create_volume("v", 64 * BS as u64, BS as u32).unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("IRONSAN_VOLUME_CRASH_CHILD", t.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let progress = t.path().join("progress");
        // Let it make some progress, then SIGKILL at an arbitrary moment.
        while Instant::now() < deadline {
            if std::fs::read(&progress).map_or(0, |b| b.len()) == 8 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50 + 37 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        let b = std::fs::read(&progress).unwrap();
        let mut g = [0u8; 8];
        g.copy_from_slice(&b);
        let acked = u64::from_le_bytes(g);
        assert!(acked > 0);
        let t0 = Instant::now();
        let pool = open(&t.pool());
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "recovery took {:?}",
            t0.elapsed()
        );
        let dev = pool.device("v").unwrap();
        for lba in 0..64u64 {
            let mut blk = vec![0u8; BS];
            dev.read_blocks(lba, &mut blk).unwrap();
            let mut gb = [0u8; 8];
            gb.copy_from_slice(&blk[..8]);
            let got = u64::from_le_bytes(gb);
            assert!(
                got >= acked && got <= acked + 2,
                "lba {lba}: gen {got}, acknowledged {acked}"
            );
            assert_eq!(blk, stamp(lba, got), "lba {lba}: torn block");
        }
        drop(dev);
        drop(pool);
        std::fs::remove_file(&progress).unwrap();
        let r = Pool::check(&t.pool(), false).unwrap();
        assert!(r.is_clean(), "{r:?}");
    }
}
