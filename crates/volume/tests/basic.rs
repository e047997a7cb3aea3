#![allow(clippy::unwrap_used)]
//! Functional tests of the public API.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::*;
use scsi::{BlockDevice, DeviceErrorKind};
use volume::{ErrorKind, ObjectKind, Pool};

const K4: usize = 4096;

fn read(dev: &dyn BlockDevice, lba: u64, blocks: usize) -> Vec<u8> {
    let mut b = vec![0u8; blocks * dev.block_size() as usize];
    dev.read_blocks(lba, &mut b).unwrap();
    b
}

#[test]
fn thin_volume_write_read_persist() {
    let t = TempDir::new("basic");
    let pool = create(&t.pool());
    pool.create_volume("big", 1 << 40, 4096).unwrap();
    assert!(disk_usage(&t.pool()) < 1 << 20, "1 TiB volume must be thin");
    let dev = pool.device("big").unwrap();
    assert_eq!(dev.num_blocks(), (1 << 40) / 4096);
    assert!(dev.is_thin());
    let a = pattern(1, 3 * K4);
    dev.write_blocks(10, &a, false).unwrap();
    let last = dev.num_blocks() - 1;
    dev.write_blocks(last, &a[..K4], true).unwrap();
    assert_eq!(read(&*dev, 10, 3), a);
    assert_eq!(read(&*dev, 9, 1), vec![0u8; K4]);
    assert_eq!(
        dev.read_blocks(last + 1, &mut [0u8; K4]).unwrap_err().kind,
        DeviceErrorKind::OutOfRange
    );
    // Flush, "crash" (drop without close), reopen.
    dev.write_blocks(20, &a[..K4], false).unwrap();
    dev.flush().unwrap();
    drop(dev);
    drop(pool);
    let pool = open(&t.pool());
    let dev = pool.device("big").unwrap();
    assert_eq!(read(&*dev, 10, 3), a);
    assert_eq!(read(&*dev, 20, 1), &a[..K4]);
    assert_eq!(read(&*dev, last, 1), &a[..K4]);
    drop(dev);
    pool.close().unwrap();
    let pool = open(&t.pool());
    assert_eq!(read(&*pool.device("big").unwrap(), 10, 3), a);
    assert!(
        Pool::check(&t.pool(), false).is_err(),
        "check needs the pool closed"
    );
    drop(pool);
    let r = Pool::check(&t.pool(), false).unwrap();
    assert!(r.is_clean(), "{r:?}");
}

#[test]
fn errors_and_names() {
    let t = TempDir::new("errors");
    let pool = create(&t.pool());
    assert_eq!(Pool::open(&t.pool()).err().unwrap().kind, ErrorKind::InUse);
    assert_eq!(
        Pool::create(&t.pool()).err().unwrap().kind,
        ErrorKind::InUse
    );
    assert_eq!(
        Pool::open(&t.path().join("nope")).err().unwrap().kind,
        ErrorKind::NotFound
    );
    let k = |r: Result<(), volume::VolumeError>| r.unwrap_err().kind;
    assert_eq!(
        k(pool.create_volume("a/b", 1 << 20, 512)),
        ErrorKind::InvalidName
    );
    assert_eq!(
        k(pool.create_volume(&"x".repeat(65), 1 << 20, 512)),
        ErrorKind::InvalidName
    );
    assert_eq!(
        k(pool.create_volume("v", 1000, 512)),
        ErrorKind::InvalidSize
    );
    assert_eq!(k(pool.create_volume("v", 0, 512)), ErrorKind::InvalidSize);
    assert_eq!(
        k(pool.create_volume("v", 1 << 20, 1000)),
        ErrorKind::InvalidSize
    );
    pool.create_volume("v", 1 << 20, 512).unwrap();
    assert_eq!(
        k(pool.create_volume("v", 1 << 20, 512)),
        ErrorKind::AlreadyExists
    );
    assert_eq!(k(pool.create_snapshot("nope", "s")), ErrorKind::NotFound);
    assert_eq!(
        k(pool.create_snapshot("v", "bad@name")),
        ErrorKind::InvalidName
    );
    pool.create_snapshot("v", "s").unwrap();
    assert_eq!(k(pool.create_snapshot("v", "s")), ErrorKind::AlreadyExists);
    assert_eq!(k(pool.delete_snapshot("v", "nope")), ErrorKind::NotFound);
    assert_eq!(
        k(pool.clone_snapshot("v", "nope", "c")),
        ErrorKind::NotFound
    );
    assert_eq!(
        k(pool.resize_volume("v", 1 << 19, false)),
        ErrorKind::InvalidSize
    );
    let dev = pool.device("v").unwrap();
    assert_eq!(k(pool.delete_volume("v")), ErrorKind::InUse);
    drop(dev);
    pool.delete_volume("v").unwrap();
    assert_eq!(k(pool.delete_volume("v")), ErrorKind::NotFound);
    assert!(pool.device("v").is_err());
    assert!(pool.list().is_empty());
    // Error messages carry context.
    let e = pool.create_snapshot("missing", "s").unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
}

