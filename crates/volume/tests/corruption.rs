#![allow(clippy::unwrap_used)]
//! Corruption detection: flipped bytes in data blocks, checkpoints and the
//! log are detected (checksum error / Corrupt), located, never returned as
//! data, never a panic or a hang.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use scsi::{BlockDevice, DeviceErrorKind};
use volume::{ErrorKind, Pool};

const K4: usize = 4096;

fn flip(path: &Path, off: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, off).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, off).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn flipped_data_block_is_detected_and_located() {
    let t = TempDir::new("cdata");
    let pool = create(&t.pool());
    pool.create_volume("v", 1 << 20, 4096).unwrap();
    pool.create_volume("small", 1 << 20, 512).unwrap();
    let dev = pool.device("v").unwrap();
    // Fresh pool: 16 blocks written at once land in physical blocks 0..16.
    dev.write_blocks(0, &pattern(1, 16 * K4), false).unwrap();
    // Block 16: lba 20 of v, then kept only by snapshot s.
    dev.write_blocks(20, &pattern(2, K4), false).unwrap();
    pool.create_snapshot("v", "s").unwrap();
    dev.write_blocks(20, &pattern(3, K4), false).unwrap(); // block 17
    let small = pool.device("small").unwrap();
    small.write_blocks(8, &pattern(4, K4), false).unwrap(); // block 18 = small lba 8..16
    drop((dev, small));
    pool.close().unwrap();

    let data = t.pool().join("data");
    flip(&data, 5 * K4 as u64 + 100);
    flip(&data, 16 * K4 as u64 + 7);
    flip(&data, 18 * K4 as u64 + 4000);

    let pool = open(&t.pool());
    let dev = pool.volume_device("v").unwrap();
    let mut b = vec![0u8; K4];
    let e = dev.read_blocks(5, &mut b).unwrap_err();
    assert_eq!(e.kind, DeviceErrorKind::Checksum);
    assert_eq!(e.lba, 5);
    assert_eq!(e.sense().asc, scsi::Asc::UNRECOVERED_READ_ERROR);
    dev.read_blocks(4, &mut b).unwrap();
    assert_eq!(b, pattern(1, 16 * K4)[4 * K4..5 * K4]);
    dev.read_blocks(6, &mut b).unwrap();
    let mut all = vec![0u8; 16 * K4];
    assert_eq!(
        dev.read_blocks(0, &mut all).unwrap_err().kind,
        DeviceErrorKind::Checksum
    );
    assert_eq!(dev.checksum_errors(), 2);
    assert_eq!(pool.checksum_errors("v").unwrap(), 2);
    dev.read_blocks(20, &mut b).unwrap(); // current data is intact
                                          // A clone reading the snapshot's damaged block fails too.
    pool.clone_snapshot("v", "s", "c").unwrap();
    let c = pool.device("c").unwrap();
    assert_eq!(
        c.read_blocks(20, &mut b).unwrap_err().kind,
        DeviceErrorKind::Checksum
    );
    assert_eq!(pool.checksum_errors("c").unwrap(), 1);
    // 512-byte LUN: the damaged 4K block is reported as 8 LBAs.
    let small = pool.device("small").unwrap();
    let mut sb = vec![0u8; 512];
    assert_eq!(small.read_blocks(9, &mut sb).unwrap_err().lba, 8);
    small.read_blocks(16, &mut sb).unwrap();

    let r = pool.scrub(Some("v")).unwrap();
    // Damage is named by the owning object (lba 5 was written before the
    // snapshot, so v@s owns it) plus the volumes that read that block.
    let mut got: Vec<(String, u64, u64, Vec<String>)> = r
        .damaged
        .iter()
        .map(|d| (d.object.clone(), d.lba, d.blocks, d.visible_in.clone()))
        .collect();
    got.sort();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            ("v@s".into(), 5, 1, s(&["c", "v"])),
            ("v@s".into(), 20, 1, s(&["c"]))
        ],
        "{r:?}"
    );
    assert!(r.metadata_errors.is_empty());
    let r = pool.scrub(None).unwrap();
    assert_eq!(r.damaged.len(), 3, "{r:?}");
    assert!(r
        .damaged
        .iter()
        .any(|d| d.object == "small" && d.lba == 8 && d.blocks == 8));
    drop((dev, c, small));
    drop(pool);
    let r = Pool::check(&t.pool(), true).unwrap();
    assert!(!r.is_clean());
    assert_eq!(r.damaged.len(), 3, "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
}

fn pool_with_history(t: &TempDir) {
    let pool = create(&t.pool());
    pool.create_volume("v", 1 << 20, 4096).unwrap();
    let dev = pool.device("v").unwrap();
    for i in 0..6u64 {
        dev.write_blocks(i, &pattern(i, K4), false).unwrap();
        dev.flush().unwrap();
    }
    pool.create_snapshot("v", "s").unwrap();
    dev.write_blocks(10, &pattern(10, K4), true).unwrap();
}