#[test]
fn snapshots_clones_rollback() {
    let t = TempDir::new("snap");
    let pool = create(&t.pool());
    pool.create_volume("v", 64 * K4 as u64, 4096).unwrap();
    let dev = pool.device("v").unwrap();
    let a = pattern(1, 8 * K4);
    let b = pattern(2, 4 * K4);
    dev.write_blocks(0, &a, false).unwrap();
    pool.create_snapshot("v", "s1").unwrap();
    dev.write_blocks(2, &b, false).unwrap();
    dev.unmap(0, 1).unwrap();
    // Clone sees the snapshot, volume sees the new data.
    pool.clone_snapshot("v", "s1", "c1").unwrap();
    let c1 = pool.device("c1").unwrap();
    assert_eq!(read(&*c1, 0, 8), a);
    let mut expect = a.clone();
    expect[2 * K4..6 * K4].copy_from_slice(&b);
    expect[..K4].fill(0);
    assert_eq!(read(&*dev, 0, 8), expect);
    // Clone writes are private; clone of clone.
    c1.write_blocks(7, &b[..K4], false).unwrap();
    pool.create_snapshot("c1", "cs").unwrap();
    pool.clone_snapshot("c1", "cs", "c2").unwrap();
    let c2 = pool.device("c2").unwrap();
    let mut e2 = a.clone();
    e2[7 * K4..8 * K4].copy_from_slice(&b[..K4]);
    assert_eq!(read(&*c2, 0, 8), e2);
    assert_eq!(read(&*dev, 7, 1), &a[7 * K4..]);
    // Snapshot with clones cannot be deleted; neither can its volume.
    assert_eq!(
        pool.delete_snapshot("v", "s1").unwrap_err().kind,
        ErrorKind::HasClones
    );
    drop(dev);
    assert_eq!(
        pool.delete_volume("v").unwrap_err().kind,
        ErrorKind::HasClones
    );
    let info = pool.info("v@s1").unwrap();
    assert_eq!(info.kind, ObjectKind::Snapshot);
    assert_eq!(info.clones, vec!["c1".to_string()]);
    assert_eq!(pool.info("c1").unwrap().origin.as_deref(), Some("v@s1"));
    // Rollback: latest only.
    let dev = pool.device("v").unwrap();
    pool.create_snapshot("v", "s2").unwrap();
    dev.write_blocks(0, &b, false).unwrap();
    assert_eq!(
        pool.rollback("v", "s1").unwrap_err().kind,
        ErrorKind::HasSnapshots
    );
    pool.rollback("v", "s2").unwrap();
    assert_eq!(read(&*dev, 0, 8), expect, "rollback while open");
    pool.delete_snapshot("v", "s2").unwrap();
    assert_eq!(
        read(&*dev, 0, 8),
        expect,
        "merge of latest snapshot into head"
    );
    // Tear down the clone chain, then the snapshot goes.
    drop((c1, c2));
    assert_eq!(
        pool.delete_volume("c1").unwrap_err().kind,
        ErrorKind::HasClones
    );
    pool.delete_volume("c2").unwrap();
    pool.delete_volume("c1").unwrap();
    pool.delete_snapshot("v", "s1").unwrap();
    assert_eq!(read(&*dev, 0, 8), expect);
    pool.rollback("v", "s1").unwrap_err();
    // Everything survives a reopen (log replay) and a checkpoint.
    dev.flush().unwrap();
    drop(dev);
    drop(pool);
    let pool = open(&t.pool());
    assert_eq!(read(&*pool.device("v").unwrap(), 0, 8), expect);
    pool.close().unwrap();
    let r = Pool::check(&t.pool(), false).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.volumes, 1);
    assert_eq!(r.referenced_blocks, 7);
}

#[test]
fn delete_middle_snapshot_merges_into_next_snapshot() {
    let t = TempDir::new("merge");
    let pool = create(&t.pool());
    pool.create_volume("v", 16 * K4 as u64, 4096).unwrap();
    let dev = pool.device("v").unwrap();
    let w = |lba, s| dev.write_blocks(lba, &pattern(s, K4), false).unwrap();
    w(0, 1);
    w(1, 1);
    pool.create_snapshot("v", "s1").unwrap();
    w(1, 2);
    w(2, 2);
    pool.create_snapshot("v", "s2").unwrap();
    pool.clone_snapshot("v", "s2", "c").unwrap();
    w(0, 3);
    // s1 has one child (s2's layer): mergeable even though s2 has a clone.
    pool.delete_snapshot("v", "s1").unwrap();
    assert!(pool.stats().metadata_entries_touched > 0);
    let c = pool.device("c").unwrap();
    assert_eq!(
        read(&*c, 0, 3),
        [pattern(1, K4), pattern(2, K4), pattern(2, K4)].concat()
    );
    assert_eq!(
        read(&*dev, 0, 3),
        [pattern(3, K4), pattern(2, K4), pattern(2, K4)].concat()
    );
    // s1's overridden block (lba 1, seed 1) was freed: 5 blocks remain.
    pool.flush().unwrap();
    drop((c, dev));
    drop(pool);
    let r = Pool::check(&t.pool(), false).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.referenced_blocks, 4);
}

#[test]
fn small_blocks_read_modify_write_and_unaligned() {
    let t = TempDir::new("rmw");
    let pool = create(&t.pool());
    pool.create_volume("v", 1 << 20, 512).unwrap();
    let dev = pool.device("v").unwrap();
    let mut model = vec![0u8; 1 << 20];
    let mut rng = Rng(7);
    for i in 0..300 {
        let lba = rng.below(2000);
        let n = 1 + rng.below(20).min(2048 - lba - 1) as usize;
        let data = if i % 7 == 0 {
            vec![0u8; n * 512]
        } else {
            pattern(i, n * 512)
        };
        dev.write_blocks(lba, &data, i % 13 == 0).unwrap();
        model[lba as usize * 512..][..n * 512].copy_from_slice(&data);
        let rl = rng.below(2040);
        let rn = 1 + rng.below(8) as usize;
        assert_eq!(
            read(&*dev, rl, rn),
            &model[rl as usize * 512..][..rn * 512],
            "op {i}"
        );
    }
    dev.unmap(3, 5).unwrap();
    model[3 * 512..8 * 512].fill(0);
    dev.unmap(100, 40).unwrap();
    model[100 * 512..140 * 512].fill(0);
    assert_eq!(read(&*dev, 0, 2048), model);
    dev.flush().unwrap();
    drop(dev);
    drop(pool);
    let pool = open(&t.pool());
    assert_eq!(read(&*pool.device("v").unwrap(), 0, 2048), model);
}

#[test]
fn unmap_and_provisioning() {
    let t = TempDir::new("unmap");
    let pool = create(&t.pool());
    pool.create_volume("v", 1 << 30, 4096).unwrap();
    let dev = pool.device("v").unwrap();
    assert_eq!(dev.provisioning(0).unwrap(), (false, 65536));
    dev.write_blocks(100, &pattern(1, 10 * K4), false).unwrap();
    assert_eq!(dev.provisioning(0).unwrap(), (false, 100));
    assert_eq!(dev.provisioning(100).unwrap(), (true, 10));
    assert_eq!(dev.provisioning(105).unwrap(), (true, 5));
    assert!(!dev.provisioning(110).unwrap().0);
    // Writing zeros unmaps (thin stays thin).
    dev.write_blocks(102, &vec![0u8; K4], false).unwrap();
    assert_eq!(dev.provisioning(100).unwrap(), (true, 2));
    assert_eq!(dev.provisioning(102).unwrap(), (false, 1));
    // Unmap over a snapshot leaves a tombstone; the snapshot keeps data.
    pool.create_snapshot("v", "s").unwrap();
    dev.unmap(0, 1 << 18).unwrap();
    assert_eq!(read(&*dev, 100, 10), vec![0u8; 10 * K4]);
    assert!(!dev.provisioning(100).unwrap().0);
    pool.clone_snapshot("v", "s", "c").unwrap();
    let c = pool.device("c").unwrap();
    assert_eq!(read(&*c, 100, 2), pattern(1, 2 * K4));
    assert!(dev.provisioning(1 << 18).is_err());
    // Unmapped data is reclaimed on disk once the snapshot goes.
    drop(c);
    pool.delete_volume("c").unwrap();
    dev.write_blocks(0, &pattern(5, 1 << 20), false).unwrap();
    dev.flush().unwrap();
    let before = disk_usage(&t.pool());
    pool.delete_snapshot("v", "s").unwrap();
    dev.unmap(0, 256).unwrap();
    dev.flush().unwrap();
    let after = disk_usage(&t.pool());
    assert!(before - after >= 1 << 20, "before {before} after {after}");
    assert_eq!(pool.stats().allocated_bytes, 0);
}