#[test]
fn flipped_checkpoint_uses_second_copy_and_repairs() {
    let t = TempDir::new("cckpt");
    pool_with_history(&t);
    // Make the checkpoint carry the data (close = flush + checkpoint).
    open(&t.pool()).close().unwrap();
    let c0 = t.pool().join("ckpt.0");
    let len = std::fs::metadata(&c0).unwrap().len();
    flip(&c0, len - 30);
    let pool = open(&t.pool());
    let mut b = vec![0u8; K4];
    pool.device("v").unwrap().read_blocks(3, &mut b).unwrap();
    assert_eq!(b, pattern(3, K4));
    let r = pool.scrub(None).unwrap();
    assert!(r.damaged.is_empty());
    assert_eq!(r.metadata_errors.len(), 1, "{r:?}");
    assert!(r.metadata_errors[0].contains("ckpt.0"), "{r:?}");
    drop(pool);
    let r = Pool::check(&t.pool(), false).unwrap();
    assert!(!r.is_clean() && r.errors[0].contains("ckpt.0"), "{r:?}");
    let r = Pool::check(&t.pool(), true).unwrap();
    assert!(!r.repairs.is_empty());
    let r = Pool::check(&t.pool(), false).unwrap();
    assert!(r.is_clean(), "{r:?}");
    // Both copies damaged: open fails cleanly.
    for f in ["ckpt.0", "ckpt.1"] {
        flip(&t.pool().join(f), 40);
    }
    let e = Pool::open_with(&t.pool(), opts()).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    assert_eq!(
        Pool::check(&t.pool(), true).unwrap_err().kind,
        ErrorKind::Corrupt
    );
}

#[test]
fn flipped_log_frame_in_the_middle_refuses_open_until_repaired() {
    let t = TempDir::new("clog");
    pool_with_history(&t);
    let wal = t.pool().join("wal");
    // Damage the second frame's payload (the first is the volume creation).
    let buf = std::fs::read(&wal).unwrap();
    let first_len = u32::from_le_bytes(buf[4..8].try_into().unwrap()) as u64;
    flip(&wal, 24 + first_len + 24 + 3);
    let e = Pool::open_with(&t.pool(), opts()).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Corrupt);
    assert!(e.to_string().contains("valid frame"), "{e}");
    let r = Pool::check(&t.pool(), false).unwrap();
    assert!(!r.is_clean(), "{r:?}");
    let r = Pool::check(&t.pool(), true).unwrap();
    assert!(r.repairs.iter().any(|x| x.contains("checkpoint")), "{r:?}");
    // Open works again; the volume exists (frame 1), later writes are gone.
    let pool = open(&t.pool());
    assert_eq!(pool.list().len(), 1);
    let mut b = vec![0u8; K4];
    pool.device("v").unwrap().read_blocks(0, &mut b).unwrap();
    assert_eq!(b, vec![0u8; K4]);
    drop(pool);
    assert!(Pool::check(&t.pool(), false).unwrap().is_clean());
}

#[test]
fn random_metadata_damage_never_panics_or_hangs() {
    let t = TempDir::new("cfuzz");
    pool_with_history(&t);
    {
        // A checkpoint with content plus log frames after it.
        let p = open(&t.pool());
        p.close().unwrap();
        let p = open(&t.pool());
        let d = p.device("v").unwrap();
        d.write_blocks(30, &pattern(30, 2 * K4), false).unwrap();
        d.flush().unwrap();
        p.create_snapshot("v", "s2").unwrap();
    }
    let files = ["ckpt.0", "ckpt.1", "wal"];
    let pristine: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(t.pool().join(f)).unwrap())
        .collect();
    let mut rng = Rng(99);
    let (mut ok, mut err) = (0, 0);
    for _ in 0..150 {
        for (f, b) in files.iter().zip(&pristine) {
            std::fs::write(t.pool().join(f), b).unwrap();
        }
        // Damage one or two files.
        for _ in 0..1 + rng.below(2) {
            let i = rng.below(3) as usize;
            let len = pristine[i].len() as u64;
            if len == 0 {
                continue;
            }
            let p = t.pool().join(files[i]);
            match rng.below(3) {
                0 => flip(&p, rng.below(len)),
                1 => {
                    let f = OpenOptions::new().write(true).open(&p).unwrap();
                    f.set_len(rng.below(len)).unwrap();
                }
                _ => {
                    let f = OpenOptions::new().write(true).open(&p).unwrap();
                    f.write_all_at(
                        &pattern(rng.next(), 1 + rng.below(64) as usize),
                        rng.below(len),
                    )
                    .unwrap();
                }
            }
        }
        let t0 = Instant::now();
        match Pool::open_with(&t.pool(), opts()) {
            Ok(p) => {
                ok += 1;
                for info in p.list() {
                    if info.snapshot.is_none() {
                        let d = p.device(&info.name).unwrap();
                        let mut b = vec![0u8; 64 * K4];
                        let _ = d.read_blocks(0, &mut b);
                    }
                }
            }
            Err(e) => {
                err += 1;
                assert!(
                    matches!(e.kind, ErrorKind::Corrupt | ErrorKind::NotFound),
                    "{e}"
                );
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
    assert!(ok > 0 && err > 0, "ok {ok} err {err}");
}