#[test]
fn resize_grow_and_forced_shrink() {
    let t = TempDir::new("resize");
    let pool = create(&t.pool());
    pool.create_volume("v", 8 * K4 as u64, 512).unwrap();
    let dev = pool.device("v").unwrap();
    dev.write_blocks(0, &pattern(1, 8 * K4), false).unwrap();
    pool.create_snapshot("v", "s").unwrap();
    pool.resize_volume("v", 16 * K4 as u64, false).unwrap();
    assert_eq!(dev.num_blocks(), 16 * 8);
    dev.write_blocks(100, &pattern(2, 512), false).unwrap();
    // Shrink to a non-chunk-aligned size, then grow: the cut-off part reads zeros.
    pool.resize_volume("v", 4 * K4 as u64 + 1024, true).unwrap();
    assert_eq!(dev.num_blocks(), 34);
    assert!(dev.read_blocks(34, &mut [0u8; 512]).is_err());
    pool.resize_volume("v", 16 * K4 as u64, false).unwrap();
    let back = read(&*dev, 0, 128);
    assert_eq!(&back[..34 * 512], &pattern(1, 8 * K4)[..34 * 512]);
    assert!(back[34 * 512..].iter().all(|&b| b == 0));
    // The snapshot keeps its size and data.
    assert_eq!(pool.info("v@s").unwrap().logical_bytes, 8 * K4 as u64);
    pool.clone_snapshot("v", "s", "c").unwrap();
    assert_eq!(read(&*pool.device("c").unwrap(), 0, 64), pattern(1, 8 * K4));
}

#[test]
fn accounting_used_and_referenced() {
    let t = TempDir::new("acct");
    let pool = create(&t.pool());
    let mib = 1u64 << 20;
    pool.create_volume("v", 64 * mib, 4096).unwrap();
    let dev = pool.device("v").unwrap();
    dev.write_blocks(0, &pattern(1, 4 << 20), false).unwrap();
    let v = pool.info("v").unwrap();
    assert_eq!(
        (v.logical_bytes, v.referenced_bytes, v.used_bytes),
        (64 * mib, 4 * mib, 4 * mib)
    );
    pool.create_snapshot("v", "s").unwrap();
    // Overwrite half: the snapshot now uniquely holds 2 MiB.
    dev.write_blocks(0, &pattern(2, 2 << 20), false).unwrap();
    let s = pool.info("v@s").unwrap();
    assert_eq!((s.referenced_bytes, s.used_bytes), (4 * mib, 2 * mib));
    let v = pool.info("v").unwrap();
    assert_eq!(v.referenced_bytes, 4 * mib);
    assert_eq!(v.used_bytes, 6 * mib);
    assert_eq!(v.used_by_snapshots_bytes, 2 * mib);
    // Clone: refers to everything, uses nothing.
    pool.clone_snapshot("v", "s", "c").unwrap();
    let c = pool.info("c").unwrap();
    assert_eq!((c.referenced_bytes, c.used_bytes), (4 * mib, 0));
    // With a clone the snapshot's blocks are needed by the clone too.
    assert_eq!(pool.info("v@s").unwrap().used_bytes, 0);
    assert_eq!(pool.stats().allocated_bytes, 6 * mib);
    let j = serde_json_like(&pool.list());
    assert!(j.contains("v@s"));
}

fn serde_json_like(v: &[volume::VolumeInfo]) -> String {
    // serde derive is exercised through Debug here (no serde_json dependency).
    format!("{v:?}")
}

#[test]
fn snapshot_during_concurrent_writes_is_consistent() {
    let t = TempDir::new("conc");
    let pool = Arc::new(create(&t.pool()));
    pool.create_volume("v", 1 << 24, 4096).unwrap();
    let threads = 3u64;
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut hs = Vec::new();
    for th in 0..threads {
        let dev = pool.device("v").unwrap();
        let (acked, stop) = (acked.clone(), stop.clone());
        hs.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let mut b = vec![0u8; K4];
                b[..8].copy_from_slice(&n.to_le_bytes());
                b[8] = 1;
                // Each thread owns 16 blocks and stamps all of them in turn.
                dev.write_blocks(th * 16 + n % 16, &b, false).unwrap();
                acked[th as usize].store(n, Ordering::SeqCst);
            }
        }));
    }
    for i in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let before: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        let snap = format!("s{i}");
        pool.create_snapshot("v", &snap).unwrap();
        let after: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        let clone = format!("c{i}");
        pool.clone_snapshot("v", &snap, &clone).unwrap();
        let c = pool.device(&clone).unwrap();
        for th in 0..threads as usize {
            let mut max = 0;
            for k in 0..16u64 {
                let b = read(&*c, th as u64 * 16 + k, 1);
                let mut s = [0u8; 8];
                s.copy_from_slice(&b[..8]);
                max = max.max(u64::from_le_bytes(s));
            }
            // Every write acknowledged before the snapshot is in it; nothing
            // started after it returned is.
            assert!(max >= before[th], "thread {th}: {max} < {}", before[th]);
            assert!(max <= after[th] + 1, "thread {th}: {max} > {}", after[th]);
        }
    }
    stop.store(true, Ordering::SeqCst);
    for h in hs {
        h.join().unwrap();
    }
}
